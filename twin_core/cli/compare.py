"""``twin compare``: what a what-if changes, two stored runs of one engine side by side."""

from __future__ import annotations

from typing import Optional

import typer

from twin_core.cli._common import JSON_OPT, STORE_ARG, check_output_path, emit, store_arg


def register(app: typer.Typer) -> None:
    @app.command("compare")
    def compare(
        target: str = STORE_ARG,
        run_a: str = typer.Argument(..., help="Run A (e.g. the base's flood run)."),
        run_b: str = typer.Argument(..., help="Run B (e.g. the same flood on the scenario): changes are B - A."),
        scenario_a: Optional[str] = typer.Option(None, "--scenario-a", help="A's scenario, where its id is under "
                                                 "several."),
        scenario_b: Optional[str] = typer.Option(None, "--scenario-b", help="B's scenario, likewise."),
        save: Optional[str] = typer.Option(None, "--save", help="Store the comparison as this run (under B's "
                                           "scenario): twin runs / twin export reach its tables and rasters."),
        out: Optional[str] = typer.Option(None, "--out", help="Write its feature-by-feature table here (.csv, "
                                          ".parquet; a traffic comparison: any vector format, e.g. .gpkg); a "
                                          "comparison of several tables (a flood's) writes OUT-NAME.EXT for each."),
        top: int = typer.Option(10, "--top", min=0, help="Show this many of the most changed features."),
        as_json: bool = JSON_OPT,
    ) -> None:
        """What a what-if changes: two stored runs of one engine (flood, traffic, access, crowd, sunlight,
        viewshed), their headline figures and the features that changed most (B - A)."""
        from twin_core.adapters.compare import UNCHANGED
        from twin_core.twin import Twin

        check_output_path(f"--out {out}", out)
        if out:  # before the comparison is made (and saved): a format no table can go to
            _format_of(out)
        with Twin.open(target) as twin:
            cmp = twin.compare(run_a, run_b, scenario_a=scenario_a, scenario_b=scenario_b)
            many = len(cmp.tables) > 1
            if out:  # every table can go where --out says, before anything is saved or written
                for name, table in cmp.tables.items():
                    _writable(table, _one_of(out, name) if many else out)
            saved = cmp.save(twin, save) if save is not None else None
            shown_store = store_arg(twin.store, target)  # a DSN without its password, quoted for the shell
        lines = cmp.lines()
        for name, table in cmp.tables.items():
            changed = table[~table["change"].isin(UNCHANGED)] if "change" in table.columns else table
            lines.append(f"{name}: {len(changed):,} of {len(table):,} rows changed")
            if top and len(changed):
                shown = changed.drop(columns="geometry", errors="ignore").head(top)
                lines[-1] += f"; the {len(shown)} most changed:"
                lines += ["  " + x for x in shown.to_string(index=False, float_format=lambda v: f"{v:.3f}").splitlines()]
            if out:
                path = _one_of(out, name) if many else out
                _write(table, path, name)
                lines.append(f"wrote {name} to {path}")
        if saved:
            lines.append(f"saved as run {saved!r} under scenario {cmp.b[0]!r} (twin runs {shown_store} {saved})")
        doc = cmp.to_dict() | {"saved_as": saved}
        emit(doc, as_json, human="\n".join(lines))


def _one_of(out: str, name: str) -> str:
    """Where table ``name`` goes when a comparison has several: ``out`` with the name before its extension."""
    import os

    stem, ext = os.path.splitext(out)
    return f"{stem}-{name}{ext}"


def _format_of(out: str) -> str:
    import os

    from cim.io.vector import EXPORT_FORMATS
    from twin_core.errors import ImportFormatError

    ext = os.path.splitext(out)[1].lower()
    if ext not in (".csv", ".parquet") and ext not in EXPORT_FORMATS:
        raise ImportFormatError(f"--out {out}: write the table to .csv, .parquet or (a traffic comparison's links) "
                                f"one of {sorted(EXPORT_FORMATS)}")
    return ext


def _writable(table, out: str) -> str:
    """The format ``table`` goes to at ``out``, or the error that says why it cannot."""
    from twin_core.errors import ImportFormatError

    ext = _format_of(out)
    if ext not in (".csv", ".parquet") and "geometry" not in table.columns:
        raise ImportFormatError(f"--out {out}: this comparison's table has no geometry; write it to .csv or .parquet "
                                "(save it with --save and `twin export` places building or link rows on the map)")
    return ext


def _write(table, out: str, name: str) -> None:
    ext = _writable(table, out)
    if ext == ".csv":
        table.drop(columns="geometry", errors="ignore").to_csv(out, index=False, encoding="utf-8")
    elif ext == ".parquet":
        table.to_parquet(out, index=False)
    else:
        from cim.io.vector import write_frame

        write_frame(table, out, layer=name)
