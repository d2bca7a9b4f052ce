"""Mapbox vector tiles (MVT) of any layer, from either store.

- PostGIS base layers: one ``ST_AsMVT`` query per tile (identifiers composed
  with ``psycopg.sql``, values bound).
- GeoPackage layers, and any layer as of a scenario that edits it: the layer
  is read once, projected to Web Mercator and indexed (STRtree); a tile is
  clipped, snapped to the 4096 grid and encoded all at once with NumPy
  (``viewer._mvt``); ``mapbox-vector-tile`` repairs the rare polygon that
  snapping leaves invalid, as it did when it encoded every feature. The
  attributes are factorised column by column when the layer is read (a
  ``viewer._mvt.Properties`` table), so a tile only gathers its rows.

Only a few attributes travel in the tiles (the id and what the map colours
by); the page fetches the rest on click. That keeps the medium city's
buildings at a few tens of bytes each.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from itertools import repeat

import numpy as np

from viewer._mvt import Properties, exact_key
from viewer.geo import bounds_to, reproject_geoms, tile_bounds_3857

__all__ = ["TILE_FIELDS", "tile_fields", "encode_frame_tile", "EXTENT", "MAX_ZOOM", "MIN_ZOOM", "TileSource", "prewarm"]

EXTENT = 4096
BUFFER = 64
MIN_ZOOM = 0
MAX_ZOOM = 22
_LOADS = re.compile(r"(^|_)(id|vc|v_c|voc|volume|flow|load|speed|capacity|depth|density|closed)($|_)", re.I)
#: float attributes sent as whole numbers in tiles
ROUND_TO_INT = ("height_m",)
_TENTH = Decimal("0.1")

#: attributes carried in the tiles per known layer (the rest comes on click)
TILE_FIELDS: dict[str, tuple[str, ...]] = {
    "buildings": ("building_id", "height_m", "use"),
    "road_links": ("link_id", "road_class", "lanes"),
    "parcels": ("parcel_id", "zoning"),
    "water": ("water_id", "kind"),
    "areas": ("area_id", "kind"),
    "road_nodes": ("node_id",),
    "pois": ("poi_id", "kind"),
    "sensors": ("sensor_id", "kind"),
}


def tile_fields(layer: str, columns: list[str], requested: list[str] | None = None) -> list[str]:
    """The attribute columns a tile of ``layer`` carries."""
    if requested:
        unknown = [c for c in requested if c not in columns]
        if unknown:
            from twin_core.errors import FieldError

            raise FieldError(f"layer {layer!r} has no field(s) {unknown} to put in tiles; it has {columns}")
        return list(requested)
    if layer in TILE_FIELDS:
        return [c for c in TILE_FIELDS[layer] if c in columns]
    # result layers: ids and the loads the map colours by first, then the rest, at most 12
    first = [c for c in columns if _LOADS.search(c)]
    return (first + [c for c in columns if c not in first])[:12]


@dataclass
class ProjectedFrame:
    """A layer projected to EPSG:3857 with an STRtree, ready for tiling.

    ``props`` holds the attributes that travel in tiles, one row per feature
    (a list of dicts is turned into the table).
    """

    geoms: np.ndarray
    props: Properties
    tree: object
    layer: str

    def __post_init__(self) -> None:
        if not isinstance(self.props, Properties):
            self.props = Properties.from_records(self.props)


def project_frame(gdf, crs: str, layer: str, fields: list[str]) -> ProjectedFrame:
    import shapely

    geoms = reproject_geoms(gdf.geometry.values, crs, "EPSG:3857") if len(gdf) else np.empty(0, dtype=object)
    props = Properties.from_columns({k: _tile_column(k, gdf[k]) for k in fields}, len(gdf))
    return ProjectedFrame(np.asarray(geoms, dtype=object), props, shapely.STRtree(geoms), layer)


def _tile_column(key: str, col):
    """A column's values as tiles carry them (see :func:`_mvt_value`), factorised: codes and uniques.

    Numbers, bools and strings are factorised with NumPy / pandas and only the
    distinct values converted; other columns value by value, as
    ``DataFrame.to_dict("records")`` gives them (``pd.NA`` as None).
    """
    import pandas as pd

    try:  # what DataFrame.to_dict("records") boxes values with (private: a fallback if pandas moves it)
        from pandas.core.dtypes.cast import maybe_box_native
    except ImportError:  # pragma: no cover
        def maybe_box_native(v):
            return v.item() if isinstance(v, np.generic) else v

    dtype = col.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "iufb":
        a = col.to_numpy()
        if dtype.kind == "f":  # by bit pattern: -0.0 and 0.0 apart, as Python values would be
            a = np.ascontiguousarray(a, dtype=np.float64).view(np.int64)
        uniq, codes = np.unique(a, return_inverse=True)
        if dtype.kind == "f":
            uniq = uniq.view(np.float64)
        return codes.reshape(-1), [_mvt_value(key, v) for v in uniq.tolist()]
    boxed = dtype == object or not isinstance(dtype, np.dtype)
    if boxed and pd.api.types.infer_dtype(col, skipna=True) in ("string", "empty"):
        # None, NaN and pd.NA are left out here; another null (NaT ...) value by value below, left out as well
        if all(v is None or v is pd.NA or isinstance(v, float) for v in col[col.isna().to_numpy()].tolist()):
            codes, uniq = pd.factorize(col, use_na_sentinel=True)
            return np.asarray(codes, dtype=np.int64), [_mvt_value(key, v) for v in list(uniq)]
    seen: dict = {}
    values = map(maybe_box_native, col) if boxed else col
    codes = [seen.setdefault(exact_key(v), len(seen)) for v in map(_mvt_value, repeat(key), values)]
    return np.asarray(codes, dtype=np.int64), [k[1] for k in seen]


def _mvt_value(key: str, v):
    """One attribute value as tiles carry it (None: left out)."""
    if v is None:
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float):
        if v != v:  # NaN
            return None
        # heights to the metre (an integer varint instead of an 8-byte double; exact values come on
        # click), other numbers to one decimal so equal values share one entry of the tile's table
        if key in ROUND_TO_INT:
            return int(round(v))
        return round_like_postgis(v)
    if isinstance(v, (bool, int, str)):
        return v
    if _is_null(v):  # NaT, pd.NA, numpy's NaT: no value, as PostGIS leaves out a NULL (not the text "NaT")
        return None
    return str(v)


def _is_null(v) -> bool:
    """Whether ``v`` is a scalar missing value of a type tiles would otherwise write as text."""
    import pandas as pd

    try:
        return bool(pd.isna(v)) if pd.api.types.is_scalar(v) else False
    except (TypeError, ValueError):
        return False


def round_like_postgis(v: float) -> float:
    """``v`` to one decimal as PostGIS tiles do (``round(v::numeric, 1)``: the 15-digit decimal, halves away
    from zero), so both stores put the same numbers in tiles; Python's ``round`` works on the binary value.

    Examples
    --------
    >>> round(0.15, 1), round_like_postgis(0.15), round_like_postgis(-0.25), round_like_postgis(2.04)
    (0.1, 0.2, -0.3, 2.0)
    """
    d = Decimal(format(v, ".15g"))
    if not d.is_finite() or d.adjusted() >= 14:  # no tenths among 15 digits (and beyond quantize's range)
        return float(d)
    return float(d.quantize(_TENTH, rounding=ROUND_HALF_UP))


def encode_frame_tile(frame: ProjectedFrame, z: int, x: int, y: int) -> bytes:
    """Encode one tile of a projected frame (empty bytes when nothing falls in it).

    The features are clipped to the tile and its buffer, snapped to the
    4096 grid (see :func:`_snap_to_grid`) and encoded all at once by
    :func:`viewer._mvt.encode_layer`.
    """
    from viewer._mvt import encode_layer

    g, idx = _tile_geometries(frame, z, x, y)
    if len(idx) == 0:
        return b""
    g = _snap_to_grid(g)
    return encode_layer(frame.layer, g, idx + 1, frame.props.take(idx), EXTENT)


def _tile_geometries(frame: ProjectedFrame, z: int, x: int, y: int):
    """The frame's geometries near tile ``z/x/y`` in tile coordinates (y down), clipped to the buffer,
    and their row numbers (ascending); empty ones left out."""
    import shapely

    xmin, ymin, xmax, ymax = tile_bounds_3857(z, x, y)
    size = xmax - xmin
    pad = size * BUFFER / EXTENT
    idx = frame.tree.query(shapely.box(xmin - pad, ymin - pad, xmax + pad, ymax + pad))
    if len(idx) == 0:
        return np.empty(0, dtype=object), np.empty(0, dtype=np.intp)
    idx = np.sort(idx)
    scale = EXTENT / size

    def to_tile(xy: np.ndarray) -> np.ndarray:
        return np.column_stack([(xy[:, 0] - xmin) * scale, (ymax - xy[:, 1]) * scale])

    g = shapely.transform(frame.geoms[idx], to_tile)
    g = shapely.clip_by_rect(g, -BUFFER, -BUFFER, EXTENT + BUFFER, EXTENT + BUFFER)
    keep = ~shapely.is_empty(g) & ~shapely.is_missing(g)
    return g[keep], idx[keep]


#: a valid polygon whose vertices all lie at least this far (grid units) from any segment not ending at
#: them (its minimum clearance) comes out of snap rounding as its rounded vertices: a rounded vertex is
#: within 0.5 * sqrt(2) of the vertex and its hot pixel within 0.5 * sqrt(2) of that, so no other segment
#: reaches the pixel and nothing is noded, merged or collapsed
_SNAP_CLEARANCE = 1.5


def _snap_to_grid(g: np.ndarray) -> np.ndarray:
    """Geometries ready for the 4096 grid, as GEOS's snap rounding (``shapely.set_precision``) makes them.

    Most polygons are valid and far from collapsing (their minimum clearance
    is at least ``_SNAP_CLEARANCE``): snap rounding moves only their vertices,
    to the nearest grid point, which the encoder does, so they pass unchanged.
    The rest (and lines, points) go through ``shapely.set_precision``; polygons
    that come out invalid are repaired as ``mapbox_vector_tile`` did
    (pyclipper, then dropped after five tries). An invalid input that GEOS
    cannot reduce (the former encoder failed the whole tile) has its vertices
    rounded and is repaired the same way.
    """
    import shapely

    types = shapely.get_type_id(g)
    poly = np.nonzero((types == 3) | (types == 6))[0]
    fast = np.zeros(len(g), dtype=bool)
    fast[poly] = shapely.is_valid(g[poly])
    poly = poly[fast[poly]]
    fast[poly] = shapely.minimum_clearance(g[poly]) >= _SNAP_CLEARANCE
    slow = np.nonzero(~fast)[0]
    if len(slow) == 0:
        return g
    g = g.copy()
    try:
        s = shapely.set_precision(g[slow], 1.0)
    except shapely.errors.GEOSException:  # an invalid input the precision reducer cannot node
        s = np.array([_reduce_one(one) for one in g[slow]], dtype=object)
    st = shapely.get_type_id(s)
    bad = ((st == 3) | (st == 6)) & ~shapely.is_empty(s) & ~shapely.is_valid(s)
    for j in np.nonzero(bad)[0]:
        s[j] = _repair(s[j])
    g[slow] = s
    return g


def _reduce_one(geom):
    """``shapely.set_precision`` of one geometry, or its vertices rounded when GEOS gives up on it
    (the repair below then makes a polygon valid)."""
    import shapely

    try:
        return shapely.set_precision(geom, 1.0)
    except shapely.errors.GEOSException:
        return shapely.set_precision(geom, 1.0, mode="pointwise")


def _repair(shape):
    """An invalid grid polygon made valid and oriented as ``mapbox_vector_tile.encode`` did, or None."""
    from mapbox_vector_tile.encoder import VectorTile
    from mapbox_vector_tile.utils import get_encode_options

    vt = VectorTile()
    vt.layer_options = get_encode_options(layer_options=None, default_options=_REFERENCE_OPTIONS)
    return vt.enforce_winding_order(shape)


def _encode_frame_tile_reference(frame: ProjectedFrame, z: int, x: int, y: int) -> bytes:
    """The former encoder (``mapbox_vector_tile.encode`` feature by feature), kept to check and time against."""
    import mapbox_vector_tile
    import shapely

    g, idx = _tile_geometries(frame, z, x, y)
    g = shapely.set_precision(g, 1.0)
    keep = ~shapely.is_empty(g) & ~shapely.is_missing(g)
    records = frame.props.records()
    feats = [
        {"geometry": geom, "properties": records[i], "id": int(i) + 1}
        for geom, i in zip(g[keep], idx[keep])
    ]
    if not feats:
        return b""
    return mapbox_vector_tile.encode({"name": frame.layer, "features": feats}, default_options=_REFERENCE_OPTIONS)


def _drop_invalid(shape):
    from mapbox_vector_tile.encoder import on_invalid_geometry_make_valid

    return on_invalid_geometry_make_valid(shape)


_REFERENCE_OPTIONS = {"y_coord_down": True, "extents": EXTENT, "check_winding_order": True,
                      "on_invalid_geometry": _drop_invalid}


def postgis_tile(store, layer: str, fields: list[str], z: int, x: int, y: int) -> bytes:
    """``ST_AsMVT`` of a base layer straight from PostGIS."""
    from psycopg import sql

    srid = store.srid
    types = store.layer_info(layer)["columns"]

    def col(c: str):
        if types.get(c, "").startswith("float"):
            if c in ROUND_TO_INT:
                return sql.SQL(", round(t.{0})::integer AS {0}").format(sql.Identifier(c))
            return sql.SQL(", round(t.{0}::numeric, 1)::float8 AS {0}").format(sql.Identifier(c))
        return sql.SQL(", t.{}").format(sql.Identifier(c))

    cols = sql.SQL("").join(col(c) for c in fields)
    q = sql.SQL(
        "WITH env AS (SELECT ST_TileEnvelope(%(z)s, %(x)s, %(y)s) AS e), "
        "q AS (SELECT t.fid AS mvt_id, ST_AsMVTGeom(ST_Transform(t.geom, 3857), env.e, %(ext)s, %(buf)s, true) AS mvtgeom{cols} "
        "FROM {tbl} t, env WHERE t.geom && ST_Transform(ST_Expand(env.e, %(pad)s), %(srid)s)) "
        "SELECT ST_AsMVT(q.*, %(name)s, %(ext)s, 'mvtgeom', 'mvt_id') FROM q WHERE q.mvtgeom IS NOT NULL"
    ).format(cols=cols, tbl=sql.Identifier(store.schema, layer))
    xmin, ymin, xmax, ymax = tile_bounds_3857(z, x, y)
    pad = (xmax - xmin) * BUFFER / EXTENT
    with store.conn.cursor() as cur:
        cur.execute(q, {"z": z, "x": x, "y": y, "ext": EXTENT, "buf": BUFFER, "pad": pad, "srid": srid, "name": layer})
        row = cur.fetchone()
    return bytes(row[0]) if row and row[0] else b""


class TileSource:
    """Tiles of the twin's layers as of a scenario, with projected frames cached."""

    def __init__(self, state) -> None:
        self.state = state
        self._build_locks: dict = {}
        self._lock = threading.Lock()

    def frame(self, layer: str, scenario: str, fields: list[str]) -> ProjectedFrame:
        key = (layer, scenario, tuple(fields))
        st = self.state
        with st.frames_lock:
            fr = st.frames.get(key)
            if fr is not None:
                return fr
        with self._lock:
            lk = self._build_locks.setdefault(key, threading.Lock())
        with lk:  # one build per key even under concurrent requests
            with st.frames_lock:
                fr = st.frames.get(key)
            if fr is None:
                gdf = st.twin.layer(layer, scenario=scenario, columns=fields or None)
                fr = project_frame(gdf, st.twin.crs, layer, fields)
                with st.frames_lock:
                    st.frames[key] = fr
        return fr

    def cached_tile(self, layer: str, scenario: str, fields: list[str], z: int, x: int, y: int) -> bytes:
        key = (layer, scenario, tuple(fields), z, x, y)
        return self.state.tiles.get_or_make(key, lambda: self.tile(layer, scenario, fields, z, x, y))

    def tile(self, layer: str, scenario: str, fields: list[str], z: int, x: int, y: int) -> bytes:
        st = self.state
        raw = st.store.raw
        if raw.kind == "postgis" and not _edits_layer(st, scenario, layer):
            with st.lock:
                return postgis_tile(raw, layer, fields, z, x, y)
        return encode_frame_tile(self.frame(layer, scenario, fields), z, x, y)

    def layer_bounds_3857(self, layer: str) -> tuple[float, float, float, float] | None:
        info = self.state.store.layer_info(layer)
        if not info.get("bounds"):
            return None
        return bounds_to(info["bounds"], self.state.twin.crs, "EPSG:3857")


def _edits_layer(state, scenario: str, layer: str) -> bool:
    if scenario in (None, "base"):
        return False
    return ("layer", layer) in state.twin.scenario(scenario).touched()


def city_tiles(bounds_wgs84, z: int) -> list[tuple[int, int, int]]:
    """XYZ tiles at zoom ``z`` covering lon/lat bounds."""
    import math

    w, s, e, n = bounds_wgs84
    k = 2 ** z

    def xy(lon, lat):
        lat = max(min(lat, 85.05), -85.05)
        return (min(int((lon + 180) / 360 * k), k - 1),
                min(int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * k), k - 1))

    x0, y0 = xy(w, n)
    x1, y1 = xy(e, s)
    return [(z, x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]


def prewarm(state, layer: str = "buildings", zooms=(14, 15), max_tiles: int = 200) -> int:
    """Encode the city's tiles of ``layer`` at ``zooms`` into the cache (run in the background at start)."""
    from viewer.geo import to_wgs84

    info = state.layer_info(layer)
    if info is None or not info.get("bounds"):
        return 0
    fields = tile_fields(layer, list(info["columns"]))
    bounds = to_wgs84(info["bounds"], state.twin.crs)
    done = 0
    for z in zooms:
        for t in city_tiles(bounds, z)[:max_tiles]:
            if getattr(state, "closing", False):
                return done
            state.tile_source.cached_tile(layer, "base", fields, *t)
            done += 1
    return done
