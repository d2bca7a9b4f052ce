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


@njit(cache=True, parallel=True)
def all_or_nothing(origins, zone_nodes, demand, indptr, heads, link_of, tails, cost, first_thru, n_nodes,
                   flows_by_origin, skim):
    """All-or-nothing loading of ``demand`` (n_orig, n_zones) on shortest paths.

    Parallel over origins; each origin writes its own row of
    ``flows_by_origin`` (n_orig, n_links) and of ``skim`` (n_orig, n_zones).
    """
    n_orig = origins.shape[0]
    n_links = cost.shape[0]
    nz = zone_nodes.shape[0]
    for k in prange(n_orig):
        dist = np.empty(n_nodes)
        pred = np.empty(n_nodes, np.int64)
        order = np.empty(n_nodes, np.int64)
        hk = np.empty(n_links + 1)
        hv = np.empty(n_links + 1, np.int64)
        load = np.zeros(n_nodes)
        nset = dijkstra(origins[k], indptr, heads, link_of, cost, first_thru, dist, pred, order, hk, hv)
        row = flows_by_origin[k]
        for a in range(n_links):
            row[a] = 0.0
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
def meso_run(dt, n_steps, length, vfree, cap_vps, storage, route_ptr, route_links, depart, veh_link_pos,
             veh_enter, veh_ready, link_queue_ptr, wave_time, blocked_until, closed_from, closed_until, rec_every,
             rec_flow_in, rec_flow_out, rec_count, rec_queue, traj_enter, traj_exit, arrive, stranded):
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

    ``blocked_until``: a link's downstream end lets nobody out before then (an
    incident). ``closed_from`` / ``closed_until``: a link's upstream end lets
    nobody in during [from, until) (a closed road; vehicles on it drive off).
    A vehicle whose next road is closed for good (``until`` inf) leaves the
    network where it is (it turns off or parks) instead of blocking the queue
    behind it; ``stranded`` gets the time (NaN for the others).
    """
    n_links = length.shape[0]
    n_veh = depart.shape[0]
    # per-link FIFO stored in a flat ring buffer of capacity = n_veh per link window
    # we use per-link arrays of vehicle ids with head/tail indices into a global buffer
    qbuf = np.empty(link_queue_ptr[n_links], np.int64)
    qhead = np.zeros(n_links, np.int64)
    qtail = np.zeros(n_links, np.int64)
    count = np.zeros(n_links, np.int64)
    out_credit = np.ones(n_links)
    in_credit = np.ones(n_links)
    # freed space travels back upstream: per-link FIFO of the times it becomes visible there
    pending_free = np.zeros(n_links, np.int64)  # vehicles left but space not yet visible upstream
    fbuf = np.empty(link_queue_ptr[n_links])
    fhead = np.zeros(n_links, np.int64)
    ftail = np.zeros(n_links, np.int64)
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
            while count[a] > 0 and out_credit[a] >= 1.0:
                v = qbuf[link_queue_ptr[a] + qhead[a] % (link_queue_ptr[a + 1] - link_queue_ptr[a])]
                if veh_ready[v] > t1:
                    break
                p = veh_link_pos[v]
                last = p + 1 >= route_ptr[v + 1]
                ends_here = False
                if not last:
                    nb = route_links[p + 1]
                    if closed_until[nb] == np.inf and t >= closed_from[nb]:
                        ends_here = True  # the road ahead is closed for good
                    elif count[nb] + pending_free[nb] >= storage[nb] or in_credit[nb] < 1.0:
                        break
                tx = max(veh_ready[v], t)
                # leave a
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
            p = route_ptr[v]
            a = route_links[p]
            if closed_until[a] == np.inf and t >= closed_from[a]:
                stranded[v] = max(depart[v], t)  # its first road is closed for good: it never sets off
                n_done += 1
            elif count[a] + pending_free[a] < storage[a] and in_credit[a] >= 1.0:
                te = max(depart[v], t)
                qbuf[link_queue_ptr[a] + qtail[a] % (link_queue_ptr[a + 1] - link_queue_ptr[a])] = v
                qtail[a] += 1
                count[a] += 1
                in_credit[a] -= 1.0
                veh_link_pos[v] = p
                veh_enter[v] = te
                traj_enter[p] = te
                veh_ready[v] = te + length[a] / vfree[a]
                rec_flow_in[nrec, a] += 1.0
            else:
                waiting[w] = v
                w += 1
        n_wait = w
        # record
        if (step + 1) % rec_every == 0 or step == n_steps - 1:
            for a in range(n_links):
                rec_count[nrec, a] = count[a]
                q = 0
                # queued = vehicles whose free-flow time is over but still on the link
                h = qhead[a]
                m = link_queue_ptr[a + 1] - link_queue_ptr[a]
                for j in range(count[a]):
                    if veh_ready[qbuf[link_queue_ptr[a] + (h + j) % m]] <= t1:
                        q += 1
                rec_queue[nrec, a] = q
            nrec += 1
            if nrec >= rec_flow_in.shape[0]:
                nrec = rec_flow_in.shape[0] - 1
        if n_done == n_veh:
            return step + 1, n_wait
    return n_steps, n_wait
