"""Bulk load of the large sample city's buildings into PostGIS: our loader vs GeoDataFrame.to_postgis.

Run: .venv/bin/python benchmarks/store_load.py [--size large] [--repeat 3]
Needs the bench extras (sqlalchemy, geoalchemy2) and a local PostGIS (`make setup-postgis`).
Both loaders get the same GeoDataFrame; each creates its table and a GiST index
(GeoAlchemy2 adds one by default). Both are warmed up on 1,000 rows first, so
imports and numba's cached kernels are not timed. Writes a markdown section to
benchmarks/results/store_load.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import time
from pathlib import Path

DSN = os.environ.get("TWIN_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/twin_test")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="large")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    import sqlalchemy

    import sample_city
    from cim.store import open_store

    t0 = time.perf_counter()
    city = sample_city.build(args.size, seed=0)
    gdf = city["buildings"]
    print(f"built {args.size} sample city in {time.perf_counter() - t0:.1f} s: {len(gdf):,} buildings")

    store = open_store(f"{DSN}?schema=bench_store_load", create=True, crs="EPSG:4544")
    engine = sqlalchemy.create_engine(DSN.replace("postgresql://", "postgresql+psycopg://"))
    try:
        store.write_layer("warm", gdf.iloc[:1000])
        gdf.iloc[:1000].to_postgis("warm_gpd", engine, schema="bench_store_load", if_exists="replace", index=False)
        ours, theirs = [], []
        for _ in range(args.repeat):
            t = time.perf_counter()
            store.write_layer("buildings", gdf)
            ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            gdf.to_postgis("buildings_gpd", engine, schema="bench_store_load", if_exists="replace", index=False)
            theirs.append(time.perf_counter() - t)
        with store.conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM bench_store_load.buildings")
            n_ours = cur.fetchone()[0]
            cur.execute("SELECT count(*) FROM bench_store_load.buildings_gpd")
            n_theirs = cur.fetchone()[0]
        assert n_ours == n_theirs == len(gdf), (n_ours, n_theirs, len(gdf))
    finally:
        store.drop_schema()
        store.close()
    o, g = statistics.median(ours), statistics.median(theirs)
    n = len(gdf)
    lines = [
        f"## Store bulk load (PostGIS) — {dt.date.today().isoformat()}",
        "",
        f"Machine: {platform.machine()} 2-core python-svc, PostgreSQL 15 + PostGIS 3.3 on localhost; "
        f"other work may have shared the cores. Input: the {args.size} sample city's {n:,} buildings "
        f"(MultiPolygon + 10 attributes). Median of {args.repeat} runs after a 1,000-row warm-up.",
        "",
        "| loader | seconds | rows/s |",
        "|---|---:|---:|",
        f"| RongTwin `PostGISStore.write_layer` (binary COPY, NumPy/numba encoding, GiST) | {o:.2f} | {n / o:,.0f} |",
        f"| `GeoDataFrame.to_postgis` (SQLAlchemy + GeoAlchemy2, CSV COPY, GiST) | {g:.2f} | {n / g:,.0f} |",
        "",
        f"Ratio: **{g / o:.2f}x** faster (aim >= 5x: {'met' if g / o >= 5 else 'not met'}).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    out = Path(__file__).parent / "results" / "store_load.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
