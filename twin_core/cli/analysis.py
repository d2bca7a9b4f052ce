"""``twin analysis``: sunlight hours, viewshed and emergency access over the twin, saved as results."""

from __future__ import annotations

from typing import Optional

import typer

from twin_core.cli._common import JSON_OPT, QUIET_OPT, STORE_ARG, emit

sub = typer.Typer(help="Spatial analyses: sunlight hours (日照), viewshed, emergency access.", no_args_is_help=True)


def _bbox(text: Optional[str]):
    from twin_core.errors import ParameterError

    if text is None:
        return None
    try:
        vals = tuple(float(v) for v in text.split(","))
    except ValueError:
        vals = ()
    if len(vals) != 4:
        raise ParameterError(f"--bbox takes xmin,ymin,xmax,ymax in the twin CRS, got {text!r}")
    return vals


def _stats(data) -> dict:
    import numpy as np

    v = data[np.isfinite(data)]
    if v.size == 0:
        return {"cells": 0}
    return {"cells": int(v.size), "min": float(v.min()), "mean": float(v.mean()), "max": float(v.max())}


@sub.command("sunlight")
def sunlight(target: str = STORE_ARG,
             date: str = typer.Option("2026-01-20", help="Day (大寒 Major Cold ~20 Jan, or the winter solstice)."),
             start: str = typer.Option("08:00", help="Start time HH:MM."),
             end: str = typer.Option("16:00", help="End time HH:MM."),
             bbox: Optional[str] = typer.Option(None, help="xmin,ymin,xmax,ymax (default: the twin's extent)."),
             spacing: float = typer.Option(5.0, help="Grid spacing in metres."),
             height: float = typer.Option(0.0, help="Sample height above the ground (m)."),
             step: float = typer.Option(10.0, help="Time step in minutes."),
             solar_time: bool = typer.Option(False, "--solar-time", help="Read start/end as true solar time."),
             scenario: Optional[str] = typer.Option(None, help="Scenario (default: the base)."),
             run: Optional[str] = typer.Option(None, help="Run id (default: a new one)."),
             as_json: bool = JSON_OPT, quiet: bool = QUIET_OPT) -> None:
    """Hours of direct sun on a ground grid; saved as result raster 'sunlight_hours'."""
    from twin_core.adapters.analysis import run_sunlight
    from twin_core.progress import progress_bar
    from twin_core.twin import Twin

    box = _bbox(bbox)
    with Twin.open(target) as twin, progress_bar("sunlight", None, quiet=quiet or as_json) as progress:
        ras, run_id = run_sunlight(twin, date, start, end, bounds=box, spacing=spacing, height=height,
                                   scenario=scenario, run=run, step_minutes=step, solar_time=solar_time,
                                   progress=progress)
    out = {"run": run_id, "scenario": scenario or "base", "result": "sunlight_hours", "shape": list(ras.shape),
           "hours": _stats(ras.data)}
    h = out["hours"]
    emit(out, as_json, human=f"run {run_id}: sunlight hours on {ras.shape[0]} x {ras.shape[1]} cells, "
                              f"min {h.get('min', float('nan')):.2f} mean {h.get('mean', float('nan')):.2f} "
                              f"max {h.get('max', float('nan')):.2f} h")


@sub.command("access")
def access(target: str = STORE_ARG,
           from_kind: str = typer.Option("fire_station", "--from", help="The pois kind the vehicles leave from."),
           within: Optional[str] = typer.Option(None, "--within", help="Time to reach a building, e.g. 10min (fire "
                                                "stations: 4min by default, GB 51054-2014)."),
           scenario: Optional[str] = typer.Option(None, help="Scenario (default: the base)."),
           flooded_by: Optional[str] = typer.Option(None, "--flooded-by", help="A flood run: its roads under "
                                                    "0.3 m of water or more are closed."),
           flood_time: Optional[str] = typer.Option(None, "--flood-time", help="With --flooded-by: the water this "
                                                    "long after the storm began (default: its peak)."),
           speeds_from: Optional[str] = typer.Option(None, "--speeds-from", help="A traffic simulate run: drive "
                                                     "each road at its mean speed there (rush hour), not the limit."),
           drive_kmh: float = typer.Option(30.0, "--drive-kmh", help="The vehicles' average speed, km/h (30: "
                                           "what both response standards assume); slower roads at their limit."),
           speed_limits: bool = typer.Option(False, "--speed-limits", help="Drive every road at its speed limit "
                                             "instead of --drive-kmh."),
           run: Optional[str] = typer.Option(None, help="Run id (default: a new one)."),
           as_json: bool = JSON_OPT, quiet: bool = QUIET_OPT) -> None:
    """Time from the nearest station to every building; saved as result table 'access_buildings'."""
    from twin_core.adapters.access import run_access
    from twin_core.progress import progress_bar
    from twin_core.twin import Twin

    with Twin.open(target) as twin, progress_bar("access", None, quiet=quiet or as_json) as progress:
        out = run_access(twin, from_kind, within, scenario=scenario, run=run, flooded_by=flooded_by,
                         flood_time=flood_time, speeds_from=speeds_from,
                         drive_kmh=None if speed_limits else drive_kmh, progress=progress)
    s = out.summary
    w = s["within_s"]
    limit = f"{w:g} s" if w < 60 else f"{round(w / 60, 2):g} min"  # not "0.166667 min"
    human = (f"run {s['run']}: {s['within']} of {s['buildings']} buildings ({100 * s['within_share']:.0f} %) within "
             f"{limit} of a {from_kind} ({s['stations']}); {s['unreachable']} with no open road\n"
             f"  roads driven at {s['speeds']}")
    if flooded_by:
        human += (f"\n  in flood {flooded_by}: {s['flooded_links']} road directions under water; {s['lost']} buildings "
                  f"lose the {limit} they had when dry, {s['cut_off']} are cut off")
    emit(s, as_json, human=human)


@sub.command("viewshed")
def viewshed(target: str = STORE_ARG,
             x: float = typer.Option(..., help="Observer x in the twin CRS."),
             y: float = typer.Option(..., help="Observer y in the twin CRS."),
             height: float = typer.Option(1.6, help="Eye height above the ground (m)."),
             target_height: float = typer.Option(0.0, help="Target height above the ground (m)."),
             radius: Optional[float] = typer.Option(None, help="Only cells within this distance (m)."),
             scenario: Optional[str] = typer.Option(None, help="Scenario (default: the base)."),
             run: Optional[str] = typer.Option(None, help="Run id (default: a new one)."),
             as_json: bool = JSON_OPT, quiet: bool = QUIET_OPT) -> None:
    """Cells of the DEM visible from an observer (terrain and buildings block); saved as 'viewshed'."""
    import numpy as np

    from twin_core.adapters.analysis import run_viewshed
    from twin_core.progress import progress_bar
    from twin_core.twin import Twin

    with Twin.open(target) as twin, progress_bar("viewshed", 1.0, quiet=quiet or as_json) as progress:
        ras, run_id = run_viewshed(twin, (x, y), observer_height=height, target_height=target_height,
                                   radius=radius, scenario=scenario, run=run, progress=progress)
    d = ras.data
    n = int(np.isfinite(d).sum())
    vis = int(np.nansum(d))
    out = {"run": run_id, "scenario": scenario or "base", "result": "viewshed", "shape": list(ras.shape),
           "cells": n, "visible": vis, "visible_fraction": (vis / n) if n else 0.0}
    emit(out, as_json, human=f"run {run_id}: {vis} of {n} cells visible ({out['visible_fraction']:.1%})")


def register(app: typer.Typer) -> None:
    app.add_typer(sub, name="analysis")
