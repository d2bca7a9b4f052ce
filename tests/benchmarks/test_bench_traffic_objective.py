"""benchmarks/traffic.py: median of timed runs, and both sides' Beckmann objectives in the written section."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_traffic", ROOT / "benchmarks" / "traffic.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_median_run_picks_the_run_of_median_time():
    b = _bench()
    runs = [(0.9, 10, "slow"), (0.1, 11, "fast"), (0.5, 12, "mid")]
    assert b.median_run(runs) == (0.5, 12, "mid")
    assert b.median_run(runs[:2]) == (0.1, 11, "fast")  # even count: the lower middle run, one that happened
    with pytest.raises(ValueError, match="--runs 1 or more"):
        b.median_run([])


def test_rel_diff():
    b = _bench()
    assert b.rel_diff(101.0, 100.0) == pytest.approx(0.01)
    assert b.rel_diff(99.0, -100.0) == pytest.approx(1.99)
    assert math.isnan(b.rel_diff(float("nan"), 1.0)) and math.isnan(b.rel_diff(1.0, 0.0))


def test_section_prints_both_objectives_and_their_difference(tmp_path):
    b = _bench()
    rows = [("SiouxFalls", 1e-4, 0.02, 75, 9e-5, 4231362.0, 0.6, 118, 9.9e-5, 4231400.0)]
    out = tmp_path / "traffic.md"
    b.write(rows, [], 3, out, quick=True)
    text = out.read_text()
    assert "median of 3 timed runs" in text and "QUICK run" in text
    line = next(ln for ln in text.splitlines() if ln.startswith("| SiouxFalls"))
    assert line.split(" | ")[-3:] == ["4.231362e+06", "4.231400e+06", "+9.0e-06 |"]


def test_aequilibrae_objective_matches_ours_at_the_same_gap():
    pytest.importorskip("aequilibrae", reason="AequilibraE is in the bench extras (pip install -e .[bench])")
    b = _bench()
    if not (b.TNTP / "SiouxFalls_net.tntp").exists():
        pytest.skip("shared TNTP data not present")
    o = b.ours("SiouxFalls", 1e-4)
    a = b.aeq("SiouxFalls", 1e-4)
    # convexity: Z - Z* <= TSTT - SPTT = g * TSTT at relative gap g, and TSTT <= (power + 1) * Z for BPR terms
    # (power 4 on Sioux Falls), so each side is within 5 g of the minimum: two runs at 1e-4 differ by <= 5e-4
    assert abs(b.rel_diff(a[3], o[3])) <= 5 * 1e-4
