"""Emergency access: ours (scipy.sparse.csgraph from one node linked to every station, streets by
spatial_index.LineIndex)
against what a user would write with NetworkX (a DiGraph of the same roads, nearest junction per building,
``multi_source_dijkstra_path_length``), on the large sample city, from the hospitals, both from the twin file.

Run: ``.venv/bin/python benchmarks/access.py`` (writes benchmarks/results/access.md). The two answer slightly
different questions (ours: along the building's streets, a shut street no way in; the peer: from the nearest
junction), so the check is on the part they share: the shortest times from the stations to every junction.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS = Path(__file__).parent / "results" / "access.md"


def ours(path):
    from twin_core.adapters.access import run_access
    from twin_core.twin import Twin

    with Twin.open(path) as twin:
        return run_access(twin, "hospital", "10min", save=False)


def peer(path):
    import networkx as nx
    from scipy.spatial import cKDTree

    from twin_core.adapters.traffic import _node_xy, network_links
    from twin_core.twin import Twin

    with Twin.open(path) as twin:
        links = network_links(twin.layer("road_links"))
        pois = twin.layer("pois")
        bld = twin.layer("buildings")
    links = links[links["capacity"] > 0]
    g = nx.DiGraph()
    for u, v, t in zip(links["from_node"], links["to_node"], links["length"] / links["speed"]):
        if not g.has_edge(u, v) or g[u][v]["t"] > t:
            g.add_edge(u, v, t=float(t))
    xy = _node_xy(links)
    tree = cKDTree(xy.to_numpy())
    st = pois[pois["kind"] == "hospital"]
    _, si = tree.query(np.column_stack([st.geometry.x, st.geometry.y]))
    dist = nx.multi_source_dijkstra_path_length(g, set(xy.index[si]), weight="t")
    c = bld.geometry.representative_point()
    d, bi = tree.query(np.column_stack([c.x, c.y]))
    t = np.array([dist.get(n, np.nan) for n in xy.index[bi]]) + d / (20 / 3.6)
    return t, dist, xy.index[si]


def parts(path, runs=3):
    """Where our time goes: the steps of ``run_access`` one by one (median of ``runs``), seconds."""
    from twin_core.adapters.access import _attach, _open_links, _streets, _times_from
    from twin_core.twin import Twin

    steps = {}
    for _ in range(runs):
        with Twin.open(path) as twin:
            t = [time.perf_counter()]
            pois = twin.layer("pois")
            bld = twin.layer("buildings", columns=["building_id"])
            t.append(time.perf_counter())
            cen = bld.geometry.representative_point()
            t.append(time.perf_counter())
            links, closed, _ = _open_links(twin, None, None, None, 0.3)
            t.append(time.perf_counter())
        st = pois[pois["kind"].astype(str) == "hospital"]
        streets = _streets(links)
        t.append(time.perf_counter())
        src = _attach(streets, np.column_stack([st.geometry.x, st.geometry.y]))
        tgt = _attach(streets, np.column_stack([cen.x, cen.y]))
        t.append(time.perf_counter())
        _times_from(streets, closed, src, tgt, len(cen))
        t.append(time.perf_counter())
        for name, a, b in zip(("layers", "points", "roads", "streets", "attach", "search"), t, t[1:]):
            steps.setdefault(name, []).append(b - a)
    return {k: statistics.median(v) for k, v in steps.items()}


def node_times_ours(path, sources):
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import dijkstra

    from twin_core.adapters.traffic import _node_xy, network_links
    from twin_core.twin import Twin

    with Twin.open(path) as twin:
        links = network_links(twin.layer("road_links"))
    links = links[links["capacity"] > 0]
    nodes = pd.Index(_node_xy(links).index)
    e = pd.DataFrame({"i": nodes.get_indexer(links["from_node"]), "j": nodes.get_indexer(links["to_node"]),
                      "t": (links["length"] / links["speed"]).to_numpy()}).groupby(["i", "j"], as_index=False)["t"].min()
    g = csr_matrix((e["t"].to_numpy(), (e["i"].to_numpy(), e["j"].to_numpy())), shape=(len(nodes), len(nodes)))
    d = dijkstra(g, directed=True, indices=nodes.get_indexer(list(sources)), min_only=True)
    return dict(zip(nodes, d))


def shortest_paths_only(path):
    """The search alone, on graphs built beforehand: scipy csgraph (ours) and NetworkX, same sources, 5 runs."""
    import networkx as nx
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import dijkstra
    from scipy.spatial import cKDTree

    from twin_core.adapters.traffic import _node_xy, network_links
    from twin_core.twin import Twin

    with Twin.open(path) as twin:
        links = network_links(twin.layer("road_links"))
        pois = twin.layer("pois")
    links = links[links["capacity"] > 0]
    xy = _node_xy(links)
    nodes = pd.Index(xy.index)
    e = pd.DataFrame({"i": nodes.get_indexer(links["from_node"]), "j": nodes.get_indexer(links["to_node"]),
                      "t": (links["length"] / links["speed"]).to_numpy()}).groupby(["i", "j"], as_index=False)["t"].min()
    g = csr_matrix((e["t"].to_numpy(), (e["i"].to_numpy(), e["j"].to_numpy())), shape=(len(nodes), len(nodes)))
    st = pois[pois["kind"] == "hospital"]
    _, si = cKDTree(xy.to_numpy()).query(np.column_stack([st.geometry.x, st.geometry.y]))
    src = np.unique(si)
    G = nx.DiGraph()
    G.add_weighted_edges_from(zip(nodes[e["i"]], nodes[e["j"]], e["t"]), weight="t")
    a, b = [], []
    for _ in range(5):
        t = time.perf_counter(); dijkstra(g, directed=True, indices=src, min_only=True); a.append(time.perf_counter() - t)
        t = time.perf_counter(); nx.multi_source_dijkstra_path_length(G, set(nodes[src]), weight="t")
        b.append(time.perf_counter() - t)
    return statistics.median(a), statistics.median(b), len(nodes), len(e)


def main() -> int:
    import sample_city

    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, "large.gpkg")
    t0 = time.perf_counter()
    sample_city.build_into(path, "large", seed=0)
    build_s = time.perf_counter() - t0
    ours(path), peer(path)  # warm: imports, file cache
    a, b = [], []
    for _ in range(3):  # alternating
        t = time.perf_counter(); r = ours(path); a.append(time.perf_counter() - t)
        t = time.perf_counter(); pt, pdist, src = peer(path); b.append(time.perf_counter() - t)
    # the shared part: station-to-junction times agree
    od = node_times_ours(path, src)
    common = [n for n in pdist if np.isfinite(od.get(n, np.inf))]
    err = max(abs(od[n] - pdist[n]) for n in common)
    s = r.summary
    med_a, med_b = statistics.median(a), statistics.median(b)
    sp_a, sp_b, n_nodes, n_links = shortest_paths_only(path)
    w = parts(path)
    load = os.getloadavg()
    lines = [
        "## access\n",
        f"Date {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; machine: 2-core python-svc ({platform.python_version()}), "
        f"load average {load[0]:.2f} / {load[1]:.2f} at the end. Large sample city (built in {build_s:.0f} s): "
        f"{s['buildings']:,} buildings, {s['stations']} hospitals, the whole analysis from the twin file (layers "
        "read, network built, every building's time), 3 runs each, alternating.\n",
        "| tool | median s | best s |",
        "|---|---:|---:|",
        f"| ours: `run_access` (scipy.sparse.csgraph Dijkstra from one node linked to every station; streets by "
        f"spatial_index.LineIndex) | {med_a:.2f} | {min(a):.2f} |",
        f"| NetworkX {__import__('networkx').__version__}: DiGraph + nearest junction (cKDTree) + "
        f"`multi_source_dijkstra_path_length` | {med_b:.2f} | {min(b):.2f} |",
        "",
        f"Ratio of medians: **{med_b / med_a:.2f}x** (NetworkX / ours; below 1: ours is slower end to end).",
        "",
        f"The shortest-path search alone ({n_nodes:,} junctions, {n_links:,} directed roads, from every hospital at "
        f"once, graphs built beforehand, median of 5): scipy csgraph {1000 * sp_a:.1f} ms, NetworkX "
        f"{1000 * sp_b:.1f} ms: **{sp_b / sp_a:.0f}x**. Where our time goes, step by step (median of 3): reading "
        f"the pois and the buildings' footprints {w['layers']:.2f} s and their representative points "
        f"{w['points']:.2f} s (the peer does both too), the roads {w['roads']:.2f} s, junctions and the street "
        f"index (numba `spatial_index.LineIndex`) {w['streets']:.2f} s, each building's and station's streets "
        f"{w['attach']:.2f} s (every street up to 30 m further than its nearest, and where along each it stands: "
        f"`LineIndex.nearest_distance` and `query_within`; found once and shared by the dry and flooded searches "
        f"of a flood run), the search and every building's time {w['search']:.2f} s. The peer takes each "
        "building's nearest junction from a k-d tree, a cruder answer (a building beside a one-way ramp or a "
        "shut street counts as reached).",
        "",
        f"Same roads, same times to every junction from the nearest hospital: {len(common):,} junctions, largest "
        f"difference {err:.2e} s. The per-building answers differ by design (ours reaches a building along the "
        f"streets it opens onto, a shut street being no way in; the peer from its nearest junction): within 10 min "
        f"ours {s['within']:,}, the peer {int(np.sum(pt <= 600)):,}.",
    ]
    RESULTS.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
