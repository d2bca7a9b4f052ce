"""Parameter sweeps (scenario ensembles): one engine run per combination of parameter values and scenario.

A researcher's "the 10-, 50- and 100-year storm on today's city and with the levee" is one call; every run is
saved under its scenario and run id as usual, and the sweep returns one row per run with its parameters and
the scalar figures of its summary, ready for a plot or a pivot table.

Runs go one after another by default. Given an ``executor`` (a :class:`concurrent.futures.Executor`, or a Dask
cluster's, ``dask.distributed.Client(...).get_executor()``), they run in parallel, each worker opening the
twin itself. That needs a PostGIS twin: a GeoPackage file takes one writer at a time.

Examples
--------
>>> import tempfile, os, warnings, sample_city
>>> from twin_core import Twin
>>> path = os.path.join(tempfile.mkdtemp(), "c.gpkg")
>>> _ = sample_city.build_into(path, "small", seed=0)
>>> with Twin.open(path) as twin:
...     df = twin.sweep("flood", {"storm": ["5y", "50y"], "duration": ["10min"]})
>>> df[["scenario", "storm", "duration", "run_status"]].values.tolist()
[['base', '5y', '10min', 'done'], ['base', '50y', '10min', 'done']]
>>> bool(df["max_depth_m"].is_monotonic_increasing)
True
"""

from __future__ import annotations

import itertools
import math
import numbers
import time
from typing import Any, Callable, Iterable

import pandas as pd

from twin_core.errors import ParameterError, StoreError

__all__ = ["sweep", "ENGINES"]

#: engine name -> the Twin method that runs it
ENGINES = ("flood", "traffic", "crowd")
#: parameters every run gets from the sweep itself
_OWN = ("scenario", "run", "progress")


def _members(grid: dict, scenarios: list) -> list[tuple[Any, dict]]:
    keys = list(grid)
    return [(scen, dict(zip(keys, combo))) for scen in scenarios for combo in itertools.product(*grid.values())]


def _check_grid(grid) -> dict:
    if grid is None:
        return {}
    if not isinstance(grid, dict):
        raise ParameterError(f"grid must be a dict of parameter name -> list of values, got {type(grid).__name__}")
    out = {}
    for k, v in grid.items():
        if k in _OWN:
            raise ParameterError(f"grid may not set {k!r}: give scenarios=[...] for scenarios; run ids are made by "
                                 "the sweep (run_prefix=), progress is the sweep's")
        if isinstance(v, (str, bytes)) or not isinstance(v, Iterable):
            raise ParameterError(f"grid[{k!r}] must be a list of values to try, got {v!r}; write [{v!r}] for one value")
        v = list(v)
        if not v:
            raise ParameterError(f"grid[{k!r}] is empty: give at least one value")
        out[k] = v
    return out


def _scalars(summary: dict) -> dict:
    """The summary's numbers and strings (lists and dicts stay in the stored summary)."""
    keep = {}
    for k, v in summary.items():
        if k in ("scenario", "run", "engine"):
            continue
        if isinstance(v, bool) or isinstance(v, str):
            keep[k] = v
        elif isinstance(v, numbers.Real):
            keep[k] = float(v) if not isinstance(v, numbers.Integral) else int(v)
    return keep


def _run_member(target, schema, engine: str, scenario, run: str, kwargs: dict, fixed: dict) -> tuple[dict, float]:
    """One run in a worker: open the twin, run; the summary (a plain dict) and the run's wall time."""
    from twin_core.twin import Twin

    t0 = time.perf_counter()
    with Twin.open(target, schema=schema) as twin:
        summary = dict(_call(twin, engine, scenario, run, {**fixed, **kwargs}).summary)
    return summary, time.perf_counter() - t0


def _call(twin, engine: str, scenario, run: str, kwargs: dict, progress=None):
    if engine == "crowd":
        return twin.crowd(scenario=scenario, run=run, progress=progress, **kwargs)
    return getattr(twin, engine)(scenario, run, progress=progress, **kwargs)


def sweep(twin, engine: str, grid: dict | None = None, *, scenarios=None, run_prefix: str = "sweep",
          on_error: str = "raise", executor=None, progress: Callable[[float, float], None] | None = None,
          **fixed) -> pd.DataFrame:
    """Run ``engine`` once per scenario and per combination of the ``grid`` values; one row per run.

    Parameters
    ----------
    engine : "flood", "traffic" or "crowd"
    grid : dict of parameter -> list of values
        Every combination is run (``{"storm": ["10y", "50y"], "duration": ["1h", "2h"]}``: four runs).
    scenarios : list of scenario names, optional
        Each combination runs on each (``None`` or ``"base"``: the city itself). Default: the base only.
    run_prefix : str
        Run ids are ``<run_prefix>-<sweep id>-<k>``, k = 1, 2, ... in the order of the rows.
    on_error : "raise" or "record"
        "record" keeps going and puts the error in the row (``run_status`` "failed", ``run_error``).
    executor : concurrent.futures.Executor, optional
        Runs the members in parallel (a PostGIS twin only); e.g. a ``ProcessPoolExecutor`` or
        ``dask.distributed.Client(...).get_executor()``.
    progress : callable(done, total), optional
        Called after each run with the number of runs done.
    **fixed
        Parameters given to every run (``area="A001"``, ``mode="simulate"`` ...).

    Returns
    -------
    DataFrame with ``scenario``, ``run``, the grid parameters, ``run_status`` ("done" / "failed"; in the
    table stored when the sweep is interrupted, KeyboardInterrupt, also "interrupted" and "not run"),
    ``run_error``, ``wall_s`` (the run's own time; NaN for a parallel run that failed) and every number or
    string of the run's summary (a summary key that would overwrite one of these with another value gets
    the suffix ``_result``). ``df.attrs`` holds the sweep's run id (``"sweep"``) and the ``fixed``
    parameters. It is also saved as the table result ``sweep`` under the base scenario and the sweep's run
    id (``<run_prefix>-<sweep id>``), with the grid and the fixed parameters in its meta.
    """
    from cim.results import check_run_id, new_run_id
    from twin_core.twin import _check_kwargs

    if engine not in ENGINES:
        raise ParameterError(f"engine must be one of {list(ENGINES)}, got {engine!r}")
    if on_error not in ("raise", "record"):
        raise ParameterError(f"on_error must be 'raise' or 'record', got {on_error!r}")
    grid = _check_grid(grid)
    bad_fixed = [k for k in fixed if k in ("scenario", "run", "progress")]
    if bad_fixed:
        raise ParameterError(f"{bad_fixed} are set by the sweep (scenarios=, run_prefix=, progress=)")
    clash = sorted(set(grid) & set(fixed))
    if clash:
        raise ParameterError(f"{clash} are both in grid and given as fixed parameters; give each once")
    # a misspelt parameter fails now, not after the first runs
    from twin_core.adapters import flood as _f, traffic as _t

    from twin_core.twin import Twin

    fns = {"flood": [_f.run_flood], "crowd": [Twin.crowd],  # Twin.crowd: run_crowd's keywords and ifc=, storey=
           "traffic": [_t.run_assign if fixed.get("mode", "assign") == "assign" else _t.run_simulate]}[engine]
    _check_kwargs(f"Twin.sweep({engine!r})", {**grid, **{k: v for k, v in fixed.items() if k != "mode"}}, fns,
                  skip=("self", "twin", "scenario", "run", "progress"))
    scen_list = [None] if scenarios is None else list([scenarios] if isinstance(scenarios, str) else scenarios)
    if not scen_list:
        raise ParameterError("scenarios is empty: give scenario names, or leave it out for the base")
    for s in scen_list:
        if s not in (None, "base") and s not in twin.scenarios:
            from cim.scenario import did_you_mean

            names = twin.scenarios.names()
            raise ParameterError(f"scenario {s!r} does not exist (existing: {names}); create it "
                                 "first with twin.scenarios.create()" + did_you_mean(s, names + ["base"]))
    sweep_id = new_run_id(run_prefix)
    check_run_id(sweep_id)
    members = _members(grid, scen_list)
    n = len(members)
    rows: list[dict] = []

    def row(k, scen, params, status, summary=None, error=None, wall=math.nan):
        r = {"scenario": scen or "base", "run": f"{sweep_id}-{k}", **params, "run_status": status,
             "run_error": error, "wall_s": wall}
        for key, v in _scalars(summary or {}).items():  # the summary's figures, never over the sweep's columns
            if key not in r:
                r[key] = v
            elif r[key] != v:
                r[f"{key}_result"] = v  # e.g. the crowd's "status" or a grid value the engine read otherwise
        return r

    if executor is None:
        for k, (scen, params) in enumerate(members, start=1):
            t0 = time.perf_counter()
            try:
                out = _call(twin, engine, scen, f"{sweep_id}-{k}", {**fixed, **params})
                rows.append(row(k, scen, params, "done", dict(out.summary), wall=time.perf_counter() - t0))
            except KeyboardInterrupt as exc:
                # Jupyter's "interrupt the kernel" in a long sweep: the runs done are stored, but the table that
                # names them was lost with the sweep's frame; keep it (the rest "not run") and say where
                rows.append(row(k, scen, params, "interrupted", wall=time.perf_counter() - t0))
                rows += [row(j, s_, p_, "not run") for j, (s_, p_) in enumerate(members[k:], start=k + 1)]
                try:
                    _save_sweep(twin, rows, grid, fixed, engine, scen_list, sweep_id)
                except Exception:  # noqa: BLE001 - the interrupt is what the caller must see
                    exc.add_note(f"RongTwin: sweep {sweep_id} interrupted in run {k} of {n}; its {k - 1} runs "
                                 "before are saved, the sweep table could not be")
                else:
                    exc.add_note(f"RongTwin: sweep {sweep_id} interrupted in run {k} of {n}; the {k - 1} runs "
                                 f"before it are saved, and so is the table: twin.load_result('base', "
                                 f"{sweep_id!r}, 'sweep')")
                raise
            except Exception as exc:  # noqa: BLE001 - recorded or re-raised below
                if on_error == "raise":
                    exc.add_note(f"RongTwin: run {k} of {n} of sweep {sweep_id} ({scen or 'base'}, {params}); the "
                                 f"{k - 1} before it are saved")
                    raise
                rows.append(row(k, scen, params, "failed", error=f"{type(exc).__name__}: {exc}",
                                wall=time.perf_counter() - t0))
            if progress is not None:
                progress(k, n)
    else:
        if getattr(twin.store, "kind", "") != "postgis":
            raise StoreError("a GeoPackage file takes one writer at a time, so its runs cannot go in parallel: "
                             "leave executor out (the runs go one after another) or keep the twin in PostGIS")
        target, schema = twin.store.reopen_args()
        futures = [executor.submit(_run_member, target, schema, engine, scen, f"{sweep_id}-{k}", params, fixed)
                   for k, (scen, params) in enumerate(members, start=1)]
        for k, ((scen, params), fut) in enumerate(zip(members, futures), start=1):
            try:
                summary, wall = fut.result()
                rows.append(row(k, scen, params, "done", summary, wall=wall))
            except Exception as exc:  # noqa: BLE001
                if on_error == "raise":
                    for f in futures:
                        f.cancel()
                    exc.add_note(f"RongTwin: run {k} of {n} of sweep {sweep_id} ({scen or 'base'}, {params})")
                    raise
                # the worker's own time is not known when it failed (it was `time since t0`, a name only the
                # sequential branch sets: every failed parallel member raised UnboundLocalError instead)
                rows.append(row(k, scen, params, "failed", error=f"{type(exc).__name__}: {exc}"))
            if progress is not None:
                progress(k, n)
    df = _save_sweep(twin, rows, grid, fixed, engine, scen_list, sweep_id)
    df.attrs["sweep"] = sweep_id
    df.attrs["fixed"] = dict(fixed)
    return df


def _repr(value) -> str:
    """``repr`` of a parameter value as the caller would write it: a NumPy scalar as its Python number
    (``np.linspace(...)`` values were stored as ``"np.float64(0.5)"``)."""
    import numpy as np

    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


def _save_sweep(twin, rows: list[dict], grid: dict, fixed: dict, engine: str, scen_list: list,
                sweep_id: str) -> pd.DataFrame:
    """The rows as a DataFrame, stored as the table result ``sweep`` under the base and the sweep's id."""
    df = pd.DataFrame(rows)
    stored = df.copy()
    for c in grid:  # the values as given ("50y", 3600, True ...) as text: a table column has one type
        stored[c] = stored[c].map(_repr)
    # the fixed parameters too: a stored sweep of 'duration="5min"' runs did not say so
    meta = {"engine": "twin_core.sweep", "sweep_of": engine, "grid": {k: [_repr(x) for x in v] for k, v in grid.items()},
            "fixed": {k: _repr(v) for k, v in fixed.items()}, "scenarios": [s or "base" for s in scen_list]}
    twin.save_result("base", sweep_id, "sweep", stored, meta=meta)
    return df
