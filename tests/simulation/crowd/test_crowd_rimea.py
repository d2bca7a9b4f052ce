"""RiMEA (Richtlinie fuer Mikroskopische Entfluchtungsanalysen, version 3.0, 2016)
tests 1, 4, 6 and 12, plus the flow through a 1 m door and through the measured
1 m x 2.8 m corridor bottleneck, with each model.

The cases are built and measured by :mod:`simulation.crowd.verification` (the
same code ``twin crowd-verify`` reports from); the criteria and their sources
are asserted here, and each case's own verdict must agree with them.
"""

from __future__ import annotations

import numpy as np
import pytest

from simulation.crowd import CrowdParameters
from simulation.crowd.verification import (KNOWN_LIMITATIONS, bottleneck, bottleneck_band, bottleneck_corridor,
                                            bottleneck_door_room, rimea_1, rimea_4, rimea_6, rimea_12)

MODELS = ["csm", "sfm"]


@pytest.mark.parametrize("model", MODELS)
def test_rimea_1_corridor_travel_time(model):
    # RiMEA 3.0 test 1: one person at 1.33 m/s along a 40 m x 2 m corridor must
    # take between 26 s and 34 s (40 m / 1.33 m/s = 30 s, +-4 s per RiMEA).
    c = rimea_1(model)
    assert c.data["status"] == "evacuated"
    assert 26.0 <= c.data["time_s"] <= 34.0
    # and it is the expected ~ (40 - r) / 1.33 s within the 0.5 s relaxation of the SFM
    assert c.data["time_s"] == pytest.approx(c.data["expected_s"], abs=0.6)
    assert c.passed


@pytest.mark.parametrize("model", MODELS)
def test_rimea_6_left_corner(model):
    # RiMEA 3.0 test 6: 20 persons walk round a left corner of a 2 m wide corridor
    # and must neither enter the walls nor cut through the inner corner.
    c = rimea_6(model)
    r = c.data["radius"]
    assert c.data["evacuated"] == 20
    assert c.data["outside"] == 0  # every recorded centre is on the floor
    assert c.data["wall_clearance"] >= 0.99 * r  # ... and (almost) a radius from every wall
    assert c.data["crossings"] == 0  # no move between consecutive 0.01 s steps crosses a wall
    assert c.data["corner_clearance"] >= 0.99 * r  # nobody cut the inner corner
    assert c.passed


# RiMEA 12 and the bottlenecks with the CSM on several start placements: until 2026-12-05 the CSM
# passed RiMEA 12 on seed 4 only by luck; on seeds 3, 5 and 6 an arch at the corridor's mouth stood
# for good (a blocked agent's speed is 0 whatever its direction noise). 2-7 s per RiMEA 12 seed and
# 1-3 s per bottleneck seed on 2 shared cores. Seeds 1-10 of every case: docs/crowd_verification.md.
RIMEA_12_RUNS = [("csm", s) for s in range(1, 7)] + [pytest.param("sfm", 4, marks=pytest.mark.xfail(
    strict=True, reason=KNOWN_LIMITATIONS["rimea_12", "sfm"]))]


def _sfm_xfail(case, *more):
    return pytest.param("sfm", 1, *more, marks=pytest.mark.xfail(strict=True, raises=AssertionError,
                                                                 reason=KNOWN_LIMITATIONS[case, "sfm"]))


@pytest.mark.parametrize("model, seed", RIMEA_12_RUNS)
def test_rimea_12_jam_only_before_corridor(model, seed):
    # RiMEA 3.0 test 12: 150 persons leave room A through a 5 m x 1 m corridor into
    # room B and out of a 1 m exit. A jam must form before the corridor, not at the
    # exit (the corridor meters the flow, so the exit never queues). What the social
    # force model does here, and what was tried: docs/crowd_verification.md.
    c = rimea_12(model, seed=seed)
    assert c.data["status"] == "evacuated" and c.data["evacuated"] == 150
    # jam before the corridor: above 2 persons/m2 within 2 m of its mouth for >= 20 s
    # (Weidmann 1993: flow falls beyond ~2/m2)
    assert c.data["jam_s"] >= 20.0
    # no jam at the exit: within 2 m of it never the jam density (2/m2), and above free flow's 1 person/m2
    # (Weidmann's curve) for at most 10 s in all. Until the wall force counted a corridor's mouth twice
    # (2026-12-05) the test asked for never above 1/m2; with the corridor passing ~1.65 persons/s, platoons of
    # faster walkers reach the door together (7-8 persons, 1.1-1.3/m2, 0.5-2.5 s in all on 3 of seeds 1-10)
    # while the SFM's queue stands above 2/m2 for 50-90 s (docs/crowd_verification.md)
    assert c.data["density_exit"].max() <= 2.0
    assert c.data["exit_busy_s"] <= 10.0
    assert c.passed


def test_bottleneck_band_is_the_measured_line():
    # The bands of the bottleneck checks (simulation.crowd.verification.bottleneck_band): the issue's
    # 1.5-2.0 around the 1.90 Seyfried et al. (2009) measured through a 1 m x 2.8 m corridor; 1.83 through
    # 4 m (Rupprecht, Klingsch & Seyfried 2011), so 1.43-1.93 there; their straight line at length 0
    # (a door) is 2.06 -> upper edge 2.16, the lower edge stays 1.5. Both measurements second-hand.
    assert bottleneck_band(2.8) == pytest.approx((1.90, 1.5, 2.0))
    assert bottleneck_band(4.0) == pytest.approx((1.83, 1.43, 1.93))
    assert bottleneck_band(0.0) == pytest.approx((1.90 + 2.8 * 0.07 / 1.2, 1.5, 2.0 + 2.8 * 0.07 / 1.2))
    assert bottleneck_band(12.0) == bottleneck_band(4.0)  # no data beyond 4 m: flat, not extrapolated


@pytest.mark.parametrize("model, seed", [("csm", s) for s in range(1, 7)] + [_sfm_xfail("bottleneck")])
def test_bottleneck_specific_flow(model, seed):
    # A 1 m door in a thin wall, the exit, fed by a dense crowd (3 persons/m2), people walking on past
    # it: 1.5-2.16 persons/(m s) with the default parameters (bottleneck_band(0): the measured corridors'
    # line taken to length 0; a door was not measured). Taken out at the door line instead, the CSM passes
    # ~3.4 (next test).
    c = bottleneck(model, seed=seed)
    assert c.data["status"] == "evacuated"
    # the evacuation curve is kept (every second) even with trajectories off
    curve = c.data["curve"]
    assert len(curve) > 20 and curve["remaining"].iloc[-1] == 0
    _, lo, hi = bottleneck_band(0.0)
    assert lo <= c.data["flow"] <= hi, c.data["flow"]
    assert c.passed


def test_people_walk_on_past_an_exit():
    # Taken out of the simulation the moment they cross the exit line (exit_walk_on=0, what the engine did
    # until 2026-12-05), people leave the next one nothing ahead: the same door passes far more than with
    # the default (walking on 2 m straight out, still taking room), and more than any measured 1 m
    # bottleneck. The evacuation's count and times are those of crossing the line either way.
    walk = bottleneck("csm", seed=1)
    cut = bottleneck("csm", seed=1, exit_walk_on=0.0)
    assert cut.data["flow"] > 1.4 * walk.data["flow"], (cut.data["flow"], walk.data["flow"])
    assert cut.data["flow"] > bottleneck_band(0.0)[2]
    assert walk.data["curve"]["remaining"].iloc[-1] == cut.data["curve"]["remaining"].iloc[-1] == 0


@pytest.mark.parametrize("model, seed, length", [("csm", s, 2.8) for s in range(1, 7)]
                         + [("csm", s, 4.0) for s in (1, 2, 3)] + [_sfm_xfail("bottleneck_corridor", 2.8)])
def test_bottleneck_corridor_specific_flow(model, seed, length):
    # The measured 1 m bottleneck: Seyfried et al. 2009 (Transp. Sci. 43(3); arXiv physics/0702004), a 1 m wide,
    # 2.8 m long corridor, 60 persons starting at ~3.3 persons/m2 in front of it: 1.90 persons/(m s) (their
    # Table 2, b = 1.0 m, N = 60; second-hand), criterion the 1.5-2.0; and the 2006 experiment's 4 m
    # corridor, 1.83 (Rupprecht, Klingsch & Seyfried 2011; second-hand): 1.43-1.93. Until 2026-12-05 the CSM
    # passed 0.79-0.86 through the 2.8 m corridor (radius 0.25 m, T = 0.8 s: one file); 1 s a run.
    c = bottleneck_corridor(model, length=length, seed=seed)
    # the expected failure (SFM) is the flow alone: an error, a deadlock or a lost agent is not
    # AssertionError and fails the test outright
    if c.data["length"] != length or c.data["status"] != "evacuated" or c.data["evacuated"] != 60:
        raise RuntimeError(f"the corridor case did not run through: {c.data['status']}, {c.measured}")
    _, lo, hi = bottleneck_band(length)
    assert lo <= c.data["flow"] <= hi, c.measured
    assert c.passed


@pytest.mark.parametrize("model, seed", [("csm", s) for s in (1, 2, 3)] + [_sfm_xfail("bottleneck_door_room")])
def test_bottleneck_door_into_a_room_specific_flow(model, seed):
    # The door check's band with the door inside a building (a 0.1 m wall, a room behind it, people walking
    # on), counted at the door: 1.5-2.16 (bottleneck_band(0.1)). Until 2026-12-05 the CSM passed 0.81-0.88.
    c = bottleneck_door_room(model, seed=seed)
    if c.data["status"] != "evacuated" or c.data["passed"] != 149:
        raise RuntimeError(f"the door-into-a-room case did not run through: {c.data['status']}, {c.measured}")
    _, lo, hi = bottleneck_band(0.1)
    assert lo <= c.data["flow"] <= hi, c.measured
    assert c.passed


def test_bottleneck_corridor_length_is_checked():
    from twin_core.errors import ParameterError

    for bad in (0, -1.0, float("nan"), float("inf"), "2.8", True):
        with pytest.raises(ParameterError, match="length must be a finite number of metres > 0"):
            bottleneck_corridor("csm", length=bad)


def test_crowd_verify_reports_the_corridor(tmp_path):
    # `twin crowd-verify` runs every case of CASES: the measured corridor is in its report next to the door,
    # and a model's known limitation is written out where it fails (the SFM in the corridor)
    from twin_core.crowd_report import write_crowd_verification

    res = write_crowd_verification(tmp_path, models=["csm", "sfm"], cases=["bottleneck", "bottleneck_corridor"])
    got = {(c["case"], c["model"]): c for c in res["checks"]}
    assert set(got) == {(c, m) for c in ("Bottleneck 1 m door", "Bottleneck 1 m x 2.8 m corridor")
                        for m in ("csm", "sfm")}
    assert got["Bottleneck 1 m door", "csm"]["passed"] and got["Bottleneck 1 m x 2.8 m corridor", "csm"]["passed"]
    assert not got["Bottleneck 1 m x 2.8 m corridor", "sfm"]["passed"]
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "| Bottleneck 1 m x 2.8 m corridor | csm |" in report and "**FAIL**" in report
    assert "## Known limitations" in report and KNOWN_LIMITATIONS["bottleneck_corridor", "sfm"] in report
    assert "a door in a thin wall" in got["Bottleneck 1 m door", "csm"]["criterion"]
    assert "1.50-2.00" in got["Bottleneck 1 m x 2.8 m corridor", "csm"]["criterion"]


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_rimea_4_fundamental_diagram(model):
    # RiMEA 3.0 test 4: speed at 0.5, 1, 2, 3, 4, 5 persons/m2 in a periodic corridor,
    # mean over 60 s after dropping the first 10 s. Criterion here: speed falls as
    # density rises (0.05 m/s tolerance) and stays within +-0.4 m/s of Weidmann (1993)
    # v = 1.34 (1 - exp(-1.913 (1/rho - 1/5.4))). The 0.4 m/s band is ~1.5 standard
    # deviations of free walking speed (Weidmann 1993: sd 0.26 m/s), the spread of
    # the data behind his curve. RiMEA 3.0 also lists 6 persons/m2: left out (as in the list), since
    # Weidmann's curve ends at its jam density 5.4/m2 (the formula is negative beyond), so there is no speed to
    # compare with there.
    c = rimea_4(model)
    rho = np.asarray(c.data["density"], dtype=float)
    np.testing.assert_array_equal(rho, [0.5, 1, 2, 3, 4, 5])
    w = 1.34 * (1.0 - np.exp(-1.913 * (1.0 / rho - 1.0 / 5.4)))  # Weidmann (1993), here, not from the code tested
    np.testing.assert_allclose(c.data["weidmann"], w, rtol=1e-12)
    v = c.data["speed"]
    assert np.abs(v - w).max() <= 0.4, list(zip(c.data["density"], v, w))
    assert all(b <= a + 0.05 for a, b in zip(v, v[1:])), v
    assert v[0] - v[-1] > 0.8
    assert c.passed


def test_sfm_defaults_are_the_published_forces():
    # Helbing, Farkas & Vicsek (2000): A = 2000 N, B = 0.08 m, k = 1.2e5 kg/s2,
    # kappa = 2.4e5 kg/(m s), tau = 0.5 s, m = 80 kg; the verification cases use them
    p = CrowdParameters(model="sfm")
    assert (p.sfm_A, p.sfm_B, p.sfm_k, p.sfm_kappa, p.tau, p.mass) == (2000.0, 0.08, 1.2e5, 2.4e5, 0.5, 80.0)


def test_sfm_push_cap_trades_rimea_12_against_the_bottleneck():
    # The SFM caps the social push against the walking direction at 0.9 of the driving
    # force (sfm_social_cap) so that a pressed crowd creeps on. Without the cap (the
    # plain Helbing, Farkas & Vicsek 2000 model) RiMEA 12 passes, because nobody pushes
    # the corridor above what the exit takes, but a 1 m door then passes well under
    # half the measured ~1.9 persons/(m s) (Seyfried et al. 2009). Pinned here so a
    # change to either side shows (docs/crowd_verification.md).
    plain = {"sfm_social_cap": 1e9}
    r12 = rimea_12("sfm", **plain)
    assert r12.passed, r12.measured
    assert rimea_12("sfm").data["density_exit"].max() > 1.5  # with the cap: the second queue
    assert bottleneck("sfm", **plain).data["flow"] < 1.0
