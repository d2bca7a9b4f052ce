"""Benchmark of the map server: tile and feature throughput on both stores, payload per building.

- tiles: every z15 and z16 tile of the medium sample city's buildings, first
  cold (encoded on demand) then warm (cached), from a local load generator
  (8 threads, keep-alive) against ``twin serve`` in its own process;
- features: GeoJSON pages of 500 buildings by bbox;
- payload: vector-tile bytes per building (raw and gzip) against inline
  GeoJSON (what pydeck sends) and our notebook ``view()`` JSON;
- peer: GDAL's MVT driver (``ogr2ogr -f MVT``) writing the same z15 tiles with
  the same attributes: tile encoding speed and bytes per building;
- the page: time to the first buildings in headless Chromium (software GL).

Run: ``.venv/bin/python benchmarks/viewer.py`` (about 3-6 minutes). Writes
``benchmarks/results/viewer.md``. With ``--encoder-only`` it runs only the
tile-encoding comparison (ours, the former ``mapbox_vector_tile`` encoder,
GDAL) and replaces that paragraph of the results file
(``VIEWER_BENCH_GPKG`` names an already built city).
"""

from __future__ import annotations

import concurrent.futures as cf
import gzip
import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(HERE, "_out")
SIZE = os.environ.get("VIEWER_BENCH_SIZE", "medium")
PG = os.environ.get("TWIN_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/twin_test")
THREADS = 8
sys.path.insert(0, ROOT)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiles_for(bounds, z):
    w, s, e, n = bounds

    def xy(lon, lat):
        k = 2 ** z
        return int((lon + 180) / 360 * k), int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * k)

    x0, y0 = xy(w, n)
    x1, y1 = xy(e, s)
    return [(z, x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]


class Server:
    """``twin serve`` in its own process; ``prewarm=False`` for truly cold tile timings."""

    def __init__(self, store: str, prewarm: bool = True) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        code = ("import sys; sys.path.insert(0, %r); import uvicorn; from viewer.app import create_app; "
                "from viewer.settings import Settings; "
                "uvicorn.run(create_app(Settings(store=%r, port=%d, prewarm=%r)), host='127.0.0.1', port=%d, "
                "log_level='error')") % (ROOT, store, self.port, prewarm, self.port)
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        import httpx

        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(self.url + "/api/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.proc.kill()
        raise RuntimeError("server did not start: " + self.proc.stderr.read().decode()[-2000:])

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def load(url: str, paths: list[str], headers=None) -> dict:
    """Fetch every path once with THREADS workers; requests/s, p50/p95 latency, bytes."""
    import httpx

    lat = []
    sizes = []
    clients = [httpx.Client(base_url=url, timeout=60, headers=headers or {}) for _ in range(THREADS)]

    def one(i_p):
        i, p = i_p
        t0 = time.perf_counter()
        r = clients[i % THREADS].get(p)
        dt = time.perf_counter() - t0
        assert r.status_code == 200, (p, r.status_code, r.text[:200])
        return dt, len(r.content)

    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(THREADS) as ex:
        for dt, n in ex.map(one, enumerate(paths)):
            lat.append(dt)
            sizes.append(n)
    wall = time.perf_counter() - t0
    for c in clients:
        c.close()
    lat = np.array(lat)
    return {"n": len(paths), "rps": len(paths) / wall, "p50_ms": float(np.percentile(lat, 50) * 1000),
            "p95_ms": float(np.percentile(lat, 95) * 1000), "bytes": int(sum(sizes))}


def bench_store(label: str, store: str, n_buildings: int) -> dict:
    import httpx

    srv = Server(store, prewarm=False)
    try:
        scene = httpx.get(srv.url + "/api/scene", timeout=60).json()
        out = {"store": label}
        for z in (15, 16):
            paths = [f"/tiles/buildings/{z}/{x}/{y}.pbf" for z_, x, y in tiles_for(scene["bounds"], z)]
            out[f"z{z}_cold"] = load(srv.url, paths, {"accept-encoding": "identity"})
            out[f"z{z}_warm"] = load(srv.url, paths, {"accept-encoding": "identity"})
        w, s, e, n = scene["bounds"]
        boxes = []
        k = 6
        for i in range(k):
            for j in range(k):
                bx = (w + (e - w) * i / k, s + (n - s) * j / k, w + (e - w) * (i + 1) / k, s + (n - s) * (j + 1) / k)
                boxes.append("/api/layers/buildings/features?limit=500&bbox=" + ",".join(f"{v:.6f}" for v in bx))
        out["features"] = load(srv.url, boxes)
        out["features"]["per_request_features"] = None
        raw = out["z15_cold"]["bytes"]
        gz = 0
        for p in [f"/tiles/buildings/{z}/{x}/{y}.pbf" for z, x, y in tiles_for(scene["bounds"], 15)]:
            gz += len(gzip.compress(httpx.get(srv.url + p, headers={"accept-encoding": "identity"}).content, 6))
        out["bytes_per_building_z15"] = raw / n_buildings
        out["bytes_per_building_z15_gzip"] = gz / n_buildings
        out["bytes_per_building_z16"] = out["z16_cold"]["bytes"] / n_buildings
    finally:
        srv.stop()
    return out


def encoder_vs_gdal(store: str, bounds, n_buildings: int, reps: int = 3) -> dict:
    """Our in-process z15 encoding of every tile vs GDAL's MVT driver writing the same tiles.

    Each of ours (read+project, encode), the former per-feature ``mapbox_vector_tile`` encoder and
    GDAL runs ``reps`` times; the medians are kept (the machine is shared). Also the in-process
    time of one cold tile (clip, snap, encode) with each encoder, p50 over the tiles.
    """
    from cim.store import open_store

    from viewer.tiles import _encode_frame_tile_reference, encode_frame_tile, project_frame

    tiles = tiles_for(bounds, 15)
    fields = ["building_id", "height_m", "use"]
    prep, enc, ref = [], [], []
    per_tile = {"ours": [], "former": []}
    for _ in range(reps):
        with open_store(store) as st:
            t0 = time.perf_counter()
            gdf = st.read_layer("buildings", columns=fields)
            fr = project_frame(gdf, st.crs, "buildings", fields)
            t1 = time.perf_counter()
        prep.append(t1 - t0)
        for name, f, acc in (("ours", encode_frame_tile, enc), ("former", _encode_frame_tile_reference, ref)):
            out = []
            t1 = time.perf_counter()
            for t in tiles:
                a = time.perf_counter()
                out.append(f(fr, *t))
                per_tile[name].append(time.perf_counter() - a)
            acc.append(time.perf_counter() - t1)
            if name == "ours":
                ours_bytes = sum(len(b) for b in out)
            else:
                former_bytes = sum(len(b) for b in out)
    gdal = []
    for _ in range(reps):
        d = tempfile.mkdtemp(prefix="gdalmvt-")
        t3 = time.perf_counter()
        subprocess.run(["ogr2ogr", "-f", "MVT", os.path.join(d, "tiles"), store, "-sql",
                        "SELECT building_id, CAST(ROUND(height_m) AS INTEGER) AS height_m, use, geom FROM buildings",
                        "-nln", "buildings", "-dsco", "MINZOOM=15", "-dsco", "MAXZOOM=15", "-dsco", "COMPRESS=NO",
                        "-dsco", "FORMAT=DIRECTORY", "-dsco", "MAX_SIZE=10000000", "-dsco", "MAX_FEATURES=1000000"],
                       check=True, capture_output=True)
        gdal.append(time.perf_counter() - t3)
        files = [os.path.join(r, f) for r, _, fs in os.walk(os.path.join(d, "tiles")) for f in fs if f.endswith(".pbf")]
        gdal_bytes = sum(os.path.getsize(f) for f in files)
        shutil.rmtree(d, ignore_errors=True)
    med = statistics.median
    return {"tiles": len(tiles), "reps": reps, "ours_prepare_s": med(prep), "ours_encode_s": med(enc),
            "ours_total_s": med(prep) + med(enc), "former_encode_s": med(ref),
            "ours_tile_p50_ms": float(np.percentile(per_tile["ours"], 50) * 1000),
            "former_tile_p50_ms": float(np.percentile(per_tile["former"], 50) * 1000),
            "ours_bytes_per_building": ours_bytes / n_buildings, "former_bytes_per_building": former_bytes / n_buildings,
            "gdal_s": med(gdal), "gdal_tiles": len(files), "gdal_bytes_per_building": gdal_bytes / n_buildings}


def encoder_line(e: dict, load: list[float] | None = None) -> str:
    """The results' "Tile encoding" paragraph."""
    when = ""
    if load is not None:
        when = (f" (measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, 2-core python-svc, shared load: "
                f"load average {load[0]:.1f} -> {load[1]:.1f}; medians of {e['reps']} runs)")
    return (f"Tile encoding, all {e['tiles']} z15 tiles in-process{when}: ours {e['ours_total_s']:.2f} s "
            f"(read+project {e['ours_prepare_s']:.2f} s, encode {e['ours_encode_s']:.2f} s; the former per-feature "
            f"`mapbox_vector_tile` encoder: encode {e['former_encode_s']:.2f} s, "
            f"{e['former_encode_s'] / e['ours_encode_s']:.1f}x ours) vs GDAL `ogr2ogr -f MVT` "
            f"{e['gdal_s']:.2f} s ({e['gdal_tiles']} tiles): ratio GDAL/ours {e['gdal_s'] / e['ours_total_s']:.2f}. "
            f"One cold tile in-process (clip, snap, encode), p50: {e['ours_tile_p50_ms']:.0f} ms "
            f"(former {e['former_tile_p50_ms']:.0f} ms); bytes per building {e['ours_bytes_per_building']:.1f} "
            f"(former {e['former_bytes_per_building']:.1f}, GDAL {e['gdal_bytes_per_building']:.1f}).")


def bench_city(gpkg: str | None = None) -> tuple[str, int, tuple]:
    """The sample city of SIZE (built under OUT unless ``gpkg`` names one): path, buildings, WGS 84 bounds."""
    import sample_city
    from cim.store import open_store
    from viewer.geo import to_wgs84

    os.makedirs(OUT, exist_ok=True)
    gpkg = gpkg or os.path.join(OUT, f"viewer_{SIZE}.gpkg")
    if not os.path.exists(gpkg):
        print(f"building the {SIZE} sample city ...", flush=True)
        sample_city.build_into(gpkg, SIZE, seed=0)
    with open_store(gpkg) as st:
        return gpkg, st.layer_info("buildings")["count"], to_wgs84(st.layer_info("buildings")["bounds"], st.crs)


def encoder_only() -> None:
    """Run only the tile-encoding comparison and replace its paragraph in the results file."""
    gpkg, n, bounds = bench_city(os.environ.get("VIEWER_BENCH_GPKG"))
    load1 = os.getloadavg()[0]
    e = encoder_vs_gdal(gpkg, bounds, n, reps=5)
    print(json.dumps(e, indent=1), flush=True)
    line = encoder_line(e, [load1, os.getloadavg()[0]])
    path = os.path.join(HERE, "results", "viewer.md")
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    hits = [i for i, x in enumerate(lines) if x.startswith("Tile encoding,")]
    if len(hits) != 1:
        raise SystemExit(f"{path} has {len(hits)} 'Tile encoding' lines; run the whole benchmark instead")
    lines[hits[0]] = line
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines))
    print(line)
    print("updated", path)


def inline_payloads(store: str, n_buildings: int) -> dict:
    from twin_core.twin import Twin
    from twin_core.view import view

    from viewer.geo import frame_to_geojson

    with Twin.open(store) as twin:
        gdf = twin.layer("buildings")
        full = len(json.dumps(frame_to_geojson(gdf, twin.crs)).encode())
        deck = view(twin, layers=("buildings",), hillshade=False, max_features=10 ** 7)
        pyd = len(deck.to_json().encode())
    return {"geojson_per_building": full / n_buildings, "pydeck_view_per_building": pyd / n_buildings}


def first_buildings_ms(store: str) -> list[float]:
    if not os.path.exists("/usr/bin/chromium"):
        return []
    from playwright.sync_api import sync_playwright

    srv = Server(store)
    times = []
    try:
        with sync_playwright() as pw:
            b = pw.chromium.launch(executable_path="/usr/bin/chromium",
                                   args=["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"])
            for _ in range(3):
                ctx = b.new_context(viewport={"width": 1400, "height": 860})
                page = ctx.new_page()
                page.goto(srv.url + "/")
                page.wait_for_function("window.__twin && window.__twin.firstBuildingsMs !== null", timeout=60000)
                times.append(page.evaluate("window.__twin.firstBuildingsMs"))
                ctx.close()
            b.close()
    finally:
        srv.stop()
    return times


def main() -> None:
    gpkg, n, bounds = bench_city()
    load1 = os.getloadavg()[0]
    res = {"size": SIZE, "buildings": n}
    print(f"{n} buildings; load {load1:.1f}", flush=True)
    res["gpkg"] = bench_store("GeoPackage", gpkg, n)
    print(json.dumps(res["gpkg"], indent=1), flush=True)
    dsn = None
    try:
        import psycopg

        with psycopg.connect(PG, connect_timeout=3) as c:
            c.execute("SELECT postgis_lib_version()")
        import sample_city

        dsn = PG + "?schema=bench_viewer"
        with psycopg.connect(PG, autocommit=True) as c:
            c.execute("DROP SCHEMA IF EXISTS bench_viewer CASCADE")
        sample_city.build_into(dsn, SIZE, seed=0)
    except Exception as exc:  # noqa: BLE001
        print(f"PostGIS not available ({exc}); skipping it", flush=True)
    if dsn:
        res["postgis"] = bench_store("PostGIS", dsn, n)
        print(json.dumps(res["postgis"], indent=1), flush=True)
    res["encoder"] = encoder_vs_gdal(gpkg, bounds, n)
    print(json.dumps(res["encoder"], indent=1), flush=True)
    res["inline"] = inline_payloads(gpkg, n)
    print(json.dumps(res["inline"], indent=1), flush=True)
    res["first_buildings_ms"] = first_buildings_ms(gpkg)
    print("first buildings (ms):", res["first_buildings_ms"], flush=True)
    res["load"] = [load1, os.getloadavg()[0]]
    write_md(res)
    if dsn:
        import psycopg

        with psycopg.connect(PG, autocommit=True) as c:
            c.execute("DROP SCHEMA IF EXISTS bench_viewer CASCADE")


def write_md(r: dict) -> None:
    g = r["gpkg"]
    p = r.get("postgis")
    e = r["encoder"]
    i = r["inline"]
    fb = r["first_buildings_ms"]
    lines = [
        "## Viewer (map server)",
        "",
        f"Date {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; machine: 2-core python-svc, shared load "
        f"(load average {r['load'][0]:.1f} -> {r['load'][1]:.1f} during the run; timings are noisy). "
        f"City: `{r['size']}` sample city, {r['buildings']} buildings. Load generator: {THREADS} threads, "
        "keep-alive, server in its own process (`twin serve` without its tile warm-up, so 'cold' is cold; "
        "'cached' is the second pass).",
        "",
        "| endpoint | store | requests | req/s | p50 ms | p95 ms |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for label, d in [("GeoPackage", g)] + ([("PostGIS", p)] if p else []):
        for key, name in (("z15_cold", "tiles z15, cold"), ("z15_warm", "tiles z15, cached"),
                          ("z16_cold", "tiles z16, cold"), ("z16_warm", "tiles z16, cached"),
                          ("features", "features, 500/page by bbox")):
            x = d[key]
            lines.append(f"| {name} | {label} | {x['n']} | {x['rps']:.0f} | {x['p50_ms']:.1f} | {x['p95_ms']:.1f} |")
    ok60 = g["bytes_per_building_z15"] <= 60
    lines += [
        "",
        "Payload per building (buildings layer, whole city):",
        "",
        "| route | bytes / building |",
        "|---|---:|",
        f"| vector tiles z15, raw (GeoPackage encoder) | {g['bytes_per_building_z15']:.1f} |",
        f"| vector tiles z15, gzip (as served to browsers) | {g['bytes_per_building_z15_gzip']:.1f} |",
        f"| vector tiles z16, raw | {g['bytes_per_building_z16']:.1f} |",
    ]
    if p:
        lines.append(f"| vector tiles z15, raw (PostGIS ST_AsMVT) | {p['bytes_per_building_z15']:.1f} |")
    lines += [
        f"| peer: GDAL MVT driver, z15, same attributes | {e['gdal_bytes_per_building']:.1f} |",
        f"| inline GeoJSON, all attributes (lon/lat) | {i['geojson_per_building']:.0f} |",
        f"| pydeck JSON of `twin_core.view` | {i['pydeck_view_per_building']:.0f} |",
        "",
        f"Ratio inline GeoJSON / tiles (z15 raw): {i['geojson_per_building'] / g['bytes_per_building_z15']:.1f}x; "
        f"pydeck / tiles: {i['pydeck_view_per_building'] / g['bytes_per_building_z15']:.1f}x.",
        "",
        encoder_line(e),
        "",
        "First buildings in headless Chromium (software GL, from navigation start; `twin serve` as shipped, "
        "warming the buildings' z14-15 tiles at start; first load right after the server started, then two more): "
        + (", ".join(f"{t:.0f} ms" for t in fb) if fb else "not measured (no Chromium)"),
        "",
        "Aims: <= 60 bytes per building in vector tiles: " + ("met" if ok60 else "NOT met")
        + f" ({g['bytes_per_building_z15']:.1f}); first buildings within 5 s: "
        + (("met" if max(fb) <= 5000 else "NOT met") + f" (best {min(fb):.0f} ms, worst {max(fb):.0f} ms)" if fb else "n/a") + ".",
        "",
    ]
    path = os.path.join(HERE, "results", "viewer.md")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines))
    print("\n".join(lines))
    print("wrote", path)


if __name__ == "__main__":
    if "--encoder-only" in sys.argv[1:]:
        encoder_only()
    else:
        main()
