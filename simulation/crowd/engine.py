"""Crowd engine: parameters, agents, the simulation and its results."""

from __future__ import annotations

import collections
import math
import time
from dataclasses import dataclass, field, fields
from typing import Callable

import numpy as np
import pandas as pd

from simulation._display import compact_repr
from simulation.crowd import _kernels as K
from simulation.crowd.geometry import FloorField, WalkableArea, wall_vertex_table
from twin_core.errors import GeometryError, ParameterError, SimulationError, TwinWarning, twin_warn

__all__ = ["CrowdParameters", "Agents", "CrowdSimulation", "CrowdResult", "JamEvent", "MODELS"]

MODELS = ("csm", "sfm")
_ON_JAM = ("stop", "record", "raise")


#: congestion: density sampled every second, judged on the mean of the last 5 samples (people walking by
#: at ~1.3 m/s cross a 1 m cell within a sample; a queue stays)
_CG_SAMPLE_S = 1.0
_CG_WINDOW = 5

#: density maps a run may record (every frame holds the whole grid)
MAX_DENSITY_BYTES = 2 * 2**30


#: per-model defaults of ``CrowdParameters.radius`` and ``wall_avoidance`` (m): the CSM's were calibrated together
#: with its time gap on the measured 1 m bottleneck (docs/crowd_verification.md); the SFM's are HFV 2000's radius
#: and the routing margin it was verified with
_MODEL_RADIUS = {"csm": 0.2, "sfm": 0.25}
_MODEL_WALL_AVOIDANCE = {"csm": 0.25, "sfm": 0.4}


@dataclass
class CrowdParameters:
    """Parameters of a crowd run; validated on creation.

    Model ``"csm"``: collision-free speed model (Tordeux, Chraibi & Seyfried
    2016; the form JuPedSim implements): ``time_gap`` T, neighbour repulsion
    strength/range (JuPedSim defaults 8 / 0.1 m), wall repulsion 5 / 0.02 m.
    Default radius 0.2 m (JuPedSim's default), T = 0.5 s and a route margin
    from walls of 0.25 m (``wall_avoidance``; wider for larger bodies, see
    :meth:`route_margin`), calibrated together (2026-12-05) on the measured 1 m
    bottleneck, a 1 m x 2.8 m corridor (Seyfried et al. 2009: 1.90 persons/(m s)):
    1.68 (1.62-1.76) over seeds 1-10 (with the wall force counting a corner once);
    a 4 m corridor 1.66 (1.83 measured), the door into a room 1.80, a door that is
    the exit 2.01; RiMEA 1, 4, 6 and 12 pass on seeds 1-10
    (docs/crowd_verification.md). With the former 0.25 m and T = 0.8 s people
    walked one file through a 1 m corridor and passed ~0.8. A blocked agent (a
    neighbour touching it ahead) tries a random direction each step, so
    arches at doors break (``direction_noise`` > 0).

    People who leave by an exit walk on ``exit_walk_on`` metres straight out
    of it at their desired speed and still take room there (not through an
    exit with floor beyond it, a stair opening's rim): taken out at the line,
    the next person found nobody ahead and a 1 m door passed about 1.7 times
    as much (the CSM ~3.4 persons/(m s) with the calibrated parameters). Exit
    times are those of crossing the line.

    Model ``"sfm"``: social force model with the parameters of Helbing,
    Farkas & Vicsek (2000): A = 2000 N, B = 0.08 m, k = 1.2e5 kg/s^2,
    kappa = 2.4e5 kg/(m s), tau = 0.5 s, m = 80 kg, and the field-of-view
    weight ``lam`` of Helbing & Molnar (1995), 0.35 here so that speed falls
    with density. The social (non-contact) push against the walking
    direction is capped at ``sfm_social_cap`` times the driving force, so a
    dense queue creeps forward instead of freezing (only body contact can
    stop it); pedestrians may be pushed backwards (``sfm_no_backwards=True``
    forbids it, but then agents wedged at door jambs cannot back off and
    arch for good).

    Known limitation of the SFM: a 1 m door admits one file, and a free file
    follows at ``d(v) = 2r + B ln(A tau / (m (v0 - v)))``, at most ~1.4
    persons/s; more passes only when a pressing crowd pushes, so a door's
    flow rises with the pressure of its queue. Behind a corridor fed by a
    pressing crowd (RiMEA 3.0 test 12) a second queue of ~2 persons/m2 forms
    at an exit as wide as the corridor (the corridor's compressed, mixed-speed
    file spreads and has to merge at the door); the CSM does not show this.
    Measurements, the trade against the bottleneck flow and what was tried:
    ``docs/crowd_verification.md``.

    Desired speeds are drawn from N(``speed_mean``, ``speed_sd``) clipped to
    ``speed_clip`` (Weidmann 1993: 1.34 m/s, 0.26 m/s).

    Exit choice: each agent starts for its nearest exit (walking distance);
    with ``congestion_aware`` (the default) every ``rechoice_interval`` it may
    switch to the exit it expects to leave by sooner: walking time plus the
    time the people ahead of it at that exit need to pass at ``door_capacity``
    per metre of width, switching only for a gain of ``rechoice_gain`` and
    ``rechoice_min_gain_s``, never within ``rechoice_keep_distance`` of its
    door. With distance alone, a crowd queues at a narrow exit while a wide one
    beside it stands empty (closing the narrow exit then clears the area faster).

    Jams: a standstill (nobody of a crowd moved ``jam_min_progress`` in
    ``jam_window``; ``on_jam`` says what happens) and a congestion (a region
    above ``congestion_density`` for ``congestion_duration``; only reported)
    are both listed in ``CrowdResult.jams`` (:class:`JamEvent`).
    """

    model: str = "csm"
    dt: float = 0.01
    radius: float | None = None  # None: the model's own, 0.2 m (csm) or 0.25 m (sfm)
    speed_mean: float = 1.34
    speed_sd: float = 0.26
    speed_clip: tuple = (0.5, 2.0)
    # collision-free speed model
    time_gap: float = 0.5  # s; with radius 0.2 m, calibrated on the measured 1 m bottleneck (a 1 m x 2.8 m corridor,
    # Seyfried et al. 2009: 1.90 persons/(m s)): 1.68 (1.62-1.76) over seeds 1-10; docs/crowd_verification.md
    neighbor_repulsion: float = 8.0
    neighbor_range: float = 0.1
    wall_repulsion: float = 5.0
    wall_range: float = 0.02
    direction_noise: float = 0.05  # amplitude added to the unit walking direction; > 0 also lets blocked agents
    # step towards a random direction (without it arches at doors stand for good); 0: the plain deterministic CSM
    # social force model
    tau: float = 0.5
    mass: float = 80.0
    sfm_A: float = 2000.0
    sfm_B: float = 0.08
    sfm_k: float = 1.2e5
    sfm_kappa: float = 2.4e5
    sfm_lambda: float = 0.35
    sfm_vmax_factor: float = 1.3
    sfm_max_dt: float = 0.005
    sfm_social_cap: float = 0.9
    sfm_no_backwards: bool = False  # True: velocity never points against the desired direction (deadlocks at doors)
    sfm_noise: float = 0.2  # fluctuation force, as a fraction of the driving force m v0 / tau
    # routing
    floor_field_cell: float | None = None
    wall_avoidance: float | None = None  # m; None: the model's own for the run's bodies (see route_margin)
    door_near: float = 0.6
    door_margin: float = 0.0  # m kept from each door jamb when aiming through a near door
    exit_walk_on: float = 2.0  # m a person who left walks on straight out of the exit, still taking room there
    # (people walk on after a door; taken out at the line, the next finds nobody ahead and a 1 m door passes
    # about twice what it does with a room behind it: docs/crowd_verification.md); 0: taken out at the line
    stair_speed_factor: float = 0.63  # people who leave by a stair (an exit drawn on the rim of a stair opening,
    # floor beyond its line round the opening) walk on down it at this fraction of their desired speed, straight
    # on over the opening (at most exit_walk_on, and never onto floor beyond it). 0.63: SFPE Handbook (5th ed.,
    # Gwynne & Rosenbaum, hydraulic model): the fastest unimpeded speed down a 7/11 stair is 1.00 m/s along
    # its slope, 0.84 m/s across the plan (32.5 deg), against 1.34 m/s on level floor
    # exit choice: the nearest exit first; then every rechoice_interval each agent may switch to the exit it
    # expects to leave by sooner (see CrowdSimulation: walking time vs the time its queue needs to pass)
    congestion_aware: bool = True
    rechoice_interval: float = 2.0
    door_capacity: float = 1.9  # persons/(m s) assumed when estimating queues (Seyfried et al. 2009; the models
    # pass about this through a door, less through a corridor: docs/crowd_verification.md)
    rechoice_gain: float = 0.1  # switch only to an exit expected at least this fraction sooner ...
    rechoice_min_gain_s: float = 2.0  # ... and at least this many seconds sooner (no flip-flop over small gains)
    rechoice_keep_distance: float = 2.0  # m: agents this near their exit's door keep it
    # jams
    jam_window: float = 10.0
    jam_min_progress: float = 0.2
    on_jam: str = "stop"
    # congestion (reported, never stops a run): density_cell cells above this density (5 s mean), persons/m2;
    # None: not reported. 2/m2: Fruin (1971) walkway level of service F (< 0.5 m2 per person), where walking
    # becomes shuffling; RiMEA 3.0 test 12 counts a jam above 2/m2 too
    congestion_density: float | None = 2.0
    congestion_duration: float = 10.0  # s a region must stay congested to be reported
    # outputs
    record_interval: float | None = 0.5
    density_cell: float = 1.0
    density_interval: float | None = 5.0
    seed: int = 0

    def __post_init__(self):
        if self.model not in MODELS:
            raise ParameterError(f"model must be one of {list(MODELS)}, got {self.model!r}")
        if self.on_jam not in _ON_JAM:
            raise ParameterError(f"on_jam must be one of {list(_ON_JAM)}, got {self.on_jam!r}")
        if self.radius is None:
            self.radius = _MODEL_RADIUS[self.model]
        positive = ["dt", "radius", "speed_mean", "time_gap", "neighbor_range", "wall_range", "tau", "mass",
                    "sfm_B", "sfm_vmax_factor", "sfm_max_dt", "door_near", "rechoice_interval", "door_capacity",
                    "jam_window", "density_cell", "congestion_duration"]
        for name in positive:
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ParameterError(f"{name} must be a finite number > 0, got {v!r}")
        for name in ["speed_sd", "neighbor_repulsion", "wall_repulsion", "sfm_A", "sfm_k", "sfm_kappa",
                     "wall_avoidance", "jam_min_progress", "direction_noise", "sfm_noise", "sfm_social_cap",
                     "door_margin", "rechoice_min_gain_s", "rechoice_keep_distance", "exit_walk_on",
                     "stair_speed_factor"]:
            v = getattr(self, name)
            if v is None and name == "wall_avoidance":
                continue  # the model's own (route_margin)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ParameterError(f"{name} must be a finite number >= 0, got {v!r}")
        if not (isinstance(self.rechoice_gain, (int, float)) and 0 <= self.rechoice_gain < 1):
            raise ParameterError(f"rechoice_gain must be a fraction in [0, 1), got {self.rechoice_gain!r}")
        if not 0 <= self.sfm_lambda <= 1:
            raise ParameterError(f"sfm_lambda must be in [0, 1], got {self.sfm_lambda}")
        try:
            lo, hi = (float(v) for v in self.speed_clip)
        except (TypeError, ValueError):
            raise ParameterError(f"speed_clip must be a pair (low, high) of speeds in m/s, got {self.speed_clip!r}") from None
        if not (0 < lo <= hi and math.isfinite(hi)):
            raise ParameterError(f"speed_clip must be (low, high) in m/s with 0 < low <= high, both finite, "
                                 f"got {self.speed_clip}")
        self.speed_clip = (lo, hi)
        if self.dt > 0.1:
            raise ParameterError(f"dt = {self.dt} s is too coarse for pedestrians; use <= 0.1 s (0.01 s is usual)")
        v = self.congestion_density
        if v is not None and not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0):
            raise ParameterError(f"congestion_density must be a finite number > 0 persons/m2, or None (no congestion "
                                 f"reporting), got {v!r}")
        v = self.floor_field_cell
        if v is not None and not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ParameterError(f"floor_field_cell must be a finite number > 0 m or None (automatic), got {v!r}")
        for name in ("record_interval", "density_interval"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, (int, float)) and not isinstance(v, bool)
                                      and math.isfinite(v) and v > 0):
                raise ParameterError(f"{name} must be a finite number of seconds > 0, or None (off), got {v!r}")

    def route_margin(self, r_max: float) -> float:
        """The floor field's ``wall_avoidance`` (m) for bodies up to ``r_max``: the one given, or the model's
        default, 0.25 m (csm) or 0.4 m (sfm) at the model's radius, growing by twice the extra radius of larger
        bodies (agents of 0.25 m in the CSM: 0.35 m; with 0.25 m they stood at the sample IFC models' stair
        exits on 5 of 6 placements, with 0.35 m on none)."""
        if self.wall_avoidance is not None:
            return float(self.wall_avoidance)
        base = _MODEL_WALL_AVOIDANCE[self.model]
        return base + 2.0 * max(0.0, float(r_max) - _MODEL_RADIUS[self.model])

    def replace(self, **kw) -> "CrowdParameters":
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        if "model" in kw and "radius" not in kw:  # the new model's own radius unless given
            d["radius"] = None
        d.update(kw)
        return CrowdParameters(**d)


def _clear_of_the_wrap(x, y, x0: float, length: float, gap: float) -> np.ndarray:
    """Mask of the points of a periodic corridor (along x from ``x0``, ``length`` long) that
    keep ``gap`` from every point near the other end, seen across the wrap; of a pair too
    close, the point near the far end is dropped."""
    keep = np.ones(len(x), bool)
    near_start = np.flatnonzero(x - x0 < gap)
    for i in np.flatnonzero(x0 + length - x < gap):
        dx = x[near_start] + length - x[i]
        if np.any(np.hypot(dx, y[near_start] - y[i]) < gap):
            keep[i] = False
    return keep


@dataclass
class Agents:
    """Pedestrians to simulate (positions in metres, one row per agent).

    ``radius`` and ``speed`` may be scalars or arrays (one value per agent);
    ``speed=None`` draws desired speeds from the parameters' distribution and
    ``radius=None`` uses the model's radius. ``release_time`` (s) is when an
    agent enters the simulation (it waits while its spot is occupied by a
    walking agent or by one released before it). ``route`` names waypoints
    of the area (see :class:`WalkableArea`) to pass in order before heading
    for an exit: one sequence of names for every agent, or one sequence (or
    None) per agent. :meth:`concat` joins groups; where some groups gave
    speeds or radii and others did not, the joined arrays hold NaN ("the
    model's default") for the latter.
    """

    x: np.ndarray
    y: np.ndarray
    radius: object = None
    speed: object = None
    release_time: object = 0.0
    group: object = 0
    route: object = None

    def __post_init__(self):
        self.x = np.ascontiguousarray(np.atleast_1d(self.x), dtype=np.float64)
        self.y = np.ascontiguousarray(np.atleast_1d(self.y), dtype=np.float64)
        if self.x.shape != self.y.shape or self.x.ndim != 1:
            raise ParameterError(f"x and y must be 1-d arrays of the same length, got {self.x.shape} and {self.y.shape}")
        if not (np.isfinite(self.x).all() and np.isfinite(self.y).all()):
            raise ParameterError("agent positions must be finite numbers")
        n = len(self.x)
        for name, unit in (("radius", "m"), ("speed", "m/s")):
            v = getattr(self, name)
            if v is None:
                continue
            a = _per_agent(name, v, n, np.float64)
            if not (np.isfinite(a).all() and (a > 0).all()):
                bad = int(np.flatnonzero(~(np.isfinite(a) & (a > 0)))[0])
                raise ParameterError(f"agent {name} must be > 0 (a finite number, {unit}); agent {bad} has "
                                     f"{float(a[bad])!r}. Give positive {name} values, or {name}=None for the "
                                     "model's default")
            setattr(self, name, a)
        self.release_time = _per_agent("release_time", self.release_time, n, np.float64)
        if not (np.isfinite(self.release_time).all() and (self.release_time >= 0).all()):
            raise ParameterError("release_time must be >= 0 s for every agent")
        self.group = _per_agent("group", self.group, n, np.int64)
        self.route = _routes_per_agent(self.route, n)

    def __len__(self) -> int:
        return len(self.x)

    @classmethod
    def in_region(cls, area: WalkableArea, region=None, *, n: int | None = None, density: float | None = None,
                  radius: float | None = None, release_at: float = 0.0, release_rate: float | None = None,
                  group: int = 0, seed: int = 0, speed=None, route=None) -> "Agents":
        """Place agents in ``region`` (default: the whole area) by number or density.

        Agents sit on a jittered hexagonal lattice at least one radius from
        every wall and never overlapping. ``radius=None`` spaces them for
        0.25 m (the largest model default) and leaves the radius to the model. ``release_rate`` (agents/s) spreads
        their entry from ``release_at`` on; otherwise all enter at ``release_at``. ``route``: waypoint names
        everybody from this region passes in order before heading for an exit.
        """
        import shapely
        from shapely.geometry import Polygon

        if (n is None) == (density is None):
            raise ParameterError("give exactly one of n (number of agents) or density (persons/m2)")
        if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer))):
            raise ParameterError(f"n must be a whole number of agents (int), got {n!r}")
        geom = area.polygon if region is None else area.polygon.intersection(
            region if not isinstance(region, (list, tuple)) else Polygon(region))
        if geom.is_empty or geom.area <= 0:
            raise GeometryError("the start region does not overlap the walkable area; draw it inside")
        if density is not None:
            if not (isinstance(density, (int, float, np.number)) and math.isfinite(density) and density > 0):
                raise ParameterError(f"density must be a finite number > 0 persons/m2, got {density!r}")
            n = int(round(density * geom.area))
        if n is None or n < 0:
            raise ParameterError(f"n must be >= 0, got {n}")
        keep_radius = radius
        if radius is None:
            radius = 0.25
        if not radius > 0:
            raise ParameterError(f"radius must be > 0 m, got {radius}")
        rng = np.random.default_rng(seed)
        if n == 0:
            return cls(np.empty(0), np.empty(0), radius=keep_radius, route=route)
        rho = n / geom.area
        a = max(math.sqrt(2.0 / (math.sqrt(3.0) * rho)), 2 * radius + 0.02)
        x0, y0, x1, y1 = geom.bounds
        while True:
            ys = np.arange(y0 + a / 2, y1, a * math.sqrt(3) / 2)
            xs = np.arange(x0 + a / 2, x1, a)
            gx, gy = np.meshgrid(xs, ys)
            gx = gx + (np.arange(len(ys))[:, None] % 2) * a / 2
            gx, gy = gx.ravel(), gy.ravel()
            jit = max(0.0, (a - 2 * radius - 0.01) / 2)
            gx = gx + rng.uniform(-jit, jit, gx.shape) * 0.7
            gy = gy + rng.uniform(-jit, jit, gy.shape) * 0.7
            ok = shapely.contains_xy(geom, gx, gy) & area.contains(gx, gy)
            gx, gy = gx[ok], gy[ok]
            ok = area.wall_distance(gx, gy) >= radius + 0.01
            gx, gy = gx[ok], gy[ok]
            if area.periodic:  # neighbours across the wrap must not overlap either
                ok = _clear_of_the_wrap(gx, gy, *area.period, 2 * radius + 0.01)
                gx, gy = gx[ok], gy[ok]
            if len(gx) >= n or a <= 2 * radius + 0.0205:
                break
            a = max(a * 0.97, 2 * radius + 0.02)
        if len(gx) < n:
            raise GeometryError(
                f"cannot place {n} agents of radius {radius} m in a region of {geom.area:.1f} m2 "
                f"(room for {len(gx)}); lower n/density or enlarge the region"
            )
        pick = rng.choice(len(gx), size=n, replace=False)
        rel = np.full(n, float(release_at))
        if release_rate is not None:
            if not release_rate > 0:
                raise ParameterError(f"release_rate must be > 0 agents/s, got {release_rate}")
            rel = release_at + np.arange(n) / release_rate
        return cls(gx[pick], gy[pick], radius=keep_radius, release_time=rel, group=group, speed=speed, route=route)

    @classmethod
    def concat(cls, parts: list["Agents"]) -> "Agents":
        """One Agents of several groups, in order.

        A group that gave no ``speed`` (or ``radius``) keeps the model's
        default: its entries are NaN in the joined array when another group
        gave values, and the simulation draws or fills them.
        """
        parts = list(parts)
        if not all(isinstance(p, Agents) for p in parts):
            raise ParameterError("Agents.concat takes a list of Agents (see Agents.in_region)")

        def cat(name):
            if all(getattr(p, name) is None for p in parts):
                return None
            vals = [getattr(p, name) if getattr(p, name) is not None else np.full(len(p), np.nan) for p in parts]
            return np.concatenate(vals) if vals else np.empty(0)

        out = cls(np.concatenate([p.x for p in parts]) if parts else np.empty(0),
                  np.concatenate([p.y for p in parts]) if parts else np.empty(0),
                  release_time=np.concatenate([p.release_time for p in parts]) if parts else np.empty(0),
                  group=np.concatenate([p.group for p in parts]) if parts else np.empty(0, np.int64),
                  route=[r for p in parts for r in p.route])
        # the parts are validated already; NaN marks "the model's default" (refused from users)
        out.radius, out.speed = cat("radius"), cat("speed")
        return out


def _per_agent(name: str, v, n: int, dtype) -> np.ndarray:
    """``v`` (a scalar or one value per agent) as a fresh array of length ``n``."""
    try:
        a = np.asarray(v, dtype=dtype)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be a number or one number per agent, got {v!r}") from None
    if a.ndim > 1 or (a.ndim == 1 and len(a) not in (1, n)):
        raise ParameterError(f"{name} must be a scalar or have one value per agent ({n}), got shape {a.shape}; "
                             f"give one value for everybody or an array of length {n}")
    return np.broadcast_to(a, (n,)).copy()


def _routes_per_agent(route, n: int) -> list:
    """One tuple of waypoint names per agent (empty: straight to an exit)."""
    if route is None:
        return [()] * n
    if isinstance(route, str):
        return [(route,)] * n
    route = list(route)
    if all(isinstance(r, str) for r in route):
        return [tuple(route)] * n
    if len(route) != n:
        raise ParameterError(f"route must be a sequence of waypoint names, or one per agent ({n}); "
                             f"got {len(route)} entries")
    out = []
    for k, r in enumerate(route):
        r = () if r is None else ((r,) if isinstance(r, str) else tuple(r))
        if not all(isinstance(w, str) for w in r):
            raise ParameterError(f"agent {k}'s route must be waypoint names (str), got {r!r}")
        out.append(r)
    return out


def _measurement_lines(lines) -> tuple[list, np.ndarray]:
    """Line names and an (n, 4) float64 array x1, y1, x2, y2, checked."""
    if lines is None:
        return [], np.zeros((0, 4))
    if not isinstance(lines, dict):
        raise ParameterError("measurement_lines must be a dict of name -> [(x1, y1), (x2, y2)]")
    rows = []
    for name, v in lines.items():
        coords = getattr(v, "coords", v)  # a shapely LineString or a sequence of points
        try:
            a = np.asarray(coords, dtype=np.float64)
        except (TypeError, ValueError):
            a = np.empty(0)
        if a.shape != (2, 2):
            raise ParameterError(f"measurement line {name!r} must be two points [(x1, y1), (x2, y2)], "
                                 f"got {v!r}")
        if not np.isfinite(a).all():
            raise ParameterError(f"measurement line {name!r} has a coordinate that is not a finite number: "
                                 f"{a.tolist()}; give finite coordinates (metres)")
        if np.all(a[0] == a[1]):
            raise ParameterError(f"measurement line {name!r} has zero length (both points at {a[0].tolist()}); "
                                 "give two different points")
        rows.append(a.ravel())
    return [str(k) for k in lines], np.ascontiguousarray(np.asarray(rows, dtype=np.float64).reshape(-1, 4))


@dataclass
class JamEvent:
    """A jam: a crowd that stopped moving, or a lasting congestion; when, where, how many, at which exit.

    ``kind`` ``"congestion"``: a connected region of density cells whose density
    (mean over 5 s) stayed at or above ``CrowdParameters.congestion_density``
    (2 persons/m2: Fruin 1971, level of service F) for at least
    ``congestion_duration``; people still move, slowly. ``time_s`` and ``end_s``
    are when it began and ended, ``n_agents`` the most persons in it at once,
    ``peak_density`` its highest cell density (persons/m2, 5 s mean), ``x, y``
    its centre when fullest, ``exit`` the exit it queues at (None when it does
    not reach a door, e.g. before a corridor) and ``waypoint`` the waypoint most
    of its people head for, if any.

    The other kinds are standstills (nobody in the crowd moved for the jam
    window, detected at ``time_s``; ``end_s`` and ``peak_density`` are None):
    ``"door"`` (arching at an exit), ``"waypoint"`` (crowding at a waypoint)
    and ``"deadlock"`` (nobody moves at all).
    """

    time_s: float
    x: float
    y: float
    n_agents: int
    exit: str | None
    kind: str  # "congestion", or a standstill: "door", "waypoint" or "deadlock"
    waypoint: str | None = None  # the waypoint most of the jammed agents were heading for
    end_s: float | None = None  # congestion: when it ended (or the run did)
    peak_density: float | None = None  # congestion: highest cell density, persons/m2 (5 s mean)

    @property
    def standstill(self) -> bool:
        """True for a crowd that stopped moving, False for a congestion (slow, dense, moving)."""
        return self.kind != "congestion"

    def __str__(self) -> str:
        if self.kind == "congestion":
            where = f"at exit {self.exit!r} " if self.exit else ""
            if self.waypoint:
                where = f"at waypoint {self.waypoint!r} "
            return (f"congestion {where}near ({self.x:.1f}, {self.y:.1f}) from t = {self.time_s:.1f} s to "
                    f"{self.end_s:.1f} s: up to {self.n_agents} persons, peak density {self.peak_density:.1f} "
                    "persons/m2")
        if self.waypoint:
            where = f"at waypoint {self.waypoint!r} " + (f"(on the way to exit {self.exit!r}) " if self.exit else "")
        else:
            where = f"at exit {self.exit!r} " if self.exit else ""
        return (f"{self.kind} jam {where}near ({self.x:.1f}, {self.y:.1f}) at t = {self.time_s:.1f} s: "
                f"{self.n_agents} agents have not moved for the jam window")


@dataclass(repr=False)
class CrowdResult:
    """What a run produced (times in s, lengths in m, densities in persons/m2)."""

    status: str  # "evacuated", "time_limit", "jammed"
    time_s: float
    n_agents: int
    exit_time: np.ndarray  # (n,), nan where the agent did not leave
    exit_index: np.ndarray  # (n,), -1 where the agent did not leave
    exit_names: list
    exit_widths: np.ndarray
    curve: pd.DataFrame  # time_s, remaining, evacuated
    trajectories: pd.DataFrame  # time_s, agent, x, y, vx, vy
    density: np.ndarray  # (nt, ny, nx)
    density_times: np.ndarray
    density_grid: dict  # x0, y0, cell, nx, ny
    line_names: list
    line_crossings: pd.DataFrame  # time_s, agent, line, direction, speed
    jams: list = field(default_factory=list)
    waypoint_passages: pd.DataFrame = field(  # time_s, agent, waypoint: when each agent reached each waypoint
        default_factory=lambda: pd.DataFrame({"time_s": [], "agent": [], "waypoint": []}))

    @property
    def evacuation_time(self) -> float:
        """Time the last agent left (s); nan unless everybody left."""
        if self.n_agents and np.isfinite(self.exit_time).all():
            return float(np.max(self.exit_time))
        return float("nan")

    @property
    def evacuated(self) -> int:
        return int(np.isfinite(self.exit_time).sum())

    def exit_usage(self) -> pd.DataFrame:
        """Per exit: agents, first/last passage, mean flow (1/s) and specific flow (1/(m s))."""
        rows = []
        for e, name in enumerate(self.exit_names):
            t = np.sort(self.exit_time[self.exit_index == e])
            n = len(t)
            span = float(t[-1] - t[0]) if n > 1 else float("nan")
            flow = (n - 1) / span if n > 1 and span > 0 else float("nan")
            rows.append({"exit": name, "width_m": float(self.exit_widths[e]), "agents": n,
                         "first_s": float(t[0]) if n else float("nan"), "last_s": float(t[-1]) if n else float("nan"),
                         "flow_per_s": flow, "specific_flow_per_m_s": flow / self.exit_widths[e]})
        return pd.DataFrame(rows)

    def exit_flow(self, exit: str | int, t0: float | None = None, t1: float | None = None) -> float:
        """Flow (persons/s) through one exit (name or index) between t0 and t1: (N - 1) / (t_last - t_first)."""
        e = self._exit_number(exit)
        t = np.sort(self.exit_time[self.exit_index == e])
        if t0 is not None:
            t = t[t >= t0]
        if t1 is not None:
            t = t[t <= t1]
        if len(t) < 2 or t[-1] <= t[0]:
            return float("nan")
        return (len(t) - 1) / (t[-1] - t[0])

    def _exit_number(self, exit) -> int:
        if isinstance(exit, str):
            if exit not in self.exit_names:
                raise ParameterError(f"unknown exit {exit!r}; exits are {self.exit_names}")
            return self.exit_names.index(exit)
        if isinstance(exit, (bool, np.bool_)) or not isinstance(exit, (int, np.integer)):
            raise ParameterError(f"exit must be an exit name or index, got {exit!r}; exits are {self.exit_names}")
        if not 0 <= exit < len(self.exit_names):
            raise ParameterError(f"exit index {exit} is out of range: there are {len(self.exit_names)} exits "
                                 f"{self.exit_names} (0 to {len(self.exit_names) - 1})")
        return int(exit)

    def line_flow(self, line: str, bin_s: float = 5.0) -> pd.DataFrame:
        """Flow (persons/s) and mean crossing speed at a measurement line per time bin."""
        if line not in self.line_names:
            raise ParameterError(f"unknown measurement line {line!r}; lines are {self.line_names}")
        if not (isinstance(bin_s, (int, float, np.number)) and math.isfinite(bin_s) and bin_s > 0):
            raise ParameterError(f"bin_s must be a finite number of seconds > 0, got {bin_s!r}")
        c = self.line_crossings[self.line_crossings["line"] == line]
        if c.empty:
            return pd.DataFrame(columns=["t0_s", "t1_s", "flow_per_s", "mean_speed_m_s"])
        # bins of bin_s up to the end of the run; the last one ends with the run (a part bin's flow is
        # its count over its own length), and a crossing at the very end counts in it
        nb = max(1, math.ceil(self.time_s / bin_s - 1e-9))
        t0 = np.arange(nb) * bin_s
        t1 = np.minimum(t0 + bin_s, max(self.time_s, t0[-1] + 1e-9))
        b = np.clip(np.floor(c["time_s"].to_numpy() / bin_s).astype(np.int64), 0, nb - 1)
        speed = c["speed"].to_numpy()
        rows = []
        for k in range(nb):
            m = b == k
            rows.append({"t0_s": t0[k], "t1_s": t1[k], "flow_per_s": m.sum() / (t1[k] - t0[k]),
                         "mean_speed_m_s": float(speed[m].mean()) if m.any() else float("nan")})
        return pd.DataFrame(rows)

    def fundamental_diagram(self, region, t0: float = 0.0, t1: float | None = None) -> pd.DataFrame:
        """Classical density and mean speed in ``region`` (a polygon) at each recorded frame."""
        import shapely
        from shapely.geometry import Polygon

        poly = region if not isinstance(region, (list, tuple)) else Polygon(region)
        tr = self.trajectories
        if tr.empty:
            raise SimulationError("no trajectories were recorded; run with record_interval set")
        tr = tr[(tr["time_s"] >= t0) & ((tr["time_s"] <= t1) if t1 is not None else True)]
        inside = shapely.contains_xy(poly, tr["x"].to_numpy(), tr["y"].to_numpy())
        sub = tr[inside].assign(speed=np.hypot(tr["vx"][inside], tr["vy"][inside]))
        g = sub.groupby("time_s")
        out = pd.DataFrame({"density_per_m2": g.size() / poly.area, "speed_m_s": g["speed"].mean()})
        frames = pd.Index(np.unique(tr["time_s"]), name="time_s")
        return out.reindex(frames).fillna({"density_per_m2": 0.0}).reset_index()

    def fundamental_diagram_cells(self) -> pd.DataFrame:
        """The run's fundamental diagram on the density grid: per recorded frame and occupied
        cell, classical density (persons/m2) and mean speed (m/s) of the agents in it.

        Columns ``time_s, col, row, density_per_m2, speed_m_s`` (col/row index the
        ``density_grid``); plot speed against density for the run's diagram.
        """
        tr = self.trajectories
        cols = ["time_s", "col", "row", "density_per_m2", "speed_m_s"]
        if tr.empty:
            return pd.DataFrame(columns=cols)
        g = self.density_grid
        col = np.floor((tr["x"].to_numpy() - g["x0"]) / g["cell"]).astype(np.int64)
        row = np.floor((tr["y"].to_numpy() - g["y0"]) / g["cell"]).astype(np.int64)
        ok = (col >= 0) & (col < g["nx"]) & (row >= 0) & (row < g["ny"])
        df = pd.DataFrame({"time_s": tr["time_s"].to_numpy()[ok], "col": col[ok], "row": row[ok],
                           "speed": np.hypot(tr["vx"].to_numpy(), tr["vy"].to_numpy())[ok]})
        out = df.groupby(["time_s", "col", "row"], sort=True)["speed"].agg(["size", "mean"]).reset_index()
        out["density_per_m2"] = out.pop("size") / g["cell"] ** 2
        out["speed_m_s"] = out.pop("mean")
        return out[cols]

    def summary(self) -> dict:
        return {"status": self.status, "time_s": round(self.time_s, 3), "agents": self.n_agents,
                "evacuated": self.evacuated, "evacuation_time_s": self.evacuation_time,
                "jams": [str(j) for j in self.jams],
                "exits": self.exit_usage().to_dict(orient="records")}


class CrowdSimulation:
    """A pedestrian evacuation of one walkable area.

    Parameters
    ----------
    area : WalkableArea
    agents : Agents or list of Agents
    params : CrowdParameters, optional
    closed_exits : iterable of str
        Exits closed from the start (scenario edits).
    measurement_lines : dict of name -> [(x1, y1), (x2, y2)], optional
        Lines where flow and speed are recorded.

    Examples
    --------
    >>> from shapely.geometry import box
    >>> area = WalkableArea(box(0, 0, 6, 4), exits={"door": [(6, 1.5), (6, 2.5)]})
    >>> agents = Agents.in_region(area, box(0.5, 0.5, 3, 3.5), n=20, seed=1)
    >>> res = CrowdSimulation(area, agents).run(until=120)
    >>> res.status, res.evacuated
    ('evacuated', 20)
    """

    def __init__(self, area: WalkableArea, agents, params: CrowdParameters | None = None, *,
                 closed_exits=(), measurement_lines: dict | None = None, floor_field: FloorField | None = None):
        if not isinstance(area, WalkableArea):
            raise ParameterError("area must be a WalkableArea")
        self.area = area
        self.params = p = params if params is not None else CrowdParameters()
        if isinstance(agents, (list, tuple)):
            agents = Agents.concat(list(agents))
        if not isinstance(agents, Agents):
            raise ParameterError("agents must be an Agents object (see Agents.in_region)")
        n = len(agents)
        if n == 0:
            raise ParameterError("no agents to simulate; place at least one")
        self.n = n
        rng = np.random.default_rng(p.seed)
        self.r = agents.radius.copy() if agents.radius is not None else np.full(n, float(p.radius))
        self.r = np.where(np.isnan(self.r), float(p.radius), self.r)
        if agents.speed is not None and not np.isnan(agents.speed).any():
            self.v0 = agents.speed.copy()
        else:
            lo, hi = p.speed_clip
            drawn = np.clip(rng.normal(p.speed_mean, p.speed_sd, n), lo, hi)
            self.v0 = drawn if agents.speed is None else np.where(np.isnan(agents.speed), drawn, agents.speed)
        self.x = agents.x.copy()
        self.y = agents.y.copy()
        self.release = agents.release_time.copy()
        self.group = agents.group.copy()
        self._validate_positions()
        # measurement lines (checked before the floor field is built)
        self.line_names, self._lines = _measurement_lines(measurement_lines)
        self._check_lines_on_floor()
        # exits
        ne = len(area.exit_names)
        self.exit_open = np.ones(max(ne, 1), dtype=np.uint8)
        if ne == 0:
            self.exit_open[:] = 0
        for name in closed_exits:
            self.exit_open[area.exit_index(name)] = 0
        if ne and not self.exit_open.any():
            raise GeometryError(f"every exit is closed (closed_exits: {list(area.exit_names)}); nobody could leave. "
                                "Keep at least one exit open")
        self.exit_widths = np.hypot(area.exit_segments[:, 2] - area.exit_segments[:, 0],
                                    area.exit_segments[:, 3] - area.exit_segments[:, 1])
        # the exits for the kernels: x1, y1, x2, y2 and whether a jamb has a reveal (a door in a thick wall)
        self._exits = (np.column_stack([area.exit_segments, area.exit_reveals()]) if ne else np.zeros((1, 5)))
        self._normals = area.exit_normals if ne else np.zeros((1, 2))
        # routing
        if area.periodic:
            self.ff = None
            self._ff = np.full((1, 1, 1), np.inf)
            self._gx0 = self._gy0 = 0.0
            self._gh = 1.0
        else:
            self.ff = floor_field if floor_field is not None else FloorField(
                area, p.floor_field_cell, wall_avoidance=p.route_margin(float(self.r.max())), door_near=p.door_near)
            self._ff = self.ff.fields
            self._gx0, self._gy0, self._gh = self.ff.x0, self.ff.y0, self.ff.h
        self.ex = np.full(n, -1, dtype=np.intp)
        self._setup_routes(agents.route)
        self._setup_far_side()
        self._walk_on_len = 0.0 if area.periodic else float(p.exit_walk_on)
        if not area.periodic:
            self._choose_exits(np.arange(n), initial=True)
        # grids
        rmax = float(self.r.max())
        vmax = float(self.v0.max()) * (p.sfm_vmax_factor if p.model == "sfm" else 1.0)
        if p.model == "csm":
            self.cutoff = 2 * rmax + max(vmax * p.time_gap, 6 * p.neighbor_range) + 0.05
        else:
            self.cutoff = 2 * rmax + 0.6
        x0, y0, x1, y1 = area.bounds
        if area.periodic:
            px0, L = area.period
            cnx = int(L // self.cutoff)
            if cnx < 3:
                raise GeometryError(f"a periodic corridor must be at least {3 * self.cutoff:.1f} m long")
            self._cx0, self._ccs, self._cnx = px0, L / cnx, cnx
            self._cy0 = y0 - 1.0
            self._cny = int(math.ceil((y1 + 1.0 - self._cy0) / self._ccs))
            self._period = float(L)
        else:
            cs = self.cutoff
            cells = ((x1 - x0 + 2) / cs) * ((y1 - y0 + 2) / cs)
            if cells > 4e6:
                cs = math.sqrt((x1 - x0 + 2) * (y1 - y0 + 2) / 4e6)
            self._cx0, self._cy0, self._ccs = x0 - 1.0, y0 - 1.0, cs
            self._cnx = int(math.ceil((x1 + 1.0 - self._cx0) / cs))
            self._cny = int(math.ceil((y1 + 1.0 - self._cy0) / cs))
            self._period = 0.0
        self._cell_start = np.zeros(self._cnx * self._cny + 1, dtype=np.intp)
        self._cell_items = np.zeros(n, dtype=np.intp)
        self._cell_of = np.zeros(n, dtype=np.intp)
        self._sxyr = np.zeros((n, 3))
        wcs = max(1.0, math.sqrt((x1 - x0 + 2) * (y1 - y0 + 2) / 2e6))
        self._wx0, self._wy0, self._wcs = x0 - 1.0, y0 - 1.0, wcs
        self._wnx = int(math.ceil((x1 + 1.0 - self._wx0) / wcs))
        self._wny = int(math.ceil((y1 + 1.0 - self._wy0) / wcs))
        self._build_walls()
        # state
        self.t = 0.0
        self.vx = np.zeros(n)
        self.vy = np.zeros(n)
        # velocity as walked (displacement / dt), what trajectories and speed maps report: the model's own
        # velocity is what an agent wants (an agent pressed against a door jamb 'walks' at 1 m/s in it)
        self.walked_vx = np.zeros(n)
        self.walked_vy = np.zeros(n)
        self._walked = np.zeros((2, n))  # displacement over the current step's substeps
        self._nx = self.x.copy()
        self._ny = self.y.copy()
        self._nvx = np.zeros(n)
        self._nvy = np.zeros(n)
        self._out_exit = np.full(n, -1, dtype=np.intp)
        self._out_frac = np.ones(n)
        self.state = np.zeros(n, dtype=np.int8)  # 0 waiting, 1 walking, 2 left
        self.exit_time = np.full(n, np.nan)
        self.exit_index = np.full(n, -1, dtype=np.intp)
        self.act = np.empty(0, dtype=np.intp)
        # people who left walk on past the exit line for exit_walk_on metres, straight out at their desired
        # speed, and still take room there (see CrowdParameters.exit_walk_on): indices, velocities, metres left
        self._ghost = np.empty(0, dtype=np.intp)
        self._ghost_v = np.empty((0, 2))
        self._ghost_left = np.empty(0)
        self._release_due()
        self._crossings: list[np.ndarray] = []
        # records
        self._traj: list[np.ndarray] = []
        self._curve: list[tuple] = [(0.0, n, 0)]
        dx0, dy0 = x0, y0
        self._dgrid = {"x0": dx0, "y0": dy0, "cell": p.density_cell,
                       "nx": int(math.ceil((x1 - x0) / p.density_cell)), "ny": int(math.ceil((y1 - y0) / p.density_cell))}
        self._density: list[np.ndarray] = []
        self._density_t: list[float] = []
        self._next_record = 0.0
        self._next_density = 0.0
        self._next_rechoice = p.rechoice_interval
        self.jams: list[JamEvent] = []
        self._jam_t0 = 0.0
        self._jam_pos = self._snapshot()
        self._jam_exited = 0
        self._jam_exit_counts = np.zeros(len(self.exit_open), dtype=np.int64)
        self._jammed_exits: set = set()
        self._cg_next = 0.0
        self._cg_counts: collections.deque = collections.deque(maxlen=_CG_WINDOW)
        self._cg_open: list[dict] = []  # congested regions being followed
        self.stopped_by_jam = False
        # below this many walking agents one thread beats the thread start-up of prange
        self.parallel_threshold = 1500
        self.parallel: bool | None = None  # None: decide by measuring; True/False: force
        self._par_times: tuple = ([], [])
        self._step_no = 0

    # ------------------------------------------------------------------ validation and routing
    def _check_lines_on_floor(self):
        """A measurement line nobody can cross (off the walkable area) is an error, not an empty table."""
        import shapely

        if not len(self._lines):
            return
        lines = shapely.linestrings(self._lines.reshape(-1, 2, 2))
        off = ~shapely.intersects(lines, self.area.polygon)
        if off.any():
            k = int(np.flatnonzero(off)[0])
            x1, y1, x2, y2 = self._lines[k]
            bx0, by0, bx1, by1 = self.area.bounds
            raise GeometryError(f"measurement line {self.line_names[k]!r} ({x1:.2f}, {y1:.2f})-({x2:.2f}, {y2:.2f}) "
                                f"does not touch the walkable area (bounds ({bx0:.2f}, {by0:.2f})-({bx1:.2f}, "
                                f"{by1:.2f})); nobody could cross it. Draw it across the floor, in the area's "
                                "coordinates (metres)")

    def _setup_far_side(self):
        """Exits with floor beyond their line (a stair opening's rim, the floor running on round it past the
        exit's end): see ``_kernel_targets``. ``_far_field[e]``: the index of exit ``e``'s field copy in ``_ff``
        (followed as a waypoint's field is), -1 for an exit without floor beyond it."""
        self._far_field = None
        if self.area.periodic or not len(self.area.exit_names):
            return
        far = self.area.floor_beyond_exits(self.params.door_near)
        if not far.any():
            return  # doors in walls (every verification case): the kernels' rule as it is
        rmax = float(self.r.max()) if len(self.r) else 0.0
        self._stair_run = np.zeros(len(far))  # m a person may walk on down each stair: free of floor, body and all
        for e in np.flatnonzero(far):
            self._stair_run[e] = max(0.0, self.area.free_run_beyond_exit(int(e), self.params.exit_walk_on + rmax)
                                     - rmax)
        self._far_field = np.full(self._exits.shape[0], -1, dtype=np.intp)
        self._far_field[far] = self._ff.shape[0] + np.arange(int(far.sum()))
        self._ff = np.ascontiguousarray(np.concatenate([self._ff, self.ff.fields[far]]))

    def _kernel_targets(self) -> np.ndarray:
        """The field each agent follows this step: ``_tgt``, except near an exit with floor beyond it.

        Within ``door_near`` of its exit the kernels aim an agent straight through the door (at its part
        kept ``1.2 r`` off the jambs, 0.5 m beyond the line), which is right in front of a door in a wall. An
        exit drawn on the rim of a stair opening has floor round its ends: an agent standing there, on the far
        side of the exit's line or beside its end, would aim through the rim or a railing and stand there for
        good (the jams at the stairs of the sample IFC models' upper storeys). Such an agent, whose straight
        line to that aim point would not pass through the exit itself (``r`` off its ends), follows the
        exit's floor field round the rim instead (a copy of it, which the kernels follow as a waypoint's:
        no straight aim), until it stands in front of the exit."""
        if self._far_field is None:
            return self._tgt
        act = self.act
        t = self._tgt[act]
        ok = (t >= 0) & (t < self._n_exit_fields)
        ok[ok] = self._far_field[t[ok]] >= 0
        if not ok.any():
            return self._tgt
        i, e = act[ok], t[ok]
        s = self._exits[e]
        a, d = s[:, :2], s[:, 2:4] - s[:, :2]
        L = np.hypot(d[:, 0], d[:, 1])
        nrm = self._normals[e]
        p = np.column_stack([self.x[i], self.y[i]])
        side = np.einsum("ij,ij->i", p - a, nrm)
        # the kernels' aim point: the nearest point of the door shrunk by max(1.2 r, door_margin), 0.5 m beyond
        m = np.minimum(np.maximum(1.2 * self.r[i], self.params.door_margin), 0.5 * L) / L
        tq = np.clip(np.einsum("ij,ij->i", p - a, d) / (L * L), m, 1.0 - m)
        aim = a + tq[:, None] * d + 0.5 * nrm
        # where the straight line from the agent to it crosses the exit's line (the agent is on the near side)
        w = np.where(side < 0.0, -side / np.maximum(0.5 - side, 1e-12), 0.0)
        tc = np.einsum("ij,ij->i", p + w[:, None] * (aim - p) - a, d) / (L * L)
        edge = self.r[i] / L
        far = (side >= 0.0) | (tc < edge) | (tc > 1.0 - edge)
        if not far.any():
            return self._tgt
        tgt = self._tgt.copy()
        tgt[i[far]] = self._far_field[e[far]]
        return tgt

    def _setup_routes(self, routes):
        """Waypoint routes: per agent a route id, its leg, and the field it follows (``_tgt``)."""
        area, n = self.area, self.n
        self._n_exit_fields = self._exits.shape[0]
        uniq = sorted(set(routes))
        pos = {r: k for k, r in enumerate(uniq)}
        self.rid = np.asarray([pos[r] for r in routes], dtype=np.intp) if len(uniq) > 1 \
            else np.zeros(n, dtype=np.intp)
        wps = [[area.waypoint_index(w) for w in r] for r in uniq]  # unknown names fail here
        self._route_off = np.cumsum([0] + [len(r) for r in wps]).astype(np.intp)
        self._route_wp = np.asarray([w for r in wps for w in r], dtype=np.intp)
        self._has_routes = len(self._route_wp) > 0
        self.leg = np.zeros(n, dtype=np.intp)
        self._tgt = self.ex  # no routes: the kernels follow the exit fields
        self._passages: list[tuple] = []
        if not self._has_routes:
            return
        if area.periodic:
            raise GeometryError("a periodic corridor has no waypoints; drop the agents' routes")
        ff = self.ff
        if len(ff.waypoint_fields) != len(area.waypoint_names):
            raise ParameterError("the floor_field given was built for another area (its waypoints differ); "
                                 "build it with FloorField(area) for this area")
        self._ff = np.ascontiguousarray(np.concatenate([ff.fields, ff.waypoint_fields]))
        # every route must be walkable: start -> first waypoint -> ... -> an open exit
        for k_route, (r, route) in enumerate(zip(uniq, wps)):
            if not route:
                continue
            mine = np.flatnonzero(self.rid == k_route)
            first = K.sample_field(ff.waypoint_fields[route[0]:route[0] + 1], self._gx0, self._gy0, self._gh,
                                   self.x, self.y, mine)[0]
            if not np.isfinite(first).all():
                k = int(mine[np.flatnonzero(~np.isfinite(first))[0]])
                raise GeometryError(f"agent {k} at ({self.x[k]:.2f}, {self.y[k]:.2f}) cannot reach waypoint "
                                    f"{r[0]!r} of its route {list(r)}; move the waypoint or the agent")
            for a, b in zip(route[:-1], route[1:]):
                if not ff.reachable(ff.waypoint_fields[b], ff.waypoint_seeds[a]):
                    raise GeometryError(f"waypoint {area.waypoint_names[b]!r} cannot be reached from waypoint "
                                        f"{area.waypoint_names[a]!r} (route {list(r)})")
            last = route[-1]
            if not any(self.exit_open[e] and ff.reachable(ff.fields[e], ff.waypoint_seeds[last])
                       for e in range(len(area.exit_names))):
                raise GeometryError(f"no open exit can be reached from waypoint {area.waypoint_names[last]!r} "
                                    f"(route {list(r)}); open an exit or change the route")
        self._tgt = self.ex.copy()
        on = self._route_off[self.rid + 1] > self._route_off[self.rid]
        self._tgt[on] = self._n_exit_fields + self._route_wp[self._route_off[self.rid[on]]]

    def _advance_routes(self):
        """Agents that reached their waypoint go on to the next one, or choose an exit at the end."""
        adv = K.advance_routes(self._ff, self._gx0, self._gy0, self._gh, self.x, self.y, self.act, self._tgt,
                               self.leg, self.rid, self._route_wp, self._route_off, self._n_exit_fields,
                               self._gh, self.ex)
        if len(adv) == 0:
            return
        wp = self._route_wp[self._route_off[self.rid[adv]] + self.leg[adv] - 1]
        self._passages.extend(zip([self.t] * len(adv), adv.tolist(), wp.tolist()))
        done = adv[self._tgt[adv] < self._n_exit_fields]
        if len(done):  # route finished: choose the exit from here
            self._choose_exits(done, initial=False)

    def _validate_positions(self):
        area = self.area
        inside = area.contains(self.x, self.y)
        if not inside.all():
            k = int(np.flatnonzero(~inside)[0])
            raise GeometryError(f"agent {k} at ({self.x[k]:.2f}, {self.y[k]:.2f}) is outside the walkable area "
                                "(in a wall, an obstacle or beyond the outline); move it onto the floor")
        dw = area.wall_distance(self.x, self.y)
        bad = dw < self.r * (1 - 1e-6)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise GeometryError(f"agent {k} at ({self.x[k]:.2f}, {self.y[k]:.2f}) overlaps a wall "
                                f"({dw[k]:.2f} m from it, radius {self.r[k]:.2f} m); move it at least one radius "
                                "away from walls")
        from scipy.spatial import cKDTree

        pts = np.column_stack([self.x, self.y])
        pairs = cKDTree(pts).query_pairs(2 * float(self.r.max()), output_type="ndarray")
        if len(pairs):
            i, j = pairs[:, 0], pairs[:, 1]
            d = np.hypot(self.x[i] - self.x[j], self.y[i] - self.y[j])
            same = np.abs(self.release[i] - self.release[j]) < 1e-9
            bad = same & (d < (self.r[i] + self.r[j]) * (1 - 1e-6))
            if bad.any():
                k = int(np.flatnonzero(bad)[0])
                raise GeometryError(f"agents {i[k]} and {j[k]} overlap ({d[k]:.3f} m apart, radii "
                                    f"{self.r[i[k]]:.2f} + {self.r[j[k]]:.2f} m) and enter at the same time; "
                                    "space them out or give them different release times")

    def _choose_exits(self, idx, initial=False, fresh=False):
        """Choose the exit of agents ``idx``: the nearest reachable open exit (``initial``, or without
        ``congestion_aware``), else the one each expects to leave by soonest (:meth:`_rechoose`;
        ``fresh``: an exit opened, everybody weighs the exits anew, with no hysteresis)."""
        if len(idx) == 0:
            return
        idx = np.asarray(idx, np.intp)
        vals = K.sample_field(self.ff.fields, self._gx0, self._gy0, self._gh, self.x, self.y, idx)
        vals[self.exit_open[: vals.shape[0]] == 0, :] = np.inf
        walk = vals / self.v0[idx]
        aware = self.params.congestion_aware and not initial
        queue = self._queue_time(vals, idx) if aware else None
        cost = walk + queue if aware else walk
        best = np.argmin(cost, axis=0)
        ok = np.isfinite(cost[best, np.arange(len(idx))])
        if not ok.all():
            k = int(idx[np.flatnonzero(~ok)[0]])
            if initial:
                h = self.ff.h
                finer = (f"if the way out is a passage narrower than about {3 * h:.1f} m, it is closed on this grid: "
                         "set a finer CrowdParameters(floor_field_cell=...) (0.1 m resolves any passage a person "
                         "fits through); otherwise " if h > 0.1 + 1e-9 else "")
                raise GeometryError(f"agent {k} at ({self.x[k]:.2f}, {self.y[k]:.2f}) cannot reach any open exit "
                                    f"(open: {[n for e, n in enumerate(self.area.exit_names) if self.exit_open[e]]}) "
                                    f"on the floor field's {h:.2f} m grid; {finer}open an exit reachable from "
                                    "every start region or remove the agent")
            best = np.where(ok, best, self.ex[idx])
        if aware:
            best = self._rechoose(idx, vals, walk, queue, best, ok, fresh)
        self.ex[idx] = best
        if self._tgt is not self.ex:  # agents still on their route keep heading for their waypoint
            free = self._tgt[idx] < self._n_exit_fields
            self._tgt[idx[free]] = best[free]

    def _queue_time(self, vals, idx):
        """Time (s) the queue ahead of each agent ``idx`` needs to pass each exit: the walking agents
        heading for that exit and nearer to it (floor-field distance), over the door's capacity
        (``door_capacity`` x width)."""
        q = np.zeros_like(vals)
        act = self.act
        all_vals = K.sample_field(self.ff.fields, self._gx0, self._gy0, self._gh, self.x, self.y, act)
        for e in range(vals.shape[0]):
            mine = np.sort(all_vals[e][self.ex[act] == e])
            ahead = np.searchsorted(mine, vals[e])
            q[e] = ahead / (self.params.door_capacity * self.exit_widths[e])
        return q

    def _rechoose(self, idx, vals, walk, queue, best, ok, fresh=False):
        """Congestion-aware re-choice: each agent's expected time out by exit ``e`` is its walking
        time to ``e`` (floor-field distance / desired speed) plus the time the queue ahead of it at
        ``e`` needs to pass (the "travel time + queue time" of Pathfinder's locally quickest exit
        choice; free walking time underrates the walk through a dense crowd, and taking the larger
        of the two instead of their sum left a sample plaza's narrow exit overloaded: 135.5 s against
        122.5 s). Agents switch one at a time, the largest gain first, and each switch updates
        the queues the others see, so a crowd does not all jump to the same free exit at once and
        back again. An agent switches only for a gain of ``rechoice_gain`` (fraction) and
        ``rechoice_min_gain_s``, at most once per round, and never within
        ``rechoice_keep_distance`` of its current exit's door (``fresh``: any gain, anywhere). Agents
        with no exit yet, or whose exit closed, take the best one."""
        p = self.params
        rel, gain_s, keep = (0.0, 0.0, 0.0) if fresh else (p.rechoice_gain, p.rechoice_min_gain_s,
                                                           p.rechoice_keep_distance)
        m = len(idx)
        cols = np.arange(m)
        cur = self.ex[idx].copy()
        # an agent walking already counts in its own exit's queue: leaving it shortens the queue behind it
        counted = (self.state[idx] == 1) & np.isin(idx, self.act) & (cur >= 0)
        forced = (cur < 0) | ~ok
        forced[~forced] = ~np.isfinite(vals[cur[~forced], cols[~forced]])
        movable = ~forced & ok & (vals[np.maximum(cur, 0), cols] > keep)
        return K.rechoose_exits(vals, walk, queue, cur, counted, forced & ok, movable,
                                np.ascontiguousarray(p.door_capacity * self.exit_widths, dtype=np.float64),
                                float(rel), float(gain_s))

    def _build_walls(self):
        """Walls = the area's walls plus every closed door (a closed exit is a wall)."""
        closed = [self.area.exit_segments[e] for e in range(len(self.area.exit_names)) if self.exit_open[e] == 0]
        walls = np.vstack([self.area.walls.reshape(-1, 4), *[c.reshape(1, 4) for c in closed]]) \
            if closed else self.area.walls.reshape(-1, 4)
        self._walls = wall_vertex_table(walls)  # + the columns that count a vertex two segments share once
        self._wall_start, self._wall_idx = K.build_wall_grid(self._walls, self._wx0, self._wy0, self._wcs, self._wnx,
                                                             self._wny, self.cutoff + 0.5)

    def close_exit(self, name: str) -> None:
        """Close an exit now; agents heading for it choose again.

        Raises :class:`GeometryError` (and leaves the simulation as it was)
        when that would close every exit or leave an agent with no
        reachable open exit.
        """
        e = self.area.exit_index(name)
        if self.exit_open[e] == 0:
            return
        if not np.delete(self.exit_open[:len(self.area.exit_names)], e).any():
            raise GeometryError(f"closing {name!r} would close every exit; nobody could leave. "
                                "Keep at least one open (open another first)")
        idx = np.flatnonzero((self.state < 2) & (self.ex == e))
        ex_before, tgt_before = self.ex[idx].copy(), self._tgt[idx].copy()
        self.exit_open[e] = 0
        self._choose_exits(idx, initial=False)
        still = idx[self.ex[idx] == e]
        if len(still):
            # roll back: the exit stays open and everybody keeps their target
            self.exit_open[e] = 1
            self.ex[idx] = ex_before
            self._tgt[idx] = tgt_before
            k = int(still[0])
            raise GeometryError(f"closing {name!r} would leave agent {k} at ({self.x[k]:.2f}, {self.y[k]:.2f}) "
                                "with no reachable open exit; the exit stays open. Open another exit first")
        self._build_walls()

    def open_exit(self, name: str) -> None:
        """Open an exit now; everybody still inside chooses again (those nearer to it head for it)."""
        e = self.area.exit_index(name)
        if self.exit_open[e]:
            return
        self.exit_open[e] = 1
        self._build_walls()
        if not self.area.periodic:
            self._choose_exits(np.flatnonzero(self.state < 2), initial=False, fresh=True)

    # ------------------------------------------------------------------ stepping
    def _use_parallel(self) -> bool:
        """Threads or not: below ``parallel_threshold`` walkers, never; above it, whichever
        of the two measured faster per agent over a few probe steps (on a loaded machine
        thread start-up can cost more than it saves). Probed again every 2,000 steps."""
        if self.parallel is not None:
            return bool(self.parallel)
        if len(self.act) < self.parallel_threshold:
            return False
        if self._step_no % 2000 == 0:
            self._par_times = ([], [])
        ser, par = self._par_times
        if len(ser) < 16 or len(par) < 16:
            return len(par) < len(ser)
        # mean of interleaved probes: on a shared machine the threads' waits are part of their cost
        return float(np.mean(par[2:])) < float(np.mean(ser[2:]))

    def _rebuild_cells(self):
        # the walking agents and those walking on past an exit (seen as neighbours, not moved by the kernels)
        cellset = np.concatenate([self.act, self._ghost]) if len(self._ghost) else self.act
        K.build_cells(self.x, self.y, self.r, cellset, self._cx0, self._cy0, self._ccs, self._cnx, self._cny,
                      self._cell_start, self._cell_items, self._cell_of, self._sxyr)

    def _release_due(self):
        """Release the agents whose time has come, one after another in order of release time: each
        enters when it overlaps neither a walking agent nor one released before it; the rest wait."""
        due = np.flatnonzero((self.state == 0) & (self.release <= self.t + 1e-9))
        if len(due) == 0:
            return
        if len(due) > 1:
            due = due[np.argsort(self.release[due], kind="stable")]
        if len(self.act):
            self._rebuild_cells()
        else:  # nobody walking: an empty cell list
            self._cell_start[:] = 0
        ok = K.release_ok(due, self.x, self.y, self.r, self._cell_start, self._cell_items,
                          self._cx0, self._cy0, self._ccs, self._cnx, self._cny, self._period).astype(bool)
        due = np.sort(due[ok])
        if len(due):
            self.state[due] = 1
            if not self.area.periodic and self.params.congestion_aware and len(self.act):
                self._choose_exits(due, initial=False)
            self.act = np.sort(np.concatenate([self.act, due])).astype(np.intp)

    @property
    def time(self) -> float:
        return self.t

    @property
    def remaining(self) -> int:
        return int((self.state < 2).sum())

    def step(self, dt: float | None = None) -> None:
        """Advance by ``dt`` seconds (default ``params.dt``)."""
        p = self.params
        dt = p.dt if dt is None else float(dt)
        if not 0 < dt <= 0.1:
            raise ParameterError(f"dt must be in (0, 0.1] s, got {dt}")
        self._walked[:] = 0.0
        if p.model == "sfm":
            nsub = max(1, int(math.ceil(dt / p.sfm_max_dt - 1e-9)))
            for _ in range(nsub):
                self._substep(dt / nsub)
        else:
            self._substep(dt)
        self.walked_vx, self.walked_vy = self._walked / dt
        self._after_step()

    def _substep(self, dt):
        p = self.params
        self._step_no += 1
        if len(self.act) == 0:
            self.t += dt
            return
        self._rebuild_cells()
        fixed = (1.0, 0.0)
        common_cells = (self._cell_start, self._cell_items, self._cell_of, self._sxyr, self._cx0, self._cy0, self._ccs,
                        self._cnx, self._cny, self._period,
                        self._walls, self._wall_start, self._wall_idx, self._wx0, self._wy0, self._wcs,
                        self._wnx, self._wny,
                        self._ff, self._gx0, self._gy0, self._gh, self._exits, self._normals, self.exit_open,
                        p.door_near, p.door_margin, fixed[0], fixed[1])
        par = self._use_parallel()
        tgt = self._kernel_targets()
        t_start = time.perf_counter()
        if p.model == "csm":
            (K.csm_step_par if par else K.csm_step)(self.x, self.y, self.vx, self.vy, self.r, self.v0, tgt, self.act, dt,
                       p.time_gap, p.neighbor_repulsion, p.neighbor_range, p.wall_repulsion, p.wall_range,
                       p.direction_noise, self._step_no, self.cutoff, *common_cells, self._nx, self._ny, self._out_exit, self._out_frac)
        else:
            (K.sfm_step_par if par else K.sfm_step)(self.x, self.y, self.vx, self.vy, self.r, self.v0, tgt, self.act, dt,
                       p.tau, p.mass, p.sfm_A, p.sfm_B, p.sfm_k, p.sfm_kappa, p.sfm_lambda, p.sfm_A, p.sfm_B,
                       p.sfm_vmax_factor, p.sfm_social_cap, p.sfm_noise,
                       float(p.sfm_no_backwards), self._step_no, self.cutoff, *common_cells,
                       self._nx, self._ny, self._nvx, self._nvy, self._out_exit, self._out_frac)
            self.vx[self.act] = self._nvx[self.act]
            self.vy[self.act] = self._nvy[self.act]
        self._par_times[int(par)].append((time.perf_counter() - t_start) / len(self.act))
        act = self.act
        if len(self._lines):
            # on the unwrapped move: wrapping round a periodic corridor is not a crossing
            cr = K.line_crossings(self.x, self.y, self._nx, self._ny, act, self._lines, self._period)
            if len(cr):
                i = cr[:, 0]
                dx = self._nx[i] - self.x[i]
                if self._period > 0.0:
                    dx -= self._period * np.round(dx / self._period)
                sp = np.hypot(dx, self._ny[i] - self.y[i]) / dt
                self._crossings.append(np.column_stack([np.full(len(cr), self.t + dt), cr[:, 0], cr[:, 1],
                                                        cr[:, 2], sp]))
        dx = self._nx[act] - self.x[act]
        if self._period > 0.0:  # wrapping round a periodic corridor is no jump back
            dx -= self._period * np.round(dx / self._period)
        self._walked[0, act] += dx
        self._walked[1, act] += self._ny[act] - self.y[act]
        # swap buffers for the active agents
        self.x, self._nx = self._nx, self.x
        self.y, self._ny = self._ny, self.y
        waiting = self.state != 1
        if waiting.any():  # keep non-walking agents' positions in both buffers
            self.x[waiting] = self._nx[waiting]
            self.y[waiting] = self._ny[waiting]
        if len(self._ghost):
            self._walk_on(dt)
        out = self._out_exit[act]
        left = out >= 0
        if left.any():
            ids = act[left]
            self.state[ids] = 2
            self.exit_time[ids] = self.t + self._out_frac[ids] * dt
            self.exit_index[ids] = out[left]
            self.act = act[~left]
            self.vx[ids] = 0.0
            self.vy[ids] = 0.0
            if self._walk_on_len > 0.0:
                self._start_walk_on(ids, out[left])
        self.t += dt

    def _start_walk_on(self, ids, exits):
        """Agents ``ids`` just left by ``exits``: they walk on straight out of the exit at their desired speed
        for ``exit_walk_on`` metres, still taking room. By a stair (an exit with floor beyond its line: a stair
        opening's rim) they walk on down it, at ``stair_speed_factor`` of their desired speed, over the opening
        and never onto the floor beyond it (``_stair_run``). Taken out at a stair's rim instead, the next
        person found nobody ahead: a 1.15 m stair passed ~3 persons/(m s), more than any door."""
        speed = self.v0[ids].copy()
        run = np.full(len(ids), self._walk_on_len)
        if self._far_field is not None:
            stair = self._far_field[exits] >= 0
            speed[stair] *= self.params.stair_speed_factor
            run[stair] = np.minimum(run[stair], self._stair_run[exits[stair]])
            keep = run > 0.0
            ids, exits, speed, run = ids[keep], exits[keep], speed[keep], run[keep]
        if not len(ids):
            return
        v = self._normals[exits] * speed[:, None]
        self.vx[ids], self.vy[ids] = v[:, 0], v[:, 1]
        self._ghost = np.concatenate([self._ghost, ids])
        self._ghost_v = np.concatenate([self._ghost_v, v])
        self._ghost_left = np.concatenate([self._ghost_left, run])

    def _walk_on(self, dt):
        g, v = self._ghost, self._ghost_v
        self.x[g] += v[:, 0] * dt
        self.y[g] += v[:, 1] * dt
        self._nx[g], self._ny[g] = self.x[g], self.y[g]
        self._ghost_left -= np.hypot(v[:, 0], v[:, 1]) * dt
        done = self._ghost_left <= 0.0
        if done.any():
            self.vx[g[done]] = 0.0
            self.vy[g[done]] = 0.0
            keep = ~done
            self._ghost, self._ghost_v, self._ghost_left = g[keep], v[keep], self._ghost_left[keep]

    def _after_step(self):
        p = self.params
        if self._has_routes and len(self.act):
            self._advance_routes()
        if (self.state == 0).any():
            self._release_due()
        if p.congestion_aware and not self.area.periodic and self.t >= self._next_rechoice - 1e-9 and len(self.act):
            self._choose_exits(self.act, initial=False)
            self._next_rechoice += p.rechoice_interval
        if self.t >= self._next_record - 1e-9:
            self._record(trajectories=p.record_interval is not None)
            self._next_record += p.record_interval if p.record_interval is not None else 1.0
        if p.density_interval is not None and self.t >= self._next_density - 1e-9:
            g = self._dgrid
            cnt = K.density_count(self.x, self.y, self.act, g["x0"], g["y0"], g["cell"], g["nx"], g["ny"])
            self._density.append((cnt / g["cell"] ** 2).astype(np.float32))
            self._density_t.append(self.t)
            self._next_density += p.density_interval
        if self.t >= self._jam_t0 + p.jam_window - 1e-9:
            self._check_jams()
        if p.congestion_density is not None and self.t >= self._cg_next - 1e-9:
            self._sample_congestion()
            self._cg_next += _CG_SAMPLE_S

    def _record(self, trajectories: bool = True):
        """Evacuation-curve point (always) and trajectory frame (when recording)."""
        a = self.act
        if trajectories:
            self._traj.append(np.column_stack([np.full(len(a), self.t), a, self.x[a], self.y[a], self.walked_vx[a],
                                               self.walked_vy[a]]))
        left = int((self.state == 2).sum())
        self._curve.append((self.t, self.n - left, left))

    def _check_jams(self):
        """Over the last jam window: which exits' crowds stopped moving and let nobody out."""
        p = self.params
        x0, y0 = self._jam_pos
        a = self.act
        counts = np.bincount(self.exit_index[self.exit_index >= 0], minlength=len(self.exit_open))
        passed = counts - self._jam_exit_counts
        # only agents walking for the whole window
        if len(a):
            disp = np.hypot(self.x[a] - x0[a], self.y[a] - y0[a])
            walking_before = ~np.isnan(x0[a])
            a, disp = a[walking_before], disp[walking_before]
        else:
            disp = np.empty(0)
        new = []
        if len(a):
            stuck = disp < p.jam_min_progress
            if self.area.periodic:
                # positions wrap round the corridor: judge by the current speed instead
                disp = np.hypot(self.walked_vx[a], self.walked_vy[a]) * p.jam_window
                stuck = disp < p.jam_min_progress
                if stuck.all():
                    new.append(self._jam_event(a, None, "deadlock"))
            else:
                for e in np.unique(self.ex[a]):
                    mine = self.ex[a] == e
                    if passed[e] == 0 and np.median(disp[mine]) < p.jam_min_progress and e not in self._jammed_exits:
                        self._jammed_exits.add(int(e))
                        new.append(self._jam_event(a[mine & stuck], self.area.exit_names[e],
                                                   "deadlock" if stuck.all() else "door"))
                    elif passed[e] > 0:
                        self._jammed_exits.discard(int(e))
                if stuck.all() and passed.sum() == 0 and not new:
                    new.append(self._jam_event(a, None, "deadlock"))
        for ev in new:
            self.jams.append(ev)
            if p.on_jam == "raise":
                raise SimulationError(f"{ev}; change the geometry, open an exit or lower the demand")
            twin_warn(f"{ev}", TwinWarning, stacklevel=3)
        if len(a) and (disp < p.jam_min_progress).all() and passed.sum() == 0:
            self.stopped_by_jam = True  # a complete standstill always ends the run
        elif new and p.on_jam == "stop":
            self.stopped_by_jam = True
        self._jam_t0 = self.t
        self._jam_pos = self._snapshot()
        self._jam_exit_counts = counts

    def _sample_congestion(self):
        """Follow the congested regions: connected density cells (8-neighbours) whose density, the mean
        of the last ``_CG_WINDOW`` samples, is at least ``congestion_density``. A region continues an
        open one it overlaps (the oldest, where several merge); an open one no region continues has
        ended, and is reported when it lasted ``congestion_duration``."""
        from scipy import ndimage

        p, g = self.params, self._dgrid
        cnt = K.density_count(self.x, self.y, self.act, g["x0"], g["y0"], g["cell"], g["nx"], g["ny"])
        self._cg_counts.append(cnt)
        if len(self._cg_counts) < _CG_WINDOW:
            return
        rho = sum(self._cg_counts) / (_CG_WINDOW * g["cell"] ** 2)
        t_mid = self.t - (_CG_WINDOW - 1) / 2 * _CG_SAMPLE_S  # the mean stands for the middle of its window
        labels, n_reg = ndimage.label(rho >= p.congestion_density, structure=np.ones((3, 3), bool))
        grown = {id(ev): np.zeros(labels.shape, bool) for ev in self._cg_open}
        taken = np.zeros(n_reg + 1, bool)
        for ev in self._cg_open:  # oldest first
            for k in np.unique(labels[ev["mask"]]):
                if k and not taken[k]:
                    taken[k] = True
                    grown[id(ev)] |= labels == k
        still = []
        for ev in self._cg_open:
            m = grown[id(ev)]
            if m.any():
                ev["mask"], ev["end"] = m, t_mid
                self._congestion_update(ev, m, cnt, rho)
                still.append(ev)
            else:
                self._congestion_close(ev)
        for k in np.flatnonzero(~taken[1:]) + 1:
            ev = {"start": t_mid, "end": t_mid, "mask": labels == k, "n": -1, "peak": 0.0}
            self._congestion_update(ev, ev["mask"], cnt, rho)
            still.append(ev)
        self._cg_open = still

    def _congestion_update(self, ev, mask, cnt, rho):
        """Peak density; and where, how many and heading where when the region holds the most people."""
        ev["peak"] = max(ev["peak"], float(rho[mask].max()))
        n = int(cnt[mask].sum())
        if n <= ev["n"]:
            return
        g = self._dgrid
        rows, cols = np.nonzero(mask)
        w = rho[rows, cols]
        ev["n"] = n
        ev["x"] = float(g["x0"] + (np.average(cols, weights=w) + 0.5) * g["cell"])
        ev["y"] = float(g["y0"] + (np.average(rows, weights=w) + 0.5) * g["cell"])
        ev["exit"] = ev["waypoint"] = None
        a = self.act
        ci = np.floor((self.x[a] - g["x0"]) / g["cell"]).astype(np.intp)
        cj = np.floor((self.y[a] - g["y0"]) / g["cell"]).astype(np.intp)
        inside = (ci >= 0) & (ci < g["nx"]) & (cj >= 0) & (cj < g["ny"])
        inside[inside] = mask[cj[inside], ci[inside]]
        a = a[inside]
        if len(a) == 0 or self.area.periodic:
            return
        if self._tgt is not self.ex:
            wp = self._tgt[a] - self._n_exit_fields
            if (wp >= 0).sum() * 2 > len(a):
                ev["waypoint"] = self.area.waypoint_names[int(np.bincount(wp[wp >= 0]).argmax())]
                return
        a = a[self.ex[a] >= 0]
        if len(a) == 0:
            return
        # it queues at an exit when its people heading for that exit reach the door (within a cell and a
        # metre of it, walking distance); of several such exits, the one most of them head for
        d = K.sample_field(self.ff.fields, self._gx0, self._gy0, self._gh, self.x, self.y, a)
        best, most = -1, 0
        for e in np.unique(self.ex[a]):
            mine = self.ex[a] == e
            if d[e, mine].min() <= g["cell"] + 1.0 and mine.sum() > most:
                best, most = int(e), int(mine.sum())
        if best >= 0:
            ev["exit"] = self.area.exit_names[best]

    def _congestion_event(self, ev) -> JamEvent | None:
        if ev["end"] - ev["start"] < self.params.congestion_duration - 1e-9:
            return None
        return JamEvent(time_s=float(ev["start"]), x=ev["x"], y=ev["y"], n_agents=ev["n"], exit=ev["exit"],
                        kind="congestion", waypoint=ev["waypoint"], end_s=float(ev["end"]),
                        peak_density=round(ev["peak"], 3))

    def _congestion_close(self, ev):
        jam = self._congestion_event(ev)
        if jam is not None:
            self.jams.append(jam)

    def _snapshot(self):
        xs = np.full(self.n, np.nan)
        ys = np.full(self.n, np.nan)
        xs[self.act] = self.x[self.act]
        ys[self.act] = self.y[self.act]
        return xs, ys

    def _jam_event(self, idx, exit_name, kind):
        if len(idx) == 0:
            idx = self.act
        # agents still on their route head for a waypoint: a jam there is no jam at the exit's door
        wp = self._tgt[idx] - self._n_exit_fields if self._tgt is not self.ex else np.empty(0, dtype=np.intp)
        wp = wp[wp >= 0]
        waypoint = None
        if len(wp) * 2 > len(idx):
            waypoint = self.area.waypoint_names[int(np.bincount(wp).argmax())]
            kind = "waypoint" if kind == "door" else kind
        return JamEvent(time_s=float(self.t), x=float(np.mean(self.x[idx])), y=float(np.mean(self.y[idx])),
                        n_agents=int(len(idx)), exit=exit_name, kind=kind, waypoint=waypoint)

    # ------------------------------------------------------------------ running
    def run(self, until: float = 3600.0, progress: Callable[[float, float], None] | None = None) -> CrowdResult:
        """Run until everybody has left, ``until`` seconds, or a jam stops the run.

        ``progress(done, total)`` is called with agents evacuated and the total
        (about once per simulated second).
        """
        if not until > 0:
            raise ParameterError(f"until must be > 0 s, got {until}")
        p = self.params
        self._check_density_memory(until)
        next_prog = self.t
        while self.t < until - 1e-9:
            if self.remaining == 0 and not self.area.periodic:
                break
            self.step(min(p.dt, until - self.t))
            if self.stopped_by_jam:
                break
            if progress is not None and self.t >= next_prog:
                progress(float(self.n - self.remaining), float(self.n))
                next_prog += 1.0
        if progress is not None:
            progress(float(self.n - self.remaining), float(self.n))
        return self.result()

    def _check_density_memory(self, until: float) -> None:
        """Refuse, before running, density maps that could not be held: every frame is the whole grid
        (a 2 km x 2 km area at 1 m cells every 5 s for an hour is 11.6 GB of float32)."""
        p = self.params
        if p.density_interval is None:
            return
        g = self._dgrid
        frames = int((until - self.t) / p.density_interval) + 2
        need = frames * g["nx"] * g["ny"] * 4
        if need > MAX_DENSITY_BYTES:
            raise ParameterError(
                f"density maps of {g['nx']} x {g['ny']} cells ({p.density_cell:g} m) every {p.density_interval:g} s "
                f"up to {until:g} s would take {need / 2**30:.1f} GiB (limit {MAX_DENSITY_BYTES / 2**30:.0f} GiB); "
                "use a coarser density_cell, a longer density_interval, a shorter until, or density_interval=None")

    def _all_jams(self) -> list:
        """The jams in the order they were found (a congestion when it ended), then the congestion
        still going on (ending now)."""
        going_on = [self._congestion_event(ev) for ev in self._cg_open]
        return self.jams + [j for j in going_on if j is not None]

    def result(self) -> CrowdResult:
        if not self._curve or self._curve[-1][0] < self.t:
            self._record(trajectories=self.params.record_interval is not None)
        status = "jammed" if self.stopped_by_jam else ("evacuated" if self.remaining == 0 else "time_limit")
        traj = np.concatenate(self._traj) if self._traj else np.empty((0, 6))
        trajectories = pd.DataFrame({"time_s": traj[:, 0], "agent": traj[:, 1].astype(np.int64), "x": traj[:, 2],
                                     "y": traj[:, 3], "vx": traj[:, 4], "vy": traj[:, 5]})
        cr = np.concatenate(self._crossings) if self._crossings else np.empty((0, 5))
        crossings = pd.DataFrame({"time_s": cr[:, 0], "agent": cr[:, 1].astype(np.int64),
                                  "line": [self.line_names[int(k)] for k in cr[:, 2]],
                                  "direction": cr[:, 3].astype(np.int64), "speed": cr[:, 4]})
        curve = pd.DataFrame(self._curve, columns=["time_s", "remaining", "evacuated"]).drop_duplicates("time_s", keep="last")
        g = self._dgrid
        dens = np.stack(self._density) if self._density else np.zeros((0, g["ny"], g["nx"]), np.float32)
        return CrowdResult(status=status, time_s=float(self.t), n_agents=self.n, exit_time=self.exit_time.copy(),
                           exit_index=self.exit_index.copy(), exit_names=list(self.area.exit_names),
                           exit_widths=self.exit_widths.copy(), curve=curve.reset_index(drop=True),
                           trajectories=trajectories, density=dens, density_times=np.asarray(self._density_t),
                           density_grid=dict(g), line_names=list(self.line_names), line_crossings=crossings,
                           jams=self._all_jams(), waypoint_passages=pd.DataFrame(
                               {"time_s": [float(q[0]) for q in self._passages],
                                "agent": np.asarray([q[1] for q in self._passages], dtype=np.int64),
                                "waypoint": [self.area.waypoint_names[q[2]] for q in self._passages]}))


CrowdResult.__repr__ = compact_repr  # arrays and tables by shape (the dataclass repr printed ~6 kB of numbers)
