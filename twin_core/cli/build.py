"""``twin build``: build the sample city into a store; ``twin backup``: copy a GeoPackage twin safely."""

from __future__ import annotations

import math
import time

import typer

from twin_core.cli._common import JSON_OPT, QUIET_OPT, check_output_path, emit


def register(app: typer.Typer) -> None:
    @app.command("build")
    def build(
        target: str = typer.Argument("city.gpkg", help="A .gpkg file or a PostGIS DSN to build into."),
        size: str = typer.Option("small", "--size", "-s", help="small (~1 km2), medium (demo), large (benchmarks)."),
        seed: int = typer.Option(0, help="Random seed; the same seed builds the same city."),
        force: bool = typer.Option(False, "--force", help="Replace an existing twin (a file, or a PostGIS schema's "
                                   "twin, whose scenarios and results go with it)."),
        as_json: bool = JSON_OPT,
        quiet: bool = QUIET_OPT,
    ) -> None:
        """Build the Chengdu-like sample city (real central-Chengdu roads, generated buildings, DEM ...)."""
        summary = build_city(target, size, seed, force=force, quiet=quiet or as_json)
        if quiet and not as_json:  # -q promises no chatter: errors (raised above) are still shown; --json
            return                 # asked for the summary, so it still prints it
        emit(summary, as_json, human=format_summary(summary))

    @app.command("backup")
    def backup(
        target: str = typer.Argument(..., help="The twin to back up: a .gpkg file (a PostGIS twin: pg_dump)."),
        dest: str = typer.Argument(..., help="The .gpkg file to write the copy to."),
        force: bool = typer.Option(False, "--force", help="Replace DEST if it exists."),
        as_json: bool = JSON_OPT,
        quiet: bool = QUIET_OPT,
    ) -> None:
        """Copy a GeoPackage twin safely while it is in use (a map server, a run writing it): SQLite's online
        backup, the twin at one moment, checked before it is put in place. A plain file copy taken during a
        write may hold half of it."""
        out = backup_twin(target, dest, force=force)
        if quiet and not as_json:
            return
        emit(out, as_json, human=f"backed up {out['store']} to {out['backup']} ({out['bytes'] / 1e6:.1f} MB)")


def build_city(target: str, size: str, seed: int, *, force: bool = False, quiet: bool = False) -> dict:
    import os
    import uuid

    import sample_city
    from cim.store import is_dsn
    from twin_core.errors import StoreConnectionError, TwinError
    from twin_core.progress import progress_bar
    from twin_core.twin import Twin

    if size not in ("small", "medium", "large"):
        raise TwinError(f"--size must be small, medium or large, not {size!r}")
    into = target
    if not is_dsn(target):
        # check the target before anything is removed: --force must never delete a file that is no store
        if not str(target).lower().endswith(".gpkg"):
            raise StoreConnectionError(
                f"cannot tell which store {target!r} is: give a '.gpkg' file or a 'postgresql://host/db' DSN"
            )
        if os.path.isdir(target):
            raise TwinError(f"{target} is a directory; give the path of a .gpkg file to build into")
        if os.path.exists(target) and not force:
            raise TwinError(f"{target} exists; pass --force to rebuild it, or open it with `twin info {target}`")
        # build beside it and move into place on success: a failed build leaves no half-built file and a
        # failed rebuild leaves the old city as it was
        folder, base = os.path.split(os.path.abspath(target))
        check_output_path(f"cannot build into {target}", target)
        into = os.path.join(folder, f".{base}.{uuid.uuid4().hex[:8]}.building.gpkg")
    old_twin = _check_postgis_target(target, force) if is_dsn(target) else False
    t0 = time.perf_counter()
    try:
        with progress_bar(f"building {size} sample city", 1.0, quiet=quiet) as progress:
            sample_city.build_into(into, size, seed=seed, progress=progress)
        if into != target:
            os.replace(into, target)
    finally:
        if into != target:
            for leftover in (into, into + "-journal", into + "-wal", into + "-shm"):
                if os.path.exists(leftover):
                    os.remove(leftover)
    with Twin.open(target) as twin:
        if old_twin:  # --force: the old city's scenarios and results describe a city that is no more
            _clear_scenarios_and_results(twin)
        summary = twin.summary()
    summary["build_seconds"] = round(time.perf_counter() - t0, 1)
    return summary


def backup_twin(target: str, dest: str, *, force: bool = False) -> dict:
    """``twin backup``: :func:`cim.store.gpkg.backup` of a GeoPackage twin; a PostGIS twin is refused with the
    ``pg_dump`` command that backs it up. Returns ``{"store", "backup", "bytes"}``."""
    import os

    from cim.store import is_dsn
    from cim.store.gpkg import backup
    from cim.store.postgis import _redact, _split_dsn
    from twin_core.errors import StoreConnectionError, TwinError

    if is_dsn(target):
        conninfo, schema = _split_dsn(target)
        raise TwinError(f"`twin backup` copies GeoPackage twins; back up a PostGIS twin with PostgreSQL's own "
                        f"tools, which copy a schema at one moment while it is in use: pg_dump --schema="
                        f"{schema or 'public'} --format=custom --file=BACKUP.dump '{_redact(conninfo)}' "
                        "(restore it with pg_restore)")
    if not str(target).lower().endswith(".gpkg"):
        raise StoreConnectionError(
            f"cannot tell which store {target!r} is: give a '.gpkg' file or a 'postgresql://host/db' DSN")
    check_output_path(f"cannot back up into {dest}", dest)
    written = backup(target, dest, force=force)
    return {"store": target, "backup": str(written), "bytes": os.path.getsize(written)}


def _check_postgis_target(dsn: str, force: bool) -> bool:
    """Refuse, without --force, to build over a twin or into a schema that holds other tables (as a .gpkg that
    exists is refused); True when a twin is there (--force: rebuilt, its scenarios and results dropped)."""
    from cim.store import open_store
    from cim.store.postgis import _redact
    from twin_core.errors import TwinError

    tables = _schema_tables(dsn)
    if tables is None:  # no server or no database: the build's own connection says so clearly
        return False
    if "twin_meta" in tables:
        with open_store(dsn) as st:
            uri, meta = st.uri, st.get_meta()
        if not force:
            n_scen = sum(1 for k in meta if k.startswith("scenario:"))
            n_res = sum(1 for k in meta if k.startswith("result:"))
            raise TwinError(f"{uri} holds a twin already ({n_scen} scenario(s), {n_res} stored result(s)); pass "
                            f"--force to rebuild it (its scenarios and results go with it), or open it with "
                            f"`twin info {uri}`")
        return True
    if tables and not force:
        raise TwinError(f"the schema of {_redact(dsn)} holds tables that are no twin ({', '.join(tables[:5])}"
                        f"{' ...' if len(tables) > 5 else ''}); build into a schema of its own (?schema=NAME in "
                        "the DSN), or pass --force to build the twin beside them (they are left as they are)")
    return False


def _schema_tables(dsn: str) -> list[str] | None:
    """The tables of the DSN's schema but PostGIS's own (spatial_ref_sys); None when it cannot connect."""
    import psycopg

    from cim.store.postgis import _split_dsn

    conninfo, schema = _split_dsn(dsn)
    try:
        with psycopg.connect(conninfo, connect_timeout=5) as con:
            rows = con.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename <> "
                               "'spatial_ref_sys' ORDER BY tablename", (schema or "public",)).fetchall()
    except (psycopg.OperationalError, psycopg.ProgrammingError):
        return None
    return [r[0] for r in rows]


def _clear_scenarios_and_results(twin) -> None:
    """Delete every scenario (children first) and every stored result."""
    from cim.results import delete_results, list_results

    with twin.store.transaction():
        left = twin.scenarios.names()
        while left:
            meta = twin.store.get_meta()
            parents = {(meta.get(f"scenario:{n}") or {}).get("parent") for n in left}
            for n in [n for n in left if n not in parents]:
                twin.scenarios.delete(n)
            left = twin.scenarios.names()
        for scen in sorted(set(list_results(twin.store)["scenario"])):
            delete_results(twin.store, scen)


def lonlat_extent(s: dict) -> list[float] | None:
    """The extent of summary ``s`` (in its CRS) as lon/lat (xmin, ymin, xmax, ymax), or None where it has none."""
    from cim.crs import lonlat_boxes
    from twin_core.errors import CRSError

    if not s.get("extent") or not s.get("crs"):
        return None
    try:
        box = lonlat_boxes([s["extent"]], s["crs"])[0]
    except CRSError:
        return None
    return None if not all(map(math.isfinite, box)) else [float(v) for v in box]


def format_summary(s: dict) -> str:
    lines = [f"twin {s.get('name')!r} in {s.get('store')} ({s.get('crs')}, {s.get('timezone')})"]
    if s.get("extent"):
        x0, y0, x1, y1 = s["extent"]
        # the bounds as --bbox takes them (the twin CRS), and as lon/lat: the size alone gave no place to start from
        lines.append(f"  extent: {(x1 - x0) / 1000:.2f} km x {(y1 - y0) / 1000:.2f} km, "
                     f"{','.join(f'{v:.10g}' for v in s['extent'])} (xmin,ymin,xmax,ymax in {s.get('crs')}, as "
                     "--bbox takes it)")
        ll = lonlat_extent(s)
        if ll:
            lines.append(f"          lon/lat {','.join(f'{v:.5f}' for v in ll)}")
    for name, n in sorted(s.get("layers", {}).items()):
        lines.append(f"  layer  {name:<12} {n:>9,} feature{'' if n == 1 else 's'}")
    for name, (h, w) in sorted(s.get("rasters", {}).items()):
        lines.append(f"  raster {name:<12} {h:>5} x {w:<5} cells")
    if s.get("scenarios"):
        lines.append(f"  scenarios: {', '.join(s['scenarios'])}")
    n, runs = s.get("results", 0), s.get("runs", 0)
    lines.append(f"  results: {n}" + (f" in {runs} run{'' if runs == 1 else 's'} (`twin runs {s.get('store')}` "
                                      "lists them)" if runs else ""))
    if "build_seconds" in s:
        lines.append(f"  built in {s['build_seconds']} s")
    return "\n".join(lines)
