"""Emergency access: how long a fire engine or an ambulance takes from its nearest station to each building, on
the roads of a scenario, dry or as a flood run leaves them ("which homes can the fire brigade still reach in
the storm?").

The stations are the ``pois`` of one kind (``fire_station``, ``hospital`` ...). The roads are the scenario's
``road_links`` (both ways where not one-way), each driven at :data:`ACCESS_DRIVE_KMH` (30 km/h, the average
emergency speed both response standards are drawn up with), or at its speed limit where that is lower
(``drive_kmh=None``: at the limits; emergency vehicles pass the queues, ``speeds_from`` slows them to a traffic
run's mean speeds); a road closed in the scenario (capacity 0, a closure area, ``closed_links``) or under water from
``impassable_depth`` m (0.3 m: Pregnolato et al. 2017, as for traffic) is no road. A station and a building
open onto their nearest street and every other up to :data:`ACCESS_REACH_M` further (the straight stretch at
:data:`ACCESS_SPEED_KMH`; found once with :class:`spatial_index.LineIndex`, for the dry and the flooded search
alike): an engine leaves along one of its station's streets, a building is reached along one of its own, and a
shut street is no way out or in. Shortest times from every station at once:
:func:`scipy.sparse.csgraph.dijkstra` from one extra node linked to them.

Results saved under ``scenario`` + ``run``: table ``access_buildings`` (``building_id``, ``time_s``, NaN where
no open road leads there; ``within``; with a flood, ``dry_time_s`` and ``lost``: within when dry, not in the
flood) and ``summary``.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Callable, NamedTuple

import numpy as np
import pandas as pd

from twin_core.errors import LayerNotFoundError, ParameterError
from twin_core.units import is_bare_number, parse_duration

if TYPE_CHECKING:
    from spatial_index import LineIndex

__all__ = ["AccessRun", "run_access", "ACCESS_TARGETS", "ACCESS_DRIVE_KMH", "ACCESS_SPEED_KMH", "ACCESS_REACH_M"]

ENGINE = "access"  # the summary's meta "engine" (what claim_run and twin.runs() read)

#: the response standards the default ``within`` comes from, per station kind. GB 51054-2014 "Code for design
#: of urban fire station", 3.0.2: a fire station's district is drawn so that its crew reaches the district's
#: edge within 5 min of the dispatch order, of which about 1 min is turning out: 4 min on the road. Hospitals
#: (ambulances): a 5 km service radius, driven at 30 km/h
ACCESS_TARGETS = {"fire_station": (240.0, "GB 51054-2014 3.0.2: 5 min from the dispatch order to the district's "
                                          "edge, about 1 min of it turning out"),
                  # the National Health Commission's 2020 guidance on pre-hospital emergency care (国卫医发〔2020〕19号):
                  # an urban ambulance station serves a radius of at most 5 km: 10 min at 30 km/h
                  "hospital": (600.0, "国卫医发〔2020〕19号: urban ambulance service radius 5 km, 10 min at 30 km/h")}
#: the average speed (km/h) an emergency vehicle drives at, the basis of both response standards: a fire station's
#: 4 min on the road reach 2 km at 30 km/h, which with the street network's detours gives the district of at most
#: 7 km2 (建标152-2017, art. 14 and its explanation); an ambulance's 10 min are a 5 km radius at 30 km/h
#: (国卫医发〔2020〕19号). Roads slower than this (their limit) are driven at their limit. Driving at the limits
#: instead (the sample city's SUMO-default 80-100 km/h) reached in 10 min what the standard expects of 30 km
#: (until 2026-12-05)
ACCESS_DRIVE_KMH = 30.0
_LIMITS = object()  # run_access's default drive_kmh: ACCESS_DRIVE_KMH as it is when called
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


def _open_links(twin, scenario, flooded_by, flood_time, impassable_depth, speeds_from=None, drive_kmh=None):
    """(directed links with travel time ``t`` s, closed link ids, flooded link ids); each link driven at its
    limit, at most ``drive_kmh`` (None: the limit) and at most ``speeds_from``'s mean speed there."""
    from cim.results import list_results
    from twin_core.adapters.flood import warn_after_flood_end
    from twin_core.adapters.traffic import (closed_links, flood_closure_windows, flooded_links,
                                            network_links, run_elsewhere)

    links = network_links(twin.layer("road_links", scenario=scenario))
    if drive_kmh is not None:
        links["speed"] = np.minimum(links["speed"].to_numpy(float), drive_kmh / 3.6)
    if speeds_from is not None:  # a traffic run's mean speed on each link, where it is below the limit
        scen = scenario or "base"
        have = list_results(twin.store, scenario=scen, run=speeds_from)
        if "link_loads" not in set(have["name"]):
            anywhere = list_results(twin.store, run=speeds_from)
            elsewhere = sorted(set(anywhere.loc[anywhere["name"] == "link_loads", "scenario"]))
            todo = (f"; or run `twin traffic simulate --scenario {scen}` and give its run id" if elsewhere else
                    f" ({'its results hold no link_loads' if len(anywhere) else 'no run has that id'}); run "
                    "`twin traffic simulate` first and give its run id")
            raise ParameterError(f"no traffic simulate run {speeds_from!r} under scenario {scen!r}"
                                 + run_elsewhere(elsewhere, "access analysis", "") + todo)
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
            wet = flooded_links(twin, scenario, flooded_by, impassable_depth, asker="access analysis")
        else:
            t = parse_duration(flood_time, "flood_time")
            w = flood_closure_windows(twin, scenario, flooded_by, impassable_depth, asker="access analysis")
            if "flood_end_s" in w.attrs:  # roads still under water when the run ended stay closed (until inf)
                warn_after_flood_end(t, flooded_by, w.attrs["flood_end_s"], "the roads still under water when it "
                                     "ended are taken as closed")
            wet = w.loc[(w["closed_from_s"] <= t) & (t < w["closed_until_s"]), "link_id"].astype(str)
        wet = set(wet)
        # a flooded road is flooded both ways (the reverse direction is '<id>:r')
        flooded = {lid for lid in links["link_id"] if lid in wet or lid.removesuffix(":r") in wet}
    return links, closed, flooded


class _Streets(NamedTuple):
    """The network of ``links``, shared by every search on the same roads (the dry and the flooded one)."""

    n: int  #: junctions
    link_id: np.ndarray  #: every directed link's id (object array) ...
    i: np.ndarray  #: ... its start and end junctions
    j: np.ndarray
    link_t: np.ndarray  #: ... and its time (s)
    road_id: np.ndarray  #: the streets: the links without the ``:r`` reverse rows (object array) ...
    rev_id: np.ndarray  #: ... the id their reverse direction would have
    has_rev: np.ndarray  #: ... whether it is there (two-way)
    a: np.ndarray  #: ... their start and end junctions
    b: np.ndarray
    t: np.ndarray  #: ... their time (s)
    lines: "LineIndex"  #: ... and a :class:`spatial_index.LineIndex` over their geometry


def _streets(links) -> _Streets:
    from spatial_index import LineIndex
    from twin_core.adapters.traffic import _node_xy

    nodes = pd.Index(_node_xy(links).index)
    link_id = links["link_id"].to_numpy(object)
    road = links[~links["link_id"].str.endswith(":r")].reset_index(drop=True)
    road_id = road["link_id"].to_numpy(object)
    rev_id = np.array([lid + ":r" for lid in road_id], dtype=object)
    return _Streets(len(nodes), link_id, nodes.get_indexer(links["from_node"]), nodes.get_indexer(links["to_node"]),
                    links["t"].to_numpy(float), road_id, rev_id, _member(rev_id, set(link_id)),
                    nodes.get_indexer(road["from_node"]), nodes.get_indexer(road["to_node"]), road["t"].to_numpy(float),
                    LineIndex.from_shapely(road.geometry.to_numpy()))


def _member(ids: np.ndarray, of: set) -> np.ndarray:
    """Whether each of ids is in the set (quicker than pandas' isin on Arrow strings)."""
    return np.fromiter(map(of.__contains__, ids), bool, ids.shape[0])


def _attach(streets: _Streets, xy: np.ndarray):
    """The streets by each point: its nearest and every other up to :data:`ACCESS_REACH_M` further (a corner
    building opens onto two streets; a one-way ramp is not the only way in): (point index, street index, share
    of the street before the point, seconds from the point to the street), one row per pair. Shut streets are
    left to the search: the attachment holds for every scenario of the same roads."""
    index = streets.lines
    d0 = index.nearest_distance(xy)
    # a building far from any road (the city's edge) opens onto the streets not much further than its nearest
    pairs, dist, frac = index.query_within(xy, d0 + ACCESS_REACH_M)
    return pairs[0], pairs[1], frac, dist / (ACCESS_SPEED_KMH / 3.6)


def _times_from(streets: _Streets, shut: set, sources, targets, n_targets: int) -> np.ndarray:
    """Seconds from the nearest source to each target over the open links (NaN: no open road leads there).

    ``sources`` and ``targets`` are the points' :func:`_attach` rows on ``streets`` (the links'
    :class:`_Streets`): each opens onto its streets at the point of each nearest to it; a fire engine leaves
    along one of its station's streets, either way the street is open, and reaches a building along one of the
    building's. A shut street is no way in or out.
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import dijkstra

    n, a, b, t = streets.n, streets.a, streets.b, streets.t
    ok = ~_member(streets.link_id, shut)
    e = pd.DataFrame({"i": streets.i[ok], "j": streets.j[ok], "t": streets.link_t[ok]})
    fwd = ~_member(streets.road_id, shut)  # open from its from_node towards its to_node
    bwd = streets.has_rev & ~_member(streets.rev_id, shut)
    # every source at once: one more node (n), linked to the ends of each source's street it can drive to
    _, k, f, off = sources
    src = [pd.DataFrame({"i": n, "j": b[k][fwd[k]], "t": (off + (1 - f) * t[k])[fwd[k]]}),
           pd.DataFrame({"i": n, "j": a[k][bwd[k]], "t": (off + f * t[k])[bwd[k]]})]
    e = pd.concat([e, *src], ignore_index=True).groupby(["i", "j"], as_index=False)["t"].min()  # parallel: quickest
    g = csr_matrix((e["t"].to_numpy() + 1e-9, (e["i"].to_numpy(), e["j"].to_numpy())), shape=(n + 1, n + 1))
    dist = dijkstra(g, directed=True, indices=n)
    p, k, f, off = targets
    via_a = np.where(fwd[k], dist[a[k]] + f * t[k], np.inf)  # along the street from its start
    via_b = np.where(bwd[k], dist[b[k]] + (1 - f) * t[k], np.inf)  # or back from its end
    pair_t = np.minimum(via_a, via_b) + off
    # a building on a station's own street: straight along it, the way the street is open (every pair of a
    # target's and a source's row on the same street)
    _, src_k, src_f, src_off = sources
    same = pd.DataFrame({"tj": np.arange(k.shape[0]), "q": k}).merge(
        pd.DataFrame({"q": src_k, "sf": src_f, "so": src_off}), on="q")
    if len(same):
        tj, q, sf = same["tj"].to_numpy(), same["q"].to_numpy(), same["sf"].to_numpy()
        ok_dir = np.where(f[tj] >= sf, fwd[q], bwd[q])
        direct = np.where(ok_dir, same["so"].to_numpy() + np.abs(f[tj] - sf) * t[q] + off[tj], np.inf)
        np.minimum.at(pair_t, tj, direct)
    out = np.full(n_targets, np.inf)
    np.minimum.at(out, p, pair_t)  # the quickest of its streets
    return np.where(np.isfinite(out), out, np.nan)


#: the demo's access run: ambulances from the hospitals in the storm at rush hour (scenario storm_rush)
DEMO_ACCESS = {"from_kind": "hospital", "scenario": "storm_rush", "flooded_by": "demo-storm", "run": "demo-access"}


def run_access_demo(twin, progress: Callable[[float, float], None] | None = None) -> "AccessRun":
    """The demo's emergency access: which buildings an ambulance reaches from the hospitals within 10 min
    while the demo storm's water closes the roads (run ``demo-access`` under ``storm_rush``)."""
    return run_access(twin, progress=progress, **DEMO_ACCESS)


def _speeds_said(drive_kmh, speeds_from) -> str:
    """The summary's ``speeds``: what each road was driven at."""
    base = "speed limit (free flow)" if drive_kmh is None else f"{drive_kmh:g} km/h, or the speed limit where lower"
    return base + (f"; at most traffic run {speeds_from}'s mean speeds" if speeds_from else "")


def run_access(twin, from_kind: str = "fire_station", within=None, *, scenario: str | None = None,
               run: str | None = None, flooded_by: str | None = None, flood_time=None,
               impassable_depth: float | None = None, speeds_from: str | None = None, drive_kmh=_LIMITS,
               save: bool = True, progress: Callable[[float, float], None] | None = None) -> AccessRun:
    """Minutes from the nearest ``from_kind`` station (a ``pois`` kind) to every building, and which are within
    ``within`` (``"4min"``; default for fire stations: :data:`ACCESS_TARGETS`), on the roads of ``scenario``,
    dry or, with ``flooded_by`` (a flood run under the same scenario), as its water leaves them: at its peak or
    ``flood_time`` after the storm began. Roads are driven at ``drive_kmh`` (default :data:`ACCESS_DRIVE_KMH`,
    30 km/h: the speed the response standards assume) or their speed limit where that is lower (None: at the
    limits), and with ``speeds_from`` (a traffic simulate run under the same scenario) at its mean speed on
    each road where that is lower still: the ambulance at rush hour. See the module docstring.

    Returns an :class:`AccessRun`; its summary has ``buildings``, ``within`` (count), ``within_share``,
    ``unreachable``, ``median_time_s`` and, with a flood, ``lost`` (within when dry, not now) and
    ``flooded_links``.
    """
    from cim.results import claim_run, saving_run
    from cim.scenario import did_you_mean, normalise_scenario_name
    from twin_core.adapters.traffic import IMPASSABLE_DEPTH_M

    t0 = time.perf_counter()
    scenario = normalise_scenario_name(scenario)
    scen = scenario or "base"
    twin.scenario(scenario)  # an unknown scenario fails here
    run = claim_run(twin.store, scen, run, ENGINE, "access", save=save)  # a bad or taken id fails here
    if flood_time is not None and flooded_by is None:
        raise ParameterError("flood_time needs flooded_by (the flood run whose water at that time closes roads)")
    depth = IMPASSABLE_DEPTH_M if impassable_depth is None else impassable_depth
    if drive_kmh is _LIMITS:
        drive_kmh = ACCESS_DRIVE_KMH
    if drive_kmh is not None and (isinstance(drive_kmh, bool) or not isinstance(drive_kmh, (int, float))
                                  or not math.isfinite(drive_kmh) or drive_kmh <= 0):
        raise ParameterError(f"drive_kmh (CLI: --drive-kmh) is the emergency vehicles' average speed in km/h, a "
                             f"number > 0, got {drive_kmh!r}; None (CLI: --speed-limits) drives at the limits")
    if not isinstance(from_kind, str) or not from_kind:
        raise ParameterError(f"from_kind must be a kind of the pois layer (e.g. 'fire_station'), got {from_kind!r}")
    for name in ("pois", "road_links", "buildings"):
        if name not in twin.layers():
            raise LayerNotFoundError(f"the twin has no {name!r} layer, which an access analysis needs")
    # the kind first: "fire_statoin" was told to give within= (no response standard for it), not of the typo
    pois = twin.layer("pois", scenario=scenario)
    kinds = pois["kind"].astype(str) if "kind" in pois else pd.Series("", index=pois.index)
    have = sorted(set(kinds) - {"", "None", "nan"})
    if from_kind not in have:
        near = did_you_mean(from_kind, have)
        msg = f"no {from_kind!r} in the pois layer (kinds there: {have})" + (
            near or "; add the stations (twin import ... --class pois) or choose another kind")
        if within is None and not near and from_kind not in ACCESS_TARGETS:
            msg += (f"; for a kind with no response standard give within= too (e.g. '10min'): there is no response "
                    f"standard here for {from_kind!r} stations (standards known: {sorted(ACCESS_TARGETS)})")
        raise ParameterError(msg)
    if within is None:
        if from_kind not in ACCESS_TARGETS:
            raise ParameterError(f"give within= (e.g. '10min'): there is no response standard here for "
                                 f"{from_kind!r} stations (standards known: {sorted(ACCESS_TARGETS)})")
        limit, source = ACCESS_TARGETS[from_kind]
    else:
        limit, source = parse_duration(within, "within"), "given"
        if not (math.isfinite(limit) and limit > 0):
            raise ParameterError(f"within must be a positive duration, got {within!r}")
        if limit < 60 and is_bare_number(within):  # `--within 10` meant 10 minutes, not 10 s
            from twin_core.errors import twin_warn

            twin_warn(f"within={within!r} is {limit:g} s: a bare number is seconds; for minutes write "
                      f"'{str(within).strip()}min' (CLI: --within {str(within).strip()}min)")
    st = pois[kinds == from_kind]
    bld = twin.layer("buildings", scenario=scenario, columns=["building_id"])  # ids and footprints only
    cen = bld.geometry.representative_point()
    sxy = np.column_stack([st.geometry.x, st.geometry.y])
    bxy = np.column_stack([cen.x, cen.y])
    links, closed, flooded = _open_links(twin, scenario, flooded_by, flood_time, depth, speeds_from, drive_kmh)
    if progress is not None:
        progress(0.0, 2.0)
    streets = _streets(links)
    src, tgt = _attach(streets, sxy), _attach(streets, bxy)  # the same roads for the dry and flooded searches
    times = _times_from(streets, closed | flooded, src, tgt, len(bxy))
    ids = bld["building_id"].astype(str).to_numpy() if "building_id" in bld else np.arange(len(bld)).astype(str)
    table = pd.DataFrame({"building_id": ids, "time_s": times, "within": np.nan_to_num(times, nan=np.inf) <= limit})
    summary = {"engine": ENGINE, "scenario": scen, "from_kind": from_kind, "stations": int(len(st)),
               "within_s": float(limit), "within_from": source, "buildings": int(len(table)),
               "within": int(table["within"].sum()), "within_share": float(table["within"].mean()),
               "unreachable": int(np.isnan(times).sum()),
               "median_time_s": float(np.nanmedian(times)) if np.isfinite(times).any() else None,
               "closed_links": len(closed),
               "speeds": _speeds_said(drive_kmh, speeds_from), "drive_kmh": drive_kmh}
    if speeds_from is not None:  # the run it drove at, by id (cim.results.runs_using finds it)
        summary["speeds_from"] = speeds_from
    if flooded_by is not None:
        dry = _times_from(streets, closed, src, tgt, len(bxy))
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
    if save:
        meta = {k: summary[k] for k in ("from_kind", "within_s", "within_from")}
        with saving_run(twin.store, scen, run, ENGINE):  # the id checked again, in the transaction
            twin.save_result(scen, run, "access_buildings", table, meta=meta)
            twin.save_result(scen, run, "summary", {**summary, "run": run}, meta={"engine": ENGINE})
    summary.update(run=run, total_wall_s=time.perf_counter() - t0)
    return AccessRun(scen, run, table, summary, save)
