"""Emergency access: how long a fire engine or an ambulance takes from its nearest station to each building, on
the roads of a scenario, dry or as a flood run leaves them ("which homes can the fire brigade still reach in
the storm?").

The stations are the ``pois`` of one kind (``fire_station``, ``hospital`` ...). The roads are the scenario's
``road_links`` (both ways where not one-way), each driven at its speed limit (emergency vehicles pass the
queues); a road closed in the scenario (capacity 0, a closure area, ``closed_links``) or under water from
``impassable_depth`` m (0.3 m: Pregnolato et al. 2017, as for traffic) is no road. A station and a building
open onto their nearest street and every other up to :data:`ACCESS_REACH_M` further (the straight stretch at
:data:`ACCESS_SPEED_KMH`): an engine leaves along one of its station's streets, a building is reached along
one of its own, and a shut street is no way out or in. Shortest
times from every station at once: :func:`scipy.sparse.csgraph.dijkstra` from one extra node linked to them.

Results saved under ``scenario`` + ``run``: table ``access_buildings`` (``building_id``, ``time_s``, NaN where
no open road leads there; ``within``; with a flood, ``dry_time_s`` and ``lost``: within when dry, not in the
flood) and ``summary``.
"""

from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np
import pandas as pd

from twin_core.errors import LayerNotFoundError, ParameterError
from twin_core.units import parse_duration

__all__ = ["AccessRun", "run_access", "ACCESS_TARGETS", "ACCESS_SPEED_KMH", "ACCESS_REACH_M"]

#: the response standards the default ``within`` comes from, per station kind. GB 51054-2014 "Code for design
#: of urban fire station", 3.0.2: a fire station's district is drawn so that its crew reaches the district's
#: edge within 5 min of the dispatch order, of which about 1 min is turning out: 4 min on the road. Hospitals
#: (ambulances): a 5 km service radius, driven at 30 km/h
ACCESS_TARGETS = {"fire_station": (240.0, "GB 51054-2014 3.0.2: 5 min from the dispatch order to the district's "
                                          "edge, about 1 min of it turning out"),
                  # the National Health Commission's 2020 guidance on pre-hospital emergency care (国卫医发〔2020〕19号):
                  # an urban ambulance station serves a radius of at most 5 km: 10 min at 30 km/h
                  "hospital": (600.0, "国卫医发〔2020〕19号: urban ambulance service radius 5 km, 10 min at 30 km/h")}
#: the speed over the last stretch between the street and a station or building (a yard, a lane)
ACCESS_SPEED_KMH = 20.0
#: a station or building opens onto every street up to this much further than its nearest (m)
ACCESS_REACH_M = 30.0


class AccessRun:
    """An access run: ``scenario``, ``run``, ``result`` (the per-building table) and ``summary`` (a dict)."""

    def __init__(self, scenario: str, run: str, result: pd.DataFrame, summary: dict, saved: bool) -> None:
        self.scenario, self.run, self.result, self.summary, self.saved = scenario, run, result, summary, saved

    def __repr__(self) -> str:
        from twin_core._display import run_repr

        return run_repr(self, ("within_share", "unreachable", "lost"))

    def _repr_html_(self) -> str:
        from twin_core._display import run_repr_html

        return run_repr_html(self, saved=self.saved)


def _open_links(twin, scenario, flooded_by, flood_time, impassable_depth, speeds_from=None):
    """(directed links with travel time ``t`` s, closed link ids, flooded link ids)."""
    from cim.results import list_results
    from twin_core.adapters.traffic import (closed_links, flood_closure_windows, flooded_links,
                                            network_links)

    links = network_links(twin.layer("road_links", scenario=scenario))
    if speeds_from is not None:  # a traffic run's mean speed on each link, where it is below the limit
        scen = scenario or "base"
        have = list_results(twin.store, scenario=scen, run=speeds_from)
        if "link_loads" not in set(have["name"]):
            raise ParameterError(f"no traffic simulate run {speeds_from!r} under scenario {scen!r} (it has no "
                                 "link_loads); run `twin traffic simulate` first and give its run id")
        loads = twin.load_result(scen, speeds_from, "link_loads")
        seen = pd.Series(pd.to_numeric(loads["mean_speed_kmh"], errors="coerce").to_numpy() / 3.6,
                         index=loads["link_id"].astype(str)).groupby(level=0).min()
        v = links["link_id"].map(seen).to_numpy(float)
        links["speed"] = np.where(np.isfinite(v) & (v > 0), np.minimum(links["speed"].to_numpy(float), v),
                                  links["speed"].to_numpy(float))
    links["t"] = links["length"] / links["speed"]
    closed = set(links.loc[links["capacity"] <= 0, "link_id"]) | set(closed_links(twin, links, scenario))
    flooded: set[str] = set()
    if flooded_by is not None:
        if flood_time is None:
            wet = flooded_links(twin, scenario, flooded_by, impassable_depth)
        else:
            t = parse_duration(flood_time, "flood_time")
            w = flood_closure_windows(twin, scenario, flooded_by, impassable_depth)
            wet = w.loc[(w["closed_from_s"] <= t) & (t < w["closed_until_s"]), "link_id"].astype(str)
        wet = set(wet)
        # a flooded road is flooded both ways (the reverse direction is '<id>:r')
        flooded = {lid for lid in links["link_id"] if lid in wet or lid.removesuffix(":r") in wet}
    return links, closed, flooded


def _times_from(links, shut: set, sources_xy: np.ndarray, targets_xy: np.ndarray) -> np.ndarray:
    """Seconds from the nearest source to each target over the open links (NaN: no open road leads there).

    Each source and target opens onto its streets (``links`` without the ``:r`` reverse rows: its nearest and
    every other up to :data:`ACCESS_REACH_M` further), at the point of each nearest to it: a fire engine leaves
    along one of its station's streets, either way the street is open, and reaches a building along one of the
    building's. A shut street is no way in or out.
    """
    import shapely
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import dijkstra
    from scipy.spatial import cKDTree

    from twin_core.adapters.traffic import _node_xy

    nodes = pd.Index(_node_xy(links).index)
    n = len(nodes)
    ok = links[~links["link_id"].isin(shut)]
    e = pd.DataFrame({"i": nodes.get_indexer(ok["from_node"]), "j": nodes.get_indexer(ok["to_node"]),
                      "t": ok["t"].to_numpy()})
    road = links[~links["link_id"].str.endswith(":r")].reset_index(drop=True)
    back_ids = set(links["link_id"])
    fwd = ~road["link_id"].isin(shut).to_numpy()  # open from its from_node towards its to_node
    bwd = np.array([(lid + ":r") in back_ids and (lid + ":r") not in shut for lid in road["link_id"]])
    a = nodes.get_indexer(road["from_node"])
    b = nodes.get_indexer(road["to_node"])
    t = road["t"].to_numpy()
    geoms = road.geometry.to_numpy()
    tree = shapely.STRtree(geoms)
    v = ACCESS_SPEED_KMH / 3.6
    # the roads' vertices every <= 10 m, for a quick upper bound of each point's distance to its nearest road
    dense = shapely.get_coordinates(shapely.segmentize(geoms, 10.0))
    vtree = cKDTree(dense)

    def stand(xy):
        """The streets by each point: its nearest and every other up to :data:`ACCESS_REACH_M` further (a
        corner building opens onto two streets; a one-way ramp is not the only way in): (point index, road index,
        share of the road before the point, seconds from the point to the road), one row per pair."""
        pts = shapely.points(xy)
        # its nearest road vertex is at most 5 m further than its nearest road: the reach covers that road too
        d0, _ = vtree.query(xy)
        # a building far from any road (the city's edge) opens onto the streets not much further than its nearest
        p, k = tree.query(pts, predicate="dwithin", distance=d0 + ACCESS_REACH_M)
        frac = shapely.line_locate_point(geoms[k], pts[p], normalized=True)
        return p, k, frac, shapely.distance(geoms[k], pts[p]) / v

    # every source at once: one more node (n), linked to the ends of each source's street it can drive to
    _, k, f, off = stand(sources_xy)
    src_k, src_f, src_off = k, f, off
    src = [pd.DataFrame({"i": n, "j": b[k][fwd[k]], "t": (off + (1 - f) * t[k])[fwd[k]]}),
           pd.DataFrame({"i": n, "j": a[k][bwd[k]], "t": (off + f * t[k])[bwd[k]]})]
    e = pd.concat([e, *src], ignore_index=True).groupby(["i", "j"], as_index=False)["t"].min()  # parallel: quickest
    g = csr_matrix((e["t"].to_numpy() + 1e-9, (e["i"].to_numpy(), e["j"].to_numpy())), shape=(n + 1, n + 1))
    dist = dijkstra(g, directed=True, indices=n)
    p, k, f, off = stand(targets_xy)
    via_a = np.where(fwd[k], dist[a[k]] + f * t[k], np.inf)  # along the street from its start
    via_b = np.where(bwd[k], dist[b[k]] + (1 - f) * t[k], np.inf)  # or back from its end
    pair_t = np.minimum(via_a, via_b) + off
    # a building on a station's own street: straight along it, the way the street is open
    for q in np.unique(src_k):
        on = np.flatnonzero(k == q)
        for sf, so in zip(src_f[src_k == q], src_off[src_k == q]):
            ahead = f[on] >= sf
            ok_dir = np.where(ahead, fwd[q], bwd[q])
            direct = np.where(ok_dir, so + np.abs(f[on] - sf) * t[q] + off[on], np.inf)
            pair_t[on] = np.minimum(pair_t[on], direct)
    out = np.full(len(targets_xy), np.inf)
    np.minimum.at(out, p, pair_t)  # the quickest of its streets
    return np.where(np.isfinite(out), out, np.nan)


#: the demo's access run: ambulances from the hospitals in the storm at rush hour (scenario storm_rush)
DEMO_ACCESS = {"from_kind": "hospital", "scenario": "storm_rush", "flooded_by": "demo-storm", "run": "demo-access"}


def run_access_demo(twin, progress: Callable[[float, float], None] | None = None) -> "AccessRun":
    """The demo's emergency access: which buildings an ambulance reaches from the hospitals within 10 min
    while the demo storm's water closes the roads (run ``demo-access`` under ``storm_rush``)."""
    return run_access(twin, progress=progress, **DEMO_ACCESS)


def run_access(twin, from_kind: str = "fire_station", within=None, *, scenario: str | None = None,
               run: str | None = None, flooded_by: str | None = None, flood_time=None,
               impassable_depth: float | None = None, speeds_from: str | None = None, save: bool = True,
               progress: Callable[[float, float], None] | None = None) -> AccessRun:
    """Minutes from the nearest ``from_kind`` station (a ``pois`` kind) to every building, and which are within
    ``within`` (``"4min"``; default for fire stations: :data:`ACCESS_TARGETS`), on the roads of ``scenario``,
    dry or, with ``flooded_by`` (a flood run under the same scenario), as its water leaves them: at its peak or
    ``flood_time`` after the storm began. Roads are driven at their speed limit, or with ``speeds_from`` (a
    traffic simulate run under the same scenario) at its mean speed on each road where that is lower: the
    ambulance at rush hour. See the module docstring.

    Returns an :class:`AccessRun`; its summary has ``buildings``, ``within`` (count), ``within_share``,
    ``unreachable``, ``median_time_s`` and, with a flood, ``lost`` (within when dry, not now) and
    ``flooded_links``.
    """
    from cim.results import check_run_id
    from cim.scenario import normalise_scenario_name
    from twin_core.adapters.traffic import IMPASSABLE_DEPTH_M

    t0 = time.perf_counter()
    scenario = normalise_scenario_name(scenario)
    scen = scenario or "base"
    twin.scenario(scenario)  # an unknown scenario fails here
    if save and run is not None:
        check_run_id(run)
    if flood_time is not None and flooded_by is None:
        raise ParameterError("flood_time needs flooded_by (the flood run whose water at that time closes roads)")
    depth = IMPASSABLE_DEPTH_M if impassable_depth is None else impassable_depth
    if not isinstance(from_kind, str) or not from_kind:
        raise ParameterError(f"from_kind must be a kind of the pois layer (e.g. 'fire_station'), got {from_kind!r}")
    if within is None:
        if from_kind not in ACCESS_TARGETS:
            raise ParameterError(f"give within= (e.g. '10min'): there is no response standard here for "
                                 f"{from_kind!r} stations (standards known: {sorted(ACCESS_TARGETS)})")
        limit, source = ACCESS_TARGETS[from_kind]
    else:
        limit, source = parse_duration(within, "within"), "given"
        if not (math.isfinite(limit) and limit > 0):
            raise ParameterError(f"within must be a positive duration, got {within!r}")
    for name in ("pois", "road_links", "buildings"):
        if name not in twin.layers():
            raise LayerNotFoundError(f"the twin has no {name!r} layer, which an access analysis needs")
    pois = twin.layer("pois", scenario=scenario)
    kinds = pois["kind"].astype(str) if "kind" in pois else pd.Series("", index=pois.index)
    st = pois[kinds == from_kind]
    if not len(st):
        raise ParameterError(f"no {from_kind!r} in the pois layer (kinds there: {sorted(set(kinds))}); add the "
                             "stations (twin import ... --class pois) or choose another kind")
    bld = twin.layer("buildings", scenario=scenario, columns=["building_id"])  # ids and footprints only
    cen = bld.geometry.representative_point()
    sxy = np.column_stack([st.geometry.x, st.geometry.y])
    bxy = np.column_stack([cen.x, cen.y])
    links, closed, flooded = _open_links(twin, scenario, flooded_by, flood_time, depth, speeds_from)
    if progress is not None:
        progress(0.0, 2.0)
    times = _times_from(links, closed | flooded, sxy, bxy)
    ids = bld["building_id"].astype(str).to_numpy() if "building_id" in bld else np.arange(len(bld)).astype(str)
    table = pd.DataFrame({"building_id": ids, "time_s": times, "within": np.nan_to_num(times, nan=np.inf) <= limit})
    summary = {"engine": "access", "scenario": scen, "from_kind": from_kind, "stations": int(len(st)),
               "within_s": float(limit), "within_from": source, "buildings": int(len(table)),
               "within": int(table["within"].sum()), "within_share": float(table["within"].mean()),
               "unreachable": int(np.isnan(times).sum()),
               "median_time_s": float(np.nanmedian(times)) if np.isfinite(times).any() else None,
               "closed_links": len(closed),
               "speeds": f"traffic run {speeds_from}'s mean speeds, at most the limit" if speeds_from else
               "speed limit (free flow)"}
    if flooded_by is not None:
        dry = _times_from(links, closed, sxy, bxy)
        dry_in = np.nan_to_num(dry, nan=np.inf) <= limit
        table["dry_time_s"] = dry
        table["lost"] = dry_in & ~table["within"].to_numpy()
        summary.update({"flooded_by": flooded_by, "flood_time_s": None if flood_time is None else
                        parse_duration(flood_time, "flood_time"), "impassable_depth_m": float(depth),
                        "flooded_links": len(flooded), "within_dry": int(dry_in.sum()),
                        "lost": int(table["lost"].sum()),
                        "cut_off": int((np.isnan(times) & np.isfinite(dry)).sum())})
    if progress is not None:
        progress(2.0, 2.0)
    run = run or twin.new_run_id("access")
    if save:
        meta = {k: summary[k] for k in ("from_kind", "within_s", "within_from")}
        with twin.store.transaction():
            twin.save_result(scen, run, "access_buildings", table, meta=meta)
            twin.save_result(scen, run, "summary", {**summary, "run": run}, meta={"engine": "access"})
    summary.update(run=run, total_wall_s=time.perf_counter() - t0)
    return AccessRun(scen, run, table, summary, save)
