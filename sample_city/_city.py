"""The generator of the Chengdu-like sample city (see :func:`build`)."""

from __future__ import annotations

import gzip
import io
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd
import shapely

from sample_city import _geometry as geo
from sample_city import _terrain as ter

CRS = "EPSG:4544"
TIMEZONE = "Asia/Shanghai"
SIZES = ("small", "medium", "large")
ATTRIBUTION = ("Map data (c) OpenStreetMap contributors, ODbL; network from GitHub "
               "Alexia0806/chengdu-sumo-benchmark-config")

#: Resolution of the DEM and Manning rasters (m) by size.
DEM_RES = {"small": 5.0, "medium": 5.0, "large": 5.0}
#: Large = the medium city tiled side by side, columns x rows.
LARGE_TILES = (4, 3)
SMALL_HALF_M = 500.0
PAD_M = 60.0
LANE_WIDTH_M = 3.5
SIDEWALK_M = 3.0
LOCAL_STREET_M = 12.0
RIVER_GREENWAY_M = 15.0
STOREY_M = 3.0

#: Zoning codes and their planning conditions (the parcels' rules).
ZONING: dict[str, dict[str, Any]] = {
    #       main use        max h    FAR   coverage setback green
    "C2": dict(use="office", max_height_m=200.0, max_far=8.0, max_coverage=0.50, min_setback_m=6.0,
               min_green_ratio=0.20, parcel_m2=5000.0),
    "C1": dict(use="commercial", max_height_m=150.0, max_far=6.0, max_coverage=0.55, min_setback_m=4.0,
               min_green_ratio=0.20, parcel_m2=6000.0),
    "R3": dict(use="residential", max_height_m=100.0, max_far=4.0, max_coverage=0.30, min_setback_m=6.0,
               min_green_ratio=0.30, parcel_m2=9000.0),
    "R2": dict(use="residential", max_height_m=60.0, max_far=2.5, max_coverage=0.35, min_setback_m=4.0,
               min_green_ratio=0.30, parcel_m2=7000.0),
    "M1": dict(use="industrial", max_height_m=24.0, max_far=1.5, max_coverage=0.60, min_setback_m=4.0,
               min_green_ratio=0.15, parcel_m2=12000.0),
    "P1": dict(use="public", max_height_m=60.0, max_far=2.5, max_coverage=0.35, min_setback_m=6.0,
               min_green_ratio=0.35, parcel_m2=15000.0),
    "G1": dict(use="public", max_height_m=12.0, max_far=0.2, max_coverage=0.05, min_setback_m=8.0,
               min_green_ratio=0.65, parcel_m2=60000.0),
}
_RULE_COLS = ["max_height_m", "max_far", "max_coverage", "min_setback_m", "min_green_ratio"]


# ----------------------------------------------------------------------------------------- the city

@dataclass(eq=False)
class SampleCity(Mapping):
    """A built sample city: ``city["buildings"]`` (GeoDataFrames) and ``city["dem"]`` (Rasters).

    Iterating yields the layer names, then the raster names. ``meta()`` is the
    twin metadata to store with it.
    """

    size: str
    seed: int
    extent: tuple[float, float, float, float]
    centre: tuple[float, float]
    layers: dict[str, Any] = field(default_factory=dict)
    rasters: dict[str, Any] = field(default_factory=dict)
    crs: str = CRS
    aux: dict[str, Any] = field(default_factory=dict, repr=False)  # generator internals (street mask ...)
    tables: dict[str, Any] = field(default_factory=dict, repr=False)  # plain tables: road_turns (allowed turns)

    @property
    def name(self) -> str:
        return f"Sample Chengdu ({self.size}, seed {self.seed})"

    def __getitem__(self, key: str):
        if key in self.layers:
            return self.layers[key]
        if key in self.rasters:
            return self.rasters[key]
        raise KeyError(f"the sample city has no layer or raster {key!r}; it has {list(self)}")

    def __iter__(self) -> Iterator[str]:
        yield from self.layers
        yield from self.rasters

    def __len__(self) -> int:
        return len(self.layers) + len(self.rasters)

    def meta(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "crs": self.crs,
            "timezone": TIMEZONE,
            "extent": [float(v) for v in self.extent],
            "sample_size": self.size,
            "sample_seed": int(self.seed),
            "attribution": ATTRIBUTION,
        }

    def __repr__(self) -> str:
        parts = [f"{k}={len(v)}" for k, v in self.layers.items()]
        parts += [f"{k}={v.shape[0]}x{v.shape[1]}" for k, v in self.rasters.items()]
        return f"<SampleCity {self.size} seed={self.seed} " + " ".join(parts) + ">"


# ----------------------------------------------------------------------------------------- roads

def _network():
    """Links, junctions and allowed turns (from_link, to_link, dir) of the Chengdu network."""
    from cim.io.sumo import read_sumo_net, read_sumo_turns

    with resources.files("sample_city").joinpath("data/chengdu.net.xml.gz").open("rb") as fh:
        with gzip.GzipFile(fileobj=fh) as gz:
            data = gz.read()
    links, nodes = read_sumo_net(io.BytesIO(data), crs=CRS)
    return links, nodes, read_sumo_turns(io.BytesIO(data), links["link_id"])


def _snap(v: float, res: float, up: bool) -> float:
    return (math.ceil(v / res) if up else math.floor(v / res)) * res


def _road_surface(links, nodes):
    """Road surface (carriageways + sidewalks, junctions filled) as one polygon."""
    nxy = nodes.set_index("node_id").geometry
    a = shapely.get_coordinates(nxy.loc[links.from_node].to_numpy())
    b = shapely.get_coordinates(nxy.loc[links.to_node].to_numpy())
    coords = shapely.get_coordinates(links.geometry.to_numpy())
    counts = shapely.get_num_coordinates(links.geometry.to_numpy())
    # extend each centre line to its junction centres, so junction areas are covered
    parts, idx = [], []
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    for i, (s, c) in enumerate(zip(starts, counts)):
        parts.append(a[i:i + 1])
        parts.append(coords[s:s + c])
        parts.append(b[i:i + 1])
        idx.append(np.full(c + 2, i))
    lines = shapely.linestrings(np.concatenate(parts), indices=np.concatenate(idx))
    half = links.lanes.to_numpy() * LANE_WIDTH_M / 2.0 + SIDEWALK_M
    return shapely.union_all(shapely.buffer(lines, half, quad_segs=3)), lines


# ----------------------------------------------------------------------------------------- build

def build(size: str = "small", seed: int = 0, progress: Callable[[float, float], None] | None = None) -> SampleCity:
    """Build the Chengdu-like sample city.

    Parameters
    ----------
    size : {"small", "medium", "large"}
        ``small``: a 1 km x 1 km crop of the centre (tests, seconds);
        ``medium``: the whole network area, about 3.8 km x 3.5 km, >= 10,000
        buildings (the demo); ``large``: the medium city tiled 4 x 3 side by
        side, >= 100,000 buildings and a DEM of >= 4 million cells (benchmarks).
    seed : int
        The same seed builds the same city, bit for bit.
    progress : callable(done, total), optional

    Returns
    -------
    SampleCity
        GeoDataFrames for every feature class of :data:`cim.schema.FEATURE_CLASSES`
        and the rasters ``dem`` and ``manning``, all in EPSG:4544.

    Examples
    --------
    >>> city = build("small", seed=0)
    >>> sorted(city.layers)
    ['areas', 'buildings', 'parcels', 'pois', 'road_links', 'road_nodes', 'sensors', 'water']
    >>> city["dem"].crs, city["dem"].data.dtype.name
    ('EPSG:4544', 'float32')
    """
    from twin_core.errors import ParameterError

    if size not in SIZES:
        raise ParameterError(f"size must be one of {list(SIZES)}, not {size!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ParameterError(f"seed must be a non-negative integer, not {seed!r}")
    seed = int(seed)
    report = progress or (lambda done, total: None)
    if size == "large":
        base = _build_one("medium", seed, lambda d, t: report(0.6 * d / t, 1.0))
        city = _tile(base, LARGE_TILES, seed, lambda d, t: report(0.6 + 0.4 * d / t, 1.0))
    else:
        city = _build_one(size, seed, report)
    report(1.0, 1.0)
    return city


def _build_one(size: str, seed: int, report) -> SampleCity:
    import geopandas as gpd

    from cim.raster import Raster
    from cim.schema import conform

    res = DEM_RES[size]
    links_all, nodes_all, turns_all = _network()
    nx0, ny0, nx1, ny1 = links_all.total_bounds
    world = (_snap(nx0 - PAD_M, res, False), _snap(ny0 - PAD_M, res, False),
             _snap(nx1 + PAD_M, res, True), _snap(ny1 + PAD_M, res, True))
    centre = (_snap((nx0 + nx1) / 2, res, False), _snap((ny0 + ny1) / 2, res, False))
    if size == "small":
        extent = (centre[0] - SMALL_HALF_M, centre[1] - SMALL_HALF_M, centre[0] + SMALL_HALF_M,
                  centre[1] + SMALL_HALF_M)
    else:
        extent = world
    box = shapely.box(*extent)
    report(0.05, 1.0)

    # roads: links that touch the extent, and the junctions they join
    keep = shapely.intersects(links_all.geometry.to_numpy(), box)
    links = links_all[keep].reset_index(drop=True)
    used = set(links.from_node) | set(links.to_node)
    nodes = nodes_all[nodes_all.node_id.isin(used)].reset_index(drop=True)
    kept = set(links.link_id)  # the turns between the links kept (a link cut off at the edge is a dead end)
    turns = turns_all[turns_all.from_link.isin(kept) & turns_all.to_link.isin(kept)].reset_index(drop=True)
    surface, ext_lines = _road_surface(links, nodes)

    # river
    river_line = ter.river_centreline(world, seed)
    river_poly = shapely.intersection(river_line.buffer(ter.RIVER_WIDTH_M / 2, quad_segs=4), box)
    corridor = river_line.buffer(ter.RIVER_WIDTH_M / 2 + RIVER_GREENWAY_M, quad_segs=4)
    report(0.1, 1.0)

    # blocks between roads, cut by local streets
    land = shapely.difference(box, shapely.union(surface, corridor))
    blocks = shapely.get_parts(land)
    blocks = blocks[shapely.area(blocks) >= 400.0]
    rng_blocks = np.random.default_rng([seed, 1])
    blocks, _ = geo.split_polygons(blocks, 45000.0, rng_blocks, gap=LOCAL_STREET_M, min_area=400.0)
    blocks = _sorted(blocks)
    report(0.2, 1.0)

    # zoning by block; the plaza is the block nearest the centre of a suitable size
    bc = shapely.get_coordinates(shapely.point_on_surface(blocks))
    r = np.hypot(bc[:, 0] - centre[0], bc[:, 1] - centre[1])
    barea = shapely.area(blocks)
    zoning = _zone_blocks(r, barea, np.random.default_rng([seed, 2]))
    cand = np.flatnonzero((barea >= 8000) & (barea <= 60000))
    plaza_block = int(cand[np.argmin(r[cand])]) if len(cand) else int(np.argmin(r))
    zoning[plaza_block] = "G1"
    _ensure_kinds(zoning, r, barea, plaza_block)

    # parcels
    rng_parcels = np.random.default_rng([seed, 3])
    targets = np.array([ZONING[z]["parcel_m2"] for z in zoning]) * rng_parcels.uniform(0.7, 1.3, len(zoning))
    targets[plaza_block] = np.inf
    parcels, pblock = geo.split_polygons(blocks, targets, rng_parcels, gap=0.0, min_area=150.0)
    order = np.lexsort((pblock,))
    parcels, pblock = parcels[order], pblock[order]
    pzone = zoning[pblock]
    is_plaza = pblock == plaza_block
    report(0.3, 1.0)

    # P1 parcels are schools or hospitals
    rng_use = np.random.default_rng([seed, 4])
    p1 = np.flatnonzero(pzone == "P1")
    kind = np.array([None] * len(parcels), dtype=object)
    if len(p1):
        kind[p1] = np.where(rng_use.uniform(size=len(p1)) < 0.3, "hospital", "school")
        if not (kind[p1] == "hospital").any():
            kind[p1[np.argmax(shapely.area(parcels[p1]))]] = "hospital"
        if not (kind[p1] == "school").any() and len(p1) > 1:
            kind[p1[np.argmin(shapely.area(parcels[p1]))]] = "school"

    # buildings
    pc = shapely.get_coordinates(shapely.centroid(parcels))
    angles = geo.road_angles(pc, ext_lines, 80.0, geo.envelope_angles(parcels))
    pr = np.hypot(pc[:, 0] - centre[0], pc[:, 1] - centre[1])
    b = _place_buildings(parcels, pzone, kind, is_plaza, angles, pr, np.random.default_rng([seed, 5]),
                         lambda d, t: report(0.3 + 0.4 * d / t, 1.0))
    _break_rules(b, parcels, pzone, np.random.default_rng([seed, 6]))
    report(0.7, 1.0)

    # rasters
    # streets: every cell outside the blocks and the river corridor (network roads and local streets)
    road_mask = ~ter.mask_of(blocks, extent, res) & ~ter.mask_of([corridor], extent, res)
    dem = ter.dem_array(extent, res, centre, seed, [river_line], road_mask)
    transform, _ = ter.grid(extent, res)
    green = list(parcels[(pzone == "G1") & ~is_plaza]) + [shapely.intersection(corridor, box)]
    manning = ter.manning_raster(extent, res, yards=blocks, green=green, plaza=[blocks[plaza_block]],
                                 water=[river_poly], buildings=b["geometry"])
    report(0.8, 1.0)

    # layers
    ground = _sample(Raster(dem, transform, CRS), shapely.centroid(np.asarray(b["geometry"], dtype=object)))
    nb = len(b["geometry"])
    storeys = np.asarray(b["storeys"], dtype="int64")
    buildings = gpd.GeoDataFrame({
        "building_id": [f"B{i:06d}" for i in range(nb)],
        "height_m": np.round(np.asarray(b["height"]), 2),
        "storeys": storeys,
        "use": b["use"],
        "year": np.asarray(b["year"], dtype="int64"),
        "ground_elev_m": np.round(ground, 3),
        "lod": np.ones(nb, dtype="int64"),
        "source_id": [f"sample_city:{seed}:{size}:{i}" for i in range(nb)],
        "gfa_m2": np.round(shapely.area(np.asarray(b["geometry"], dtype=object)) * storeys, 1),
        "parcel_id": [f"P{int(p):05d}" for p in b["parcel"]],
    }, geometry=_multi(b["geometry"]), crs=CRS)
    parcels_gdf = gpd.GeoDataFrame({
        "parcel_id": [f"P{i:05d}" for i in range(len(parcels))],
        "zoning": pzone,
        **{c: [ZONING[z][c] for z in pzone] for c in _RULE_COLS},
    }, geometry=_multi(parcels), crs=CRS)
    water_bed = ter.river_bed(shapely.get_coordinates(shapely.point_on_surface(river_poly))[None, 0], centre)
    water = gpd.GeoDataFrame({
        "water_id": ["W001"], "kind": ["river"], "name": ["Jin River (sample)"],
        "normal_level_m": [round(float(water_bed[0]) + ter.RIVER_NORMAL_DEPTH_M, 3)],
    }, geometry=_multi([river_poly]), crs=CRS)

    pois, stations = _pois(parcels, kind, pzone, is_plaza, buildings, links, nodes, box, centre)
    sensors = _sensors(extent, river_line, box, links, np.random.default_rng([seed, 7]),
                       obstacles=np.concatenate([np.asarray(b["geometry"], dtype=object), [river_poly]]))
    areas = _areas(blocks[plaza_block], stations, extent)
    report(0.9, 1.0)

    layers = {
        "buildings": buildings, "road_links": links, "road_nodes": nodes, "parcels": parcels_gdf,
        "water": water, "pois": pois, "sensors": sensors, "areas": areas,
    }
    layers = {k: conform(v, k) for k, v in layers.items()}
    rasters = {
        "dem": Raster(dem, transform, CRS, nodata=None, unit="m"),
        "manning": Raster(manning, transform, CRS, nodata=None, unit="s/m^(1/3)"),
    }
    return SampleCity(size, seed, tuple(float(v) for v in extent), centre, layers, rasters,
                      aux={"street_mask": road_mask}, tables={"road_turns": turns})


def _sample(raster, points) -> np.ndarray:
    """Raster values (float64) at points (the cell each point falls in, clipped to the grid)."""
    xy = shapely.get_coordinates(np.asarray(points, dtype=object))
    col, row = ~raster.transform @ (xy[:, 0], xy[:, 1])
    row = np.clip(np.floor(row).astype(int), 0, raster.shape[0] - 1)
    col = np.clip(np.floor(col).astype(int), 0, raster.shape[1] - 1)
    return raster.data[row, col].astype("float64")


def _multi(geoms) -> np.ndarray:
    """Each Polygon as a one-part MultiPolygon (MultiPolygons pass through)."""
    geoms = np.asarray(list(geoms), dtype=object)
    parts, idx = shapely.get_parts(geoms, return_index=True)
    return shapely.multipolygons(parts, indices=idx)


def _sorted(polys: np.ndarray) -> np.ndarray:
    """A stable order of polygons: north to south, west to east (10 m rows)."""
    c = shapely.get_coordinates(shapely.point_on_surface(polys))
    order = np.lexsort((np.round(c[:, 0], 1), -np.round(c[:, 1] / 10.0)))
    return polys[order]


def _zone_blocks(r: np.ndarray, area: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Zoning code per block: commerce near the centre, industry at the edge, homes between."""
    n = len(r)
    u = rng.uniform(size=n)
    p_c = 0.55 * np.exp(-r / 700.0)
    p_m = 0.18 * np.clip((r - 1200.0) / 800.0, 0.0, 1.0)
    p_p = np.full(n, 0.06)
    p_g = np.full(n, 0.04)
    out = np.empty(n, dtype=object)
    c = u < p_c
    m = ~c & (u < p_c + p_m)
    p = ~c & ~m & (u < p_c + p_m + p_p)
    g = ~c & ~m & ~p & (u < p_c + p_m + p_p + p_g)
    res = ~(c | m | p | g)
    out[c] = np.where(rng.uniform(size=c.sum()) < 0.45, "C2", "C1")
    out[m] = "M1"
    out[p] = "P1"
    out[g] = "G1"
    out[res] = np.where(rng.uniform(size=res.sum()) < np.clip(1.0 - r[res] / 2000.0, 0.15, 0.5), "R3", "R2")
    return out


def _ensure_kinds(zoning: np.ndarray, r: np.ndarray, area: np.ndarray, plaza: int) -> None:
    """Every city, even the small crop, gets a school/hospital site and a park besides the plaza."""
    for code, lo in (("P1", 6000.0), ("G1", 3000.0)):
        have = (zoning == code)
        have[plaza] = False
        if have.any():
            continue
        cand = np.flatnonzero((area >= lo) & np.isin(zoning, ["R2", "R3"]))
        if len(cand) == 0:
            cand = np.flatnonzero(area >= lo)
            cand = cand[cand != plaza]
        if len(cand):
            zoning[cand[np.argmin(np.abs(r[cand] - 350.0))]] = code


# ----------------------------------------------------------------------------------------- buildings

def _template(zone: str, kind, is_plaza: bool, r: float, rng: np.random.Generator) -> dict[str, Any]:
    """Footprint size, spacing, storeys, shape odds and annexes for a parcel."""
    U = rng.uniform
    if is_plaza:
        return dict(use="commercial", L=U(12, 18), D=U(8, 12), gu=45.0, gv=45.0, storeys=(1, 2), yard=0.0,
                    ell=0.0, max_n=4, annex=0, year=(2005, 2020))
    if zone == "C2":
        s = 15 + 45 * math.exp(-r / 900.0) * U(0.7, 1.1)
        return dict(use="office", L=U(28, 40), D=U(25, 35), gu=16.0, gv=16.0, storeys=(int(s * 0.7), int(s)),
                    yard=0.0, ell=0.1, annex=3, year=(1998, 2023))
    if zone == "C1":
        s = 4 + 26 * math.exp(-r / 800.0) * U(0.6, 1.1)
        use = "mixed" if U() < 0.3 else "commercial"
        return dict(use=use, L=U(22, 42), D=U(18, 36), gu=10.0, gv=10.0, storeys=(max(3, int(s * 0.6)), int(s) + 1),
                    yard=0.3, ell=0.1, annex=5, year=(1995, 2023))
    if zone == "R3":
        s = int(U(18, 33))
        h = s * STOREY_M
        return dict(use="residential", L=U(26, 44), D=U(12, 15), gu=U(8, 12), gv=float(np.clip(0.35 * h, 15, 30)),
                    storeys=(max(6, s - 4), s), yard=0.0, ell=0.15, annex=4, year=(2000, 2022))
    if zone == "R2":  # mostly 6-9 storey walk-ups of the 1980s-2000s, some mid-rise
        s = int(U(6, 10)) if U() < 0.7 else int(U(10, 19))
        h = s * STOREY_M
        return dict(use="residential", L=U(18, 32), D=U(10, 12), gu=6.0, gv=float(np.clip(0.6 * h, 10, 18)),
                    storeys=(max(6, s - 2), s), yard=0.0, ell=0.15, annex=6, year=(1982, 2015))
    if zone == "M1":
        return dict(use="industrial", L=U(30, 70), D=U(20, 40), gu=10.0, gv=10.0, storeys=(2, 5), yard=0.0,
                    ell=0.1, annex=6, year=(1965, 2010))
    if zone == "P1" and kind == "hospital":
        return dict(use="hospital", L=U(50, 70), D=U(40, 50), gu=16.0, gv=16.0, storeys=(8, 18), yard=0.5, ell=0.0,
                    annex=3, year=(1980, 2020))
    if zone == "P1":
        return dict(use="school", L=U(40, 60), D=U(14, 17), gu=20.0, gv=24.0, storeys=(4, 5), yard=0.0, ell=0.1,
                    annex=4, year=(1975, 2020))
    # G1 park: a pavilion or two
    return dict(use="public", L=U(10, 16), D=U(10, 16), gu=60.0, gv=60.0, storeys=(1, 2), yard=0.0, ell=0.0,
                max_n=2, annex=0, year=(1990, 2020))


ANNEX_GAP_M = 5.0


def _grid(inset, cx, cy, ux, uy, L, D, gu, gv, rng, yard=0.0, ell=0.0):
    """Footprints of size L x D on a grid (gaps gu, gv) in the local frame, those inside ``inset``."""
    umin, umax, vmin, vmax = geo.local_extent(inset, cx, cy, ux, uy)
    nu = max(1, int((umax - umin + gu) // (L + gu)))
    nv = max(1, int((vmax - vmin + gv) // (D + gv)))
    su = umin + (umax - umin - (nu * L + (nu - 1) * gu)) / 2 + rng.uniform(-2, 2)
    sv = vmin + (vmax - vmin - (nv * D + (nv - 1) * gv)) / 2 + rng.uniform(-2, 2)
    gi, gj = np.meshgrid(np.arange(nu), np.arange(nv), indexing="xy")
    u0 = su + gi.ravel() * (L + gu)
    v0 = sv + gj.ravel() * (D + gv)
    m = len(u0)
    shape = np.zeros(m, dtype=int)
    if yard and L >= 40 and D >= 34:
        shape[rng.uniform(size=m) < yard] = 2
    if ell and L >= 24:
        shape[(shape == 0) & (rng.uniform(size=m) < ell)] = 1
    cand = geo.footprints(u0, v0, np.full(m, L), np.full(m, D), cx, cy, ux, uy, shape, margin=11.0)
    return cand[shapely.contains(inset, cand)]


def _place_buildings(parcels, pzone, kind, is_plaza, angles, pr, rng, report) -> dict[str, list]:
    out: dict[str, list] = {k: [] for k in ("geometry", "storeys", "height", "use", "year", "parcel")}
    areas = shapely.area(parcels)
    n = len(parcels)
    for i in range(n):
        if i % 200 == 0:
            report(i, n)
        zone = pzone[i]
        rule = ZONING[zone]
        t = _template(zone, kind[i], bool(is_plaza[i]), float(pr[i]), rng)
        inset = shapely.buffer(parcels[i], -rule["min_setback_m"], quad_segs=2)
        if inset.is_empty or inset.area < 80.0:
            continue
        shapely.prepare(inset)
        cx, cy = shapely.get_coordinates(shapely.centroid(inset))[0]
        L, D, gu, gv = t["L"], t["D"], t["gu"], t["gv"]
        fp = np.empty(0, dtype=object)
        for scale in (1.0, 0.75, 0.55):
            if L * scale < 8.0 or D * scale < 8.0:
                break
            # along the road, or across it: whichever fits more buildings
            for a in (angles[i], angles[i] + math.pi / 2):
                c = _grid(inset, cx, cy, math.cos(a), math.sin(a), L * scale, D * scale, gu, gv, rng,
                          t["yard"], t["ell"])
                if len(c) > len(fp):
                    fp = c
            if len(fp):
                break
        if "max_n" in t:
            fp = fp[:t["max_n"]]
        main = len(fp)
        # annexes: small low buildings (shops, garages, substations) in the free ground
        if t["annex"] and main:
            la, da = rng.uniform(6, 12), rng.uniform(6, 10)
            n_annex = int(math.ceil(t["annex"] * areas[i] / 2000.0))
            a = angles[i]
            c = _grid(inset, cx, cy, math.cos(a), math.sin(a), la, da, ANNEX_GAP_M, ANNEX_GAP_M, rng)
            if len(c):
                c = c[~shapely.dwithin(c, shapely.union_all(fp), ANNEX_GAP_M)]
                c = c[rng.permutation(len(c))[:n_annex]]
                fp = np.concatenate([fp, c])
        if len(fp) == 0:
            continue
        # site coverage
        fa = shapely.area(fp)
        keep = np.cumsum(fa) <= rule["max_coverage"] * areas[i]
        if not keep.any():
            continue
        fp, fa = fp[keep], fa[keep]
        is_main = np.arange(len(fp)) < main
        lo, hi = t["storeys"]
        st = np.where(is_main, rng.integers(lo, max(lo, hi) + 1, size=len(fp)), rng.integers(1, 4, size=len(fp)))
        # floor-area ratio, then height limit (parapet up to 1.2 m above the top storey)
        far_budget = rule["max_far"] * areas[i]
        gfa = float((fa * st).sum())
        if gfa > far_budget:
            st = np.maximum(1, np.floor(st * far_budget / gfa)).astype(int)
            while (fa * st).sum() > far_budget and st.max() > 1:
                st[np.argmax(st)] -= 1
        st = np.minimum(st, max(1, int((rule["max_height_m"] - 1.2) // STOREY_M)))
        if (fa * st).sum() > far_budget:
            continue
        height = st * STOREY_M + rng.uniform(0.0, 1.2, len(st))
        y0, y1 = t["year"]
        out["geometry"].extend(fp)
        out["storeys"].extend(st.tolist())
        out["height"].extend(height.tolist())
        out["use"].extend([t["use"]] * len(fp))
        out["year"].extend(rng.integers(y0, y1 + 1, size=len(fp)).tolist())
        out["parcel"].extend([i] * len(fp))
    report(n, n)
    return out


def _break_rules(b: dict[str, list], parcels, pzone, rng) -> None:
    """Make about 2 % of the built parcels break their zoning (too tall, or too much floor area)."""
    parcel = np.asarray(b["parcel"])
    built = np.unique(parcel)
    built = built[pzone[built] != "G1"]
    if len(built) == 0:
        return
    k = max(1, int(round(0.02 * len(built))))
    chosen = rng.choice(built, size=k, replace=False)
    storeys = np.asarray(b["storeys"])
    height = np.asarray(b["height"], dtype="float64")
    for j, p in enumerate(sorted(chosen.tolist())):
        idx = np.flatnonzero(parcel == p)
        rule = ZONING[pzone[p]]
        if j % 2 == 0:  # one building taller than the height limit
            t = idx[np.argmax(storeys[idx])]
            storeys[t] = int(math.ceil(rule["max_height_m"] * rng.uniform(1.15, 1.4) / STOREY_M))
            height[t] = storeys[t] * STOREY_M + 0.5
        else:  # every building 60 % more storeys: over the floor-area ratio
            storeys[idx] = np.ceil(storeys[idx] * 1.6).astype(int) + 1
            height[idx] = storeys[idx] * STOREY_M + 0.5
            area = float(shapely.area(parcels[p]))
            fa = shapely.area(np.asarray(b["geometry"], dtype=object)[idx])
            while (fa * storeys[idx]).sum() <= rule["max_far"] * area:
                storeys[idx] += 1
                height[idx] = storeys[idx] * STOREY_M + 0.5
    b["storeys"] = storeys.tolist()
    b["height"] = height.tolist()


def zoning_report(buildings, parcels):
    """Check every built parcel against its zoning: height, floor-area ratio, site coverage, setback.

    Returns one row per parcel with buildings: ``parcel_id``, ``zoning``, the
    measured ``height_m``, ``far``, ``coverage``, ``setback_m`` and the
    booleans ``height_ok``, ``far_ok``, ``coverage_ok``, ``setback_ok`` and
    ``compliant``. The green ratio is not checked (no green layer).

    Examples
    --------
    >>> city = build("small")
    >>> rep = zoning_report(city["buildings"], city["parcels"])
    >>> bool(rep.compliant.mean() > 0.9)
    True
    """
    p = parcels.set_index("parcel_id")
    g = buildings.assign(fp=buildings.geometry.area)
    agg = g.groupby("parcel_id").agg(height_m=("height_m", "max"), gfa=("gfa_m2", "sum"), fp=("fp", "sum"))
    pg = p.loc[agg.index]
    parea = pg.geometry.area.to_numpy()
    # setback: the least distance from a building to its parcel's boundary
    bound = shapely.boundary(p.geometry.loc[buildings.parcel_id].to_numpy())
    d = shapely.distance(buildings.geometry.to_numpy(), bound)
    setback = pd.Series(d, index=buildings.index).groupby(buildings.parcel_id.to_numpy()).min()
    rep = pd.DataFrame({
        "parcel_id": agg.index,
        "zoning": pg.zoning.to_numpy(),
        "height_m": agg.height_m.to_numpy(),
        "far": agg.gfa.to_numpy() / parea,
        "coverage": agg.fp.to_numpy() / parea,
        "setback_m": setback.loc[agg.index].to_numpy(),
    })
    rep["height_ok"] = rep.height_m <= pg.max_height_m.to_numpy() + 1e-9
    rep["far_ok"] = rep.far <= pg.max_far.to_numpy() + 1e-9
    rep["coverage_ok"] = rep.coverage <= pg.max_coverage.to_numpy() + 1e-9
    rep["setback_ok"] = rep.setback_m >= pg.min_setback_m.to_numpy() - 0.01
    rep["compliant"] = rep.height_ok & rep.far_ok & rep.coverage_ok & rep.setback_ok
    return rep


# ----------------------------------------------------------------------------------------- POIs, sensors, areas

def _pois(parcels, kind, pzone, is_plaza, buildings, links, nodes, box, centre):
    import geopandas as gpd

    rows, geoms = [], []
    fp = buildings.geometry.area.groupby(buildings.parcel_id).sum()
    gfa = buildings.gfa_m2.groupby(buildings.parcel_id).sum()
    pid = np.array([f"P{i:05d}" for i in range(len(parcels))])
    pts = shapely.point_on_surface(parcels)
    area = shapely.area(parcels)
    n_h = n_s = n_sh = 0
    for i in range(len(parcels)):
        if kind[i] == "hospital" and pid[i] in gfa.index:
            n_h += 1
            rows.append(("hospital", f"Sample Hospital No. {n_h}", int(gfa[pid[i]] / 60.0)))
            geoms.append(pts[i])
        elif kind[i] == "school" and pid[i] in gfa.index:
            n_s += 1
            rows.append(("school", f"Sample School No. {n_s}", int(gfa[pid[i]] / 10.0)))
            geoms.append(pts[i])
    # shelters: parks, the plaza and school grounds; 2 m2 of open ground per person
    for i in range(len(parcels)):
        if pzone[i] == "G1" or kind[i] == "school":
            open_m2 = area[i] - float(fp.get(pid[i], 0.0))
            if open_m2 < 2000:
                continue
            n_sh += 1
            name = "Plaza shelter" if is_plaza[i] else f"Emergency Shelter No. {n_sh}"
            rows.append(("shelter", name, int(open_m2 / 2.0)))
            geoms.append(pts[i])
    stations = _stations(links, nodes, box, centre)
    for j, (name, pt) in enumerate(stations):
        rows.append(("metro_station", name, 3000))
        geoms.append(pt)
    for name, pt in _fire_stations(links, nodes, buildings, box):  # last: the other POIs keep their ids
        rows.append(("fire_station", name, None))
        geoms.append(pt)
    df = pd.DataFrame(rows, columns=["kind", "name", "capacity"])
    df.insert(0, "poi_id", [f"POI{i:04d}" for i in range(len(df))])
    return gpd.GeoDataFrame(df, geometry=list(geoms), crs=CRS), stations


def _junctions_of(links, nodes, box, classes, kind: str | None = None):
    """The junctions inside ``box`` on roads of ``classes`` (and of node ``kind``); every junction inside it
    when there is none."""
    major = links[links.road_class.isin(classes)]
    ids = set(major.from_node) | set(major.to_node)
    keep = nodes.node_id.isin(ids) & ((nodes.kind == kind) if kind is not None else True)
    cand = nodes[keep]
    cand = cand[shapely.contains(box, cand.geometry.to_numpy())]
    if cand.empty:
        cand = nodes[shapely.contains(box, nodes.geometry.to_numpy())]
    return cand


def _stations(links, nodes, box, centre, spacing: float = 900.0):
    cand = _junctions_of(links, nodes, box, ["primary", "trunk"], kind="traffic_light")
    xy = shapely.get_coordinates(cand.geometry.to_numpy())
    d = np.hypot(xy[:, 0] - centre[0], xy[:, 1] - centre[1])
    order = np.lexsort((cand.node_id.to_numpy(), np.round(d, 3)))
    picked: list[np.ndarray] = []
    for k in order:
        if all(np.hypot(*(xy[k] - p)) >= spacing for p in picked):
            picked.append(xy[k])
    # a station stands beside the junction (30 m off), not in it
    return [(f"Metro Station {chr(65 + j) if j < 26 else j}", shapely.Point(p[0] + 30.0, p[1] + 30.0))
            for j, p in enumerate(picked)]


#: a city fire station's district: at most 7 km2 for a first-class station (建标152-2017 城市消防站建设标准, art. 14)
FIRE_DISTRICT_KM2 = 7.0


def _fire_stations(links, nodes, buildings, box, district_km2: float = FIRE_DISTRICT_KM2):
    """Fire stations beside junctions of the main roads: as many as districts of at most ``district_km2`` the
    city needs, each at the middle of its district's buildings (k-means over their centroids, seeded, so the
    same city gets the same stations), at the main-road junction nearest to it."""
    from scipy.cluster.vq import kmeans2

    n = max(1, int(np.ceil(float(shapely.area(box)) / (district_km2 * 1e6) - 1e-9)))
    cand = _junctions_of(links, nodes, box, ["trunk", "primary", "secondary"]).sort_values("node_id")
    xy = shapely.get_coordinates(cand.geometry.to_numpy())
    pts = shapely.get_coordinates(shapely.centroid(buildings.geometry.to_numpy()))
    if len(pts) > n:
        mid, _ = kmeans2(pts, n, seed=np.random.default_rng([len(pts), 31]), minit="++")
    else:
        mid = pts if len(pts) else np.asarray([shapely.get_coordinates(shapely.centroid(box))[0]])
    picked: list[np.ndarray] = []
    for c in mid[np.lexsort((mid[:, 0], mid[:, 1]))]:  # south to north
        k = int(np.argmin(np.hypot(xy[:, 0] - c[0], xy[:, 1] - c[1])))
        if not any((xy[k] == q).all() for q in picked):
            picked.append(xy[k])
    # beside the junction (30 m off, on the other side from a metro station there), not in it
    return [(f"Sample Fire Station No. {j + 1}", shapely.Point(p[0] - 30.0, p[1] - 30.0)) for j, p in enumerate(picked)]


GAUGE_CLEARANCE_M = 10.0  # a rain gauge stands on open ground: at least this far from buildings and the river


def _open_spot(p, tree, box, clearance):
    # the nearest point to p (searching outwards in 10 m rings) that is `clearance` off every obstacle
    for r in np.arange(0.0, 500.0, 10.0):
        n = 1 if r == 0 else max(8, int(2 * np.pi * r / 10.0))
        a = np.arange(n) * 2 * np.pi / n
        cand = shapely.points(p[0] + r * np.cos(a), p[1] + r * np.sin(a))
        ok = shapely.contains(box, cand)
        near = tree.query(cand, predicate="dwithin", distance=clearance)
        ok[np.unique(near[0])] = False
        if ok.any():
            return cand[np.flatnonzero(ok)[0]]
    return shapely.Point(p)


# the plausible readings of the sample sensors (min_value, max_value; cim.sensors refuses a reading outside):
# a rain gauge from 0 to 500 mm/h (2.5 times the Chinese record hour, 201.9 mm at Zhengzhou on 2021-07-20);
# a river gauge's stage above the channel bed from 0 (dry bed) to 15 m (the banks stand 2 to 4 m above the bed);
# a traffic counter from 0 to 1.5 times its link's capacity (a link carries little more than its capacity; a
# count of twice that is a counter that counts each vehicle twice)
GAUGE_RANGE_MM_H = (0.0, 500.0)
STAGE_RANGE_M = (0.0, 15.0)
COUNT_OVER_CAPACITY = 1.5


def _sensors(extent, river_line, box, links, rng, obstacles=()):
    import geopandas as gpd

    x0, y0, x1, y1 = extent
    rows, geoms = [], []
    nx, ny = max(1, math.ceil((x1 - x0) / 1000.0)), max(1, math.ceil((y1 - y0) / 1000.0))
    tree = shapely.STRtree(np.asarray(obstacles, dtype=object))
    k = 0
    for j in range(ny):
        for i in range(nx):
            k += 1
            rows.append((f"RG{k:02d}", "rain_gauge", "mm/h", 20.0, 50.0, f"Rain gauge {k}", None,
                         *GAUGE_RANGE_MM_H))
            p = (x0 + (i + 0.5) * (x1 - x0) / nx + rng.uniform(-50, 50),
                 y0 + (j + 0.5) * (y1 - y0) / ny + rng.uniform(-50, 50))
            geoms.append(_open_spot(p, tree, box, GAUGE_CLEARANCE_M))
    inside = shapely.intersection(river_line, box)
    parts = [p for p in shapely.get_parts(inside) if p.length > 0]
    k = 0
    for part in parts:
        pos = np.arange(200.0, part.length - 100.0, 800.0) if part.length > 400 else np.array([part.length / 2])
        for s in pos:
            k += 1
            rows.append((f"RL{k:02d}", "river_level", "m", 1.8, 2.3,
                         f"River level gauge {k} (stage above the channel bed)", "W001", *STAGE_RANGE_M))
            geoms.append(part.interpolate(float(s)))
    # traffic counters on the busiest-by-capacity links, at least 300 m apart
    rank = links.road_class.map({"motorway": 0, "trunk": 0, "primary": 1, "secondary": 2}).fillna(9)
    busy = links.assign(_rank=rank).sort_values(["_rank", "capacity_vph", "link_id"], ascending=[True, False, True])
    mids = shapely.line_interpolate_point(busy.geometry.to_numpy(), 0.5, normalized=True)
    want = 4 if (x1 - x0) <= 2 * SMALL_HALF_M + 1 else 20
    picked: list[shapely.Point] = []
    k = 0
    for (_, row), mid in zip(busy.iterrows(), mids):
        if len(picked) >= want:
            break
        if not box.contains(mid) or any(mid.distance(p) < 300.0 for p in picked):
            continue
        picked.append(mid)
        k += 1
        cap = float(row.capacity_vph)
        rows.append((f"TC{k:02d}", "traffic_counter", "veh/h", round(0.8 * cap, 1), round(0.95 * cap, 1),
                     f"Traffic counter {k} on {row['name'] or row.link_id}", row.link_id,
                     0.0, round(COUNT_OVER_CAPACITY * cap, 1)))
        geoms.append(mid)
    df = pd.DataFrame(rows, columns=["sensor_id", "kind", "unit", "warn_threshold", "alarm_threshold", "name",
                                     "target_id", "min_value", "max_value"])
    return gpd.GeoDataFrame(df, geometry=geoms, crs=CRS)


def _areas(plaza, stations, extent):
    import geopandas as gpd

    rows = [("A001", "plaza", "Tianfu-style Plaza (sample)", plaza)]
    for j, (name, pt) in enumerate(stations):
        rows.append((f"A{j + 2:03d}", "station", f"{name} area", pt.buffer(150.0, quad_segs=16)))
    rows.append((f"A{len(rows) + 1:03d}", "study_area", "Sample city extent", shapely.box(*extent)))
    df = pd.DataFrame(rows, columns=["area_id", "kind", "name", "geometry"])
    return gpd.GeoDataFrame(df.drop(columns="geometry"), geometry=_multi(df.geometry), crs=CRS)


# ----------------------------------------------------------------------------------------- large

def _tile(base: SampleCity, tiles: tuple[int, int], seed: int, report) -> SampleCity:
    """The medium city copied side by side ``tiles`` = (columns, rows) times, ids prefixed ``Tkk-``."""
    import geopandas as gpd

    from cim.raster import Raster

    ncol, nrow = tiles
    x0, y0, x1, y1 = base.extent
    w, h = x1 - x0, y1 - y0
    id_cols = {
        "buildings": ["building_id", "parcel_id"], "road_links": ["link_id", "from_node", "to_node"],
        "road_nodes": ["node_id"], "parcels": ["parcel_id"], "water": ["water_id"], "pois": ["poi_id"],
        "sensors": ["sensor_id", "target_id"], "areas": ["area_id"],
    }
    layers = {}
    shifts = [(c * w, -r * h) for r in range(nrow) for c in range(ncol)]
    for name, gdf in base.layers.items():
        parts = []
        geoms = gdf.geometry.to_numpy()
        for k, (dx, dy) in enumerate(shifts):
            t = pd.DataFrame(gdf.drop(columns=gdf.geometry.name)).copy()
            pre = f"T{k:02d}-"
            for c in id_cols[name]:
                t[c] = t[c].map(lambda v, pre=pre: None if pd.isna(v) else pre + str(v))
            moved = shapely.transform(geoms, lambda xy, dx=dx, dy=dy: xy + (dx, dy))
            parts.append(gpd.GeoDataFrame(t, geometry=moved, crs=CRS))
        layers[name] = gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=CRS)
        report(len(layers), len(base.layers) + 2)
    extent = (x0, y1 - nrow * h, x0 + ncol * w, y1)
    res = base.rasters["dem"].res[0]
    transform, shape = ter.grid(extent, res)
    rivers = [ter.river_centreline(base.extent, seed)]
    rivers = [shapely.transform(rivers[0], lambda xy, dx=dx, dy=dy: xy + (dx, dy)) for dx, dy in shifts]
    road_mask = np.tile(base.aux["street_mask"], (nrow, ncol))
    dem = ter.dem_array(extent, res, base.centre, seed, rivers, road_mask)
    manning = np.tile(base.rasters["manning"].data, (nrow, ncol))
    report(len(base.layers) + 2, len(base.layers) + 2)
    rasters = {"dem": Raster(dem, transform, CRS, unit="m"), "manning": Raster(manning, transform, CRS,
                                                                               unit="s/m^(1/3)")}
    # the large DEM keeps falling across the tiles: ground and river levels follow it
    bld = layers["buildings"]
    bld["ground_elev_m"] = np.round(_sample(rasters["dem"], shapely.centroid(bld.geometry.to_numpy())), 3)
    w_ = layers["water"]
    bed = ter.river_bed(shapely.get_coordinates(shapely.point_on_surface(w_.geometry.to_numpy())), base.centre)
    w_["normal_level_m"] = np.round(bed + ter.RIVER_NORMAL_DEPTH_M, 3)
    turns = base.tables.get("road_turns")
    tables = {}
    if turns is not None:  # each tile's turns join that tile's links
        tables["road_turns"] = pd.concat([turns.assign(from_link=f"T{k:02d}-" + turns.from_link,
                                                       to_link=f"T{k:02d}-" + turns.to_link)
                                          for k in range(len(shifts))], ignore_index=True)
    return SampleCity("large", seed, extent, base.centre, layers, rasters, tables=tables)
