"""Simulation and analysis results, keyed by scenario and run, in any store.

A result is a GeoDataFrame (stored as a layer), a DataFrame (a table), a
:class:`~cim.raster.Raster` (a raster), a NumPy array (an ``.npy`` blob) or a
JSON-able dict. The index of results lives in the store metadata under
``result:<scenario>:<run>:<name>``, so both stores hold results the same way.
The scenario is ``"base"`` or a scenario name (any script, kept in NFC: see
:func:`cim.scenario.check_scenario_name`); run ids and result names are ASCII
letters, digits, ``_``, ``-`` and ``.``.

Examples
--------
>>> import tempfile, os, pandas as pd
>>> from cim.store import open_store
>>> store = open_store(os.path.join(tempfile.mkdtemp(), "r.gpkg"), create=True, crs="EPSG:4544")
>>> save_result(store, "base", "run1", "summary", {"max_depth_m": 1.25})
>>> load_result(store, "base", "run1", "summary")
{'max_depth_m': 1.25}
>>> save_result(store, "base", "run1", "gauges", pd.DataFrame({"t": [0, 60], "h": [0.0, 0.1]}))
>>> list_results(store)[["scenario", "run", "name", "kind"]].values.tolist()
[['base', 'run1', 'gauges', 'table'], ['base', 'run1', 'summary', 'json']]
>>> store.close()
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import zlib
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Iterator

import numpy as np
import pandas as pd

from cim.raster import Raster
from cim.scenario import check_scenario_name, normalise_scenario_name
from twin_core.errors import LayerNotFoundError, SchemaError

__all__ = ["save_result", "load_result", "list_results", "delete_results", "new_run_id", "result_ref", "check_run_id",
           "check_run_free", "claim_run", "saving_run", "engine_of"]

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,79}\Z")


def _check(part: str, what: str) -> str:
    if not isinstance(part, str) or not _KEY.match(part):
        raise SchemaError(
            f"{what} {part!r} is not valid: use letters, digits, '_', '-', '.' (at most 80, starting with a letter or digit)"
        )
    return part


def check_run_id(run: str) -> str:
    """``run`` if it is a valid run id, else a clear SchemaError (engines check before they run, not when saving)."""
    return _check(run, "run id")


def engine_of(meta) -> str | None:
    """The engine or analysis that wrote a result, from its ``meta`` (``"analysis"`` before ``"engine"``, as
    ``twin.runs()`` reads them), as its short name: ``"flood"`` for ``"simulation.flood"``, ``"sweep"`` for
    ``"twin_core.sweep"``; None for a result a user saved without one.

    >>> engine_of({"engine": "simulation.flood"}), engine_of({"analysis": "sunlight"}), engine_of({})
    ('flood', 'sunlight', None)
    """
    if not isinstance(meta, dict):
        return None
    name = meta.get("analysis") or meta.get("engine")
    if not name:
        return None
    name = str(name)
    return {"twin_core.sweep": "sweep"}.get(name, name.rsplit(".", 1)[-1])


def check_run_free(store, scenario: str, run: str, engine: str) -> None:
    """Refuse to reuse a run id that is not ``engine``'s to write under ``scenario``:

    - one that holds another engine's or analysis's run: a second engine's results under it would overwrite
      the first's (every engine writes a ``summary``) or mix with them (an analysis writes no summary: a flood
      run under a sunlight run's id went through). Any of the run's results says who wrote it (its meta
      ``analysis`` or ``engine``, :func:`engine_of`; ``"simulation.flood"`` and ``"flood"`` are one);
    - one that holds only results saved by hand (:func:`save_result` / ``twin.save_result`` without an
      ``engine`` or ``analysis`` in their meta, so no engine's run claims the id): an engine's results would
      overwrite them (a hand-made ``summary``) or mix with them, and ``twin.runs()`` would call the mix that
      engine's run.

    An engine re-running its own id is fine, and so are results a user added to such a run (the engine
    leaves them as they are). The error says how to free the id (:func:`delete_results`)."""
    from twin_core.errors import ParameterError

    scenario = normalise_scenario_name(scenario) or "base"
    idx = list_results(store, scenario=scenario, run=run)
    if not len(idx):
        return
    mine = engine_of({"engine": engine})
    owners = [engine_of(m) for m in idx["meta"]]

    def a(word) -> str:
        return f"{'an' if str(word)[:1].lower() in 'aeiou' else 'a'} {word}"

    todo = (f"Give this run another id, or delete the results under it first: cim.results.delete_results(store, "
            f"{scenario!r}, {run!r})")
    for name, meta, other in zip(idx["name"], idx["meta"], owners):
        if other is None or other == mine:
            continue
        label = (meta.get("analysis") or meta.get("engine")) if isinstance(meta, dict) else other
        raise ParameterError(f"run {run!r} under scenario {scenario!r} holds {a(label)} run; {a(engine)} run under "
                             f"the same id would overwrite or mix with its results (such as {name!r}). {todo}")
    if not any(owners):
        names = sorted(idx["name"])
        raise ParameterError(f"run {run!r} under scenario {scenario!r} holds results saved by hand ({names[:5]}"
                             f"{f' and {len(names) - 5} more' if len(names) > 5 else ''}), no engine's run; "
                             f"{a(engine)} run under the same id would overwrite or mix with them. {todo}")


def claim_run(store, scenario: str | None, run: str | None, engine: str, prefix: str | None = None, *,
              save: bool = True) -> str:
    """The id a run of ``engine`` goes under in ``scenario`` (None: the base): a new one
    (:func:`new_run_id` with ``prefix``; default the engine's short name) when ``run`` is None; else ``run``
    checked before anything is computed: a bad id fails saved or not (:func:`check_run_id`; it failed only
    when saving, after the whole run, or showed unsaved as ``<FloodRun 'base'/5 ...>``), and one holding
    another engine's or analysis's results, or results saved by hand, is refused when the run is saved
    (:func:`check_run_free`; nothing stored, nothing to mix with). Every engine and analysis claims its run id
    through this, and saves its results in :func:`saving_run`, which checks the id again.

    >>> import tempfile, os
    >>> from cim.store import open_store
    >>> store = open_store(os.path.join(tempfile.mkdtemp(), "r.gpkg"), create=True, crs="EPSG:4544")
    >>> claim_run(store, None, "storm50", "simulation.flood")
    'storm50'
    >>> claim_run(store, None, None, "simulation.flood").startswith("flood-")
    True
    >>> save_result(store, "base", "notes", "remarks", {"by": "planner"})  # no engine: saved by hand
    >>> try:
    ...     claim_run(store, None, "notes", "simulation.flood")
    ... except ValueError as exc:
    ...     print(str(exc).split("; ")[0])
    run 'notes' under scenario 'base' holds results saved by hand (['remarks']), no engine's run
    >>> store.close()
    """
    if run is None:
        return new_run_id(prefix or engine_of({"engine": engine}) or "run")
    check_run_id(run)
    if save:
        check_run_free(store, normalise_scenario_name(scenario) or "base", run, engine)
    return run


@contextmanager
def saving_run(store, scenario: str | None, run: str, engine: str) -> Iterator:
    """The store transaction a run of ``engine`` saves its results in under ``scenario`` (None: the base) and
    ``run``, with the id checked again inside it (:func:`check_run_free`): :func:`claim_run` checked it before
    the run computed, and another process may have saved another engine's results (or some by hand) under it
    since. The check and the writes are one transaction that no other save of the same scenario and run id
    runs beside (:meth:`cim.store.base.Store.run_lock`), so two runs saving one id at once do not mix their
    results: the later one is refused, or, a run of the same engine, replaces the earlier one's. A refused
    save writes nothing.

    >>> import tempfile, os
    >>> from cim.store import open_store
    >>> store = open_store(os.path.join(tempfile.mkdtemp(), "r.gpkg"), create=True, crs="EPSG:4544")
    >>> run = claim_run(store, None, "storm50", "simulation.flood")
    >>> with saving_run(store, None, run, "simulation.flood"):
    ...     save_result(store, "base", run, "summary", {"max_depth_m": 0.4}, meta={"engine": "simulation.flood"})
    >>> store.close()
    """
    scenario = normalise_scenario_name(scenario) or "base"
    check_run_id(run)
    # the transaction first: a store wrapper that serialises its callers (the map server's) holds its lock for
    # the whole block, not only while run_lock is called
    with store.transaction(), store.run_lock(_run_key(scenario, run)):
        check_run_free(store, scenario, run, engine)
        yield store


def _run_key(scenario: str, run: str) -> str:
    """The key of :meth:`~cim.store.base.Store.run_lock` for run ``run`` under ``scenario``."""
    return f"{normalise_scenario_name(scenario) or 'base'}\x00{run}"


def new_run_id(prefix: str = "run") -> str:
    """A sortable run id such as ``run-20261124T163000-1a2b``."""
    now = datetime.now(timezone.utc)
    tail = hashlib.sha1(now.isoformat().encode()).hexdigest()[:4]
    return f"{prefix}-{now.strftime('%Y%m%dT%H%M%S')}-{tail}"


#: zlib level for array results: 1 packs the zeros of density maps and dry flood cells almost as well as 9,
#: several times faster
ARRAY_ZLIB_LEVEL = 1
_NPY_MAGIC = b"\x93NUMPY"


def result_ref(scenario: str, run: str, name: str) -> str:
    """The layer/table/raster name a result is stored under."""
    scenario = normalise_scenario_name(scenario)
    h = hashlib.sha1(f"{scenario}\x00{run}\x00{name}".encode()).hexdigest()[:16]
    return f"res_{h}"


def _meta_key(scenario: str, run: str, name: str) -> str:
    return f"result:{normalise_scenario_name(scenario)}:{run}:{name}"


def save_result(store, scenario: str, run: str, name: str, obj: Any, *, meta: dict | None = None) -> None:
    """Store ``obj`` as result ``name`` of ``run`` under ``scenario`` (replacing one of the same key)."""
    import geopandas as gpd

    scenario = check_scenario_name(scenario, allow_base=True)
    _check(run, "run id"), _check(name, "result name")
    ref = result_ref(scenario, run, name)
    key = _meta_key(scenario, run, name)
    # under the run's lock: a run saving under this id (saving_run) checked it free, and stays so, until it commits
    with store.transaction(), store.run_lock(_run_key(scenario, run)):
        old = store.get_meta().get(key)
        if old is not None:
            _delete_payload(store, old)
        if isinstance(obj, gpd.GeoDataFrame):
            kind = "layer"
            store.write_layer(ref, obj)
        elif isinstance(obj, pd.DataFrame):
            kind = "table"
            store.write_table(ref, obj)
        elif isinstance(obj, Raster):
            kind = "raster"
            store.write_raster(ref, obj)
        elif isinstance(obj, np.ndarray):
            kind = "array"
            buf = io.BytesIO()
            np.save(buf, obj, allow_pickle=False)
            # compressed: density maps over time are >99 % zeros, flood depth snapshots mostly dry ground
            # (a crowd run's 27 MB of densities become ~0.3 MB). load_result reads either form
            raw = buf.getvalue()
            packed = zlib.compress(raw, ARRAY_ZLIB_LEVEL)
            small = len(packed) < 0.9 * len(raw)
            store.put_blob(f"results/{ref}.npy", packed if small else raw,
                           mime="application/x-npy+zlib" if small else "application/x-npy")
        elif isinstance(obj, dict):
            kind = "json"
            obj = _plain_json(obj, name)
        else:
            raise TypeError(
                f"cannot store a result of type {type(obj).__name__}; use a GeoDataFrame, DataFrame, Raster, ndarray or dict"
            )
        entry = {
            "scenario": scenario, "run": run, "name": name, "kind": kind, "ref": ref,
            "created": datetime.now(timezone.utc).isoformat(), "meta": meta or {},
        }
        if kind == "json":
            entry["value"] = obj
            # the same text again: PostgreSQL's jsonb keeps a dict's keys in its own order (shortest first),
            # so the summary read back (and exported to .json) came out shuffled against the GeoPackage's
            entry["value_json"] = json.dumps(obj, ensure_ascii=False)
        store.set_meta({key: entry})


def _json_default(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


def finite_or_none(v: Any, bad: list | None = None) -> Any:
    """``v`` (dicts, lists, tuples, numbers) with every NaN / infinity as None, as JSON can keep it
    (``null``; ``NaN`` is refused by PostgreSQL's jsonb, jq and JSON.parse). Replaced values are
    appended to ``bad`` when given."""
    if isinstance(v, float) and not math.isfinite(v):
        if bad is not None:
            bad.append(v)
        return None
    if isinstance(v, dict):
        return {k: finite_or_none(x, bad) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [finite_or_none(x, bad) for x in v]
    return v


def _plain_json(obj: dict, name: str) -> dict:
    """``obj`` as plain JSON values, the same in both stores: NumPy numbers and arrays as numbers and
    lists (they became the text '1.5' and '[0 1 2]'), NaN and infinity as null with a warning (the
    GeoPackage kept them, PostgreSQL's jsonb refused the whole result: "Token "NaN" is invalid")."""
    from twin_core.errors import TwinWarning, twin_warn

    bad: list = []
    out = finite_or_none(json.loads(json.dumps(obj, default=_json_default)), bad)
    if bad:
        twin_warn(f"result {name!r} holds {len(bad)} NaN/infinite number(s), which JSON cannot keep; they are "
                      "stored as None. Store such numbers as an array or a table to keep them", TwinWarning,
                      stacklevel=3)
    return out


def _delete_payload(store, entry: dict) -> None:
    kind, ref = entry.get("kind"), entry.get("ref")
    if kind == "layer" and store.has_layer(ref):
        store.delete_layer(ref)
    elif kind == "table" and store.has_table(ref):
        store.delete_table(ref)
    elif kind == "raster" and store.has_raster(ref):
        store.delete_raster(ref)
    elif kind == "array":
        store.delete_blob(f"results/{ref}.npy")


def load_result(store, scenario: str, run: str, name: str):
    """Load a stored result in the type it was saved as."""
    scenario = normalise_scenario_name(scenario)
    entry = store.get_meta().get(_meta_key(scenario, run, name))
    if entry is None:
        have = list_results(store, scenario=scenario, run=run)
        raise LayerNotFoundError(
            f"no result {name!r} for scenario {scenario!r} run {run!r}; results there: {have['name'].tolist()}"
        )
    kind, ref = entry["kind"], entry["ref"]
    if kind == "layer":
        return store.read_layer(ref)
    if kind == "table":
        return store.read_table(ref)
    if kind == "raster":
        return store.read_raster(ref)
    if kind == "array":
        data = store.get_blob(f"results/{ref}.npy")
        if not data.startswith(_NPY_MAGIC):  # compressed (save_result since 2026-12-04), else a plain .npy
            data = zlib.decompress(data)
        return np.load(io.BytesIO(data), allow_pickle=False)
    if isinstance(entry.get("value_json"), str):  # in the order it was saved (results since 2026-12-04)
        return json.loads(entry["value_json"])
    return entry.get("value")


def list_results(store, scenario: str | None = None, run: str | None = None, name: str | None = None) -> pd.DataFrame:
    """Index of stored results (columns scenario, run, name, kind, ref, created, meta), optionally only those of
    ``scenario``, ``run`` and/or ``name``. ``meta`` holds what the result was made with (e.g. the
    ``snapshot_times_s`` of a flood run's ``depth_snapshots``)."""
    rows = [v for k, v in store.get_meta().items() if k.startswith("result:")]
    df = pd.DataFrame(rows, columns=["scenario", "run", "name", "kind", "ref", "created", "meta"])
    if scenario is not None:
        df = df[df["scenario"] == normalise_scenario_name(scenario)]
    if run is not None:
        df = df[df["run"] == run]
    if name is not None:
        df = df[df["name"] == name]
    return df.sort_values(["scenario", "run", "name"]).reset_index(drop=True)


def delete_results(store, scenario: str, run: str | None = None, names=None) -> int:
    """Delete the results of a scenario (or of one run; or only those of ``names`` in it). Returns how many went."""
    df = list_results(store, scenario=scenario, run=run)
    if names is not None:
        df = df[df["name"].isin(list(names))]
    meta = store.get_meta()
    with store.transaction():
        for _, row in df.iterrows():
            key = _meta_key(row["scenario"], row["run"], row["name"])
            _delete_payload(store, meta[key])
            store.delete_meta([key])
    return len(df)
