"""Dynamic mesoscopic traffic model: spatial queues with a triangular fundamental diagram.

Each directed link is a FIFO queue of vehicles. The triangular fundamental
diagram of a link is fixed by its free speed ``vf`` (m/s), capacity ``q``
(veh/s, all lanes) and jam density ``kj`` (veh/m per lane), which give:

* free-flow traversal: a vehicle needs at least ``length / vf``;
* capacity at both link ends: at most ``q`` vehicles/s leave the
  downstream end and enter the upstream end;
* storage ``kj * lanes * length`` vehicles: a full link blocks its upstream
  neighbours (spillback);
* backward wave speed ``w = q / (kj * lanes - q / vf)``: space freed at the
  downstream end becomes available upstream ``length / w`` later.

Vehicles depart at their departure times (waiting outside the network when
their first link is full), follow their routes, and the model returns per-link
time series (inflow, outflow, vehicles, density, speed, queue), per-vehicle
trip times and per-vehicle link trajectories (link, enter, exit).

Time-dependent route choice by iterated departures: after each run the
experienced link travel times per time bin define time-dependent costs; a
shrinking share (1/k) of vehicles switches to the time-dependent shortest
path for its departure time (method of successive averages over runs).

Announced closures (a flooded road) are planned around before departure and,
when a vehicle still meets one (congestion made it later than its plan), again
en route: see :class:`MesoModel` ``closures`` and :attr:`MesoParameters.reroute`.
A vehicle that waits at the end of a link of two lanes or more for a road
closed for a while waits aside (a link's holding list, up to one lane's share
of its storage, still taking up that storage), so the vehicles behind it for
other roads go on; on one lane, or with that share full, it waits at the head
of the queue and holds those behind it. It plans again every
:attr:`MesoParameters.replan_interval` s while it waits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
from numba import njit

from simulation._display import compact_repr
from twin_core.errors import NetworkError, ParameterError

from . import _kernels as K
from .network import _check_endpoints, _duplicates, successors, turn_pairs

__all__ = ["MesoModel", "MesoParameters", "MesoResult", "route_vehicles"]


@dataclass
class MesoParameters:
    """Model settings.

    dt : time step, s. jam_density : veh/m per lane (1/7.5 m).
    record_interval : seconds between link time-series records.
    route_iterations : runs of iterated departures (1 = fixed routes).
    route_bin : width of the time bins of experienced travel times, s.
    reroute : a vehicle whose next road is closed when it gets there plans again from where it is (as drivers
        told of the closure by radio or navigation do) instead of waiting for the road or, when it is closed
        for good, leaving the network (see :class:`MesoModel` ``closures``). No effect without closures.
    reroute_margin : s a way round must save over waiting for a road closed for a while (not for good) to be
        taken: the costs are estimates, and a driver does not leave a queue to save seconds.
    replan_interval : s between the re-plans of a vehicle waiting for a road closed for a while (with
        ``reroute``): it makes the same decision again from its junction with the queues and closures of that
        moment, and takes a way round that has opened up (another closure ended) or stays. 0 or inf: it
        decides once and waits until its road reopens.
    """

    dt: float = 1.0
    jam_density: float = 1.0 / 7.5
    record_interval: float = 60.0
    route_iterations: int = 1
    route_bin: float = 300.0
    seed: int = 0
    reroute: bool = True
    reroute_margin: float = 60.0
    replan_interval: float = 300.0

    def __post_init__(self):
        for name in ("dt", "jam_density", "record_interval", "route_bin"):
            v = getattr(self, name)
            if isinstance(v, bool) or not (isinstance(v, (int, float, np.integer, np.floating)) and np.isfinite(v)
                                           and v > 0):
                raise ParameterError(f"MesoParameters.{name} must be a positive number, got {v!r}")
        if self.record_interval < self.dt:
            raise ParameterError("record_interval must be >= dt")
        if int(self.route_iterations) < 1:
            raise ParameterError(f"route_iterations must be >= 1, got {self.route_iterations}")
        if not isinstance(self.reroute, (bool, np.bool_)):
            raise ParameterError(f"MesoParameters.reroute must be True or False, got {self.reroute!r}")
        m = self.reroute_margin
        if isinstance(m, bool) or not (isinstance(m, (int, float, np.integer, np.floating)) and 0 <= m < np.inf):
            raise ParameterError(f"MesoParameters.reroute_margin must be a number of seconds >= 0, got {m!r}")
        r = self.replan_interval
        if isinstance(r, bool) or not (isinstance(r, (int, float, np.integer, np.floating)) and r >= 0):
            raise ParameterError(f"MesoParameters.replan_interval must be a number of seconds >= 0 (0 or inf: held "
                                 f"vehicles do not re-plan), got {r!r}")


@dataclass(repr=False)
class MesoResult:
    """Outputs of a run.

    trips : vehicle_id, depart, enter, arrive, travel_time (s), free_flow_time (s, of the route driven),
        delay (s), completed, stranded (s: when the road ahead was closed for good and, with no other route
        to its destination, the vehicle left the network; NaN), reroutes (times it planned again en route
        and changed its route), held_replans (times it planned again while waiting at a junction for a closed
        road, :attr:`MesoParameters.replan_interval`, or because the road it waited for closed for good; a
        change of route counts in ``reroutes`` too).
    link_series : time (end of interval, s), link_id, inflow, outflow (veh in the interval),
        vehicles, density (veh/km), speed (km/h, space-mean over vehicles that left), queue (vehicles
        whose free-flow traversal is over but who have not left).
    trajectories : vehicle_id, link_id, enter, exit (s; NaN if not reached / not left), over the route
        driven (a re-routed vehicle's new links replace the rest of its old route).
    """

    trips: pd.DataFrame
    link_series: pd.DataFrame
    trajectories: pd.DataFrame
    history: pd.DataFrame
    seconds: float
    until: float

    def summary(self) -> dict:
        done = self.trips["completed"]
        return {"vehicles": int(len(self.trips)), "completed": int(done.sum()),
                "mean_trip_time_s": float(self.trips.loc[done, "travel_time"].mean()) if done.any() else float("nan"),
                "total_delay_veh_s": float(self.trips.loc[done, "delay"].sum()),
                "rerouted_trips": int((self.trips["reroutes"] > 0).sum()) if "reroutes" in self.trips else 0,
                "held_replans": int(self.trips["held_replans"].sum()) if "held_replans" in self.trips else 0,
                "until_s": self.until, "engine_seconds": self.seconds}


def _route_room(n_positions: int) -> int:
    """Route positions set aside for en-route re-planning (each new route takes its length + 1)."""
    return max(1024, n_positions)


@njit(cache=True)
def _td_link_tree(source, t0, succ_ptr, succ, tt, bin_w, dist, pred, hk, hv):
    """Time-dependent Dijkstra over links (turns as arcs): entering link b costs tt[bin(time), b]."""
    n = dist.shape[0]
    nb = tt.shape[0]
    for i in range(n):
        dist[i] = np.inf
        pred[i] = -1
    dist[source] = 0.0
    size = K._heap_push(hk, hv, 0, 0.0, source)
    while size > 0:
        d, u, size = K._heap_pop(hk, hv, size)
        if d > dist[u]:
            continue
        b = int((t0 + d) / bin_w)
        if b >= nb:
            b = nb - 1
        for e in range(succ_ptr[u], succ_ptr[u + 1]):
            v = succ[e]
            nd = d + tt[b, v]
            if nd < dist[v]:
                dist[v] = nd
                pred[v] = u
                size = K._heap_push(hk, hv, size, nd, v)


class MesoModel:
    """Mesoscopic model over a link table and routed vehicles.

    Parameters
    ----------
    links : DataFrame
        ``link_id``, ``from_node``, ``to_node``, ``length`` (m; or
        ``length_m``), ``speed`` (m/s; or ``speed_limit_kmh``), ``capacity``
        (veh/h, all lanes; or ``capacity_vph``), ``lanes``. ``capacity`` 0
        closes a link.
    vehicles : DataFrame
        ``vehicle_id``, ``depart`` (s), ``edges`` (list of link ids in order).
    params : MesoParameters
    blocked_until : dict link_id -> s, optional
        Incidents: nobody leaves the link before then (drivers do not know in advance).
    turns : DataFrame, optional
        Allowed turns, columns ``from_link``, ``to_link`` (link ids; SUMO's
        ``from_edge`` / ``to_edge`` of :func:`cim.io.sumo.read_sumo_connections`
        are read too, without the connections of edges that are not links):
        route choice and re-planning continue a link only onto the links its
        turns list (none: a dead end); the vehicles' routes must keep to them.
        None: every continuation at a node is allowed.
    closures : dict link_id -> (from_s, until_s), optional
        Announced closures (a flooded road): nobody enters the link during
        [from, until) (``until`` may be ``inf``); vehicles on it then drive off.
        Drivers know them before they leave: every route is planned around them
        by time-dependent shortest paths (entering at t in the window costs the
        wait until it reopens), also in each route-choice iteration. A vehicle
        that still meets one (later than planned: congestion) plans again at
        that junction (``params.reroute``, default on), to the end node of its
        route, by time-dependent costs: free flow in the first run, the
        experienced times averaged over the earlier runs after (made
        first-in first-out), the queues on the roads at that moment, and the
        exact wait for each closed road. Round a road closed for good it takes
        the quickest route (waits for other closed roads included). Round one
        closed for a while it takes the quickest route on roads open when it
        gets there, if that arrives ``params.reroute_margin`` s sooner than the
        quickest route that waits for this road; otherwise it waits (it does
        not swap one wait for another). One setting off on a closed first road
        plans the same way from the junction where that road begins. A vehicle
        that waits at the end of a link of two lanes or more for a road
        closed for a while (with or without ``reroute``) waits aside, as a car
        waiting to turn on a multi-lane street: the vehicles behind it for
        other roads go on. It still takes up the link's storage (many waiting
        fill the link and block the links upstream) and counts in its
        ``queue``. At most one lane's share of the storage (storage / lanes,
        at least one vehicle) waits aside; the next one that must wait, and
        on a one-lane link the first, waits at the head of the queue and holds
        everybody behind it. When the road reopens the waiting enter it first
        come, first in, at its inflow capacity and as it has room. A vehicle
        whose road ahead is closed for good and that has no route left to its
        destination leaves the network there (``stranded``), not blocking the
        queue behind it. A waiting vehicle plans again every
        ``params.replan_interval`` s (with ``reroute``) from its junction, by
        the same rule with the costs, queues and closures of that moment: it
        takes a way round that has opened up since (another closure ended, a
        queue cleared) and keeps its place otherwise; and it plans again at
        once when the road it waits for (a way round it took, full when it got
        there) closes for good.

    Examples
    --------
    One 300 m link at 15 m/s: a lone vehicle needs 20 s.

    >>> import pandas as pd
    >>> links = pd.DataFrame({"link_id": ["a"], "from_node": [0], "to_node": [1], "length": [300.0],
    ...                       "speed": [15.0], "capacity": [1800.0], "lanes": [1]})
    >>> veh = pd.DataFrame({"vehicle_id": ["v"], "depart": [0.0], "edges": [["a"]]})
    >>> r = MesoModel(links, veh).run(until=100)
    >>> float(r.trips.travel_time.iloc[0])
    20.0
    """

    def __init__(self, links: pd.DataFrame, vehicles: pd.DataFrame, params: MesoParameters | None = None,
                 blocked_until: dict | None = None, turns: pd.DataFrame | None = None,
                 closures: dict | None = None):
        self.params = params or MesoParameters()
        if not isinstance(links, pd.DataFrame) or not isinstance(vehicles, pd.DataFrame):
            raise ParameterError("links and vehicles must be pandas DataFrames")
        for c in ("link_id", "from_node", "to_node"):
            if c not in links.columns:
                raise NetworkError(f"links needs column {c!r}")
        _check_endpoints(links)

        def col(names, what):
            for n in names:
                if n in links.columns:
                    return links[n].to_numpy(dtype=np.float64)
            raise NetworkError(f"links needs {what} (one of {names})")

        self.link_ids = links["link_id"].to_numpy()
        if pd.Index(self.link_ids).has_duplicates:
            raise NetworkError("link_id values must be unique")
        self.length = col(("length", "length_m"), "a length in m")
        if "speed" in links.columns:
            self.vfree = links["speed"].to_numpy(dtype=np.float64)
        else:
            self.vfree = col(("speed_limit_kmh",), "a speed (speed m/s or speed_limit_kmh)") / 3.6
        cap_h = col(("capacity", "capacity_vph"), "a capacity in veh/h")
        self.lanes = (links["lanes"].to_numpy(dtype=np.float64) if "lanes" in links.columns
                      else np.ones(len(links)))
        if np.any(~np.isfinite(cap_h)) or np.any(cap_h < 0):
            raise NetworkError(f"capacity must be finite and >= 0 (bad rows {np.flatnonzero(~(cap_h >= 0))[:5].tolist()}); "
                               "0 closes a link")
        if np.any(~(self.length > 0)) or np.any(~(self.vfree > 0)) or np.any(~(self.lanes > 0)):
            raise NetworkError("length, speed and lanes must be > 0 on every link")
        self.cap = cap_h / 3600.0
        self.closed = cap_h <= 0
        nodes = pd.unique(np.concatenate([links["from_node"].to_numpy(), links["to_node"].to_numpy()]))
        nidx = pd.Index(nodes)
        self.node_ids = nodes
        self.tails = nidx.get_indexer(links["from_node"].to_numpy()).astype(np.int64)
        self.heads = nidx.get_indexer(links["to_node"].to_numpy()).astype(np.int64)
        p = self.params
        kj = p.jam_density * self.lanes
        self.storage = np.maximum(1, np.floor(kj * self.length)).astype(np.int64)
        # room aside for vehicles waiting for a road closed for a while: one lane's share of the storage (at
        # least one vehicle) where there are two lanes or more; none on one lane, where nobody gets past them
        self.hold_cap = np.where(self.lanes >= 2, np.maximum(1, np.floor(self.storage / self.lanes)),
                                 0).astype(np.int64)
        if np.any(self.cap >= self.vfree * kj):
            raise ParameterError("capacity must be below vf * jam density * lanes (the triangle would collapse)")
        self.wave_speed = np.where(self.cap > 0, self.cap / np.maximum(kj - self.cap / self.vfree, 1e-12), 1.0)
        self.wave_time = self.length / self.wave_speed
        self.blocked_until = np.zeros(len(links))
        for lid, tb in (blocked_until or {}).items():
            i = pd.Index(self.link_ids).get_indexer([lid])[0]
            if i < 0:
                raise NetworkError(f"blocked_until names unknown link {lid!r}; give link ids of this network")
            try:
                t = float(tb)
            except (TypeError, ValueError):
                t = np.nan
            if not t >= 0:  # inf is allowed: blocked for the whole run
                raise ParameterError(f"blocked_until for link {lid!r} must be a time >= 0 s, got {tb!r}")
            self.blocked_until[i] = t
        self.closed_from = np.zeros(len(links))
        self.closed_until = np.zeros(len(links))  # [0, 0): never
        for lid, win in (closures or {}).items():
            i = pd.Index(self.link_ids).get_indexer([lid])[0]
            if i < 0:
                raise NetworkError(f"closures names unknown link {lid!r}; give link ids of this network")
            try:
                f, u = (float(x) for x in win)
            except (TypeError, ValueError):
                f, u = np.nan, np.nan
            if not (0 <= f < u and np.isfinite(f)):  # until may be inf: closed to the end
                raise ParameterError(f"the closure of link {lid!r} must be (from_s, until_s) with 0 <= from < until "
                                     f"(until may be inf), got {win!r}")
            self.closed_from[i], self.closed_until[i] = f, u
        for c in ("vehicle_id", "depart", "edges"):
            if c not in vehicles.columns:
                raise ParameterError(f"vehicles needs column {c!r} (vehicle_id, depart, edges)")
        self.vehicle_ids = vehicles["vehicle_id"].to_numpy()
        dup = _duplicates(self.vehicle_ids)
        if dup:
            raise ParameterError(f"vehicle_id values must be unique; {dup} appear more than once")
        self.depart = vehicles["depart"].to_numpy(dtype=np.float64)
        if np.any(~np.isfinite(self.depart)) or np.any(self.depart < 0):
            raise ParameterError("departure times must be finite and >= 0 s")
        # allowed turns (2, k) by link position; None: every continuation at a node
        self.turns = None if turns is None else turn_pairs(turns, self.link_ids, self.tails, self.heads)
        self._set_routes(list(vehicles["edges"]))

    def _link_index(self, ids) -> np.ndarray:
        ids = np.asarray(list(ids), dtype=self.link_ids.dtype if self.link_ids.dtype != object else object)
        idx = pd.Index(self.link_ids).get_indexer(ids)
        if np.any(idx < 0):
            raise NetworkError(f"routes name unknown links {ids[idx < 0][:5].tolist()}; "
                               "the route file and the network do not match")
        return idx

    def _set_routes(self, routes: list) -> None:
        for v, r in zip(self.vehicle_ids, routes):
            if isinstance(r, (str, bytes)) or not hasattr(r, "__len__"):
                raise ParameterError(f"the route of vehicle {v!r} must be a list of link ids, got {r!r}")
        lens = np.array([len(r) for r in routes], dtype=np.int64)
        if np.any(lens == 0):
            raise ParameterError(f"vehicles {self.vehicle_ids[lens == 0][:5].tolist()} have empty routes")
        ptr = np.zeros(len(routes) + 1, np.int64)
        np.cumsum(lens, out=ptr[1:])
        flat = np.concatenate([np.asarray(r, dtype=object) for r in routes]) if routes else np.array([], object)
        idx = self._link_index(flat)
        bad = self.closed[idx]
        if bad.any():
            veh = np.searchsorted(ptr, np.flatnonzero(bad), side="right") - 1
            raise NetworkError(f"{len(np.unique(veh))} vehicles are routed over closed links "
                               f"{pd.unique(self.link_ids[idx[bad]])[:5].tolist()} (e.g. vehicles "
                               f"{self.vehicle_ids[np.unique(veh)[:5]].tolist()}); reroute them over open links "
                               "(route_vehicles on the links with capacity > 0) or reopen the links")
        # consecutive links must connect
        if len(idx) > 1:
            same_veh = np.ones(len(idx) - 1, bool)
            same_veh[ptr[1:-1] - 1] = False
            gap = (self.heads[idx[:-1]] != self.tails[idx[1:]]) & same_veh
            if gap.any():
                k = np.flatnonzero(gap)[0]
                v = np.searchsorted(ptr, k, side="right") - 1
                raise NetworkError(f"route of vehicle {self.vehicle_ids[v]!r} jumps from link "
                                   f"{self.link_ids[idx[k]]!r} to {self.link_ids[idx[k + 1]]!r}, which do not meet")
            if self.turns is not None:
                n = len(self.link_ids)
                allowed = np.isin(idx[:-1] * n + idx[1:], self.turns[0] * n + self.turns[1])
                bad = same_veh & ~allowed
                if bad.any():
                    k = np.flatnonzero(bad)[0]
                    v = np.searchsorted(ptr, k, side="right") - 1
                    raise NetworkError(f"route of vehicle {self.vehicle_ids[v]!r} turns from link "
                                       f"{self.link_ids[idx[k]]!r} to {self.link_ids[idx[k + 1]]!r}, which turns does "
                                       f"not allow ({int(bad.sum())} such moves in all routes); route the vehicles "
                                       "with route_vehicles(..., turns=) or give the turn")
        self.route_ptr = ptr
        self.route_links = idx.astype(np.int64)

    # -------------------------------------------------------------- routing
    def _csr(self):
        use = np.flatnonzero(~self.closed)
        order = use[np.argsort(self.tails[use], kind="stable")]
        indptr = np.zeros(len(self.node_ids) + 1, np.int64)
        np.cumsum(np.bincount(self.tails[order], minlength=len(self.node_ids)), out=indptr[1:])
        return indptr, self.heads[order].astype(np.int64), order.astype(np.int64)

    def _successors(self):
        """CSR of allowed link -> link moves over open links."""
        if self.turns is not None:
            fa, tb = self.turns
        else:
            indptr, _, link_of = self._csr()
            cnt = indptr[self.heads + 1] - indptr[self.heads]
            fa = np.repeat(np.arange(len(self.length)), cnt)
            tb = np.concatenate([link_of[indptr[h]:indptr[h + 1]] for h in self.heads]) if len(fa) else fa
        return successors(len(self.length), np.stack([fa, tb]).astype(np.int64), self.closed)

    def _reroute(self, vehicles: np.ndarray, tt: np.ndarray, bin_w: float) -> int:
        """Give ``vehicles`` time-dependent shortest routes from their first link to their last one."""
        succ_ptr, succ = self._successors()
        nl = len(self.length)
        dist = np.empty(nl)
        pred = np.empty(nl, np.int64)
        hk = np.empty(len(succ) + 2)
        hv = np.empty(len(succ) + 2, np.int64)
        routes = [self.route_links[self.route_ptr[v]:self.route_ptr[v + 1]] for v in range(len(self.depart))]
        first = self.route_links[self.route_ptr[:-1]]
        last = self.route_links[self.route_ptr[1:] - 1]
        # vehicles start on their first link and end on their last one (SUMO semantics): re-plan in between
        t_start = self.depart + self.length[first] / self.vfree[first]
        vehicles = vehicles[first[vehicles] != last[vehicles]]
        key = first[vehicles] * (tt.shape[0] + 1) + np.minimum((t_start[vehicles] / bin_w).astype(np.int64),
                                                              tt.shape[0] - 1)
        changed = 0
        for k in np.unique(key):
            grp = vehicles[key == k]
            v0 = grp[0]
            _td_link_tree(first[v0], t_start[v0], succ_ptr, succ, tt, bin_w, dist, pred, hk, hv)
            for v in grp:
                j = last[v]
                if not np.isfinite(dist[j]):
                    continue
                path = []
                while j != first[v]:
                    path.append(j)
                    j = pred[j]
                path.append(first[v])
                new = np.asarray(path[::-1], np.int64)
                if len(new) != len(routes[v]) or np.any(new != routes[v]):
                    routes[v] = new
                    changed += 1
        lens = np.array([len(r) for r in routes], np.int64)
        self.route_ptr = np.zeros(len(routes) + 1, np.int64)
        np.cumsum(lens, out=self.route_ptr[1:])
        self.route_links = np.concatenate(routes).astype(np.int64) if routes else np.zeros(0, np.int64)
        return changed

    # ------------------------------------------------------------------ run
    def _simulate(self, until: float, plan_cost: np.ndarray | None = None):
        """One run of the kernel. ``plan_cost`` (time bins x links, s; bins of ``route_bin``): the costs of
        en-route re-planning (None: nobody re-plans)."""
        p = self.params
        n_steps = int(np.ceil(until / p.dt))
        rec_every = max(1, int(round(p.record_interval / p.dt)))
        n_rec = n_steps // rec_every + 1
        nl = len(self.length)
        nv = len(self.depart)
        qptr = np.zeros(nl + 1, np.int64)
        np.cumsum(self.storage + 1, out=qptr[1:])
        m = len(self.route_links)
        reroute = plan_cost is not None
        if reroute:
            succ_ptr, succ = self._successors()
            node_ptr, _, node_links = self._csr()
            plan_cost = np.ascontiguousarray(plan_cost, dtype=np.float64)
        else:
            succ_ptr = node_ptr = np.zeros(1, np.int64)
            succ = node_links = np.zeros(0, np.int64)
            plan_cost = np.zeros((1, 0))
        extra = _route_room(m) if reroute else 0  # room for new routes; doubled (and the run repeated) when short
        while True:
            rec_in = np.zeros((n_rec, nl))
            rec_out = np.zeros((n_rec, nl))
            rec_count = np.zeros((n_rec, nl))
            rec_queue = np.zeros((n_rec, nl))
            route_links = np.empty(m + extra, np.int64)
            route_links[:m] = self.route_links
            route_end = self.route_ptr[1:].copy()
            traj_enter = np.full(m + extra, np.nan)
            traj_exit = np.full(m + extra, np.nan)
            moved_to = np.full(m + extra, -1, np.int64)
            reroutes = np.zeros(nv, np.int64)
            held_replans = np.zeros(nv, np.int64)
            arrive = np.full(nv, np.nan)
            veh_enter = np.full(nv, np.nan)
            pos = self.route_ptr[:-1].copy()  # each vehicle's first link
            ready = np.zeros(nv)
            stranded = np.full(nv, np.nan)
            steps, waiting, used = K.meso_run(
                float(p.dt), n_steps, self.length, self.vfree, self.cap, self.storage, route_end, route_links,
                self.depart, pos, veh_enter, ready, qptr, self.wave_time, self.blocked_until, self.closed_from,
                self.closed_until, rec_every, rec_in, rec_out, rec_count, rec_queue, traj_enter, traj_exit, arrive,
                stranded, reroute, float(p.reroute_margin), m, moved_to, reroutes, self.heads, self.tails,
                succ_ptr, succ, node_ptr, node_links, plan_cost, float(p.route_bin), float(p.replan_interval),
                held_replans, self.hold_cap)
            if used >= 0:
                break
            extra = max(2 * extra, 1)
        if used > m:  # somebody re-planned: the routes driven, in order
            route_ptr, at = K.driven_positions(self.route_ptr[:-1], route_end, moved_to)
            route_links, traj_enter, traj_exit = route_links[at], traj_enter[at], traj_exit[at]
        else:
            route_ptr, route_links = self.route_ptr, self.route_links
            traj_enter, traj_exit = traj_enter[:m], traj_exit[:m]
        n_used = min(n_rec, (steps + rec_every - 1) // rec_every)
        return dict(steps=steps, rec_every=rec_every, n_rec=n_used, rec_in=rec_in[:n_used], rec_out=rec_out[:n_used],
                    rec_count=rec_count[:n_used], rec_queue=rec_queue[:n_used], traj_enter=traj_enter,
                    traj_exit=traj_exit, arrive=arrive, veh_enter=veh_enter, stranded=stranded,
                    route_ptr=route_ptr, route_links=route_links, reroutes=reroutes, held_replans=held_replans)

    def run(self, until: float, progress: Callable[[float, float], None] | None = None) -> MesoResult:
        """Simulate from 0 to ``until`` seconds (stops early when every vehicle has arrived)."""
        if not (0 < until < np.inf):
            raise ParameterError(f"until must be a finite time > 0 s, got {until}")
        p = self.params
        t0 = time.perf_counter()
        hist = []
        rng = np.random.default_rng(p.seed)
        fft = self.length / self.vfree
        n_bins = int(np.ceil(until / p.route_bin)) + 1
        tt_avg = None
        out = None
        closing = self._closure_costs(n_bins, p.route_bin, fft)
        if closing is not None:  # announced closures: every route is planned around them before anybody leaves
            self._reroute(np.arange(len(self.depart)), closing, p.route_bin)
        # en-route re-planning round a closure met later than planned: free-flow costs in the first run
        plan = fft[None, :] if closing is not None and p.reroute else None
        for it in range(1, int(p.route_iterations) + 1):
            out = self._simulate(until, plan)
            done = np.isfinite(out["arrive"])
            mean_tt = float(np.nanmean(out["arrive"] - self.depart)) if done.any() else np.nan
            hist.append((it, int(done.sum()), mean_tt, time.perf_counter() - t0))
            if progress is not None:
                progress(it, p.route_iterations)
            if it == p.route_iterations:
                break
            # experienced link costs per time bin (free flow where nobody came): the cost of link b counts
            # from the moment the vehicle could have left the previous link (so waiting at the junction into b,
            # where a capacity constraint of b holds it back, is charged to b), to its exit from b.
            tt = np.tile(fft, (n_bins, 1))
            enter, exit_ = out["traj_enter"], out["traj_exit"]
            driven, driven_ptr = out["route_links"], out["route_ptr"]
            start = np.empty_like(enter)
            start[1:] = enter[:-1] + fft[driven[:-1]]
            start[driven_ptr[:-1]] = self.depart
            end = np.where(np.isfinite(exit_), exit_, until)  # still waiting / on the link at the end
            ok = np.isfinite(start) & (start < until)
            links = driven[ok]
            b = np.minimum((start[ok] / p.route_bin).astype(np.int64), n_bins - 1)
            s = np.zeros((n_bins, len(fft)))
            c = np.zeros((n_bins, len(fft)))
            np.add.at(s, (b, links), np.maximum(end[ok] - start[ok], 0.0))
            np.add.at(c, (b, links), 1.0)
            tt = np.where(c > 0, np.maximum(s / np.maximum(c, 1), fft), tt)
            tt_avg = tt if tt_avg is None else tt_avg + (tt - tt_avg) / it
            # a closed link nobody tried in a bin still costs its wait (kept out of the average: inf)
            cost = tt_avg if closing is None else np.maximum(tt_avg, closing)
            if plan is not None:  # en route: the experienced times so far (the kernel adds each closure's wait)
                plan = tt_avg
            share = 1.0 / (it + 1)
            pick = np.flatnonzero(rng.random(len(self.depart)) < share)
            self._reroute(pick, np.ascontiguousarray(cost), p.route_bin)
        seconds = time.perf_counter() - t0
        return self._result(out, until, seconds, pd.DataFrame(hist, columns=["iteration", "completed",
                                                                             "mean_trip_time_s", "seconds"]))

    def _closure_costs(self, n_bins: int, bin_w: float, fft: np.ndarray) -> np.ndarray | None:
        """Cost of entering each link in each time bin given the announced closures (None without any):
        free flow plus the wait until the link reopens, for an entry in the middle of the bin (or, for a
        closure that ends in the bin's first half, half the closed part of the bin); inf when it never
        reopens. A closure shorter than a bin still costs something."""
        shut = np.flatnonzero(self.closed_until > self.closed_from)
        if not len(shut):
            return None
        tt = np.tile(fft, (n_bins, 1))
        t0 = np.arange(n_bins)[:, None] * bin_w
        mid = t0 + 0.5 * bin_w
        f, u = self.closed_from[shut][None, :], self.closed_until[shut][None, :]
        overlap = (f < t0 + bin_w) & (u > t0)
        wait = np.maximum(u - np.maximum(f, mid), (u - np.maximum(f, t0)) / 2)
        tt[:, shut] = fft[shut][None, :] + np.where(overlap, wait, 0.0)
        return np.ascontiguousarray(tt)

    def _result(self, out, until, seconds, history) -> MesoResult:
        p = self.params
        fft = self.length / self.vfree
        route_links, route_ptr = out["route_links"], out["route_ptr"]
        route_fft = np.add.reduceat(fft[route_links], route_ptr[:-1])
        arrive = out["arrive"]
        done = np.isfinite(arrive)
        tt = arrive - self.depart
        trips = pd.DataFrame({"vehicle_id": self.vehicle_ids, "depart": self.depart, "enter": out["veh_enter"],
                              "arrive": arrive, "travel_time": tt, "free_flow_time": route_fft,
                              "delay": tt - route_fft, "completed": done, "stranded": out["stranded"],
                              "reroutes": out["reroutes"], "held_replans": out["held_replans"]})
        nr = out["n_rec"]
        nl = len(self.length)
        times = np.minimum((np.arange(nr) + 1) * out["rec_every"] * p.dt, out["steps"] * p.dt)
        # space-mean speed from vehicles leaving each link per interval
        ok = np.isfinite(out["traj_exit"]) & np.isfinite(out["traj_enter"])
        rb = np.minimum((out["traj_exit"][ok] / (out["rec_every"] * p.dt)).astype(np.int64), max(nr - 1, 0))
        tsum = np.zeros((max(nr, 1), nl))
        tcnt = np.zeros((max(nr, 1), nl))
        np.add.at(tsum, (rb, route_links[ok]), out["traj_exit"][ok] - out["traj_enter"][ok])
        np.add.at(tcnt, (rb, route_links[ok]), 1.0)
        speed = np.where(tcnt[:nr] > 0, self.length * tcnt[:nr] / np.maximum(tsum[:nr], 1e-9) * 3.6, np.nan)
        series = pd.DataFrame({
            "time": np.repeat(times, nl), "link_id": np.tile(self.link_ids, nr),
            "inflow": out["rec_in"].ravel(), "outflow": out["rec_out"].ravel(),
            "vehicles": out["rec_count"].ravel(),
            "density": (out["rec_count"] / (self.length / 1000.0)).ravel(),
            "speed": speed.ravel(), "queue": out["rec_queue"].ravel()})
        veh_of = np.repeat(np.arange(len(self.depart)), np.diff(route_ptr))
        traj = pd.DataFrame({"vehicle_id": self.vehicle_ids[veh_of], "link_id": self.link_ids[route_links],
                             "enter": out["traj_enter"], "exit": out["traj_exit"]})
        return MesoResult(trips=trips, link_series=series, trajectories=traj, history=history, seconds=seconds,
                          until=float(until))


def route_vehicles(links: pd.DataFrame, origins, destinations, *, cost=None, turns: pd.DataFrame | None = None) -> list:
    """Shortest routes (lists of link ids) between node pairs on ``links``.

    ``cost`` per link (default: length / speed, free-flow seconds). Pairs
    without a path raise :class:`NetworkError` naming them; equal origin and
    destination give an empty route (such trips have no network leg).
    ``turns`` (columns ``from_link``, ``to_link``): the allowed turns, as for
    :class:`MesoModel`; a route leaves its origin on any link and follows
    only allowed turns.
    """
    m = MesoModel(links, pd.DataFrame({"vehicle_id": [], "depart": [], "edges": []}), turns=turns)  # links only
    c = np.ascontiguousarray(m.length / m.vfree if cost is None else np.asarray(cost, dtype=np.float64))
    if c.shape != m.length.shape or not np.all((c >= 0) & (c < np.inf)):
        what = f"shape {c.shape}" if c.shape != m.length.shape else "negative or non-finite values"
        raise ParameterError(f"cost must hold one finite number >= 0 per link ({len(m.length)}), got {what}")
    indptr, heads, link_of = m._csr()
    nidx = pd.Index(m.node_ids)
    origins, destinations = np.asarray(origins), np.asarray(destinations)
    if origins.shape != destinations.shape:
        raise ParameterError(f"origins and destinations must have the same length, got {origins.shape} and "
                             f"{destinations.shape}")
    o = nidx.get_indexer(origins)
    d = nidx.get_indexer(destinations)
    if np.any(o < 0) or np.any(d < 0):
        bad = np.asarray(origins)[o < 0].tolist() + np.asarray(destinations)[d < 0].tolist()
        raise NetworkError(f"unknown node ids {bad[:5]}; they are not link endpoints")
    n = len(m.node_ids)
    dist = np.empty(n)
    pred = np.empty(n, np.int64)
    order = np.empty(n, np.int64)
    hk = np.empty(len(c) + 1)
    hv = np.empty(len(c) + 1, np.int64)
    routes: list = [None] * len(o)
    missing = []
    if m.turns is not None:
        return _route_with_turns(m, c, indptr, link_of, o, d, origins, destinations)
    for src in np.unique(o):
        K.dijkstra(src, indptr, heads, link_of, c, 0, dist, pred, order, hk, hv)
        for i in np.flatnonzero(o == src):
            j = d[i]
            if not np.isfinite(dist[j]):
                missing.append((origins[i], destinations[i]))
                continue
            path = []
            while j != src:
                a = pred[j]
                path.append(a)
                j = m.tails[a]
            routes[i] = list(m.link_ids[np.asarray(path[::-1], np.int64)]) if path else []
    if missing:
        raise NetworkError(f"{len(missing)} origin-destination pairs have no path, e.g. {missing[:5]}; "
                           "reopen links or drop those trips")
    return routes


def _route_with_turns(m: MesoModel, c, indptr, link_of, o, d, origins, destinations) -> list:
    """:func:`route_vehicles` over links, following the model's turns."""
    succ_ptr, succ = m._successors()
    nl = len(c)
    dist = np.empty(nl)
    pred = np.empty(nl, np.int64)
    order = np.empty(nl, np.int64)
    hk = np.empty(len(succ) + nl + 1)
    hv = np.empty(len(succ) + nl + 1, np.int64)
    routes: list = [None] * len(o)
    missing = []
    for src in np.unique(o):
        K.link_dijkstra(src, indptr, link_of, succ_ptr, succ, m.heads, c, 0, dist, pred, order, hk, hv)
        # the best link into each node: links in settled order, the first one into a node is its best
        best = np.full(len(m.node_ids), -1, np.int64)
        hit = np.isfinite(dist)
        ordered = order[:int(hit.sum())]
        heads = m.heads[ordered]
        first = np.unique(heads, return_index=True)
        best[first[0]] = ordered[first[1]]
        for i in np.flatnonzero(o == src):
            j = d[i]
            if j == src:
                routes[i] = []
                continue
            a = best[j]
            if a < 0:
                missing.append((origins[i], destinations[i]))
                continue
            path = []
            while a >= 0:
                path.append(a)
                a = pred[a]
            routes[i] = list(m.link_ids[np.asarray(path[::-1], np.int64)])
    if missing:
        raise NetworkError(f"{len(missing)} origin-destination pairs have no path that keeps to the allowed turns, "
                           f"e.g. {missing[:5]}; reopen links, give the missing turns, or drop those trips")
    return routes


MesoResult.__repr__ = compact_repr  # arrays and tables by shape (the dataclass repr printed ~6 kB of numbers)
