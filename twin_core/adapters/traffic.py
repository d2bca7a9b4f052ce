"""Traffic adapter: twin road layers -> :mod:`simulation.traffic` -> results in the store.

Network: the ``road_links`` layer as of a scenario (links whose ``oneway`` is
False get a reverse link ``<link_id>:r``); capacity from ``capacity_vph`` or
1,800 veh/h per lane. What-if edits that close or restrict links:

- closures: ``areas`` features of kind ``closure`` (add them in a
  scenario) and ``closures=`` given to the run (the CLI's ``--close``):
  link ids (str) and / or polygons (one or a list of them in the twin's
  CRS, or a GeoDataFrame / GeoSeries, reprojected from its own CRS): every
  link that crosses a polygon is closed (:func:`split_closures`);
- scenario parameters ``traffic_closed_links`` (list of link ids),
  ``traffic_capacity_factor`` ({link_id: factor}) and
  ``traffic_demand_scale`` (a number).

Demand for a named period (``am``, ``pm``, ``offpeak``) is generated from land
use: each building produces and attracts vehicle trips by its use and floor
area (:data:`TRIP_RATES`), at the nearest junction of the network's main
strongly connected part; a gravity model (exp(-cost/600 s) on free-flow
times) distributes them.

Results under ``scenario`` + ``run``: ``assign``: layer ``link_flows``
(flow, volume, cost, vc per link), tables ``convergence``, ``od_demand``,
``disconnected``, a ``summary`` dict. ``simulate``: layer ``link_loads``,
tables ``travel_times`` (per vehicle), ``trajectories`` (vehicle_id, t, x,
y: the viewer's animated trips), ``link_series``, and ``summary``. A run id
used again is replaced: traffic results of the earlier run that this one
does not write are deleted (:data:`RESULT_NAMES`).

Examples
--------
>>> PERIODS["am"]["start_s"], sorted(TRIP_RATES["office"])
(25200.0, ['attract', 'produce'])
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from cim.results import claim_run, list_results
from twin_core.errors import LayerNotFoundError, NetworkError, ParameterError, TwinWarning, twin_warn
from cim.scenario import normalise_scenario_name
from twin_core.units import parse_duration, parse_offset

__all__ = ["TRIP_RATES", "PERIODS", "TrafficRun", "network_links", "network_turns", "closed_links",
           "land_use_demand", "run_assign",
           "run_simulate", "run_traffic", "split_closures", "run_traffic_demo", "demo_demand_scale", "compare_traffic_runs",
           "RESULT_NAMES"]

# AM-peak hour vehicle trips per 100 m2 of gross floor area (orders of magnitude of ITE/Chinese planning
# trip-generation rates for a dense city with a large transit share).
TRIP_RATES = {
    "residential": {"produce": 0.35, "attract": 0.05},
    "mixed": {"produce": 0.20, "attract": 0.20},
    "office": {"produce": 0.03, "attract": 0.45},
    "commercial": {"produce": 0.05, "attract": 0.30},
    "school": {"produce": 0.02, "attract": 0.60},
    "hospital": {"produce": 0.10, "attract": 0.40},
    "public": {"produce": 0.05, "attract": 0.20},
    "industrial": {"produce": 0.03, "attract": 0.25},
}
PERIODS = {
    "am": {"start_s": 7 * 3600.0, "duration_s": 3600.0, "swap": False, "factor": 1.0},
    "pm": {"start_s": 17 * 3600.0, "duration_s": 3600.0, "swap": True, "factor": 1.0},
    "offpeak": {"start_s": 11 * 3600.0, "duration_s": 3600.0, "swap": False, "factor": 0.5},
}
CLOSED_LINKS_PARAM = "traffic_closed_links"
CAPACITY_PARAM = "traffic_capacity_factor"
DEMAND_SCALE_PARAM = "traffic_demand_scale"


def _period(period: str) -> dict:
    if period not in PERIODS:
        raise ParameterError(f"period must be one of {sorted(PERIODS)}, got {period!r}")
    return PERIODS[period]


def network_links(road_links) -> "gpd.GeoDataFrame":  # noqa: F821
    """Directed engine links (link_id, from_node, to_node, length, speed, capacity, lanes, geometry)."""
    import shapely

    if len(road_links) == 0:
        raise NetworkError("the road_links layer is empty: import a road network first (twin build / cim.io.sumo)")
    g = road_links.copy()
    lanes = g["lanes"].fillna(1).clip(lower=1).astype(float) if "lanes" in g else pd.Series(1.0, index=g.index)
    cap = g["capacity_vph"] if "capacity_vph" in g else pd.Series(np.nan, index=g.index)
    g["capacity"] = cap.fillna(1800.0 * lanes).astype(float)
    g["lanes"] = lanes
    length = g["length_m"] if "length_m" in g else pd.Series(np.nan, index=g.index)
    g["length"] = length.fillna(pd.Series(g.geometry.length, index=g.index)).clip(lower=1.0).astype(float)
    g["speed"] = (g["speed_limit_kmh"].fillna(40.0).clip(lower=5.0) / 3.6).astype(float)
    g["link_id"] = g["link_id"].astype(str)
    g["from_node"] = g["from_node"].astype(str)
    g["to_node"] = g["to_node"].astype(str)
    cols = ["link_id", "from_node", "to_node", "length", "speed", "capacity", "lanes", "geometry"]
    out = [g[cols]]
    if "oneway" in g:
        two = g[g["oneway"].fillna(True).astype(bool) == False]  # noqa: E712
        if len(two):
            r = two[cols].copy()
            r["link_id"] = r["link_id"] + ":r"
            r["from_node"], r["to_node"] = two["to_node"].to_numpy(), two["from_node"].to_numpy()
            r["geometry"] = shapely.reverse(two.geometry.to_numpy())
            out.append(r)
    res = pd.concat(out, ignore_index=True)
    return res.set_geometry("geometry", crs=road_links.crs)


def network_turns(twin, links) -> pd.DataFrame | None:
    """The allowed turns (from_link, to_link) among the engine ``links``, from the twin's ``road_turns`` table
    (written by the SUMO import and the sample city); None when the twin has none (every turn allowed).

    A turns table naming links that are not in the base ``road_links`` raises :class:`NetworkError`. Links
    the table does not know (a road a scenario added, the reverse ``<id>:r`` of a two-way road it does not
    name) may be entered from, and continue onto, every link at their ends."""
    from cim.io.sumo import TURNS_TABLE

    if not twin.store.has_table(TURNS_TABLE):
        return None
    t = twin.store.read_table(TURNS_TABLE)
    missing = [c for c in ("from_link", "to_link") if c not in t.columns]
    if missing:
        raise NetworkError(f"table {TURNS_TABLE!r} has no column(s) {missing}; it needs from_link and to_link (link "
                           f"ids of road_links; it has {list(t.columns)}): re-import the network "
                           "(twin import TWIN NET.net.xml) or fix the table")
    if not len(t):
        return None
    t = t[["from_link", "to_link"]].astype(str)
    base = set(twin.layer("road_links")["link_id"].astype(str))
    known = base | {b + ":r" for b in base} | set(links["link_id"])
    bad = sorted((set(t["from_link"]) | set(t["to_link"])) - known)
    if bad:
        raise NetworkError(f"table {TURNS_TABLE!r} names {len(bad)} links that are not in road_links, e.g. "
                           f"{bad[:5]}; its turns must join links of road_links: re-import the network with its "
                           "turns (twin import TWIN NET.net.xml) or drop those rows")
    ids = links["link_id"].to_numpy()
    present = pd.Index(ids)
    t = t[present.get_indexer(t["from_link"]) >= 0]
    t = t[present.get_indexer(t["to_link"]) >= 0]  # a link the scenario removed takes its turns with it
    named = set(t["from_link"]) | set(t["to_link"])
    free = [i for i in ids if i not in named and i not in base]
    if free:
        fr = pd.DataFrame({"link_id": ids, "from_node": links["from_node"].to_numpy(),
                           "to_node": links["to_node"].to_numpy()})
        pairs = fr.merge(fr, left_on="to_node", right_on="from_node")
        free_set = set(free)
        pairs = pairs[pairs["link_id_x"].isin(free_set) | pairs["link_id_y"].isin(free_set)]
        t = pd.concat([t, pd.DataFrame({"from_link": pairs["link_id_x"], "to_link": pairs["link_id_y"]})])
    return t.drop_duplicates().reset_index(drop=True)


def _turns_among(turns: pd.DataFrame | None, links) -> pd.DataFrame | None:
    """The turns between links of ``links`` (e.g. the open ones)."""
    if turns is None:
        return None
    ids = set(links["link_id"])
    return turns[turns["from_link"].isin(ids) & turns["to_link"].isin(ids)]


def closed_links(twin, links, scenario: str | None, closures=None) -> list[str]:
    """Link ids closed by ``closures`` (link ids and / or polygons, :func:`split_closures`), closure polygons
    (``areas`` kind ``closure``) and the scenario parameter ``traffic_closed_links``."""
    import shapely

    polys, given_ids = split_closures(closures, links.crs)
    try:
        areas = twin.layer("areas", scenario=scenario)
        if "kind" in areas:
            polys += list(areas.loc[areas["kind"] == "closure"].geometry)
    except (LayerNotFoundError, KeyError):
        pass
    ids: set[str] = set()
    if polys:
        u = shapely.union_all(np.asarray(polys, dtype=object))
        hit = shapely.intersects(links.geometry.to_numpy(), u)
        ids |= set(links.loc[hit, "link_id"])
    params = twin.scenario(scenario).params() if scenario else {}
    extra = params.get(CLOSED_LINKS_PARAM) or []
    if isinstance(extra, (str, int)):
        extra = [extra]  # one link id
    if not isinstance(extra, list):
        raise ParameterError(f"scenario parameter {CLOSED_LINKS_PARAM} must be a list of link ids, got {extra!r}")
    extra = [str(x) for x in extra]
    known = set(links["link_id"])
    bad = [x for x in extra if x not in known and x + ":r" not in known]
    if bad:
        raise NetworkError(f"scenario parameter {CLOSED_LINKS_PARAM} names unknown links {bad[:5]}")
    bad = [x for x in given_ids if x not in known and x + ":r" not in known]
    if bad:
        raise NetworkError(f"closures name link {bad[0]!r}, which is not in road_links as of scenario "
                           f"{scenario or 'base'!r} (closures= in Python, --close on the command line)"
                           + _close_ids(bad[0], links) + (f"; also unknown: {bad[1:6]}" if len(bad) > 1 else ""))
    for x in extra + given_ids:
        ids.add(x)
        if x + ":r" in known:
            ids.add(x + ":r")
    return sorted(ids)


def _close_ids(lid: str, links) -> str:
    """``"; close ids: 'a', 'b'"`` (difflib) for an unknown link id, or ``""`` when none is near."""
    import difflib

    known = sorted({x.removesuffix(":r") for x in links["link_id"].astype(str)})
    near = difflib.get_close_matches(str(lid), known, n=5, cutoff=0.5)
    return f"; close ids: {', '.join(map(repr, near))}" if near else f"; e.g. {', '.join(map(repr, known[:3]))}"


CLOSURES_TAKES = ("closures takes link ids (a str, e.g. '576684245', as --close does), shapely polygons in the "
                  "twin's CRS, a list mixing them, or a GeoDataFrame / GeoSeries (reprojected from its own CRS)")


def split_closures(closures, crs=None) -> tuple[list, list[str]]:
    """``closures`` as (geometries in the network's CRS, link ids): the one definition of what a run's
    ``closures=`` (Python, jobs) and ``--close`` (CLI) take.

    A link id (str), a shapely geometry, a list / tuple / set mixing them (geometries taken as in the
    twin's CRS), or a GeoDataFrame / GeoSeries (reprojected from its own CRS). A two-way road's id closes
    both directions. Anything else raises :class:`ParameterError`.

    Examples
    --------
    >>> split_closures(["576684245", "-12#3"])
    ([], ['576684245', '-12#3'])
    """
    import shapely

    if closures is None:
        return [], []
    if isinstance(closures, (str, shapely.Geometry)):
        closures = [closures]
    elif hasattr(closures, "geometry") and hasattr(closures, "crs"):  # GeoDataFrame / GeoSeries
        if closures.crs is not None and crs is not None:
            closures = closures.to_crs(crs)
        closures = list(getattr(closures, "geometry", closures))
    elif isinstance(closures, (list, tuple, set, frozenset, np.ndarray, pd.Series)):
        closures = list(closures)
    else:
        raise ParameterError(f"{CLOSURES_TAKES}; got {type(closures).__name__} {closures!r:.80}")
    polys, ids = [], []
    for c in closures:
        if isinstance(c, str):
            if not c.strip():
                raise ParameterError(f"closures holds an empty link id; {CLOSURES_TAKES}")
            ids.append(c.strip())
        elif isinstance(c, shapely.Geometry) and not c.is_empty:
            polys.append(c)
        else:
            raise ParameterError(f"{CLOSURES_TAKES}; got {type(c).__name__} {c!r:.80} in closures")
    return polys, ids


def _node_xy(links) -> pd.DataFrame:
    import shapely

    geoms = links.geometry.to_numpy()
    a = shapely.get_coordinates(shapely.get_point(geoms, 0))
    b = shapely.get_coordinates(shapely.get_point(geoms, -1))
    df = pd.DataFrame({"node": np.r_[links["from_node"].to_numpy(), links["to_node"].to_numpy()],
                       "x": np.r_[a[:, 0], b[:, 0]], "y": np.r_[a[:, 1], b[:, 1]]})
    return df.groupby("node", sort=False)[["x", "y"]].mean()


def _main_component(links) -> np.ndarray:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    open_ = links[links["capacity"] > 0]
    nodes = pd.Index(pd.unique(np.r_[links["from_node"].to_numpy(), links["to_node"].to_numpy()]))
    i = nodes.get_indexer(open_["from_node"])
    j = nodes.get_indexer(open_["to_node"])
    g = coo_matrix((np.ones(len(i)), (i, j)), shape=(len(nodes), len(nodes))).tocsr()
    _, lab = connected_components(g, directed=True, connection="strong")
    big = np.bincount(lab).argmax()
    return nodes[lab == big].to_numpy()


def cut_off_zones(links, zones, unrouted) -> list[dict]:
    """Why trips have no path: the zones (junctions) the closed links cut off from the main open network.

    ``links``: the engine links after closures (capacity 0: closed); ``zones``: the demand's zones;
    ``unrouted``: the trips without a path (columns ``origin``, ``destination``, ``trips``). Every such trip
    starts or ends at a zone outside the largest strongly connected part of the open network (two zones
    inside it always have a path), so these zones explain them all. One row per such zone that trips start
    or end at, most trips first: ``zone``, ``x``, ``y``, ``road_in`` / ``road_out`` (whether an open road
    still leads into it from the main network / out of it to there), ``closed_in`` / ``closed_out`` (the closed
    links that led in / out: opening one of them brings it back), ``trips_to`` / ``trips_from`` (trips with
    no path that end / start there).

    A zone stands for its nearest buildings' trips: one junction of a busy district can hold a quarter of
    a period's trips, so closing one road into it can leave that many trips without a path.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import breadth_first_order

    if len(unrouted) == 0:
        return []
    nodes = pd.Index(pd.unique(np.r_[links["from_node"].to_numpy(), links["to_node"].to_numpy()]))
    is_open = (links["capacity"] > 0).to_numpy()
    i = nodes.get_indexer(links["from_node"])
    j = nodes.get_indexer(links["to_node"])
    n = len(nodes)
    fwd = coo_matrix((np.ones(is_open.sum()), (i[is_open], j[is_open])), shape=(n, n)).tocsr()
    back = fwd.T.tocsr()

    def reach(graph, start: int) -> np.ndarray:
        seen = np.zeros(n, dtype=bool)
        seen[breadth_first_order(graph, start, directed=True, return_predecessors=False)] = True
        return seen

    main = nodes.get_indexer(_main_component(links))
    from_main, to_main = reach(fwd, main[0]), reach(back, main[0])  # a strongly connected part: any node of it
    closed = links.loc[~is_open]
    ci, cj = nodes.get_indexer(closed["from_node"]), nodes.get_indexer(closed["to_node"])
    ids = closed["link_id"].to_numpy()
    u = pd.DataFrame(unrouted)
    to = u.groupby(u["destination"].astype(str))["trips"].sum()
    fr = u.groupby(u["origin"].astype(str))["trips"].sum()
    xy = _node_xy(links)
    rows = []
    for z in map(str, zones):
        k = nodes.get_loc(z)
        if from_main[k] and to_main[k]:
            continue
        row = {"zone": z, "x": float(xy.at[z, "x"]), "y": float(xy.at[z, "y"]),
               "road_in": bool(from_main[k]), "road_out": bool(to_main[k]), "closed_in": [], "closed_out": [],
               "trips_to": float(to.get(z, 0.0)), "trips_from": float(fr.get(z, 0.0))}
        if not row["road_in"]:  # closed links from the main network into what still leads to the zone
            up = reach(back, k)
            row["closed_in"] = sorted({lid.removesuffix(":r") for lid in ids[up[cj] & from_main[ci]]})
        if not row["road_out"]:  # closed links from what the zone still reaches to the main network
            down = reach(fwd, k)
            row["closed_out"] = sorted({lid.removesuffix(":r") for lid in ids[down[ci] & to_main[cj]]})
        if row["trips_to"] or row["trips_from"]:
            rows.append(row)
    return sorted(rows, key=lambda r: -(r["trips_to"] + r["trips_from"]))


def _cut_off_words(zones: list[dict], total_closed: int) -> str:
    """``cut_off_zones`` in words, for the warning: the three with most trips, and how many more."""
    def one(z: dict) -> str:
        if not z["road_in"] and not z["road_out"]:
            how = "no open road in or out"
        else:
            how = "no open road in" if not z["road_in"] else "no open road out"
        led = sorted(set(z["closed_in"]) | set(z["closed_out"]))
        if led:
            how += f" (closed: {', '.join(led[:3])}{f' and {len(led) - 3} more' if len(led) > 3 else ''})"
        return (f"{z['zone']} near {z['x']:.0f},{z['y']:.0f}: {how}; {z['trips_to']:.0f} trips to it, "
                f"{z['trips_from']:.0f} from it")

    n = len(zones)
    more = f"; and {n - 3} more" if n > 3 else ""
    return (f"they start or end at {n} zone{'s' if n != 1 else ''} (the junction nearest their buildings) that "
            f"the {total_closed} closed link{'s' if total_closed != 1 else ''} cut off from the rest of the network: "
            + "; ".join(map(one, zones[:3])) + more)


def land_use_demand(buildings, links, *, period: str = "am", scale: float = 1.0, beta_s: float = 600.0,
                    zones=None, turns=None):
    """OD demand (``Demand`` over junction zones) generated from building use and floor area.

    Productions and attractions per building (:data:`TRIP_RATES`, per 100 m2
    of ``gfa_m2``; footprint area x storeys where missing) go to the nearest
    junction of ``zones`` (default: the main strongly connected part of the
    network); attractions are balanced to productions and a singly
    constrained gravity model with exp(-t / ``beta_s``) on free-flow times
    distributes them. ``pm`` swaps productions and attractions. ``turns``: the network's allowed turns
    (:func:`network_turns`), for the free-flow times; None: every turn allowed.
    """
    from scipy.spatial import cKDTree

    from simulation.traffic import Demand, Network, shortest_path_skims

    per = _period(period)
    if not 0 <= scale < np.inf:
        raise ParameterError(f"demand scale must be a finite number >= 0, got {scale}")
    if len(buildings) == 0:
        raise ParameterError("no buildings: land-use demand needs the buildings layer with use and floor area")
    gfa = buildings["gfa_m2"] if "gfa_m2" in buildings else pd.Series(np.nan, index=buildings.index)
    storeys = buildings["storeys"].fillna(1) if "storeys" in buildings else 1
    gfa = gfa.fillna(buildings.geometry.area * storeys).to_numpy(float)
    use = buildings["use"].fillna("residential").to_numpy() if "use" in buildings else np.full(len(buildings),
                                                                                              "residential")
    prod = np.array([TRIP_RATES.get(u, TRIP_RATES["mixed"])["produce"] for u in use]) * gfa / 100.0
    attr = np.array([TRIP_RATES.get(u, TRIP_RATES["mixed"])["attract"] for u in use]) * gfa / 100.0
    if per["swap"]:
        prod, attr = attr, prod
    zones = _main_component(links) if zones is None else np.asarray(zones)
    xy = _node_xy(links)
    unknown = pd.Index(zones)[~pd.Index(zones).isin(xy.index)].tolist()
    if unknown:
        raise NetworkError(f"zones {unknown[:5]} are not nodes of the road links; give junction ids (from_node / "
                           "to_node values) or leave zones out to use the main connected part of the network")
    xy = xy.loc[zones]
    c = buildings.geometry.centroid
    _, k = cKDTree(xy.to_numpy()).query(np.c_[c.x.to_numpy(), c.y.to_numpy()])
    with np.errstate(over="ignore"):  # an overflow is refused below, with the scale that made it
        P = np.bincount(k, weights=prod, minlength=len(zones)) * scale * per["factor"]
    A = np.bincount(k, weights=attr, minlength=len(zones))
    with np.errstate(over="ignore", invalid="ignore"):
        if A.sum() > 0:
            A = A * P.sum() / A.sum()
    if not (np.isfinite(P).all() and np.isfinite(A).all()):  # inf trips: inf / inf was NaN, counted as 0 trips
        raise ParameterError(f"demand scale {scale:g} gives more trips than can be counted (the productions "
                             "overflow); give a scale near the calibrated one (demo_demand_scale)")
    kept = links[links["capacity"] > 0]
    if turns is not None:  # the allowed turns (network_turns) among the links kept: the skims drive legal routes
        ids = pd.Index(kept["link_id"])
        turns = turns[(ids.get_indexer(turns["from_link"]) >= 0) & (ids.get_indexer(turns["to_link"]) >= 0)]
    net = Network.from_links(pd.DataFrame(kept.drop(columns="geometry")), zones=zones, turns=turns)
    skim = shortest_path_skims(net, Demand(zones, np.zeros((len(zones), len(zones)))))
    f = np.where(np.isfinite(skim), np.exp(-np.where(np.isfinite(skim), skim, 0) / beta_s), 0.0)
    np.fill_diagonal(f, 0.0)
    w = A[None, :] * f
    tot = w.sum(axis=1, keepdims=True)
    m = np.where(tot > 0, P[:, None] * w / np.where(tot > 0, tot, 1.0), 0.0)
    if not np.isfinite(m).all():
        raise ParameterError(f"demand scale {scale:g} gives trips that cannot be counted (the OD matrix is not "
                             "finite); give a scale near the calibrated one (demo_demand_scale)")
    return Demand(zones, m)


@dataclass
class TrafficRun:
    """What a run returns: its ``summary`` dict, the engine result and the link layer."""

    summary: dict
    result: object
    links: object
    saved: bool = True  # False for a run with save=False: nothing stored

    @property
    def run(self) -> str:
        return self.summary["run"]

    @property
    def scenario(self) -> str:
        return self.summary["scenario"]

    def __repr__(self) -> str:  # the dataclass repr printed the whole link layer and the engine's arrays
        from twin_core._display import run_repr

        return run_repr(self, ("mode", "period", "trips", "tstt", "rgap", "converged", "completed",
                               "mean_trip_time_s", "trips_stranded_by_flood", "rerouted_trips"))

    def _repr_html_(self) -> str:
        from twin_core._display import run_repr_html

        return run_repr_html(self, saved=self.saved)


#: how a flood run closes roads in a mesoscopic run: while under water, or for the whole run
FLOOD_TIMINGS = ("timed", "worst")
#: run_traffic's modes: a static user equilibrium, or the mesoscopic simulation
TRAFFIC_MODES = ("assign", "simulate")
#: water depth from which a road is impassable to cars: Pregnolato et al. (2017), "The impact of flooding on
#: road transport: a depth-disruption function", Transportation Research Part D 55, 67-81 (speed 0 at 300 mm)
IMPASSABLE_DEPTH_M = 0.3


def flooded_links(twin, scenario: str | None, flood_run: str, depth: float = IMPASSABLE_DEPTH_M, *,
                  asker: str = "traffic run") -> list[str]:
    """Road links that flood run ``flood_run`` (under ``scenario``) put under ``depth`` m of water or more
    at any time (its ``exposure_road_links``: the deepest point along each link): the storm's worst.
    :func:`flood_closure_windows` says when each was under water. ``asker``: what reads them, as an error
    names it (``"traffic run"``, ``"access analysis"``)."""
    expo = _flood_exposure(twin, scenario, flood_run, depth, asker)
    return sorted(expo.loc[expo["max_depth_m"] >= depth, "link_id"].astype(str))


def flood_closure_windows(twin, scenario: str | None, flood_run: str, depth: float = IMPASSABLE_DEPTH_M,
                          start: float = 0.0, *, asker: str = "traffic run") -> pd.DataFrame:
    """When each road of :func:`flooded_links` was under ``depth`` m of water, in traffic time.

    Columns ``link_id``, ``closed_from_s``, ``closed_until_s`` (``inf``: still under water when the flood
    run ended), ``max_depth_m``. The depth along a link at each of the flood run's depth snapshots is the
    deepest water at points every cell along it (and the cells around them, as in the exposure table);
    the closure runs from the first crossing of ``depth`` to the last (interpolated between snapshots; a
    link that dried and flooded again stays closed in between). A link whose peak fell between two
    snapshots is closed for one snapshot interval around the wettest one. ``start``: when the storm
    began, in seconds after the traffic run's start (negative: before it); windows that end before
    the traffic run starts are left out, those that began before it start at 0. ``attrs["flood_end_s"]``:
    when the flood run ended, in traffic time (on a frame with rows). ``asker`` as in :func:`flooded_links`.
    """
    import shapely

    from twin_core.adapters.flood import link_point_depths, load_depth_snapshots, water_context

    scenario = normalise_scenario_name(scenario)  # NFC: one name typed two ways is one scenario
    scen = scenario or "base"
    expo = _flood_exposure(twin, scenario, flood_run, depth, asker)
    wet = expo.loc[expo["max_depth_m"] >= depth, ["link_id", "max_depth_m"]].astype({"link_id": str})
    cols = ["link_id", "closed_from_s", "closed_until_s", "max_depth_m"]
    if not len(wet):
        return pd.DataFrame(columns=cols)
    if not isinstance(start, (int, float)) or isinstance(start, bool) or not math.isfinite(start):
        raise ParameterError(f"the storm's start must be a finite number of seconds after the traffic run's "
                             f"start, got {start!r}")
    snaps, times, tr = load_depth_snapshots(
        twin, scen, flood_run, missing="when its roads were under water is not known; close them for the whole "
                                       "run (flood_timing='worst') or run the flood again")
    links = twin.layer("road_links", scenario=scenario)
    links = links[links["link_id"].astype(str).isin(wet["link_id"])]
    step = min(abs(float(tr.a)), abs(float(tr.e)))
    coords, idx = shapely.get_coordinates(shapely.segmentize(links.geometry.to_numpy(), step), return_index=True)
    # depth along each link at each snapshot: (links, snapshots)
    series = np.full((len(links), len(times)), np.nan)
    water_mask, ground = water_context(twin, scenario, snaps.shape[1:], tr)  # bridges: as the exposure table
    # the water under a bridge: the cells wet as the flood run counts them (its threshold, 0.15 m before it
    # was recorded), as its exposure table read them
    wet_thr = expo.attrs.get("threshold_m") or 0.15
    for k in range(len(times)):
        d = link_point_depths(snaps[k], tr, coords, idx, water_mask, ground, wet_threshold=wet_thr)
        series[:, k] = pd.Series(d).groupby(idx).max().reindex(range(len(links))).to_numpy()
    series = np.nan_to_num(series, nan=0.0)
    rows = []
    dt_snap = float(np.median(np.diff(times))) if len(times) > 1 else 0.0
    for lid, d, dmax in zip(links["link_id"].astype(str), series, wet.set_index("link_id").loc[
            links["link_id"].astype(str), "max_depth_m"].to_numpy()):
        above = np.flatnonzero(d >= depth)
        if not len(above):  # the peak fell between snapshots
            k = int(np.argmax(d))
            f, u = times[k] - dt_snap / 2, times[k] + dt_snap / 2
        else:
            k1, k2 = above[0], above[-1]
            f = times[0] if k1 == 0 else _crossing(times[k1 - 1], times[k1], d[k1 - 1], d[k1], depth)
            u = np.inf if k2 == len(times) - 1 else _crossing(times[k2], times[k2 + 1], d[k2], d[k2 + 1], depth)
        f, u = f + start, u + start
        if u <= 0:
            continue
        rows.append((lid, max(f, 0.0), u, float(dmax)))
    out = pd.DataFrame(rows, columns=cols)
    out.attrs["flood_end_s"] = float(times[-1] + start)  # when the flood run ended, in traffic time
    return out


def _crossing(t0: float, t1: float, d0: float, d1: float, level: float) -> float:
    """When a depth going linearly from d0 (at t0) to d1 (at t1) crosses ``level``."""
    if d1 == d0:
        return t0
    return float(t0 + (level - d0) / (d1 - d0) * (t1 - t0))


def run_elsewhere(elsewhere, asker: str, otherwise: str) -> str:
    """The end of a "no ... run R under scenario S" error: the scenarios ``elsewhere`` that hold R instead,
    for ``asker`` (the run asking: ``"traffic run"``, ``"access analysis"``) to run on, or ``otherwise``
    when none does.

    >>> run_elsewhere(["levee"], "access analysis", "; run `twin flood` first")
    " (it is under ['levee']: run the access analysis on that scenario)"
    """
    if not elsewhere:
        return otherwise
    where = "that scenario" if len(elsewhere) == 1 else "one of them"
    return f" (it is under {list(elsewhere)}: run the {asker} on {where})"


def _flood_exposure(twin, scenario: str | None, flood_run: str, depth: float, asker: str = "traffic run"
                    ) -> pd.DataFrame:
    """The flood run's exposure_road_links, after checking the run and the depth; a run missing under
    ``scenario`` is said to be where it is, for ``asker`` (the traffic run or access analysis asking) to run
    there."""
    from cim.results import check_run_id

    scenario = normalise_scenario_name(scenario)  # NFC: one name typed two ways is one scenario
    scen = scenario or "base"
    check_run_id(flood_run)
    if isinstance(depth, bool) or not (isinstance(depth, (int, float)) and math.isfinite(depth) and depth > 0):
        raise ParameterError(f"impassable depth must be a number of metres > 0, got {depth!r}")
    have = list_results(twin.store, scenario=scen, run=flood_run)
    if "exposure_road_links" not in set(have["name"]) and len(have):  # the run is there: what it is
        engines = sorted({str(m.get("engine")) for m in have["meta"] if isinstance(m, dict) and m.get("engine")})
        what = " / ".join(e.removeprefix("simulation.") for e in engines) or "another engine's"
        if "flood" in what:
            raise ParameterError(f"flood run {flood_run!r} under scenario {scen!r} has no exposure_road_links (the "
                                 f"roads' depths the {asker} reads): the twin had no road_links when it ran; run "
                                 "`twin flood` again and give its run id")
        raise ParameterError(f"run {flood_run!r} under scenario {scen!r} is a {what} run, not a flood run: the "
                             f"{asker} closes the roads a flood run put under water (its exposure_road_links); give "
                             "a flood run's id (`twin runs STORE` lists the runs, `twin flood` makes one)")
    if "exposure_road_links" not in set(have["name"]):
        elsewhere = sorted(set(list_results(twin.store, run=flood_run, name="exposure_road_links")["scenario"]))
        raise ParameterError(f"no flood run {flood_run!r} under scenario {scen!r}" + run_elsewhere(
            elsewhere, asker, "; run `twin flood` first and give its run id"))
    expo = twin.load_result(scen, flood_run, "exposure_road_links")
    meta = have.loc[have["name"] == "exposure_road_links", "meta"].iloc[0] or {}
    threshold = float(meta.get("threshold_m", 0.0)) if isinstance(meta, dict) else 0.0
    if depth < threshold:
        raise ParameterError(f"flood run {flood_run!r} lists roads flooded above {threshold:g} m only; an impassable "
                             f"depth of {depth:g} m needs a flood run with --threshold {depth:g} or less")
    expo.attrs["threshold_m"] = threshold  # 0: not recorded
    return expo


def _inputs(twin, scenario, closures, capacity_factor=None, flooded_by=None, impassable_depth=IMPASSABLE_DEPTH_M):
    links = network_links(twin.layer("road_links", scenario=scenario))
    closed = closed_links(twin, links, scenario, closures)
    params = twin.scenario(scenario).params() if scenario else {}
    factors = params.get(CAPACITY_PARAM) or {}
    if not isinstance(factors, dict):
        raise ParameterError(f"scenario parameter {CAPACITY_PARAM} must be a mapping {{link_id: factor}}, "
                             f"got {factors!r}")
    factors = dict(factors)
    factors.update(capacity_factor or {})
    if flooded_by is not None:
        present = set(links["link_id"].astype(str))
        for lid in flooded_links(twin, scenario, flooded_by, impassable_depth):
            if lid in present or lid + ":r" in present:  # a road the scenario removed needs no closing
                factors[lid] = 0.0
    for lid, fct in factors.items():
        if not (isinstance(fct, (int, float)) and fct >= 0):
            raise ParameterError(f"capacity factor for {lid!r} must be a number >= 0, got {fct!r}")
        hit = links["link_id"].isin([str(lid), str(lid) + ":r"])
        if not hit.any():
            raise NetworkError(f"capacity factor names link {lid!r}, which is not in road_links as of scenario "
                               f"{scenario or 'base'!r}; check the link id (capacity_factor= or scenario parameter "
                               f"{CAPACITY_PARAM})" + _close_ids(lid, links))
        links.loc[hit, "capacity"] *= fct
    links.loc[links["link_id"].isin(closed), "capacity"] = 0.0
    closed = sorted(links.loc[links["capacity"] <= 0, "link_id"])  # incl. Scenario.close_roads (capacity_vph 0)
    given = params.get(DEMAND_SCALE_PARAM, 1.0)
    try:
        scale = np.nan if isinstance(given, bool) else float(given)
    except (TypeError, ValueError):
        scale = np.nan
    if not scale >= 0:
        raise ParameterError(f"scenario parameter {DEMAND_SCALE_PARAM} must be a number >= 0, got {given!r}")
    return links, closed, scale


ENGINE = "simulation.traffic"  # the results' meta "engine"

#: what each mode saves under scenario + run
RESULT_NAMES = {"assign": ("link_flows", "convergence", "od_demand", "disconnected", "summary"),
                "simulate": ("link_loads", "travel_times", "trajectories", "link_series", "summary")}


def _save(twin, scenario, run, items: dict) -> None:
    """Save ``items`` in one transaction; a run id used before loses the traffic results this run did not
    write (e.g. an earlier assign's ``link_flows`` under a reused id now holding a simulate run)."""
    from cim.results import delete_results, saving_run

    stale = sorted({n for names in RESULT_NAMES.values() for n in names} - set(items))
    with saving_run(twin.store, scenario, run, ENGINE):  # the id checked again, in the transaction
        delete_results(twin.store, scenario, run, names=stale)
        for name, obj in items.items():
            twin.save_result(scenario, run, name, obj, meta={"engine": ENGINE})


def run_assign(twin, scenario: str | None = None, run: str | None = None, *, period: str = "am",
               method: str = "bfw", rgap: float = 1e-4, max_iter: int = 500, demand_scale: float | None = None,
               closures=None, capacity_factor: dict | None = None, flooded_by: str | None = None,
               impassable_depth: float = IMPASSABLE_DEPTH_M, save: bool = True,
               progress: Callable[[float, float], None] | None = None) -> TrafficRun:
    """Static user equilibrium for ``period`` on the scenario's network; results saved under scenario+run.

    ``flooded_by``: a flood run under the same scenario whose roads under ``impassable_depth`` m of water
    or more are closed (:func:`flooded_links`): "a 50-year storm at rush hour".

    ``demand_scale`` multiplies the land-use trip rates (:data:`TRIP_RATES`); None (the default) takes
    the scale that gives the base city the real Chengdu peak's vehicles per km of road
    (:func:`demo_demand_scale`), so a scenario's new buildings add their trips on top of a realistic peak.
    Together with the scenario's ``traffic_demand_scale`` it is at most :data:`MAX_PEAK_MULTIPLE` times that
    scale (a larger one is refused); an assignment whose trips take 3 times their free-flow time or more warns.

    ``save=False`` stores nothing (the returned run has it all; its ``saved`` is False), as for the other
    engines; the run id, when given, is checked all the same."""
    from simulation.traffic import Network, assign

    scenario = normalise_scenario_name(scenario)  # NFC: one name typed two ways is one scenario
    scen = scenario or "base"
    run = claim_run(twin.store, scen, run, ENGINE, "traffic", save=save)  # a bad or taken id fails here
    t0 = time.perf_counter()
    links, closed, scale = _inputs(twin, scenario, closures, capacity_factor, flooded_by, impassable_depth)
    base_links = links.copy()
    base_links["capacity"] = np.where(base_links["capacity"] > 0, base_links["capacity"], 1.0)
    zones = _main_component(base_links)  # zones from the unclosed network: closures do not move people
    demand_scale = _demand_scale(twin, demand_scale, period, scale)  # at most MAX_PEAK_MULTIPLE x the peak
    turns = network_turns(twin, links)  # read once: base_links has the same links (closed ones at capacity 1)
    demand = land_use_demand(twin.layer("buildings", scenario=scenario), base_links, period=period,
                             scale=scale * demand_scale, zones=zones, turns=turns)
    net = Network.from_links(pd.DataFrame(links.drop(columns="geometry")), zones=zones, turns=turns)
    res = assign(net, demand, method=method, rgap=rgap, max_iter=max_iter, on_disconnected="drop",
                 progress=progress)
    out = links[["link_id", "from_node", "to_node", "length", "capacity", "lanes", "geometry"]].copy()
    out["flow"] = res.flow
    out["volume"] = res.flow
    out["cost"] = np.where(np.isfinite(res.cost), res.cost, np.nan)
    out["free_flow_time"] = out["length"] / links["speed"]
    out["vc"] = res.links["vc"].to_numpy()
    out["closed"] = out["link_id"].isin(closed)
    conv = res.history
    s = res.summary()
    engine_wall = s.pop("seconds")
    summary = {"engine": "traffic", "scenario": scen, "run": run, "mode": "assign", "period": period,
               "demand_scale": demand_scale * scale,
               **s, "zones": int(len(zones)), "trips": demand.total,
               "disconnected_trips": float(res.disconnected["trips"].sum()) if len(res.disconnected) else 0.0,
               "closed_links": closed, "flooded_by": flooded_by, "engine_wall_s": engine_wall,
               "cut_off_zones": cut_off_zones(links, zones, res.disconnected),
               "turn_rules": _turn_rules(turns)}
    # TSTT in vehicle-hours under a key that says so; "tstt" (vehicle-seconds) kept for earlier readers
    summary["tstt_veh_h"] = summary["tstt"] / 3600.0
    summary["units"] = {"tstt": "veh-s", "tstt_veh_h": "veh-h", "beckmann": "veh-s", "total_flow": "veh",
                        "trips": "veh", "disconnected_trips": "veh", "engine_wall_s": "s"}
    _warn_stranded(summary, float(demand.total))
    _warn_if_assign_overloaded(twin, summary, out, period, demand_scale * scale)
    _nan_to_none(summary)  # max_vc with every link closed: "none", not a NaN the store warns about
    if save:
        _save(twin, scen, run, {"link_flows": out, "convergence": conv, "od_demand": demand.to_frame().astype(
            {"origin": str, "destination": str}), "disconnected": res.disconnected.astype(
            {"origin": str, "destination": str}), "summary": summary})
    summary["total_wall_s"] = time.perf_counter() - t0
    return TrafficRun(summary, res, out, saved=bool(save))


def _turn_rules(turns: pd.DataFrame | None) -> int | None:
    """The summary's ``turn_rules``: how many allowed turns (from_link, to_link) the routes kept to, or None
    when the twin has no ``road_turns`` table and every turn at a junction was allowed (U-turns too)."""
    return None if turns is None else int(len(turns))


def _nan_to_none(summary: dict) -> None:
    """The summary's NaN figures (a maximum or mean over no link or no trip) as None, in place: JSON keeps None,
    and None says "there is none" where NaN looked like a bug."""
    for k, v in summary.items():
        if isinstance(v, (float, np.floating)) and not math.isfinite(v):
            summary[k] = None


def _trajectories(links, traj: pd.DataFrame) -> pd.DataFrame:
    """vehicle_id, t, x, y along each traversed link's geometry (for animated trips).

    Every vertex of a link gets a time interpolated by distance between the
    vehicle's entry and exit times (a vehicle still on a link at the end
    keeps only its entry point).
    """
    import shapely

    ok = traj.dropna(subset=["enter"]).reset_index(drop=True)
    lidx = pd.Index(links["link_id"]).get_indexer(ok["link_id"])
    coords, owner = shapely.get_coordinates(links.geometry.to_numpy(), return_index=True)
    starts = np.r_[0, np.flatnonzero(np.diff(owner)) + 1]
    counts = np.diff(np.r_[starts, len(owner)])
    seg = np.r_[0.0, np.hypot(*np.diff(coords, axis=0).T)]
    seg[starts] = 0.0
    cum = np.cumsum(seg)
    frac = cum - np.repeat(cum[starts], counts)
    tot = np.repeat(frac[np.r_[starts[1:] - 1, len(frac) - 1]], counts)
    frac = np.where(tot > 0, frac / np.where(tot > 0, tot, 1.0), 0.0)
    done = ok["exit"].notna().to_numpy()
    n = np.where(done, counts[lidx], 1)
    rows = np.repeat(np.arange(len(ok)), n)
    k = np.arange(len(rows)) - np.repeat(np.cumsum(n) - n, n)
    pt = starts[lidx][rows] + k
    e0 = ok["enter"].to_numpy(dtype=float)
    enter = e0[rows]
    exit_ = np.where(done, ok["exit"].to_numpy(dtype=float), e0)[rows]
    t = enter + frac[pt] * (exit_ - enter)
    df = pd.DataFrame({"vehicle_id": ok["vehicle_id"].to_numpy()[rows], "t": t, "x": coords[pt, 0],
                       "y": coords[pt, 1]})
    df = df.sort_values(["vehicle_id", "t"], kind="stable")
    return df.drop_duplicates(["vehicle_id", "t"], keep="first").reset_index(drop=True)


def run_simulate(twin, scenario: str | None = None, run: str | None = None, *, period: str = "am",
                 until: float | str | None = None, demand_scale: float | None = None, route_iterations: int = 3,
                 dt: float = 1.0, seed: int = 0, closures=None, capacity_factor: dict | None = None,
                 flooded_by: str | None = None, impassable_depth: float = IMPASSABLE_DEPTH_M,
                 flood_timing: str = "timed", flood_start: float | str = 0.0, reroute: bool = True,
                 save: bool = True, progress: Callable[[float, float], None] | None = None) -> TrafficRun:
    """Dynamic mesoscopic run of the period's land-use demand; results saved under scenario+run.

    Trips are drawn from the OD matrix (stochastic rounding), depart uniformly
    over the period, start on free-flow shortest routes and re-plan by
    iterated departures (``route_iterations``). ``until``: simulated time, seconds or ``"90min"``/``"2h"``
    (default twice the period).

    ``demand_scale`` as for :func:`run_assign` (None: the real Chengdu peak's density).

    ``flooded_by``: a flood run under the same scenario; its roads under ``impassable_depth`` m of water
    are closed while they are under it (``flood_timing="timed"``: :func:`flood_closure_windows`, with the
    storm starting ``flood_start`` after the period starts, e.g. ``"-30min"`` for a storm that began half
    an hour before) or for the whole run (``"worst"``). Timed closures are announced: drivers plan their
    routes round them for the time they would reach them, and nobody enters a closed road. A driver who
    still meets one (held up on the way) plans again there (``reroute``, default on; summary
    ``rerouted_trips``, column ``reroutes`` of ``travel_times``): round a road closed for good by the
    quickest way left; round one closed for a while only by open roads and only when that is at least a
    minute quicker than waiting for it (:class:`~simulation.traffic.MesoModel`); one that waits plans again
    every 5 minutes while it waits (summary ``held_replans``, column ``held_replans`` of ``travel_times``),
    and takes a way round that has opened up since. One whose road ahead is
    closed for good with no way left to the destination leaves the network there (summary
    ``trips_stranded_by_flood``).

    ``save=False`` stores nothing, as for :func:`run_assign`.
    """
    from simulation.traffic import MesoModel, MesoParameters, route_vehicles

    scenario = normalise_scenario_name(scenario)  # NFC: one name typed two ways is one scenario
    scen = scenario or "base"
    run = claim_run(twin.store, scen, run, ENGINE, "traffic", save=save)  # a bad or taken id fails here
    per = _period(period)
    until = None if until is None else parse_duration(until, "until")
    if flood_timing not in FLOOD_TIMINGS:
        raise ParameterError(f"flood_timing must be one of {list(FLOOD_TIMINGS)}, got {flood_timing!r}: 'timed' "
                             "closes each flooded road while it is under water, 'worst' for the whole run")
    start_s = parse_offset(flood_start, "flood_start")
    if not isinstance(reroute, (bool, np.bool_)):
        raise ParameterError(f"reroute must be True or False, got {reroute!r}")
    if flood_timing != "timed" and flooded_by is None:  # as flood_start below: an option that would do nothing
        raise ParameterError(f"flood_timing={flood_timing!r} says how long a flood run's roads stay closed; it has no "
                             "effect without flooded_by (CLI: --flooded-by RUN): give the flood run, or leave it out")
    timed = flooded_by is not None and flood_timing == "timed"
    if start_s != 0.0 and not timed:
        raise ParameterError(f"flood_start ({flood_start!r}) places the storm for closures in time; it has no effect "
                             + ("with flood_timing='worst' (roads closed for the whole run)" if flooded_by else
                                "without flooded_by") + ": leave it out, or use flood_timing='timed'")
    horizon = until if until is not None else 2 * per["duration_s"]
    t0 = time.perf_counter()
    links, closed, scale = _inputs(twin, scenario, closures, capacity_factor, None if timed else flooded_by,
                                   impassable_depth)
    windows = (flood_closure_windows(twin, scenario, flooded_by, impassable_depth, start=start_s) if timed
               else pd.DataFrame(columns=["link_id", "closed_from_s", "closed_until_s", "max_depth_m"]))
    is_open = links.set_index("link_id")["capacity"] > 0
    # a road the scenario removed or closed needs no closing, nor one the water reaches only after the run; one
    # that reopens only after the run is closed for good within it: those who meet it go round it or, with no
    # way round, leave the network there (counted) instead of queueing to the end and holding up everybody behind
    timed_closures = {lid: (float(w.closed_from_s), float(w.closed_until_s) if w.closed_until_s < horizon else np.inf)
                      for w in windows.itertuples() for lid in (w.link_id, w.link_id + ":r")
                      if is_open.get(lid, False) and w.closed_from_s < horizon}
    base_links = links.copy()
    base_links["capacity"] = np.where(base_links["capacity"] > 0, base_links["capacity"], 1.0)
    zones = _main_component(base_links)
    demand_scale = _demand_scale(twin, demand_scale, period, scale)  # at most MAX_PEAK_MULTIPLE x the peak
    turns = network_turns(twin, links)  # read once: base_links has the same links (closed ones at capacity 1)
    demand = land_use_demand(twin.layer("buildings", scenario=scenario), base_links, period=period,
                             scale=scale * demand_scale, zones=zones, turns=turns)
    rng = np.random.default_rng(seed)
    m = demand.matrix
    n = np.floor(m) + (rng.random(m.shape) < (m - np.floor(m)))
    oi, di = np.nonzero(n)
    cnt = n[oi, di].astype(np.int64)
    o = np.repeat(demand.zone_ids[oi], cnt)
    d = np.repeat(demand.zone_ids[di], cnt)
    dur = per["duration_s"]
    dep = np.sort(rng.random(len(o)) * dur)
    perm = rng.permutation(len(o))
    o, d = o[perm], d[perm]
    open_links = pd.DataFrame(links[links["capacity"] > 0].drop(columns="geometry"))
    # connectivity after closures: trips without a path are reported, not silently dropped. The skim
    # network keeps the closed links (capacity 0: never used), so a zone whose every link is closed is
    # still a zone, only unreachable (on the open links alone it was refused as no endpoint of any link)
    from simulation.traffic import Network, shortest_path_skims, Demand as _D
    skim = shortest_path_skims(Network.from_links(pd.DataFrame(links.drop(columns="geometry")), zones=zones,
                                                  turns=turns), _D(zones, np.zeros((len(zones),) * 2)))
    zi = pd.Index(zones)
    reach = np.isfinite(skim[zi.get_indexer(o), zi.get_indexer(d)])
    unrouted = int((~reach).sum())
    lost = pd.DataFrame({"origin": o[~reach], "destination": d[~reach], "trips": 1.0})  # why: cut_off_zones
    o, d, dep = o[reach], d[reach], dep[reach]
    routes = route_vehicles(open_links, o, d, turns=_turns_among(turns, open_links))
    if timed_closures:
        routes = _dry_ends(open_links, routes, o, d, dep, timed_closures, _turns_among(turns, open_links))
    veh = pd.DataFrame({"vehicle_id": [f"v{i}" for i in range(len(o))], "depart": dep, "edges": routes})
    veh = veh[veh["edges"].map(len) > 0]
    params = MesoParameters(dt=dt, route_iterations=route_iterations, seed=seed, reroute=bool(reroute))
    model = MesoModel(pd.DataFrame(links.drop(columns="geometry")), veh, params, closures=timed_closures,
                      turns=turns)
    res = model.run(until=2 * dur if until is None else until, progress=progress)
    s = res.summary()
    held = np.isfinite(res.trips["stranded"].to_numpy(dtype=float))  # left the network at a road closed for good
    _warn_if_overloaded(twin, s, res.trips[~held], period, demand_scale,
                        flood_closed=len({lid.removesuffix(":r") for lid in timed_closures}))
    ls = res.link_series
    agg = ls.groupby("link_id", sort=False).agg(vehicles=("inflow", "sum"), max_queue=("queue", "max"),
                                                mean_speed_kmh=("speed", "mean"))
    out = links[["link_id", "from_node", "to_node", "length", "capacity", "lanes", "geometry"]].copy()
    out = out.join(agg, on="link_id")
    out["volume"] = out["vehicles"]
    out["vc"] = out["vehicles"] / (out["capacity"] * dur / 3600.0).where(out["capacity"] > 0)
    out["closed"] = out["link_id"].isin(closed)
    out["closed_from_s"] = out["link_id"].map({k: v[0] for k, v in timed_closures.items()}).astype(float)
    out["closed_until_s"] = out["link_id"].map({k: v[1] for k, v in timed_closures.items()}).astype(float)
    # the same keys as a flood or crowd run (sim_time_s, engine_wall_s) and as an assignment (trips: every
    # trip of the demand drawn, disconnected_trips: those without a path, in neither the vehicles nor the times)
    s = dict(s)
    sim_time, engine_wall = s.pop("until_s"), s.pop("engine_seconds")
    # still on the road at the end (or waiting to get on it); a run shorter than the period's hour of departures
    # also has trips that had not set off yet: neither finished nor on the road
    left = res.trips["depart"].to_numpy(dtype=float) <= sim_time
    unfinished = ~res.trips["completed"].to_numpy(dtype=bool) & ~held & left
    summary = {"engine": "traffic", "scenario": scen, "run": run, "mode": "simulate", "period": period,
               "demand_scale": demand_scale * scale,
               "sim_time_s": sim_time, "trips": int(s.get("vehicles", 0)) + unrouted, **s,
               "mean_trip_time_incl_unfinished_s": _mean_time_incl_unfinished(res.trips[~held], sim_time),
               "unfinished_trips": int(unfinished.sum()), "not_departed_trips": int((~left).sum()),
               "disconnected_trips": unrouted,
               "closed_links": closed, "flooded_by": flooded_by, "engine_wall_s": engine_wall,
               "cut_off_zones": cut_off_zones(links, zones, lost), "turn_rules": _turn_rules(turns)}
    if flooded_by is not None:
        summary.update({"flood_timing": flood_timing, "flood_start_s": start_s, "reroute": bool(reroute),
                        "flood_closed_links": sorted(timed_closures), "trips_stranded_by_flood": int(held.sum())})
    _warn_stranded(summary, float(s.get("vehicles", 0)) + unrouted)
    if held.sum() > 0.05 * max(summary["trips"], 1):
        how = (" with no way left round it to their destination" if reroute else
               ", did not plan again (reroute=False, --no-reroute)")
        twin_warn(f"{int(held.sum())} of {summary['trips']} trips ({100 * held.sum() / summary['trips']:.0f} %) met "
                      f"a road that flood run {flooded_by!r} closed for good{how} and left the network there; they "
                      "are not in the mean trip time. See summary 'trips_stranded_by_flood' and the link_loads columns "
                      "closed_from_s / closed_until_s. " + _why_closed_for_good(twin, scen, flooded_by, windows,
                                                                                  sim_time),
                      TwinWarning, stacklevel=2)
    _nan_to_none(summary)  # mean_trip_time_s with no trip finished: "none", not a NaN the store warns about
    trips = res.trips.copy()
    trips["vehicle_id"] = trips["vehicle_id"].astype(str)
    if save:
        _save(twin, scen, run, {"link_loads": out, "travel_times": trips,
                                "trajectories": _trajectories(links, res.trajectories),
                                "link_series": ls.astype({"link_id": str}), "summary": summary})
    summary["total_wall_s"] = time.perf_counter() - t0
    return TrafficRun(summary, res, out, saved=bool(save))


def _why_closed_for_good(twin, scenario: str, flood_run: str, windows: pd.DataFrame, until: float) -> str:
    """Why the flood's roads stay closed to the end, and what would let them reopen."""
    end = windows.attrs.get("flood_end_s")
    if end is not None and end < until:
        return (f"Those roads were still under water when the flood run ended ({end:g} s into this run, which "
                f"goes on to {until:g} s); a flood run that goes on after the rain (until=) lets the water drain "
                "and the roads reopen")
    why = f"Those roads were still under water at the end of this run ({until:g} s)"
    try:
        drained = float(twin.load_result(scenario, flood_run, "summary").get("drainage_m3") or 0.0)
    except Exception:  # noqa: BLE001 - only the advice depends on it
        drained = None
    if drained == 0.0:
        why += (f"; flood run {flood_run!r} drained nothing into the sewers (drainage_mm_h 0: a worst case), a "
                "sewer capacity (drainage_mm_h=) lets the water recede")
    return why


def _dry_ends(links: pd.DataFrame, routes: list, o, d, dep, closures: dict, turns=None) -> list:
    """Routes whose first or last road is closed when the trip would be on it, moved to other roads from (to)
    the same junctions where that is quicker.

    Trips run from junction to junction, but the mesoscopic model keeps a route's first and last road and
    plans the rest round the closures, so a trip whose free-flow route began on a road closed when it set off
    (or ended on one closed when it would get there, at free flow) waited for it, or left the network there
    when it was closed for good, although another road leaves its junction. Such trips are routed again with
    the closed roads avoided where possible; the new route is kept when its free-flow time is shorter than the
    old one's plus the wait at its ends (always, for a road closed for good)."""
    from simulation.traffic import route_vehicles

    ids = links["link_id"].to_numpy()
    fft = (links["length"] / links["speed"]).to_numpy(dtype=float)
    ff = dict(zip(ids, fft))

    def wait(link, t: float) -> float:
        f, u = closures.get(link, (np.inf, np.inf))
        return u - t if f <= t < u else 0.0

    def cost(r, t0: float) -> float:
        """Free-flow time plus the waits at the route's first road (entered at t0) and its last one."""
        times = [ff[x] for x in r]
        return sum(times) + wait(r[0], t0) + wait(r[-1], t0 + sum(times[:-1]))

    hit = [i for i, r in enumerate(routes) if len(r) and (r[0] in closures or r[-1] in closures)
           and (wait(r[0], dep[i]) > 0 or wait(r[-1], dep[i] + sum(ff[x] for x in r[:-1])) > 0)]
    # the roads closed at some time between setting off and reaching the last road (at free flow) are avoided
    # where possible (fewest of them first, then the quickest); one routing per such set of roads
    groups: dict[tuple, list] = {}
    for i in hit:
        t_end = dep[i] + sum(ff[x] for x in routes[i][:-1])
        shut = tuple(sorted(k for k, (f, u) in closures.items() if f <= t_end and u > dep[i]))
        groups.setdefault(shut, []).append(i)
    out = list(routes)
    o, d = np.asarray(o), np.asarray(d)
    for shut, idx in groups.items():
        penalty = np.where(np.isin(ids, list(shut)), fft.sum() + 1.0, 0.0)  # longer than any route
        for i, r in zip(idx, route_vehicles(links, o[idx], d[idx], cost=fft + penalty, turns=turns)):
            if len(r) and cost(r, dep[i]) < cost(routes[i], dep[i]):
                out[i] = r
    return out


def _mean_time_incl_unfinished(trips: pd.DataFrame, until: float) -> float | None:
    """Mean trip time with the trips still on the road at ``until`` counted up to then (a lower bound for them).

    ``mean_trip_time_s`` averages finished trips only, so it falls as congestion keeps more trips from
    finishing; this one does not. None when no vehicle departed by ``until``."""
    dep = trips["depart"].to_numpy(dtype=float)
    gone = dep <= until
    if not gone.any():
        return None
    done = trips["completed"].to_numpy(dtype=bool)
    t = np.where(done, trips["travel_time"].to_numpy(dtype=float), until - dep)
    return float(t[gone].mean())


#: time a trip may take before "not finished" counts against the network (the sample cities cross in minutes)
_GRACE_S = 900.0


def _warn_if_overloaded(twin, s: dict, trips, period: str, demand_scale: float, flood_closed: int = 0) -> None:
    """Say so when most trips never finish: the land-use trip rates are orders of magnitude (the medium city's
    peak at demand_scale 1 is about 6x the real Chengdu peak's density and finishes 12 % of its trips).
    Only trips that left at least ``_GRACE_S`` before the end count: a run cut short by ``until`` is not
    an overloaded network."""
    until = float(s.get("until_s", 0.0))
    due = trips["depart"].to_numpy() <= until - _GRACE_S
    vehicles, done = int(due.sum()), int(trips["completed"].to_numpy()[due].sum())
    if vehicles == 0 or done >= 0.9 * vehicles:
        return

    real = demo_demand_scale(twin, period)
    if flood_closed and abs(demand_scale - real) <= 0.05 * real:
        # the demand is the real peak's: advice to lower demand_scale would be beside the point
        twin_warn(f"only {done} of {vehicles} trips that left by {until - _GRACE_S:g} s finished by {until:g} s, at "
                  f"the real Chengdu peak's density (demand_scale {real:.3g}): the {flood_closed} roads the flood "
                  "closes for a while, and the queues they leave behind when they reopen, hold them back. See the "
                  "trips' 'completed' and the link_loads' queue, closed_from_s and closed_until_s", TwinWarning)
        return
    held = (f" or the {flood_closed} roads the flood closes for a while hold them back (they wait for the water "
            "to fall)" if flood_closed else "")
    twin_warn(f"only {done} of {vehicles} trips that left by {until - _GRACE_S:g} s finished by {until:g} s: the "
                  f"demand overloads the "
                  f"network{held} (demand_scale {demand_scale:g} times the land-use trip rates, which are orders of "
                  f"magnitude). The real Chengdu peak's density is demand_scale {real:.3g} (--demand-scale "
                  f"{real:.3g}); a what-if may of course load it more", TwinWarning, stacklevel=3)


#: an assignment whose trips take this many times their free-flow time (flow-weighted over the links) is
#: overloaded: the BPR curve is far past the v/c it was fitted to (a realistic peak on the sample cities: 1.0-1.4)
_OVERLOAD_TIME_RATIO = 3.0


def _warn_if_assign_overloaded(twin, summary: dict, links, period: str, demand_scale: float) -> None:
    """Say so when an assignment's trips take :data:`_OVERLOAD_TIME_RATIO` times their free-flow time or more:
    the equilibrium then prices queues that would not clear in the period (``_warn_if_overloaded`` says
    it for a mesoscopic run, from the trips that never finish)."""
    flow = links["flow"].to_numpy(dtype=float)
    fft = links["free_flow_time"].to_numpy(dtype=float)
    ok = np.isfinite(flow) & np.isfinite(fft)
    free = float((flow[ok] * fft[ok]).sum())
    tstt = summary.get("tstt")
    if not free > 0 or tstt is None or not tstt >= _OVERLOAD_TIME_RATIO * free:
        return
    real = demo_demand_scale(twin, period)
    vc = summary.get("max_vc")
    n_closed = len(summary.get("closed_links") or [])
    twin_warn(f"the demand overloads the network: the trips take {tstt / free:.3g} times their free-flow time "
              f"({tstt / 3600 / max(summary.get('trips') or 1.0, 1e-9):.3g} h per trip on average"
              + (f", max v/c {vc:.3g}" if isinstance(vc, (int, float)) and math.isfinite(vc) else "")
              + f"), far past the volume-delay curve's range: the figures are no forecast. The demand is "
              f"demand_scale {demand_scale:.3g} times the land-use trip rates, {demand_scale / real:.3g} times the "
              f"real Chengdu peak's density (demand_scale {real:.3g}, the default)"
              + (f", on a network with {n_closed} links closed" if n_closed else "")
              + "; a what-if may of course load it more", TwinWarning, stacklevel=3)


def run_traffic(twin, scenario: str | None = None, run: str | None = None, *, mode: str = "assign",
                progress: Callable[[float, float], None] | None = None, **kwargs) -> TrafficRun:
    """Entry point for jobs: ``mode`` ``assign`` (static UE) or ``simulate`` (mesoscopic)."""
    if mode not in TRAFFIC_MODES:
        raise ParameterError(f"mode must be 'assign' or 'simulate', got {mode!r}")
    fn = run_assign if mode == "assign" else run_simulate
    return fn(twin, scenario, run, progress=progress, **kwargs)


run_traffic.forwards_to = (run_assign, run_simulate)  # the map server checks job params against these


#: The real routed Chengdu morning peak (shared/data/chengdu/morning_rush_hour.rou.xml): 9,898 vehicles in
#: the first hour on the 852-edge central-Chengdu network, 130.73 km of directed links: vehicles per link-km.
REAL_PEAK_VEH_PER_LINK_KM = 9898 / 130.733


#: The most demand a run takes, as a multiple of the real Chengdu peak's density (:func:`demo_demand_scale`, the
#: calibration of the land-use trip rates; the scenario parameter ``traffic_demand_scale`` counts in the same
#: multiples). Ten times the densest peak measured is far past what the network carries: on the small sample
#: city an assignment at 10x has v/c 3.6 and trips 5.6x their free-flow time (at 25x: v/c 9, 150x), and
#: a mesoscopic run at 10x leaves 44 % of its trips unfinished after 2 h. Beyond it the figures only grow
#: without meaning (--demand-scale 1e30 gave a TSTT of 7e149 veh-h, 1e308 overflowed to 0 trips).
MAX_PEAK_MULTIPLE = 10.0


def _demand_scale(twin, given, period: str, scenario_scale: float = 1.0) -> float:
    """``given`` checked (a number >= 0), or for None the base city's calibrated :func:`demo_demand_scale`;
    with the scenario's ``traffic_demand_scale`` (``scenario_scale``, which multiplies it) at most
    :data:`MAX_PEAK_MULTIPLE` times the calibrated scale."""
    real = demo_demand_scale(twin, period)
    if given is None:
        value = real
    else:
        try:
            value = np.nan if isinstance(given, bool) else float(given)
        except (TypeError, ValueError, OverflowError):
            value = np.nan
        if not value >= 0 or not np.isfinite(value):
            raise ParameterError(f"demand_scale must be a finite number >= 0 (it multiplies the land-use trip rates), "
                                 f"got {given!r}; leave it out for the real Chengdu peak's density "
                                 f"({real:.3g} on this city)")
    limit = MAX_PEAK_MULTIPLE * real
    if not value * scenario_scale <= limit * (1 + 1e-9):  # NaN too
        why = (f"more than {MAX_PEAK_MULTIPLE:g} times the real Chengdu peak's density on this city (demand_scale "
               f"{real:.3g} for period {period!r}, the calibration of the land-use trip rates), the most a run takes: "
               "the network is hopelessly overloaded long before (queues to the end of the run), and the figures "
               "beyond mean nothing")
        if given is None or scenario_scale > MAX_PEAK_MULTIPLE:  # the scenario's parameter alone is too much
            raise ParameterError(f"scenario parameter {DEMAND_SCALE_PARAM} {scenario_scale:g} (it multiplies the "
                                 f"demand) asks for {why}. Set it to at most {MAX_PEAK_MULTIPLE:g} (twin scenario set "
                                 f"STORE SCENARIO {DEMAND_SCALE_PARAM} N), or take it back (twin scenario undo)")
        by = (f"demand_scale {value:g} times the scenario's {DEMAND_SCALE_PARAM} {scenario_scale:g}"
              if scenario_scale != 1.0 else f"demand_scale {given!r}")
        raise ParameterError(f"{by} is {why}. Give a demand_scale (--demand-scale) of at most "
                             f"{limit / scenario_scale:.3g}" + (f", or lower {DEMAND_SCALE_PARAM}" if scenario_scale != 1.0
                                                                 else ""))
    return value


def demo_demand_scale(twin, period: str = "am") -> float:
    """Scale of the land-use demand that gives the real Chengdu peak's vehicles per km of road.

    :data:`TRIP_RATES` are orders of magnitude; for the demo the generated total
    is calibrated to the observed density of the real routed peak on the same
    network (:data:`REAL_PEAK_VEH_PER_LINK_KM`).
    """
    links = twin.layer("road_links")
    if "buildings" not in twin.layers():
        raise LayerNotFoundError(
            f"this twin has no layer 'buildings' (layers: {sorted(twin.layers())}): the traffic runs make their demand "
            "from the buildings' use and floor area (land use), so they need them (import them with twin import "
            "STORE FILE --class buildings). To run the engine on SUMO routes (a .rou.xml) instead, use Python: see the README, "
            "'The real Chengdu morning peak'")
    km = float((links["length_m"].fillna(links.geometry.length) if "length_m" in links else links.geometry.length).sum()) / 1000
    b = twin.layer("buildings")
    gfa = b["gfa_m2"].fillna(b.geometry.area * b["storeys"].fillna(1)).to_numpy(float)
    use = b["use"].fillna("residential").to_numpy()
    key = "attract" if _period(period)["swap"] else "produce"
    total = float((np.array([TRIP_RATES.get(u, TRIP_RATES["mixed"])[key] for u in use]) * gfa / 100.0).sum())
    total *= _period(period)["factor"]
    return REAL_PEAK_VEH_PER_LINK_KM * km / total if total > 0 else 1.0


def run_traffic_demo(twin, progress: Callable[[float, float], None] | None = None) -> TrafficRun:
    """The demo's morning peak: an equilibrium assignment (run ``demo-traffic-assign``) and a mesoscopic
    run with route choice (run ``demo-traffic``: link loads and animated trips), both on the base city,
    with the demand calibrated to the real Chengdu peak's density (:func:`demo_demand_scale`)."""
    scale = demo_demand_scale(twin, "am")
    run_assign(twin, None, "demo-traffic-assign", period="am", demand_scale=scale)
    return run_simulate(twin, None, "demo-traffic", period="am", route_iterations=2, progress=progress,
                        demand_scale=scale)


#: the demo's cascade: a scenario where a 50-year storm breaks at the start of the morning peak
STORM_RUSH_SCENARIO = "storm_rush"


#: The sewers of the demo's storm at rush hour, mm/h: GB 50014-2021 (table 4.1.3) designs the storm sewers of a
#: megacity's centre for a 3-5-year storm; Chengdu's storm formula (the one the design storm uses,
#: q = 2806 (1 + 0.803 lg P) / (t + 12.8 P^0.231)^0.768 L/(s ha)) gives 139 L/(s ha) = 50 mm/h for P = 3 years
#: over 1 hour. The flood engine's own default stays 0 (no sewers: the worst case); without them the water
#: stands in the low streets for hours and the demo stranded 45 % of the morning's trips (cut off, not late).
STORM_RUSH_DRAINAGE_MM_H = 50.0


def run_storm_rush_demo(twin, progress: Callable[[float, float], None] | None = None) -> TrafficRun:
    """The demo's "50-year storm at rush hour": under scenario ``storm_rush`` (made if missing), a 30-minute
    50-year design storm (run ``demo-storm``, followed for 2 hours, as long as the traffic run, so the water
    drains through sewers of the 3-year design capacity, :data:`STORM_RUSH_DRAINAGE_MM_H`, and roads reopen)
    and the morning peak at the real Chengdu density (run ``demo-storm-traffic``) with each road closed while
    the storm has it under 0.3 m of water."""
    from twin_core.adapters.flood import run_flood

    if STORM_RUSH_SCENARIO not in twin.scenarios.names():
        twin.scenarios.create(STORM_RUSH_SCENARIO, "a 50-year storm breaks as the morning peak starts")
    run_flood(twin, STORM_RUSH_SCENARIO, "demo-storm", storm="50y", duration="30min", until="2h",
              snapshot_interval="10min", drainage_mm_h=STORM_RUSH_DRAINAGE_MM_H)
    return run_simulate(twin, STORM_RUSH_SCENARIO, "demo-storm-traffic", period="am", route_iterations=2,
                        demand_scale=demo_demand_scale(twin, "am"), flooded_by="demo-storm", progress=progress)


def _trips_without_path(summary: dict) -> float:
    # trips_unrouted: the name in simulate runs stored before 2026-12-04
    return float(summary.get("disconnected_trips", summary.get("trips_unrouted", 0.0)) or 0.0)


def _warn_stranded(summary: dict, total: float) -> None:
    """Say so when closures leave many trips without a path: they are left out of TSTT / mean trip time."""
    lost = _trips_without_path(summary)
    if total > 0 and lost > 0.05 * total:
        n_closed = len(summary.get("closed_links", []))
        zones = summary.get("cut_off_zones") or []
        why = (_cut_off_words(zones, n_closed) + ". " if zones else f"(closed links: {n_closed}); ")
        twin_warn(f"{lost:.0f} of {total:.0f} trips ({100 * lost / total:.0f} %) have no path on this network: "
                  f"{why}They are left out of the travel times, so the network can look faster than with them. "
                  "See summary 'cut_off_zones' and 'closed_links'", TwinWarning, stacklevel=3)


def compare_traffic_runs(twin, a: tuple[str, str], b: tuple[str, str], *, save_as: tuple[str, str] | None = None):
    """Per-link difference layer and headline changes of two stored runs ((scenario, run) each).

    Works for two ``assign`` runs (flow, TSTT in vehicle-hours: ``tstt_veh_a_h``, ``tstt_veh_b_h``,
    ``tstt_veh_change_h``) or two ``simulate`` runs
    (vehicles, mean trip time, completed trips). ``save_as`` = (scenario,
    run) stores ``comparison`` (layer) and ``comparison_summary`` as a comparison's run (engine ``compare``;
    an id holding another engine's run is refused). ``twin compare`` / :meth:`Twin.compare` do this for every
    engine.
    """
    sa, sb = twin.load_result(*a, "summary"), twin.load_result(*b, "summary")
    for key, s in ((a, sa), (b, sb)):
        if not isinstance(s, dict) or s.get("engine") != "traffic" or s.get("mode") not in RESULT_NAMES:
            raise ParameterError(f"run {key[1]!r} of scenario {key[0]!r} is not a traffic assign or simulate run")
    if sa.get("mode") != sb.get("mode"):
        raise ParameterError(f"cannot compare a {sa.get('mode')} run with a {sb.get('mode')} run")
    name = "link_flows" if sa["mode"] == "assign" else "link_loads"
    col = "flow" if sa["mode"] == "assign" else "vehicles"
    la, lb = twin.load_result(*a, name), twin.load_result(*b, name)
    # every link of either run: a road added or removed by the what-if has NaN on the side it is missing from
    # and counts as 0 there in the difference
    only_b = lb.loc[~lb["link_id"].isin(la["link_id"]), ["link_id", "geometry"]]
    layer = pd.concat([la[["link_id", "geometry"]], only_b], ignore_index=True)
    layer[f"{col}_a"] = la.set_index("link_id")[col].reindex(layer["link_id"]).to_numpy()
    layer[f"{col}_b"] = lb.set_index("link_id")[col].reindex(layer["link_id"]).to_numpy()
    layer["diff"] = layer[f"{col}_b"].fillna(0.0) - layer[f"{col}_a"].fillna(0.0)
    if sa["mode"] == "assign":
        # TSTT in vehicle-hours, the unit in the key (``twin compare`` prints "tstt_veh_h: a -> b"); stored
        # summaries hold it in vehicle-seconds as "tstt"
        ha, hb = sa["tstt"] / 3600.0, sb["tstt"] / 3600.0
        summary = {"tstt_veh_a_h": ha, "tstt_veh_b_h": hb, "tstt_veh_change_h": hb - ha,
                   "tstt_change_pct": 100 * (hb - ha) / ha if ha else None}
    else:
        ta, tb = sa.get("mean_trip_time_s"), sb.get("mean_trip_time_s")  # None (null) where no trip finished
        summary = {"mean_trip_time_a_s": ta, "mean_trip_time_b_s": tb,
                   "mean_trip_time_change_s": tb - ta if ta is not None and tb is not None else None,
                   "completed_a": sa["completed"], "completed_b": sb["completed"]}
    summary.update({"a": list(a), "b": list(b), "links_more": int((layer["diff"] > 1e-6).sum()),
                    "links_less": int((layer["diff"] < -1e-6).sum())})
    # trips with no path (zones cut off by closures or a flood) are in neither TSTT nor the mean trip time:
    # a what-if that strands people looked faster than today
    lost_a, lost_b = _trips_without_path(sa), _trips_without_path(sb)
    summary.update({"trips_without_path_a": lost_a, "trips_without_path_b": lost_b})
    notes = []
    if sa["mode"] == "simulate":
        # trips that met a road the flood closed for good with no way left, and left the network there: in the
        # trips and not in the mean trip time, as those without a path (0 for a run without --flooded-by)
        st_a, st_b = (int(s.get("trips_stranded_by_flood") or 0) for s in (sa, sb))
        summary.update({"trips_stranded_by_flood_a": st_a, "trips_stranded_by_flood_b": st_b})
        if st_a != st_b:
            more, key = (b, st_b - st_a) if st_b > st_a else (a, st_a - st_b)
            notes.append(f"run {more[1]!r} ({more[0]}) strands {key} more trips at roads its flood closed for good "
                         "(summary 'trips_stranded_by_flood'); they are not in its mean trip time")
    if lost_b > lost_a + 0.5 or lost_a > lost_b + 0.5:
        more, key = (b, lost_b - lost_a) if lost_b > lost_a else (a, lost_a - lost_b)
        notes.append(f"run {more[1]!r} ({more[0]}) leaves {key:.0f} more trips without a path; they are not in its "
                     f"{'TSTT' if sa['mode'] == 'assign' else 'mean trip time'}, so it can look faster than it is")
    if sa["mode"] == "simulate":
        # the mean trip time is over finished trips: a run that leaves more unfinished looks faster, too. The
        # share is over every trip of the demand: a run with roads shut has fewer vehicles (the trips without a
        # path are none), and "100 % of its vehicles" finished fewer trips than a run that routed them all
        def share_of(s: dict) -> float:
            total = s.get("trips") or (s.get("vehicles") or 0) + _trips_without_path(s)
            return s["completed"] / total if total else 1.0

        share = {"a": share_of(sa), "b": share_of(sb)}
        summary.update({"completed_share_a": share["a"], "completed_share_b": share["b"]})
        if abs(share["a"] - share["b"]) > 0.05:
            worse = b if share["b"] < share["a"] else a
            notes.append(f"run {worse[1]!r} ({worse[0]}) finishes {100 * min(share.values()):.0f} % of its trips "
                         f"against {100 * max(share.values()):.0f} %; mean trip times are over finished trips only")
    if notes:
        summary["note"] = "; ".join(notes)
        twin_warn(summary["note"], TwinWarning, stacklevel=2)
    if save_as:  # a comparison's run, as twin compare --save keeps one: its id claimed, its results marked so
        from cim.results import claim_run, saving_run

        scen, run = save_as
        run = claim_run(twin.store, scen, run, "compare")  # a flood's or a traffic run's id is not written into
        with saving_run(twin.store, scen, run, "compare"):
            twin.save_result(scen, run, "comparison", layer, meta={"engine": "compare"})
            twin.save_result(scen, run, "comparison_summary", summary, meta={"engine": "compare"})
    return layer, summary
