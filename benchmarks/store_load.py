"""Bulk load of the large sample city's buildings into PostGIS: our loader vs GeoDataFrame.to_postgis.

Run: .venv/bin/python benchmarks/store_load.py [--size large] [--repeat 5]
Needs the bench extras (sqlalchemy, geoalchemy2) and a local PostGIS (`make setup-postgis`).
Both loaders get the same GeoDataFrame, replace their table on every run, and
end with a GiST index on the geometry (GeoAlchemy2 creates one with the table,
so to_postgis fills an indexed table; ours builds it after the load, with a
primary key on fid as well). The script checks that both tables hold the same
rows and the same column types. Both are warmed up first on as many rows as it
takes our loader to use its staged path (imports, numba's cached kernels and
each side's second connection or connection pool are not timed). Runs alternate
between the two loaders, each after a CHECKPOINT (untimed) so that neither is
slowed by the checkpoint the other's WAL sets off; the ratio is of the medians. One more run of ours is
split into its steps. Writes a markdown section to benchmarks/results/store_load.md.
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
SCHEMA = "bench_store_load"


def _columns(conn, table: str) -> dict[str, str]:
    cur = conn.execute("SELECT column_name, udt_name FROM information_schema.columns WHERE table_schema = %s "
                       "AND table_name = %s ORDER BY ordinal_position", (SCHEMA, table))
    return dict(cur.fetchall())


def _gist(conn, table: str) -> bool:
    cur = conn.execute("SELECT count(*) FROM pg_indexes WHERE schemaname = %s AND tablename = %s "
                       "AND indexdef ILIKE '%%USING gist%%'", (SCHEMA, table))
    return cur.fetchone()[0] == 1


def _steps(store, gdf) -> dict[str, float]:
    """One more load of ours, timed step by step (wrapping the store's own steps)."""
    from cim.store.postgis import PostGISStore

    marks: dict[str, float] = {}
    saved = {n: getattr(PostGISStore, n) for n in ("_copy_rows", "_index_stage", "_swap_stage")}

    ends: dict[str, float] = {}

    def timed(n):
        def f(*a, **k):
            t = time.perf_counter()
            r = saved[n](*a, **k)
            ends[n] = time.perf_counter()
            marks[n] = ends[n] - t
            return r
        return f

    for n in saved:
        setattr(PostGISStore, n, timed(n))
    try:
        store.conn.execute("CHECKPOINT")
        t = time.perf_counter()
        store.write_layer("buildings", gdf)
        done = time.perf_counter()
        total = done - t
    finally:
        for n, f in saved.items():
            setattr(PostGISStore, n, f)
    marks = {"encode + COPY (streamed)": marks["_copy_rows"], "GiST and fid index, at once": marks["_index_stage"],
             "swap statements (drop old, rename)": marks["_swap_stage"],
             # the commit deletes the old table's files (this disk is mounted with discard)
             "swap commit (old table's files deleted)": done - ends["_swap_stage"]}
    marks["rest (checks, frame, create table, other commits)"] = total - sum(marks.values())
    marks["total"] = total
    return marks


def _server_floor(store, gdf, repeat: int = 3) -> dict[str, float]:
    """The server's share alone: COPY of rows encoded beforehand (untimed), then each index by itself; best of 3."""
    import numpy as np
    import pandas as pd
    from psycopg import sql

    from cim.store._pgcopy import HEADER, TRAILER, RowEncoder, encode_series
    from cim.store.base import prepare_frame
    from cim.store.postgis import _pg_type

    df = prepare_frame(gdf)
    names = [c for c in df.columns if c != "geometry"]
    cols = [encode_series(pd.Series(np.arange(1, len(df) + 1, dtype=np.int64)), "bigint")]
    cols += [encode_series(df[c], _pg_type(df[c])) for c in names]
    payload = HEADER + RowEncoder(cols, np.asarray(df.geometry.values, dtype=object), store.srid).encode(0, len(df)).tobytes() + TRAILER
    target = sql.SQL(", ").join(sql.Identifier(c) for c in ["fid", *names, "geom"])
    table = sql.Identifier(SCHEMA, "floor")
    conn, out = store.conn, {}
    for _ in range(repeat):  # best of `repeat`
        conn.execute("CHECKPOINT")
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SET LOCAL synchronous_commit = off")
            store._create_table(cur, "floor", df, geometry=True)
            t = time.perf_counter()
            with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY, FREEZE)").format(table, target)) as cp:
                cp.write(payload)
            dt_copy = time.perf_counter() - t
        out["COPY FREEZE of rows encoded beforehand"] = min(out.get("COPY FREEZE of rows encoded beforehand", 9e9), dt_copy)
        for label, q in (("GiST build alone", "CREATE INDEX floor_gist ON {} USING gist (geom)"),
                         ("fid unique index alone", "CREATE UNIQUE INDEX floor_fid ON {} (fid)")):
            with conn.transaction(), conn.cursor() as cur:
                cur.execute("SET LOCAL synchronous_commit = off")
                t = time.perf_counter()
                cur.execute(sql.SQL(q).format(table))
                out[label] = min(out.get(label, 9e9), time.perf_counter() - t)
        conn.execute(sql.SQL("DROP TABLE {}").format(table))
    out["COPY + GiST (the one-connection bound)"] = out["COPY FREEZE of rows encoded beforehand"] + out["GiST build alone"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="large")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    import sqlalchemy

    import sample_city
    from cim.store import open_store

    t0 = time.perf_counter()
    city = sample_city.build(args.size, seed=0)
    gdf = city["buildings"]
    print(f"built {args.size} sample city in {time.perf_counter() - t0:.1f} s: {len(gdf):,} buildings")

    store = open_store(f"{DSN}?schema={SCHEMA}", create=True, crs="EPSG:4544")
    engine = sqlalchemy.create_engine(DSN.replace("postgresql://", "postgresql+psycopg://"))
    warm = gdf.iloc[: min(len(gdf), store.staged_min_rows)]
    try:
        store.write_layer("warm", warm)
        warm.to_postgis("warm_gpd", engine, schema=SCHEMA, if_exists="replace", index=False)
        ours, theirs = [], []
        for i in range(args.repeat):
            for who in (("ours", "theirs") if i % 2 == 0 else ("theirs", "ours")):
                # each run starts from a checkpoint, so neither pays for the other's WAL (to_postgis writes ~3x ours)
                store.conn.execute("CHECKPOINT")
                t = time.perf_counter()
                if who == "ours":
                    store.write_layer("buildings", gdf)
                    ours.append(time.perf_counter() - t)
                else:
                    gdf.to_postgis("buildings_gpd", engine, schema=SCHEMA, if_exists="replace", index=False)
                    theirs.append(time.perf_counter() - t)
        steps = _steps(store, gdf)
        floor = _server_floor(store, gdf)
        conn = store.conn
        n_ours = conn.execute(f"SELECT count(*) FROM {SCHEMA}.buildings").fetchone()[0]
        n_theirs = conn.execute(f"SELECT count(*) FROM {SCHEMA}.buildings_gpd").fetchone()[0]
        assert n_ours == n_theirs == len(gdf), (n_ours, n_theirs, len(gdf))
        a, b = _columns(conn, "buildings"), _columns(conn, "buildings_gpd")
        a.pop("fid")
        a["geometry"] = a.pop("geom")
        assert a == b, f"the two tables differ: {a} vs {b}"
        assert _gist(conn, "buildings") and _gist(conn, "buildings_gpd")
    finally:
        store.drop_schema()
        store.close()
    o, g = statistics.median(ours), statistics.median(theirs)
    n = len(gdf)
    lines = [
        f"## Store bulk load (PostGIS) — {dt.date.today().isoformat()}",
        "",
        f"Machine: {platform.machine()} 2-core python-svc, PostgreSQL 15 + PostGIS 3.3 on localhost (stock settings: "
        f"wal_level replica, 128 MB shared_buffers); other work may have shared the cores. Input: the {args.size} "
        f"sample city's {n:,} buildings (MultiPolygon + 10 attributes). {args.repeat} runs each, alternating, after a "
        f"{len(warm):,}-row warm-up, each run after an (untimed) CHECKPOINT; both tables checked to hold the same rows and column types, each with a GiST index.",
        "",
        "| loader | median s | best s | rows/s (median) |",
        "|---|---:|---:|---:|",
        f"| RongTwin `PostGISStore.write_layer` (binary COPY streamed from NumPy/numba, staged table, GiST + "
        f"primary key built after, at once) | {o:.2f} | {min(ours):.2f} | {n / o:,.0f} |",
        f"| `GeoDataFrame.to_postgis` (SQLAlchemy + GeoAlchemy2, CSV COPY into a table with its GiST index) "
        f"| {g:.2f} | {min(theirs):.2f} | {n / g:,.0f} |",
        "",
        f"Ratio of medians: **{g / o:.2f}x** faster (best/best {min(theirs) / min(ours):.2f}x; "
        f"aim >= 5x: {'met' if g / o >= 5 else 'not met'}).",
        "",
        "One more load of ours, step by step (seconds):",
        "",
        "| step | s |",
        "|---|---:|",
        *[f"| {k} | {v:.3f} |" for k, v in steps.items()],
        "",
        "The server's share alone, same rows, best of 3 (seconds): what one connection cannot go below.",
        "",
        "| server step | s |",
        "|---|---:|",
        *[f"| {k} | {v:.3f} |" for k, v in floor.items()],
        "",
        f"Ours (median {o:.2f} s) is {o - floor['COPY + GiST (the one-connection bound)']:+.2f} s from the server's "
        "own COPY + GiST time: the encoding (geometries to WKB and object columns to bytes chunk by chunk) hides "
        "behind the COPY and the primary key behind the GiST; the swap's commit deletes the replaced table's files "
        "(about 35 ms on this disk, which is mounted with discard; to_postgis's replace drops its old table too). "
        "The rest of the PostGIS work is fixed at these stock settings: the COPY writes "
        "~33 MB of WAL for ~39 MB of heap (wal_level replica; an unlogged table loads in about half the time, "
        "which a city server would not allow), and PostgreSQL 15's sorted GiST build spends about half its "
        "time in PostGIS's picksplit (perf). Tried and measured, not kept: two COPY streams into one staging "
        "table (no gain: the two cores are already busy with encoding and one COPY, and the rows are then not "
        "frozen, which slows the index builds), a thread-free writer, 1-64k-row chunks, more "
        "maintenance_work_mem and GiST fillfactor (no change), a synchronous commit of the fid index so that the "
        "COPY's WAL is flushed while the GiST builds (no gain: the swap's commit took as long). Past the one-connection bound (measured "
        "separately): the layer as two fid-range partitions, each created, loaded (COPY FREEZE) and indexed "
        "on its own connection, then attached, took 0.64 s against 0.72 s median, but makes every large layer "
        "a partitioned table; DESIGN.md's plan for large layers is partitions by tile, where the same parallel "
        "load would apply.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    print("runs ours:", " ".join(f"{x:.3f}" for x in ours), "| theirs:", " ".join(f"{x:.3f}" for x in theirs))
    out = Path(__file__).parent / "results" / "store_load.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
