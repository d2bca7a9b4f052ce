"""Numba kernels for traffic assignment and the mesoscopic model.

Plain ``@njit(cache=True)`` functions over flat contiguous arrays (float64 /
int64). Validation happens in the public classes; nothing here checks input.
They also run with ``NUMBA_DISABLE_JIT=1``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

INF = np.inf


@njit(cache=True)
def bpr_cost(fft, b, power, capacity, flow, toll, out):
    """t = fft * (1 + b (x / c)^p) + toll, into ``out``."""
    for i in range(fft.shape[0]):
        c = capacity[i]
        if c > 0.0:
            r = flow[i] / c
            out[i] = fft[i] * (1.0 + b[i] * r ** power[i]) + toll[i]
        else:
            out[i] = INF
    return out


@njit(cache=True)
def bpr_derivative(fft, b, power, capacity, flow, out):
    """dt/dx of the BPR function."""
    for i in range(fft.shape[0]):
        c = capacity[i]
        p = power[i]
        if c > 0.0 and flow[i] > 0.0:
            out[i] = fft[i] * b[i] * p * flow[i] ** (p - 1.0) / c ** p
        else:
            out[i] = 0.0
    return out


@njit(cache=True)
def beckmann(fft, b, power, capacity, flow, toll):
    """Beckmann objective sum_a int_0^x t_a(w) dw (tolls included as constant costs)."""
    s = 0.0
    for i in range(fft.shape[0]):
        x = flow[i]
        c = capacity[i]
        p = power[i]
        if c > 0.0:
            s += fft[i] * (x + b[i] * x * (x / c) ** p / (p + 1.0)) + toll[i] * x
    return s


@njit(cache=True)
def _heap_push(hk, hv, size, key, val):
    i = size
    hk[i] = key
    hv[i] = val
    while i > 0:
        p = (i - 1) >> 1
        if hk[p] <= hk[i]:
            break
        tk = hk[p]
        hk[p] = hk[i]
        hk[i] = tk
        tv = hv[p]
        hv[p] = hv[i]
        hv[i] = tv
        i = p
    return size + 1


@njit(cache=True)
def _heap_pop(hk, hv, size):
    key = hk[0]
    val = hv[0]
    size -= 1
    hk[0] = hk[size]
    hv[0] = hv[size]
    i = 0
    while True:
        l = 2 * i + 1
        if l >= size:
            break
        r = l + 1
        m = l
        if r < size and hk[r] < hk[l]:
            m = r
        if hk[m] >= hk[i]:
            break
        tk = hk[m]
        hk[m] = hk[i]
        hk[i] = tk
        tv = hv[m]
        hv[m] = hv[i]
        hv[i] = tv
        i = m
    return key, val, size


@njit(cache=True)
def dijkstra(source, indptr, heads, link_of, cost, first_thru, dist, pred, order, hk, hv):
    """Shortest paths from ``source`` on a CSR out-star (binary heap, lazy deletion).

    Nodes ``< first_thru`` other than ``source`` are centroids: reached but not
    expanded (no through traffic). ``pred[j]`` is the link into ``j``; ``order``
    receives the settled nodes in order; returns how many were settled.
    """
    n = dist.shape[0]
    for i in range(n):
        dist[i] = INF
        pred[i] = -1
    dist[source] = 0.0
    size = _heap_push(hk, hv, 0, 0.0, source)
    nset = 0
    while size > 0:
        d, u, size = _heap_pop(hk, hv, size)
        if d > dist[u]:
            continue
        order[nset] = u
        nset += 1
        if u < first_thru and u != source:
            continue
        for e in range(indptr[u], indptr[u + 1]):
            a = link_of[e]
            nd = d + cost[a]
            v = heads[e]
            if nd < dist[v]:
                dist[v] = nd
                pred[v] = a
                size = _heap_push(hk, hv, size, nd, v)
    return nset


@njit(cache=True)
def _aon_origin(k, origins, zone_nodes, demand, indptr, heads, link_of, tails, cost, first_thru, flows_by_origin,
                skim, dist, pred, order, hk, hv, load):
    """One origin's all-or-nothing row (``flows_by_origin[k]``, ``skim[k]``), with scratch arrays given."""
    n_links = cost.shape[0]
    nz = zone_nodes.shape[0]
    nset = dijkstra(origins[k], indptr, heads, link_of, cost, first_thru, dist, pred, order, hk, hv)
    row = flows_by_origin[k]
    for a in range(n_links):
        row[a] = 0.0
    for i in range(dist.shape[0]):
        load[i] = 0.0
    for z in range(nz):
        j = zone_nodes[z]
        skim[k, z] = dist[j]
        load[j] += demand[k, z]
    for s in range(nset - 1, 0, -1):
        j = order[s]
        x = load[j]
        if x != 0.0:
            a = pred[j]
            row[a] += x
            load[tails[a]] += x


@njit(cache=True)
def all_or_nothing_serial(origins, zone_nodes, demand, indptr, heads, link_of, tails, cost, first_thru, n_nodes,
                          flows_by_origin, skim):
    """:func:`all_or_nothing` on one thread (one set of scratch arrays for every origin)."""
    n_links = cost.shape[0]
    dist = np.empty(n_nodes)
    pred = np.empty(n_nodes, np.int64)
    order = np.empty(n_nodes, np.int64)
    hk = np.empty(n_links + 1)
    hv = np.empty(n_links + 1, np.int64)
    load = np.zeros(n_nodes)
    for k in range(origins.shape[0]):
        _aon_origin(k, origins, zone_nodes, demand, indptr, heads, link_of, tails, cost, first_thru,
                    flows_by_origin, skim, dist, pred, order, hk, hv, load)


@njit(cache=True, parallel=True)
def all_or_nothing_parallel(origins, zone_nodes, demand, indptr, heads, link_of, tails, cost, first_thru, n_nodes,
                            flows_by_origin, skim):
    """:func:`all_or_nothing` in parallel over origins (each writes its own rows)."""
    n_links = cost.shape[0]
    for k in prange(origins.shape[0]):
        dist = np.empty(n_nodes)
        pred = np.empty(n_nodes, np.int64)
        order = np.empty(n_nodes, np.int64)
        hk = np.empty(n_links + 1)
        hv = np.empty(n_links + 1, np.int64)
        load = np.zeros(n_nodes)
        _aon_origin(k, origins, zone_nodes, demand, indptr, heads, link_of, tails, cost, first_thru,
                    flows_by_origin, skim, dist, pred, order, hk, hv, load)


#: origins x (nodes + links) below which :func:`all_or_nothing` runs on one thread. Measured on 2 cores at load
#: ~5 (warm calls, best of 3): Sioux Falls (2,400) 0.02 ms serial / 0.1 ms parallel, Anaheim (50,540) 1.1 / 3.9 ms,
#: a 50x50 grid with 100 origins (1.2 M) 24 / 27 ms, 70x70 (2.4 M) 50 / 43 ms, 100x100 with 200 origins (9.9 M)
#: 223 / 112 ms: under about 2 M a call is over before the threads have started, joined and (on a busy
#: machine) waited for a free core.
PARALLEL_AON_WORK = 2_000_000


def all_or_nothing(origins, zone_nodes, demand, indptr, heads, link_of, tails, cost, first_thru, n_nodes,
                   flows_by_origin, skim):
    """All-or-nothing loading of ``demand`` (n_orig, n_zones) on shortest paths.

    Each origin writes its own row of ``flows_by_origin`` (n_orig, n_links)
    and of ``skim`` (n_orig, n_zones). Small problems (origins x (nodes +
    links) under :data:`PARALLEL_AON_WORK`) run on one thread, larger ones in
    parallel over origins.
    """
    work = origins.shape[0] * (n_nodes + cost.shape[0])
    fn = all_or_nothing_parallel if work >= PARALLEL_AON_WORK and origins.shape[0] > 1 else all_or_nothing_serial
    fn(origins, zone_nodes, demand, indptr, heads, link_of, tails, cost, first_thru, n_nodes, flows_by_origin, skim)


@njit(cache=True)
def link_dijkstra(source, indptr, link_of, succ_ptr, succ, heads, cost, first_thru, dist, pred, order, hk, hv):
    """Shortest paths over links (turns as arcs) from node ``source``: every open link leaving it starts at its
    own cost; from link ``a`` the search enters only ``succ[succ_ptr[a]:succ_ptr[a + 1]]``.

    ``dist[a]`` is the cost to the end of link ``a``, ``pred[a]`` the link before it (-1: the first).
    Links ending at a node ``< first_thru`` (a centroid) are reached but not continued. ``order``
    receives the settled links in order; returns how many were settled.
    """
    n = dist.shape[0]
    for i in range(n):
        dist[i] = INF
        pred[i] = -1
    size = 0
    for e in range(indptr[source], indptr[source + 1]):
        a = link_of[e]
        if cost[a] < dist[a]:
            dist[a] = cost[a]
            size = _heap_push(hk, hv, size, cost[a], a)
    nset = 0
    while size > 0:
        d, a, size = _heap_pop(hk, hv, size)
        if d > dist[a]:
            continue
        order[nset] = a
        nset += 1
        if heads[a] < first_thru:
            continue
        for e in range(succ_ptr[a], succ_ptr[a + 1]):
            b = succ[e]
            nd = d + cost[b]
            if nd < dist[b]:
                dist[b] = nd
                pred[b] = a
                size = _heap_push(hk, hv, size, nd, b)
    return nset


@njit(cache=True)
def _aon_origin_turns(k, origins, zone_nodes, demand, indptr, link_of, succ_ptr, succ, heads, cost, first_thru,
                      flows_by_origin, skim, dist, pred, order, hk, hv, load, node_dist, node_pred):
    """One origin's all-or-nothing row over links (labels on links: turn restrictions hold)."""
    n_links = cost.shape[0]
    nz = zone_nodes.shape[0]
    src = origins[k]
    nset = link_dijkstra(src, indptr, link_of, succ_ptr, succ, heads, cost, first_thru, dist, pred, order, hk, hv)
    for i in range(node_dist.shape[0]):
        node_dist[i] = INF
        node_pred[i] = -1
    for s in range(nset):  # the best link into each node (settled in order: the first is the best)
        a = order[s]
        j = heads[a]
        if node_pred[j] < 0:
            node_dist[j] = dist[a]
            node_pred[j] = a
    node_dist[src] = 0.0
    node_pred[src] = -1
    row = flows_by_origin[k]
    for a in range(n_links):
        row[a] = 0.0
        load[a] = 0.0
    for z in range(nz):
        j = zone_nodes[z]
        skim[k, z] = node_dist[j]
        if node_pred[j] >= 0:
            load[node_pred[j]] += demand[k, z]
    for s in range(nset - 1, -1, -1):
        a = order[s]
        x = load[a]
        if x != 0.0:
            row[a] += x
            p = pred[a]
            if p >= 0:
                load[p] += x


@njit(cache=True)
def all_or_nothing_turns_serial(origins, zone_nodes, demand, indptr, link_of, succ_ptr, succ, heads, cost,
                                first_thru, n_nodes, flows_by_origin, skim):
    """:func:`all_or_nothing_turns` on one thread."""
    n_links = cost.shape[0]
    dist = np.empty(n_links)
    pred = np.empty(n_links, np.int64)
    order = np.empty(n_links, np.int64)
    hk = np.empty(succ.shape[0] + n_links + 1)
    hv = np.empty(succ.shape[0] + n_links + 1, np.int64)
    load = np.zeros(n_links)
    node_dist = np.empty(n_nodes)
    node_pred = np.empty(n_nodes, np.int64)
    for k in range(origins.shape[0]):
        _aon_origin_turns(k, origins, zone_nodes, demand, indptr, link_of, succ_ptr, succ, heads, cost, first_thru,
                          flows_by_origin, skim, dist, pred, order, hk, hv, load, node_dist, node_pred)


@njit(cache=True, parallel=True)
def all_or_nothing_turns_parallel(origins, zone_nodes, demand, indptr, link_of, succ_ptr, succ, heads, cost,
                                  first_thru, n_nodes, flows_by_origin, skim):
    """:func:`all_or_nothing_turns` in parallel over origins."""
    n_links = cost.shape[0]
    for k in prange(origins.shape[0]):
        dist = np.empty(n_links)
        pred = np.empty(n_links, np.int64)
        order = np.empty(n_links, np.int64)
        hk = np.empty(succ.shape[0] + n_links + 1)
        hv = np.empty(succ.shape[0] + n_links + 1, np.int64)
        load = np.zeros(n_links)
        node_dist = np.empty(n_nodes)
        node_pred = np.empty(n_nodes, np.int64)
        _aon_origin_turns(k, origins, zone_nodes, demand, indptr, link_of, succ_ptr, succ, heads, cost, first_thru,
                          flows_by_origin, skim, dist, pred, order, hk, hv, load, node_dist, node_pred)


def all_or_nothing_turns(origins, zone_nodes, demand, indptr, link_of, succ_ptr, succ, heads, cost, first_thru,
                         n_nodes, flows_by_origin, skim):
    """:func:`all_or_nothing` with turn restrictions: shortest paths over links (a link continues only onto its
    successors ``succ[succ_ptr[a]:succ_ptr[a + 1]]``), loaded back along the predecessor links. Trips leave
    their origin on any open link out of it and end on the best link into their destination."""
    work = origins.shape[0] * (n_nodes + succ.shape[0] + cost.shape[0])
    fn = (all_or_nothing_turns_parallel if work >= PARALLEL_AON_WORK and origins.shape[0] > 1
          else all_or_nothing_turns_serial)
    fn(origins, zone_nodes, demand, indptr, link_of, succ_ptr, succ, heads, cost, first_thru, n_nodes,
       flows_by_origin, skim)


@njit(cache=True)
def sum_rows(m, out):
    for a in range(out.shape[0]):
        out[a] = 0.0
    for k in range(m.shape[0]):
        for a in range(out.shape[0]):
            out[a] += m[k, a]
    return out


@njit(cache=True)
def line_search(fft, b, power, capacity, toll, x, d, tol):
    """Step tau in [0, 1] minimising the Beckmann objective along x + tau d (bisection on the derivative)."""
    n = x.shape[0]

    def grad(tau):
        g = 0.0
        for i in range(n):
            if d[i] != 0.0:
                c = capacity[i]
                f = x[i] + tau * d[i]
                if f < 0.0:
                    f = 0.0
                t = fft[i] * (1.0 + b[i] * (f / c) ** power[i]) + toll[i]
                g += t * d[i]
        return g

    if grad(1.0) <= 0.0:
        return 1.0
    if grad(0.0) >= 0.0:
        return 0.0
    lo = 0.0
    hi = 1.0
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if grad(mid) > 0.0:
            hi = mid
        else:
            lo = mid
    return 0.5 * (lo + hi)


# ---------------------------------------------------------------------------
# Mesoscopic model (spatial queues with a triangular fundamental diagram)
# ---------------------------------------------------------------------------


@njit(cache=True)
def fifo_plan(plan_cost, plan_bin):
    """Planning costs (time bins x links) made first-in first-out: ``plan[0]`` the costs, ``plan[1]`` the
    latest exit time of a vehicle that entered in an earlier bin (-inf in the first). With
    cost(t) = max(plan[0][bin], plan[1][bin] - t) nobody who enters a link later leaves it sooner, so a
    time-dependent Dijkstra is exact and driving round a block never beats waiting."""
    nb, nl = plan_cost.shape
    plan = np.empty((2, nb, nl))
    for b in range(nl):
        floor = -INF
        for k in range(nb):
            plan[0, k, b] = plan_cost[k, b]
            plan[1, k, b] = floor
            end = (k + 1) * plan_bin + plan_cost[k, b]
            if end > floor:
                floor = end
    return plan


@njit(cache=True)
def _entry_cost(b, t, t0, fft, plan, plan_bin, closed_from, closed_until, count, cap_vps, wait):
    """Time to cross link ``b`` entered at ``t`` by a driver planning at ``t0``: the planning cost of its
    time bin (:func:`fifo_plan`); at least until the ``count[b]`` vehicles on it at ``t0`` have left at
    its capacity (live traffic: nobody overtakes); and, when it is closed at ``t``, at least free flow
    plus the wait until it reopens (inf: closed for good, or ``wait`` False: only open roads)."""
    k = int(t / plan_bin)
    if k >= plan.shape[1]:
        k = plan.shape[1] - 1
    c = plan[0, k, b]
    f = plan[1, k, b] - t
    if f > c:
        c = f
    f = t0 + count[b] / cap_vps[b] - t
    if f > c:
        c = f
    if closed_from[b] <= t < closed_until[b]:
        if not wait:
            return INF
        w = fft[b] + (closed_until[b] - t)
        if w > c:
            c = w
    return c


@njit(cache=True)
def replan(first, lo, hi, t0, dest, heads, succ_ptr, succ, fft, plan, plan_bin, closed_from, closed_until, count,
           cap_vps, wait, dist, pred, hk, hv):
    """Quickest route setting off at ``t0`` on one of the links ``first[lo:hi]`` to node ``dest``:
    time-dependent Dijkstra over links (turns as arcs, ``succ_ptr`` / ``succ``) with :func:`_entry_cost`, so
    a closed link costs the wait until it reopens (``wait``; otherwise it is not entered while closed) and
    one closed for good is never entered. ``dist[b]``: time from ``t0`` to the end of ``b``; ``pred[b]``:
    the link before ``b`` (-1: the first). Returns the route's last link (-1: no route).
    """
    for i in range(dist.shape[0]):
        dist[i] = INF
        pred[i] = -1
    size = 0
    for e in range(lo, hi):
        b = first[e]
        c = _entry_cost(b, t0, t0, fft, plan, plan_bin, closed_from, closed_until, count, cap_vps, wait)
        if c < dist[b]:
            dist[b] = c
            size = _heap_push(hk, hv, size, c, b)
    while size > 0:
        d, u, size = _heap_pop(hk, hv, size)
        if d > dist[u]:
            continue
        if heads[u] == dest:
            return u
        for e in range(succ_ptr[u], succ_ptr[u + 1]):
            v = succ[e]
            nd = d + _entry_cost(v, t0 + d, t0, fft, plan, plan_bin, closed_from, closed_until, count, cap_vps,
                                 wait)
            if nd < dist[v]:
                dist[v] = nd
                pred[v] = u
                size = _heap_push(hk, hv, size, nd, v)
    return -1


@njit(cache=True)
def _plan_again(v, p, q, cur, first, lo, hi, t0, margin, route_links, route_end, n_route, moved_to, traj_enter,
                reroutes, heads, succ_ptr, succ, fft, plan, plan_bin, closed_from, closed_until, count, cap_vps, dist,
                pred, hk, hv, path):
    """Vehicle ``v`` at route position ``p`` finds the road it planned next (position ``q``) closed and
    plans again from the links ``first[lo:hi]`` (setting off at ``t0``) to the end node of its route.

    Closed for good: the quickest route, waits for other closed roads included. Closed for a while: the
    quickest route on roads open when it gets there (it does not swap one wait for another), taken only
    when it arrives ``margin`` s sooner than the quickest route that waits for this road (it waits aside,
    in its link's holding list: :func:`meso_run`). The new route goes to ``route_links[n_route:]``, after a copy
    of the current link ``cur`` (none when < 0: it has not set off) that takes over its entry time;
    ``moved_to[p]`` points there. Returns (the new position of the vehicle, -1: it keeps its route; the new
    ``n_route``, -1: ``route_links`` is too short).
    """
    nb = route_links[q]
    dest = heads[route_links[route_end[v] - 1]]
    for_good = closed_until[nb] == INF
    u = replan(first, lo, hi, t0, dest, heads, succ_ptr, succ, fft, plan, plan_bin, closed_from, closed_until, count,
               cap_vps, for_good, dist, pred, hk, hv)
    if u < 0:
        return -1, n_route
    k = 0
    j = u
    while j >= 0:
        path[k] = j
        k += 1
        j = pred[j]
    if path[k - 1] == nb:
        return -1, n_route
    if not for_good:  # it reopens: is going round quicker than waiting for it?
        t_round = dist[u]
        w = replan(route_links, q, q + 1, t0, dest, heads, succ_ptr, succ, fft, plan, plan_bin, closed_from,
                   closed_until, count, cap_vps, True, dist, pred, hk, hv)
        if w >= 0 and t_round + margin >= dist[w]:
            return -1, n_route
    at = n_route
    if n_route + k + (1 if cur >= 0 else 0) > route_links.shape[0]:
        return -1, -1
    if cur >= 0:
        route_links[at] = cur
        traj_enter[at] = traj_enter[p]
        n_route += 1
    for i in range(k):
        route_links[n_route + i] = path[k - 1 - i]
    n_route += k
    moved_to[p] = at
    route_end[v] = n_route
    reroutes[v] += 1
    return at, n_route


@njit(cache=True)
def _leave_link(a, p, tx, link_queue_ptr, count, out_credit, pending_free, fbuf, ftail, wave_time, traj_exit,
                rec_flow_out, nrec):
    """The vehicle at route position ``p`` leaves link ``a``'s downstream end at ``tx``: its space reaches the
    upstream end ``wave_time[a]`` later."""
    count[a] -= 1
    out_credit[a] -= 1.0
    traj_exit[p] = tx
    pending_free[a] += 1
    fbuf[link_queue_ptr[a] + ftail[a] % (link_queue_ptr[a + 1] - link_queue_ptr[a])] = tx + wave_time[a]
    ftail[a] += 1
    rec_flow_out[nrec, a] += 1.0


@njit(cache=True)
def _join_link(v, b, p, tx, link_queue_ptr, qbuf, qtail, count, in_credit, veh_link_pos, traj_enter, veh_ready,
               length, vfree, rec_flow_in, nrec):
    """Vehicle ``v`` enters link ``b`` (its route position ``p``) at ``tx``, at the tail of its FIFO."""
    veh_link_pos[v] = p
    qbuf[link_queue_ptr[b] + qtail[b] % (link_queue_ptr[b + 1] - link_queue_ptr[b])] = v
    qtail[b] += 1
    count[b] += 1
    in_credit[b] -= 1.0
    traj_enter[p] = tx
    veh_ready[v] = tx + length[b] / vfree[b]
    rec_flow_in[nrec, b] += 1.0


@njit(cache=True)
def _held_replan(a, t, interval, replan_at, held_replans, hbuf, nheld, first, lo, hi, margin, route_links, route_end,
                 n_route, moved_to, traj_enter, traj_exit, reroutes, planned_at, veh_link_pos, veh_ready, stranded,
                 heads, succ_ptr, succ, fft, plan, plan_bin, closed_from, closed_until, count, cap_vps, dist, pred, hk,
                 hv, path, link_queue_ptr, out_credit, pending_free, fbuf, ftail, wave_time, rec_flow_out, nrec):
    """The vehicles held on link ``a`` (:func:`meso_run`) whose re-planning time ``replan_at`` has come and
    whose road is still closed at ``t`` plan again from the end of ``a`` (:func:`_plan_again`, the links
    ``first[lo:hi]``), every ``interval`` s, and at once when that road (a way round it took before) has closed
    for good. One that takes a way round stays in the holding list, in its
    place, at its new position (:func:`_release_held` lets it go on when its new road can take it); one
    whose road is closed for good with no way left leaves the network (``stranded``) as soon as ``a``
    discharges; the others keep their place. Returns (how many left the network, the new
    ``n_route``, -1: ``route_links`` is too short)."""
    h0 = link_queue_ptr[a]
    k = 0
    for i in range(nheld[a]):
        v = hbuf[h0 + i]
        p = veh_link_pos[v]
        nb = route_links[p + 1]
        # every interval s, and at once when its road (a way round it took) has closed for good meanwhile
        if replan_at[v] != -INF and (replan_at[v] <= t or closed_until[nb] == INF) and closed_from[nb] <= t < \
                closed_until[nb]:
            replan_at[v] = t + interval
            held_replans[v] += 1
            at, n_route = _plan_again(v, p, p + 1, a, first, lo, hi, max(veh_ready[v], t), margin, route_links,
                                      route_end, n_route, moved_to, traj_enter, reroutes, heads, succ_ptr, succ, fft,
                                      plan, plan_bin, closed_from, closed_until, count, cap_vps, dist, pred, hk, hv,
                                      path)
            if n_route < 0:
                return 0, -1
            if at >= 0:
                p = at
                veh_link_pos[v] = p
                planned_at[v] = p
                nb = route_links[p + 1]
            if closed_until[nb] == INF and closed_from[nb] <= t:
                replan_at[v] = -INF  # closed for good and no way left: it leaves the network here
        if replan_at[v] == -INF and out_credit[a] >= 1.0:
            tx = max(veh_ready[v], t)
            _leave_link(a, p, tx, link_queue_ptr, count, out_credit, pending_free, fbuf, ftail, wave_time, traj_exit,
                        rec_flow_out, nrec)
            stranded[v] = tx
            continue
        hbuf[h0 + k] = v
        k += 1
    n = nheld[a] - k
    nheld[a] = k
    return n, n_route


@njit(cache=True)
def _release_held(a, t, hbuf, nheld, route_links, veh_link_pos, veh_ready, closed_from, closed_until, storage,
                  link_queue_ptr, qbuf, qtail, count, out_credit, in_credit, pending_free, fbuf, ftail, wave_time,
                  traj_enter, traj_exit, length, vfree, rec_flow_in, rec_flow_out, nrec):
    """The vehicles held on link ``a`` (waiting for a closed road, :func:`meso_run`) whose road is open at
    ``t`` and can take them enter it, in the order they stopped, while ``a``'s discharge lasts; the others
    stay held, in order. Returns how many left."""
    h0 = link_queue_ptr[a]
    k = 0
    for i in range(nheld[a]):
        v = hbuf[h0 + i]
        p = veh_link_pos[v]
        b = route_links[p + 1]
        if (out_credit[a] >= 1.0 and not (closed_from[b] <= t < closed_until[b])
                and count[b] + pending_free[b] < storage[b] and in_credit[b] >= 1.0):
            tx = max(veh_ready[v], t)
            _leave_link(a, p, tx, link_queue_ptr, count, out_credit, pending_free, fbuf, ftail, wave_time, traj_exit,
                        rec_flow_out, nrec)
            _join_link(v, b, p + 1, tx, link_queue_ptr, qbuf, qtail, count, in_credit, veh_link_pos, traj_enter,
                       veh_ready, length, vfree, rec_flow_in, nrec)
        else:
            hbuf[h0 + k] = v
            k += 1
    n = nheld[a] - k
    nheld[a] = k
    return n


@njit(cache=True)
def meso_run(dt, n_steps, length, vfree, cap_vps, storage, route_end, route_links, depart, veh_link_pos,
             veh_enter, veh_ready, link_queue_ptr, wave_time, blocked_until, closed_from, closed_until, rec_every,
             rec_flow_in, rec_flow_out, rec_count, rec_queue, traj_enter, traj_exit, arrive, stranded,
             reroute, reroute_margin, n_route, moved_to, reroutes, heads, tails, succ_ptr, succ, node_ptr, node_links,
             plan_cost, plan_bin, replan_interval, held_replans, hold_cap):
    """Advance vehicles over links in time steps ``dt`` (see :class:`MesoModel`).

    Each link is a FIFO of vehicles. A vehicle entering link a at time t can
    leave no earlier than t + length/vfree (free-flow travel). The link's
    downstream end discharges at most ``cap_vps * dt`` vehicles per step
    (fractional credit carried over), and a vehicle moves on only if the next
    link has room (count < storage: spillback) and the next link's upstream
    end has inflow capacity left in this step. Space freed at the downstream
    end reaches the upstream end ``wave_time`` later (backward wave speed of
    the triangular diagram). Departures enter their first link's upstream end
    under the same inflow rules and wait outside the network otherwise.

    Routes: vehicle v's links are ``route_links[veh_link_pos[v]:route_end[v]]``
    (``veh_link_pos`` starts at the first one); its position ``p`` indexes
    ``traj_enter`` / ``traj_exit`` too.

    ``blocked_until``: a link's downstream end lets nobody out before then (an
    incident). ``closed_from`` / ``closed_until``: a link's upstream end lets
    nobody in during [from, until) (a closed road; vehicles on it drive off).

    A vehicle at the end of a link whose next road is closed for a while (and
    that does not go round it) waits for it out of the FIFO, in the link's
    holding list (as a car waiting to turn lets the traffic for other turns
    pass it on a multi-lane street), while the list holds fewer than
    ``hold_cap`` of the link (one lane's share of its storage; 0 on one lane):
    the vehicles behind it move on. Otherwise it waits at the head of the FIFO
    and holds everybody behind it (nobody gets past on one lane). A held one
    still takes up the link's storage (``count``: many waiting fill the link
    and spill back upstream) and it is counted in the queue. Held vehicles go
    first, in the order they stopped, once their road has reopened, under the
    same rules as the FIFO (the link's discharge, the road's inflow capacity
    and room). Nobody is held without closures, so such runs are unchanged.

    En-route re-planning (``reroute``): a vehicle at the end of a link (or
    setting off) whose next road is closed plans again, once per position, from
    there to the end node of its route (:func:`replan`: costs ``plan_cost`` per
    time bin of ``plan_bin`` s, the queues on the roads now, the waits for
    closed roads). Round a road closed for good it takes the quickest route;
    round one closed for a while, the quickest on open roads when that arrives
    ``reroute_margin`` s sooner than waiting (:func:`_plan_again`). The rest
    of the old route is dropped, the new one is appended at
    ``route_links[n_route:]`` (after a copy of the current link, which moves
    there with its entry time), ``moved_to[p]`` gets the new position and
    ``reroutes[v]`` counts the change. Otherwise it waits for the road to
    reopen. A vehicle whose road ahead has closed for good since it planned
    (a way round it took, full when it got there) plans again at once.

    Waiting vehicles think again (``reroute`` and ``replan_interval`` finite
    and > 0): every ``replan_interval`` s from when it met the closure, a
    vehicle waiting for a road still closed (held, :func:`_held_replan`, or at
    the head of the FIFO) makes the same decision again from its junction,
    with the costs, queues and closures of that moment; and at once when the
    road it waits for has closed for good (a way round it took).
    ``held_replans[v]`` counts these decisions, ``reroutes[v]`` the changes.
    One that takes a way round keeps its place (in the holding list or at the
    head of the FIFO), now waiting for an open road: it goes on as soon as
    that road can take it. One whose road is closed for good with no way left
    leaves the network there (``stranded``). Runs where nobody waits for a
    closed road are unchanged.

    A vehicle whose next road is closed for good (``until`` inf) and that has
    no other route (or does not re-plan) leaves the network where it is (it
    turns off or parks) instead of blocking the queue behind it; ``stranded``
    gets the time (NaN for the others).

    Returns (steps run, vehicles still waiting to set off, positions of
    ``route_links`` used; -1: it is too short for the new routes, run again
    with a longer one).
    """
    n_links = length.shape[0]
    n_veh = depart.shape[0]
    # per-link FIFO stored in a flat ring buffer of capacity = n_veh per link window
    # we use per-link arrays of vehicle ids with head/tail indices into a global buffer
    qbuf = np.empty(link_queue_ptr[n_links], np.int64)
    qhead = np.zeros(n_links, np.int64)
    qtail = np.zeros(n_links, np.int64)
    count = np.zeros(n_links, np.int64)  # vehicles on the link: its FIFO and its holding list
    # vehicles out of the FIFO waiting for a road closed for a while, in the order they stopped
    hbuf = np.empty(link_queue_ptr[n_links], np.int64)
    nheld = np.zeros(n_links, np.int64)
    n_held = 0  # on all links
    out_credit = np.ones(n_links)
    in_credit = np.ones(n_links)
    # freed space travels back upstream: per-link FIFO of the times it becomes visible there
    pending_free = np.zeros(n_links, np.int64)  # vehicles left but space not yet visible upstream
    fbuf = np.empty(link_queue_ptr[n_links])
    fhead = np.zeros(n_links, np.int64)
    ftail = np.zeros(n_links, np.int64)
    # en-route re-planning: the position each vehicle last planned at (p: at the end of its link, for the road
    # after it; -2 - p: setting off, for its first road p), and the Dijkstra's work arrays
    planned_at = np.full(n_veh if reroute else 0, -1, np.int64)
    fft = length / vfree
    dist = np.empty(n_links if reroute else 0)
    pred = np.empty(n_links if reroute else 0, np.int64)
    hk = np.empty(n_links + succ.shape[0] + 1 if reroute else 0)
    hv = np.empty(n_links + succ.shape[0] + 1 if reroute else 0, np.int64)
    path = np.empty(n_links if reroute else 0, np.int64)
    plan = fifo_plan(plan_cost, plan_bin) if reroute else np.empty((2, 0, 0))
    # held vehicles re-plan every replan_interval s: when each does next
    replanning = reroute and 0.0 < replan_interval < INF
    replan_at = np.full(n_veh if replanning else 0, INF)
    # departure order
    dorder = np.argsort(depart, kind="mergesort")
    dnext = 0
    waiting = np.empty(n_veh, np.int64)  # vehicles waiting to enter (FIFO per first link is approximated globally)
    n_wait = 0
    n_done = 0
    nrec = 0
    for step in range(n_steps):
        t = step * dt
        t1 = t + dt
        # release freed space whose backward wave arrived
        for a in range(n_links):
            m = link_queue_ptr[a + 1] - link_queue_ptr[a]
            while fhead[a] < ftail[a] and fbuf[link_queue_ptr[a] + fhead[a] % m] <= t1:
                pending_free[a] -= 1
                fhead[a] += 1
            if t >= blocked_until[a]:
                out_credit[a] = min(out_credit[a] + cap_vps[a] * dt, cap_vps[a] * dt + 1.0)
            else:
                out_credit[a] = 0.0
            if closed_from[a] <= t < closed_until[a]:
                in_credit[a] = 0.0
            else:
                in_credit[a] = min(in_credit[a] + cap_vps[a] * dt, cap_vps[a] * dt + 1.0)
        # move vehicles at link ends (node transfers); the starting link rotates every step so that no
        # approach to a merge has a fixed priority
        for ii in range(n_links):
            a = (ii + step) % n_links
            if replanning and n_held > 0 and nheld[a] > 0:  # held vehicles whose time came think again
                n_gone, n_route = _held_replan(
                    a, t, replan_interval, replan_at, held_replans, hbuf, nheld, succ, succ_ptr[a], succ_ptr[a + 1],
                    reroute_margin, route_links, route_end, n_route, moved_to, traj_enter, traj_exit, reroutes,
                    planned_at, veh_link_pos, veh_ready, stranded, heads, succ_ptr, succ, fft, plan, plan_bin,
                    closed_from, closed_until, count, cap_vps, dist, pred, hk, hv, path, link_queue_ptr, out_credit,
                    pending_free, fbuf, ftail, wave_time, rec_flow_out, nrec)
                if n_route < 0:
                    return step, n_wait, -1
                n_held -= n_gone
                n_done += n_gone
            if n_held > 0 and nheld[a] > 0:  # vehicles waiting for a closed road: those whose road reopened go on
                n_held -= _release_held(a, t, hbuf, nheld, route_links, veh_link_pos, veh_ready, closed_from,
                                        closed_until, storage, link_queue_ptr, qbuf, qtail, count, out_credit,
                                        in_credit, pending_free, fbuf, ftail, wave_time, traj_enter, traj_exit,
                                        length, vfree, rec_flow_in, rec_flow_out, nrec)
            while qtail[a] > qhead[a] and out_credit[a] >= 1.0:
                v = qbuf[link_queue_ptr[a] + qhead[a] % (link_queue_ptr[a + 1] - link_queue_ptr[a])]
                if veh_ready[v] > t1:
                    break
                p = veh_link_pos[v]
                last = p + 1 >= route_end[v]
                ends_here = False
                if not last:
                    nb = route_links[p + 1]
                    if closed_from[nb] <= t < closed_until[nb]:  # the road ahead is closed now
                        # it plans when it meets the closure; again (waiting at the head, no room aside) every
                        # replan_interval s; and at once when the road it waits for (a way round it took, full
                        # when it got there) has since closed for good: only a plan can tell it has no way left
                        again = reroute and planned_at[v] == p
                        if reroute and (not again or closed_until[nb] == INF or (replanning and replan_at[v] <= t)):
                            if again:
                                held_replans[v] += 1
                            planned_at[v] = p
                            if replanning:
                                replan_at[v] = t + replan_interval
                            at, n_route = _plan_again(
                                v, p, p + 1, a, succ, succ_ptr[a], succ_ptr[a + 1], max(veh_ready[v], t),
                                reroute_margin, route_links, route_end, n_route, moved_to, traj_enter, reroutes,
                                heads, succ_ptr, succ, fft, plan, plan_bin, closed_from, closed_until, count,
                                cap_vps, dist, pred, hk, hv, path)
                            if n_route < 0:
                                return step, n_wait, -1
                            if at >= 0:  # a way round: take it
                                p = at
                                veh_link_pos[v] = p
                                planned_at[v] = p
                                nb = route_links[p + 1]
                        if closed_from[nb] <= t < closed_until[nb]:
                            if closed_until[nb] == np.inf:
                                ends_here = True  # the road ahead is closed for good (and no way round)
                            elif nheld[a] < hold_cap[a]:  # wait for it to reopen, out of the way of those behind
                                qhead[a] += 1
                                hbuf[link_queue_ptr[a] + nheld[a]] = v
                                nheld[a] += 1
                                n_held += 1
                                continue
                            else:  # no room aside (one lane, or its share full): it waits at the head and blocks
                                break
                    if not ends_here and (count[nb] + pending_free[nb] >= storage[nb] or in_credit[nb] < 1.0):
                        break
                tx = max(veh_ready[v], t)
                # leave a (written out, as is joining nb below: calling _leave_link / _join_link here made the
                # whole run ~9 % slower)
                qhead[a] += 1
                count[a] -= 1
                out_credit[a] -= 1.0
                traj_exit[p] = tx
                pending_free[a] += 1
                fbuf[link_queue_ptr[a] + ftail[a] % (link_queue_ptr[a + 1] - link_queue_ptr[a])] = tx + wave_time[a]
                ftail[a] += 1
                rec_flow_out[nrec, a] += 1.0
                if last:
                    arrive[v] = tx
                    n_done += 1
                elif ends_here:
                    stranded[v] = tx
                    n_done += 1
                else:
                    nb = route_links[p + 1]
                    veh_link_pos[v] = p + 1
                    qbuf[link_queue_ptr[nb] + qtail[nb] % (link_queue_ptr[nb + 1] - link_queue_ptr[nb])] = v
                    qtail[nb] += 1
                    count[nb] += 1
                    in_credit[nb] -= 1.0
                    traj_enter[p + 1] = tx
                    veh_ready[v] = tx + length[nb] / vfree[nb]
                    rec_flow_in[nrec, nb] += 1.0
        # new departures join the waiting list
        while dnext < n_veh and depart[dorder[dnext]] < t1:
            waiting[n_wait] = dorder[dnext]
            n_wait += 1
            dnext += 1
        # waiting vehicles enter their first link if there is room
        w = 0
        for i in range(n_wait):
            v = waiting[i]
            p = veh_link_pos[v]
            a = route_links[p]
            if reroute and closed_from[a] <= t < closed_until[a] and (planned_at[v] != -2 - p
                                                                      or closed_until[a] == INF):
                # its first road is closed: set off by another road from the same junction if that is quicker
                planned_at[v] = -2 - p
                h = tails[a]
                at, n_route = _plan_again(
                    v, p, p, -1, node_links, node_ptr[h], node_ptr[h + 1], max(depart[v], t), reroute_margin,
                    route_links, route_end, n_route, moved_to, traj_enter, reroutes, heads, succ_ptr, succ, fft,
                    plan, plan_bin, closed_from, closed_until, count, cap_vps, dist, pred, hk, hv, path)
                if n_route < 0:
                    return step, n_wait, -1
                if at >= 0:
                    p = at
                    veh_link_pos[v] = p
                    planned_at[v] = -2 - p
                    a = route_links[p]
            if closed_until[a] == np.inf and t >= closed_from[a]:
                stranded[v] = max(depart[v], t)  # its first road is closed for good: it never sets off
                n_done += 1
            elif count[a] + pending_free[a] < storage[a] and in_credit[a] >= 1.0:
                te = max(depart[v], t)
                veh_enter[v] = te
                _join_link(v, a, p, te, link_queue_ptr, qbuf, qtail, count, in_credit, veh_link_pos, traj_enter,
                           veh_ready, length, vfree, rec_flow_in, nrec)
            else:
                waiting[w] = v
                w += 1
        n_wait = w
        # record
        if (step + 1) % rec_every == 0 or step == n_steps - 1:
            for a in range(n_links):
                rec_count[nrec, a] = count[a]
                q = nheld[a]
                # queued = vehicles whose free-flow time is over but still on the link (the held ones too)
                h = qhead[a]
                m = link_queue_ptr[a + 1] - link_queue_ptr[a]
                for j in range(qtail[a] - qhead[a]):
                    if veh_ready[qbuf[link_queue_ptr[a] + (h + j) % m]] <= t1:
                        q += 1
                rec_queue[nrec, a] = q
            nrec += 1
            if nrec >= rec_flow_in.shape[0]:
                nrec = rec_flow_in.shape[0] - 1
        if n_done == n_veh:
            return step + 1, n_wait, n_route
    return n_steps, n_wait, n_route


@njit(cache=True)
def driven_positions(route_start, route_end, moved_to):
    """The route positions each vehicle drove, in order (CSR: ptr, positions): from its first position,
    following ``moved_to`` where it re-planned (the position it left is not kept), to ``route_end``."""
    nv = route_start.shape[0]
    ptr = np.zeros(nv + 1, np.int64)
    for v in range(nv):
        p = route_start[v]
        n = 0
        while p < route_end[v]:
            if moved_to[p] >= 0:
                p = moved_to[p]
            else:
                n += 1
                p += 1
        ptr[v + 1] = ptr[v] + n
    pos = np.empty(ptr[nv], np.int64)
    for v in range(nv):
        p = route_start[v]
        i = ptr[v]
        while p < route_end[v]:
            if moved_to[p] >= 0:
                p = moved_to[p]
            else:
                pos[i] = p
                i += 1
                p += 1
    return ptr, pos
