"""Benchmark: our IFC import against ifcopenshell's raw geometry iterator, and parallel vs sequential.

For each real model in ../shared/data/ifc: the raw iterator (same settings: world
coordinates, reoriented shells, welded vertices, one thread, openings excluded;
vertices and faces copied to NumPy) against our full import (read_model +
georeference + build_building: attributes, property sets, footprint union,
GFA, glTF blobs) in the same run. Aim: our overhead <= 25 % of the iterator's time.
Then several files imported one process per file (2 workers) against one after another.
Aim: >= 1.6x on 2 cores.

Run: .venv/bin/python benchmarks/bim_import.py
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
IFC = Path(os.environ.get("TWIN_IFC_DIR", ROOT.parent / "shared" / "data" / "ifc"))
if not IFC.is_dir():
    IFC = Path("/work/shared/data/ifc")
MODELS = [("Ifc2x3_Duplex_Architecture.ifc", "EPSG:32616"), ("AC20-FZK-Haus.ifc", "EPSG:25832")]


def raw_iterator(path: Path) -> tuple[float, int]:
    import ifcopenshell

    from bim_import.model import iterate_geometry

    f = ifcopenshell.open(str(path))
    t = time.perf_counter()
    n = 0
    for _gid, _cls, v, fa in iterate_geometry(f, threads=1):
        np.asarray(v, dtype=np.float64)
        np.asarray(fa, dtype=np.int64)
        n += 1
    return time.perf_counter() - t, n


def ours(path: Path, crs: str):
    from bim_import.importer import prepare_building

    t = time.perf_counter()
    b = prepare_building(str(path), crs)
    return time.perf_counter() - t, b


def main() -> None:
    sys.path.insert(0, str(ROOT))
    load = os.getloadavg()
    rows = []
    print(f"load average before: {load[0]:.2f}")
    for name, crs in MODELS:
        p = IFC / name
        t_raw, n = raw_iterator(p)
        t_ours, b = ours(p, crs)
        tm = b.summary["timings"]
        overhead = tm["total"] - tm["iterator"]
        rows.append((name, n, t_raw, t_ours, tm["iterator"], overhead, overhead / tm["iterator"]))
        print(f"{name}: raw iterator {t_raw:.2f} s ({n} shapes); ours {t_ours:.2f} s, of which iterator "
              f"{tm['iterator']:.2f} s and ours {overhead:.2f} s -> overhead {100 * overhead / tm['iterator']:.1f} % "
              f"(vs the separate raw run: {100 * (t_ours - t_raw) / t_raw:.1f} %)")

    # parallel vs sequential: 4 files (each real model twice)
    from bim_import.importer import import_many

    tmp = Path(tempfile.mkdtemp())
    files = []
    for k in range(2):
        for name, _ in MODELS:
            dst = tmp / f"{k}_{name}"
            shutil.copyfile(IFC / name, dst)
            files.append(str(dst))
    # both models in one twin CRS needs an anchor (they are on two continents): place all with one
    from bim_import.georef import Anchor

    anchor = Anchor(500000.0, 3390000.0)
    t = time.perf_counter()
    s1 = import_many(files, None, twin_crs="EPSG:4544", anchor=anchor, method="anchor", workers=1)
    t_seq = time.perf_counter() - t
    t = time.perf_counter()
    s2 = import_many(files, None, twin_crs="EPSG:4544", anchor=anchor, method="anchor", workers=2)
    t_par = time.perf_counter() - t
    assert not s1.errors and not s2.errors, (s1.errors, s2.errors)
    speedup = t_seq / t_par
    print(f"{len(files)} files: sequential {t_seq:.2f} s, 2 processes {t_par:.2f} s -> {speedup:.2f}x")
    shutil.rmtree(tmp, ignore_errors=True)
    load_after = os.getloadavg()

    worst = max(r[6] for r in rows)
    lines = [
        "## bim_import: IFC import vs the raw ifcopenshell iterator",
        "",
        f"Date {dt.date.today().isoformat()}, machine 2-core python-svc, shared load "
        f"(load average {load[0]:.2f} before, {load_after[0]:.2f} after). ifcopenshell 0.9, one iterator thread.",
        "",
        "| model | shapes | raw iterator (s) | our import (s) | iterator inside ours (s) | our own work (s) | overhead |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, n, t_raw, t_ours, t_it, ov, ratio in rows:
        lines.append(f"| {name} | {n} | {t_raw:.2f} | {t_ours:.2f} | {t_it:.2f} | {ov:.2f} | {100 * ratio:.1f} % |")
    lines += [
        "",
        "Our own work = attributes, property/quantity sets, shell checks, georeferencing, footprint union, GFA, "
        "glTF blobs (whole building + per storey).",
        f"Aim overhead <= 25 % of the iterator's time: {'met' if worst <= 0.25 else 'NOT met'} (worst {100 * worst:.1f} %).",
        "",
        f"Parallel import of {len(files)} files (each real model twice): one after another {t_seq:.2f} s, "
        f"one process per file on 2 workers {t_par:.2f} s: {speedup:.2f}x. "
        f"Aim >= 1.6x: {'met' if speedup >= 1.6 else 'NOT met'}.",
    ]
    out = ROOT / "benchmarks" / "results" / "bim_import.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
