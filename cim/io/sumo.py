"""Read an Eclipse SUMO road network (``.net.xml``) into road links and nodes.

A SUMO network stores its coordinates in a local plane: *net* coordinates are
projected coordinates (in the projection ``<location projParameter=...>``)
plus ``netOffset``. :func:`read_sumo_net` undoes the offset, reprojects with
pyproj into the twin CRS and returns two GeoDataFrames that conform to the
``road_links`` and ``road_nodes`` feature classes of :mod:`cim.schema`.

What is read, and how:

- **links**: one row per *normal* edge (an ``<edge>`` without ``function``).
  Internal edges (``function="internal"``, the paths across a junction),
  ``crossing`` and ``walkingarea`` edges (pedestrian structures) are skipped;
  the turns through junctions are available from
  :func:`read_sumo_connections`. ``link_id`` is the SUMO edge id, so the
  edge lists of a ``.rou.xml`` route map onto links one to one.

  - ``lanes``: lanes a car may use (lanes that allow only pedestrians and/or
    bicycles are sidewalks or cycle tracks and are not counted), at least 1.
  - ``speed_limit_kmh``: the fastest lane's ``speed`` (m/s) * 3.6.
  - ``length_m``: the mean SUMO lane ``length`` (SUMO measures lanes between
    the junction borders, so this is the drivable length).
  - ``geometry``: the centre line of the carriageway as SUMO's own
    ``sumolib`` builds it: point by point the mean of the first and last lane
    shape when they have the same number of points, else the middle lane's
    shape. Like the lane lengths it stops at the junction borders, so its
    length agrees with ``length_m``; links meet at their nodes only
    topologically (``from_node`` / ``to_node``), not geometrically.
  - ``road_class``: from the edge type: ``highway.primary`` -> ``primary``,
    ``highway.primary_link`` -> ``primary``, ``highway.living_street`` ->
    ``residential``; unknown types fall back to a class from the priority.
  - ``capacity_vph``: lanes * a per-lane capacity by class
    (:data:`LANE_CAPACITY_VPH`): planning values for interrupted urban flow,
    below the HCM 2010 base saturation flow of 1900 pc/h/lane for
    signalised approaches, and about 2000 veh/h/lane on grade-separated
    motorways. ``_link`` ramps get 90 % of their parent class.
  - ``oneway``: always True (SUMO edges are directed; a two-way street is
    two edges, often ``X`` and ``-X``).
- **nodes**: one row per junction that is not ``internal`` (``priority``,
  ``traffic_light``, ``dead_end`` ...); ``kind`` is the junction type and
  ``elevation_m`` its ``z`` (NaN when the net is flat).

Examples
--------
>>> links, nodes = read_sumo_net("../shared/data/chengdu/chengdu.net.xml")  # doctest: +SKIP
>>> len(links), len(nodes)  # doctest: +SKIP
(852, 459)
"""

from __future__ import annotations

import gzip
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np
import pandas as pd

from twin_core.errors import CRSError, ImportFormatError

__all__ = ["read_sumo_net", "read_sumo_connections", "read_sumo_turns", "import_sumo_net", "LANE_CAPACITY_VPH",
           "road_class_of", "TURNS_TABLE"]

#: the table of allowed turns (from_link, to_link, dir) that :func:`import_sumo_net` writes beside road_links
TURNS_TABLE = "road_turns"

#: Planning capacity per lane (veh/h) by road class; see the module docstring.
LANE_CAPACITY_VPH: dict[str, float] = {
    "motorway": 2000.0,
    "trunk": 1900.0,
    "primary": 1800.0,
    "secondary": 1600.0,
    "tertiary": 1400.0,
    "unclassified": 1000.0,
    "residential": 1000.0,
    "service": 600.0,
    "other": 800.0,
}
_LINK_FACTOR = 0.9
_NON_CAR = {"pedestrian", "bicycle"}


def road_class_of(edge_type: str | None, priority: int | None = None) -> tuple[str, bool]:
    """Road class of a SUMO edge type (``highway.primary_link`` -> ``("primary", True)``).

    The second value says whether the edge is a ``_link`` (ramp / slip road).
    An unknown or missing type falls back to a class from the SUMO priority.

    >>> road_class_of("highway.secondary_link")
    ('secondary', True)
    >>> road_class_of(None, 12)
    ('primary', False)
    """
    from cim.schema import ROAD_CLASSES

    if edge_type:
        # "highway.primary" or a composite "highway.primary|railway.tram"
        base = edge_type.split("|")[0].split(".")[-1]
        is_link = base.endswith("_link")
        if is_link:
            base = base[: -len("_link")]
        if base == "living_street":
            base = "residential"
        if base in ROAD_CLASSES:
            return base, is_link
    if priority is None:
        return "other", False
    # netconvert's default OSM type priorities: motorway 14, trunk 13, primary 12,
    # secondary 11, tertiary 10, unclassified 5, residential 3, service 1.
    for threshold, cls in ((14, "motorway"), (13, "trunk"), (12, "primary"), (11, "secondary"), (10, "tertiary"),
                           (4, "unclassified"), (2, "residential")):
        if priority >= threshold:
            return cls, False
    return "service", False


@dataclass
class _Location:
    offset: tuple[float, float]
    proj: str | None


@dataclass
class _Net:
    location: _Location | None = None
    edges: list[dict[str, Any]] = field(default_factory=list)
    junctions: list[dict[str, Any]] = field(default_factory=list)
    connections: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)


def _open(source) -> tuple[IO[bytes], str, bool]:
    """A binary stream over the (possibly gzipped) network, its name, and whether we opened it."""
    if hasattr(source, "read"):
        name = getattr(source, "name", "<stream>")
        head = b""
        if hasattr(source, "peek"):
            head = source.peek(2)[:2]
        elif hasattr(source, "seekable") and source.seekable():
            pos = source.tell()
            head = source.read(2)
            source.seek(pos)
        if head == b"\x1f\x8b":
            return gzip.GzipFile(fileobj=source), str(name), False
        return source, str(name), False
    path = os.fspath(source)
    if not os.path.exists(path):
        raise ImportFormatError(f"SUMO network {path!r} does not exist; give the path of a .net.xml file")
    if os.path.isdir(path):
        raise ImportFormatError(f"SUMO network {path!r} is a folder; give the path of a .net.xml file in it")
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rb"), path, True
    return open(path, "rb"), path, True


def _floats(text: str, what: str, name: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ImportFormatError(f"{name}: {what} {text!r} is not a list of numbers; the file is damaged") from None


def _shape(text: str | None, name: str, what: str) -> np.ndarray | None:
    if not text:
        return None
    try:
        pts = [tuple(float(v) for v in p.split(",")) for p in text.split()]
    except ValueError:
        pts = []
    # each point is x,y or x,y,z (z is dropped), all finite
    if not pts or any(len(p) not in (2, 3) for p in pts) or not np.isfinite([c for p in pts for c in p]).all():
        raise ImportFormatError(f"{name}: {what} shape {text[:60]!r} is not 'x,y x,y ...' (finite numbers); "
                                "the file is damaged")
    arr = np.asarray([p[:2] for p in pts], dtype="float64")
    if arr.shape[0] < 2:
        return None
    return arr


def _parse(source, *, want_edges: bool = True, want_connections: bool = False) -> _Net:
    fh, name, owned = _open(source)
    net = _Net()
    root_seen = False
    try:
        for event, el in ET.iterparse(fh, events=("start", "end")):
            if event == "start":
                if not root_seen:
                    root_seen = True
                    if el.tag != "net":
                        raise ImportFormatError(
                            f"{name} is XML but not a SUMO network: its root element is <{el.tag}>, "
                            "not <net>. Give a .net.xml written by netconvert or netedit"
                        )
                continue
            tag = el.tag
            if tag == "location":
                off = _floats(el.get("netOffset", "0,0"), "netOffset", name)
                if len(off) != 2:
                    raise ImportFormatError(f"{name}: netOffset must be 'dx,dy', got {el.get('netOffset')!r}")
                proj = el.get("projParameter")
                net.location = _Location((off[0], off[1]), None if proj in (None, "", "!") else proj)
            elif tag == "edge" and want_edges:
                func = el.get("function")
                if func:
                    net.skipped[func] = net.skipped.get(func, 0) + 1
                else:
                    lanes = []
                    for lane in el.findall("lane"):
                        lanes.append({
                            "speed": lane.get("speed"),
                            "length": lane.get("length"),
                            "shape": lane.get("shape"),
                            "allow": lane.get("allow"),
                        })
                    net.edges.append({
                        "id": el.get("id"), "from": el.get("from"), "to": el.get("to"), "name": el.get("name"),
                        "priority": el.get("priority"), "type": el.get("type"), "shape": el.get("shape"),
                        "lanes": lanes,
                    })
                el.clear()
            elif tag == "junction" and want_edges:
                if el.get("type") != "internal":
                    net.junctions.append({
                        "id": el.get("id"), "type": el.get("type"), "x": el.get("x"), "y": el.get("y"),
                        "z": el.get("z"),
                    })
                el.clear()
            elif tag == "connection":
                if want_connections:
                    net.connections.append(dict(el.attrib))
                el.clear()
            elif tag in ("tlLogic", "roundabout", "type", "request"):
                el.clear()
    except ET.ParseError as exc:
        if not root_seen:
            raise ImportFormatError(
                f"{name} is not XML ({exc}); give a SUMO .net.xml (optionally gzipped)"
            ) from None
        raise ImportFormatError(
            f"{name} is not well-formed XML ({exc}): the file is truncated or damaged; "
            "copy it again or re-save it with netconvert"
        ) from None
    except (OSError, EOFError) as exc:  # a damaged or cut gzip stream
        raise ImportFormatError(f"{name} cannot be read ({exc}); give an intact .net.xml or .net.xml.gz") from None
    finally:
        if owned:
            fh.close()
    if not root_seen:
        raise ImportFormatError(f"{name} is empty; give a SUMO .net.xml")
    return net


def _transformer(loc: _Location | None, net_crs: Any, crs: Any, name: str):
    from pyproj import CRS, Transformer
    from pyproj.exceptions import CRSError as ProjCRSError

    from cim.crs import resolve_crs

    if net_crs is not None:
        src = resolve_crs(net_crs)
    elif loc is None:
        raise CRSError(
            f"{name} has no <location> element, so its projection is unknown; "
            "name it with net_crs=... (e.g. net_crs='EPSG:32648' for UTM 48N) or rebuild the net with netconvert"
        )
    elif loc.proj is None:
        raise CRSError(
            f"{name} is not georeferenced (<location projParameter=\"!\">); "
            "name the plane its coordinates are in with net_crs=..., or rebuild it from OSM with netconvert"
        )
    else:
        try:
            src = CRS.from_user_input(loc.proj)
        except ProjCRSError as exc:
            raise CRSError(
                f"{name}: projParameter {loc.proj!r} is not a projection pyproj knows ({exc}); "
                "name the projection with net_crs=..."
            ) from None
    dst = resolve_crs(crs)
    return Transformer.from_crs(src, dst, always_xy=True), src, dst


def _check_in_area(xy: np.ndarray, src, dst, name: str) -> None:
    """Refuse a net that its projection places outside the area of the target CRS (grown by a margin, as
    for vector imports): a wrong projParameter / net_crs or netOffset would put the roads far off, distorted."""
    from cim.crs import fmt_box, lonlat_box, meets_area

    aou = dst.area_of_use
    if aou is None or not len(xy):
        return
    box = lonlat_box((*xy.min(axis=0), *xy.max(axis=0)), src)
    if box is None or meets_area(box, aou):
        return
    w, s, e, n = aou.bounds
    raise CRSError(
        f"{name}: its projection ({src.srs}) places the network at lon/lat {fmt_box(box)}, outside the "
        f"area the CRS {dst.to_string()} covers ({aou.name}: lon {w}..{e}, lat {s}..{n}); the net's projParameter "
        "or netOffset is wrong (name its projection with net_crs=...), or the net is of another place"
    )


def _centre_line(edge: dict[str, Any], name: str) -> np.ndarray | None:
    shapes = [_shape(l["shape"], name, f"lane of edge {edge['id']!r}") for l in edge["lanes"]]
    shapes = [s for s in shapes if s is not None]
    if not shapes:
        return _shape(edge["shape"], name, f"edge {edge['id']!r}")
    first, last = shapes[0], shapes[-1]
    if first.shape == last.shape:
        return (first + last) / 2.0
    return shapes[len(shapes) // 2]


def _car_lanes(lanes: list[dict[str, Any]]) -> int:
    n = 0
    for lane in lanes:
        allow = lane["allow"]
        if allow is not None and set(allow.split()) <= _NON_CAR:
            continue
        n += 1
    return max(n, 1)


def read_sumo_net(path, crs: Any = "EPSG:4544", *, net_crs: Any = None):
    """Read a SUMO ``.net.xml`` (or ``.net.xml.gz``) into road links and road nodes.

    Parameters
    ----------
    path : str, PathLike or binary file object
        The network file. Gzipped files are recognised by their magic bytes.
    crs : CRS-like
        The CRS of the result (the twin CRS; default EPSG:4544).
    net_crs : CRS-like, optional
        The projection of the net's coordinates (after removing ``netOffset``),
        for nets whose ``<location>`` is missing or not georeferenced. When
        given it overrides ``projParameter``.

    Returns
    -------
    (links, nodes) : tuple of GeoDataFrame
        Conforming to the ``road_links`` and ``road_nodes`` feature classes,
        in ``crs``. ``links.attrs["skipped"]`` counts the skipped non-normal
        edges by function (``{"internal": 1553}``).

    Raises
    ------
    ImportFormatError
        Not XML, not a ``<net>``, truncated, or an edge without lanes /
        with unknown junctions; a shape or junction position that is not
        finite numbers, a lane speed that is not > 0 or a length < 0.
    CRSError
        The net's projection is missing or unknown, or places the net
        outside the area of ``crs``.

    Examples
    --------
    >>> links, nodes = read_sumo_net("../shared/data/chengdu/chengdu.net.xml")  # doctest: +SKIP
    >>> links.loc[0, ["link_id", "lanes", "speed_limit_kmh", "road_class"]].tolist()  # doctest: +SKIP
    ['-100288855#0', 1, 50.004, 'residential']
    """
    import geopandas as gpd
    import shapely

    from cim.schema import conform

    name = getattr(path, "name", None) or (os.fspath(path) if not hasattr(path, "read") else "<stream>")
    net = _parse(path)
    if not net.edges:
        raise ImportFormatError(
            f"{name} is a SUMO <net> without normal edges; give a network with roads (internal edges alone "
            "do not make a road network)"
        )
    tr, src, dst = _transformer(net.location, net_crs, crs, name)
    dx, dy = net.location.offset if net.location is not None else (0.0, 0.0)

    # nodes
    jx = np.empty(len(net.junctions))
    jy = np.empty(len(net.junctions))
    jz = np.full(len(net.junctions), np.nan)
    for i, j in enumerate(net.junctions):
        try:
            jx[i], jy[i] = float(j["x"]), float(j["y"])
            if j["z"] is not None:
                jz[i] = float(j["z"])
        except (TypeError, ValueError):
            jx[i] = np.nan
        if not (np.isfinite(jx[i]) and np.isfinite(jy[i]) and (j["z"] is None or np.isfinite(jz[i]))):
            raise ImportFormatError(f"{name}: junction {j['id']!r} has no numeric x/y/z "
                                    f"(x={j['x']!r}, y={j['y']!r}, z={j['z']!r}); the file is damaged")
    node_ids = {j["id"] for j in net.junctions}
    node_xy = {j["id"]: (jx[i], jy[i]) for i, j in enumerate(net.junctions)}

    # links
    coords, counts = [], []
    rows = []
    for e in net.edges:
        eid = e["id"]
        if not eid:
            raise ImportFormatError(f"{name}: an <edge> has no id; the file is damaged")
        if not e["lanes"]:
            raise ImportFormatError(f"{name}: edge {eid!r} has no <lane>; the file is damaged or not a .net.xml")
        for end in ("from", "to"):
            if e[end] is None:
                raise ImportFormatError(f"{name}: normal edge {eid!r} has no '{end}' junction")
            if e[end] not in node_ids:
                raise ImportFormatError(
                    f"{name}: edge {eid!r} refers to junction {e[end]!r} which the file does not define; "
                    "the file is truncated or damaged"
                )
        try:
            speeds = [float(l["speed"]) for l in e["lanes"]]
            lengths = [float(l["length"]) for l in e["lanes"]]
        except (TypeError, ValueError):
            raise ImportFormatError(f"{name}: edge {eid!r} has a lane without numeric speed/length") from None
        if not all(np.isfinite(v) and v > 0 for v in speeds) or not all(np.isfinite(v) and v >= 0 for v in lengths):
            raise ImportFormatError(
                f"{name}: edge {eid!r} has a lane with speed {speeds} m/s or length {lengths} m; SUMO speeds are "
                "finite and > 0, lengths finite and >= 0: the file is damaged"
            )
        line = _centre_line(e, name)
        if line is None:
            line = np.array([node_xy[e["from"]], node_xy[e["to"]]])
        coords.append(line)
        counts.append(len(line))
        try:
            prio = int(e["priority"]) if e["priority"] is not None else None
        except ValueError:
            prio = None
        cls, is_link = road_class_of(e["type"], prio)
        nlanes = _car_lanes(e["lanes"])
        cap = nlanes * LANE_CAPACITY_VPH.get(cls, LANE_CAPACITY_VPH["other"]) * (_LINK_FACTOR if is_link else 1.0)
        rows.append({
            "link_id": eid, "from_node": e["from"], "to_node": e["to"], "lanes": nlanes,
            "speed_limit_kmh": max(speeds) * 3.6, "capacity_vph": cap, "road_class": cls, "oneway": True,
            "length_m": float(np.mean(lengths)), "name": e["name"], "priority": prio if prio is not None else 0,
        })

    xy = np.concatenate(coords) if coords else np.empty((0, 2))
    X, Y = tr.transform(xy[:, 0] - dx, xy[:, 1] - dy)
    NX, NY = tr.transform(jx - dx, jy - dy)
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(NX))):
        raise CRSError(f"{name}: some coordinates cannot be transformed to {dst.to_string()}; "
                       "is the net's projParameter right? name it with net_crs=...")
    _check_in_area(np.concatenate([xy, np.column_stack([jx, jy])]) - (dx, dy), src, dst, name)
    idx = np.repeat(np.arange(len(counts)), counts)
    geoms = shapely.linestrings(np.column_stack([X, Y]), indices=idx)
    links = gpd.GeoDataFrame(pd.DataFrame(rows), geometry=geoms, crs=dst)
    links = conform(links, "road_links")
    links.attrs["skipped"] = dict(net.skipped)

    nodes = gpd.GeoDataFrame(
        {
            "node_id": [j["id"] for j in net.junctions],
            "kind": [j["type"] for j in net.junctions],
            "elevation_m": jz,
        },
        geometry=shapely.points(NX, NY),
        crs=dst,
    )
    nodes = conform(nodes, "road_nodes")
    return links, nodes


def read_sumo_connections(path, *, internal: bool = False) -> pd.DataFrame:
    """The turning movements of a SUMO network as a DataFrame.

    One row per ``<connection>`` between two normal edges (lane to lane):
    ``from_edge``, ``to_edge``, ``from_lane``, ``to_lane`` (lane indices),
    ``via`` (the internal lane crossing the junction, or None), ``tl`` (the
    traffic light id or None), ``link_index`` (its signal index, -1 if none),
    ``dir`` (s straight, l/r left/right, L/R partly, t turnaround) and
    ``state`` (the right-of-way code). With ``internal=True`` the connections
    that start on internal lanes are kept too.

    Examples
    --------
    >>> con = read_sumo_connections("../shared/data/chengdu/chengdu.net.xml")  # doctest: +SKIP
    >>> con.groupby(["from_edge", "to_edge"]).ngroups  # doctest: +SKIP
    1433
    """
    name = getattr(path, "name", None) or (os.fspath(path) if not hasattr(path, "read") else "<stream>")
    net = _parse(path, want_edges=False, want_connections=True)
    rows = []
    for c in net.connections:
        f, t = c.get("from"), c.get("to")
        if f is None or t is None:
            raise ImportFormatError(f"{name}: a <connection> lacks from/to; the file is damaged")
        if not internal and (f.startswith(":") or t.startswith(":")):
            continue
        try:
            rows.append({
                "from_edge": f, "to_edge": t, "from_lane": int(c.get("fromLane", 0)),
                "to_lane": int(c.get("toLane", 0)), "via": c.get("via"), "tl": c.get("tl"),
                "link_index": int(c.get("linkIndex", -1)), "dir": c.get("dir"), "state": c.get("state"),
            })
        except ValueError:
            raise ImportFormatError(f"{name}: connection {f}->{t} has a non-integer lane index") from None
    cols = ["from_edge", "to_edge", "from_lane", "to_lane", "via", "tl", "link_index", "dir", "state"]
    return pd.DataFrame(rows, columns=cols)


def read_sumo_turns(path, link_ids=None) -> pd.DataFrame:
    """The allowed turns of a SUMO network, one row per pair of links: ``from_link``, ``to_link`` (edge ids, the
    ``link_id`` of :func:`read_sumo_net`) and ``dir`` (SUMO's direction of the first lane connection: s straight,
    l / r left / right, L / R partly, t turnaround). A link with no row is a dead end, as in SUMO.

    ``link_ids``: keep only turns between these links (the links read; connections of footways, rail and
    other edges :func:`read_sumo_net` skips are dropped).

    Examples
    --------
    >>> turns = read_sumo_turns("../shared/data/chengdu/chengdu.net.xml")  # doctest: +SKIP
    >>> turns.columns.tolist()  # doctest: +SKIP
    ['from_link', 'to_link', 'dir']
    """
    con = read_sumo_connections(path)
    t = con.drop_duplicates(["from_edge", "to_edge"])[["from_edge", "to_edge", "dir"]]
    t = t.rename(columns={"from_edge": "from_link", "to_edge": "to_link"})
    if link_ids is not None:
        keep = pd.Index(pd.unique(np.asarray(link_ids, dtype=object)))
        t = t[t["from_link"].isin(keep) & t["to_link"].isin(keep)]
    t = t.astype({"from_link": str, "to_link": str})
    t["dir"] = t["dir"].fillna("")
    return t.reset_index(drop=True)


def import_sumo_net(store, path, *, links: str = "road_links", nodes: str = "road_nodes", mode: str = "replace",
                    net_crs: Any = None) -> dict[str, int]:
    """Import a SUMO network into a store: links and junctions, reprojected to the store's CRS.

    Both layers and the table of allowed turns (:data:`TURNS_TABLE`,
    ``road_turns``: from_link, to_link, dir, :func:`read_sumo_turns`; the
    traffic engines route by it) are written in one transaction (nothing is
    kept if one fails). Returns the number of features written per layer.

    Examples
    --------
    >>> import tempfile, os
    >>> from cim.store import open_store
    >>> store = open_store(os.path.join(tempfile.mkdtemp(), "t.gpkg"), create=True, crs="EPSG:4544")
    >>> import_sumo_net(store, "../shared/data/chengdu/chengdu.net.xml")  # doctest: +SKIP
    {'road_links': 852, 'road_nodes': 459}
    """
    twin_crs = store.crs
    if twin_crs is None:
        raise CRSError(f"the store {store.uri} has no CRS; create it with crs='EPSG:4544'")
    if hasattr(path, "read"):  # a stream is read twice (edges, then connections): once into memory
        import io

        path = io.BytesIO(path.read())
    link_gdf, node_gdf = read_sumo_net(path, twin_crs, net_crs=net_crs)
    if hasattr(path, "seek"):
        path.seek(0)
    turns = read_sumo_turns(path, link_gdf["link_id"])
    from cim.io.vector import _replace_losses
    from twin_core.errors import TwinWarning, twin_warn

    with store.transaction():
        # what a replace takes from the scenario edits that close or change these links, said once it is written
        lost = _replace_losses(store, links, link_gdf) + _replace_losses(store, nodes, node_gdf) \
            if mode == "replace" else []
        n_links = store.write_layer(links, link_gdf, mode=mode)
        n_nodes = store.write_layer(nodes, node_gdf, mode=mode)
        if links == "road_links":  # the turns of the twin's road network (the traffic adapter reads them)
            store.write_table(TURNS_TABLE, turns, mode=mode if store.has_table(TURNS_TABLE) else "replace")
    for message in lost:
        twin_warn(message, TwinWarning, stacklevel=2)
    return {links: int(n_links), nodes: int(n_nodes)}
