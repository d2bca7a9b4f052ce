"""Vectorised Mapbox Vector Tile (MVT 2.1) encoding of one layer.

The geometry commands of all the features of a tile are built at once with
NumPy from coordinate and offset arrays (the GeoArrow layout of
``shapely.to_ragged_array``): coordinates snapped to the integer grid, rings
oriented as the spec asks (exterior rings with a positive surveyor's-formula
area in tile coordinates, y down, i.e. clockwise on screen; interior rings
negative), repeated points dropped, MoveTo / LineTo / ClosePath commands with
zig-zag deltas, then the protobuf written directly (varints in bulk).

The attributes travel as a :class:`Properties` table: each distinct value's
``tile.Value`` message is written once, when the table is built (once per
layer), and a tile's key and value tables and every feature's tags are picked
from it with NumPy (``np.unique`` for the first-met order), without a Python
loop over features.

For valid geometries it writes what ``mapbox_vector_tile.encode`` wrote
(``y_coord_down=True``): the same commands for the same rings and lines, the
same key and value tables (deduplicated in first-seen order with Python
equality, so ``1`` and ``1.0`` share an entry and ``True`` does not), the same
feature ids and field order. (A feature's tags follow the table's column
order: for a list of dicts, the order their keys are first met in across the
layer. Where dicts name their keys in different orders, values Python holds
equal may then meet the value table in another order than the former encoder
met them: ``[{"c": 5}, {"a": 0.0, "c": 0}]`` decodes ``a`` and ``c`` as the
int ``0`` here, as the float ``0.0`` there. Tiles of ``viewer.tiles`` come
from one frame's columns, in one order, and are byte for byte the same.) Two
differences, both on degenerate input: a ring
left with fewer than 3 distinct points is dropped (with the holes of a dropped
exterior ring), and a geometry collection keeps its parts of the highest
dimension (the former encoder raised). Repairing invalid polygons is the
caller's job (see ``viewer.tiles``).
"""

from __future__ import annotations

import math
import struct

import numpy as np

__all__ = ["Properties", "encode_layer"]

# geometry type ids of shapely.get_type_id
_POINT, _LINESTRING, _LINEARRING, _POLYGON, _MULTIPOINT, _MULTILINESTRING, _MULTIPOLYGON, _COLLECTION = range(8)
_DIM = {_POINT: 0, _MULTIPOINT: 0, _LINESTRING: 1, _LINEARRING: 1, _MULTILINESTRING: 1, _POLYGON: 2, _MULTIPOLYGON: 2}
# MVT GeomType (POINT, LINESTRING, POLYGON) of each dimension
_MVT_TYPE = np.array([1, 2, 3], dtype=np.uint64)
_MOVE_TO, _LINE_TO, _CLOSE_PATH = 1, 2, 7
_CLOSE = _CLOSE_PATH | (1 << 3)
_INT64 = (-(1 << 63), 1 << 63)
_UINT64 = 1 << 64


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    """A length-delimited field: its key byte, the length, the payload."""
    return bytes((tag,)) + _varint(len(payload)) + payload


def _varints(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Base-128 varints of unsigned ``v`` in one byte array, and the end offset of each value in it."""
    v = np.asarray(v, dtype=np.uint64)
    n = _varint_len(v)
    ends = np.cumsum(n)
    out = np.empty(int(ends[-1]) if len(ends) else 0, dtype=np.uint8)
    starts = ends - n
    for k in range(int(n.max()) if len(n) else 0):
        sel = np.nonzero(n > k)[0]
        byte = (v[sel] >> np.uint64(7 * k)) & np.uint64(0x7F)
        byte |= (n[sel] > k + 1).astype(np.uint64) << np.uint64(7)
        out[starts[sel] + k] = byte.astype(np.uint8)
    return out, ends


def _snap(coords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x and y on the integer grid, halves rounded up (as GEOS's fixed precision model does)."""
    c = np.floor(coords[:, :2] + 0.5).astype(np.int64)
    return c[:, 0], c[:, 1]


def _zigzag(d: np.ndarray) -> np.ndarray:
    return ((d << 1) ^ (d >> 63)).astype(np.uint64)


def _lengths(offsets) -> np.ndarray:
    return np.diff(np.asarray(offsets, dtype=np.int64))


def _segments_to_commands(px, py, seg, feat, close: bool):
    """Commands of paths (rings or lines) whose kept points are ``px, py`` in feature order.

    ``seg`` and ``feat`` give each point's path and feature (non-decreasing); each path
    becomes MoveTo(1), LineTo(n - 1) [, ClosePath], with deltas from the previous point
    of the same feature (from 0, 0 at a feature's first point).
    Returns the command array and, per path, its feature and number of commands.
    """
    m = len(px)
    if m == 0:
        return np.empty(0, np.uint64), np.empty(0, np.int64), np.empty(0, np.int64)
    first = np.ones(m, dtype=bool)
    first[1:] = seg[1:] != seg[:-1]
    starts = np.nonzero(first)[0]
    n_pts = np.diff(np.append(starts, m))
    seg_feat = feat[starts]
    feat_first = np.ones(m, dtype=bool)
    feat_first[1:] = feat[1:] != feat[:-1]
    dx = np.empty(m, np.int64)
    dy = np.empty(m, np.int64)
    dx[0], dy[0] = px[0], py[0]
    dx[1:] = px[1:] - px[:-1]
    dy[1:] = py[1:] - py[:-1]
    dx[feat_first] = px[feat_first]
    dy[feat_first] = py[feat_first]
    seg_len = 2 * n_pts + 2 + int(close)
    out_start = np.cumsum(seg_len) - seg_len
    out = np.empty(int(seg_len.sum()), dtype=np.uint64)
    out[out_start] = _MOVE_TO | (1 << 3)
    out[out_start + 3] = (_LINE_TO | ((n_pts - 1) << 3)).astype(np.uint64)
    if close:
        out[out_start + seg_len - 1] = _CLOSE
    seg_of_pt = np.repeat(np.arange(len(starts)), n_pts)
    t = np.arange(m) - starts[seg_of_pt]
    pos = out_start[seg_of_pt] + 1 + 2 * t + (t > 0)
    out[pos] = _zigzag(dx)
    out[pos + 1] = _zigzag(dy)
    return out, seg_feat, seg_len


def _dedup(px, py, seg) -> np.ndarray:
    """Mask of points that differ from the previous point of their path."""
    keep = np.ones(len(px), dtype=bool)
    keep[1:] = (px[1:] != px[:-1]) | (py[1:] != py[:-1]) | (seg[1:] != seg[:-1])
    return keep


def _polygon_commands(geoms: np.ndarray):
    import shapely

    gtype, coords, offsets = shapely.to_ragged_array(geoms)
    if gtype == shapely.GeometryType.POLYGON:
        ring_off, poly_off = offsets
        geom_off = np.arange(len(poly_off))
    else:
        ring_off, poly_off, geom_off = offsets
    x, y = _snap(coords)
    ring_len = _lengths(ring_off)  # closed: the last point repeats the first
    n_rings = len(ring_len)
    ring_start = np.asarray(ring_off[:-1], dtype=np.int64)
    ring_of = np.repeat(np.arange(n_rings), ring_len)
    # twice the signed area of each ring (exact: integer coordinates, |x|, |y| < 2**20)
    same = ring_of[1:] == ring_of[:-1]
    cross = (x[:-1] * y[1:] - x[1:] * y[:-1])[same]
    area2 = np.bincount(ring_of[:-1][same], weights=cross, minlength=n_rings)
    poly_of_ring = np.repeat(np.arange(len(poly_off) - 1), _lengths(poly_off))
    is_ext = np.zeros(n_rings, dtype=bool)
    is_ext[np.asarray(poly_off[:-1], dtype=np.int64)[_lengths(poly_off) > 0]] = True
    reverse = np.where(is_ext, area2 < 0, area2 > 0)
    # open rings (closing point left out), reversed ones keeping their first point
    m = np.maximum(ring_len - 1, 0)
    ring_of_pt = np.repeat(np.arange(n_rings), m)
    t = np.arange(int(m.sum())) - np.repeat(np.cumsum(m) - m, m)
    rev = reverse[ring_of_pt] & (t > 0)
    src = ring_start[ring_of_pt] + np.where(rev, m[ring_of_pt] - t, t)
    px, py = x[src], y[src]
    keep = _dedup(px, py, ring_of_pt)
    # a ring needs 3 distinct points; a polygon whose exterior ring collapsed goes with its holes
    n_kept = np.bincount(ring_of_pt[keep], minlength=n_rings)
    ring_ok = n_kept >= 3
    poly_ok = np.zeros(len(poly_off) - 1, dtype=bool)
    has_rings = _lengths(poly_off) > 0
    poly_ok[has_rings] = ring_ok[np.asarray(poly_off[:-1], dtype=np.int64)[has_rings]]
    ring_ok &= poly_ok[poly_of_ring]
    keep &= ring_ok[ring_of_pt]
    geom_of_poly = np.repeat(np.arange(len(geom_off) - 1), _lengths(geom_off))
    feat = geom_of_poly[poly_of_ring[ring_of_pt[keep]]]
    return _segments_to_commands(px[keep], py[keep], ring_of_pt[keep], feat, close=True)


def _line_commands(geoms: np.ndarray):
    import shapely

    gtype, coords, offsets = shapely.to_ragged_array(geoms)
    if gtype == shapely.GeometryType.LINESTRING:
        (part_off,) = offsets
        geom_off = np.arange(len(part_off))
    else:
        part_off, geom_off = offsets
    px, py = _snap(coords)
    n_parts = len(part_off) - 1
    part_of_pt = np.repeat(np.arange(n_parts), _lengths(part_off))
    keep = _dedup(px, py, part_of_pt)
    part_ok = np.bincount(part_of_pt[keep], minlength=n_parts) >= 2
    keep &= part_ok[part_of_pt]
    geom_of_part = np.repeat(np.arange(len(geom_off) - 1), _lengths(geom_off))
    feat = geom_of_part[part_of_pt[keep]]
    return _segments_to_commands(px[keep], py[keep], part_of_pt[keep], feat, close=False)


def _point_commands(geoms: np.ndarray):
    import shapely

    gtype, coords, offsets = shapely.to_ragged_array(geoms)
    geom_off = np.arange(len(coords) + 1) if gtype == shapely.GeometryType.POINT else np.asarray(offsets[0])
    px, py = _snap(coords)
    n_pts = _lengths(geom_off)
    feat = np.repeat(np.arange(len(n_pts)), n_pts)
    if len(px) == 0:
        return np.empty(0, np.uint64), np.empty(0, np.int64), np.empty(0, np.int64)
    feat_first = np.ones(len(px), dtype=bool)
    feat_first[1:] = feat[1:] != feat[:-1]
    dx = np.diff(px, prepend=0)
    dy = np.diff(py, prepend=0)
    dx[feat_first] = px[feat_first]
    dy[feat_first] = py[feat_first]
    has = n_pts > 0
    seg_len = 1 + 2 * n_pts[has]
    out_start = np.cumsum(seg_len) - seg_len
    out = np.empty(int(seg_len.sum()), dtype=np.uint64)
    out[out_start] = (_MOVE_TO | (n_pts[has] << 3)).astype(np.uint64)
    t = np.arange(len(px)) - np.repeat(np.asarray(geom_off[:-1], np.int64), n_pts)
    pos = np.repeat(out_start, n_pts[has]) + 1 + 2 * t
    out[pos] = _zigzag(dx)
    out[pos + 1] = _zigzag(dy)
    return out, np.nonzero(has)[0], seg_len


def _split_collections(geoms: np.ndarray, types: np.ndarray) -> None:
    """Replace geometry collections (in place) by their parts of the highest dimension
    (a feature has one geometry type in a tile); polygonal parts are merged."""
    import shapely

    for i in np.nonzero(types == _COLLECTION)[0]:
        parts = np.asarray([geoms[i]], dtype=object)
        while True:  # down to single parts, through nested collections
            ptypes = shapely.get_type_id(parts)
            if not np.isin(ptypes, (_MULTIPOINT, _MULTILINESTRING, _MULTIPOLYGON, _COLLECTION)).any():
                break
            parts = shapely.get_parts(parts)
        parts = parts[~shapely.is_empty(parts)]
        dims = np.array([_DIM.get(int(t), -1) for t in shapely.get_type_id(parts)], dtype=int)
        if len(parts) == 0 or dims.max() < 0:
            geoms[i] = None
            types[i] = -1
            continue
        top = parts[dims == dims.max()]
        make = {2: shapely.multipolygons, 1: shapely.multilinestrings, 0: shapely.multipoints}[int(dims.max())]
        geoms[i] = top[0] if len(top) == 1 else (shapely.union_all(top) if dims.max() == 2 else make(top))
        types[i] = shapely.get_type_id(geoms[i])


def _value(v) -> bytes:
    """A ``tile.Value`` message for a str, bool, int or float."""
    if isinstance(v, bool):
        return b"\x38" + (b"\x01" if v else b"\x00")
    if isinstance(v, str):
        return _field(0x0A, v.encode("utf-8"))
    if isinstance(v, int):
        if _INT64[0] <= v < _INT64[1]:
            return b"\x20" + _varint(v % _UINT64)
        if 0 <= v < _UINT64:
            return b"\x28" + _varint(v)
        return _field(0x0A, str(v).encode("utf-8"))
    return b"\x19" + struct.pack("<d", v)


def _kept(v) -> bool:
    """Whether a tile carries an attribute value (str, bool, int, float; not None, not other objects)."""
    return isinstance(v, (str, int, float))  # bool is an int


def exact_key(v) -> tuple:
    """A dict key that tells apart values Python calls equal but a tile writes differently:
    ``1``, ``1.0`` and ``True`` (by type), ``0.0`` and ``-0.0`` (by sign)."""
    if isinstance(v, float):
        return v.__class__, v, math.copysign(1.0, v)
    return v.__class__, v


class Properties:
    """The attributes of a layer's features as a table of value codes, ready for tiles.

    ``codes[i, j]`` is the value of column ``j`` of feature ``i``, an index into
    ``values`` (-1: the feature has no value there and its tag is left out).
    Each value's ``tile.Value`` message is written once, here; a tile then
    picks its features' rows (:meth:`take`) and :func:`encode_layer` builds
    its key and value tables and every feature's tags with NumPy.

    Values are deduplicated as ``mapbox_vector_tile`` did, with Python
    equality: ``values`` holds each distinct value once per type (``1`` and
    ``1.0`` are two entries) and ``value_class`` numbers the equal ones alike
    (``1`` and ``1.0`` share a class, ``True`` does not), so that a tile's
    value table keeps the first one a tile meets, as before.

    Parameters
    ----------
    columns : list of str
        The attribute names, in the order a feature's tags are written.
    codes : array of int, shape (n_features, len(columns))
        Value codes; -1 where the feature has no value.
    values : list
        The distinct values (str, bool, int or float).

    Examples
    --------
    >>> p = Properties.from_records([{"kind": "park", "n": 1}, {"n": 1.0}, {"kind": None, "n": True}])
    >>> p.columns, p.codes.tolist(), p.values
    (['kind', 'n'], [[0, 1], [-1, 2], [-1, 3]], ['park', 1, 1.0, True])
    >>> p.value_class.tolist()
    [0, 1, 1, 2]
    >>> p.take([2, 0]).records()
    [{'n': True}, {'kind': 'park', 'n': 1}]
    """

    def __init__(self, columns: list[str], codes, values: list, _tables=None) -> None:
        self.columns = list(columns)
        self.codes = np.asarray(codes, dtype=np.int32)
        if self.codes.ndim != 2 or self.codes.shape[1] != len(self.columns):
            raise ValueError(f"codes must have shape (n_features, {len(self.columns)}), one column per name in "
                             f"columns; got shape {self.codes.shape}")
        if self.codes.size and not -1 <= self.codes.min() <= self.codes.max() < len(values):
            raise ValueError(f"codes must lie in -1 .. {len(values) - 1} (-1: no value; else an index into values); "
                             f"got {self.codes.min()} .. {self.codes.max()}")
        self.values = values
        if _tables is None:
            _tables = self._tables(values)
        self.value_class, self._msg, self._msg_start, self._msg_len = _tables
        self._records = None

    @staticmethod
    def _tables(values: list):
        """Each value's equality class and its ``tile.Value`` message (as a layer's ``values`` field)."""
        classes: dict = {}
        bool_classes: dict = {}
        cls = np.empty(len(values), dtype=np.int64)
        msgs = []
        for i, v in enumerate(values):
            if not _kept(v):
                raise TypeError(f"a tile value must be a str, bool, int or float; got {v!r} ({type(v).__name__}) "
                                f"at values[{i}]: leave it out (code -1) or convert it")
            table = bool_classes if v.__class__ is bool else classes
            c = table.get(v)
            if c is None:
                c = table[v] = len(classes) + len(bool_classes)
            cls[i] = c
            msgs.append(_field(0x22, _value(v)))
        lens = np.fromiter(map(len, msgs), dtype=np.int64, count=len(msgs))
        buf = np.frombuffer(b"".join(msgs), dtype=np.uint8)
        return cls, buf, np.cumsum(lens) - lens, lens

    @classmethod
    def from_records(cls, records) -> "Properties":
        """The table of a list of dicts, one per feature (keys that are not str, and values that are not
        str, bool, int or float, left out)."""
        columns: dict[str, list] = {}
        for i, rec in enumerate(records):
            for k, v in rec.items():
                if isinstance(k, str) and _kept(v):
                    columns.setdefault(k, []).append((i, v))
        return cls.from_columns({k: _factorize_pairs(pairs, len(records)) for k, pairs in columns.items()},
                                len(records))

    @classmethod
    def from_columns(cls, columns: dict, n: int) -> "Properties":
        """The table of factorised columns: ``{name: (codes, uniques)}``, ``codes`` an int array of
        length ``n`` indexing ``uniques`` (-1 or a None unique: no value).

        Uniques that are not str, bool, int or float are left out; equal uniques of
        different columns (or of one column) become one value.
        """
        names = [k for k in columns if isinstance(k, str)]
        index: dict = {}
        values: list = []
        out = np.full((n, len(names)), -1, dtype=np.int32)
        for j, k in enumerate(names):
            codes, uniques = columns[k]
            lut = np.full(len(uniques) + 1, -1, dtype=np.int32)  # the last entry: code -1
            for u, v in enumerate(uniques):
                if _kept(v):
                    key = exact_key(v)
                    g = index.get(key)
                    if g is None:
                        g = index[key] = len(values)
                        values.append(v)
                    lut[u] = g
            out[:, j] = lut[np.asarray(codes, dtype=np.int64)]
        return cls(names, out, values)

    def __len__(self) -> int:
        return len(self.codes)

    def take(self, rows) -> "Properties":
        """The features ``rows`` (the value tables shared)."""
        tables = (self.value_class, self._msg, self._msg_start, self._msg_len)
        return Properties(self.columns, self.codes[np.asarray(rows, dtype=np.intp)], self.values, tables)

    def records(self) -> list[dict]:
        """One dict per feature, its columns in order, values absent left out (built once)."""
        if self._records is None:
            vals, cols = self.values, self.columns
            self._records = [{cols[j]: vals[c] for j, c in enumerate(row) if c >= 0} for row in self.codes.tolist()]
        return self._records

    def tags(self, rows: np.ndarray):
        """The tables and tags of a tile's features ``rows``: its keys (first met first), its ``values``
        fields as bytes, every feature's tags (key, value index pairs, in column order) and their counts."""
        sub = self.codes[rows]
        present = sub >= 0
        feat, col = np.nonzero(present)  # feature by feature, columns in order
        code = sub[feat, col]
        cols, first = np.unique(col, return_index=True)
        key_cols = cols[np.argsort(first, kind="stable")]
        key_of_col = np.zeros(len(self.columns), dtype=np.uint64)
        key_of_col[key_cols] = np.arange(len(key_cols), dtype=np.uint64)
        # a tile's value table: one entry per class of equal values, the first one met written
        _, first, inv = np.unique(self.value_class[code], return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")
        index = np.empty(len(order), dtype=np.uint64)
        index[order] = np.arange(len(order), dtype=np.uint64)
        tags = np.empty(2 * len(code), dtype=np.uint64)
        tags[0::2] = key_of_col[col]
        tags[1::2] = index[inv.reshape(-1)]
        chosen = code[first[order]]
        lens = self._msg_len[chosen]
        at = np.repeat(self._msg_start[chosen], lens) + _within(lens)
        n_tags = 2 * present.sum(axis=1, dtype=np.int64)
        return [self.columns[c] for c in key_cols.tolist()], self._msg[at].tobytes(), tags, n_tags


def _factorize_pairs(pairs: list, n: int):
    """Codes and uniques of a column given as (row, value) pairs, values deduplicated by :func:`exact_key`."""
    seen: dict = {}
    codes = np.full(n, -1, dtype=np.int64)
    rows = np.fromiter((i for i, _ in pairs), dtype=np.int64, count=len(pairs))
    codes[rows] = [seen.setdefault(exact_key(v), len(seen)) for _, v in pairs]
    return codes, [k[1] for k in seen]


def encode_layer(name: str, geoms, ids, props, extent: int = 4096) -> bytes:
    """Encode one layer of features as an MVT tile.

    Parameters
    ----------
    name : str
        The layer's name.
    geoms : array of shapely geometries
        In tile coordinates (y down), valid; snapped here to the integer grid
        (halves up). None and empty geometries, and those that collapse on the
        grid, are left out.
    ids : array of int
        Feature ids (a negative one is left out of its feature).
    props : list of dict, or Properties
        Each feature's attributes; str, bool, int and float values are kept,
        other values are left out. A :class:`Properties` table (one row per
        feature) saves converting the dicts on every call.
    extent : int
        The tile's extent in grid units.

    Returns
    -------
    bytes
        The tile (empty when no feature has a geometry).

    Examples
    --------
    >>> import shapely, mapbox_vector_tile
    >>> tile = encode_layer("demo", [shapely.box(10, 10, 20, 30)], [1], [{"kind": "park"}])
    >>> f = mapbox_vector_tile.decode(tile, default_options={"y_coord_down": True})["demo"]["features"][0]
    >>> f["id"], f["properties"], f["geometry"]["type"]
    (1, {'kind': 'park'}, 'Polygon')
    """
    import shapely

    geoms = np.array(geoms, dtype=object, copy=True).reshape(-1)
    ids = np.asarray(ids, dtype=np.int64)
    n = len(geoms)
    if not (len(ids) == len(props) == n):
        raise ValueError(f"geoms, ids and props must have one entry per feature; got {n}, {len(ids)}, {len(props)}")
    if n == 0:
        return b""
    types = shapely.get_type_id(geoms)
    present = (types >= 0) & ~shapely.is_empty(geoms)
    if (types[present] == _COLLECTION).any():
        _split_collections(geoms, types)
        present = (types >= 0) & ~shapely.is_empty(geoms)
    dims = np.full(n, -1)
    for t, d in _DIM.items():
        dims[types == t] = d
    present &= dims >= 0
    # commands of each kind, then one varint pass over all of them
    cmd_parts, feat_parts, len_parts = [], [], []
    for d, make in ((2, _polygon_commands), (1, _line_commands), (0, _point_commands)):
        which = np.nonzero(present & (dims == d))[0]
        if len(which):
            cmd, seg_feat, seg_len = make(geoms[which])
            cmd_parts.append(cmd)
            feat_parts.append(which[seg_feat])
            len_parts.append(seg_len)
    if not cmd_parts:
        return b""
    cmd = np.concatenate(cmd_parts)
    seg_feat = np.concatenate(feat_parts)
    seg_len = np.concatenate(len_parts)
    # each feature's commands are contiguous within its kind; find where they start and end
    n_cmd = np.bincount(seg_feat, weights=seg_len, minlength=n).astype(np.int64)
    seg_end = np.cumsum(seg_len)
    cmd_start = np.zeros(n, dtype=np.int64)
    with_cmds, first_seg = np.unique(seg_feat, return_index=True)
    cmd_start[with_cmds] = seg_end[first_seg] - seg_len[first_seg]
    out = np.nonzero(n_cmd > 0)[0]
    if len(out) == 0:
        return b""
    if not isinstance(props, Properties):
        props = Properties.from_records([props[i] for i in out.tolist()])
        rows = np.arange(len(out))
    else:
        rows = out
    keys, values, tags, n_tags = props.tags(rows)
    features = _features(ids[out], _MVT_TYPE[dims[out]], tags, n_tags, cmd, cmd_start[out], n_cmd[out])
    layer = b"".join([
        _field(0x0A, name.encode("utf-8")),
        features,
        *(_field(0x1A, k.encode("utf-8")) for k in keys),
        values,
        b"\x28" + _varint(int(extent)),
        b"\x78\x02",
    ])
    return _field(0x1A, layer)


def _varint_len(v: np.ndarray) -> np.ndarray:
    """The length in bytes of each value's base-128 varint."""
    v = np.asarray(v, dtype=np.uint64)
    n = np.ones(len(v), dtype=np.int64)
    for k in range(1, 10):
        big = v >= np.uint64(1 << (7 * k))
        if not big.any():
            break
        n += big
    return n


def _within(counts: np.ndarray) -> np.ndarray:
    """0, 1, ..., counts[0] - 1, 0, 1, ..., counts[1] - 1, ..."""
    return np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)


def _group_sum(v: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    cs = np.concatenate(([0], np.cumsum(v)))
    return cs[starts + counts] - cs[starts]


def _features(ids, types, tags, n_tags, cmd, cmd_start, n_cmd) -> bytes:
    """The layer's ``features`` fields (tag 2), written as one stream of varints.

    Every part of a feature message is a varint (field keys, lengths, id, type,
    the packed tags and geometry), so the lengths are summed in bulk and the
    whole stream encoded in one pass.
    """
    has_id = ids >= 0
    has_tags = n_tags > 0
    tag_start = np.cumsum(n_tags) - n_tags
    tl = _group_sum(_varint_len(tags), tag_start, n_tags)
    gl = _group_sum(_varint_len(cmd), cmd_start, n_cmd)
    uid = np.where(has_id, ids, 0).astype(np.uint64)
    fl = (has_id * (1 + _varint_len(uid)) + has_tags * (1 + _varint_len(tl) + tl)
          + 2 + 1 + _varint_len(gl) + gl)
    n_tok = 2 + 2 * has_id + has_tags * (2 + n_tags) + 4 + n_cmd
    p = np.cumsum(n_tok) - n_tok
    tok = np.empty(int(n_tok.sum()), dtype=np.uint64)
    tok[p] = 0x12
    tok[p + 1] = fl
    p = p + 2
    tok[p[has_id]] = 0x08
    tok[p[has_id] + 1] = uid[has_id]
    p = p + 2 * has_id
    tok[p[has_tags]] = 0x12
    tok[p[has_tags] + 1] = tl[has_tags]
    tok[np.repeat(p + 2, n_tags) + _within(n_tags)] = tags
    p = p + has_tags * (2 + n_tags)
    tok[p] = 0x18
    tok[p + 1] = types
    tok[p + 2] = 0x22
    tok[p + 3] = gl
    w = _within(n_cmd)
    tok[np.repeat(p + 4, n_cmd) + w] = cmd[np.repeat(cmd_start, n_cmd) + w]
    return _varints(tok)[0].tobytes()
