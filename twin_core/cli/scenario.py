"""``twin scenario``: create, list, diff, delete scenarios and record edits."""

from __future__ import annotations

from typing import Optional

import typer

from twin_core.cli._common import JSON_OPT, STORE_ARG, emit

sub = typer.Typer(help="What-if scenarios over the base city (the base is never changed).", no_args_is_help=True)


@sub.command("list")
def list_(target: str = STORE_ARG, as_json: bool = JSON_OPT) -> None:
    """List scenarios with their edit counts."""
    from twin_core.twin import Twin

    with Twin.open(target) as twin:
        df = twin.scenarios.list()
    emit(df.to_dict(orient="records"), as_json, human=df.to_string(index=False) if len(df) else "(no scenarios)")


@sub.command("create")
def create(target: str = STORE_ARG, name: str = typer.Argument(...), description: str = typer.Option("", "--description", "-d"),
           parent: str = typer.Option("base", help="Build on another scenario."), as_json: bool = JSON_OPT) -> None:
    """Create an empty scenario."""
    from twin_core.twin import Twin

    with Twin.open(target) as twin:
        twin.scenarios.create(name, description, parent=parent)
    emit({"created": name}, as_json, human=f"created scenario {name}")


@sub.command("diff")
def diff(target: str = STORE_ARG, a: str = typer.Argument(...), b: str = typer.Argument(...), as_json: bool = JSON_OPT) -> None:
    """What differs between two scenarios (either may be 'base')."""
    from twin_core.twin import Twin

    with Twin.open(target) as twin:
        df = twin.scenarios.diff(a, b)
    emit(df.to_dict(orient="records"), as_json, human=df.to_string(index=False) if len(df) else "(no differences)")


@sub.command("delete")
def delete(target: str = STORE_ARG, name: str = typer.Argument(...), as_json: bool = JSON_OPT) -> None:
    """Delete a scenario, its edits and its stored results (export what you want to keep first: twin runs)."""
    from twin_core.twin import Twin

    with Twin.open(target) as twin:  # Scenarios.delete refuses 'base' (in any case)
        n = twin.scenarios.delete(name)
    emit({"deleted": name, "results_deleted": n}, as_json,
         human=f"deleted scenario {name}" + (f" and its {n} stored result(s)" if n else ""))


@sub.command("undo")
def undo(target: str = STORE_ARG, name: str = typer.Argument(...), as_json: bool = JSON_OPT) -> None:
    """Take back the scenario's latest edit (all the roads one close-roads closed, one raise-ground, ...)."""
    from twin_core.errors import ScenarioError
    from twin_core.twin import Twin

    with Twin.open(target) as twin:
        if isinstance(name, str) and name.casefold() == "base":
            raise ScenarioError(f"{name!r} is the city itself, which is never edited, so there is nothing to undo; "
                                f"name a scenario: {twin.scenarios.names()} (twin scenario list)")
        s = twin.scenarios.get(name)
        gone = s.undo()  # a scenario with no edits of its own is a ScenarioError saying so
        left = s.n_edits  # edits as undo takes them back (one a call), as `twin scenario list` counts them
    ops = ", ".join(sorted(set(gone["op"])))
    targets = ", ".join(sorted(set(gone["target"].astype(str))))
    emit({"scenario": s.name, "undone": {"op": ops, "targets": targets, "rows": len(gone)}, "edits": left}, as_json,
         human=f"undid {ops} on {targets} ({len(gone)} row(s)) in scenario {s.name}; {left} edit(s) left")


_SCENARIO_HELP = ("Scenario to edit; a new name creates it, unless it is close to an existing one's (a typo?): "
                  "then --create.")
_CREATE_OPT = typer.Option(False, "--create", help="Create the scenario if it does not exist, even when its name "
                                                   "is close to an existing one's.")


@sub.command("close-roads")
def close_roads(target: str = STORE_ARG, name: str = typer.Argument(..., help=_SCENARIO_HELP),
                bbox: str = typer.Option(..., help="xmin,ymin,xmax,ymax in the twin CRS"), create: bool = _CREATE_OPT,
                as_json: bool = JSON_OPT) -> None:
    """Close every road link crossing a box (capacity 0)."""
    import shapely

    from twin_core.twin import Twin

    box = _bbox(bbox)
    with Twin.open(target) as twin, twin.store.transaction():  # a failed edit leaves no new, empty scenario
        s, made = _scenario_to_edit(twin, name, create, target)
        ids = s.close_roads(shapely.box(*box))
    emit({"scenario": s.name, "closed": ids}, as_json,
         human=_made(s.name, made) + f"closed {len(ids)} links in {s.name}")


@sub.command("raise-ground")
def raise_ground(target: str = STORE_ARG, name: str = typer.Argument(..., help=_SCENARIO_HELP),
                 bbox: Optional[str] = typer.Option(None, help="xmin,ymin,xmax,ymax in the twin CRS (or --line)"),
                 line: Optional[str] = typer.Option(None, "--line", help="A levee along a line instead of a box: "
                                                    "X1,Y1;X2,Y2;... in the twin CRS, --width wide."),
                 width: float = typer.Option(10.0, "--width", help="With --line: the levee's width in metres."),
                 delta: float = typer.Option(..., help="Metres to add (a levee) or subtract (storage)."),
                 raster: str = typer.Option("dem", help="The raster to change (its unit, m for the dem)."),
                 create: bool = _CREATE_OPT, as_json: bool = JSON_OPT) -> None:
    """Raise or lower the DEM inside a box or along a line (a levee, a storage pond). The edit stays a delta: on a
    DEM imported again later, the ground is raised by as much above the new ground."""
    from twin_core.errors import ScenarioError
    from twin_core.twin import Twin

    if (bbox is None) == (line is None):
        raise ScenarioError("give --bbox xmin,ymin,xmax,ymax (a box) or --line X1,Y1;X2,Y2;... (a levee along a "
                            "line, --width metres wide), one of them")
    where = _bbox(bbox) if bbox is not None else _line_strip(line, width)
    with Twin.open(target) as twin, twin.store.transaction():  # a failed edit leaves no new, empty scenario
        s, made = _scenario_to_edit(twin, name, create, target)
        w = s.patch_raster(raster, where, delta=delta)
    emit({"scenario": s.name, "cells": w.height * w.width}, as_json,
         human=_made(s.name, made) + f"patched {w.height} x {w.width} cells of {raster}")


@sub.command("set")
def set_param(target: str = STORE_ARG, name: str = typer.Argument(..., help=_SCENARIO_HELP),
              key: str = typer.Argument(...),
              value: str = typer.Argument(..., help="A JSON value, e.g. 50 or '\"am\"'"), create: bool = _CREATE_OPT,
              as_json: bool = JSON_OPT) -> None:
    """Record a scenario parameter that the engines read: traffic_closed_links, traffic_capacity_factor,
    traffic_demand_scale, crowd_closed_exits (e.g. crowd_closed_exits '["-265607427:1"]')."""
    import json

    from twin_core.adapters.scenario_params import check_scenario_param, scenario_params
    from twin_core.errors import twin_warn
    from twin_core.twin import Twin

    read = sorted(scenario_params())
    if key not in read:  # recorded all the same (a note for people), but a typo would change nothing
        from cim.scenario import did_you_mean

        twin_warn(f"no engine reads scenario parameter {key!r}; it is recorded, but changes no run. The engines read "
                  f"{', '.join(read)}" + did_you_mean(key, read))

    try:
        v = json.loads(value)
    except json.JSONDecodeError:
        v = value
    check_scenario_param(key, v)  # a value the engine would refuse or misread, before anything is recorded
    with Twin.open(target) as twin, twin.store.transaction():  # a failed edit leaves no new, empty scenario
        s, made = _scenario_to_edit(twin, name, create, target)
        s.set_param(key, v)  # the twin's check: link ids against its road links (refused: nothing recorded)
    emit({"scenario": s.name, key: v}, as_json, human=_made(s.name, made) + f"{s.name}: {key} = {v!r}")


def _scenario_to_edit(twin, name: str, create: bool, target: str):
    """``(scenario, created)``: the scenario an edit command records into. An existing one as it is; a new name
    creates it (one command, one edit: by design), unless it is close to an existing scenario's name, most
    likely a typo ('leve' for 'levee') that would record the edit into a new scenario beside the one meant:
    refused, with the name meant and how to create it all the same (``--create``)."""
    from cim.scenario import did_you_mean, normalise_scenario_name
    from twin_core.errors import ScenarioError

    sc = twin.scenarios
    key = normalise_scenario_name(name)
    uri = str(getattr(twin.store, "uri", target))
    target = uri if "***" in uri else target  # a DSN's password is not repeated on the screen
    if isinstance(key, str) and key.casefold() == "base":
        raise ScenarioError(f"{name!r} is the city itself, which is never edited; create a scenario and edit that: "
                            f"twin scenario create {target} NAME")
    if key in sc:
        return sc.get(key), False
    near = did_you_mean(key, sc.names())
    if near and not create:
        raise ScenarioError(f"no scenario {key!r}{near} (create a new one with `twin scenario create {target} "
                            f"{key}`, or pass --create); nothing was recorded")
    return sc.create(key, exist_ok=True, warn_if_edited=False), True


def _made(name: str, made: bool) -> str:
    return f"created scenario {name}; " if made else ""


def _bbox(text: str) -> tuple[float, float, float, float]:
    import math

    from twin_core.errors import ScenarioError

    try:
        vals = tuple(float(v) for v in text.split(","))
    except ValueError:
        vals = ()
    if len(vals) != 4 or not all(math.isfinite(v) for v in vals):
        raise ScenarioError(f"--bbox takes four finite numbers xmin,ymin,xmax,ymax in the twin CRS, got {text!r}")
    if not (vals[0] < vals[2] and vals[1] < vals[3]):
        raise ScenarioError(f"--bbox {text!r} is empty or inverted: it needs xmin < xmax and ymin < ymax "
                            "(the order is xmin,ymin,xmax,ymax)")
    return vals  # type: ignore[return-value]


def _line_strip(text: str, width: float):
    """The polygon ``width`` m wide along the line ``X1,Y1;X2,Y2;...`` (flat ends: a levee)."""
    import math

    import shapely

    from twin_core.errors import ScenarioError

    try:
        pts = [tuple(float(v) for v in p.split(",")) for p in text.strip().strip(";").split(";")]
    except ValueError:
        pts = []
    if len(pts) < 2 or any(len(p) != 2 or not all(math.isfinite(v) for v in p) for p in pts):
        raise ScenarioError(f"--line takes two or more points X,Y in the twin CRS separated by ';', e.g. "
                            f"'409405,3391257;409724,3391001', got {text!r}")
    if not (math.isfinite(width) and width > 0):
        raise ScenarioError(f"--width is the levee's width in metres, a number > 0, got {width!r}")
    strip = shapely.LineString(pts).buffer(width / 2.0, cap_style="flat", join_style="mitre")
    if strip.is_empty or strip.area <= 0:
        raise ScenarioError(f"--line {text!r} has no length (its points are all the same): give two different points")
    return strip


def register(app: typer.Typer) -> None:
    app.add_typer(sub, name="scenario")
