"""Static user-equilibrium assignment with BPR costs (FW, CFW, BFW).

Bi-conjugate Frank-Wolfe after Mitradjieva & Lindberg (2013), "The
stiff is moving - conjugate direction Frank-Wolfe methods with applications
to traffic assignment", Transportation Science 47(2); the direction
coefficients follow AequilibraE's formulation of that paper.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from simulation._display import compact_repr
from twin_core.errors import NetworkError, ParameterError, TwinWarning, twin_warn

from . import _kernels as K
from .network import Demand, Network

__all__ = ["assign", "AssignmentResult", "METHODS", "shortest_path_skims"]

METHODS = ("fw", "cfw", "bfw")


@dataclass(repr=False)
class AssignmentResult:
    """Equilibrium link flows and what goes with them.

    ``links`` has link_id, from_node, to_node, flow, cost, free_flow_time,
    capacity, vc; ``skim`` is the (n_zones, n_zones) shortest-path cost at
    the final flows; ``history`` has iteration, rgap, tstt, beckmann,
    stepsize, seconds.
    """

    links: pd.DataFrame
    flow: np.ndarray
    cost: np.ndarray
    skim: np.ndarray
    zone_ids: np.ndarray
    tstt: float
    sptt: float
    rgap: float
    beckmann: float
    iterations: int
    converged: bool
    method: str
    history: pd.DataFrame
    seconds: float
    disconnected: pd.DataFrame = field(default_factory=pd.DataFrame)

    def summary(self) -> dict:
        return {"method": self.method, "iterations": self.iterations, "rgap": self.rgap, "tstt": self.tstt,
                "beckmann": self.beckmann, "converged": self.converged, "seconds": self.seconds,
                "total_flow": float(self.flow.sum()), "max_vc": float(self.links["vc"].max()),
                "disconnected_pairs": int(len(self.disconnected))}


class _Problem:
    """Arrays shared by the iterations (validated once)."""

    def __init__(self, net: Network, demand: Demand):
        zone_idx = net.node_index(demand.zone_ids, what="zone")
        self.net = net
        self.closed = net.capacity <= 0
        self.indptr, self.heads, self.link_of = net.csr(self.closed)
        self.tails = net.tails
        self.zone_nodes = zone_idx
        orig = np.flatnonzero(demand.matrix.sum(axis=1) > 0)
        self.orig_rows = orig
        self.origins = zone_idx[orig]
        self.demand = np.ascontiguousarray(demand.matrix[orig])
        self.first_thru = net.first_thru
        self.flows_by_origin = np.zeros((len(orig), net.n_links))
        self.skim = np.zeros((len(orig), len(zone_idx)))
        self.cap = np.where(self.closed, 1.0, net.capacity)  # closed links never used (not in CSR)
        # turn restrictions: shortest paths over links; without them the node-based search (faster)
        self.succ = net.turn_csr(self.closed) if net.turns is not None else None

    def run_aon(self, origins, demand, cost, flows_by_origin, skim):
        """All-or-nothing of ``demand`` (len(origins), n_zones) from the nodes ``origins``."""
        if self.succ is None:
            K.all_or_nothing(origins, self.zone_nodes, demand, self.indptr, self.heads, self.link_of, self.tails,
                             cost, self.first_thru, self.net.n_nodes, flows_by_origin, skim)
        else:
            K.all_or_nothing_turns(origins, self.zone_nodes, demand, self.indptr, self.link_of, self.succ[0],
                                   self.succ[1], self.net.heads, cost, self.first_thru, self.net.n_nodes,
                                   flows_by_origin, skim)

    def aon(self, cost, out):
        self.run_aon(self.origins, self.demand, cost, self.flows_by_origin, self.skim)
        K.sum_rows(self.flows_by_origin, out)
        return out

    def cost(self, flow, out):
        n = self.net
        return K.bpr_cost(n.fft, n.b, n.power, self.cap, flow, n.toll, out)


def _skim_rows(p: _Problem, cost: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Shortest-path costs at ``cost`` from the zones at positions ``rows`` to every zone (inf: no path)."""
    nz = len(p.zone_nodes)
    out = np.empty((len(rows), nz))
    for k in range(0, len(rows), 64):  # in batches: the kernel needs an (origins, links) scratch array
        r = rows[k:k + 64]
        p.run_aon(p.zone_nodes[r], np.zeros((len(r), nz)), cost, np.zeros((len(r), p.net.n_links)), out[k:k + 64])
    return out


def _paths_through_zones(p: _Problem, cost: np.ndarray, oi: np.ndarray, di: np.ndarray) -> bool:
    """Whether the OD pairs (rows ``oi`` of the origins, zone columns ``di``) without a path would have one if
    zones carried through traffic: then the zones that block it are the cause, not the links."""
    rows = np.unique(oi)
    first_thru, p.first_thru = p.first_thru, 0
    try:
        sk = _skim_rows(p, cost, p.orig_rows[rows])
    finally:
        p.first_thru = first_thru
    return bool(np.isfinite(sk[np.searchsorted(rows, oi), di]).all())


def shortest_path_skims(net: Network, demand: Demand) -> np.ndarray:
    """Free-flow shortest-path costs (n_zones, n_zones); inf where unreachable."""
    p = _Problem(net, Demand(demand.zone_ids, np.ones_like(demand.matrix)))
    c = p.cost(np.zeros(net.n_links), np.empty(net.n_links))
    p.aon(c, np.empty(net.n_links))
    return p.skim.copy()


def assign(net: Network, demand: Demand, *, method: str = "bfw", rgap: float = 1e-5, max_iter: int = 1000,
           on_disconnected: str = "raise", line_search_tol: float = 1e-10,
           progress: Callable[[float, float], None] | None = None) -> AssignmentResult:
    """User-equilibrium assignment of ``demand`` on ``net``.

    Parameters
    ----------
    method : {"fw", "cfw", "bfw"}
        Frank-Wolfe, conjugate FW, bi-conjugate FW.
    rgap : float
        Stop at relative gap (TSTT - SPTT) / TSTT <= rgap, in (0, 1).
    max_iter : int
        Stop after this many iterations; a run that stops there has
        ``converged`` False and warns (:class:`~twin_core.errors.TwinWarning`).
    on_disconnected : {"raise", "drop"}
        OD pairs with demand and no path: raise :class:`NetworkError`
        listing them, or drop them with the list in ``result.disconnected``.

    Examples
    --------
    Two parallel routes t1 = 10 + x1, t2 = 15 + 0.5 x2, demand 10:

    >>> import pandas as pd
    >>> links = pd.DataFrame({"from_node": [0, 0], "to_node": [1, 1], "free_flow_time": [10.0, 15.0],
    ...                       "capacity": [1.0, 1.0], "b": [0.1, 1 / 30], "power": [1.0, 1.0]})
    >>> net = Network.from_links(links, zones=[0, 1])
    >>> res = assign(net, Demand([0, 1], [[0, 10], [0, 0]]), rgap=1e-9)
    >>> [round(float(x), 3) for x in res.flow]
    [6.667, 3.333]
    """
    if method not in METHODS:
        raise ParameterError(f"method must be one of {METHODS}, got {method!r}")
    if on_disconnected not in ("raise", "drop"):
        raise ParameterError(f"on_disconnected must be 'raise' or 'drop', got {on_disconnected!r}")
    if not (0 < rgap < 1):
        raise ParameterError(f"rgap must be in (0, 1), got {rgap} (a relative gap of 1e-4 is a usual target)")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise ParameterError(f"max_iter must be a whole number >= 1, got {max_iter!r}")
    t0 = time.perf_counter()
    p = _Problem(net, demand)
    nl = net.n_links
    cost = p.cost(np.zeros(nl), np.empty(nl))
    y = p.aon(cost, np.empty(nl))
    # disconnected OD pairs
    unreachable = ~np.isfinite(p.skim) & (p.demand > 0)
    disc = pd.DataFrame(columns=["origin", "destination", "trips"])
    if unreachable.any():
        oi, di = np.nonzero(unreachable)
        disc = pd.DataFrame({"origin": demand.zone_ids[p.orig_rows[oi]], "destination": demand.zone_ids[di],
                             "trips": p.demand[oi, di]})
        if on_disconnected == "raise":
            why = "closed or missing links"
            if p.first_thru > 0 and _paths_through_zones(p, cost, oi, di):
                why = (f"zones {net.node_ids[0].item()!r}..{net.node_ids[p.first_thru - 1].item()!r} carry no through traffic "
                       f"(centroids_block_through={net.centroids_block_through!r}; TNTP: <FIRST THRU NODE> "
                       f"{p.first_thru + 1}): check that header")
            raise NetworkError(f"{len(disc)} OD pairs with demand have no path ({why}), e.g. "
                               f"{disc.head(5).to_dict('records')}; reopen links, fix the network, or pass "
                               "on_disconnected='drop' to assign the rest and get the list in result.disconnected")
        p.demand[unreachable] = 0.0
        y = p.aon(cost, np.empty(nl))
    x = y.copy()
    s_prev = np.zeros(nl)
    s_prev2 = np.zeros(nl)
    deriv = np.empty(nl)
    hist = []
    tau_prev = 1.0
    direction = "fw"
    nb = 0  # consecutive conjugate steps available
    it = 0
    converged = False
    rg = np.inf
    tstt = sptt = 0.0
    while True:
        it += 1
        p.cost(x, cost)
        y = p.aon(cost, y)
        tstt = float(np.dot(x, cost))
        sptt = float(np.dot(y, cost))
        rg = (tstt - sptt) / tstt if tstt > 0 else 0.0
        hist.append((it, rg, tstt, float(K.beckmann(net.fft, net.b, net.power, p.cap, x, net.toll)),
                     tau_prev if it > 1 else np.nan, time.perf_counter() - t0))
        if progress is not None:
            progress(min(1.0, np.log10(max(rg, 1e-300)) / np.log10(rgap) if rg < 1 else 0.0), 1.0)
        if rg <= rgap:
            converged = True
            break
        if it >= max_iter:
            break
        # direction
        if method == "fw" or nb == 0:
            s = y.copy()
            direction = "fw"
        elif method == "cfw" or nb == 1:
            K.bpr_derivative(net.fft, net.b, net.power, p.cap, x, deriv)
            a = s_prev - x
            num = np.dot(deriv * a, y - x)
            den = np.dot(deriv * a, y - s_prev)
            alpha = num / den if den != 0 else 0.0
            alpha = min(max(alpha, 0.0), 0.99999)
            s = (1.0 - alpha) * y + alpha * s_prev
            direction = "cfw"
        else:
            K.bpr_derivative(net.fft, net.b, net.power, p.cap, x, deriv)
            xb = tau_prev * s_prev + (1.0 - tau_prev) * s_prev2 - x
            yb = y - x
            zb = s_prev - x
            wb = s_prev2 - s_prev
            mu_den = np.dot(deriv * xb, wb)
            mu = max(0.0, -np.dot(deriv * xb, yb) / mu_den) if mu_den != 0 else 0.0
            nu_den = np.dot(deriv * zb, zb)
            nu = max(0.0, -np.dot(deriv * zb, yb) / nu_den + mu * tau_prev / (1.0 - tau_prev)) if nu_den != 0 else 0.0
            b0 = 1.0 / (1.0 + mu + nu)
            s = b0 * y + nu * b0 * s_prev + mu * b0 * s_prev2
            direction = "bfw"
        d = s - x
        tau = K.line_search(net.fft, net.b, net.power, p.cap, net.toll, x, d, line_search_tol)
        if tau <= 0.0 and direction != "fw":
            s = y.copy()
            d = s - x
            tau = K.line_search(net.fft, net.b, net.power, p.cap, net.toll, x, d, line_search_tol)
            direction = "fw"
        x += tau * d
        np.maximum(x, 0.0, out=x)
        if tau >= 1.0 - 1e-12 or tau <= 0.0:
            nb = 0  # restart conjugacy: the direction history collapsed
        else:
            nb += 1
        s_prev2 = s_prev
        s_prev = s
        tau_prev = tau
    if not converged:
        twin_warn(f"assignment stopped at max_iter={max_iter} with relative gap {rg:.3g} > rgap={rgap:g}: "
                      "the flows are not at equilibrium; raise max_iter or loosen rgap "
                      "(result.converged is False)", TwinWarning, stacklevel=2)
    p.cost(x, cost)
    skim = np.full((len(demand.zone_ids), len(demand.zone_ids)), np.inf)
    skim[p.orig_rows] = p.skim
    rest = np.setdiff1d(np.arange(len(demand.zone_ids)), p.orig_rows)
    if len(rest):  # zones without trips of their own still get their row of the skim at the final costs
        skim[rest] = _skim_rows(p, cost, rest)
    ff = np.where(p.closed, np.inf, net.fft)
    vc = np.where(net.capacity > 0, x / np.where(net.capacity > 0, net.capacity, 1.0), np.nan)
    links = pd.DataFrame({"link_id": net.link_ids, "from_node": net.node_ids[net.tails],
                          "to_node": net.node_ids[net.heads], "flow": x, "cost": np.where(p.closed, np.inf, cost),
                          "free_flow_time": ff, "capacity": net.capacity, "vc": vc, "closed": p.closed})
    history = pd.DataFrame(hist, columns=["iteration", "rgap", "tstt", "beckmann", "stepsize", "seconds"])
    return AssignmentResult(links=links, flow=x, cost=cost.copy(), skim=skim, zone_ids=np.asarray(demand.zone_ids),
                            tstt=tstt, sptt=sptt, rgap=rg,
                            beckmann=float(K.beckmann(net.fft, net.b, net.power, p.cap, x, net.toll)),
                            iterations=it, converged=converged, method=method, history=history,
                            seconds=time.perf_counter() - t0, disconnected=disc)


AssignmentResult.__repr__ = compact_repr  # arrays and tables by shape (the dataclass repr printed ~6 kB of numbers)
