"""``twin traffic``: static equilibrium assignment and dynamic mesoscopic runs on a twin scenario."""

from __future__ import annotations

from typing import List, Optional

import typer

from twin_core.cli._common import JSON_OPT, QUIET_OPT, STORE_ARG, emit


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="Traffic: equilibrium assignment (assign) and mesoscopic simulation (simulate).",
                      no_args_is_help=True)

    @sub.command("assign")
    def assign_cmd(
        target: str = STORE_ARG,
        period: str = typer.Option("am", "--period", "-p", help="am | pm | offpeak."),
        scenario: Optional[str] = typer.Option(None, "--scenario", "-s", help="Scenario (default: base)."),
        run: Optional[str] = typer.Option(None, "--run", help="Run id (default: a new one)."),
        method: str = typer.Option("bfw", "--method", help="fw | cfw | bfw (bi-conjugate Frank-Wolfe)."),
        rgap: float = typer.Option(1e-4, "--rgap", help="Stop at this relative gap."),
        max_iter: int = typer.Option(500, "--max-iter", help="Stop after this many Frank-Wolfe iterations if --rgap "
                                                             "is not reached."),
        demand_scale: Optional[float] = typer.Option(
            None, "--demand-scale", help="Multiply the land-use trip rates (default: the scale that gives the base "
            "city the real Chengdu peak's vehicles per km of road; at most 10 times that)."),
        close: List[str] = typer.Option([], "--close", help="Close a link id (repeatable; a two-way road's id closes both directions)."),
        flooded_by: Optional[str] = typer.Option(None, "--flooded-by", help="Close the roads a flood run (same "
                                                 "scenario) put under --impassable-depth of water."),
        impassable_depth: float = typer.Option(0.3, "--impassable-depth", help="Water depth (m) that closes a road "
                                               "(0.3: Pregnolato et al. 2017)."),
        as_json: bool = JSON_OPT,
        quiet: bool = QUIET_OPT,
    ) -> None:
        """User-equilibrium assignment of the period's land-use demand; link flows saved under scenario + run."""
        from twin_core.adapters.traffic import run_assign
        from twin_core.progress import progress_bar
        from twin_core.twin import Twin

        with Twin.open(target) as twin:
            with progress_bar(f"traffic assign {period}", 1.0, quiet=quiet or as_json) as progress:
                tr = run_assign(twin, scenario, run, period=period, method=method, rgap=rgap, max_iter=max_iter,
                                demand_scale=demand_scale, closures=list(close) or None,
                                flooded_by=flooded_by, impassable_depth=impassable_depth, progress=progress)
        s = tr.summary
        if _none_routed(s):
            emit(s, as_json, human=_none_routed(s))
            return
        vc = "-" if s["max_vc"] is None else f"{s['max_vc']:.2f}"
        human = (f"run {s['run']} (scenario {s['scenario']}), {s['period']}: {s['trips']:.0f} trips over "
                 f"{s['zones']} zones; {s['method']} {s['iterations']} iterations, gap {s['rgap']:.1e}\n"
                 f"TSTT {s['tstt_veh_h']:.1f} veh-h, max v/c {vc}, "
                 f"{s['disconnected_trips']:.0f} trips without a path" + _closed_note(s))
        human += _turns_note(s)
        if not s["converged"]:
            human += (f"\nNOT converged: stopped at --max-iter {max_iter} above --rgap {rgap:g}; the flows are not at "
                      "equilibrium (raise --max-iter or loosen --rgap)")
        emit(s, as_json, human=human)

    @sub.command("simulate")
    def simulate_cmd(
        target: str = STORE_ARG,
        period: str = typer.Option("am", "--period", "-p", help="am | pm | offpeak."),
        scenario: Optional[str] = typer.Option(None, "--scenario", "-s", help="Scenario (default: base)."),
        run: Optional[str] = typer.Option(None, "--run", help="Run id (default: a new one)."),
        until: Optional[str] = typer.Option(None, "--until", help="Simulated time: seconds or e.g. 90min, 2h "
                                            "(default: 2x the period)."),
        route_iterations: int = typer.Option(3, "--route-iterations", help="Iterated-departure route choice runs."),
        demand_scale: Optional[float] = typer.Option(
            None, "--demand-scale", help="Multiply the land-use trip rates (default: the scale that gives the base "
            "city the real Chengdu peak's vehicles per km of road; at most 10 times that)."),
        close: List[str] = typer.Option([], "--close", help="Close a link id (repeatable; a two-way road's id closes both directions)."),
        flooded_by: Optional[str] = typer.Option(None, "--flooded-by", help="Close the roads a flood run (same "
                                                 "scenario) put under --impassable-depth of water."),
        impassable_depth: float = typer.Option(0.3, "--impassable-depth", help="Water depth (m) that closes a road "
                                               "(0.3: Pregnolato et al. 2017)."),
        flood_timing: str = typer.Option("timed", "--flood-timing", help="timed: close each flooded road while it "
                                         "is under water; worst: for the whole run."),
        flood_start: str = typer.Option("0", "--flood-start", help="When the storm began, after the period's start "
                                        "(e.g. 15min; --flood-start=-30min for half an hour before it)."),
        reroute: bool = typer.Option(True, "--reroute/--no-reroute", help="A driver who meets a closed road plans "
                                     "again there (round it, or waits when it reopens sooner); --no-reroute: keeps "
                                     "the route planned before setting off."),
        seed: int = typer.Option(0, "--seed", help="Random seed of departure times and trips; the same seed, the "
                                                   "same run."),
        as_json: bool = JSON_OPT,
        quiet: bool = QUIET_OPT,
    ) -> None:
        """Mesoscopic run (queues, spillback, route choice); trips, trajectories, link series saved."""
        from twin_core.adapters.traffic import run_simulate
        from twin_core.progress import progress_bar
        from twin_core.twin import Twin

        with Twin.open(target) as twin:
            with progress_bar(f"traffic simulate {period}", route_iterations, quiet=quiet or as_json) as progress:
                tr = run_simulate(twin, scenario, run, period=period, until=until, route_iterations=route_iterations,
                                  demand_scale=demand_scale, closures=list(close) or None,
                                  flooded_by=flooded_by, impassable_depth=impassable_depth, seed=seed,
                                  flood_timing=flood_timing, flood_start=flood_start, reroute=reroute,
                                  progress=progress)
        s = tr.summary
        if _none_routed(s):
            emit(s, as_json, human=_none_routed(s))
            return
        mean = "-" if s["mean_trip_time_s"] is None else f"{s['mean_trip_time_s']:.0f}"
        human = (f"run {s['run']} (scenario {s['scenario']}), {s['period']}: {s['completed']}/{s['vehicles']} trips "
                 f"completed, mean trip {mean} s, total delay {s['total_delay_veh_s'] / 3600:.1f} "
                 f"veh-h; {s['disconnected_trips']} trips without a path" + _closed_note(s))
        human += _turns_note(s)
        if s["unfinished_trips"]:
            human += (f"\n{s['unfinished_trips']} trips still on the road at {s['sim_time_s']:g} s; counting them up to "
                      f"then, the mean trip is at least {s['mean_trip_time_incl_unfinished_s']:.0f} s")
        if s.get("not_departed_trips"):
            human += (f"\n{s['not_departed_trips']} trips had not set off by {s['sim_time_s']:g} s (the run ends before "
                      "the period's departures do; --until for a longer run)")
        emit(s, as_json, human=human)

    app.add_typer(sub, name="traffic")


def _none_routed(s: dict) -> str:
    """The plain line for a run where no trip has a path (every road to the zones closed), else ``""``."""
    if not s.get("trips") or s.get("disconnected_trips", 0) < s["trips"] - 0.5:
        return ""
    return (f"run {s['run']} (scenario {s['scenario']}), {s['period']}: no trip has a path: all {s['trips']:.0f} "
            f"trips start or end where the closed roads cut them off, so nothing was "
            f"{'assigned' if s['mode'] == 'assign' else 'simulated'} (reopen roads: --close, --flooded-by)"
            + _closed_note(s))


def _turns_note(s: dict) -> str:
    """A line for a twin without turn rules: its routes may turn anywhere, U-turns included."""
    if s.get("turn_rules") is not None:
        return ""
    return ("\nno turn rules in this twin (no table road_turns): routes may turn anywhere at a junction, U-turns "
            "included; importing a SUMO network (twin import TWIN NET.net.xml --class road_links) stores its turns")


def _closed_note(s: dict) -> str:
    note = ""
    if s.get("closed_links"):
        why = (f" (incl. roads flooded in run {s['flooded_by']})" if s.get("flooded_by") and
               s.get("flood_timing", "worst") == "worst" else "")
        note += f"\n{len(s['closed_links'])} links closed{why}"
    if s.get("flood_timing") == "timed" and s.get("flood_closed_links"):
        note += (f"\n{len(s['flood_closed_links'])} links closed while flood run {s['flooded_by']} put them under "
                 f"water; {s.get('rerouted_trips', 0)} trips planned again on the way round a closed road, "
                 f"{s['trips_stranded_by_flood']} met a road closed for good "
                 + ("with no way left round it" if s.get("reroute", True) else "(--no-reroute)")
                 + " and left the network")
    return note
