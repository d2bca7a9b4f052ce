"""RiMEA 3.0 test 12 in our crowd models and in JuPedSim's, side by side (an outcome
comparison, not a timing: ``benchmarks/crowd.py`` times the models).

The geometry of ``simulation.crowd.verification.rimea_12`` (room A 10 x 10 m,
5 m x 1 m corridor, room B 10 x 10 m, 1 m exit; JuPedSim gets a 0.5 m stub
beyond the exit as its exit stage), 150 agents placed at random without
overlap in x < 9 m, desired speeds N(1.34, 0.26) clipped to [0.5, 2.0],
dt = 0.01 s. Measured as in the test: persons within 2 m before the exit
every 0.5 s (RiMEA 12 asks for no queue there; the test allows 6, i.e.
1/m2), seconds above 2/m2 before the corridor, the corridor's outflow.
JuPedSim stops a run with "outside of accessible area" when a model pushes
an agent through a wall; that is reported as such.

Run: ``.venv/bin/python benchmarks/crowd_rimea12_jupedsim.py [--seeds 1,2,4]``
(needs ``pip install jupedsim``; results in docs/crowd_verification.md)
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from shapely.geometry import box
from shapely.ops import unary_union

from simulation.crowd.verification import rimea_12, rimea_12_densities

HALF_DISC = np.pi * 2.0 ** 2 / 2  # m2 of the half disc the densities are counted in


def jupedsim_run(kind: str, radius: float, time_gap: float, seed: int) -> str:
    import jupedsim as jps

    stub = box(25, 4.5, 25.5, 5.5)
    poly = unary_union([box(0, 0, 10, 10), box(10, 4.5, 15, 5.5), box(15, 0, 25, 10), stub])
    model = {"csm": jps.CollisionFreeSpeedModel, "gcfm": jps.GeneralizedCentrifugalForceModel,
             "sfm": jps.SocialForceModel}[kind]()
    sim = jps.Simulation(model=model, geometry=poly, dt=0.01)
    ex = sim.add_exit_stage(stub)
    jid = sim.add_journey(jps.JourneyDescription([ex]))
    rng = np.random.default_rng(seed)
    pts: list = []
    while len(pts) < 150:
        p = rng.uniform([radius + 0.05, radius + 0.05], [9 - radius, 10 - radius - 0.05])
        if all(np.hypot(*(p - q)) >= 2 * radius + 0.02 for q in pts):
            pts.append(p)
    for p in pts:
        v0 = float(np.clip(rng.normal(1.34, 0.26), 0.5, 2.0))
        common = dict(journey_id=jid, stage_id=ex, position=tuple(p), desired_speed=v0)
        if kind == "csm":
            sim.add_agent(jps.CollisionFreeSpeedModelAgentParameters(**common, radius=radius, time_gap=time_gap))
        elif kind == "gcfm":
            sim.add_agent(jps.GeneralizedCentrifugalForceModelAgentParameters(**common, orientation=(1, 0)))
        else:
            sim.add_agent(jps.SocialForceModelAgentParameters(**common, orientation=(1, 0), radius=radius))
    t, seen, corr, rows = 0.0, set(), [], []
    try:
        while sim.agent_count() > 0 and t < 600:
            sim.iterate()
            t += 0.01
            if sim.iteration_count() % 50:
                continue
            for a in sim.agents():
                rows.append((round(t, 2), *a.position))
                if a.id not in seen and a.position[0] >= 15:
                    seen.add(a.id)
                    corr.append(t)
    except RuntimeError as exc:
        return f"stopped at {t:.1f} s: {str(exc)[:60]}"
    m = rimea_12_densities(pd.DataFrame(rows, columns=["time_s", "x", "y"]), 0.5)
    peak = m["density_exit"].max()
    c = np.sort(corr)
    a, b = int(0.1 * len(c)), int(0.7 * len(c))
    flow = (b - a) / (c[b] - c[a]) if b > a else float("nan")
    return (f"{sim.agent_count()} of 150 left at {t:.0f} s; exit peak {peak * HALF_DISC:.0f} persons ({peak:.2f}/m2); "
            f"{m['jam_s']:.0f} s jammed before the corridor; corridor {flow:.2f}/s")


def ours(model: str, seed: int) -> str:
    c = rimea_12(model, seed=seed)
    return f"{'pass' if c.passed else 'FAIL'}: {c.measured}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="4")
    args = ap.parse_args()
    print("| run | seed | result |\n|---|---|---|")
    for seed in [int(s) for s in args.seeds.split(",")]:
        for model in ("csm", "sfm"):
            print(f"| ours, {model} (defaults) | {seed} | {ours(model, seed)} |", flush=True)
        for kind, r, tg in [("csm", 0.2, 1.0), ("csm", 0.25, 0.7), ("sfm", 0.25, 1.0), ("sfm", 0.3, 1.0),
                            ("gcfm", 0.25, 1.0)]:
            label = f"JuPedSim {kind}" + (f", r {r} m, T {tg} s" if kind == "csm" else f", r {r} m" if kind == "sfm" else "")
            print(f"| {label} | {seed} | {jupedsim_run(kind, r, tg, seed)} |", flush=True)


if __name__ == "__main__":
    main()
