"""``twin flood``: run a design storm on a twin scenario and store the results."""

from __future__ import annotations

from typing import List

import typer

from twin_core.cli._common import JSON_OPT, QUIET_OPT, STORE_ARG, emit


def register(app: typer.Typer) -> None:
    @app.command("flood")
    def flood(
        ctx: typer.Context,
        target: str = STORE_ARG,
        storm: str = typer.Option("50y", "--storm", help="Return period of the design storm, 1y to 100y (e.g. 5y, "
                                  "50y, 100y): the range the storm formula was fitted to; longer ones are refused. The "
                                  "formula is the classic Chengdu one (Water Supply and Drainage Design Handbook vol. 5, "
                                  "not checked against an online copy; Chengdu's zoned formulas of 2015+ supersede it "
                                  "for design)."),
        duration: str = typer.Option("1h", "--duration", help="Storm duration, e.g. 30min, 1h, 2h (at most 7d)."),
        until: str = typer.Option(None, "--until", help="Simulated time: seconds or e.g. 90min, 3h (default: the "
                                                        "storm duration; longer to see the water drain; at most 7d)."),
        scenario: str = typer.Option(None, "--scenario", help="Scenario to run (default: the base city)."),
        run: str = typer.Option(None, "--run", help="Run id (default: a new time-stamped id)."),
        peak_ratio: float = typer.Option(0.4, "--peak-ratio", help="Chicago hyetograph peak position r (0-1)."),
        buildings: str = typer.Option("block", "--buildings", help="block | raise | none: how buildings enter the grid."),
        roof_runoff: str = typer.Option("adjacent", "--roof-runoff",
                                        help="adjacent | none: the rain on blocked buildings runs off onto the cells "
                                             "along their walls, or is dropped (with --buildings block)."),
        drainage: str = typer.Option("0", "--drainage", help="Sewer capacity as a loss rate, mm/h: a number, or "
                                     "the name of a raster of the twin on the DEM's grid (mm/h per cell; import it "
                                     "with twin import-raster ... --name NAME)."),
        infiltration: str = typer.Option("0", "--infiltration", help="Soil infiltration as a loss rate, mm/h: a "
                                         "number, or the name of a raster of the twin (mm/h per cell)."),
        inflow: List[str] = typer.Option([], "--inflow", help="A point inflow, e.g. the river fed from upstream "
                                         "(repeatable): [NAME@]X,Y=Q for a constant Q m3/s, or [NAME@]X,Y=FILE.csv "
                                         "for a hydrograph (columns time_s, time_min or time_h from the start of "
                                         "the run, and flow_m3_s). X,Y in the twin's CRS (metres, as twin info "
                                         "shows the extent), on an open cell of the DEM."),
        initial_water: bool = typer.Option(True, "--initial-water/--no-initial-water",
                                           help="Start the water layer's rivers and lakes at their normal level "
                                                "(normal_level_m; default), or dry."),
        boundary: str = typer.Option("free", "--boundary", help="free | closed: the city edges."),
        inflow_edge: str = typer.Option("closed", "--inflow-edge",
                                        help="closed | free: with --boundary free, the edge where a river fed by "
                                             "--inflow enters (its cells on the edge within 100 m of the inflow) "
                                             "is closed, so the inflow goes down the river (default), or left free."),
        threshold: float = typer.Option(0.15, "--threshold", help="Depth (m) above which a feature counts as flooded."),
        dtype: str = typer.Option("float64", "--dtype", help="float64 | float32."),
        rain_from_sensors: str = typer.Option(None, "--rain-from-sensors",
                                              help="Run the rain the twin's rain gauges measured over this window "
                                                   "(e.g. 2h) instead of a design storm."),
        rain_until: str = typer.Option(None, "--rain-until", help="End of that window, ISO-8601 with offset "
                                                                  "(default: the gauges' latest reading)."),
        rain_spatial: str = typer.Option("mean", "--rain-spatial", help="mean | nearest: the gauges' mean on the "
                                         "whole city, or each cell its nearest gauge's rain (Thiessen)."),
        rain_gaps: str = typer.Option("error", "--rain-gaps", help="error | dry: a stretch of that window no rain "
                                                                   "gauge covered is refused, or taken as dry."),
        as_json: bool = JSON_OPT,
        quiet: bool = QUIET_OPT,
    ) -> None:
        """Flood a twin with a design storm (Chengdu storm formula, Chicago hyetograph).

        Saves max depth, max velocity, hazard, time of arrival, depth snapshots,
        gauges, the mass balance and exposure tables under the scenario and run.
        """
        from simulation.flood import FloodParameters
        from twin_core.adapters.flood import flood_duration, parse_inflows, run_flood, water_drained_note
        from twin_core.progress import progress_bar
        from twin_core.errors import ParameterError
        from twin_core.twin import Twin

        if rain_from_sensors:  # the gauges' rain replaces the design storm: its options would be ignored
            given = [f"--{n.replace('_', '-')}" for n in ("storm", "duration", "peak_ratio")  # typed, not defaults
                     if getattr(ctx.get_parameter_source(n), "name", "DEFAULT") not in ("DEFAULT", "DEFAULT_MAP")]
            if given:
                raise ParameterError(f"{', '.join(given)} shape{'s' if len(given) == 1 else ''} a design storm; with "
                                     "--rain-from-sensors the rain is what the gauges measured over that window: leave "
                                     f"{'it' if len(given) == 1 else 'them'} out (--until runs on after the rain)")
        if not threshold > 0:  # before FloodParameters, whose message would name wet_threshold
            raise ParameterError(f"--threshold must be > 0 m, got {threshold}; 0.15 m is usual")
        parse_inflows(inflow, what="--inflow")  # a bad spec or hydrograph file fails now, naming the option
        # at once, naming the option (a --duration 99999h ran on for minutes with no word)
        dur = flood_duration(rain_from_sensors if rain_from_sensors else duration,
                             "--rain-from-sensors" if rain_from_sensors else "--duration")
        t_end = flood_duration(until, "--until") if until else dur
        params = FloodParameters(dtype=dtype, snapshot_interval=min(600.0, t_end), gauge_interval=60.0,
                                 wet_threshold=threshold)
        what = f"observed rain {rain_from_sensors}" if rain_from_sensors else f"{storm} {duration}"
        with Twin.open(target) as twin:
            with progress_bar(f"flood {what}", t_end, quiet=quiet or as_json) as progress:
                fr = run_flood(twin, scenario, run, storm=storm, duration=dur, until=t_end, threshold=threshold,
                               peak_ratio=peak_ratio, buildings=buildings, roof_runoff=roof_runoff,
                               drainage_mm_h=drainage, infiltration_mm_h=infiltration,
                               initial_water=initial_water, boundary=boundary, params=params, progress=progress,
                               inflows=inflow or None, inflow_edge=inflow_edge,
                               rain_from_sensors=rain_from_sensors, rain_until=rain_until, rain_gaps=rain_gaps,
                               rain_spatial=rain_spatial)
        s = fr.summary
        drained = water_drained_note(s)
        human = (
            f"run {s['run']} (scenario {s['scenario']}): {s['storm']['total_mm']:.1f} mm in {dur / 60:.0f} min, "
            f"{s['steps']} steps in {s['engine_wall_s']:.1f} s\n"
            f"rain {s['rain_m3'] + s['roof_runoff_m3']:.0f} m3 (off roofs {s['roof_runoff_m3']:.0f} m3, "
            f"dropped {s['rain_on_blocked_m3']:.0f} m3)\n"
            + (f"initial water {s['initial_storage_m3']:.0f} m3 (rivers and lakes at their normal level; not rain; "
               f"highest rise {s['water_bodies']['max_rise_m']:.2f} m)\n" if s.get("initial_storage_m3") else
               "water bodies started dry\n" if s.get("initial_water") is False else "")
            + (f"inflow {s['inflow_m3']:.0f} m3 from " + ", ".join(
                f"{i['name']} at {i['x']:.0f},{i['y']:.0f} ("
                + (f"{i['peak_m3_s']:g} m3/s" if i["constant"] else f"hydrograph, peak {i['peak_m3_s']:g} m3/s")
                + (f", across {i['cells']} cells of the water within {i['spread_m']:.0f} m" if i.get("cells", 1) > 1
                   else "")
                + (f"; the water's {i['closed_edge']} edge closed at its {i['closed_cells']} cells: it enters there"
                   if i.get("closed_edge") else "")
                + ")" for i in s["inflows"]) + "\n" if s.get("inflows") else "")
            + f"out at the edges {s['outflow_m3']:.0f} m3, into the sewers {s['drainage_m3']:.0f} m3, into the soil "
              f"{s['infiltration_m3']:.0f} m3; on the ground at the end {s['storage_m3']:.0f} m3\n"
            + (f"note: {drained}\n" if drained else "")
            + f"max depth on land {s['max_depth_m']:.2f} m; {s['flooded_area_m2'] / 1e4:.2f} ha of land above "
              f"{threshold} m\n"
            f"exposed: {s['exposed_buildings']} buildings, {s['exposed_road_links']} road links, {s['exposed_pois']} POIs\n"
            f"mass balance relative error {s['mass_balance_relative_error']:.1e}"
        )
        emit(s, as_json, human=human)
