"""The crowd models' verification report: RiMEA 3.0 tests, the 1 m door (as the exit,
and with a room behind it: ``bottleneck_door_room``) and the measured 1 m x 2.8 m
corridor bottleneck (``bottleneck_corridor``), run now,
written as Markdown with plots (``twin crowd-verify``).

The cases and criteria are :mod:`simulation.crowd.verification`, the same
ones the test suite asserts on.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
from pathlib import Path
from typing import Callable

import numpy as np

from twin_core.errors import ParameterError

__all__ = ["write_crowd_verification"]

_NAMES = {"csm": "collision-free speed model (Tordeux et al. 2016)", "sfm": "social force model (Helbing et al. 2000)"}


def _out_dir(out) -> Path:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ParameterError(f"{out} is a file, not a folder; give a folder for the report (it is created if missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ParameterError(f"cannot create the report folder {out}: {exc.strerror}; give a writable folder") from None
    if not os.access(out, os.W_OK):
        raise ParameterError(f"the report folder {out} is not writable; give a writable folder")
    return out


def _plots(checks, out: Path) -> list[str]:
    # Figure objects, not pyplot: no backend switch and no global figure state in a user's notebook
    from matplotlib.figure import Figure

    from simulation.crowd.verification import weidmann_speed

    files = []

    def save(fig, name):
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        files.append(name)
    fd = [c for c in checks if c.case == "RiMEA 4"]
    if fd:
        fig = Figure(figsize=(6, 4))
        ax = fig.subplots()
        rho = np.linspace(0.3, 5.3, 200)
        w = weidmann_speed(rho)
        ax.fill_between(rho, w - 0.4, w + 0.4, color="0.9", label="Weidmann (1993) +- 0.4 m/s")
        ax.plot(rho, w, color="0.3", lw=1)
        for c in fd:
            ax.plot(c.data["density"], c.data["speed"], "o-", label=f"{c.model} ({'pass' if c.passed else 'FAIL'})")
        ax.set(xlabel="density (persons/m2)", ylabel="speed (m/s)", title="RiMEA 4: fundamental diagram", ylim=(-0.1, 1.8))
        ax.legend()
        save(fig, "rimea4_fundamental_diagram.png")
    r12 = [c for c in checks if c.case == "RiMEA 12"]
    if r12:
        fig = Figure(figsize=(6 * len(r12), 4))
        axes = fig.subplots(1, len(r12), squeeze=False, sharey=True)
        for ax, c in zip(axes[0], r12):
            ax.plot(c.data["time_s"], c.data["density_corridor"], label="before the corridor")
            ax.plot(c.data["time_s"], c.data["density_exit"], label="before the exit")
            ax.axhline(1.0, color="r", ls="--", lw=1, label="free flow 1/m2 (exit: <= 10 s above)")
            ax.axhline(2.0, color="0.5", ls=":", lw=1, label="jam 2/m2 (exit: never above)")
            ax.set(xlabel="time (s)", ylabel="persons/m2 within 2 m", title=f"RiMEA 12, {c.model}: "
                   f"{'pass' if c.passed else 'FAIL'}")
            ax.legend()
        save(fig, "rimea12_density.png")
    r6 = [c for c in checks if c.case == "RiMEA 6"]
    if r6:
        fig = Figure(figsize=(5 * len(r6), 5))
        axes = fig.subplots(1, len(r6), squeeze=False)
        for ax, c in zip(axes[0], r6):
            ax.fill([0, 12, 12, 10, 10, 0], [0, 0, 12, 12, 2, 2], color="0.92")
            tr = c.data["trajectories"]
            for _, g in tr.groupby("agent"):
                ax.plot(g["x"], g["y"], lw=0.6)
            ax.set(aspect="equal", title=f"RiMEA 6, {c.model}: {'pass' if c.passed else 'FAIL'}")
        save(fig, "rimea6_corner.png")
    return files


def write_crowd_verification(out, models=None, cases=None,
                             progress: Callable[[float, float], None] | None = None, seed: int | None = None) -> dict:
    """Run the verification cases (default: all) with each model (default: both) and write ``report.md`` and plots into ``out``.

    ``seed``: every case's start placement (None: each case's own, as the docs and tests quote it).
    Returns ``{"report": path, "plots": [...], "checks": [{case, model, seed, passed, measured, criterion}]}``.
    A failing case is reported, not raised: the report is the record.
    """
    from simulation.crowd import MODELS
    from simulation.crowd.verification import CASES, KNOWN_LIMITATIONS, check_selection, run_checks

    models, cases = check_selection(MODELS if models is None else models, tuple(CASES) if cases is None else cases)
    out = _out_dir(out)
    checks = run_checks(models, cases, progress=progress, seed=seed)
    plots = _plots(checks, out)
    lines = [
        "# Crowd model verification",
        "",
        f"Run {_dt.datetime.now().astimezone().isoformat(timespec='seconds')} on {platform.node()} "
        f"({platform.machine()}, Python {platform.python_version()}). Cases and criteria: "
        "`simulation/crowd/verification.py` (the same ones the test suite asserts on).",
        "",
        "One start placement (seed) per case: a crowd placed at random passes or fails a case on some placements "
        "and not others (docs/crowd_verification.md gives seeds 1-10); `twin crowd-verify --seed N` runs every "
        "case on seed N.",
        "",
        "| case | model | seed | criterion | measured | result |",
        "|---|---|---|---|---|---|",
    ]
    for c in checks:
        lines.append(f"| {c.case} | {c.model} | {c.data.get('seed', '')} | {c.criterion} | {c.measured} | "
                     f"{'pass' if c.passed else '**FAIL**'} |")
    lines += ["", "Models: " + "; ".join(f"`{m}` = {_NAMES.get(m, m)}" for m in dict.fromkeys(c.model for c in checks)), ""]
    known = [(c, KNOWN_LIMITATIONS[c.key, c.model]) for c in checks
             if (c.key, c.model) in KNOWN_LIMITATIONS and not c.passed]
    if known:
        lines += ["## Known limitations", ""] + [f"- {c.case}, {c.model}: {why}" for c, why in known] + [""]
    lines += [f"![{p}]({p})" for p in plots]
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"report": str(report), "plots": [str(out / p) for p in plots],
            "checks": [{"case": c.case, "model": c.model, "seed": c.data.get("seed"), "passed": c.passed,
                        "measured": c.measured,
                        "criterion": c.criterion} for c in checks]}
