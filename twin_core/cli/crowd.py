"""``twin crowd``: evacuate a plaza (an ``areas`` feature) or an IFC storey; results go into the store."""

from __future__ import annotations

from typing import List, Optional

import typer

from twin_core.cli._common import JSON_OPT, QUIET_OPT, STORE_ARG, emit


def register(app: typer.Typer) -> None:
    @app.command("crowd")
    def crowd(
        target: str = STORE_ARG,
        area: Optional[str] = typer.Option(None, "--area", "-a", help="An areas feature: id (A001) or name."),
        agents: Optional[int] = typer.Option(None, "--agents", "-n", help="Number of pedestrians."),
        density: Optional[float] = typer.Option(None, "--density", help="Pedestrians per m2 instead of --agents."),
        scenario: Optional[str] = typer.Option(None, "--scenario", "-s", help="Run on this scenario (default: base)."),
        run: Optional[str] = typer.Option(None, "--run", help="Run id to save under (default: a new one)."),
        model: str = typer.Option("csm", "--model", "-m",
                                  help="csm (collision-free speed; the default, passes RiMEA 1, 4, 6, 12 and the "
                                       "measured 1 m bottleneck) or sfm (social force; fails RiMEA 12 and the 1 m "
                                       "bottlenecks: docs/crowd_verification.md)."),
        until: str = typer.Option("1800", "--until", help="Stop after this simulated time: seconds or e.g. 30min."),
        close_exit: List[str] = typer.Option([], "--close-exit", help="Close an exit (repeatable)."),
        ifc: Optional[str] = typer.Option(None, "--ifc", help="Evacuate a storey of this IFC file instead."),
        storey: Optional[str] = typer.Option(None, "--storey", help="Storey name or index (with --ifc)."),
        anchor: Optional[str] = typer.Option(None, "--anchor", help="With --ifc: place a model without a usable "
                                             "georeference at X,Y[,Z[,ROTATION_DEG]] in the twin CRS."),
        road_reach: float = typer.Option(10.0, "--road-reach", help="Plaza outline within this of a road is an exit "
                                         "(m). Exit names depend on it: a scenario's crowd_closed_exits names are "
                                         "taken as made at 10 m (or at its crowd_closed_exits_road_reach); a run at "
                                         "another reach warns where a name now means another stretch."),
        release_rate: Optional[float] = typer.Option(None, "--release-rate", help="Persons entering per second (a "
                                                     "train unloading) instead of everybody at once."),
        waypoint: List[str] = typer.Option([], "--waypoint", help="NAME=X,Y (a 1 m disc) or NAME=X1,Y1,X2,Y2 (a line), "
                                           "in the twin's CRS; everybody passes them in the order given (repeatable)."),
        seed: int = typer.Option(0, "--seed", help="Random seed of where people stand; the same seed, the same run."),
        flooded_by: Optional[str] = typer.Option(None, "--flooded-by", help="A flood run under the same scenario: "
                                                 "its water deeper than --wading-depth is no floor, exits under it close; "
                                                 "people on flooded ground move onto dry ground, those cut off from "
                                                 "every exit are counted (they need rescue) and the verdict says so."),
        flood_time: Optional[str] = typer.Option(None, "--flood-time", help="With --flooded-by: the flood as it "
                                                 "stands this long after the storm began (e.g. 45min; default its peak)."),
        wading_depth: float = typer.Option(0.5, "--wading-depth", help="Water deeper than this (m) is not walked "
                                           "through (AIDR 2017 hazard class H3: unsafe for children and the elderly)."),
        as_json: bool = JSON_OPT,
        quiet: bool = QUIET_OPT,
    ) -> None:
        """Evacuate a plaza or an IFC storey: time, exit usage, jams, density; saved under scenario + run."""
        import math

        from twin_core.adapters.crowd import plaza_area, run_crowd, storey_area
        from twin_core.errors import ParameterError
        from twin_core.progress import progress_bar
        from twin_core.twin import Twin
        from twin_core.units import as_count

        if (area is None) == (ifc is None):
            raise ParameterError("give --area NAME (a plaza in the twin) or --ifc FILE --storey NAME")
        if agents is None and density is None:
            raise ParameterError("give --agents N or --density PERSONS_PER_M2")
        if agents is not None and density is not None:
            raise ParameterError(f"give one of --agents or --density, not both (got --agents {agents} and "
                                 f"--density {density:g})")
        if release_rate is not None and not (math.isfinite(release_rate) and release_rate > 0):
            raise ParameterError(f"--release-rate is how many persons enter per second (a train unloading): > 0, "
                                 f"got {release_rate:g}; leave it out for everybody at once")
        if density is not None and not (math.isfinite(density) and density > 0):
            raise ParameterError(f"--density must be a finite number of persons per m2 > 0, got {density}")
        if agents is not None:  # before the area is built; run_crowd checks it the same way
            as_count(agents, "--agents", "people", minimum=1)
        if not (math.isfinite(road_reach) and road_reach > 0):
            raise ParameterError(f"--road-reach is how far from a road the plaza's outline is an exit: metres > 0, "
                                 f"got {road_reach}")
        if not (math.isfinite(wading_depth) and wading_depth > 0):
            raise ParameterError(f"--wading-depth is the water depth (m) people do not walk through: > 0, "
                                 f"got {wading_depth}")
        if (storey is not None or anchor is not None) and ifc is None:
            raise ParameterError("--storey and --anchor go with the IFC model given by --ifc; give --ifc FILE, or "
                                 "leave them out for a plaza (--area)")
        from twin_core.cli.bim import _anchor

        placed = _anchor(anchor)  # a malformed --anchor fails before the twin is opened
        with Twin.open(target) as twin:
            if ifc is not None:
                if storey is None:
                    raise ParameterError("--ifc needs --storey (a storey name, or 0 for the lowest)")
                key = int(storey) if storey.lstrip("-").isdigit() else storey
                walkable, info = storey_area(ifc, key, twin_crs=twin.crs, anchor=placed)
                info["ifc"] = ifc
            else:
                walkable, info = plaza_area(twin, area, scenario=scenario, road_reach=road_reach)
            total = agents if agents is not None else max(1, int(density * walkable.polygon.area))
            with progress_bar("crowd", total, quiet=quiet or as_json) as progress:
                out = run_crowd(twin, walkable=walkable, info=info, agents=agents, density=density,
                                scenario=scenario, run=run, model=model, until=until, closed_exits=close_exit,
                                seed=seed, waypoints=_waypoints(waypoint), progress=progress,
                                flooded_by=flooded_by, flood_time=flood_time, wading_depth=wading_depth,
                                release_rate=release_rate)
        s = dict(out.summary)  # --json prints NaN as null (emit)
        s["saved"] = out.saved
        emit(s, as_json, human=_human(s))

    @app.command("crowd-verify")
    def crowd_verify(
        out: str = typer.Option("crowd_verification", "--out", "-o", help="Folder for report.md and the plots."),
        model: List[str] = typer.Option([], "--model", "-m", help="csm or sfm (repeatable; default both)."),
        case: List[str] = typer.Option([], "--case", "-c", help="rimea_1, rimea_4, rimea_6, rimea_12, bottleneck "
                                                                 "(1 m door that is the exit), bottleneck_door_room "
                                                                 "(the door with a room behind it) or "
                                                                 "bottleneck_corridor (1 m x 2.8 m, as measured) "
                                                                 "(repeatable; default all)."),
        seed: int = typer.Option(None, "--seed", help="Run every case on this start placement (default: each "
                                                      "case's own, as docs/crowd_verification.md quotes it)."),
        as_json: bool = JSON_OPT,
        quiet: bool = QUIET_OPT,
    ) -> None:
        """Verify the crowd models on RiMEA 3.0 tests 1, 4, 6, 12, a 1 m door (as the exit, and with a room behind it) and the measured 1 m corridor bottleneck; write a report with plots."""
        from twin_core.crowd_report import write_crowd_verification
        from twin_core.progress import progress_bar

        with progress_bar("verify", None, quiet=quiet or as_json) as progress:
            res = write_crowd_verification(out, models=model or None, cases=case or None, progress=progress, seed=seed)
        rows = [f"  {c['case']:<15} {c['model']}  seed {c['seed']}  {'pass' if c['passed'] else 'FAIL'}  {c['measured']}"
                for c in res["checks"]]
        emit(res, as_json, human="\n".join([f"crowd verification: {res['report']}"] + rows))


def _waypoints(specs: list[str]) -> dict:
    """``NAME=X,Y`` / ``NAME=X1,Y1,X2,Y2`` options as a waypoints dict (in the order given)."""
    import math

    from twin_core.errors import ParameterError

    out: dict = {}
    for spec in specs:
        name, _, coords = spec.partition("=")
        try:
            v = [float(c) for c in coords.split(",")]
        except ValueError:
            v = []
        if not all(math.isfinite(c) for c in v):
            v = []
        if not name or len(v) not in (2, 4) or name in out:
            raise ParameterError(f"--waypoint {spec!r}: write NAME=X,Y or NAME=X1,Y1,X2,Y2 (metres), "
                                 "one distinct name each")
        out[name] = (v[0], v[1]) if len(v) == 2 else [(v[0], v[1]), (v[2], v[3])]
    return out


def _human(s: dict) -> str:
    import math

    t = s.get("evacuation_time_s")
    lines = [
        # a flooded run: "evacuated 450 of 500; 50 cut off by water need rescue", not a plain "evacuated"
        f"crowd run {s['run']} on scenario {s['scenario']}: {s.get('verdict') or s['status']}",
        f"  agents {s['agents']}, evacuated {s['evacuated']}"
        + (f", evacuation time {t:.1f} s" if t is not None and math.isfinite(t) else f", stopped at {s['sim_time_s']:.1f} s"),
    ]
    closed = {str(x) for x in s.get("closed_exits") or ()}
    for e in s["exits"]:  # every exit, the unused ones too: this is where a user finds the names to close
        lines.append(f"  exit {e['exit']}: " + ("closed" if str(e["exit"]) in closed else
                                                 f"{e['agents']} agents") + f", width {e['width_m']:.1f} m")
    if s.get("stair_exits"):
        lines.append(f"  no external door on storey {s.get('storey')!r}: its stairs are the exits "
                     f"({', '.join(s['stair_exits'])})")
    for p in s.get("parts_dropped") or ():
        lines.append(f"  LEFT OUT: {p['m2']:.1f} m2 of floor round ({p['x']:.1f}, {p['y']:.1f}) has no exit; nobody "
                     "placed there")
    if s.get("release_rate_per_s"):
        lines.append(f"  released {s['release_rate_per_s']:g} persons per second")
    if s.get("route"):
        lines.append(f"  route: {' -> '.join(s['route'])} -> exit")
    if s.get("flooded_by"):
        lines.append(f"  flood {s['flooded_by']} ({s['flood_used']}): {s['water_m2']:.0f} m2 under more than "
                     f"{s['wading_depth_m']:g} m of water")
        if s.get("exits_under_water"):
            lines.append(f"  exits under water (closed): {', '.join(s['exits_under_water'])}")
        if s.get("exits_narrowed"):
            lines.append(f"  exits narrowed by water: {', '.join(s['exits_narrowed'])}")
        if s.get("cut_off_persons"):
            lines.append(f"  CUT OFF by water: {s['cut_off_persons']} persons on {s['cut_off_m2']:.0f} m2 with no dry "
                         "way to an exit (not simulated: they need rescue)")
        if s.get("agents_requested") is not None:
            lines.append(f"  placed {s['agents']} of the {s['agents_requested']} persons asked for on the dry ground "
                         f"that reaches an exit (those on flooded ground moved onto it); {s.get('cut_off_persons', 0)} "
                         "cut off")
    for j in s["jams"]:  # a standstill in capitals; a congestion (a dense region, moving) is a plain line
        lines.append(f"  {j}" if str(j).startswith("congestion") else f"  JAM: {j}")
    lines.append(f"  saved: {', '.join(s.get('saved', []))}")
    return "\n".join(lines)
