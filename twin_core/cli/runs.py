"""``twin runs``: the stored runs of a twin, and the results of one (what ``twin export --run`` can write);
``--delete`` deletes one."""

from __future__ import annotations

from typing import Optional

import typer

from twin_core.cli._common import JSON_OPT, STORE_ARG, emit, store_arg


def register(app: typer.Typer) -> None:
    @app.command("runs")
    def runs(
        target: str = STORE_ARG,
        run: Optional[str] = typer.Argument(None, help="A run id: list its results instead."),
        scenario: Optional[str] = typer.Option(None, help="Only this scenario's runs (base: the city as built); "
                                               "with RUN, the scenario it is under (where the id is under several)."),
        delete: bool = typer.Option(False, "--delete", help="Delete run RUN, all its results (no prompt), and say "
                                    "what went; --scenario where the id is under several."),
        as_json: bool = JSON_OPT,
    ) -> None:
        """List the stored runs (flood, traffic, crowd, access ...), or one run's results and the files each can
        be exported to (`twin export TARGET NAME OUT --run RUN`); with --delete, delete that run. A stale run
        (made before its scenario's latest edit, before a base layer or raster it read was replaced, or on a
        flood run that is stale or was re-run since) is marked "!" with the reason (--json: stale, stale_why)."""
        import pandas as pd

        from twin_core.errors import ParameterError
        from twin_core.twin import Twin

        if delete and run is None:
            raise ParameterError("--delete needs the run to delete: twin runs TARGET RUN --delete (`twin runs "
                                 "TARGET` lists the runs)")
        with Twin.open(target) as twin:
            shown = store_arg(twin.store, target)  # in the hints: a DSN without its password, quoted
            if delete:
                gone = _delete(twin, run, scenario)
                emit(gone, as_json, human=_format_deleted(gone))
                return
            if run is None:
                df = twin.runs(scenario=scenario)
                rows = [{"scenario": r.scenario, "run": r.run, "engine": r.engine,
                         "created": None if pd.isna(r.created) else r.created.isoformat(),
                         "results": list(r.results), "about": r.about, "stale": bool(r.stale),
                         "stale_why": r.stale_why} for r in df.itertuples()]
                emit({"runs": rows}, as_json, human=_format_runs(rows, shown))
                return
            rows = _results_of(twin, run, scenario)
        emit({"run": run, "scenario": rows[0]["scenario"], "results": rows}, as_json,
             human=_format_results(rows, run, shown))


def _delete(twin, run: str, scenario: str | None) -> dict:
    """Delete ``run`` as :meth:`Twin.delete_run <twin_core.twin.Twin.delete_run>` does; what went."""
    from cim.results import delete_run, engine_of
    from twin_core.adapters.results_export import find_run

    scen = find_run(twin, run, scenario)  # an unknown run: the close id; one under several: --scenario
    gone = delete_run(twin.store, scen, run)
    return {"deleted": run, "scenario": scen, "engine": next((e for e in map(engine_of, gone["meta"]) if e), None),
            "results": sorted(gone["name"])}


def _format_deleted(gone: dict) -> str:
    names = gone["results"]
    shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
    return (f"deleted run {gone['deleted']} (scenario {gone['scenario']}"
            f"{', ' + gone['engine'] if gone['engine'] else ''}): {len(names)} result{'s' if len(names) != 1 else ''}"
            f"{': ' + shown if names else ''}")


def _results_of(twin, run: str, scenario: str | None) -> list[dict]:
    from cim.results import list_results
    from twin_core.adapters.results_export import array_grid, find_run, formats_for, placeable

    index = twin.store.get_meta()  # the results index, read once for finding the run and listing its results
    scen = find_run(twin, run, scenario, meta=index)
    out = []
    for r in list_results(twin.store, scenario=scen, run=run, meta=index).itertuples():
        meta = r.meta if isinstance(r.meta, dict) else {}
        size = ""
        if r.kind == "raster":
            info = twin.store.raster_info(r.ref)
            size = f"{info['height']} x {info['width']} cells"
        elif r.kind == "layer":
            size = f"{twin.store.layer_info(r.ref)['count']:,} features"
        if r.kind == "array":
            geo = array_grid(twin, scen, run, r.name, meta) is not None
        else:
            geo = r.kind == "table" and placeable(twin, r.ref)
        out.append({"scenario": scen, "name": r.name, "kind": r.kind, "size": size,
                    "formats": formats_for(r.kind, georeferenced=geo)})
    return out


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


#: the widest ``about`` shown in the table (a longer one is cut, ``--json`` has it whole)
ABOUT_WIDTH = 56
#: what starts the line of a stale run in the table (its reason follows on the next line)
STALE_MARK = "!"


def _format_runs(rows: list[dict], target: str) -> str:
    if not rows:
        return "no runs stored yet (twin flood / traffic simulate / crowd / analysis ... store theirs)"
    # about: what tells runs of one engine apart (a crowd's area, agents, model; a flood's storm ...)
    width = min(ABOUT_WIDTH, max(5, *(len(r.get("about") or "-") for r in rows)))
    lines = [f"{len(rows)} run{'s' if len(rows) != 1 else ''} (oldest first)",
             f"  {'created (UTC)':<19}  {'scenario':<12} {'engine':<9} {'run':<34} {'about':<{width}} results"]
    for r in rows:
        created = (r["created"] or "?").replace("T", " ")[:19]
        names = _clip(", ".join(r["results"]), 60)
        about = _clip(r.get("about") or "-", width)
        mark = STALE_MARK if r.get("stale") else " "
        lines.append(f"{mark} {created:<19}  {r['scenario']:<12} {r['engine'] or '-':<9} {r['run']:<34} "
                     f"{about:<{width}} {len(r['results'])}: {names}")
        if r.get("stale"):  # whole: the reason is what to act on
            lines.append(f"    stale: {r.get('stale_why') or 'made before what it read changed'}")
    n_stale = sum(1 for r in rows if r.get("stale"))
    if n_stale:
        lines.append(f"{STALE_MARK} stale: {n_stale} run{'s' if n_stale != 1 else ''} made before what "
                     f"{'they' if n_stale != 1 else 'it'} read changed (each reason below it); run again for results "
                     "that match the twin now")
    lines.append(f"one run's results: twin runs {target} RUN")
    return "\n".join(lines)


def _format_results(rows: list[dict], run: str, target: str) -> str:
    from twin_core.adapters.results_export import KIND_WORDS

    lines = [f"run {run} (scenario {rows[0]['scenario']}): {len(rows)} result{'s' if len(rows) != 1 else ''}"]
    width = max(22, *(len(r["name"]) for r in rows))  # a comparison's 'exposure_road_links_change' is 26 long
    for r in rows:
        lines.append(f"  {r['name']:<{width}} {KIND_WORDS.get(r['kind'], r['kind']):<15} {r['size']:<18} -> "
                     f"{' '.join(r['formats'])}")
    first = next((r for r in rows if r["kind"] == "raster"), rows[0])
    lines.append(f"export one: twin export {target} {first['name']} {first['name']}{first['formats'][0]} "
                 f"--run {run}")
    return "\n".join(lines)
