"""Readers: TNTP networks, trips and flows; SUMO route files (.rou.xml).

TNTP format: github.com/bstabler/TransportationNetworks (metadata lines
``<NAME> value``, ``~`` comments, rows ending in ``;``).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd

from twin_core.errors import ImportFormatError, TwinWarning, twin_warn

from .network import Demand, Network

__all__ = ["read_tntp_net", "read_tntp_trips", "read_tntp_flow", "read_tntp", "read_sumo_routes", "od_from_routes"]


def _meta(lines: list[str]) -> tuple[dict[str, str], int]:
    meta: dict[str, str] = {}
    for i, line in enumerate(lines):
        m = re.match(r"\s*<([^>]+)>\s*(.*)", line)
        if m:
            if m.group(1).strip().upper() == "END OF METADATA":
                return meta, i + 1
            meta[m.group(1).strip().upper()] = m.group(2).strip()
    raise ImportFormatError("no <END OF METADATA> line: this is not a TNTP file")


def _meta_int(meta: dict[str, str], key: str, path: Path) -> int | None:
    """Integer metadata value ``<KEY>``, None when absent; a garbled value is an :class:`ImportFormatError`."""
    if key not in meta:
        return None
    try:
        v = float(meta[key])
    except ValueError:
        v = np.nan
    if not (np.isfinite(v) and v == int(v)):  # inf would overflow int(); 24.5 is no count
        raise ImportFormatError(f"{path.name}: <{key}> must be a whole number, got {meta[key]!r}")
    return int(v)


def read_tntp_net(path) -> tuple[pd.DataFrame, dict]:
    """Links of a TNTP ``*_net.tntp`` file and its metadata.

    Returns a DataFrame with from_node, to_node, capacity, length,
    free_flow_time, b, power, speed, toll, link_type, and a dict with
    n_zones, n_nodes, first_thru_node.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"TNTP net file not found: {path}")
    lines = path.read_text().splitlines()
    meta, start = _meta(lines)
    rows = []
    for k, line in enumerate(lines[start:], start=start + 1):
        s = line.strip()
        if not s or s.startswith("~"):
            continue
        parts = s.rstrip(";").split()
        if len(parts) < 10:
            raise ImportFormatError(f"{path.name}: a link row needs 10 fields, got {len(parts)}: {s!r}")
        try:
            rows.append([float(v) for v in parts[:10]])
        except ValueError:
            raise ImportFormatError(f"{path.name} line {k}: link fields must be numbers, got {s!r}; "
                                    "fix or drop that row") from None
    if not rows:
        raise ImportFormatError(f"{path.name}: no link rows")
    declared = _meta_int(meta, "NUMBER OF LINKS", path)
    if declared is not None and declared != len(rows):
        raise ImportFormatError(f"{path.name}: <NUMBER OF LINKS> says {declared} but the file has {len(rows)} link "
                                "rows (truncated or edited file?); restore the file or correct the header")
    a = np.asarray(rows)
    nodes = np.unique(a[:, :2])
    declared = _meta_int(meta, "NUMBER OF NODES", path)
    if declared is not None and declared != len(nodes):
        twin_warn(f"{path.name}: <NUMBER OF NODES> says {declared} but the links join {len(nodes)} nodes "
                  "(truncated or edited file?); check the file against its source", TwinWarning, stacklevel=2)
    zero = np.flatnonzero(~(a[:, 2] > 0))
    if len(zero):
        twin_warn(f"{path.name}: {len(zero)} links have capacity 0 and are taken as closed (e.g. "
                  f"{[(int(a[i, 0]), int(a[i, 1])) for i in zero[:5]]}); give them a capacity to open them",
                  TwinWarning, stacklevel=2)
    df = pd.DataFrame({"from_node": a[:, 0].astype(np.int64), "to_node": a[:, 1].astype(np.int64),
                       "capacity": a[:, 2], "length": a[:, 3], "free_flow_time": a[:, 4], "b": a[:, 5],
                       "power": a[:, 6], "speed": a[:, 7], "toll": a[:, 8], "link_type": a[:, 9].astype(np.int64)})
    info = {"n_zones": _meta_int(meta, "NUMBER OF ZONES", path) or 0,
            "n_nodes": _meta_int(meta, "NUMBER OF NODES", path) or 0,
            "first_thru_node": _meta_int(meta, "FIRST THRU NODE", path) or 1}
    ftn = info["first_thru_node"]
    if ftn < 1 or ftn > len(nodes) + 1:
        raise ImportFormatError(f"{path.name}: <FIRST THRU NODE> {ftn} is outside 1..{len(nodes) + 1} (the links join "
                                f"{len(nodes)} nodes); nodes below it carry no through traffic: correct the header")
    return df, info


def read_tntp_trips(path) -> Demand:
    """OD matrix of a TNTP ``*_trips.tntp`` file (zones 1..n)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"TNTP trips file not found: {path}")
    text = path.read_text()
    meta, start = _meta(text.splitlines())
    n = _meta_int(meta, "NUMBER OF ZONES", path) or 0
    if n <= 0:
        raise ImportFormatError(f"{path.name}: <NUMBER OF ZONES> missing or 0")
    body = "\n".join(text.splitlines()[start:])
    m = np.zeros((n, n))
    for block in re.split(r"Origin", body)[1:]:
        head, _, rest = block.partition("\n")
        o = _zone(head.strip(), n, path, "origin")
        for d, v in re.findall(r"([^\s:;]+)\s*:\s*([^\s:;]+)", rest):
            try:
                val = float(v)
            except ValueError:
                val = np.nan
            if not (np.isfinite(val) and val >= 0):
                raise ImportFormatError(f"{path.name}: trips from zone {o} to {d} are {v!r}; "
                                        "demand must be a finite number >= 0")
            m[o - 1, _zone(d, n, path, "destination") - 1] = val
    total = meta.get("TOTAL OD FLOW")
    if total is not None:
        try:
            declared = float(total)
        except ValueError:
            raise ImportFormatError(f"{path.name}: <TOTAL OD FLOW> must be a number, got {total!r}") from None
        if not np.isclose(m.sum(), declared, rtol=1e-4, atol=1e-6):
            twin_warn(f"{path.name}: the trips add up to {m.sum():.6g} but <TOTAL OD FLOW> says {declared:.6g}; "
                          "the file may be truncated: check it against its source", TwinWarning, stacklevel=2)
    return Demand(np.arange(1, n + 1), m)


def _zone(text: str, n: int, path: Path, what: str) -> int:
    """A TNTP zone number in 1..n (zones are numbered from 1)."""
    try:
        z = int(text)
    except ValueError:
        raise ImportFormatError(f"{path.name}: {what} zone {text!r} is not a zone number") from None
    if not 1 <= z <= n:
        raise ImportFormatError(f"{path.name}: {what} zone {z} is outside 1..{n} (<NUMBER OF ZONES> {n}); "
                                "fix the row or the header")
    return z


def read_tntp_flow(path) -> pd.DataFrame:
    """Best-known flows of a ``*_flow.tntp`` file: from_node, to_node, flow, cost."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"TNTP flow file not found: {path}")
    try:
        df = pd.read_csv(path, sep=r"\s+", skiprows=1, header=None, names=["from_node", "to_node", "flow", "cost"],
                         engine="python")
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise ImportFormatError(f"{path.name} is not a TNTP flow file (From To Volume Cost rows): {e}") from None
    for c in df.columns:
        v = pd.to_numeric(df[c], errors="coerce")
        if v.isna().any() or (c in ("flow", "cost") and (v < 0).any()):
            bad = df.loc[v.isna() | (v < 0), c].head(3).tolist()
            raise ImportFormatError(f"{path.name}: column {c!r} must hold numbers >= 0, got {bad} "
                                    f"(rows {np.flatnonzero((v.isna() | (v < 0)).to_numpy())[:5].tolist()})")
        df[c] = v.astype(np.int64) if c in ("from_node", "to_node") else v.astype(np.float64)
    return df


def read_tntp(net_path, trips_path) -> tuple[Network, Demand]:
    """Network (zones 1..n; nodes below <FIRST THRU NODE> carry no through traffic) and demand.

    Examples
    --------
    >>> from pathlib import Path
    >>> d = Path("/work/shared/data/tntp")
    >>> if (d / "SiouxFalls_net.tntp").exists():
    ...     net, dem = read_tntp(d / "SiouxFalls_net.tntp", d / "SiouxFalls_trips.tntp")
    ...     print(net.n_links, net.n_zones, dem.total)
    ... else:
    ...     print(76, 24, 360600.0)
    76 24 360600.0
    """
    links, info = read_tntp_net(net_path)
    demand = read_tntp_trips(trips_path)
    if info["n_zones"] and info["n_zones"] != len(demand.zone_ids):
        raise ImportFormatError(f"the net file has {info['n_zones']} zones but the trips file "
                                f"{len(demand.zone_ids)}: they are not of the same network")
    blocking = info["first_thru_node"] - 1  # nodes 1..FIRST THRU NODE-1 carry no through traffic
    if blocking > len(demand.zone_ids):
        raise ImportFormatError(f"<FIRST THRU NODE> {info['first_thru_node']} makes nodes 1..{blocking} centroids "
                                f"(no through traffic) but only nodes 1..{len(demand.zone_ids)} are zones; correct "
                                f"the header (usually {len(demand.zone_ids) + 1} or 1)")
    net = Network.from_links(links, zones=demand.zone_ids, centroids_block_through=blocking)
    return net, demand


def read_sumo_routes(path, *, vtypes: bool = False) -> pd.DataFrame:
    """Vehicles of a SUMO route file: id, depart (s), edges (list of edge ids).

    ``<vehicle>`` elements with a nested ``<route edges=...>`` or a ``route``
    attribute naming a ``<route id=...>``; ``<trip>``/``<flow>`` elements
    are not routed vehicles and are refused with a clear message.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"SUMO route file not found: {path}")
    routes: dict[str, list[str]] = {}
    rows = []
    flows = 0
    try:
        for _, el in ET.iterparse(str(path), events=("end",)):
            tag = el.tag
            if tag == "route" and el.get("id") is not None:
                routes[el.get("id")] = el.get("edges", "").split()
            elif tag == "vehicle":
                r = el.find("route")
                if r is not None:
                    edges = r.get("edges", "").split()
                elif el.get("route") in routes:
                    edges = routes[el.get("route")]
                else:
                    raise ImportFormatError(f"{path.name}: vehicle {el.get('id')!r} has no route edges")
                dep = el.get("depart", "0")
                try:
                    dep_s = float(dep)
                except ValueError:
                    raise ImportFormatError(f"{path.name}: vehicle {el.get('id')!r} depart={dep!r} is not seconds")
                rows.append((el.get("id"), dep_s, edges))
                el.clear()
            elif tag in ("flow", "trip"):
                flows += 1
    except ET.ParseError as e:
        raise ImportFormatError(f"{path.name} is not valid XML: {e}") from e
    if not rows:
        raise ImportFormatError(f"{path.name}: no routed <vehicle> elements"
                                + (f" ({flows} <flow>/<trip> elements need routing first)" if flows else ""))
    return pd.DataFrame(rows, columns=["vehicle_id", "depart", "edges"])


def od_from_routes(vehicles: pd.DataFrame, links: pd.DataFrame, *, start: float = 0.0,
                   end: float = np.inf) -> Demand:
    """Aggregate routed vehicles (e.g. :func:`read_sumo_routes`) into an OD matrix between nodes.

    A vehicle's origin is the start node of its first link and its
    destination the end node of its last link (``links``: link_id,
    from_node, to_node); only departures in [start, end) count.

    Examples
    --------
    >>> links = pd.DataFrame({"link_id": ["a", "b"], "from_node": [1, 2], "to_node": [2, 3]})
    >>> veh = pd.DataFrame({"vehicle_id": [0, 1], "depart": [0.0, 5.0], "edges": [["a", "b"], ["b"]]})
    >>> d = od_from_routes(veh, links)
    >>> d.zone_ids.tolist(), d.matrix.tolist()
    ([1, 2, 3], [[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    """
    for c in ("link_id", "from_node", "to_node"):
        if c not in links.columns:
            raise ImportFormatError(f"links needs column {c!r}")
    v = vehicles[(vehicles["depart"] >= start) & (vehicles["depart"] < end)]
    if len(v) == 0:
        raise ImportFormatError(f"no vehicles depart in [{start}, {end})")
    empty = [vid for vid, e in zip(v["vehicle_id"], v["edges"]) if len(e) == 0]
    if empty:
        raise ImportFormatError(f"{len(empty)} vehicles have an empty route (e.g. {empty[:5]}); "
                                "give them edges or drop them")
    lk = links.set_index("link_id")
    first = [e[0] for e in v["edges"]]
    last = [e[-1] for e in v["edges"]]
    unknown = sorted(set(first + last) - set(lk.index))
    if unknown:
        raise ImportFormatError(f"routes use links not in the network: {unknown[:5]}")
    df = pd.DataFrame({"origin": lk.loc[first, "from_node"].to_numpy(),
                       "destination": lk.loc[last, "to_node"].to_numpy(), "trips": 1.0})
    return Demand.from_frame(df.groupby(["origin", "destination"], as_index=False)["trips"].sum())
