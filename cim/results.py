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
from contextlib import ExitStack
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from cim.raster import Raster
from cim.scenario import check_scenario_name, normalise_scenario_name
from twin_core.errors import LayerNotFoundError, SchemaError

__all__ = ["save_result", "load_result", "list_results", "delete_results", "delete_run", "new_run_id", "result_ref",
           "check_run_id", "check_run_free", "claim_run", "saving_run", "engine_of", "runs_using", "stale_results",
           "stale_runs", "mark_stale", "LAYERS_USED", "RASTERS_USED"]

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,79}\Z")


def _check(part: str, what: str) -> str:
    if not isinstance(part, str) or not _KEY.match(part):
        raise SchemaError(
            f"{what} {part!r} is not valid: use ASCII letters (A-Z, a-z), digits, '_', '-', '.' (at most 80, starting with "
            "a letter or digit; a run's id also names files and URLs: put other scripts, such as Chinese, in a "
            "scenario's name or description)"
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

    - a new run (none under ``scenario`` yet) whose id is taken under another scenario: one id would name two
      runs, and ``twin runs RUN``, ``twin export --run``, ``twin compare`` and ``twin.view(result=)``, which
      find a run by its id, could no longer tell which (a twin that holds such a pair from before still reads:
      those name the scenario).

    An engine re-running its own id is fine (it replaces its earlier run: :func:`saving_run` warns), and so
    are results a user added to such a run (the engine leaves them as they are). The error says how to free
    the id: ``twin.delete_run()`` or ``twin runs TARGET RUN --delete`` (:func:`delete_run`)."""
    from twin_core.errors import ParameterError

    scenario = normalise_scenario_name(scenario) or "base"
    everywhere = list_results(store, run=run)
    idx = everywhere[everywhere["scenario"] == scenario].reset_index(drop=True)
    if not len(idx):
        others = sorted(set(everywhere["scenario"]))
        if others:
            held = f"scenario {others[0]!r}" if len(others) == 1 else f"scenarios {others}"
            raise ParameterError(
                f"run id {run!r} is taken under {held}; one id names one run (`twin runs`, `twin export "
                f"--run`, `twin compare` and twin.view(result=...) find a run by its id alone), so "
                f"{_a(engine_of({'engine': engine}))} run under scenario {scenario!r} needs another id, such as "
                f"{_other_id(run, scenario)!r} (run=, CLI --run), or delete that run first: "
                f"{_delete_hint(run, others[0])}")
        return
    mine = engine_of({"engine": engine})
    owners = [engine_of(m) for m in idx["meta"]]
    todo = f"Give this run another id, or delete run {run!r} first: {_delete_hint(run, scenario)}"
    for name, meta, other in zip(idx["name"], idx["meta"], owners):
        if other is None or other == mine:
            continue
        label = (meta.get("analysis") or meta.get("engine")) if isinstance(meta, dict) else other
        raise ParameterError(f"run {run!r} under scenario {scenario!r} holds {_a(label)} run; {_a(engine)} run under "
                             f"the same id would overwrite or mix with its results (such as {name!r}). {todo}")
    if not any(owners):
        names = sorted(idx["name"])
        raise ParameterError(f"run {run!r} under scenario {scenario!r} holds results saved by hand ({names[:5]}"
                             f"{f' and {len(names) - 5} more' if len(names) > 5 else ''}), no engine's run; "
                             f"{_a(engine)} run under the same id would overwrite or mix with them. {todo}")


def _a(word) -> str:
    """``word`` with its article: "a flood", "an access"."""
    return f"{'an' if str(word)[:1].lower() in 'aeiou' else 'a'} {word}"


def _delete_hint(run: str, scenario: str) -> str:
    """How to delete run ``run`` of ``scenario``, from Python and from the command line."""
    return (f"twin.delete_run({run!r}, scenario={scenario!r}) (CLI: twin runs TARGET {run} --delete --scenario "
            f"{scenario})")


def _other_id(run: str, scenario: str) -> str:
    """A run id for ``run`` under ``scenario`` that says so: ``storm50-levee`` (a scenario name in another
    script, which a run id cannot hold: ``storm50-2``).

    >>> _other_id("storm50", "levee"), _other_id("storm50", "暴雨")
    ('storm50-levee', 'storm50-2')
    """
    tail = re.sub(r"[^A-Za-z0-9_.\-]+", "-", scenario).strip("-_.")[:40] or "2"
    return f"{run[:79 - len(tail)]}-{tail}"


def claim_run(store, scenario: str | None, run: str | None, engine: str, prefix: str | None = None, *,
              save: bool = True) -> str:
    """The id a run of ``engine`` goes under in ``scenario`` (None: the base): a new one
    (:func:`new_run_id` with ``prefix``; default the engine's short name) when ``run`` is None; else ``run``
    checked before anything is computed: a bad id fails saved or not (:func:`check_run_id`; it failed only
    when saving, after the whole run, or showed unsaved as ``<FloodRun 'base'/5 ...>``), and one holding
    another engine's or analysis's results, or results saved by hand, is refused when the run is saved
    (:func:`check_run_free`; nothing stored, nothing to mix with). A run to be saved in a twin this handle may
    not write (a read-only file, a role that may only read) is refused here too, before anything is computed
    (:meth:`cim.store.base.Store.check_writable`), not after the whole run. Every engine and analysis claims its
    run id through this, and saves its results in :func:`saving_run`, which checks the id again.

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
    if run is not None:
        check_run_id(run)
    if save:  # a twin this handle may not write fails now, not when the results are saved after the whole run
        store.check_writable(before=f"{_a(engine_of({'engine': engine}))} run")
    if run is None:
        return new_run_id(prefix or engine_of({"engine": engine}) or "run")
    if save:
        check_run_free(store, normalise_scenario_name(scenario) or "base", run, engine)
    return run


def saving_run(store, scenario: str | None, run: str, engine: str) -> "_SavingRun":
    """The store transaction a run of ``engine`` saves its results in under ``scenario`` (None: the base) and
    ``run``, with the id checked again inside it (:func:`check_run_free`): :func:`claim_run` checked it before
    the run computed, and another process may have saved another engine's results (or some by hand) under it
    since. The check and the writes are one transaction that no other save of the same scenario and run id
    runs beside (:meth:`cim.store.base.Store.run_lock`), so two runs saving one id at once do not mix their
    results: the later one is refused, or, a run of the same engine, replaces the earlier one's. A refused
    save writes nothing.

    A save that replaces an earlier run of the engine warns as its block ends, before it commits
    (:class:`~twin_core.errors.RunReplacedWarning`: "replaces run ..."), saying when that run was saved and which
    stored runs used it (:func:`runs_using`): they will refer to the new results. Before, not after: a caller who
    turns warnings into errors (``warnings.simplefilter("error")``, as careful notebooks and test suites do) gets
    the warning raised out of the block, and the save is then rolled back with the earlier run kept as it was, so
    a call that fails has saved nothing. Warned after the commit, the escalated warning made the engine call fail
    (a sweep marked the run failed) though its results were saved and the earlier run gone.

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
    return _SavingRun(store, scenario, run, engine)


class _SavingRun:
    """The block of :func:`saving_run`. A class, not a generator (``contextlib.contextmanager``): its warning
    is raised here, and ``twin_warn`` climbs the project's frames to the caller's line, but stopped at
    contextlib's."""

    def __init__(self, store, scenario: str, run: str, engine: str) -> None:
        self.store, self.scenario, self.run, self.engine = store, scenario, run, engine
        self._stack: ExitStack | None = None
        self._replaced: str | None = None

    def __enter__(self):
        with ExitStack() as stack:  # anything failing here closes (rolls back) what was entered
            # the transaction first: a store wrapper that serialises its callers (the map server's) holds its
            # lock for the whole block, not only while run_lock is called
            self._outermost = not self.store.in_transaction  # else the caller's transaction commits, or not, later
            stack.enter_context(self.store.transaction())
            stack.enter_context(self.store.run_lock(_run_key(self.scenario, self.run)))
            check_run_free(self.store, self.scenario, self.run, self.engine)
            self._replaced = _replacing(self.store, self.scenario, self.run, self.engine)
            self._stack = stack.pop_all()
        return self.store

    def __exit__(self, *exc) -> bool:
        stack, self._stack = self._stack, None
        if exc[0] is None and self._replaced:
            # warned before the commit, inside the transaction: a warning the caller's filter makes an error
            # rolls the save back (the earlier run stays) and is what the caller gets; see saving_run
            from twin_core.errors import RunReplacedWarning, twin_warn

            try:
                twin_warn(self._replaced if self._outermost else _pending(self._replaced), RunReplacedWarning)
            except BaseException as raised:
                if stack is None or not stack.__exit__(type(raised), raised, raised.__traceback__):
                    raise
                return False
        return bool(stack.__exit__(*exc)) if stack is not None else False


def _replacing(store, scenario: str, run: str, engine: str) -> str | None:
    """What :func:`saving_run` warns when run ``run`` of ``scenario`` holds an earlier run of ``engine``, which
    the save replaces: when it was saved and the runs that used it (None: no earlier run)."""
    mine = engine_of({"engine": engine})
    idx = list_results(store, scenario=scenario, run=run)
    old = idx[[engine_of(m) == mine for m in idx["meta"]]]
    if not len(old):
        return None
    when = pd.to_datetime(old["created"], utc=True, format="ISO8601", errors="coerce").max()
    saved = "" if pd.isna(when) else f" saved {when.strftime('%Y-%m-%d %H:%M:%S')} UTC"
    msg = f"replaces run {run!r} under {scenario!r} ({_a(mine)}{saved})"
    users = runs_using(store, scenario, run)
    if users:
        msg += (f"; runs that used it will refer to the new results: {_named_runs(users, scenario)} (run them "
                "again for results that match)")
    return msg


def _named_runs(runs: list[tuple[str, str, str]], scenario: str) -> str:
    """``runs`` (scenario, run, engine) as a warning names them: "traffic 'x', compare 'c' (under 'levee')", the
    first ten (:func:`runs_using` gives them all)."""
    named = [f"{engine} {run!r}" + ("" if scen == scenario else f" (under {scen!r})") for scen, run, engine in runs]
    return ", ".join(named[:10]) + (f" and {len(named) - 10} more" if len(named) > 10 else "")


#: how a run's summary names a run it used under its own scenario: a flood run (traffic, access, crowd:
#: ``flooded_by``), a traffic run whose speeds it drove at (access: ``speeds_from``; before it, only in the
#: text of ``speeds``)
_USED_KEYS = ("flooded_by", "speeds_from")
_SPEEDS_TEXT = re.compile(r"^traffic run (?P<run>[A-Za-z0-9][A-Za-z0-9_.\-]*)'s mean speeds")


def runs_using(store, scenario: str | None, run: str) -> list[tuple[str, str, str]]:
    """The stored runs that used run ``run`` of ``scenario`` (None: the base), as ``(scenario, run, engine)``,
    sorted: a traffic, access or crowd run under the same scenario flooded by it (its summary's
    ``flooded_by``), an access run that drove at its speeds (``speeds_from``), a comparison of it (engine
    ``compare``: its ``a`` or ``b``, under any scenario). What they stored was made from the run as it was:
    replacing or deleting it leaves them referring to other results, or to none.

    >>> import tempfile, os
    >>> from cim.store import open_store
    >>> store = open_store(os.path.join(tempfile.mkdtemp(), "r.gpkg"), create=True, crs="EPSG:4544")
    >>> save_result(store, "base", "jam", "summary", {"flooded_by": "storm50"}, meta={"engine": "simulation.traffic"})
    >>> runs_using(store, None, "storm50")
    [('base', 'jam', 'traffic')]
    >>> store.close()
    """
    scenario = normalise_scenario_name(scenario) or "base"
    out = set()
    for key, entry in store.get_meta().items():
        if not key.startswith("result:") or not isinstance(entry, dict) or entry.get("kind") != "json":
            continue
        scen, other = entry.get("scenario"), entry.get("run")
        if (scen, other) == (scenario, run):
            continue
        engine = engine_of(entry.get("meta"))
        if engine != "compare" and not (scen == scenario and entry.get("name") == "summary"):
            continue  # only a summary of the scenario, or a comparison, names the runs it used: parse no other
        try:
            value = _json_value(entry)
        except ValueError:
            continue
        if not isinstance(value, dict):
            continue
        if engine == "compare":  # a comparison names its runs as [scenario, run]
            used = any(isinstance(v, list) and len(v) == 2 and v[1] == run
                       and normalise_scenario_name(str(v[0])) == scenario for v in (value.get("a"), value.get("b")))
        else:
            m = _SPEEDS_TEXT.match(str(value.get("speeds") or ""))
            used = any(value.get(k) == run for k in _USED_KEYS) or (m is not None and m["run"] == run)
        if used:
            out.add((scen, other, engine or "run"))
    return sorted(out)


# -- stale runs: made before something they read changed -------------------------------------------------------

#: the base layers each engine's runs read (the adapters in twin_core/adapters): a run made before one of them
#: was written again is not the answer of the twin as it is now. Traffic: the network, the buildings that make
#: its land-use demand, closure ``areas``; access: those and the stations (``pois``); crowd: the plaza
#: (``areas``), the buildings cut out of it, the roads that give its exits (a run on an IFC storey: none of
#: them, :func:`_layers_read`); flood: buildings (blocks or raised ground; the grids are in RASTERS_USED);
#: sunlight and viewshed: buildings (and the DEM).
LAYERS_USED = {
    "traffic": ("road_links", "buildings", "areas"),
    "access": ("road_links", "buildings", "pois", "areas"),
    "crowd": ("areas", "buildings", "road_links"),
    "flood": ("buildings",),
    "sunlight": ("buildings",),
    "viewshed": ("buildings",),
}
#: the base rasters each engine's runs read
RASTERS_USED = {"flood": ("dem", "manning"), "sunlight": ("dem",), "viewshed": ("dem",)}
#: a flood's exposure table of a layer (exposure_road_links ...) also went stale when that layer was written again
_EXPOSURE = re.compile(r"^exposure_(buildings|road_links|pois)\Z")
#: how a run's summary names a run of its scenario whose results it used (:data:`_USED_KEYS`), and what that
#: run is: a flood run (traffic, access, crowd: ``flooded_by``), a traffic run it drove at the speeds of
#: (access: ``speeds_from``, or before it the text of ``speeds``)
_USED_RUN_LABEL = {"flooded_by": "flood", "speeds_from": "traffic"}
#: the engines whose summary says what the run read (a crowd's IFC storey) or which runs it used
_SUMMARY_SAYS = ("traffic", "access", "crowd")
_THIS_RUN = ", after this run"


def _when(t) -> str:
    return f"{t:%Y-%m-%d %H:%M} UTC"


def _layers_read(engine: str | None, summary: dict | None) -> tuple[str, ...]:
    """The base layers a run of ``engine`` read (:data:`LAYERS_USED`), narrowed by what its ``summary``
    records: a crowd run on an IFC storey (``ifc``: ``twin.crowd(ifc=..., storey=...)``) read no layer, its
    floor came from the IFC file; one on a plaza with its exits given (``exits_from`` ``"explicit"``) did not
    read the roads. Without a summary (saved by hand), all its engine's.

    >>> _layers_read("crowd", {"ifc": "house.ifc", "storey": "Ground"}), _layers_read("crowd", {"area_id": "A1"})
    ((), ('areas', 'buildings', 'road_links'))
    """
    used = LAYERS_USED.get(engine, ())
    if engine == "crowd" and isinstance(summary, dict):
        if summary.get("ifc"):
            return ()
        if summary.get("exits_from") == "explicit":
            return tuple(n for n in used if n != "road_links")
    return used


def _as_that_run(why: str) -> str:
    """A reason of a run another run used, worded from the other's side ("..., after that run")."""
    return why[:-len(_THIS_RUN)] + ", after that run" if why.endswith(_THIS_RUN) else why


class _Staleness:
    """The look-ups of one :func:`stale_results` call, each made once: a scenario's last edit, when a layer or
    raster was last written, the store's index of results (only when a run's summary is needed), a run's
    summary, and the reasons of a run another run used. ``meta``: the store's :meth:`get_meta` when the caller
    read it already (the index is then taken from it, not read again)."""

    def __init__(self, store, scenarios=None, meta: dict | None = None) -> None:
        from cim.scenario import Scenarios

        self.store = store
        self._meta = meta
        self.scenarios = scenarios if scenarios is not None else Scenarios(store)
        self._last: dict = {}
        self._scen_meta: dict | None = None
        self._have: dict = {}  # "layer" / "raster" -> the names in the store
        self._written: dict = {}  # (kind, name) -> when it was last written, or None
        self._index: dict | None = None  # (scenario, run) -> its index entries
        self._summary: dict = {}
        self._span: dict = {}
        self._used: dict = {}  # (scenario, run) -> the reasons of a run another run used

    def last_edited(self, scen: str):
        if scen not in self._last:  # the base is never edited; a deleted scenario's results have nothing to go stale
            from cim.scenario import BASE, Scenario

            if self._scen_meta is None:  # the scenarios' metadata, read once (three reads a scenario before)
                self._scen_meta = (self.scenarios._meta() if self._meta is None else
                                   {k.split(":", 1)[1]: v for k, v in self._meta.items() if k.startswith("scenario:")})
            name = normalise_scenario_name(scen)
            known = name != BASE and name in self._scen_meta
            self._last[scen] = Scenario(self.scenarios, name)._last_edited(self._scen_meta) if known else None
        return self._last[scen]

    def written(self, kind: str, name: str):
        if (kind, name) not in self._written:
            if kind not in self._have:
                self._have[kind] = set(self.store.list_layers() if kind == "layer" else self.store.list_rasters())
            when = None
            if name in self._have[kind]:  # a layer since deleted: nothing newer to compare with
                when = self.store.layer_written(name) if kind == "layer" else self.store.raster_written(name)
            self._written[(kind, name)] = when
        return self._written[(kind, name)]

    def index(self) -> dict:
        if self._index is None:
            self._index = {}
            for key, entry in (self.store.get_meta() if self._meta is None else self._meta).items():
                if key.startswith("result:") and isinstance(entry, dict):
                    self._index.setdefault((entry.get("scenario"), entry.get("run")), []).append(entry)
        return self._index

    def summary(self, scen: str, run: str) -> dict | None:
        if (scen, run) not in self._summary:
            entry = next((e for e in self.index().get((scen, run), ())
                          if e.get("name") == "summary" and e.get("kind") == "json"), None)
            try:
                value = _json_value(entry) if entry is not None else None
            except ValueError:
                value = None
            self._summary[(scen, run)] = value if isinstance(value, dict) else None
        return self._summary[(scen, run)]

    def span(self, scen: str, run: str):
        """(first, last) time a result of the run was saved; None for a run with no results (deleted)."""
        if (scen, run) not in self._span:
            entries = self.index().get((scen, run), [])
            if not entries:
                self._span[(scen, run)] = None
            else:
                t = pd.to_datetime(pd.Series([e.get("created") for e in entries], dtype=object), utc=True,
                                   format="ISO8601", errors="coerce")
                self._span[(scen, run)] = (t.min(), t.max())
        return self._span[(scen, run)]

    def reasons(self, scen: str, run: str, engine: str | None, name: str | None, made) -> list[tuple]:
        """Why result ``name`` of run ``run`` (made at ``made``) is stale, as (cause, text) pairs: the cause
        (("layer", "dem"), ("scenario", s), ("rerun", s, run) ...) lets a run that used this one leave out
        what it was itself made before."""
        out = []
        last = self.last_edited(scen)
        if last is not None and made < last:
            out.append((("scenario", scen), f"scenario {scen} edited {_when(last)}{_THIS_RUN}"))
        summary = self.summary(scen, run) if engine in _SUMMARY_SAYS else None
        m = _EXPOSURE.match(name) if engine == "flood" and name else None
        used = [("raster", n) for n in RASTERS_USED.get(engine, ())] + \
            [("layer", n) for n in dict.fromkeys(_layers_read(engine, summary) + ((m.group(1),) if m else ()))]
        for kind, n in used:
            when = self.written(kind, n)
            if when is not None and made < when:
                out.append(((kind, n), f"{kind} {n} replaced {_when(when)}{_THIS_RUN}"))
        if summary:
            own = {cause for cause, _ in out}
            for other, label in _runs_named(summary):
                if other != run:
                    out += [r for r in self.used_run(scen, other, label, made) if r[0] not in own]
        return out

    def used_run(self, scen: str, other: str, label: str, made) -> list[tuple]:
        """Why a run made at ``made`` that used run ``other`` (a ``label`` run: flood, traffic) of ``scen`` is
        stale through it: it was deleted, saved again after ``made``, or is stale itself."""
        span = self.span(scen, other)
        if span is None:
            return [(("gone", scen, other), f"{label} run {other} it used was deleted")]
        if not pd.isna(span[1]) and made < span[1]:
            return [(("rerun", scen, other), f"{label} run {other} re-run {_when(span[1])}{_THIS_RUN}")]
        if (scen, other) not in self._used:
            self._used[(scen, other)] = []  # a run naming itself through others: no endless chain
            entries = self.index().get((scen, other), [])
            engine = next((e for e in (engine_of(x.get("meta")) for x in entries) if e), None)
            self._used[(scen, other)] = [] if pd.isna(span[0]) else [
                (cause, f"{label} run {other} is stale: {_as_that_run(why)}")
                for cause, why in self.reasons(scen, other, engine, None, span[0])]
        return self._used[(scen, other)]


def _runs_named(summary: dict) -> list[tuple[str, str]]:
    """The runs of its own scenario a run's ``summary`` says it used, with what they are: ``[("storm50",
    "flood")]`` (:data:`_USED_RUN_LABEL`; as :func:`runs_using` finds them)."""
    out = [(summary[k], label) for k, label in _USED_RUN_LABEL.items()
           if isinstance(summary.get(k), str) and summary[k]]
    m = _SPEEDS_TEXT.match(str(summary.get("speeds") or ""))
    if m is not None and not summary.get("speeds_from"):
        out.append((m["run"], "traffic"))
    return out


def _reasons(store, results, scenarios=None, meta=None) -> list[list[str]]:
    """The reasons of each row of ``results`` (:func:`stale_results`), as lists (empty: current)."""
    rows = results.to_dict("records") if isinstance(results, pd.DataFrame) else list(results)
    look = _Staleness(store, scenarios, meta)
    engines: dict = {}
    for r in rows:  # a run's engine, from any of its results' meta (a summary saved by hand has none)
        key = (r["scenario"], r["run"])
        if not engines.get(key):
            engines[key] = engine_of(r.get("meta"))
    # the times parsed in one go (one by one: ~0.04 ms each, 4 ms of a call for the 110 entries of 50 runs)
    made_at = pd.to_datetime(pd.Series([r.get("created") for r in rows], dtype=object), utc=True,
                             format="ISO8601", errors="coerce")
    out = []
    for r, made in zip(rows, made_at):
        if pd.isna(made):
            out.append([])
            continue
        scen = r["scenario"]
        out.append([why for _, why in look.reasons(scen, r["run"], engines.get((scen, r["run"])), r.get("name"),
                                                   made)])
    return out


def stale_results(store, results, *, scenarios=None, meta: dict | None = None) -> list[str | None]:
    """Why each result in ``results`` (rows of :func:`list_results`, as a DataFrame or dicts with ``scenario``,
    ``run``, ``name``, ``created`` and ``meta``) is stale, None where it is current. A result is stale when

    - its scenario (or a parent of it) was edited after the run (:meth:`cim.scenario.Scenario.last_edited`):
      an old flood is not the scenario's answer after a planner closed roads in it;
    - a base layer or raster its engine read (:data:`LAYERS_USED`, :data:`RASTERS_USED`; a flood's
      ``exposure_<layer>`` table: that layer too; a crowd run on an IFC storey read none of the plaza's layers)
      was written after it (:meth:`cim.store.base.Store.layer_written`, ``raster_written``; unknown, as for a
      layer written to PostGIS before these were kept: not stale);
    - a run it used (its summary's ``flooded_by`` or ``speeds_from``: a traffic, access or crowd run made on
      flood run ``storm50``) is stale itself ("flood run storm50 is stale: raster dem replaced ..., after that
      run"), was saved again after it ("flood run storm50 re-run ..., after this run") or was deleted.

    Reasons are joined with ``"; "``. Each scenario, layer, raster and used run is looked up once per call,
    and the store's index is read (once) only when a traffic, access or crowd run's summary is needed.
    ``scenarios``: the store's :class:`~cim.scenario.Scenarios` (default: made here). ``meta``: the store's
    :meth:`~cim.store.base.Store.get_meta` when the caller read it already (for :func:`list_results` too: one
    read of the index shared), not read again.

    >>> import tempfile, os, time
    >>> from cim.store import open_store
    >>> store = open_store(os.path.join(tempfile.mkdtemp(), "s.gpkg"), create=True, crs="EPSG:4544")
    >>> save_result(store, "base", "storm50", "summary", {}, meta={"engine": "simulation.flood"})
    >>> save_result(store, "base", "jam", "summary", {"flooded_by": "storm50"}, meta={"engine": "simulation.traffic"})
    >>> stale_results(store, list_results(store))
    [None, None]
    >>> time.sleep(0.01)
    >>> save_result(store, "base", "storm50", "summary", {}, meta={"engine": "simulation.flood"})  # run again
    >>> stale_results(store, list_results(store))[0]  # doctest: +ELLIPSIS
    'flood run storm50 re-run ... UTC, after this run'
    >>> store.close()
    """
    return ["; ".join(why) or None for why in _reasons(store, results, scenarios, meta)]


def stale_runs(store, results, *, scenarios=None, meta: dict | None = None) -> dict[tuple[str, str], str | None]:
    """Why each run in ``results`` (rows of :func:`list_results`) is stale, keyed by (scenario, run), None where
    it is current: the reasons of its results (:func:`stale_results`), each once; one that holds for only some
    of the run's results names them ("layer road_links replaced ..., after this run (exposure_road_links)").
    What :meth:`twin_core.twin.Twin.runs` and ``twin runs`` show. ``meta``: as :func:`stale_results` takes it."""
    rows = results.to_dict("records") if isinstance(results, pd.DataFrame) else list(results)
    per_run: dict = {}
    for r, why in zip(rows, _reasons(store, rows, scenarios, meta)):
        names, reasons = per_run.setdefault((r["scenario"], r["run"]), ([], {}))
        names.append(r.get("name"))
        for w in why:
            reasons.setdefault(w, []).append(r.get("name"))
    out = {}
    for key, (names, reasons) in per_run.items():
        said = [w if len(got) == len(names) else f"{w} ({', '.join(sorted(map(str, got)))})"
                for w, got in reasons.items()]
        out[key] = "; ".join(said) or None
    return out


def mark_stale(store, entries: list[dict], *, scenarios=None, meta: dict | None = None) -> list[dict]:
    """Give each entry (a dict with ``scenario``, ``run``, ``name``, ``created``, ``meta``: the map's result
    catalogue) ``stale`` (bool) and ``stale_why`` (:func:`stale_results`: why, None when current); returns
    ``entries``. ``meta``: as :func:`stale_results` takes it."""
    for e, why in zip(entries, stale_results(store, entries, scenarios=scenarios, meta=meta)):
        e["stale"] = why is not None
        e["stale_why"] = why
    return entries


def _pending(msg: str, done: str | None = None, doing: str | None = None) -> str:
    """A warning of a change made inside a caller's transaction, worded as pending (``done`` as ``doing``, when
    given): it commits with that transaction, or is rolled back with it."""
    return (msg.replace(done, doing, 1) if done else msg) + " (once the enclosing transaction commits)"


def _run_key(scenario: str, run: str) -> str:  # noqa: ARG001 - every caller names the run by both
    """The key of :meth:`~cim.store.base.Store.run_lock` for run ``run`` (under any scenario): the run id alone,
    since :func:`check_run_free` refuses an id another scenario holds, and two saves of one id under two
    scenarios, each locking only its own (scenario, id), both found the id free on PostGIS and both saved."""
    return f"run\x00{run}"


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
            # once, as JSON text: PostgreSQL's jsonb keeps a dict's keys in its own order (shortest first), so a
            # dict (the "value" of results before 2026-12-05, beside this text since 2026-12-04) read back, and
            # exported to .json, came out shuffled against the GeoPackage's. load_result reads all three forms
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
    return _json_value(entry)


def _json_value(entry: dict):
    """The value of a JSON result's index entry: its ``value_json`` text, in the order it was saved (results
    since 2026-12-04; with the same value again as ``value`` until 2026-12-05), else its ``value`` (before)."""
    if isinstance(entry.get("value_json"), str):
        return json.loads(entry["value_json"])
    return entry.get("value")


def list_results(store, scenario: str | None = None, run: str | None = None, name: str | None = None, *,
                 meta: dict | None = None) -> pd.DataFrame:
    """Index of stored results (columns scenario, run, name, kind, ref, created, meta), optionally only those of
    ``scenario``, ``run`` and/or ``name``. ``meta`` holds what the result was made with (e.g. the
    ``snapshot_times_s`` of a flood run's ``depth_snapshots``). The argument ``meta``: the store's
    :meth:`~cim.store.base.Store.get_meta` when the caller read it already (it is then not read again)."""
    rows = [v for k, v in (store.get_meta() if meta is None else meta).items() if k.startswith("result:")]
    df = pd.DataFrame(rows, columns=["scenario", "run", "name", "kind", "ref", "created", "meta"])
    if scenario is not None:
        df = df[df["scenario"] == normalise_scenario_name(scenario)]
    if run is not None:
        df = df[df["run"] == run]
    if name is not None:
        df = df[df["name"] == name]
    return df.sort_values(["scenario", "run", "name"]).reset_index(drop=True)


def delete_results(store, scenario: str, run: str | None = None, names=None) -> int:
    """Delete the results of a scenario (or of one run; or only those of ``names`` in it). Returns how many went.
    :func:`delete_run` deletes a run whole and says which runs used it."""
    with store.transaction():  # what is deleted is read in the transaction that deletes it
        df = list_results(store, scenario=scenario, run=run)
        if names is not None:
            df = df[df["name"].isin(list(names))]
        meta = store.get_meta()
        for _, row in df.iterrows():
            key = _meta_key(row["scenario"], row["run"], row["name"])
            _delete_payload(store, meta[key])
            store.delete_meta([key])
    return len(df)


def delete_run(store, scenario: str | None, run: str) -> pd.DataFrame:
    """Delete run ``run`` of ``scenario`` (None: the base) whole, in one transaction under the run's lock (no
    engine saves under the id meanwhile), and return the index of the results that went (as
    :func:`list_results`; empty: no such run). The id is free again for any engine. Stored runs that used it
    (:func:`runs_using`: a traffic run flooded by it) are named in a :class:`~twin_core.errors.TwinWarning`:
    they now refer to results that are gone.

    >>> import tempfile, os
    >>> from cim.store import open_store
    >>> store = open_store(os.path.join(tempfile.mkdtemp(), "r.gpkg"), create=True, crs="EPSG:4544")
    >>> save_result(store, "base", "old", "summary", {"max_depth_m": 1.0}, meta={"engine": "simulation.flood"})
    >>> delete_run(store, None, "old")["name"].tolist(), len(list_results(store))
    (['summary'], 0)
    >>> store.close()
    """
    scenario = normalise_scenario_name(scenario) or "base"
    check_run_id(run)
    outermost = not store.in_transaction
    with store.transaction(), store.run_lock(_run_key(scenario, run)):
        gone = list_results(store, scenario=scenario, run=run)
        users = runs_using(store, scenario, run) if len(gone) else []
        delete_results(store, scenario, run)
    if users:  # committed (or to be, with the caller's transaction)
        from twin_core.errors import TwinWarning, twin_warn

        engine = next((e for e in map(engine_of, gone["meta"]) if e), None)
        msg = (f"deleted run {run!r} under {scenario!r}{f' ({_a(engine)})' if engine else ''}; runs that used it "
               f"now refer to results that are gone: {_named_runs(users, scenario)} (run them again, or delete "
               "them too)")
        twin_warn(msg if outermost else _pending(msg, "deleted", "deletes"), TwinWarning)
    return gone
