"""Road network and OD demand for the traffic engines.

A :class:`Network` holds directed links over nodes numbered ``0..n_nodes-1``
internally; the caller's node ids (any integers or strings) are kept in
``node_ids`` and every public method speaks them. Zones are nodes too
(centroids); nodes listed as zones with ``through=False`` carry no through
traffic (TNTP ``<FIRST THRU NODE>``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from twin_core.errors import NetworkError, ParameterError

__all__ = ["Network", "Demand", "turn_pairs", "TURN_COLUMNS"]

#: column names of a turns table: the link a vehicle leaves and the link it may enter next (``from_edge`` /
#: ``to_edge``, the names of :func:`cim.io.sumo.read_sumo_connections`, are read too)
TURN_COLUMNS = ("from_link", "to_link")

_REQUIRED = ("from_node", "to_node")


def _col(df: pd.DataFrame, names: tuple[str, ...], default=None):
    for n in names:
        if n in df.columns:
            return df[n].to_numpy()
    return default


#: BPR column names read as ``b`` / ``power`` (case-insensitive): t = fft (1 + b (v/c)^power)
BPR_NAMES = {"b": ("b", "bpr_b", "alpha", "bpr_alpha"), "power": ("power", "bpr_power", "beta", "bpr_beta")}


def _bpr_col(df: pd.DataFrame, what: str, default: float) -> np.ndarray:
    """The BPR parameter ``what`` ("b" or "power") from whichever of its names (:data:`BPR_NAMES`) the
    table uses; two such columns that disagree are an error (which one holds the model is unclear)."""
    found = [c for c in df.columns if isinstance(c, str) and c.lower() in BPR_NAMES[what]]
    if not found:
        return np.full(len(df), default)
    vals = [np.asarray(pd.to_numeric(df[c], errors="coerce"), dtype=np.float64) for c in found]
    for c, v in zip(found[1:], vals[1:]):
        if not np.allclose(v, vals[0], equal_nan=True):
            raise NetworkError(f"links has BPR columns {found[0]!r} and {c!r} that both name the "
                               f"{'coefficient b (alpha)' if what == 'b' else 'exponent power (beta)'} but differ; "
                               "keep one of them")
    return vals[0]


def _duplicates(values, k: int = 5) -> list:
    """Up to ``k`` of the values that appear more than once (empty when all are unique)."""
    idx = pd.Index(values)
    return idx[idx.duplicated()].unique()[:k].tolist()


def _check_endpoints(links: pd.DataFrame) -> None:
    """Every link needs both end nodes: a missing one would join unrelated links at one phantom node."""
    bad = links["from_node"].isna().to_numpy() | links["to_node"].isna().to_numpy()
    if bad.any():
        raise NetworkError(f"links at rows {np.flatnonzero(bad)[:5].tolist()} have no from_node or to_node; "
                           "give every link both end nodes or drop those links")


def turn_pairs(turns, link_ids, tails, heads) -> np.ndarray:
    """Allowed turns as a (2, k) int64 array of link positions (from, to), checked against the links.

    ``turns``: a DataFrame with columns ``from_link`` and ``to_link`` naming link ids; ``tails`` / ``heads``:
    the links' internal end nodes. A turn must join a link to one that starts where it ends; duplicates are
    dropped. Unknown link ids and turns between links that do not meet raise :class:`NetworkError`. A table
    with SUMO's ``from_edge`` / ``to_edge`` instead (:func:`cim.io.sumo.read_sumo_connections`, every
    ``<connection>`` of a ``.net.xml``) is read too; its connections from or to edges that are not links here
    (footways, rail, which :func:`cim.io.sumo.read_sumo_net` skips) are left out.
    """
    if not isinstance(turns, pd.DataFrame):
        raise ParameterError(f"turns must be a pandas DataFrame with columns from_link, to_link, got "
                             f"{type(turns).__name__}")
    ids = np.asarray(link_ids)
    idx = pd.Index(ids)
    if all(c in turns.columns for c in TURN_COLUMNS):
        f, t = turns["from_link"], turns["to_link"]
    elif all(c in turns.columns for c in ("from_edge", "to_edge")):
        known = idx.get_indexer(turns["from_edge"].to_numpy()) >= 0
        known &= idx.get_indexer(turns["to_edge"].to_numpy()) >= 0
        f, t = turns["from_edge"][known], turns["to_edge"][known]
    else:
        raise NetworkError(f"turns needs columns from_link and to_link (the link left and the link entered next; "
                           f"or SUMO's from_edge and to_edge); it has {list(turns.columns)}")

    def where(col, what):
        vals = col.to_numpy()
        pos = idx.get_indexer(vals)
        if np.any(pos < 0):
            bad = pd.unique(col.to_numpy()[pos < 0])
            raise NetworkError(f"turns name {len(bad)} unknown links in {what}, e.g. {bad[:5].tolist()}; every "
                               "turn must join two links of the network (drop the turns of removed links or "
                               "import the turns with the network they belong to)")
        return pos.astype(np.int64)

    fa, tb = where(f, "from_link"), where(t, "to_link")
    gap = np.asarray(heads)[fa] != np.asarray(tails)[tb]
    if gap.any():
        k = np.flatnonzero(gap)[0]
        raise NetworkError(f"{int(gap.sum())} turns join links that do not meet, e.g. {ids[fa[k]]!r} -> "
                           f"{ids[tb[k]]!r} ({ids[tb[k]]!r} does not start where {ids[fa[k]]!r} ends); a turn "
                           "continues a link at its end node")
    pairs = np.unique(np.stack([fa, tb]), axis=1) if len(fa) else np.zeros((2, 0), np.int64)
    return np.ascontiguousarray(pairs, dtype=np.int64)


def successors(n_links: int, pairs: np.ndarray, closed: np.ndarray | None = None):
    """CSR (ptr, succ) of the allowed moves link -> link in ``pairs`` (2, k), without closed links."""
    fa, tb = pairs
    if closed is not None:
        keep = ~closed[fa] & ~closed[tb]
        fa, tb = fa[keep], tb[keep]
    order = np.argsort(fa, kind="stable")
    ptr = np.zeros(n_links + 1, np.int64)
    np.cumsum(np.bincount(fa, minlength=n_links), out=ptr[1:])
    return ptr, np.ascontiguousarray(tb[order], dtype=np.int64)


@dataclass
class Network:
    """Directed road network with BPR link costs.

    Build with :meth:`from_links`. Internal node numbering puts the zones
    first (0..n_zones-1) so that centroids can be excluded from through
    traffic by one comparison in the shortest-path kernel.

    Attributes
    ----------
    node_ids : ndarray
        Caller's node ids, index = internal node number.
    link_ids : ndarray
        Caller's link ids (or 0..n-1).
    tails, heads : int64 arrays
        Internal from/to node numbers per link.
    fft : float64
        Free-flow travel time per link (the caller's time unit: minutes for
        TNTP, seconds for SUMO/CIM networks).
    capacity : float64
        Capacity in vehicles per the demand's period (veh/h for an hour).
    length, b, power, toll, lanes, speed : float64
    n_zones : int
        Zones are internal nodes ``0..n_zones-1``.
    centroids_block_through : bool or int
        True when zone nodes carry no through traffic; an int k: the first k
        zones (internal nodes ``0..k-1``) carry none (:attr:`first_thru`).
    turns : (2, k) int64 array or None
        Allowed turns (from link, to link) by link position; None: every
        continuation at a node is allowed. With turns a link continues only
        onto the links its turns list (none: a dead end). A trip leaves its
        origin node on any of its links and ends at its destination node on
        any link into it.
    """

    node_ids: np.ndarray
    link_ids: np.ndarray
    tails: np.ndarray
    heads: np.ndarray
    fft: np.ndarray
    capacity: np.ndarray
    length: np.ndarray
    b: np.ndarray
    power: np.ndarray
    toll: np.ndarray
    lanes: np.ndarray
    speed: np.ndarray
    n_zones: int
    centroids_block_through: bool | int = False
    turns: np.ndarray | None = None

    @property
    def first_thru(self) -> int:
        """Internal nodes below this carry no through traffic (the zones that block it)."""
        cbt = self.centroids_block_through
        if isinstance(cbt, (bool, np.bool_)):
            return self.n_zones if cbt else 0
        return min(int(cbt), self.n_zones)

    # ------------------------------------------------------------------ build
    @classmethod
    def from_links(cls, links: pd.DataFrame, zones=None, *, centroids_block_through: bool = False,
                   time_unit: str = "s", turns: pd.DataFrame | None = None) -> "Network":
        """Network from a links table.

        Parameters
        ----------
        links : DataFrame
            Columns ``from_node``, ``to_node`` and either ``free_flow_time``
            or ``length`` (m) with ``speed`` (m/s) / ``speed_limit_kmh``
            (km/h); ``capacity`` (veh/h; or ``capacity_vph``); optional
            ``lanes``, ``b`` (0.15; or ``alpha``, ``bpr_b``, ``bpr_alpha``,
            TNTP's ``B``), ``power`` (4; or ``beta``, ``bpr_power``,
            ``bpr_beta``, TNTP's ``Power``), ``toll`` (0), ``link_id``.
        zones : sequence, optional
            Node ids that are zones (origins/destinations). Default: none
            (then OD demand must be given on nodes that are zones: pass
            them here).
        centroids_block_through : bool or int
            True: zone nodes carry no through traffic; an int k: the first
            k zones carry no through traffic, the others may (TNTP's
            ``<FIRST THRU NODE> k+1``); False / 0: every zone node may.
        time_unit : {"s", "min", "h"}
            Unit of free-flow times computed from length/speed.
        turns : DataFrame, optional
            Allowed turns, columns ``from_link`` and ``to_link`` (link ids;
            SUMO's ``from_edge`` / ``to_edge`` are read too): a link continues
            only onto the links its turns list, one without any is a dead end
            (as in SUMO). None (default): every continuation is allowed (TNTP
            networks). Trips start on any link leaving their origin node.

        Examples
        --------
        >>> import pandas as pd
        >>> links = pd.DataFrame({"from_node": [1, 2], "to_node": [2, 3], "free_flow_time": [1.0, 2.0],
        ...                       "capacity": [100.0, 100.0]})
        >>> net = Network.from_links(links, zones=[1, 3])
        >>> net.n_links, net.n_nodes, net.n_zones
        (2, 3, 2)
        """
        if not isinstance(links, pd.DataFrame):
            raise ParameterError(f"links must be a pandas DataFrame, got {type(links).__name__}")
        for c in _REQUIRED:
            if c not in links.columns:
                raise NetworkError(f"links has no column {c!r}; it needs from_node and to_node "
                                   f"(columns are {list(links.columns)})")
        if time_unit not in ("s", "min", "h"):
            raise ParameterError(f"time_unit must be one of 's', 'min', 'h', got {time_unit!r}")
        n = len(links)
        if n == 0:
            raise NetworkError("links is empty: a network needs at least one link")
        _check_endpoints(links)
        fn = links["from_node"].to_numpy()
        tn = links["to_node"].to_numpy()
        length = np.asarray(_col(links, ("length", "length_m"), np.zeros(n)), dtype=np.float64)
        speed = _col(links, ("speed", "speed_mps"))
        if speed is None and "speed_limit_kmh" in links.columns:
            speed = links["speed_limit_kmh"].to_numpy(dtype=np.float64) / 3.6
        speed = None if speed is None else np.asarray(speed, dtype=np.float64)
        fft = _col(links, ("free_flow_time", "fft"))
        if fft is None:
            if speed is None or "length" not in links.columns and "length_m" not in links.columns:
                raise NetworkError("links needs free_flow_time, or length with speed / speed_limit_kmh")
            if np.any(~(speed > 0)):
                bad = np.flatnonzero(~(speed > 0))[:5]
                raise NetworkError(f"link speeds must be > 0 (rows {bad.tolist()}); fix or drop those links")
            fft = length / speed / {"s": 1.0, "min": 60.0, "h": 3600.0}[time_unit]
        fft = np.asarray(fft, dtype=np.float64)
        cap = _col(links, ("capacity", "capacity_vph"))
        if cap is None:
            raise NetworkError("links needs a capacity (veh/h) column: capacity or capacity_vph")
        cap = np.asarray(cap, dtype=np.float64)
        b = _bpr_col(links, "b", 0.15)
        power = _bpr_col(links, "power", 4.0)
        toll = np.asarray(_col(links, ("toll",), np.zeros(n)), dtype=np.float64)
        lanes = np.asarray(_col(links, ("lanes",), np.ones(n)), dtype=np.float64)
        if speed is None:
            speed = np.where(fft > 0, length / np.where(fft > 0, fft, 1.0), 0.0)
        link_ids = _col(links, ("link_id",), np.arange(n))
        dup = _duplicates(link_ids)
        if dup:
            raise NetworkError(f"link_id values must be unique; {dup} appear more than once "
                               "(give parallel links their own ids)")
        for name, arr in (("capacity", cap), ("free_flow_time", fft), ("b", b), ("power", power), ("toll", toll)):
            if not np.all(np.isfinite(arr)):
                bad = np.flatnonzero(~np.isfinite(arr))[:5]
                raise NetworkError(f"{name} must be finite (links at rows {bad.tolist()})")
        if np.any(cap < 0):
            bad = np.flatnonzero(cap < 0)[:5]
            raise NetworkError(f"capacity must be >= 0 (negative at rows {bad.tolist()}); "
                               "use 0 to close a link")
        if np.any(fft < 0) or np.any(b < 0) or np.any(power < 0) or np.any(toll < 0):
            raise NetworkError("free_flow_time, b, power and toll must be >= 0")
        zone_list = [] if zones is None else list(pd.unique(np.asarray(list(zones), dtype=object)))
        all_nodes = pd.unique(np.concatenate([np.asarray(zone_list, dtype=object), fn.astype(object),
                                              tn.astype(object)]))
        ends = set(fn.tolist()) | set(tn.tolist())
        missing = [z for z in zone_list if z not in ends]  # (the set once, not once per zone)
        if missing:
            raise NetworkError(f"zones {missing[:5]} are not an endpoint of any link; "
                               "connect each zone to the network with a connector link")
        node_ids = np.asarray(all_nodes)
        if pd.api.types.infer_dtype(node_ids, skipna=False) == "integer":
            node_ids = node_ids.astype(np.int64)  # integer ids stay integers; strings stay strings
        index = pd.Index(node_ids)
        tails = index.get_indexer(fn.astype(node_ids.dtype) if node_ids.dtype != object else fn)
        heads = index.get_indexer(tn.astype(node_ids.dtype) if node_ids.dtype != object else tn)
        cbt = centroids_block_through
        if isinstance(cbt, (bool, np.bool_)):
            cbt = bool(cbt)
        elif isinstance(cbt, (int, np.integer)) and 0 <= cbt <= len(zone_list):
            cbt = int(cbt)
        else:
            raise ParameterError(f"centroids_block_through must be True / False or the number of leading zones that "
                                 f"block through traffic (0..{len(zone_list)}), got {cbt!r}")
        pairs = None if turns is None else turn_pairs(turns, link_ids, tails, heads)
        return cls(node_ids=node_ids, link_ids=np.asarray(link_ids), tails=tails.astype(np.int64),
                   heads=heads.astype(np.int64), fft=fft.copy(), capacity=cap.copy(), length=length.copy(),
                   b=b.copy(), power=power.copy(), toll=toll.copy(), lanes=lanes.copy(), speed=speed.copy(),
                   n_zones=len(zone_list), centroids_block_through=cbt, turns=pairs)

    # ------------------------------------------------------------------ info
    @property
    def n_links(self) -> int:
        return int(self.tails.shape[0])

    @property
    def n_nodes(self) -> int:
        return int(self.node_ids.shape[0])

    @property
    def zone_ids(self) -> np.ndarray:
        return self.node_ids[: self.n_zones]

    def node_index(self, ids, what: str = "node") -> np.ndarray:
        """Internal numbers of caller node ids; unknown ids raise :class:`NetworkError`."""
        ids = np.atleast_1d(np.asarray(ids))
        idx = pd.Index(self.node_ids).get_indexer(ids.astype(self.node_ids.dtype)
                                                  if self.node_ids.dtype != object else ids)
        if np.any(idx < 0):
            bad = ids[idx < 0][:5].tolist()
            raise NetworkError(f"unknown {what} ids {bad}; they are not nodes of this network")
        return idx.astype(np.int64)

    def link_index(self, ids) -> np.ndarray:
        """Positions of caller link ids; unknown ids raise :class:`NetworkError`."""
        ids = np.atleast_1d(np.asarray(ids))
        idx = pd.Index(self.link_ids).get_indexer(ids)
        if np.any(idx < 0):
            raise NetworkError(f"unknown link ids {ids[idx < 0][:5].tolist()}")
        return idx.astype(np.int64)

    def csr(self, closed: np.ndarray | None = None):
        """Forward star: (indptr, heads, link_of) over open links."""
        use = np.ones(self.n_links, bool) if closed is None else ~closed
        links = np.flatnonzero(use)
        order = links[np.argsort(self.tails[links], kind="stable")]
        counts = np.bincount(self.tails[order], minlength=self.n_nodes)
        indptr = np.zeros(self.n_nodes + 1, np.int64)
        np.cumsum(counts, out=indptr[1:])
        return indptr, self.heads[order].astype(np.int64), order.astype(np.int64)

    def turn_csr(self, closed: np.ndarray | None = None):
        """Successor links (ptr, succ) of each link over open links: the turns, or every link leaving its head
        node when the network has none."""
        if self.turns is not None:
            return successors(self.n_links, self.turns, closed)
        indptr, _, link_of = self.csr(closed)
        cnt = indptr[self.heads + 1] - indptr[self.heads]
        fa = np.repeat(np.arange(self.n_links), cnt)
        tb = (np.concatenate([link_of[indptr[h]:indptr[h + 1]] for h in self.heads]) if len(fa)
              else np.zeros(0, np.int64))
        return successors(self.n_links, np.stack([fa, tb]), closed)

    # ---------------------------------------------------------------- what-if
    def copy(self) -> "Network":
        return Network(**{k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in self.__dict__.items()})

    def with_changes(self, close=None, capacity_factor: dict | None = None) -> "Network":
        """A copy with links closed (capacity 0) and capacities scaled.

        ``close``: link ids (one id or a list of them); ``capacity_factor``: {link_id: factor}.
        """
        net = self.copy()
        if isinstance(close, (str, bytes)) or np.isscalar(close):
            close = [close]  # one link id, not a sequence of characters
        if close is not None and len(close):
            net.capacity[self.link_index(list(close))] = 0.0
        for lid, f in (capacity_factor or {}).items():
            if isinstance(f, (bool, str)) or not (isinstance(f, (int, float, np.number)) and f >= 0):
                raise ParameterError(f"capacity factor for link {lid!r} must be >= 0, got {f}")
            net.capacity[self.link_index([lid])] *= f
        return net

    def links_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"link_id": self.link_ids, "from_node": self.node_ids[self.tails],
                             "to_node": self.node_ids[self.heads], "length": self.length, "free_flow_time": self.fft,
                             "capacity": self.capacity, "lanes": self.lanes, "b": self.b, "power": self.power,
                             "toll": self.toll})


@dataclass
class Demand:
    """An OD matrix over the network's zones (rows origins, columns destinations).

    ``matrix[i, j]`` is the number of trips from zone ``zone_ids[i]`` to
    ``zone_ids[j]`` in the period.
    """

    zone_ids: np.ndarray
    matrix: np.ndarray

    def __post_init__(self):
        m = np.asarray(self.matrix, dtype=np.float64)
        if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] != len(self.zone_ids):
            raise ParameterError(f"the OD matrix must be square (n_zones, n_zones) = ({len(self.zone_ids)}, "
                                 f"{len(self.zone_ids)}), got {m.shape}")
        bad = ~np.isfinite(m) | (m < 0)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            zid = np.asarray(self.zone_ids)
            raise ParameterError(f"OD demand must be finite and >= 0; trips from zone {zid[i].item()!r} to zone "
                                 f"{zid[j].item()!r} are {m[i, j].item()!r}" + (f" ({int(bad.sum())} such pairs)" if bad.sum() > 1 else "")
                                 + "; fix or drop those trips")
        self.matrix = np.ascontiguousarray(m)
        self.zone_ids = np.asarray(self.zone_ids)
        dup = _duplicates(self.zone_ids)
        if dup:
            raise ParameterError(f"zone_ids must be unique; {dup} appear more than once (one row and column per zone)")

    @classmethod
    def from_frame(cls, df: pd.DataFrame, zone_ids=None) -> "Demand":
        """From a long table with columns ``origin``, ``destination``, ``trips``."""
        for c in ("origin", "destination", "trips"):
            if c not in df.columns:
                raise ParameterError(f"demand table needs columns origin, destination, trips; missing {c!r}")
        zones = np.asarray(zone_ids) if zone_ids is not None else pd.unique(
            np.concatenate([df["origin"].to_numpy(), df["destination"].to_numpy()]))
        idx = pd.Index(zones)
        oi = idx.get_indexer(df["origin"].to_numpy())
        di = idx.get_indexer(df["destination"].to_numpy())
        if np.any(oi < 0) or np.any(di < 0):
            raise NetworkError("demand names zones not in zone_ids")
        m = np.zeros((len(zones), len(zones)))
        np.add.at(m, (oi, di), df["trips"].to_numpy(dtype=np.float64))
        return cls(zones, m)

    @property
    def total(self) -> float:
        return float(self.matrix.sum())

    def scaled(self, factor: float) -> "Demand":
        if not factor >= 0:
            raise ParameterError(f"demand scale must be >= 0, got {factor}")
        return Demand(self.zone_ids.copy(), self.matrix * factor)

    def to_frame(self) -> pd.DataFrame:
        o, d = np.nonzero(self.matrix)
        return pd.DataFrame({"origin": self.zone_ids[o], "destination": self.zone_ids[d],
                             "trips": self.matrix[o, d]})
