"""Verification cases of the crowd models: RiMEA 3.0 tests 1, 4, 6 and 12, the
flow through a 1 m door and the measured flow through a 1 m wide, 2.8 m long
bottleneck (a corridor), each as a function that builds the case, runs it and
measures it against its criterion.

The test suite asserts on these measurements (``tests/simulation/crowd/
test_crowd_rimea.py``) and ``twin crowd-verify`` writes them as a report with
plots, so what a regulator reads is what CI checks.

Criteria (RiMEA = Richtlinie fuer Mikroskopische Entfluchtungsanalysen,
version 3.0, 2016):

- RiMEA 1: one person at 1.33 m/s along a 40 m x 2 m corridor takes 26-34 s.
- RiMEA 4: mean speed along a periodic corridor at 0.5, 1, 2, 3, 4, 5
  persons/m2 (over 60 s after the first 10 s) falls as density rises (0.05 m/s
  tolerance) and stays within 0.4 m/s of Weidmann (1993),
  ``v = 1.34 (1 - exp(-1.913 (1/rho - 1/5.4)))``; 0.4 m/s is ~1.5 standard
  deviations of free walking speed (Weidmann: sd 0.26 m/s).
- RiMEA 6: 20 persons round a left corner of a 2 m corridor never enter a
  wall, never cross one between steps and never cut the inner corner.
- RiMEA 12: 150 persons, room - 5 m x 1 m corridor - room - 1 m exit: a jam
  (> 2 persons/m2 within 2 m of the corridor's mouth for >= 20 s in all)
  forms before the corridor, and none at the exit: within 2 m of it never
  the jam density (2 persons/m2) and more than free flow's 1 person/m2
  (Weidmann's curve) for at most 10 s in all. A platoon of faster walkers
  reaching the door together (7-8 persons, 1.1-1.3/m2, for 0.5-2.5 s, behind a
  corridor passing ~1.65 persons/s) is not a queue; a queue stands above
  2/m2 for minutes (the SFM: 50-90 s). RiMEA adds that, until it is settled
  empirically whether a jam may form in room 2 after all, Test 12 documents
  model behaviour and is not an exclusion criterion; ours is a test so that
  a second jam is noticed.
- Bottleneck (corridor), the measured 1 m bottleneck: Seyfried et al. 2009
  (Transp. Sci. 43(3), 395-406; arXiv physics/0702004): a 1 m wide, 2.8 m
  long bottleneck, 60 persons starting at ~3.3 persons/m2 in front of it,
  specific flow 1.90 (m s)^-1 (Table 2, b = 1.0 m, N = 60; quoted second-hand,
  the primary text was not reachable); the 2006 Duesseldorf experiment
  (Rupprecht, Klingsch & Seyfried 2011; Liddle et al. 2011), 4 m long,
  b = 1.0 m: 1.83 (recomputed by a third party from the data archive).
  Criterion 1.5-2.0 persons/(m s) at 2.8 m (the band of the issue around
  1.90: -0.4 / +0.1), the same band around 1.83 at 4 m: 1.43-1.93.
- Bottleneck (door into a room): a 1 m door in a 0.1 m wall with a room
  behind it, people walking on; counted at the door: 1.5-2.16 (as the door).
- Bottleneck (door, the exit): a 1 m door in a thin wall that is the exit,
  fed by a crowd of 3 persons/m2, steady phase. Nobody measured this
  geometry; measured flows rise as a bottleneck gets shorter (1.83 at 4 m,
  1.90 at 2.8 m; Liddle et al. 2011 report an anomalously high flow through
  short bottlenecks), and their straight line reaches 2.06 at length 0. The
  criterion is 1.5-2.16: the issue's lower edge, the upper edge 0.1 above
  that line (``bottleneck_band``). People who leave
  walk on past the exit (``CrowdParameters.exit_walk_on``): taken out at the
  line, the next finds nobody ahead and the door passes ~3.4 (CSM).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import shapely
from shapely.geometry import LineString, Polygon, box

from simulation.crowd.engine import MODELS, Agents, CrowdParameters, CrowdSimulation
from simulation.crowd.geometry import WalkableArea

__all__ = ["CASES", "KNOWN_LIMITATIONS", "MEASURED_1M_FLOW", "Check", "bottleneck", "bottleneck_band", "bottleneck_corridor", "bottleneck_door_room", "rimea_1", "rimea_4", "rimea_6", "rimea_12", "rimea_12_densities",
           "check_selection", "run_checks", "weidmann_speed"]

# RiMEA 12: the half disc of 2 m radius before a door, where density is counted (m2)
_HALF_DISC = np.pi * 2.0 ** 2 / 2

#: measured specific flow through a 1 m wide bottleneck, persons/(m s), by its length (m): Seyfried et al. 2009
#: (2.8 m, Table 2, N = 60) and the 2006 Duesseldorf experiment (4 m; Rupprecht, Klingsch & Seyfried 2011), both
#: second-hand here (docs/crowd_verification.md)
MEASURED_1M_FLOW = {2.8: 1.90, 4.0: 1.83}
#: the issue's band, 1.5-2.0 persons/(m s) around the measured 1.90: 0.4 below, 0.1 above
BAND_BELOW, BAND_ABOVE = 0.4, 0.1


def bottleneck_band(length: float) -> tuple[float, float, float]:
    """(expected, low, high) specific flow in persons/(m s) through a 1 m wide bottleneck ``length`` m long.

    Expected: the straight line through the two measurements (:data:`MEASURED_1M_FLOW`: 1.90 at 2.8 m, 1.83 at
    4 m), flat beyond 4 m (no data there; the line would fall on without bound); a door (length 0) gets 2.06.
    That shorter bottlenecks pass more is measured (Liddle et al. 2011: an anomalously high flow through short
    bottlenecks); the line through two points is our own, model-free estimate, not a measurement.
    Band: the issue's 1.5-2.0 around 1.90 at 2.8 m; its upper edge moves with the line (0.1 above it: 2.16 for
    a door, 1.93 at 4 m), its lower edge stays at 1.5 for shorter bottlenecks and moves down with the line for
    longer ones (1.43 at 4 m)."""
    (l0, j0), (l1, j1) = sorted(MEASURED_1M_FLOW.items())
    j = j0 + (min(float(length), l1) - l0) * (j1 - j0) / (l1 - l0)
    return j, min(j - BAND_BELOW, 1.5), j + BAND_ABOVE


@dataclass
class Check:
    """One verification case run with one model: what was measured and whether it passed."""

    case: str
    model: str
    criterion: str
    measured: str
    passed: bool
    data: dict = field(default_factory=dict)
    key: str = ""  # the name in CASES

    def __post_init__(self):
        self.passed = bool(self.passed)


def _params(model: str, overrides: dict, **case) -> CrowdParameters:
    # the case's own settings, then the caller's parameters (e.g. rimea_12("sfm", sfm_social_cap=0.9))
    from dataclasses import fields

    from twin_core.errors import ParameterError

    known = {f.name for f in fields(CrowdParameters)}
    bad = sorted(set(overrides) - known)
    if bad or "model" in overrides:
        raise ParameterError(f"unknown crowd parameters {bad or ['model']} (give the model as the first argument); "
                             f"CrowdParameters has {sorted(known - {'model'})}")
    return CrowdParameters(model=model, **{**case, **overrides})


def weidmann_speed(rho):
    """Weidmann's (1993) walking speed at density ``rho`` (persons/m2), m/s."""
    rho = np.asarray(rho, dtype=float)
    return 1.34 * (1.0 - np.exp(-1.913 * (1.0 / rho - 1.0 / 5.4)))


def rimea_1(model: str = "csm", seed: int = 0, **params) -> Check:
    """RiMEA 1: one person at 1.33 m/s along a 40 m x 2 m corridor (``seed``: the run's
    :attr:`CrowdParameters.seed`; start and speed are fixed)."""
    area = WalkableArea(box(0, 0, 40, 2), exits={"end": [(40, 0), (40, 2)]})
    p = _params(model, params, seed=seed)
    x0 = p.radius + 0.01
    res = CrowdSimulation(area, Agents([x0], [1.0], speed=1.33), p).run(until=60)
    t = float(res.evacuation_time) if res.status == "evacuated" else float("inf")
    return Check("RiMEA 1", model, "travel time 26-34 s (40 m at 1.33 m/s = 30 s)", f"{t:.1f} s",
                 res.status == "evacuated" and 26.0 <= t <= 34.0,
                 {"time_s": t, "expected_s": (40.0 - x0) / 1.33, "status": res.status})


def rimea_4(model: str = "csm", densities=(0.5, 1, 2, 3, 4, 5), seed: int = 2, **params) -> Check:
    """RiMEA 4: the fundamental diagram in a periodic 12 m x 2 m corridor.

    Agents have radius 0.2 m so that 5 persons/m2 fit (disks of 0.25 m pack
    at most 4.6/m2); speed is the velocity along the corridor. ``seed``: the
    random start positions.
    """
    area = WalkableArea(box(0, 0, 12, 2), periodic=True)
    p = _params(model, params, radius=0.2, record_interval=0.5, density_interval=None, jam_window=1000)
    speeds = []
    for rho in densities:
        ag = Agents.in_region(area, density=rho, radius=p.radius, seed=seed)
        tr = CrowdSimulation(area, ag, p).run(until=70).trajectories
        speeds.append(float(tr.loc[tr["time_s"] > 10, "vx"].mean()))
    speeds = np.array(speeds)
    ref = weidmann_speed(densities)
    dev = np.abs(speeds - ref)
    falls = bool(np.all(np.diff(speeds) <= 0.05)) and speeds[0] - speeds[-1] > 0.8
    return Check("RiMEA 4", model, "speed within 0.4 m/s of Weidmann (1993) and falling with density",
                 f"max deviation {dev.max():.2f} m/s, {speeds[0]:.2f} -> {speeds[-1]:.2f} m/s",
                 bool(dev.max() <= 0.4) and falls,
                 {"density": np.asarray(densities, float), "speed": speeds, "weidmann": ref, "falls": falls})


def _l_corridor() -> WalkableArea:
    # 2 m wide: east 12 m, then a LEFT turn north for 10 m (inner corner at (10, 2))
    poly = Polygon([(0, 0), (12, 0), (12, 12), (10, 12), (10, 2), (0, 2)])
    return WalkableArea(poly, exits={"north": [(10, 12), (12, 12)]})


def rimea_6(model: str = "csm", seed: int = 3, **params) -> Check:
    """RiMEA 6: 20 persons round a left corner of a 2 m wide L-shaped corridor (``seed``: the random
    start positions)."""
    area = _l_corridor()
    p = _params(model, params, record_interval=0.01, density_interval=None)
    ag = Agents.in_region(area, box(0, 0, 6, 2), n=20, radius=p.radius, seed=seed)
    res = CrowdSimulation(area, ag, p).run(until=120)
    tr = res.trajectories.sort_values(["agent", "time_s"])
    x, y = tr["x"].to_numpy(), tr["y"].to_numpy()
    same = tr["agent"].to_numpy()[1:] == tr["agent"].to_numpy()[:-1]
    crossings = int(area.crosses_wall(x[:-1][same], y[:-1][same], x[1:][same], y[1:][same]).sum())
    inner = LineString([(0, 2), (10, 2), (10, 12)])
    corner = float(shapely.distance(inner, shapely.points(x, y)).min())
    clearance = float(area.wall_distance(x, y).min())
    outside = int((~area.contains(x, y)).sum())
    ok = (res.status == "evacuated" and res.evacuated == 20 and outside == 0 and crossings == 0
          and clearance >= 0.99 * p.radius and corner >= 0.99 * p.radius)
    return Check("RiMEA 6", model, "no agent in a wall, through a wall or across the inner corner",
                 f"{res.evacuated}/20 out, {outside} centres off the floor, {crossings} wall crossings, "
                 f"closest to a wall {clearance:.3f} m (radius {p.radius} m)", ok,
                 {"evacuated": int(res.evacuated), "outside": outside, "crossings": crossings,
                  "wall_clearance": clearance, "corner_clearance": corner, "radius": p.radius,
                  "trajectories": tr[["agent", "time_s", "x", "y"]]})


def _rimea_12_area() -> WalkableArea:
    # room A 10 x 10 m, corridor 5 m x 1 m, room B 10 x 10 m, 1 m exit in B's far wall
    poly = box(0, 0, 10, 10).union(box(10, 4.5, 15, 5.5)).union(box(15, 0, 25, 10))
    return WalkableArea(poly, exits={"exit": [(25, 4.5), (25, 5.5)]})


def rimea_12_densities(tr, interval: float) -> dict:
    """RiMEA 12's measures from trajectories (``time_s``, ``x``, ``y``; one row per agent and record every
    ``interval`` s): persons/m2 within 2 m before the corridor's mouth and before the exit at each record
    time, the seconds above 2/m2 before the corridor (``jam_s``) and above 1/m2 before the exit
    (``exit_busy_s``)."""
    times = np.unique(tr["time_s"].to_numpy())
    x, y = tr["x"].to_numpy(), tr["y"].to_numpy()

    def density(cx):
        near = (np.hypot(x - cx, y - 5.0) < 2.0) & (x < cx)
        return tr[near].groupby("time_s").size().reindex(times, fill_value=0).to_numpy() / _HALF_DISC

    rho_corr, rho_exit = density(10.0), density(25.0)
    return {"time_s": times, "density_corridor": rho_corr, "density_exit": rho_exit,
            "jam_s": float((rho_corr > 2.0).sum() * interval), "exit_busy_s": float((rho_exit > 1.0).sum() * interval)}


def rimea_12(model: str = "csm", seed: int = 4, **params) -> Check:
    """RiMEA 12: the jam forms only before the corridor, not at the exit (``seed``: the random start
    positions)."""
    area = _rimea_12_area()
    p = _params(model, params, record_interval=0.5, density_interval=None)
    ag = Agents.in_region(area, box(0, 0, 9, 10), n=150, radius=p.radius, seed=seed)
    res = CrowdSimulation(area, ag, p).run(until=400)
    m = rimea_12_densities(res.trajectories, p.record_interval)
    rho_exit, jam_s, busy_s = m["density_exit"], m["jam_s"], m["exit_busy_s"]
    ok = (res.status == "evacuated" and res.evacuated == 150 and jam_s >= 20.0 and rho_exit.max() <= 2.0
          and busy_s <= 10.0)
    return Check("RiMEA 12", model,
                 "> 2 persons/m2 before the corridor for >= 20 s; within 2 m of the exit never > 2/m2 and "
                 "> 1/m2 for <= 10 s",
                 f"{jam_s:.0f} s jammed before the corridor; exit peak {rho_exit.max():.2f}/m2 "
                 f"({int(round(rho_exit.max() * _HALF_DISC))} persons), {busy_s:.1f} s above 1/m2; "
                 f"all out at {res.evacuation_time or float('nan'):.0f} s", ok,
                 {**m, "status": res.status, "evacuated": int(res.evacuated)})


def bottleneck(model: str = "csm", seed: int = 1, **params) -> Check:
    """A 1 m door in a thin wall, the exit, fed by a crowd of 3 persons/m2: specific flow in the steady phase
    (``seed``: the random start positions).

    The short-bottleneck (door) check: nobody measured this geometry, so its band is the measured corridors'
    trend taken to length 0 (:func:`bottleneck_band`: 1.5-2.16). People walk on past the exit line
    (``CrowdParameters.exit_walk_on``); with ``exit_walk_on=0`` they leave the simulation at the line, the next
    finds nobody ahead and the door passes far more (CSM ~3.4). The measured geometry is
    :func:`bottleneck_corridor`; :func:`bottleneck_door_room` is the same door inside a building."""
    area = WalkableArea(box(0, 0, 8, 8), exits={"door": [(8, 3.5), (8, 4.5)]})
    p = _params(model, params, record_interval=None, density_interval=None)
    ag = Agents.in_region(area, box(0.3, 0.3, 7.0, 7.7), density=3.0, radius=p.radius, seed=seed)
    res = CrowdSimulation(area, ag, p).run(until=300)
    t = np.sort(res.exit_time[np.isfinite(res.exit_time)])
    a, b = int(0.1 * len(t)), int(0.7 * len(t))  # steady phase: drop the first 10 % and the tail
    flow = (b - a) / (t[b] - t[a]) / 1.0 if b > a and t[b] > t[a] else 0.0
    _, lo, hi = bottleneck_band(0.0)
    return Check("Bottleneck 1 m door", model,
                 f"{lo:.2f}-{hi:.2f} persons/(m s) through a door in a thin wall, people walking on (1.5-2.0 as "
                 "for the measured 1 m x 2.8 m corridor, the upper edge raised to 0.1 above the measured corridors' "
                 "trend at length 0: 1.90 at 2.8 m, 1.83 at 4 m -> 2.06)",
                 f"{flow:.2f} persons/(m s), {len(t)} persons", res.status == "evacuated" and lo <= flow <= hi,
                 {"flow": flow, "status": res.status, "curve": res.curve, "band": (lo, hi)})


def _flows(exit_time) -> tuple[np.ndarray, float, float]:
    # sorted exit times; steady-phase flow (drop the first 10 % and the last 30 %, as bottleneck()) and the
    # whole group's J = dN / dt = (N - 1) / (t_last - t_first), i.e. 1 / mean time gap (persons/s)
    t = np.sort(exit_time[np.isfinite(exit_time)])
    a, b = int(0.1 * len(t)), int(0.7 * len(t))
    steady = (b - a) / (t[b] - t[a]) if b > a and t[b] > t[a] else 0.0
    whole = (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else 0.0
    return t, float(steady), float(whole)


def bottleneck_corridor(model: str = "csm", length: float = 2.8, seed: int = 1, **params) -> Check:
    """The measured 1 m bottleneck: a 1 m wide corridor ``length`` m long (default 2.8 m, Seyfried et al.
    2009) out of a waiting room, 60 persons starting at 3.3 persons/m2 in front of it (``seed``: the random
    start positions).

    Geometry as far as known: Seyfried et al. (2009, Transp. Sci. 43(3); arXiv physics/0702004) ran groups
    of N = 20, 40 and 60 starting at ~3.3 persons/m2 through a 2.8 m long bottleneck; their Table 2 gives
    1.90 persons/(m s) at b = 1.0 m, N = 60 (second-hand: quoted by a paper note and two repositories; the
    primary text was not reachable). The size of their waiting area and how far the group started from the
    bottleneck are not known here: we use a 6 m x 8 m room, the corridor centred in its 8 m wall, and the
    60 persons in a 4.5 m wide block of 60 / 3.3 = 18.2 m2 flush against that wall.

    The flow is counted where persons leave the corridor, as J = dN / dt over the whole group:
    (N - 1) / (t_last - t_first), one over the mean time gap (Seyfried's J = dN/dt; whether their table used
    the whole group or a steady part is not known here). ``data["flow_steady"]`` is the steady-phase flow
    measured as :func:`bottleneck` does (exits 10 %-70 %), for comparison with the door. The criterion is
    :func:`bottleneck_band` at ``length``: 1.5-2.0 at 2.8 m; ``length=4`` is the 2006 experiment's 4 m
    corridor (1.83 measured; 1.43-1.93). People walk on past the corridor's end (``exit_walk_on``).
    """
    from twin_core.errors import ParameterError

    if isinstance(length, bool) or not isinstance(length, (int, float, np.number)) or not np.isfinite(length) \
            or length <= 0:
        raise ParameterError(f"length must be a finite number of metres > 0 (the corridor's length), got {length!r}; "
                             "for a door in a thin wall use bottleneck()")
    n, rho, depth, width, block = 60, 3.3, 6.0, 8.0, 4.5
    length = float(length)
    poly = box(0, 0, depth, width).union(box(depth, width / 2 - 0.5, depth + length, width / 2 + 0.5))
    area = WalkableArea(poly, exits={"corridor end": [(depth + length, width / 2 - 0.5), (depth + length, width / 2 + 0.5)]})
    p = _params(model, params, record_interval=None, density_interval=None)
    d = n / rho / block  # 4.04 m deep
    ag = Agents.in_region(area, box(depth - d, width / 2 - block / 2, depth, width / 2 + block / 2), n=n,
                          radius=p.radius, seed=seed)
    res = CrowdSimulation(area, ag, p).run(until=300)
    t, steady, whole = _flows(res.exit_time)
    flow = whole / 1.0  # specific flow: the corridor is 1 m wide
    expected, lo, hi = bottleneck_band(length)
    ok = res.status == "evacuated" and len(t) == n and lo <= flow <= hi
    src = {2.8: "Seyfried et al. 2009: 1.90 at b = 1.0 m, 2.8 m long, N = 60",
           4.0: "Rupprecht, Klingsch & Seyfried 2011: 1.83 at b = 1.0 m, 4 m long"}.get(
        length, f"{expected:.2f} on the line through 1.90 at 2.8 m and 1.83 at 4 m")
    return Check(f"Bottleneck 1 m x {length:g} m corridor", model,
                 f"{lo:.2f}-{hi:.2f} persons/(m s) as J = dN/dt over the group ({src}; second-hand)",
                 f"{flow:.2f} persons/(m s) (steady phase as the door: {steady:.2f}), {len(t)}/{n} persons", ok,
                 {"flow": flow, "flow_steady": steady, "length": length, "status": res.status,
                  "evacuated": int(len(t)), "curve": res.curve, "band": (lo, hi)})


def bottleneck_door_room(model: str = "csm", seed: int = 1, **params) -> Check:
    """The same 1 m door and crowd as :func:`bottleneck`, but the door is an opening in a 0.1 m wall with a
    4 m deep room behind it (the exit is that room's far wall): people walk on after the door, as in every
    experiment, instead of leaving the simulation at the door line. The flow is counted where they cross the
    door (the first trajectory record, every 0.2 s, past its middle), in the steady phase as
    :func:`bottleneck` counts it.

    Until 2026-12-05 :func:`bottleneck` took a person out the moment the centre reached the door line, so the
    next one found nobody ahead; this case showed it (people now walk on past an exit: ``exit_walk_on``)."""
    x0, wall, x1 = 8.0, 0.1, 12.0
    poly = box(0, 0, x0, 8).union(box(x0 - 0.1, 3.5, x0 + wall + 0.1, 4.5)).union(box(x0 + wall, 0, x1, 8))
    area = WalkableArea(poly, exits={"far wall": [(x1, 0), (x1, 8)]})
    p = _params(model, params, record_interval=0.2, density_interval=None)
    ag = Agents.in_region(area, box(0.3, 0.3, 7.0, 7.7), density=3.0, radius=p.radius, seed=seed)
    res = CrowdSimulation(area, ag, p).run(until=400)
    tr = res.trajectories
    passed = tr[tr["x"] > x0 + wall / 2].groupby("agent")["time_s"].min().to_numpy()
    t, steady, _ = _flows(passed)
    n = len(ag.x)
    _, lo, hi = bottleneck_band(wall)
    ok = res.status == "evacuated" and len(t) == n and lo <= steady <= hi
    return Check("Bottleneck 1 m door into a room", model,
                 f"{lo:.2f}-{hi:.2f} persons/(m s) counted at the door, people walking on into a room behind it "
                 "(the band of a bottleneck as long as the wall is thick: bottleneck_band)",
                 f"{steady:.2f} persons/(m s), {len(t)}/{n} persons through", ok,
                 {"flow": steady, "status": res.status, "passed": int(len(t)), "curve": res.curve,
                  "band": (lo, hi)})


# Cases a model is known to fail, with why (the test suite marks them xfail(strict) with this reason)
KNOWN_LIMITATIONS = {
    ("rimea_12", "sfm"): (
        "social force model (Helbing, Farkas & Vicsek 2000 forces): a 1 m door passes at most ~1.4 persons/s "
        "as one free lane (following distance 2r + B ln(A tau / (m (v0 - v)))), and more only when a pressing "
        "crowd pushes. The corridor is fed by one and delivers 1.3-1.45/s; the exit, fed by the corridor's "
        "file, is not pushed and passes less, so a second queue forms before it (seed 4: above 2/m2 for 70 s, "
        "peak 2.86/m2, 18 persons; seeds 1-3: 53-90 s). The collision-free speed model passes. RiMEA 3.0 itself treats Test 12 as documenting model "
        "behaviour, not as an exclusion criterion. See docs/crowd_verification.md."),
    ("bottleneck", "sfm"): (
        "social force model: through a 1 m door in a thin wall, people walking on past it, 1.36-1.46 persons/(m s) "
        "(seeds 1-3), under the band of a door, 1.5-2.16: one free file follows at "
        "2r + B ln(A tau / (m (v0 - v))) and passes ~1.4/s unpushed. Until 2026-12-05 it passed (1.85) only "
        "because people were taken out of the simulation at the door line. See docs/crowd_verification.md."),
    ("bottleneck_corridor", "sfm"): (
        "social force model: through a 1 m wide, 2.8 m long corridor 1.31-1.32 persons/(m s) as J = dN/dt "
        "(seeds 1-3; 1.03-1.22 while the wall force counted the corridor's mouth twice), under the measured 1.90 "
        "(Seyfried et al. 2009): one file, ~1.4/s at most unpushed. See docs/crowd_verification.md."),
    ("bottleneck_door_room", "sfm"): (
        "social force model: through a 1 m door with a room behind it 1.45-1.64 persons/(m s) (seeds 1-3; seed "
        "1, the one tested, 1.47), mostly under the 1.5-2.16 band: one file, ~1.4/s at most unpushed. See "
        "docs/crowd_verification.md."),
}

CASES: dict[str, Callable[[str], Check]] = {
    "rimea_1": rimea_1, "rimea_4": rimea_4, "rimea_6": rimea_6, "rimea_12": rimea_12, "bottleneck": bottleneck,
    "bottleneck_corridor": bottleneck_corridor, "bottleneck_door_room": bottleneck_door_room,
}


def check_selection(models, cases) -> tuple[list[str], list[str]]:
    """``models`` and ``cases`` as lists of known names; a clear error otherwise."""
    from twin_core.errors import ParameterError

    models = [models] if isinstance(models, str) else list(models)
    cases = [cases] if isinstance(cases, str) else list(cases)
    bad = [m for m in models if m not in MODELS] + [c for c in cases if c not in CASES]
    if bad or not models or not cases:
        raise ParameterError(f"unknown model or case {bad or '(none given)'}: models are {list(MODELS)}, "
                             f"cases are {list(CASES)}")
    return models, cases


def run_checks(models=MODELS, cases=tuple(CASES), progress: Callable[[float, float], None] | None = None,
               seed: int | None = None) -> list[Check]:
    """Run ``cases`` (names of :data:`CASES`) with each of ``models``; ``progress(done, total)``. ``seed``: the
    start placement of every case (None: each case's own default, the one its docs and tests quote); the seed
    used is ``check.data["seed"]``."""
    import inspect

    from twin_core.errors import ParameterError

    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise ParameterError(f"seed must be a whole number >= 0, got {seed!r}")
    models, cases = check_selection(models, cases)
    out = []
    total = len(models) * len(cases)
    for m in models:
        for c in cases:
            used = int(seed) if seed is not None else inspect.signature(CASES[c]).parameters["seed"].default
            out.append(CASES[c](m, seed=used))
            out[-1].data["seed"] = used
            out[-1].key = c
            if progress is not None:
                progress(float(len(out)), float(total))
    return out
