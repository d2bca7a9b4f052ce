"""Flood adapter: a twin scenario -> :mod:`simulation.flood` inputs -> results in the store.

Inputs read from the twin (as of a scenario): rasters ``dem`` and ``manning``,
the ``buildings`` layer (burned into the grid as blocked cells, or raised
terrain, or ignored, per run), the ``water`` layer (rivers and lakes start at their ``normal_level_m``:
see :func:`water_grid`), and the ``sensors`` layer (``rain_gauge`` and
``river_level`` sensors become gauges); point inflows (a river fed from upstream: a constant flow or a
hydrograph at a place, :func:`parse_inflows`) are given per run. The rain on blocked buildings runs off
their roofs onto the open cells along their walls (``roof_runoff="adjacent"``,
see :func:`roof_outlets`), or is dropped (``"none"``). The rain is a design storm from a
storm-intensity formula and a Chicago hyetograph (Chengdu's by default), or
any :class:`~simulation.flood.Hyetograph`.

Results saved under ``scenario`` + ``run`` (see :func:`cim.results.save_result`):
rasters ``max_depth``, ``max_velocity``, ``hazard``, ``time_of_arrival``;
array ``depth_snapshots`` (k, rows, cols; its times in seconds, grid transform and CRS in the result's meta:
``twin.results(run=RUN, name="depth_snapshots")["meta"].iloc[0]["snapshot_times_s"]``); tables
``gauges`` (one row per gauge and time: ``time_s``, ``depth_m``, ``wse_m``, ``speed_m_s``, ``sensor_id`` ...),
``mass_balance``, ``exposure_buildings``, ``exposure_road_links``, ``exposure_pois``; a ``summary`` dict.
Every duration (``duration``, ``until``, ``snapshot_interval``) takes seconds or a string such as ``"90min"``;
a bare number is seconds.

Examples
--------
>>> parse_duration("2h"), parse_duration("90min"), parse_duration("45m"), parse_duration(600)
(7200.0, 5400.0, 2700.0, 600.0)
>>> parse_return_period("50y")
50.0
"""

from __future__ import annotations

import inspect
import math
import re
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from twin_core.errors import ParameterError, RasterError, TwinWarning, twin_warn
from twin_core.units import as_number, is_bare_number, parse_duration

__all__ = ["FloodRun", "prepare_flood", "run_flood", "exposure_tables", "feature_depths", "roof_outlets",
           "parse_duration", "water_grid", "water_drained_note", "HUGE_INFLOW_M3_S",
           "link_point_depths", "BRIDGE_DECK_ABOVE_BANK_M",
           "rain_from_sensors", "parse_return_period", "flood_duration", "design_storm_years", "MAX_FLOOD_DURATION_S",
           "parse_inflows", "read_hydrograph", "inflow_volume",
           "GAUGE_KINDS", "BUILDING_MODES", "ROOF_RUNOFF_MODES"]

GAUGE_KINDS = ("rain_gauge", "river_level")
#: what a flood run saves (a run id used again loses these first; other engines' results under it stay)
RESULT_NAMES = ("max_depth", "max_velocity", "hazard", "time_of_arrival", "depth_snapshots", "gauges", "mass_balance",
                "exposure_buildings", "exposure_road_links", "exposure_pois", "summary")
ENGINE = "simulation.flood"  # the results' meta "engine"
BUILDING_MODES = ("block", "raise", "none")
#: the grid's edge: water leaves it (free) or is held (closed)
BOUNDARY_MODES = ("free", "closed")
ROOF_RUNOFF_MODES = ("adjacent", "none")
_DEFAULT_MANNING = 0.03  # n where the 'manning' raster has no usable value (s/m^(1/3))
_DEEPEST_THRESHOLD_M = 3.0  # a "flooded" threshold deeper than this is likely centimetres typed as metres
_LOWEST_GROUND_M = -1000.0  # below any dry land (the Dead Sea shore is at -430 m): likely an undeclared nodata
#: a bridge's deck is taken this far above the lower ground of its two banks (where the road leaves the water
#: polygon): a deck sits at least a kerb and a camber above its approaches; taking it low is the cautious side
#: (it is judged flooded sooner). See :func:`link_point_depths`.
BRIDGE_DECK_ABOVE_BANK_M = 0.5
_DEEPEST_WATER_BODY_M = 50.0  # a normal level this far above a water body's ground is likely another datum
#: how a run judges flooding: over land only, the cells outside the 'water' layer's polygons (see run_flood)
FLOOD_EXTENT = "land (cells outside the water layer's polygons)"
#: the longest storm (``duration``) and simulated time (``until``) a flood run takes: 7 days, the longest design
#: storm of Chinese flood practice (1-, 3- and 7-day storms), which also leaves days for the water to drain. The
#: storm formula itself is fitted to minutes and hours. A longer run (99999h) computed for hours, kept a depth
#: snapshot every 10 min in memory, and could not be stopped
MAX_FLOOD_DURATION_S = 7 * 86400.0


def _rate(value, name: str):
    """A loss rate in mm/h: a number (NumPy's too) as a float, or a per-cell grid as given (the engine checks
    its shape), or the name of a raster of the twin (text that is not a number: :func:`_rate_grid` reads it
    once the DEM is known). Text failed as a bare "could not convert string to float" naming no argument."""
    if isinstance(value, str):
        try:
            return float(value.strip())  # "20" from a command line or a form
        except ValueError:
            return value.strip()
    if isinstance(value, (np.ndarray, list, tuple)) and np.ndim(value) > 0:
        a = np.asarray(value)
        if a.dtype.kind not in "iuf":
            raise ParameterError(f"{name} as a grid must hold numbers of mm/h (one per DEM cell), got an array of "
                                 f"{a.dtype}; write e.g. {name}=np.full(twin.raster('dem').shape, 20.0)")
        return a
    return as_number(value, name, "mm/h", example=20, about="a number, or a per-cell grid of the DEM's shape")


def _rate_grid(twin, scenario, value, name: str, dem_r):
    """A loss rate given as a raster name (see :func:`_rate`): the raster as a (ny, nx) float64 grid of mm/h,
    checked to be on the DEM's grid, with no NaN and no negative value; a number or an array is returned as
    given. Returns ``(rate, raster_name or None)``."""
    if not isinstance(value, str):
        return value, None
    names = twin.rasters()
    if value not in names:
        import re

        num = re.match(r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)", value)
        write = f"write {name}={num.group(1)}" if num else f"write e.g. {name}=20"
        raster = "NAME" if num else value
        raise ParameterError(f"{name} must be a number of mm/h or the name of a raster of the twin, got str "
                             f"{value!r}; {write}, or name a raster of the twin (it has {names}), or import a "
                             f"per-cell grid of mm/h first: twin import-raster CITY FILE.tif --name {raster} "
                             "--unit mm/h")
    r = twin.raster(value, scenario)
    unit = getattr(r, "unit", None)
    if unit is not None and str(unit).strip() and str(unit).strip().lower() not in _RATE_UNITS:
        # the DEM (m, ~500) read as 500 mm/h of infiltration, a Manning raster as 0.03 mm/h of drainage
        raise ParameterError(f"raster {value!r} is in {unit!r}, but {name} (CLI --{name.split('_')[0]}) is a loss "
                             "rate in mm/h: name a raster "
                             "of mm/h per cell (import it with twin import-raster CITY FILE.tif --name NAME --unit "
                             "mm/h), or give a number of mm/h")
    if r.shape != dem_r.shape or tuple(r.transform)[:6] != tuple(dem_r.transform)[:6]:
        raise RasterError(f"raster {value!r} ({name}) is on another grid than the DEM ({r.shape} cells, "
                          f"transform {tuple(r.transform)[:6]} vs {dem_r.shape}, {tuple(dem_r.transform)[:6]}); "
                          f"import it again onto the DEM's grid (nearest neighbour): `twin import-raster CITY "
                          f"FILE.tif --name {value} --match-dem`")
    a = np.asarray(r.masked() if hasattr(r, "masked") else r.data, dtype=np.float64)
    bad = ~np.isfinite(a) | (a < 0)
    if bad.any():
        raise ParameterError(f"raster {value!r} ({name}, mm/h) has {int(bad.sum())} cells with nodata or a "
                             "negative rate; every cell needs a rate >= 0 mm/h (0: none): fill the raster")
    return a, value


#: the units a loss-rate raster (drainage, infiltration) may be in; a raster with no unit is taken as mm/h
_RATE_UNITS = {"mm/h", "mm h-1", "mm/hr", "mm h^-1", "mm·h-1", "mm·h⁻¹", "mm h⁻¹", "mm/hour"}


def _loss_info(value, raster=None):
    """What a run's loss rate was, for its summary: ``{"mean_mm_h", "min_mm_h", "max_mm_h"}`` and the raster's
    name for a per-cell grid, None for a single rate."""
    if np.ndim(value) == 0:
        return None
    a = np.asarray(value, dtype=np.float64)
    return {"raster": raster, "mean_mm_h": float(np.nanmean(a)), "min_mm_h": float(np.nanmin(a)),
            "max_mm_h": float(np.nanmax(a))}


def _threshold(value) -> float:
    """The flooded depth in metres, checked: a number > 0 (text named the type, not the value, as wrong)."""
    t = as_number(value, "threshold", "metres", example=0.15,
                  about="the depth above which a feature counts as flooded")
    if not (math.isfinite(t) and t > 0):
        raise ParameterError(f"threshold (the depth above which a feature counts as flooded) must be > 0 m, "
                             f"got {value!r}; 0.15 m is usual")
    return t


#: an inflow hydrograph CSV's time column (its unit in its name: the factor to seconds) and flow column
HYDROGRAPH_TIME_COLUMNS = {"time_s": 1.0, "time_min": 60.0, "time_h": 3600.0}
HYDROGRAPH_FLOW_COLUMN = "flow_m3_s"
_CSV_FORM = ("a CSV whose first line names its columns: one time column, time_s (seconds from the start of the "
             "run) or time_min (minutes) or time_h (hours), and flow_m3_s (m3/s)")
_SPEC_FORM = ("[NAME@]X,Y=Q or [NAME@]X,Y=HYDROGRAPH.csv (X,Y in the twin's CRS, metres; Q a constant flow in "
              "m3/s)")
_INFLOW_KEYS = ("x", "y", "q", "times", "flows", "hydrograph", "name")


def read_hydrograph(path, what: str = "hydrograph") -> tuple[np.ndarray, np.ndarray]:
    """An inflow hydrograph from a CSV file: ``(times_s, flows_m3_s)``, two float64 arrays.

    The first line names the columns: one time column, ``time_s`` (seconds from the start of the run, i.e.
    of the storm), ``time_min`` (minutes) or ``time_h`` (hours), and ``flow_m3_s`` (the discharge, m3/s,
    >= 0); other columns are ignored, blank lines and lines starting with ``#`` skipped. Times must increase
    strictly from 0 or later. The engine interpolates linearly between the rows and holds the first flow
    before the first time and the last flow after the last (end with a row of 0 to stop the inflow).
    ``what`` starts every error message (``"--inflow 'up@...'"``).

    Examples
    --------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "jin.csv")
    >>> _ = open(path, "w").write("time_min,flow_m3_s\\n0,20\\n30,120\\n90,40\\n")
    >>> t, q = read_hydrograph(path)
    >>> t.tolist(), q.tolist()
    ([0.0, 1800.0, 5400.0], [20.0, 120.0, 40.0])
    """
    import csv
    import os

    p = os.fspath(path)
    if not os.path.isfile(p):
        why = "is a folder" if os.path.isdir(p) else "does not exist"
        num = re.match(r"\s*[-+]?(?:\d+\.?\d*|\.\d+)", p)
        hint = (f"; for a constant flow write the bare number of m3/s (e.g. ={num.group(0).strip()})" if num else
                "; or give a constant flow as a number of m3/s")
        raise ParameterError(f"{what}: the hydrograph file {p!r} {why}; give the path of {_CSV_FORM}{hint}")
    try:
        with open(p, newline="", encoding="utf-8-sig") as fh:
            rows = [(i, r) for i, r in enumerate(csv.reader(fh), start=1)
                    if any(c.strip() for c in r) and not r[0].lstrip().startswith("#")]
    except UnicodeDecodeError:
        raise ParameterError(f"{what}: {p} is not a text (UTF-8) CSV file; give {_CSV_FORM}") from None
    except (OSError, csv.Error) as exc:
        raise ParameterError(f"{what}: cannot read {p} ({exc}); give {_CSV_FORM}") from None
    if not rows:
        raise ParameterError(f"{what}: {p} is empty; write {_CSV_FORM}, then one row per time")
    header = [c.strip().lower() for c in rows[0][1]]
    tcols = [c for c in header if c in HYDROGRAPH_TIME_COLUMNS]
    if len(tcols) != 1 or header.count(HYDROGRAPH_FLOW_COLUMN) != 1:
        need = ("one time column (time_s, time_min or time_h), not " + " and ".join(tcols) if len(tcols) > 1 else
                "a time column (time_s, time_min or time_h)" if not tcols else
                f"the flow column {HYDROGRAPH_FLOW_COLUMN} (m3/s)" + (" once" if HYDROGRAPH_FLOW_COLUMN in header
                                                                      else ""))
        sep = ("; its columns look separated by ';' or tabs: separate them by commas"
               if len(header) == 1 and any(ch in header[0] for ch in ";\t") else "")
        raise ParameterError(f"{what}: {p} has the columns {header} on its first line{sep}; it needs {need}. Write "
                             f"{_CSV_FORM}")
    tcol = tcols[0]
    ti, fi = header.index(tcol), header.index(HYDROGRAPH_FLOW_COLUMN)
    if len(rows) < 2:
        raise ParameterError(f"{what}: {p} has its header but no rows; add one row per time ({tcol}, "
                             f"{HYDROGRAPH_FLOW_COLUMN})")
    times, flows = [], []
    for line, r in rows[1:]:
        vals = []
        for col, i in ((tcol, ti), (HYDROGRAPH_FLOW_COLUMN, fi)):
            cell = r[i].strip() if i < len(r) else ""
            try:
                v = float(cell)
            except ValueError:
                v = math.nan
            if not math.isfinite(v):
                raise ParameterError(f"{what}: {p} line {line}: {col} " + (f"{cell!r} is not a number" if cell else
                                     "is empty") + "; every row needs a number in both columns")
            vals.append(v)
        times.append(vals[0] * HYDROGRAPH_TIME_COLUMNS[tcol])
        if vals[0] < 0:
            raise ParameterError(f"{what}: {p} line {line}: {tcol} {r[ti].strip()} is before the start of the run; "
                                 "times count from the start of the run (0: when the storm starts)")
        if len(times) > 1 and times[-1] <= times[-2]:
            raise ParameterError(f"{what}: {p} line {line}: {tcol} {r[ti].strip()} is not after the row before's; "
                                 "times must increase strictly, one row per time")
        if vals[1] < 0:
            raise ParameterError(f"{what}: {p} line {line}: {HYDROGRAPH_FLOW_COLUMN} {r[fi].strip()} is negative; "
                                 "an inflow brings water (>= 0 m3/s): model losses with drainage= or "
                                 "infiltration= instead")
        flows.append(vals[1])
    return np.asarray(times, dtype=np.float64), np.asarray(flows, dtype=np.float64)


def _inflow_spec(spec: str, name: str, what: str):
    """``[NAME@]X,Y=Q`` or ``[NAME@]X,Y=FILE.csv`` as ``(Inflow at x/y, source)``."""
    from simulation.flood import Inflow

    left, eq, value = spec.partition("=")
    given, at, xy = left.rpartition("@")
    parts = xy.split(",")
    value = value.strip()
    if not eq or len(parts) != 2 or not value or (at and not given.strip()):
        raise ParameterError(f"{what}: cannot read it; write {_SPEC_FORM}, e.g. up@409250,3391330=80 or "
                             "409250,3391330=jin_hydrograph.csv")
    try:
        x, y = (float(v) for v in parts)
    except ValueError:
        x = y = math.nan
    if not (math.isfinite(x) and math.isfinite(y)):
        raise ParameterError(f"{what}: the place {xy.strip()!r} is not two numbers X,Y; write {_SPEC_FORM}")
    name = given.strip() or name
    try:
        q = float(value)
    except ValueError:
        t, f = read_hydrograph(value, what)
        import os

        return Inflow(t, f, x=x, y=y, name=name), os.path.abspath(value)
    if not (math.isfinite(q) and q >= 0):
        raise ParameterError(f"{what}: the flow {value} m3/s must be a finite number >= 0; an inflow brings water "
                             "(model losses with drainage= or infiltration= instead)")
    return Inflow([0.0], [q], x=x, y=y, name=name), "constant"


def parse_inflows(value, what: str = "inflows") -> list:
    """Point inflows (rivers fed from upstream, outfalls) as ``[(Inflow, source)]``: engine
    :class:`~simulation.flood.Inflow` objects, named, and where each flow came from (``"constant"``, the
    hydrograph CSV's absolute path, ``"given"`` for times/flows, ``"Inflow"`` for an engine ``Inflow``, which
    enters at its one cell; the others in a water body enter across it: :func:`_inflow_cells`). The place is checked
    against the DEM later, in :func:`prepare_flood`.

    ``value`` is one inflow or a list of them, each one of:

    - a dict ``{"x": X, "y": Y, "q": Q}`` (a constant flow of Q m3/s), ``{"x", "y", "times", "flows"}``
      (a hydrograph: times in s from the start of the run, flows in m3/s) or ``{"x", "y", "hydrograph":
      "file.csv"}`` (:func:`read_hydrograph`), with an optional ``"name"``;
    - text as the CLI takes it: ``"[NAME@]X,Y=Q"`` or ``"[NAME@]X,Y=file.csv"``;
    - a :class:`simulation.flood.Inflow` (at ``row``/``col`` or ``x``/``y``).

    X, Y are in the twin's CRS, in metres (not longitude/latitude). Unnamed inflows are ``inflow1``,
    ``inflow2`` ... in the order given; names must differ. ``what`` starts the error messages.

    Examples
    --------
    >>> [(i.name, i.x, i.flows.tolist(), src) for i, src in parse_inflows("up@409250,3391330=80")]
    [('up', 409250.0, [80.0], 'constant')]
    >>> parse_inflows([{"x": 409250, "y": 3391330, "times": [0, 3600], "flows": [20, 120]}])[0][0].name
    'inflow1'
    """
    from simulation.flood import Inflow

    if value is None:
        return []
    if isinstance(value, (str, dict, Inflow)):
        value = [value]
    try:
        items = list(value)
    except TypeError:
        raise ParameterError(f"{what} must be a list of inflows (dicts {{'x', 'y', 'q'}} or {{'x', 'y', "
                             f"'times', 'flows'}}, texts '{_SPEC_FORM}', or simulation.flood.Inflow), got "
                             f"{type(value).__name__}") from None
    out = []
    for k, item in enumerate(items):
        default = f"inflow{k + 1}"
        label = f"{what} {item!r}" if isinstance(item, str) else f"{what}[{k}]"
        if isinstance(item, str):
            inf, source = _inflow_spec(item, default, label)
        elif isinstance(item, Inflow):
            inf = Inflow(item.times, item.flows, row=item.row, col=item.col, x=item.x, y=item.y,
                         name=item.name or default)
            source = "Inflow"  # the engine's own: a point, entered at its one cell as given
        elif isinstance(item, dict):
            unknown = sorted(set(map(str, item)) - set(_INFLOW_KEYS))
            if unknown:
                raise ParameterError(f"{label} has the keys {unknown}, which an inflow does not take; it takes "
                                     f"{list(_INFLOW_KEYS)}: x, y (the twin's CRS, m) and q (m3/s), or times (s) "
                                     "and flows (m3/s), or hydrograph (a CSV file)")
            if "x" not in item or "y" not in item:
                raise ParameterError(f"{label} needs x and y: the place in the twin's CRS (metres)")
            x = as_number(item["x"], f"{label} x", "metres in the twin's CRS", example=409250)
            y = as_number(item["y"], f"{label} y", "metres in the twin's CRS", example=3391330)
            name = item.get("name") or default
            if not isinstance(name, str):
                raise ParameterError(f"{label} name must be text, got {type(name).__name__}")
            forms = [f for f in ("q", "times", "hydrograph") if f in item]
            if forms == ["times"] and "flows" in item:
                inf, source = Inflow(item["times"], item["flows"], x=x, y=y, name=name), "given"
            elif forms == ["q"] and "flows" not in item:
                q = as_number(item["q"], f"{label} q", "m3/s", example=80)
                if not (math.isfinite(q) and q >= 0):
                    raise ParameterError(f"{label} q must be a finite flow >= 0 m3/s, got {item['q']!r}; an inflow "
                                         "brings water (model losses with drainage= or infiltration= instead)")
                inf, source = Inflow([0.0], [q], x=x, y=y, name=name), "constant"
            elif forms == ["hydrograph"] and "flows" not in item:
                import os

                t, f = read_hydrograph(item["hydrograph"], label)
                inf, source = Inflow(t, f, x=x, y=y, name=name), os.path.abspath(os.fspath(item["hydrograph"]))
            else:
                raise ParameterError(f"{label} needs its flow as exactly one of: q (a constant m3/s), times and "
                                     "flows (s, m3/s), or hydrograph (a CSV file)"
                                     + (f"; it gives {' and '.join(forms)}" if len(forms) > 1 else ""))
        else:
            raise ParameterError(f"{label} is a {type(item).__name__}; give a dict {{'x', 'y', 'q'}} or {{'x', "
                                 f"'y', 'times', 'flows'}}, a text '{_SPEC_FORM}' or a simulation.flood.Inflow")
        out.append((inf, source))
    names = [inf.name for inf, _ in out]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ParameterError(f"{what}: the names {twice} are given to more than one inflow; give each its own "
                             "(NAME@X,Y=...; name=)")
    return out


def _degrees_hint(x: float, y: float, crs, dem_bounds) -> str:
    """:func:`~twin_core.adapters.crowd._lonlat_hint` (longitude or latitude first) for an inflow place ``(x, y)``
    off the DEM, with the reading that lands nearer the DEM; empty where the numbers are plausibly metres: the
    place is within the DEM's own size of it (a local CRS with small numbers)."""
    from twin_core.adapters.crowd import _lonlat_hint

    x0, y0, x1, y1 = dem_bounds
    given = math.hypot(max(x0 - x, 0.0, x - x1), max(y0 - y, 0.0, y - y1))
    if not math.isfinite(given) or given <= max(x1 - x0, y1 - y0):
        return ""
    return _lonlat_hint(x, y, crs, near=dem_bounds, near_name="the DEM")


def _coord(v: float) -> str:
    """A coordinate as given: metres to 0.1 m, a small number (likely degrees) to 5 decimals (about 1 m)."""
    return f"{v:.1f}" if abs(v) >= 1000 else f"{v:.5f}"


#: an inflow peak above this (m3/s) is warned about: more than the great floods of the Yangtze at Yichang (about
#: 70,000 m3/s in 1981, 66,800 in 1954), China's largest river; a city's river carries a small part of that
HUGE_INFLOW_M3_S = 50_000.0


def _place_inflows(parsed, transform, blocked, holes, crs, water_mask, bodies=None):
    """The inflows of :func:`parse_inflows` on the DEM's grid: ``(inflows at row/col, records for the
    summary)``; a place off the DEM or on a cell that carries no water is refused, saying where to put it.
    ``bodies``: the open water cells labelled by water body (:func:`_water_bodies`), None where there is none."""
    from simulation.flood import Inflow

    ny, nx = blocked.shape
    tr = transform
    x0, x1 = sorted((tr.c, tr.c + tr.a * nx))
    y0, y1 = sorted((tr.f, tr.f + tr.e * ny))
    models, records = [], []
    for inf, source in parsed:
        if inf.row is None:
            x, y = float(inf.x), float(inf.y)
            c, r = int(math.floor((x - tr.c) / tr.a)), int(math.floor((y - tr.f) / tr.e))
            at = f"({_coord(x)}, {_coord(y)})"  # degrees typed for metres: 104.0563, not 104.1
        else:
            r, c = int(inf.row), int(inf.col)
            x, y = tr.c + tr.a * (c + 0.5), tr.f + tr.e * (r + 0.5)
            at = f"row {r}, col {c}"
        if not (0 <= r < ny and 0 <= c < nx):
            hint = _degrees_hint(x, y, crs, (x0, y0, x1, y1)) if inf.row is None else ""
            raise ParameterError(f"inflow {inf.name!r} at {at} is off the DEM, which covers x {x0:.0f} to {x1:.0f}, "
                                 f"y {y0:.0f} to {y1:.0f} in the twin's CRS {crs} (metres, {ny} x {nx} cells){hint}; "
                                 + ("give it in metres, inside the DEM" if hint else
                                    "give a point inside it, e.g. in the river where it enters the city"))
        if blocked[r, c]:
            from scipy import ndimage

            _, (ir, ic) = ndimage.distance_transform_edt(blocked, return_indices=True)
            ox, oy = tr.c + tr.a * (ic[r, c] + 0.5), tr.f + tr.e * (ir[r, c] + 0.5)
            on = ("a cell with no DEM value (nodata)" if holes[r, c] else
                  "a building (a blocked cell: buildings='block', CLI --buildings block)")
            raise ParameterError(f"inflow {inf.name!r} at {at} falls on {on}, which carries no water; move it onto "
                                 f"an open cell, e.g. the nearest one, centred at ({ox:.1f}, {oy:.1f}), or into the "
                                 "river (the water layer)")
        cells = np.array([[r, c]]) if source == "Inflow" else _inflow_cells(bodies, r, c, abs(tr.a))
        share = np.asarray(inf.flows, dtype=np.float64) / len(cells)
        models += [Inflow(inf.times, share, row=int(rr), col=int(cc), name=inf.name) for rr, cc in cells]
        constant = bool(np.all(inf.flows == inf.flows[0]))
        records.append({"name": inf.name, "x": x, "y": y, "row": r, "col": c, "cells": len(cells),
                        "closed_edge": None, "closed_cells": 0,  # see _close_inflow_edges
                        "spread_m": float(np.max(np.hypot(cells[:, 0] - r, cells[:, 1] - c)) * abs(tr.a)),
                        "in_water": bool(water_mask[r, c]) if water_mask is not None else False,
                        "source": source, "constant": constant, "peak_m3_s": float(inf.flows.max()),
                        "times_s": [float(v) for v in inf.times], "flows_m3_s": [float(v) for v in inf.flows]})
    return models, records


def _water_bodies(water_mask, blocked):
    """The open cells of the water layer labelled by connected water body (0: not water), or None without any."""
    if water_mask is None or not water_mask.any():
        return None
    from scipy import ndimage

    return ndimage.label(water_mask & ~blocked)[0]


def _inflow_cells(bodies, r: int, c: int, cell: float) -> np.ndarray:
    """The cells an inflow at ``(r, c)`` enters, ``(n, 2)`` rows and columns: in a water body, its open water
    cells within the channel's half-width of the point (the largest distance to a bank among the body's cells
    within 50 m), so a river's flow enters across its width as a flow boundary across the channel does
    (HEC-RAS's flow hydrograph line), not as a mound on one cell (80 m3/s into one 5 m cell of the sample
    river rose 2.2 m there); elsewhere the one cell."""
    one = np.array([[r, c]])
    if bodies is None or not bodies[r, c]:
        return one
    from scipy import ndimage

    body = bodies == bodies[r, c]
    win = max(1, int(round(50.0 / cell)))
    r0, r1, c0, c1 = max(0, r - win), r + win + 1, max(0, c - win), c + win + 1
    sub = body[r0:r1, c0:c1]
    half = float(ndimage.distance_transform_edt(np.pad(sub, 1))[1:-1, 1:-1].max())  # in cells, to a bank
    rr, cc = np.nonzero(sub)
    rr, cc = rr + r0, cc + c0
    near = np.hypot(rr - r, cc - c) <= max(half, 1.0)
    return np.column_stack([rr[near], cc[near]]) if near.any() else one


#: an inflow in a water body this near (m) the edge where the body leaves the grid is the river's entry there
INFLOW_EDGE_REACH_M = 100.0


def _close_inflow_edges(bc, records, bodies, cell: float) -> None:
    """Close the grid edge where a river enters at its inflow (``prepare_flood``'s ``inflow_edge="closed"``): for
    each inflow record in a water body, the body's cells on the edge nearest the inflow, if within
    :data:`INFLOW_EDGE_REACH_M`; the record gets ``closed_edge`` and ``closed_cells`` (None, 0 otherwise)."""
    for rec in records:
        rec["closed_edge"], rec["closed_cells"] = None, 0
        r, c = rec["row"], rec["col"]
        if bodies is None or not bodies[r, c] or rec.get("source") == "Inflow":
            continue
        body = bodies == bodies[r, c]
        ny, nx = body.shape
        best = None
        for edge, line, dist in (("north", body[0, :], r), ("south", body[-1, :], ny - 1 - r),
                                 ("west", body[:, 0], c), ("east", body[:, -1], nx - 1 - c)):
            idx = np.nonzero(line)[0]
            if len(idx) and (best is None or dist < best[0]):
                best = (dist, edge, idx)
        if best is None or (best[0] + 0.5) * cell > INFLOW_EDGE_REACH_M:
            continue
        _, edge, idx = best
        bc.set(edge, "closed", cells=idx)
        rec["closed_edge"], rec["closed_cells"] = edge, int(len(idx))


def inflow_volume(times, flows, t_end: float) -> float:
    """The volume (m3) a hydrograph brings from 0 to ``t_end`` s, as the engine applies it: linear between the
    samples, the first and last flows held outside them.

    >>> inflow_volume([0.0], [50.0], 600.0), inflow_volume([0, 600], [0, 100], 1200.0)
    (30000.0, 90000.0)
    """
    t = np.asarray(times, dtype=np.float64)
    f = np.asarray(flows, dtype=np.float64)
    at = np.unique(np.concatenate([[0.0, float(t_end)], t[(t > 0) & (t < t_end)]]))
    q = np.interp(at, t, f)
    return float(np.sum(0.5 * (q[1:] + q[:-1]) * np.diff(at)))


def flood_duration(value, what: str = "duration") -> float:
    """Seconds of a flood run's ``duration`` or ``until`` (:func:`parse_duration`), refused past
    :data:`MAX_FLOOD_DURATION_S` (7 days) with a clear error.

    >>> flood_duration("2h"), flood_duration("7d")
    (7200.0, 604800.0)
    >>> try:
    ...     flood_duration("99999h")
    ... except ValueError as exc:
    ...     print(str(exc).split(" (")[0])
    duration='99999h' is 4167 days; a flood run takes at most 7 days
    """
    v = parse_duration(value, what)
    if v > MAX_FLOOD_DURATION_S:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "..."
        raise ParameterError(f"{what}={shown} is {v / 86400:.4g} days; a flood run takes at most "
                             f"{MAX_FLOOD_DURATION_S / 86400:g} days (7d, 168h), the longest design storm of flood "
                             "practice with days to drain: give a shorter one (design storms last minutes to hours)")
    return v


def design_storm_years(value, formula=None) -> float:
    """The return period of ``value`` (:func:`parse_return_period`), checked against the range ``formula``
    (default :data:`simulation.flood.CHENGDU_STORM`) was fitted to, as the run itself checks it.

    >>> design_storm_years("50y")
    50.0
    >>> try:
    ...     design_storm_years("500y")
    ... except ValueError as exc:
    ...     print(str(exc).split(" (")[0])
    return period 500 years is outside the storm formula's range
    """
    from simulation.flood import CHENGDU_STORM

    P = parse_return_period(value)
    (formula or CHENGDU_STORM).intensity_mm_min(P, 60.0)  # raises for a period outside the formula's range
    return P


def parse_return_period(value) -> float:
    """Years from ``50``, ``"50"``, ``"50y"``, ``"50yr"``."""
    m = re.match(r"^\s*([0-9]*\.?[0-9]+)\s*(y|yr|a|year|years)?\s*$", str(value), re.I)
    if not m:
        raise ParameterError(f"cannot read the return period {value!r}; write e.g. '50y' or 50")
    p = float(m.group(1))
    if p < 1:
        raise ParameterError(f"the return period must be >= 1 year, got {value!r}")
    return p


@dataclass
class FloodSetup:
    """Engine inputs built from a twin (kept for inspection and re-use)."""

    model: object
    transform: object
    crs: str
    blocked: np.ndarray
    gauges: pd.DataFrame
    rain_total_mm: float
    storm: dict
    roof_runoff: object = None  # the RoofRunoff given to the model (None: rain on blocked cells dropped)
    water_mask: np.ndarray | None = None  # cells inside the 'water' layer's polygons (None: no water layer)
    initial_depth: np.ndarray | None = None  # the water at the start (m): water bodies at their normal level
    ground: np.ndarray | None = None  # the DEM (m, NaN: nodata), before buildings are raised on it
    water: dict = field(default_factory=dict)  # what water_grid found (bodies, cells, those without a level)
    losses: dict = field(default_factory=dict)  # per-cell drainage / infiltration: their raster, mean, range
    inflows: list = field(default_factory=list)  # the point inflows: name, place, source, hydrograph (dicts)


@dataclass
class FloodRun:
    """What :func:`run_flood` returns: the engine result, exposure tables and where they were saved.

    ``summary`` is a dict (the keys every engine's run has, and the flood's: ``max_depth_m``,
    ``flooded_area_m2``, the volumes ...); ``result`` the :class:`~simulation.flood.FloodResult` (arrays
    ``max_depth``, ``max_velocity``, ``snapshots`` with ``snapshot_times``, the ``gauges`` table ...);
    ``exposure`` the tables of flooded buildings, road links and POIs; ``setup`` the engine inputs.
    """

    scenario: str
    run: str
    result: object
    exposure: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    setup: FloodSetup | None = None

    def __repr__(self) -> str:  # the dataclass repr printed every array of the result
        from twin_core._display import run_repr

        return run_repr(self, ("sim_time_s", "max_depth_m", "flooded_area_m2", "exposed_buildings",
                               "exposed_road_links"))

    def _repr_html_(self) -> str:
        from twin_core._display import run_repr_html

        return run_repr_html(self, saved="save_wall_s" in self.summary)


def _rasterize_buildings(buildings, shape, transform) -> np.ndarray:
    from rasterio import features

    geoms = [g for g in buildings.geometry if g is not None and not g.is_empty]
    if not geoms:
        return np.zeros(shape, dtype=bool)
    return features.rasterize(((g, 1) for g in geoms), out_shape=shape, transform=transform, fill=0,
                              dtype="uint8").astype(bool)


def roof_outlets(roofs, open_cells):
    """Route each roof's rain to the open cells along its walls (downpipes); a pure array function.

    Roofs are the 4-connected groups of ``roofs`` cells (``scipy.ndimage.label``:
    buildings that share a wall drain as one block). A roof's rain is shared
    equally by the open cells that share an edge with one of its cells. A roof
    that touches no open cell (walled in by nodata, or filling the grid) drains
    to the nearest open cell of each of its cells instead.

    Parameters
    ----------
    roofs : (ny, nx) bool array
        Roof cells (blocked building cells).
    open_cells : (ny, nx) bool array
        Cells that carry water (not ``roofs``).

    Returns
    -------
    RoofRunoff, or None when there is no roof (or no open cell)

    Examples
    --------
    >>> roofs = np.zeros((4, 5), dtype=bool)
    >>> roofs[1:3, 1:3] = True
    >>> rr = roof_outlets(roofs, ~roofs)
    >>> rr.n_roofs, rr.outlets.shape[1]   # a 2 x 2 roof, 8 cells along its walls
    (1, 8)
    """
    from scipy import ndimage

    from simulation.flood import RoofRunoff

    roofs = np.asarray(roofs, dtype=bool)
    open_cells = np.asarray(open_cells, dtype=bool)
    if roofs.shape != open_cells.shape or roofs.ndim != 2:
        raise RasterError(f"roofs {roofs.shape} and open_cells {open_cells.shape} must be 2D grids of one shape")
    if np.any(roofs & open_cells):
        raise ParameterError("a roof cell cannot be open: roof cells carry no water (they are blocked)")
    if not roofs.any() or not open_cells.any():
        return None
    ny, nx = roofs.shape
    four = ndimage.generate_binary_structure(2, 1)
    lab, n = ndimage.label(roofs, structure=four)
    # the roof label of each cell's north, south, west and east neighbour (0: none, or off the grid)
    pad = np.pad(lab, 1)
    nb = np.stack([pad[:-2, 1:-1], pad[2:, 1:-1], pad[1:-1, :-2], pad[1:-1, 2:]])
    cell = np.broadcast_to(np.arange(ny * nx).reshape(ny, nx), nb.shape)
    use = (nb > 0) & open_cells  # an open cell on the wall of a roof
    key = np.unique(nb[use].astype(np.int64) * (ny * nx) + cell[use])  # one pair per (roof, cell)
    pairs = np.stack([key // (ny * nx), key % (ny * nx)])
    share = np.ones(pairs.shape[1])
    walled = np.setdiff1d(np.arange(1, n + 1), pairs[0])
    if walled.size:  # no open cell along its walls: each roof cell drains to its nearest open cell
        _, (ir, ic) = ndimage.distance_transform_edt(~open_cells, return_indices=True)
        inner = np.isin(lab, walled)
        key = lab[inner].astype(np.int64) * (ny * nx) + (ir[inner] * nx + ic[inner])
        key, count = np.unique(key, return_counts=True)
        pairs = np.concatenate([pairs, np.stack([key // (ny * nx), key % (ny * nx)])], axis=1)
        share = np.concatenate([share, count.astype(np.float64)])
    return RoofRunoff(lab, pairs, share)


def _building_heights(buildings, shape, transform) -> np.ndarray:
    from rasterio import features

    h = buildings["height_m"].fillna(10.0).to_numpy(dtype=float) if "height_m" in buildings else np.full(len(buildings), 10.0)
    pairs = [(g, float(v)) for g, v in zip(buildings.geometry, h) if g is not None and not g.is_empty]
    if not pairs:
        return np.zeros(shape)
    return features.rasterize(pairs, out_shape=shape, transform=transform, fill=0.0, dtype="float64")


def water_grid(water, shape, transform, ground):
    """The ``water`` layer on the DEM's grid: which cells are water bodies, and the water in them at their
    normal level; a pure function of the layer and the grid.

    A cell belongs to a water body when its centre is inside one of the layer's polygons. Its initial depth
    is ``normal_level_m - ground`` where that is positive (a bed above the level, e.g. the upstream end of a
    sloping river given one level, starts dry); a water body without a level (NaN) starts dry.

    Parameters
    ----------
    water : GeoDataFrame or None
        The ``water`` layer (``water_id``, ``normal_level_m`` in metres, polygons).
    shape, transform : the DEM's grid
    ground : (ny, nx) float array, m (NaN: nodata, starts dry)

    Returns
    -------
    (mask, depth, info): ``mask`` (ny, nx) bool, ``depth`` (ny, nx) float64 m, ``info`` a dict
    (``water_bodies``, ``cells``, ``wet_cells``, ``without_level``: the ids of those with no level).

    Examples
    --------
    >>> import geopandas as gpd
    >>> from affine import Affine
    >>> from shapely import box
    >>> w = gpd.GeoDataFrame({"water_id": ["W1"], "normal_level_m": [10.0]}, geometry=[box(0, 0, 2, 4)])
    >>> ground = np.array([[9.0, 9.5, 12.0], [8.0, 10.5, 12.0]])
    >>> mask, depth, info = water_grid(w, ground.shape, Affine(1, 0, 0, 0, -2, 4), ground)
    >>> depth.tolist(), info["wet_cells"]
    ([[1.0, 0.5, 0.0], [2.0, 0.0, 0.0]], 3)
    """
    from rasterio import features

    mask = np.zeros(shape, dtype=bool)
    depth = np.zeros(shape, dtype=np.float64)
    info = {"water_bodies": 0, "cells": 0, "wet_cells": 0, "without_level": []}
    if water is None or not len(water):
        return mask, depth, info
    geoms = [(g, i + 1) for i, g in enumerate(water.geometry) if g is not None and not g.is_empty]
    if not geoms:
        return mask, depth, info
    which = features.rasterize(geoms, out_shape=shape, transform=transform, fill=0, dtype="int32")
    mask = which > 0
    if "normal_level_m" in water:
        levels = pd.to_numeric(water["normal_level_m"], errors="coerce").to_numpy(dtype=np.float64)
    else:
        levels = np.full(len(water), np.nan)
    level = np.concatenate([[np.nan], levels])[which]  # NaN outside the polygons
    ground = np.asarray(ground, dtype=np.float64)
    ok = mask & np.isfinite(level) & np.isfinite(ground)
    depth[ok] = np.maximum(level[ok] - ground[ok], 0.0)
    ids = water["water_id"].astype(str).tolist() if "water_id" in water else [str(i) for i in water.index]
    info.update(water_bodies=len(geoms), cells=int(mask.sum()), wet_cells=int((depth > 0).sum()),
                without_level=[ids[i - 1] for _, i in geoms if not np.isfinite(levels[i - 1])])
    return mask, depth, info


def prepare_flood(twin, scenario: str | None = None, *, storm="50y", duration="1h", rain=None, formula=None,
                  peak_ratio: float = 0.4, storm_step="5min", buildings: str = "block", roof_runoff: str = "adjacent",
                  drainage_mm_h=0.0, infiltration_mm_h: float = 0.0, boundary: str = "free", initial_water: bool = True,
                  inflows=None, inflow_edge: str = "closed", params=None) -> FloodSetup:
    """Build a :class:`~simulation.flood.FloodModel` from a twin scenario.

    Parameters
    ----------
    storm : return period ("50y" or years) of the design storm (ignored when ``rain`` is given)
    duration : storm duration ("1h", seconds ...)
    rain : a Hyetograph to use instead of the design storm
    formula : StormFormula (default :data:`simulation.flood.CHENGDU_STORM`)
    buildings : "block" (cells under footprints carry no water), "raise" (footprints
        raised by the building height) or "none"
    roof_runoff : where the rain on blocked buildings goes: "adjacent" (default: each
        roof's rain runs off onto the open cells along its walls in equal parts, as
        from downpipes; see :func:`roof_outlets`) or "none" (dropped, reported as
        ``rain_on_blocked`` in the mass balance). Only for ``buildings="block"``: with
        "raise" and "none" the rain falls on the building cells, which carry water.
        Nodata cells are no roofs: their rain is dropped either way.
    drainage_mm_h : sewer capacity as a loss rate (mm/h), a number, a per-cell grid of the DEM's shape, or the
        name of a raster of the twin on the DEM's grid (mm/h per cell, e.g. sewers blocked in one district)
    infiltration_mm_h : soil infiltration as a loss rate (mm/h), a number or a per-cell grid. Neither loss
        applies inside the ``water`` layer's polygons (no sewer inlet, no dry soil under a river)
    boundary : "free" (water leaves the city at the edges) or "closed"
    initial_water : True (default): the water bodies of the ``water`` layer start at their ``normal_level_m``
        (:func:`water_grid`; the model's ``initial_depth``, counted in the mass balance as ``initial_storage``,
        not as rain); False: they start dry and fill only from the rain
    inflows : point inflows, e.g. the river fed from upstream: a list of dicts ``{"x": X, "y": Y, "q": Q}``
        (a constant Q m3/s), ``{"x", "y", "times", "flows"}`` (a hydrograph, s from the start of the run and
        m3/s), ``{"x", "y", "hydrograph": "file.csv"}`` (:func:`read_hydrograph`), each with an optional
        ``"name"``; texts ``"[NAME@]X,Y=Q"`` / ``"[NAME@]X,Y=file.csv"`` (as ``twin flood --inflow`` takes them);
        or :class:`simulation.flood.Inflow` objects (see :func:`parse_inflows`). X, Y in the twin's CRS
        (metres), on an open cell of the DEM. Their volume is ``inflow`` in the mass balance
    inflow_edge : "closed" (default) or "free": with ``boundary="free"``, an inflow in a water body within
        :data:`INFLOW_EDGE_REACH_M` of the edge where that body leaves the grid is the river's entry, and the
        body's cells on that edge are closed (the river comes in there and does not flow back out; free, more
        than half of 80 m3/s at the sample river's entry left over its upstream edge). "free" keeps every
        edge free. The summary's ``inflows`` say which edge and how many cells were closed
    """
    from simulation.flood import (CHENGDU_STORM, BoundaryConditions, FloodModel, FloodParameters, Gauge, Hyetograph,
                                  RainSeries)

    # numbers as numbers, checked before any raster is read (text failed deep in the engine, unnamed)
    peak_ratio = as_number(peak_ratio, "peak_ratio", None, example=0.4,
                           about="where the storm peaks, a share of its duration between 0 and 1")
    drainage_mm_h = _rate(drainage_mm_h, "drainage_mm_h")
    infiltration_mm_h = _rate(infiltration_mm_h, "infiltration_mm_h")
    inflows = parse_inflows(inflows)  # the specs and hydrograph files read before any raster
    for inf, _ in inflows:
        peak = float(np.max(inf.flows)) if len(inf.flows) else 0.0
        if peak > HUGE_INFLOW_M3_S:
            twin_warn(f"inflow {inf.name!r} peaks at {peak:,.0f} m3/s, more than {HUGE_INFLOW_M3_S:,.0f} m3/s: above "
                      "the great floods of China's largest river (the Yangtze at Yichang, about 70,000 m3/s); is the "
                      "flow in m3/s (not l/s or m3/h)?", TwinWarning, stacklevel=2)
    if buildings not in BUILDING_MODES:
        raise ParameterError(f"buildings must be one of {list(BUILDING_MODES)}, got {buildings!r}")
    if roof_runoff not in ROOF_RUNOFF_MODES:
        raise ParameterError(f"roof_runoff must be one of {list(ROOF_RUNOFF_MODES)}, got {roof_runoff!r}")
    if boundary not in BOUNDARY_MODES:
        raise ParameterError(f"boundary must be 'free' or 'closed', got {boundary!r}")
    if inflow_edge not in ("closed", "free"):
        raise ParameterError(f"inflow_edge must be 'closed' (a river's edge at its inflow is closed) or 'free', "
                             f"got {inflow_edge!r}")
    if not isinstance(initial_water, (bool, np.bool_)):
        raise ParameterError(f"initial_water must be True (water bodies start at their normal level) or False "
                             f"(they start dry), got {initial_water!r}")
    dem_r = twin.raster("dem", scenario)
    man_r = twin.raster("manning", scenario)
    if dem_r.shape != man_r.shape or tuple(dem_r.transform)[:6] != tuple(man_r.transform)[:6]:
        raise RasterError(f"rasters 'dem' {dem_r.shape} and 'manning' {man_r.shape} are not on the same grid; "
                          "import the Manning file again: `twin import-raster CITY MANNING.tif --name manning` puts "
                          "it on the DEM's grid (nearest neighbour)")
    drainage_mm_h, drainage_raster = _rate_grid(twin, scenario, drainage_mm_h, "drainage_mm_h", dem_r)
    infiltration_mm_h, infiltration_raster = _rate_grid(twin, scenario, infiltration_mm_h, "infiltration_mm_h",
                                                        dem_r)
    losses = {"drainage_mm_h": _loss_info(drainage_mm_h, drainage_raster),
              "infiltration_mm_h": _loss_info(infiltration_mm_h, infiltration_raster)}
    dem = dem_r.masked() if hasattr(dem_r, "masked") else np.asarray(dem_r.data, dtype=float)
    dem = np.asarray(dem, dtype=np.float64)
    man = np.asarray(man_r.masked() if hasattr(man_r, "masked") else man_r.data, dtype=np.float64)
    shape, tr = dem.shape, dem_r.transform
    dx, dy = float(tr.a), float(-tr.e)
    ground = dem.copy()
    water_layer = twin.layer("water", scenario) if "water" in twin.layers() else None
    water_mask, h0, water_info = water_grid(water_layer, shape, tr, ground)

    blocked = np.zeros(shape, dtype=bool)
    roofs = blocked
    bld = twin.layer("buildings", scenario) if "buildings" in twin.layers() else None
    if bld is not None and len(bld) and buildings != "none":
        if buildings == "block":
            blocked = roofs = _rasterize_buildings(bld, shape, tr)
        else:
            dem = dem + _building_heights(bld, shape, tr)
    # cells with no DEM value are out of the model (blocked), with a warning
    holes = ~np.isfinite(dem)
    if holes.all():
        raise RasterError(f"the raster 'dem' of scenario {scenario or 'base'!r} has no valid cells (all nodata/NaN); "
                          "write a DEM with elevations (or fix its nodata value)")
    if holes.any():
        twin_warn(f"the DEM has {int(holes.sum())} nodata cells; they are treated as blocked (no water). "
                      "Fill them (rasterio.fill.fillnodata) if water should flow there", TwinWarning, stacklevel=2)
        blocked |= holes
    deep = np.isfinite(dem) & (dem < _LOWEST_GROUND_M)
    if deep.any():
        twin_warn(f"the DEM has {int(deep.sum())} cells below {_LOWEST_GROUND_M:g} m (lowest {np.nanmin(dem):g} m), "
                      "deeper than any ground: if that is a nodata value, declare it as the raster's nodata, or "
                      "water will pour into those cells", TwinWarning, stacklevel=2)
    bad_n = ~(np.isfinite(man) & (man > 0)) & ~blocked
    if bad_n.any():
        twin_warn(f"the 'manning' raster has {int(bad_n.sum())} open cells with nodata or n <= 0; they use "
                      f"n = {_DEFAULT_MANNING} (s/m^(1/3)). Fill the raster if that is wrong", TwinWarning, stacklevel=2)
    man = np.where(np.isfinite(man) & (man > 0), man, _DEFAULT_MANNING)
    runoff = roof_outlets(roofs & ~holes, ~blocked) if roof_runoff == "adjacent" else None
    h0 = np.where(blocked, 0.0, h0) if initial_water else np.zeros(shape)
    if initial_water and water_info["without_level"]:
        twin_warn(f"water bodies {water_info['without_level'][:5]} have no normal_level_m: they start dry. Set "
                  "their normal water level (m, the DEM's datum) in the 'water' layer, or pass initial_water=False "
                  "(CLI --no-initial-water) to start every water body dry", TwinWarning, stacklevel=2)
    if initial_water and h0.max(initial=0.0) > _DEEPEST_WATER_BODY_M:
        twin_warn(f"the water layer's normal_level_m puts up to {h0.max():.1f} m of water over the DEM: is the "
                  "level in the DEM's datum and in metres? Fix normal_level_m, or pass initial_water=False",
                  TwinWarning, stacklevel=2)
    water_info.update(initial_water=bool(initial_water),
                      initial_volume_m3=float(h0.sum() * dx * dy) if initial_water else 0.0)

    dur = flood_duration(duration, "duration")
    if rain is None:
        f = formula or CHENGDU_STORM
        P = parse_return_period(storm)
        rain = f.hyetograph(P, dur, step_s=min(parse_duration(storm_step, "storm_step"), dur), peak_ratio=peak_ratio)
        storm_info = {"formula": f.name or "custom", "source": f.source, "return_period_y": P, "duration_s": dur,
                      "peak_ratio": peak_ratio, "total_mm": rain.total_mm()}
    else:
        if not isinstance(rain, (Hyetograph, RainSeries)):
            raise ParameterError("rain must be a simulation.flood.Hyetograph or RainSeries")
        storm_info = {"formula": "user hyetograph" if isinstance(rain, Hyetograph) else "user rain series",
                      "duration_s": dur, "total_mm": _rain_total_mm(rain)}

    gauges_df = pd.DataFrame(columns=["sensor_id", "kind", "x", "y"])
    gauges = []
    if "sensors" in twin.layers():
        sen = twin.layer("sensors", scenario)
        if len(sen):
            sen = sen[sen["kind"].isin(GAUGE_KINDS)]
            x0, y0 = tr.c, tr.f
            keep = []
            for sid, kind, geom in zip(sen["sensor_id"], sen["kind"], sen.geometry):
                if geom is None or geom.is_empty:
                    continue
                c = int(math.floor((geom.x - x0) / dx))
                r = int(math.floor((y0 - geom.y) / dy))
                if not (0 <= r < shape[0] and 0 <= c < shape[1]):
                    twin_warn(f"sensor {sid} lies outside the DEM; it is not used as a gauge", TwinWarning,
                                  stacklevel=2)
                    continue
                gauges.append(Gauge(str(sid), row=r, col=c))
                keep.append((str(sid), kind, geom.x, geom.y))
            gauges_df = pd.DataFrame(keep, columns=["sensor_id", "kind", "x", "y"])

    if water_mask.any():  # no sewer inlet and no soil under a river: its water is not drained away
        drainage_mm_h = np.where(water_mask, 0.0, drainage_mm_h) if np.ndim(drainage_mm_h) == 0 or \
            np.shape(drainage_mm_h) == shape else drainage_mm_h  # a grid of another shape: the engine says so
        infiltration_mm_h = np.where(water_mask, 0.0, infiltration_mm_h) if np.ndim(infiltration_mm_h) == 0 or \
            np.shape(infiltration_mm_h) == shape else infiltration_mm_h
    bc = BoundaryConditions(default=boundary)
    p = params or FloodParameters(snapshot_interval=600.0, gauge_interval=60.0)
    bodies = _water_bodies(water_mask, blocked) if inflows else None  # labelled once for every inflow
    sources, inflow_info = _place_inflows(inflows, tr, blocked, holes, dem_r.crs, water_mask, bodies)
    if boundary == "free" and inflow_edge == "closed":
        _close_inflow_edges(bc, inflow_info, bodies, abs(tr.a))
    model = FloodModel(dem, (dx, dy), manning=man, transform=tr, blocked=blocked, rain=rain, roof_runoff=runoff,
                       inflows=sources, boundaries=bc, drainage=drainage_mm_h, infiltration=infiltration_mm_h,
                       initial_depth=h0, gauges=gauges, params=p)
    return FloodSetup(model=model, transform=tr, crs=dem_r.crs, blocked=blocked, gauges=gauges_df,
                      rain_total_mm=_rain_total_mm(rain), storm=storm_info, roof_runoff=runoff,
                      water_mask=water_mask, initial_depth=h0, ground=ground, water=water_info, losses=losses,
                      inflows=inflow_info)


def _mass_balance_notes(table: pd.DataFrame, water: dict) -> pd.DataFrame:
    """The engine's mass balance table with a ``note`` saying what its less obvious rows are (the initial
    storage is the water bodies' water, not rain)."""
    notes = {"initial_storage": ("water at the start: the water layer's rivers and lakes at their normal level "
                                 f"({water.get('wet_cells', 0)} cells), not rain" if water.get("initial_water")
                                 else "water at the start (water bodies started dry: initial_water=False)"),
             "rain": "rain on open cells", "roof_runoff": "rain on roofs, run off onto the cells along their walls",
             "inflow": "from the point inflows (a river fed from upstream: inflows=, CLI --inflow)",
             "rain_on_blocked": "rain on blocked cells, dropped (outside the balance)",
             "boundary_out": "left the grid at its edges (rain, inflow and initial water alike)",
             "drainage": "into the sewers", "infiltration": "into the soil",
             "storage": "on the ground at the end"}
    out = table.copy()
    out["note"] = out["quantity"].map(notes).fillna("")
    return out


def load_depth_snapshots(twin, scenario: str, flood_run: str, have=None, *, missing: str):
    """A flood run's depth snapshots as ``(depths (k, rows, cols) float64, times_s (k,), transform)``, read as
    :meth:`Twin.snapshots <twin_core.twin.Twin.snapshots>` reads them
    (:func:`twin_core.adapters.results_export.read_stack`).

    ``have`` is the run's result index (``list_results``) when the caller has it; ``missing`` ends the error
    when the run kept no snapshots (what to do instead, for the caller's purpose)."""
    from cim.results import list_results
    from twin_core.adapters.results_export import StoredResult, read_stack

    have = list_results(twin.store, scenario=scenario, run=flood_run) if have is None else have
    if "depth_snapshots" not in set(have["name"]):
        raise ParameterError(f"flood run {flood_run!r} has no depth snapshots, so {missing}")
    row = have[have["name"] == "depth_snapshots"].iloc[0]
    found = StoredResult(scenario, flood_run, "depth_snapshots", row["kind"], row["ref"],
                         row["meta"] if isinstance(row["meta"], dict) else {})
    incomplete = ParameterError(f"the depth snapshots of flood run {flood_run!r} are incomplete (times, "
                                "transform); run the flood again")
    try:
        stack = read_stack(twin, found)
    except RasterError:
        raise incomplete from None
    if not len(stack.times_s):
        raise incomplete
    return np.asarray(stack.data, dtype=float), np.asarray(stack.times_s, dtype=float), stack.transform


def warn_after_flood_end(flood_time_s: float, flood_run: str, end_s: float, used: str) -> None:
    """Warn when ``flood_time_s`` (what a crowd run or an access analysis was asked to read flood run
    ``flood_run`` at) is after the run ended (``end_s``): nothing is known of the water then, and ``used``
    says what stands in for it (the run's last depths; the roads still under water when it ended, closed)."""
    if flood_time_s > end_s:
        twin_warn(f"flood_time {flood_time_s:g} s is after flood run {flood_run!r} ended ({end_s:g} s); {used}",
                  TwinWarning)


def _rain_total_mm(rain) -> float:
    """A hyetograph's depth, or a rain series' mean depth over its grid (mm)."""
    if hasattr(rain, "total_mm"):
        return float(rain.total_mm())
    return float((rain.grids.mean(axis=(1, 2)) * np.diff(rain.edges)).sum() / 3600.0)


def _sample(grid: np.ndarray, transform, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    ny, nx = grid.shape
    c = np.floor((xs - transform.c) / transform.a).astype(np.int64)
    r = np.floor((ys - transform.f) / transform.e).astype(np.int64)
    inside = (r >= 0) & (r < ny) & (c >= 0) & (c < nx)
    out = np.full(xs.shape, np.nan)
    out[inside] = grid[r[inside], c[inside]]
    return out


def _neighbourhood(grid: np.ndarray, how: str) -> np.ndarray:
    """Max (or min) over each cell's 3x3 neighbourhood, NaN-aware: the water next to a building."""
    from scipy import ndimage

    if how == "max":
        g = np.where(np.isfinite(grid), grid, -np.inf)
        out = ndimage.maximum_filter(g, size=3, mode="nearest")
        return np.where(np.isfinite(out), out, np.nan)
    g = np.where(np.isfinite(grid), grid, np.inf)
    out = ndimage.minimum_filter(g, size=3, mode="nearest")
    return np.where(np.isfinite(out), out, np.nan)


def link_point_depths(depth, transform, coords, idx, water_mask=None, ground=None,
                      deck_above_bank_m: float = BRIDGE_DECK_ABOVE_BANK_M,
                      wet_threshold: float = 0.15) -> np.ndarray:
    """The water over points along road links (m): ``coords`` (n, 2) in order along each link, ``idx`` (n,)
    the link of each point (as ``shapely.get_coordinates(..., return_index=True)`` gives them).

    A point on land gets the deepest water of the land cells in the 3 x 3 cells around it (the cells of
    ``water_mask`` left out: a road beside a river is not under the river). A point over a water body
    (its cell in ``water_mask``) is on a bridge: the stretch of such points between two land points is one
    span, whose deck is taken at the lower ground of its two banks (the land points either side) plus
    ``deck_above_bank_m`` (:data:`BRIDGE_DECK_ABOVE_BANK_M`); the span's points get the water above that
    deck, ``max(water surface - deck, 0)`` with the water surface the highest ``ground + depth`` of the wet
    points under the span: those deeper than ``wet_threshold`` (m; the flood run's ``threshold``, which is
    also its engine's ``wet_threshold``, so wet here is wet as the run's flooded area and times of arrival
    count it). A dry cell inside the water polygon (a levee or bank raised by a scenario, with a film of
    rain on it) is ground, not water surface: counted, its ground would read as water over the deck. A span
    with no wet point, or no bank on the grid (the link lies all over water), is taken as not overtopped (0).
    Without ``water_mask`` every point is on land.

    Examples
    --------
    >>> from affine import Affine
    >>> ground = np.array([[10.0, 7.0, 10.0]]); wm = np.array([[False, True, False]])
    >>> pts = np.array([[0.5, -0.5], [1.5, -0.5], [2.5, -0.5]]); tr = Affine(1, 0, 0, 0, -1, 0)
    >>> link_point_depths(np.array([[0.0, 2.0, 0.0]]), tr, pts, np.zeros(3, int), wm, ground).tolist()
    [0.0, 0.0, 0.0]
    >>> link_point_depths(np.array([[0.2, 4.0, 0.2]]), tr, pts, np.zeros(3, int), wm, ground).tolist()  # 11 m
    [0.2, 0.5, 0.2]

    A raised strip in the water polygon, dry but for 2 mm of rain, is no water surface (the river's is 9 m):

    >>> ground = np.array([[10.0, 7.0, 12.0, 10.0]]); wm = np.array([[False, True, True, False]])
    >>> pts = np.array([[0.5, -0.5], [1.5, -0.5], [2.5, -0.5], [3.5, -0.5]])
    >>> link_point_depths(np.array([[0.0, 2.0, 0.002, 0.0]]), tr, pts, np.zeros(4, int), wm, ground).tolist()
    [0.0, 0.0, 0.0, 0.0]
    """
    depth = np.asarray(depth, dtype=np.float64)
    wet_threshold = _threshold(wet_threshold)
    xs, ys = coords[:, 0], coords[:, 1]
    if water_mask is None or not np.any(water_mask):
        return _sample(_neighbourhood(depth, "max"), transform, xs, ys)
    wm = np.asarray(water_mask, dtype=bool)
    out = _sample(_neighbourhood(np.where(wm, np.nan, depth), "max"), transform, xs, ys)
    over = _sample(wm.astype(np.float64), transform, xs, ys) == 1.0
    if not over.any():
        return out
    gr = _sample(np.asarray(ground, dtype=np.float64), transform, xs, ys)
    dp = _sample(np.nan_to_num(depth, nan=0.0), transform, xs, ys)
    wse = np.where(dp > wet_threshold, gr + dp, np.nan)  # the water surface where there is water
    idx = np.asarray(idx)
    starts = np.flatnonzero(np.r_[True, idx[1:] != idx[:-1]])
    ends = np.r_[starts[1:], len(idx)]
    for a, b in zip(starts, ends):
        o = over[a:b]
        if not o.any():
            continue
        k = 0
        while k < len(o):
            if not o[k]:
                k += 1
                continue
            j = k
            while j + 1 < len(o) and o[j + 1]:
                j += 1
            banks = [gr[a + k - 1] if k > 0 else np.nan, gr[a + j + 1] if j + 1 < len(o) else np.nan]
            banks = [v for v in banks if np.isfinite(v)]
            top = np.nanmax(wse[a + k:a + j + 1]) if np.isfinite(wse[a + k:a + j + 1]).any() else np.nan
            on_deck = max(top - (min(banks) + deck_above_bank_m), 0.0) if banks and np.isfinite(top) else 0.0
            out[a + k:a + j + 1] = on_deck
            k = j + 1
    return out


def water_context(twin, scenario: str | None, shape, transform):
    """``(water_mask, ground)`` of a scenario on a stored flood run's grid, for reading its depths as the run's
    exposure tables did (:func:`link_point_depths`): the ``water`` layer's cells and the DEM; ``(None, None)``
    when the twin has no water layer or its DEM is now on another grid (every point then counts as land)."""
    if "water" not in twin.layers():
        return None, None
    dem = twin.raster("dem", scenario)
    if tuple(dem.shape) != tuple(shape) or tuple(dem.transform)[:6] != tuple(transform)[:6]:
        return None, None
    ground = np.asarray(dem.masked() if hasattr(dem, "masked") else dem.data, dtype=np.float64)
    mask, _, _ = water_grid(twin.layer("water", scenario), ground.shape, dem.transform, ground)
    return (mask, ground) if mask.any() else (None, None)


#: the exposure tables' layers and each one's id column
EXPOSURE_LAYERS = {"buildings": "building_id", "road_links": "link_id", "pois": "poi_id"}


def exposure_tables(result, transform, layers: dict, threshold: float = 0.15, *, water_mask=None, ground=None,
                    deck_above_bank_m: float = BRIDGE_DECK_ABOVE_BANK_M) -> dict[str, pd.DataFrame]:
    """Features flooded above ``threshold`` m: max depth and time of arrival per feature.

    Buildings and POIs are judged by the water in and around them (the 3 x 3
    cells around each vertex and the centroid, since building cells are blocked);
    road links by points every cell along the line. ``time_of_arrival_s`` is
    when the depth there first exceeded the model's ``wet_threshold`` (the
    adapter sets it to ``threshold``).

    ``water_mask`` (the cells of the ``water`` layer's polygons, :func:`water_grid`) and ``ground`` (the DEM):
    the water of rivers and lakes is no flood, so those cells are left out of the water around buildings,
    POIs and roads; a road link's points over a water body are a bridge, flooded only when the water rises
    above its deck (:func:`link_point_depths`; such points have no time of arrival).

    Each feature's depth is :func:`feature_depths`' (every feature, flooded or not); this keeps those deeper
    than ``threshold``.
    """
    threshold = _threshold(threshold)
    grids = _exposure_grids(result.max_depth, result.time_of_wetting, water_mask)
    out = {}
    for name in EXPOSURE_LAYERS:
        agg = _feature_table(name, layers.get(name), result.max_depth, grids, transform, threshold, ground,
                             deck_above_bank_m)
        agg = agg[agg["max_depth_m"] > threshold]
        out[name] = agg.sort_values("max_depth_m", ascending=False).reset_index(drop=True)
    return out


def feature_depths(max_depth, transform, layer: str, features, threshold: float = 0.15, *, water_mask=None,
                   ground=None, time_of_wetting=None,
                   deck_above_bank_m: float = BRIDGE_DECK_ABOVE_BANK_M) -> pd.DataFrame:
    """Every feature's exposure depth in a run's ``max_depth`` grid, flooded or not: the depth
    :func:`exposure_tables` gives a feature (those deeper than ``threshold`` make its tables), one row per
    feature of ``features`` (a GeoDataFrame of layer ``layer``: ``buildings``, ``road_links`` or ``pois``) with
    its id, ``max_depth_m`` and ``time_of_arrival_s`` (NaN without ``time_of_wetting``). ``threshold`` is the
    run's (a bridge's water surface is taken from the cells deeper than it); ``water_mask`` and ``ground`` as
    :func:`exposure_tables` takes them (:func:`water_context` reads them for a stored run).
    ``twin compare`` reads here a feature's depth in a run whose exposure table leaves it out (not flooded).
    """
    if layer not in EXPOSURE_LAYERS:
        raise ParameterError(f"layer must be one of {list(EXPOSURE_LAYERS)}, got {layer!r}")
    threshold = _threshold(threshold)
    depth = np.asarray(max_depth, dtype=np.float64)
    tw = np.full(depth.shape, np.nan) if time_of_wetting is None else np.asarray(time_of_wetting, dtype=np.float64)
    grids = _exposure_grids(depth, tw, water_mask)
    return _feature_table(layer, features, depth, grids, transform, threshold, ground, deck_above_bank_m)


def _exposure_grids(max_depth, time_of_wetting, water_mask):
    """``(water_mask or None, the deepest land water around each cell, the first wetting around it)``."""
    wm = None if water_mask is None or not np.any(water_mask) else np.asarray(water_mask, dtype=bool)
    land_depth = max_depth if wm is None else np.where(wm, np.nan, max_depth)
    dmax = _neighbourhood(land_depth, "max")
    tarr = _neighbourhood(time_of_wetting if wm is None else np.where(wm, np.nan, time_of_wetting), "min")
    return wm, dmax, tarr


def _feature_table(name, gdf, max_depth, grids, transform, threshold, ground, deck_above_bank_m) -> pd.DataFrame:
    """Each feature of ``gdf`` (layer ``name``) with its depth and time of arrival (see :func:`exposure_tables`)."""
    import shapely

    wm, dmax, tarr = grids
    idcol = EXPOSURE_LAYERS[name]
    cols = [idcol, "max_depth_m", "time_of_arrival_s"] + (["flooded_fraction"] if name == "road_links" else [])
    if gdf is None or not len(gdf):
        return pd.DataFrame(columns=cols)
    step = min(abs(float(transform.a)), abs(float(transform.e)))  # the shorter cell side: every cell on the line
    geoms = gdf.geometry.to_numpy()
    if name == "road_links":
        pts_geoms = shapely.segmentize(geoms, step)
    elif name == "buildings":
        pts_geoms = np.array([shapely.union(g.boundary, g.centroid) if g is not None else None for g in geoms],
                             dtype=object)
    else:
        pts_geoms = geoms
    coords, idx = shapely.get_coordinates(pts_geoms, return_index=True)
    if not len(coords):
        return pd.DataFrame(columns=cols)
    if name == "road_links":
        d = link_point_depths(max_depth, transform, coords, idx, wm, ground, deck_above_bank_m,
                              wet_threshold=threshold)
    else:
        d = _sample(dmax, transform, coords[:, 0], coords[:, 1])
    t = _sample(tarr, transform, coords[:, 0], coords[:, 1])
    df = pd.DataFrame({"i": idx, "d": d, "t": t, "wet": d > threshold})
    g = df.groupby("i")
    agg = pd.DataFrame({"max_depth_m": g["d"].max(), "time_of_arrival_s": g["t"].min()})
    if name == "road_links":
        agg["flooded_fraction"] = g["wet"].mean()
    agg.insert(0, idcol, gdf[idcol].to_numpy()[agg.index.to_numpy()] if idcol in gdf else agg.index.to_numpy())
    return agg


#: the units a rain gauge's readings may be in: intensities (a depth per interval would need the interval)
_RAIN_UNITS = {"mm/h", "mm h-1", "mm/hr", "mm h^-1", "mm·h-1", "mm·h⁻¹", "mm h⁻¹"}


#: how the rain gauges' readings spread over the city: their mean everywhere, or each cell the reading of
#: its nearest gauge that reported (Thiessen polygons, the hydrologist's classic areal rain)
RAIN_SPATIAL = ("mean", "nearest")
#: what a stretch without a gauge reading is: an error, or dry
RAIN_GAPS = ("error", "dry")


def rain_from_sensors(twin, last="2h", *, until=None, step="5min", hold="15min", gaps: str = "error",
                      spatial: str = "mean", now=None):
    """Observed rain: the twin's rain gauges' readings over the ``last`` hours as a hyetograph, to run a flood
    on what fell (``run_flood(twin, rain_from_sensors="2h")``) rather than on a design storm.

    Each gauge's reading (mm/h, an intensity) holds until its next one, for at most ``hold``; each block of
    ``step`` takes the time-mean of each gauge that reported in it. ``spatial="mean"``: the mean over those
    gauges falls on the whole city (a :class:`~simulation.flood.Hyetograph`); ``"nearest"``: each cell of the
    DEM's grid gets the reading of its nearest gauge that reported in the block (Thiessen polygons; a
    :class:`~simulation.flood.RainSeries`), for a storm that hits one district. ``until`` (a tz-aware
    datetime or ISO-8601 text with an offset) ends the window. By default the window ends where the latest
    reading of any gauge stops holding: its time plus that gauge's reading interval (the median spacing of its
    last readings; ``step`` if it has but one; at most ``hold``), so the newest reading counts. A default end more
    than :data:`RAIN_STALE_S` (15 min) or three reading intervals before ``now`` (tz-aware; default the clock)
    is refused, saying how old the latest reading is: the rain that fell then is not the rain now (give
    ``until`` to run an older window on purpose). A block no gauge covers is an error (``gaps="error"``: a
    silent zero would understate the rain) or dry (``gaps="dry"``).

    Returns ``(rain, info)``: the rain starts at 0 s (the window's start, ``info["start"]``); ``info`` names
    the gauges, the window, the total (the mean over the city, mm) and the peak.
    """
    from cim.sensors import _check_time, read_readings
    from simulation.flood import Hyetograph

    if gaps not in RAIN_GAPS:
        raise ParameterError(f"gaps must be 'error' or 'dry', got {gaps!r}")
    if spatial not in RAIN_SPATIAL:
        raise ParameterError(f"spatial must be one of {list(RAIN_SPATIAL)}, got {spatial!r}")
    span, dt, held = parse_duration(last, "last"), parse_duration(step, "step"), parse_duration(hold, "hold")
    for v, what in ((span, "last"), (dt, "step"), (held, "hold")):
        if not (math.isfinite(v) and v > 0):
            raise ParameterError(f"{what} must be a positive duration, got {v!r} s")
    if span > 7 * 86400:
        raise ParameterError(f"last={last!r} is more than 7 days of rain; a flood run covers hours")
    if dt > span:
        raise ParameterError(f"step={step!r} is longer than the window last={last!r}")
    if "sensors" not in twin.layers():
        raise ParameterError("the twin has no 'sensors' layer, so no rain gauge; import one (twin import ... "
                             "--class sensors) or run a design storm")
    sen = twin.layer("sensors")
    gauges = sen[sen.get("kind", pd.Series(index=sen.index, dtype=object)) == "rain_gauge"] if len(sen) else sen
    if not len(gauges):
        raise ParameterError(f"the twin's sensors layer has no rain gauge (kind 'rain_gauge'; kinds there: "
                             f"{sorted(set(sen['kind'].dropna())) if 'kind' in sen else []}); run a design storm instead")
    if "unit" in gauges:
        bad = gauges[~gauges["unit"].fillna("mm/h").astype(str).str.strip().str.lower().isin(_RAIN_UNITS)]
        if len(bad):
            raise ParameterError(f"rain gauges {bad['sensor_id'].astype(str).tolist()[:5]} report in "
                                 f"{sorted(set(bad['unit'].astype(str)))}, not mm/h; only intensities (mm/h) can be "
                                 "turned into a hyetograph: set the sensors' unit, or convert the readings")
    ids = gauges["sensor_id"].astype(str).tolist()
    if until is None:
        end = _rain_default_end(twin, ids, dt, held, now)
    else:
        from datetime import datetime, timezone

        t, why = _check_time(until, datetime(2200, 1, 1, tzinfo=timezone.utc))  # any instant pandas keeps
        if why:
            raise ParameterError(f"until: {why}")
        end = pd.Timestamp(t)
    start = end - pd.Timedelta(seconds=span)
    df = read_readings(twin.store, ids, since=start - pd.Timedelta(seconds=held), until=end)
    if not len(df):
        raise ParameterError(f"no rain gauge reported between {start.isoformat()} and {end.isoformat()} "
                             f"(nor in the {held / 60:g} min before); check the feed or the window")
    neg = df[df["value"] < 0]
    if len(neg):
        raise ParameterError(f"rain gauge {neg['sensor_id'].iloc[0]} reported {neg['value'].iloc[0]:g} mm/h at "
                             f"{neg['time'].iloc[0].isoformat()}: rain cannot be negative; fix or remove the reading")
    edges = np.arange(0.0, span, dt)
    edges = np.append(edges, span)
    k = len(edges) - 1
    total = np.zeros(k)  # sum over gauges of each gauge's mean intensity in each block it covered (mm/h)
    reported = np.zeros(k, dtype=int)  # how many gauges covered part of each block
    used, means = [], []  # the gauges that reported, and each one's mean intensity per block (NaN: none)
    for gid, g in df.groupby("sensor_id", sort=True):
        t = ((g["time"] - start).dt.total_seconds()).to_numpy()
        v = g["value"].to_numpy()
        t_next = np.append(t[1:], np.inf)
        a, b = t, np.minimum(t_next, t + held)  # reading i holds over [a_i, b_i)
        lo = np.maximum(a[:, None], edges[None, :-1])
        hi = np.minimum(b[:, None], edges[None, 1:])
        over = np.clip(hi - lo, 0.0, None)  # seconds of each block (columns) each reading (rows) holds
        c = over.sum(axis=0)
        if not (c > 0).any():
            continue
        used.append(str(gid))
        m = np.where(c > 0, (over * v[:, None]).sum(axis=0) / np.where(c > 0, c, 1.0), np.nan)
        means.append(m)
        total += np.nan_to_num(m)
        reported += c > 0
    if not used:
        raise ParameterError(f"no rain gauge reading falls in {start.isoformat()} .. {end.isoformat()}")
    empty = reported == 0
    if empty.any() and gaps == "error":
        i = int(np.flatnonzero(empty)[0])
        j = i
        while j + 1 < k and empty[j + 1]:
            j += 1
        a0, b0 = start + pd.Timedelta(seconds=edges[i]), start + pd.Timedelta(seconds=edges[j + 1])
        raise ParameterError(f"no rain gauge reported from {a0.isoformat()} to {b0.isoformat()} (a reading holds "
                             f"for at most hold={hold!r}); {int(empty.sum())} of {k} blocks are unknown. Shorten the "
                             "window (last=), lengthen hold=, or take them as dry (gaps='dry'; run_flood "
                             "rain_gaps='dry'; twin flood --rain-gaps dry)")
    intensity = np.where(reported > 0, total / np.maximum(reported, 1), 0.0)
    info = {"formula": "observed rain (rain gauges)", "source": "sensor_readings", "gauges": used,
            "spatial": spatial, "start": start.isoformat(), "end": end.isoformat(), "step_s": dt, "hold_s": held,
            "duration_s": span, "unknown_blocks": int(empty.sum())}
    if spatial == "mean":
        hy = Hyetograph(edges, intensity)
        info.update(total_mm=hy.total_mm(), peak_mm_h=float(intensity.max()))
        return hy, info
    return _thiessen_rain(twin, gauges, used, np.asarray(means), edges, info)


class StaleRainError(ParameterError):
    """The rain gauges' latest reading is too old for a measured-rain window that ends by default (no
    ``until``): the map server refuses such a job when it is posted (HTTP 422)."""


#: how long (s) before the clock a measured-rain window may end by default (its latest reading, held): older
#: and ``rain_from_sensors`` refuses it unless the caller names the end (``until``)
RAIN_STALE_S = 15 * 60.0


def _rain_default_end(twin, ids: list[str], step_s: float, hold_s: float, now=None) -> pd.Timestamp:
    """The default end of a measured-rain window: the latest stored reading of the gauges ``ids``, plus the
    time it holds (its gauge's reading interval: the median spacing of that gauge's last readings, ``step_s``
    if it has but one, at most ``hold_s``). Refused (:class:`StaleRainError`) when that end is more than
    :data:`RAIN_STALE_S` or three such intervals (whichever is longer) before ``now`` (default: the clock)."""
    from datetime import datetime, timezone

    from cim.sensors import READINGS

    latest = (twin.store.read_table(READINGS, where={"sensor_id": ids}, columns=["sensor_id", "time"],
                                    order_by="time", descending=True, limit=1)
              if twin.store.has_table(READINGS) else [])
    if not len(latest):
        raise ParameterError(f"no reading from any of the {len(ids)} rain gauges ({', '.join(ids[:5])}) is "
                             "stored; feed them (twin sensors listen, POST /api/sensors/readings) or give rain")
    sid = str(latest["sensor_id"].iloc[0])
    last = twin.store.read_table(READINGS, where={"sensor_id": [sid]}, columns=["time"], order_by="time",
                                 descending=True, limit=6)
    times = pd.to_datetime(last["time"], utc=True, format="ISO8601").sort_values()
    t_last = pd.to_datetime(latest["time"], utc=True, format="ISO8601").iloc[0]
    gaps = times.diff().dt.total_seconds().to_numpy()[1:]
    gaps = gaps[gaps > 0]
    interval = float(np.median(gaps)) if gaps.size else step_s
    block = min(interval, hold_s)
    end = t_last + pd.Timedelta(seconds=block)
    clock = pd.Timestamp(datetime.now(timezone.utc) if now is None else now)
    if clock.tzinfo is None:
        raise ParameterError(f"now={now!r} has no time zone; give a tz-aware datetime")
    clock = clock.tz_convert("UTC")
    late = (clock - end).total_seconds()
    allowed = max(RAIN_STALE_S, 3 * block)  # a gauge that reports hourly is not trusted for hours on end
    if late > allowed:
        age = (clock - t_last).total_seconds()
        ago = f"{age / 3600:.1f} h" if age >= 3600 else f"{age / 60:.0f} min"
        raise StaleRainError(
            f"the rain gauges' latest reading ({sid} at {t_last.isoformat()}) is {ago} old (now "
            f"{clock.isoformat(timespec='seconds')}): a window ending then ({end.isoformat()}) is not the rain now. "
            "Check the gauges' feed (twin sensors feeds), or give the window's end on purpose: rain_until= "
            "(the job's param rain_until, twin flood --rain-until) as ISO-8601 with an offset")
    return end


def _thiessen_rain(twin, gauges, used: list[str], means: np.ndarray, edges: np.ndarray, info: dict):
    """A RainSeries on the DEM's grid: each cell, in each block, the mean of its nearest gauge that reported
    (``means``: gauges x blocks, NaN where a gauge did not report)."""
    from simulation.flood import RainSeries

    dem = twin.raster("dem")
    ny, nx = dem.shape
    tr = dem.transform
    pos = gauges.set_index(gauges["sensor_id"].astype(str)).loc[used].geometry
    gx, gy = pos.x.to_numpy(), pos.y.to_numpy()
    xs = tr.c + tr.a * (np.arange(nx) + 0.5)
    ys = tr.f + tr.e * (np.arange(ny) + 0.5)
    # squared distance from every cell to every gauge: gauges x rows x cols (a few gauges: small)
    d2 = (xs[None, None, :] - gx[:, None, None]) ** 2 + (ys[None, :, None] - gy[:, None, None]) ** 2
    grids = np.zeros((len(edges) - 1, ny, nx))
    nearest_cache: dict[tuple, np.ndarray] = {}
    for b in range(len(edges) - 1):
        ok = np.isfinite(means[:, b])
        if not ok.any():
            continue  # a gap taken as dry
        key = tuple(np.flatnonzero(ok))
        if key not in nearest_cache:  # which reporting gauge is nearest each cell: once per set of gauges
            idx = np.asarray(key)
            nearest_cache[key] = idx[np.argmin(d2[idx], axis=0)]
        grids[b] = means[nearest_cache[key], b]
    dt = np.diff(edges)
    mean_mm = float((grids.mean(axis=(1, 2)) * dt).sum() / 3600.0)
    share = {g: float((nearest_cache[key] == i).mean()) for key in nearest_cache for i, g in enumerate(used)
             if i in key} if nearest_cache else {}
    info.update(total_mm=mean_mm, peak_mm_h=float(np.nanmax(means)) if np.isfinite(means).any() else 0.0,
                area_share=share)  # of the city's cells each gauge stands for (the last set of gauges seen)
    return RainSeries(edges, grids), info


rain_from_sensors_fn = rain_from_sensors  # run_flood's keyword of the same name shadows it there


def _run_params(params, snapshot_interval, threshold: float):
    """The engine parameters of a run: ``params`` (a :class:`~simulation.flood.FloodParameters`) or the
    adapter's defaults, with the run's ``snapshot_interval`` (None: no snapshots) where ``params`` sets none
    (its ``snapshot_interval`` None, the engine's default); a ``params`` that sets one keeps it. Before
    2026-12-05 a given ``params`` took its own None, and the run kept no depth snapshots without a word."""
    from simulation.flood import FloodParameters

    snap = None if snapshot_interval is None else parse_duration(snapshot_interval, "snapshot_interval")
    if snap is not None and not (math.isfinite(snap) and snap > 0):
        raise ParameterError(f"snapshot_interval must be a positive duration (e.g. '10min') or None (no depth "
                             f"snapshots), got {snapshot_interval!r}")
    if params is None:
        return FloodParameters(snapshot_interval=snap, gauge_interval=60.0, wet_threshold=threshold)
    if not isinstance(params, FloodParameters):
        raise ParameterError(f"params must be a simulation.flood.FloodParameters, got {type(params).__name__}; "
                             "e.g. params=FloodParameters(dtype='float32')")
    return params if params.snapshot_interval is not None else params.replace(snapshot_interval=snap)


def water_drained_note(summary: dict, share: float = 0.10) -> str | None:
    """A line saying the water bodies' starting water drained during the run, when they lost more than
    ``share`` of it by the end (``summary["water_bodies"]``: ``initial_volume_m3``, ``end_volume_m3``); None
    otherwise. Their normal level is one flat level per water body: over a river bed that falls along the
    river it is no steady state, and the river runs down and out at the grid's edges during the run, part
    of ``outflow_m3`` that is no rain or flood water (see the README)."""
    w = summary.get("water_bodies") or {}
    v0, v1 = float(w.get("initial_volume_m3") or 0.0), float(w.get("end_volume_m3") or 0.0)
    if v0 <= 0 or v0 - v1 <= share * v0:
        return None
    return (f"the water bodies' starting water drained: they held {v0:.0f} m3 at their normal level and {v1:.0f} m3 "
            f"at the end ({(v0 - v1) / v0:.0%} less, {v0 - v1:.0f} m3); a river's starting level is flat over a "
            "sloping bed and runs down and out at the edges, part of the outflow "
            f"({summary.get('outflow_m3', 0.0):.0f} m3) that is no rain (see the README)")


def run_flood(twin, scenario: str | None = None, run: str | None = None, *, storm="50y", duration="1h",
              until=None, threshold: float = 0.15, save: bool = True, snapshot_interval="10min",
              rain_from_sensors=None, rain_until=None, rain_gaps: str = "error", rain_spatial: str = "mean",
              progress: Callable[[float, float], None] | None = None, params=None, **prepare_kw) -> FloodRun:
    """Run a design storm on a twin scenario and save the results under ``scenario``/``run``.

    ``until`` (default: the storm duration) is how long to simulate. Returns a
    :class:`FloodRun` with the engine result (arrays, DataFrames), exposure
    tables and a summary. Other keywords go to :func:`prepare_flood`
    (``buildings``, ``roof_runoff``, ``drainage_mm_h`` ...).

    The summary's volumes (m3): ``rain_m3`` fell on open cells, ``roof_runoff_m3``
    on roofs and ran off onto the cells along their walls (``roof_runoff="adjacent"``),
    ``rain_on_blocked_m3`` on blocked cells and was dropped (roofs with
    ``roof_runoff="none"``, nodata cells); ``inflow_m3`` came in at the point inflows (``inflows=``, each
    listed in ``summary["inflows"]`` with its place, source, flows, peak and volume); ``outflow_m3`` left at the edges,
    ``drainage_m3`` went into the sewers, ``infiltration_m3`` into the soil, ``storage_m3`` is on the ground at the
    end: ``rain_m3 + roof_runoff_m3 + inflow_m3 + initial_storage_m3 = storage_m3 + outflow_m3 + drainage_m3 +
    infiltration_m3`` (to ``mass_balance_relative_error``).
    ``initial_storage_m3`` was there at the start: the rivers and lakes of the ``water`` layer at their normal
    level (``initial_water=True``, the default; CLI ``--no-initial-water`` starts them dry); it is no rain,
    and part of it may leave the grid as ``outflow_m3`` (a river running out at a free edge):
    ``summary["water_bodies"]`` has the water bodies' ``initial_volume_m3``, ``end_volume_m3`` and ``lost_m3``
    (the net loss: a flat normal level over a sloping river bed drains; :func:`water_drained_note`).

    ``params`` (a :class:`~simulation.flood.FloodParameters`) sets the engine's numerics; its
    ``snapshot_interval``, where it sets one, is the run's, and where it leaves it None (its default) the run's
    ``snapshot_interval`` keyword applies (``"10min"``; None: no depth snapshots, and none saved). Before
    2026-12-05 a given ``params`` dropped the snapshots. ``summary["snapshots"]`` says how many were kept.

    Flooding is judged over land only (``summary["flood_extent"]``): ``max_depth_m``, ``flooded_area_m2``
    and the exposure tables leave out the cells of the ``water`` layer's polygons, whose water is the river
    or lake, not a flood (a river 2 m deep in its bed is not 2 m of flooding, nor its bed "flooded area"); a
    river that overtops its banks puts water on land cells, which counts. Depth above the initial state was
    the other choice: it would report a river rising in its banks as flooded area. What the water bodies did
    is in ``summary["water_bodies"]`` (``max_depth_m``, ``max_rise_m`` above the initial water). Roads over
    a water body are bridges, flooded only when the water rises over their deck (:func:`link_point_depths`).

    ``rain_from_sensors`` (a window such as ``"2h"``) runs the rain the twin's rain gauges measured over that
    window, up to ``rain_until`` (default: the end of their latest reading, refused if that is more than 15 min
    ago; ``rain_gaps="dry"`` takes a stretch no gauge
    covered as dry instead of refusing it; ``rain_spatial="nearest"`` gives each cell its nearest gauge's rain
    instead of their mean), instead of a design storm: see
    :func:`rain_from_sensors`. ``duration`` is then the window, and ``until`` may run on to see it drain.

    Examples
    --------
    >>> import tempfile, os, sample_city
    >>> from twin_core import Twin
    >>> path = os.path.join(tempfile.mkdtemp(), "c.gpkg")
    >>> city = sample_city.build_into(path, "small", seed=0)
    >>> with Twin.open(path) as twin:
    ...     fr = run_flood(twin, storm="20y", duration="10min", run="demo")
    >>> fr.summary["mass_balance_relative_error"] < 1e-9
    True
    >>> fr.summary["roof_runoff_m3"] > 0   # the rain on the roofs runs off onto the streets
    True
    """
    from cim.raster import Raster
    from cim.scenario import BASE, normalise_scenario_name

    from cim.results import claim_run, delete_results, saving_run

    scenario = normalise_scenario_name(scenario)  # one name typed two ways (NFC / NFD) is one scenario
    scen = scenario or BASE
    if scenario is not None and scenario not in twin.scenarios:
        from cim.scenario import did_you_mean
        from twin_core.errors import ScenarioError

        names = twin.scenarios.names()
        raise ScenarioError(f"scenario {scenario!r} does not exist; create it with `twin scenario create` "
                            f"(existing: {names})" + did_you_mean(scenario, names + [BASE]))
    run = claim_run(twin.store, scen, run, ENGINE, "flood", save=save)  # a bad or taken id fails here
    threshold = _threshold(threshold)
    if threshold > _DEEPEST_THRESHOLD_M:
        twin_warn(f"threshold={threshold:g} is in metres: only features under more than {threshold:g} m of water "
                      f"count as flooded; for centimetres write threshold={threshold / 100:g}", TwinWarning,
                      stacklevel=2)
    observed = None
    if rain_from_sensors is not None:
        if prepare_kw.get("rain") is not None:
            raise ParameterError("give rain= or rain_from_sensors=, not both")
        prepare_kw["rain"], observed = rain_from_sensors_fn(twin, rain_from_sensors, until=rain_until, gaps=rain_gaps,
                                                            spatial=rain_spatial)
        duration = observed["duration_s"]
    elif rain_until is not None:
        raise ParameterError("rain_until needs rain_from_sensors (the window of observed rain it ends)")
    elif rain_spatial != "mean" or rain_gaps != "error":  # they shape the gauges' rain: without it, no effect
        given = [f"{k}={v!r}" for k, v, d in (("rain_spatial", rain_spatial, "mean"), ("rain_gaps", rain_gaps, "error"))
                 if v != d]
        raise ParameterError(f"{' and '.join(given)} need{'s' if len(given) == 1 else ''} rain_from_sensors (CLI: "
                             "--rain-from-sensors 2h): they say how the rain gauges' readings are spread and gaps "
                             "read; a design storm has neither")
    dur = flood_duration(duration, "rain_from_sensors" if observed is not None else "duration")
    if dur < 60 and prepare_kw.get("rain") is None:
        twin_warn(f"duration={duration!r} is {dur:g} s of rain: a bare number is seconds; write e.g. "
                      f"duration='{dur:g}h' or '{dur:g}min'" if is_bare_number(duration) else
                      f"duration={duration!r} is a {dur:g} s storm; design storms last minutes to hours",
                      TwinWarning, stacklevel=2)
    t_end = flood_duration(until, "until") if until is not None else dur
    p = _run_params(params, snapshot_interval, threshold)
    wall0 = time.perf_counter()
    setup = prepare_flood(twin, scenario, storm=storm, duration=dur, params=p, **prepare_kw)
    if observed is not None:  # the summary says what fell, where it was measured, and when
        setup.storm.update(observed)
    # the run's rain (a user hyetograph or the design storm): cut short by until=, the storm's total depth in
    # the summary is more than fell (a 1 h storm run with until="10min" got a sixth of it without a word)
    rain = setup.model.rain
    if hasattr(rain, "edges") and hasattr(rain, "intensity"):
        wet_edges = rain.edges[1:][rain.intensity > 0]
        if wet_edges.size and t_end < wet_edges[-1]:
            what = "rain" if prepare_kw.get("rain") is not None else "design storm"
            twin_warn(f"the run stops at {t_end:g} s but the {what} goes on to {wet_edges[-1]:g} s, so less "
                          f"rain falls than the storm's {setup.rain_total_mm:.3g} mm; pass until= (or duration=) "
                          "to simulate all of it", TwinWarning, stacklevel=2)
    res = setup.model.run(t_end, progress=progress)
    layers = {}
    for name in ("buildings", "road_links", "pois"):
        if name in twin.layers():
            layers[name] = twin.layer(name, scenario)
    expo = exposure_tables(res, setup.transform, layers, threshold=threshold, water_mask=setup.water_mask,
                           ground=setup.ground)
    mb = setup.model.mass_balance()
    land = ~setup.water_mask if setup.water_mask is not None else np.ones(res.max_depth.shape, dtype=bool)
    land_depth = np.where(land, res.max_depth, np.nan)
    wet = (np.nan_to_num(land_depth) > threshold)
    in_water = ~land & np.isfinite(res.max_depth)
    rise = res.max_depth - setup.initial_depth if setup.initial_depth is not None else res.max_depth
    water = {**setup.water, "max_depth_m": float(res.max_depth[in_water].max()) if in_water.any() else 0.0,
             "max_rise_m": float(rise[in_water].max()) if in_water.any() else 0.0}
    # the water bodies' water at the start and at the end: a flat normal level over a sloping river bed is no
    # steady state, so the river drains during the run (out at the grid's edges) while "highest rise" says
    # little; the summary says how much it held and lost (see water_drained_note)
    if setup.water_mask is not None and setup.water_mask.any():
        end_depth = np.where(np.isfinite(res.depth), res.depth, 0.0)
        water["end_volume_m3"] = float(end_depth[setup.water_mask].sum() * setup.model.area)
    else:
        water["end_volume_m3"] = 0.0
    water["initial_volume_m3"] = float(water.get("initial_volume_m3", 0.0))
    water["lost_m3"] = max(water["initial_volume_m3"] - water["end_volume_m3"], 0.0)
    summary = {
        "engine": "flood", "scenario": scen, "run": run, "storm": setup.storm, "sim_time_s": res.sim_time, "steps": res.steps,
        "grid": list(setup.model.shape), "cell_size_m": setup.model.dx,
        "max_depth_m": float(np.nanmax(land_depth)) if np.isfinite(land_depth).any() else 0.0,
        "flooded_area_m2": float(wet.sum() * setup.model.area), "flood_extent": FLOOD_EXTENT,
        "initial_water": water["initial_water"], "initial_storage_m3": mb["initial_storage"], "water_bodies": water,
        "threshold_m": threshold, "exposed_buildings": int(len(expo["buildings"])),
        "exposed_road_links": int(len(expo["road_links"])), "exposed_pois": int(len(expo["pois"])),
        "rain_m3": mb["rain"], "roof_runoff_m3": mb["roof_runoff"], "rain_on_blocked_m3": mb["rain_on_blocked"],
        "inflow_m3": mb["inflow"], "outflow_m3": mb["boundary_out"], "drainage_m3": mb["drainage"],
        "infiltration_m3": mb["infiltration"],
        "storage_m3": mb["storage"], "mass_balance_relative_error": mb["relative_error"],
        "snapshots": int(len(res.snapshot_times)), "snapshot_interval_s": p.snapshot_interval,
        "engine_wall_s": res.elapsed_s, "first_step_s": res.first_step_s,
        "cell_updates_per_s": res.cell_updates_per_s,
    }
    # what it was run with besides the storm (a run compared with another must say so: twin compare)
    defaults = inspect.signature(prepare_flood).parameters
    for key in ("buildings", "roof_runoff", "drainage_mm_h", "infiltration_mm_h", "boundary"):
        v = prepare_kw.get(key, defaults[key].default)
        summary[key] = float(v) if isinstance(v, (int, float, np.number)) and not isinstance(v, bool) else (
            v if isinstance(v, str) and key not in setup.losses else "per cell")
        if key in setup.losses:
            if isinstance(v, str):  # a number typed as text ("20"), or a raster's name
                summary[key] = float(v) if setup.losses[key] is None else "per cell"
            summary[f"{key}_grid"] = setup.losses[key]  # which grid and its rates (None: one rate everywhere)
    # the point inflows (a river fed from upstream), each with the volume it brought over the run
    summary["inflows"] = [{**rec, "volume_m3": inflow_volume(rec["times_s"], rec["flows_m3_s"], res.sim_time)}
                          for rec in setup.inflows]
    if save:
        crs = setup.crs
        t_save = time.perf_counter()

        def raster(a, unit):
            return Raster(np.where(np.isfinite(a), a, -9999.0).astype("float32"), setup.transform, crs, nodata=-9999.0,
                          unit=unit)

        meta = {"engine": ENGINE, "storm": setup.storm}
        if summary["inflows"]:  # a run fed from upstream says so on each of its results, as its storm
            meta["inflows"] = [{k: rec[k] for k in ("name", "x", "y", "source", "peak_m3_s", "volume_m3")}
                               for rec in summary["inflows"]]
        # one transaction: a run id used again loses its earlier flood results (none left beside the new
        # ones), a save that fails half-way keeps the old run as it was, and the id is checked again in it
        with saving_run(twin.store, scen, run, ENGINE):
            delete_results(twin.store, scen, run, names=RESULT_NAMES)
            twin.save_result(scen, run, "max_depth", raster(res.max_depth, "m"), meta=meta)
            twin.save_result(scen, run, "max_velocity", raster(res.max_velocity, "m/s"), meta=meta)
            twin.save_result(scen, run, "hazard", raster(res.hazard, "m2/s"), meta=meta)
            twin.save_result(scen, run, "time_of_arrival", raster(res.time_of_wetting, "s"), meta=meta)
            if len(res.snapshot_times):  # none kept (snapshot_interval=None): none listed
                twin.save_result(scen, run, "depth_snapshots", res.snapshots,
                                 meta={**meta, "snapshot_times_s": [float(t) for t in res.snapshot_times],
                                       "transform": list(setup.transform)[:6], "crs": crs})
            g = res.gauges.merge(setup.gauges, left_on="gauge", right_on="sensor_id", how="left").drop(columns=["gauge"])
            twin.save_result(scen, run, "gauges", g, meta=meta)
            twin.save_result(scen, run, "mass_balance", _mass_balance_notes(res.mass_balance, water), meta=meta)
            for name, df in expo.items():
                twin.save_result(scen, run, f"exposure_{name}", df, meta={**meta, "threshold_m": threshold})
            summary["save_wall_s"] = time.perf_counter() - t_save
            twin.save_result(scen, run, "summary", summary, meta={"engine": ENGINE})
    summary["total_wall_s"] = time.perf_counter() - wall0
    return FloodRun(scenario=scen, run=run, result=res, exposure=expo, summary=summary, setup=setup)


run_flood.forwards_to = (prepare_flood,)  # its **prepare_kw go to prepare_flood (the map server checks job params)
