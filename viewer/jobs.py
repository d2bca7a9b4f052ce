"""Background simulation jobs with progress.

A job runs an engine through its adapter in ``twin_core.adapters.<engine>``
on a worker thread. The viewer calls, in this order of preference::

    run_job(twin, scenario=..., run=..., params={...}, progress=cb) -> dict | None
    run_<engine>(twin, scenario=..., run=..., progress=cb, **params)   (e.g. run_flood)
    run(twin, scenario=..., run=..., progress=cb, **params)
    (only the keywords the function accepts; a returned object's ``.summary`` is the job summary)

``progress(done, total)`` updates the job; its results are whatever the
adapter saved under (scenario, run) with ``twin.save_result`` and appear in
``/api/results``. The twin a job gets shares the server's locked store, so the
job holds the store only while it reads inputs or writes results.
"""

from __future__ import annotations

import importlib
import inspect
import itertools
import logging
import math
import secrets
import threading
import time
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from twin_core.errors import JobError

__all__ = ["JobManager", "Job", "ENGINES", "UnknownEngine", "UnknownParameter", "UnknownScenario", "InvalidParameter"]

log = logging.getLogger("viewer.jobs")

ENGINES = ("flood", "traffic", "crowd", "access")

EngineFn = Callable[..., Any]


class JobCancelled(JobError):
    """Raised inside a job's progress callback once the job was cancelled."""


class UnknownJob(JobError, LookupError):
    """No job with that id (HTTP 404)."""


class UnknownEngine(JobError, ValueError):
    """No such engine in this build (HTTP 400)."""


class UnknownParameter(JobError, ValueError):
    """A job parameter the engine does not take, or one the server sets itself (HTTP 400)."""


class UnknownScenario(JobError, ValueError):
    """A job asked for on a scenario the twin does not have (HTTP 400)."""


class InvalidParameter(JobError, ValueError):
    """A job parameter whose value the engine cannot read, found before the job is queued (HTTP 422)."""


@dataclass
class Job:
    id: str
    engine: str
    scenario: str
    run: str
    params: dict
    status: str = "queued"  # queued, running, done, failed, cancelled
    progress: float = 0.0
    message: str = ""
    error: str | None = None
    summary: Any = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    changed: threading.Condition = field(default_factory=threading.Condition, repr=False)

    def to_dict(self) -> dict:
        return {"id": self.id, "engine": self.engine, "scenario": self.scenario, "run": self.run,
                "params": self.params, "status": self.status, "progress": round(self.progress, 4),
                "message": self.message, "error": self.error, "summary": self.summary,
                "created": self.created, "started": self.started, "finished": self.finished}

    def touch(self) -> None:
        with self.changed:
            self.changed.notify_all()


def adapter_engine(engine: str) -> EngineFn:
    """The callable running ``engine`` through ``twin_core.adapters.<engine>``."""
    try:
        mod = importlib.import_module(f"twin_core.adapters.{engine}")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("twin_core.adapters"):
            from cim.scenario import did_you_mean

            have = installed_engines()
            raise UnknownEngine(f"no engine {engine!r} in this build; the engines are {have}"
                                + did_you_mean(engine, have) + " (GET /api/jobs/engines lists them)") from None
        raise
    if hasattr(mod, "run_job"):
        return mod.run_job
    fn = getattr(mod, f"run_{engine}", None) or getattr(mod, "run", None)
    if fn is None:
        raise UnknownEngine(f"twin_core.adapters.{engine} has no run_job(), run_{engine}() or run(); "
                            f"cannot start a {engine} job")

    sig = inspect.signature(fn)
    accepts_all = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    allowed = job_parameters(fn)

    def check(params: dict) -> None:
        check_params(engine, params, allowed)
        check_values(engine, params)
        check_mode(engine, params)
        check_together(engine, params)

    def call(twin, *, scenario: str, run: str, params: dict, progress):
        check(params)
        kw = {"scenario": scenario, "run": run, "progress": progress, **params}
        if not accepts_all:
            kw = {k: v for k, v in kw.items() if k in sig.parameters}
        out = fn(twin, **kw)
        return getattr(out, "summary", out)  # adapters return a run object with a JSON-able summary

    call.check = check
    call.parameters = allowed
    return call


def installed_engines(extra=()) -> list[str]:
    """The engines of :data:`ENGINES` whose adapter this build has, and ``extra`` (registered ones)."""
    names = set(extra)
    for e in ENGINES:
        try:
            importlib.import_module(f"twin_core.adapters.{e}")
            names.add(e)
        except ImportError:
            pass
    return sorted(names)


#: what the server sets for every job; a client's params may not set them
RESERVED = ("twin", "scenario", "run", "progress")

#: keywords of the adapters that take a Python object a job's JSON cannot give (flood's and crowd's ``params``, a
#: FloodParameters / CrowdParameters): not job parameters; the settings they hold are (snapshot_interval, seed ...)
PYTHON_ONLY = ("params",)


def job_parameters(fn) -> list[str] | None:
    """The parameter names a job may give ``fn``: its own keywords, and those of the functions it passes its
    ``**kwargs`` on to (``fn.forwards_to``); None when it takes any."""
    targets = getattr(fn, "forwards_to", ())
    if not targets and any(p.kind is p.VAR_KEYWORD for p in inspect.signature(fn).parameters.values()):
        return None
    names = [p.name for f in (fn, *targets) for p in inspect.signature(f).parameters.values()
             if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name not in RESERVED + PYTHON_ONLY]
    return list(dict.fromkeys(names))


def check_params(engine: str, params: dict, allowed: list[str] | None) -> None:
    """A clear error (HTTP 400) for a parameter the server sets itself or one the engine does not take."""
    reserved = [k for k in params if k in RESERVED]
    if reserved:
        raise UnknownParameter(f"job parameter(s) {reserved} are set by the server: give \"scenario\" and \"run\" "
                               "beside \"params\", not in it (without \"run\" the job gets a new run id)")
    python = [k for k in params if allowed is not None and k in PYTHON_ONLY and k not in allowed]
    if python:
        raise UnknownParameter(f"the {engine} engine's parameter(s) {python} take a Python object (a "
                               f"{engine.capitalize()}Parameters), which a job cannot send; give the settings it "
                               f"holds as job parameters instead: the {engine} engine takes {allowed}")
    unknown = [k for k in params if allowed is not None and k not in allowed]
    if unknown:
        from cim.scenario import did_you_mean

        raise UnknownParameter(f"the {engine} engine takes no parameter(s) {unknown}; it takes {allowed}"
                               + did_you_mean(unknown[0], allowed))


def _one_of(name: str, allowed) -> Callable[[Any], None]:
    """A check that a value is one of ``allowed`` (an engine's option set), with the nearest as a hint."""
    allowed = list(allowed)

    def check(value) -> None:
        if not isinstance(value, str) or value not in allowed:
            from cim.scenario import did_you_mean
            from twin_core.errors import ParameterError

            raise ParameterError(f"{name} must be one of {allowed}" + did_you_mean(value, allowed))
    return check


def value_checks(engine: str) -> dict[str, Callable[[Any], Any]]:
    """The job parameters of an adapter engine whose value can be checked at once, each with its check (raising
    :class:`~twin_core.errors.ParameterError`): durations read by the adapters' own :mod:`twin_core.units`
    functions, options against the adapters' own sets. A value refused here failed the job only once it ran."""
    from twin_core.units import parse_duration, parse_offset

    def duration(name):
        return lambda v: parse_duration(v, name)

    def offset(name):
        return lambda v: parse_offset(v, name)

    if engine == "flood":
        from twin_core.adapters import flood as m

        # storm within the formula's range, duration and until at most 7 days: as the run and `twin flood` check them
        return {"storm": m.design_storm_years, "duration": lambda v: m.flood_duration(v, "duration"),
                "until": lambda v: m.flood_duration(v, "until"),
                "snapshot_interval": duration("snapshot_interval"), "storm_step": duration("storm_step"),
                "buildings": _one_of("buildings", m.BUILDING_MODES),
                "roof_runoff": _one_of("roof_runoff", m.ROOF_RUNOFF_MODES),
                "boundary": _one_of("boundary", m.BOUNDARY_MODES),
                "rain_gaps": _one_of("rain_gaps", m.RAIN_GAPS),
                "rain_spatial": _one_of("rain_spatial", m.RAIN_SPATIAL),
                "rain_from_sensors": lambda v: m.flood_duration(v, "rain_from_sensors"),
                "rain_until": _instant("rain_until")}
    if engine == "traffic":
        from twin_core.adapters import traffic as m

        return {"mode": _one_of("mode", m.TRAFFIC_MODES),
                "period": _one_of("period", sorted(m.PERIODS)),
                "flood_timing": _one_of("flood_timing", m.FLOOD_TIMINGS),
                "until": duration("until"), "flood_start": offset("flood_start")}
    if engine == "crowd":
        return {"until": duration("until"), "flood_time": offset("flood_time"), "agents": _agents,
                "density": _density}
    if engine == "access":
        return {"within": duration("within"), "flood_time": offset("flood_time"), "drive_kmh": _drive_kmh}
    return {}


def _drive_kmh(v) -> float | None:
    """An access job's ``drive_kmh``: the vehicles' average speed in km/h, a number > 0, or null (at the roads'
    speed limits), as :func:`twin_core.adapters.access.run_access` takes it."""
    from twin_core.errors import ParameterError

    if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0):
        raise ParameterError(f"drive_kmh is the vehicles' average speed in km/h, a number > 0 (30: what the response "
                             f"standards assume), or null to drive at the roads' speed limits; got {v!r}")
    return v


#: the most people a crowd job from the map server may place: far more than any plaza holds (a 1e12 was taken
#: and failed once it ran); scripts and the CLI are bound by the area only
MAX_JOB_AGENTS = 1_000_000
#: the most persons per m2 a crowd job may ask for: 6/m2 is a crush (Fruin's level of service F), above it no
#: crowd stands
MAX_JOB_DENSITY = 6.0


def _agents(v) -> int:
    """A crowd job's ``agents``: a whole number of people (not true, 50.7 or -5), at least 1, at most
    :data:`MAX_JOB_AGENTS`."""
    from twin_core.errors import ParameterError
    from twin_core.units import as_count

    n = as_count(v, "agents", "people", minimum=1)
    if n > MAX_JOB_AGENTS:
        raise ParameterError(f"agents must be at most {MAX_JOB_AGENTS:,} people for a job from the map server, got "
                             f"{n:,}; give fewer, or density (persons/m2) for a share of the area")
    return n


def _density(v) -> float:
    """A crowd job's ``density``: a number of persons per m2 above 0, at most :data:`MAX_JOB_DENSITY`."""
    from twin_core.errors import ParameterError

    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0 < v <= MAX_JOB_DENSITY):
        raise ParameterError(f"density must be a number of persons per m2 above 0 and at most {MAX_JOB_DENSITY:g} "
                             f"(a crush), got {v!r}; e.g. 1.5")
    return float(v)


def _instant(name: str) -> Callable[[Any], Any]:
    """A check that a value is an ISO-8601 instant with an offset (``rain_until``)."""
    def check(v):
        from datetime import datetime, timezone

        from cim.sensors import _check_time
        from twin_core.errors import ParameterError

        t, why = _check_time(v, datetime(2200, 1, 1, tzinfo=timezone.utc))
        if why:
            raise ParameterError(f"{why}; e.g. \"2026-07-01T10:00:00+08:00\"")
        return t
    return check


#: flood job parameters that shape a design storm: with ``rain_from_sensors`` the rain is the gauges' instead
DESIGN_STORM_PARAMS = ("storm", "duration", "peak_ratio", "storm_step")


def check_together(engine: str, params: dict) -> None:
    """A clear error (HTTP 422) for parameters that make no sense together, or a None the engine cannot take
    (``check_values`` leaves None alone): a flood's ``storm``/``duration`` beside ``rain_from_sensors`` (the
    CLI refuses them, the job dropped them without a word), a design storm with no duration; a crowd with
    neither or both of ``agents`` and ``density``, or no ``area``."""
    if engine == "flood":
        measured = params.get("rain_from_sensors") is not None
        if measured:
            given = [k for k in DESIGN_STORM_PARAMS if k in params]
            if given:
                raise InvalidParameter(
                    f"the flood engine cannot take {', '.join(given)} with rain_from_sensors: "
                    f"{'it shapes' if len(given) == 1 else 'they shape'} a design storm, and with rain_from_sensors "
                    "the rain is what the gauges measured over that window; leave "
                    f"{'it' if len(given) == 1 else 'them'} out (until runs on after the rain)")
        else:
            for k in ("storm", "duration"):
                if k in params and params[k] is None:
                    eg = '"50y"' if k == "storm" else '"1h"'
                    raise InvalidParameter(f"the flood engine cannot take {k}=None: give a {k} (e.g. {eg}), or "
                                           "leave it out for the default, or give rain_from_sensors for the "
                                           "measured rain")
            if params.get("rain_until") is not None:
                raise InvalidParameter("the flood engine cannot take rain_until without rain_from_sensors (the "
                                       "window of measured rain it ends): give both, or neither")
    elif engine == "crowd":
        a, d = params.get("agents"), params.get("density")
        if a is None and d is None:
            raise InvalidParameter("the crowd engine needs agents (a number of people, e.g. 2000) or density "
                                   "(persons/m2, e.g. 1.5)")
        if a is not None and d is not None:
            raise InvalidParameter(f"the crowd engine takes one of agents or density, not both (got agents={a!r}, "
                                   f"density={d!r})")
        if params.get("area") is None:
            raise InvalidParameter("the crowd engine needs area: an areas feature id or name (e.g. \"A001\", the "
                                   "sample plaza); GET /api/layers/areas/features lists them")


def check_crowd_area(twin, engine: str, scenario: str, params: dict) -> None:
    """A clear error (HTTP 422) for a crowd job's ``area`` that names no feature of the twin's ``areas`` layer
    under ``scenario`` (the job failed with it only once it ran), matched as the crowd engine matches it."""
    area = params.get("area")
    if engine != "crowd" or area is None:
        return
    if not isinstance(area, str) or not area.strip():
        raise InvalidParameter(f"the crowd engine cannot take area={area!r}: give an areas feature id or name "
                               "(e.g. \"A001\")")
    if "areas" not in twin.layers():
        raise InvalidParameter("the twin has no areas layer, so no area to evacuate; import one (twin import ... "
                               "--class areas)")
    from twin_core.adapters.crowd import _pick_area
    from twin_core.errors import LayerNotFoundError

    try:
        _pick_area(twin.layer("areas", None if scenario == "base" else scenario), area)
    except LayerNotFoundError as exc:
        raise InvalidParameter(f"the crowd engine cannot take area={area!r}: {exc}") from None


def check_measured_rain(twin, engine: str, params: dict) -> None:
    """A clear error (HTTP 422) for a flood job on the measured rain (``rain_from_sensors``) with no
    ``rain_until`` whose gauges' latest reading is too old to be the rain now (it ran on a window hours old
    without a word); other problems of the readings (a gap) fail the job, as they may change before it runs."""
    if engine != "flood" or params.get("rain_from_sensors") is None or params.get("rain_until") is not None:
        return
    from twin_core.adapters.flood import StaleRainError, rain_from_sensors
    from twin_core.errors import TwinError

    try:
        rain_from_sensors(twin, params["rain_from_sensors"], gaps="dry")
    except StaleRainError as exc:
        raise InvalidParameter(f"the flood engine cannot run on the measured rain now: {exc}") from None
    except (TwinError, ValueError):
        pass  # the job says so when it runs


def _not_finite(v, path: str) -> str | None:
    """The place (``params.a[2]``) of the first NaN or infinite number in a job's JSON ``v``, or None."""
    if isinstance(v, float) and not math.isfinite(v):
        return path
    if isinstance(v, dict):
        return next((p for k, x in v.items() if (p := _not_finite(x, f"{path}.{k}"))), None)
    if isinstance(v, (list, tuple)):
        return next((p for i, x in enumerate(v) if (p := _not_finite(x, f"{path}[{i}]"))), None)
    return None


def check_values(engine: str, params: dict) -> None:
    """A clear error (HTTP 422) for a parameter of ``engine`` whose value it cannot read (see :func:`value_checks`);
    None is left to the engine (most take it for their default). No parameter may hold NaN or an infinity."""
    from twin_core.errors import ParameterError

    bad = _not_finite(params, "params")
    if bad:
        raise InvalidParameter(f"{bad} is not a finite number: give a number (or leave it out for the default)")
    for name, check in value_checks(engine).items():
        value = params.get(name)
        if value is None:
            continue
        try:
            check(value)
        except ParameterError as exc:
            shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:60] + "..."
            raise InvalidParameter(f"the {engine} engine cannot take {name}={shown}: {exc}") from None


def check_mode(engine: str, params: dict) -> None:
    """A clear error (HTTP 400) for a parameter the engine takes only in its other mode: the traffic engine hands
    its parameters to ``run_assign`` or ``run_simulate`` by ``mode``, and one of the other (``until`` with the
    default mode 'assign') failed the job with a TypeError once it ran."""
    if engine != "traffic":
        return
    from twin_core.adapters import traffic as m

    if "mode" in params and params["mode"] is None:  # the engine takes no None for its mode
        raise InvalidParameter(f"the traffic engine cannot take mode=None: give one of {list(m.TRAFFIC_MODES)}, or "
                               "leave it out for 'assign'")
    mode = params.get("mode", "assign")
    if mode not in m.TRAFFIC_MODES:  # check_values said so already; never a KeyError (a 500) here
        return
    fn, other = {"assign": (m.run_assign, "simulate"), "simulate": (m.run_simulate, "assign")}[mode]
    takes = set(inspect.signature(fn).parameters) | set(inspect.signature(m.run_traffic).parameters)
    wrong = [k for k in params if k not in takes]
    if wrong:
        raise UnknownParameter(f"the traffic engine takes parameter(s) {wrong} only in mode {other!r}, not in "
                               f"mode {mode!r}{' (the default)' if 'mode' not in params else ''}: give "
                               f"\"mode\": \"{other}\" or leave them out")


#: the engines that take ``flooded_by``, a flood run under the job's scenario
FLOODED_BY_ENGINES = ("traffic", "crowd", "access")


def check_flood_run(store, engine: str, scenario: str, params: dict) -> None:
    """A clear error (HTTP 422) for a ``flooded_by`` that names no flood run under ``scenario``: one missing
    (it may be under another scenario), or a run of another engine. The job failed with it only once it ran."""
    flood_run = params.get("flooded_by")
    if flood_run is None or engine not in FLOODED_BY_ENGINES:
        return
    from cim.results import check_run_id, engine_of, list_results
    from twin_core.errors import SchemaError

    try:
        check_run_id(flood_run)
    except SchemaError as exc:
        raise InvalidParameter(f"flooded_by: {exc}") from None
    here = list_results(store, scenario=scenario)
    floods = sorted({r for r, m in zip(here["run"], here["meta"]) if engine_of(m) == "flood"})
    listed = f"flood runs under scenario {scenario!r}: {floods[-10:]}" if floods else \
        f"scenario {scenario!r} has no flood run: start a flood job there first"
    mine = here[here["run"] == flood_run]
    if not len(mine):
        elsewhere = sorted(set(list_results(store, run=flood_run)["scenario"]))
        where = f" (it is under {elsewhere}: run the {engine} job on that scenario)" if elsewhere else ""
        raise InvalidParameter(f"flooded_by: no flood run {flood_run!r} under scenario {scenario!r}{where}; {listed}")
    kinds = sorted({engine_of(m) or "hand-saved" for m in mine["meta"]})
    if "flood" not in kinds:
        raise InvalidParameter(f"flooded_by: run {flood_run!r} under scenario {scenario!r} is {' and '.join(kinds)} "
                               f"run, not a flood run; {listed}")


class JobManager:
    """Queue of jobs on a small thread pool; keeps the last ``keep`` jobs."""

    def __init__(self, state, workers: int = 1, keep: int = 200) -> None:
        self.state = state
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="twin-job")
        self.jobs: dict[str, Job] = {}
        self.keep = keep
        self.engines: dict[str, EngineFn] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._futures: set[futures.Future] = set()
        self.closing = False  # shutdown() began: jobs are cancelled, none is queued
        self.started = time.time()
        #: ids are job-<server start, UTC>-<4 random hex>-<n> (job-20261205-071203-3fa9-1): unique across restarts,
        #: two in one second included, so a screen that follows a job id from before a restart gets a 404 that
        #: says so, not another job that took its number. Jobs are not kept in the store: the runs they saved are
        #: (GET /api/results), and a job's progress means nothing once its server has stopped.
        self.prefix = (f"job-{time.strftime('%Y%m%d-%H%M%S', time.gmtime(self.started))}-"
                       f"{secrets.token_hex(2)}-")

    def register(self, name: str, fn: EngineFn) -> None:
        """Add an engine (``fn(twin, *, scenario, run, params, progress)``)."""
        self.engines[name] = fn

    def available(self) -> list[str]:
        return installed_engines(self.engines)

    def submit(self, engine: str, scenario: str, params: dict, run: str | None = None) -> Job:
        """Queue a job of ``engine`` on ``scenario``, its results under run id ``run`` (None: a new one); every
        check that can be made now is (engine, parameters and their values, scenario, ``flooded_by``, run id,
        a writable store), so a bad request is refused at once, not queued to fail."""
        from cim.results import new_run_id

        if engine not in self.engines and engine not in ENGINES:
            from cim.scenario import did_you_mean

            have = self.available()
            raise UnknownEngine(f"no engine {engine!r}; the engines are {have}" + did_you_mean(engine, have)
                                + " (GET /api/jobs/engines lists them)")
        fn = self.engines.get(engine) or adapter_engine(engine)
        # adapter engines know their parameters; a registered engine gets the reserved-name check only
        getattr(fn, "check", lambda p: check_params(engine, p, None))(params)
        if scenario not in self.state.twin.scenarios:
            from cim.scenario import did_you_mean

            names = ["base"] + self.state.twin.scenarios.names()
            raise UnknownScenario(f"no scenario {scenario!r} to run {engine} on" + did_you_mean(scenario, names)
                                  + f"; scenarios: {names}")
        store = self.state.twin.store
        writable = getattr(getattr(store, "raw", store), "check_writable", None)  # (stores of this build have it)
        if writable is not None and params.get("save", True) is not False:
            # a twin the server may not write: a 503 now, not a job that fails once it runs
            store.check_writable(before=f"{'an' if engine[:1] in 'aeiou' else 'a'} {engine} job")
        check_flood_run(store, engine, scenario, params)
        check_crowd_area(self.state.twin, engine, scenario, params)
        check_measured_rain(self.state.twin, engine, params)
        if run is not None:
            self._check_run(engine, scenario, run, save=params.get("save", True) is not False)
        with self._lock:
            if run is not None:
                self._run_free_of_jobs(run)
            jid = f"{self.prefix}{next(self._ids)}"
            job = Job(jid, engine, scenario, run or new_run_id(engine), dict(params))
            self.jobs[jid] = job
            while len(self.jobs) > self.keep:
                old = next(iter(self.jobs))
                if self.jobs[old].status in ("queued", "running"):
                    break
                del self.jobs[old]
        fut = self.pool.submit(self._run, job, fn)
        self._futures.add(fut)
        fut.add_done_callback(self._futures.discard)
        return job

    def _check_run(self, engine: str, scenario: str, run: str, save: bool) -> None:
        """A clear error (HTTP 422) for a run id the job cannot save under: not a valid id (the rule), or one
        that holds another engine's run or is taken under another scenario, as the engine itself checks it."""
        from cim.results import check_run_free, check_run_id
        from twin_core.errors import ParameterError, SchemaError

        try:
            check_run_id(run)
            if save:
                check_run_free(self.state.twin.store, scenario, run, engine)
        except (SchemaError, ParameterError) as exc:
            raise InvalidParameter(f"run: {exc}") from None

    def _run_free_of_jobs(self, run: str) -> None:
        """Refuse a run id that a queued or running job will save under (caller holds ``self._lock``)."""
        for j in self.jobs.values():
            if j.run == run and j.status in ("queued", "running"):
                raise InvalidParameter(f"run: job {j.id} ({j.engine}, {j.status}) saves run {run!r}; give another "
                                       "run id, or wait for that job to end")

    def get(self, jid: str) -> Job:
        job = self.jobs.get(jid)
        if job is None:
            since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.started))
            before = "" if jid.startswith(self.prefix) else (
                f" (this server started at {since}; it keeps jobs in memory only, so the jobs of an earlier start "
                "are not kept: the runs they finished are listed by GET /api/results)")
            raise UnknownJob(f"no job {jid!r}{before}; recent jobs: {list(self.jobs)[-10:]}")
        return job

    def cancel(self, jid: str) -> Job:
        job = self.get(jid)
        if job.status in ("queued", "running"):
            job.cancel.set()
            if job.status == "queued":
                job.status, job.message = "cancelled", "cancelled by request"
                job.finished = time.time()
            else:  # it stops at its next progress report (the flood engine's come at least every 0.25 s)
                job.message = "cancelling"
            job.touch()
        return job

    def _run(self, job: Job, fn: EngineFn) -> None:
        if job.cancel.is_set():
            return
        job.status, job.started = "running", time.time()
        job.touch()

        def progress(done: float, total: float) -> None:
            if job.cancel.is_set():
                raise JobCancelled(f"job {job.id} was cancelled")
            job.progress = float(done) / float(total) if total else 0.0
            job.touch()

        try:
            job.summary = _jsonable(fn(self.state.twin, scenario=job.scenario, run=job.run, params=job.params,
                                       progress=progress))
            job.status, job.progress = "done", 1.0
            job.message = "finished"
        except JobCancelled:
            job.status = "cancelled"
            job.message = "cancelled: the server is shutting down" if self.closing else "cancelled by request"
        except Exception as exc:  # the job fails, the server does not
            log.exception("job %s (%s) failed", job.id, job.engine)
            job.status = "failed"
            job.error = f"{type(exc).__name__}: {exc}"
        finally:
            job.finished = time.time()
            self.state.invalidate(job.scenario)
            job.touch()

    def shutdown(self, timeout: float = 10.0) -> bool:
        """Cancel every job and wait up to ``timeout`` s for the running ones to stop (each at its next
        progress report); queued ones never start. Returns whether all stopped in time (a job busy where it
        reports no progress, such as saving its results, is left to finish, with a warning)."""
        self.closing = True
        for j in list(self.jobs.values()):
            j.cancel.set()
            if j.status == "queued":
                j.status, j.message, j.finished = "cancelled", "cancelled: the server is shutting down", time.time()
                j.touch()
        self.pool.shutdown(wait=False, cancel_futures=True)
        futures.wait(list(self._futures), timeout=timeout)
        running = [j.id for j in self.jobs.values() if j.status == "running"]
        if running:
            log.warning("jobs %s were still running %g s after the shutdown began; they stop at their next "
                        "progress report", running, timeout)
        return not running


def _jsonable(v: Any) -> Any:
    """``v`` as strict JSON values: the job's summary travels in server-sent events that the page parses with
    ``JSON.parse``, which refuses ``NaN`` (a crowd run cut short has no evacuation time): NaN and infinity
    become None (null), as in stored summaries and ``--json``."""
    import json

    from cim.results import finite_or_none

    try:
        json.dumps(v)
    except TypeError:
        v = json.loads(json.dumps(v, default=str))
    return finite_or_none(v)
