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
from simulation.crowd.verification import (KNOWN_LIMITATIONS, bottleneck, bottleneck_corridor, bottleneck_door_room,
                                            rimea_1, rimea_4, rimea_6, rimea_12)

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


# RiMEA 12 and the bottleneck with the CSM on several start placements: until 2026-12-05 the CSM
# passed RiMEA 12 on seed 4 only by luck; on seeds 3, 5 and 6 an arch at the corridor's mouth stood
# for good (a blocked agent's speed is 0 whatever its direction noise), the 1 m door of the bottleneck
# arched on seed 6 and passed over 2.0 persons/(m s) on seeds 2 and 5. 7-12 s per RiMEA 12 seed and
# 2-5 s per bottleneck seed on 2 shared cores. Seeds 1-10 of every case: docs/crowd_verification.md.
RIMEA_12_RUNS = [("csm", s) for s in range(1, 7)] + [pytest.param("sfm", 4, marks=pytest.mark.xfail(
    strict=True, reason=KNOWN_LIMITATIONS["rimea_12", "sfm"]))]
BOTTLENECK_RUNS = [("csm", s) for s in range(1, 7)] + [("sfm", 1)]


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
    # no jam at the exit: never above 1 person/m2 within 2 m of it (free flow on Weidmann's curve)
    assert c.data["density_exit"].max() <= 1.0
    assert c.passed


@pytest.mark.parametrize("model, seed", BOTTLENECK_RUNS)
def test_bottleneck_specific_flow(model, seed):
    # A 1 m door in a thin wall fed by a dense crowd (3 persons/m2): specific flow 1.5-2.0
    # persons/(m s) with the default parameters. The band is that of the measured 1 m
    # bottlenecks, but those were corridors 2.8 m (Seyfried et al. 2009, ~1.9) and 4 m
    # (Rupprecht, Klingsch & Seyfried 2011, ~1.83) long: that case is the next test, which
    # neither model passes. This one is the short-bottleneck (door) check only.
    c = bottleneck(model, seed=seed)
    assert c.data["status"] == "evacuated"
    # the evacuation curve is kept (every second) even with trajectories off
    curve = c.data["curve"]
    assert len(curve) > 20 and curve["remaining"].iloc[-1] == 0
    assert 1.5 <= c.data["flow"] <= 2.0, c.data["flow"]
    assert c.passed


@pytest.mark.parametrize("model", [pytest.param(m, marks=pytest.mark.xfail(
    strict=True, raises=AssertionError, reason=KNOWN_LIMITATIONS["bottleneck_corridor", m])) for m in MODELS])
def test_bottleneck_corridor_specific_flow(model):
    # The measured 1 m bottleneck: Seyfried et al. 2009 (Transp. Sci. 43(3); arXiv physics/0702004), a 1 m wide,
    # 2.8 m long corridor, 60 persons starting at ~3.3 persons/m2 in front of it: 1.90 persons/(m s) (their
    # Table 2, b = 1.0 m, N = 60; second-hand). Criterion 1.5-2.0 as for the door. Measured 2026-12-05, seeds
    # 1-10, J = dN/dt over the group: CSM 0.79-0.86, SFM 1.08-1.30; strict xfail, so a model change that makes
    # either pass is noticed. One seed each (~1 s a run).
    c = bottleneck_corridor(model, seed=1)
    # the expected failure is the flow alone: an error, a deadlock or a lost agent is not
    # AssertionError and fails the test outright
    if c.data["length"] != 2.8 or c.data["status"] != "evacuated" or c.data["evacuated"] != 60:
        raise RuntimeError(f"the corridor case did not run through: {c.data['status']}, {c.measured}")
    assert 1.5 <= c.data["flow"] <= 2.0, c.measured
    assert c.passed


@pytest.mark.parametrize("model", [pytest.param(m, marks=pytest.mark.xfail(
    strict=True, raises=AssertionError, reason=KNOWN_LIMITATIONS["bottleneck_door_room", m])) for m in MODELS])
def test_bottleneck_door_into_a_room_specific_flow(model):
    # The door check's 1.5-2.0 band with people walking on after the door, as in the experiments (the door check
    # takes each person out at the door line). Measured 2026-12-05, seeds 1-3: CSM 0.81-0.88, SFM 1.16-1.25;
    # strict xfail, so a model change that makes either pass is noticed.
    c = bottleneck_door_room(model, seed=1)
    if c.data["status"] != "evacuated" or c.data["passed"] != 149:
        raise RuntimeError(f"the door-into-a-room case did not run through: {c.data['status']}, {c.measured}")
    assert 1.5 <= c.data["flow"] <= 2.0, c.measured
    assert c.passed


def test_bottleneck_corridor_length_is_checked():
    from twin_core.errors import ParameterError

    for bad in (0, -1.0, float("nan"), float("inf"), "2.8", True):
        with pytest.raises(ParameterError, match="length must be a finite number of metres > 0"):
            bottleneck_corridor("csm", length=bad)


def test_crowd_verify_reports_the_corridor(tmp_path):
    # `twin crowd-verify` runs every case of CASES: the measured corridor is in its report,
    # with its known limitation, next to the door
    from twin_core.crowd_report import write_crowd_verification

    res = write_crowd_verification(tmp_path, models=["csm"], cases=["bottleneck", "bottleneck_corridor"])
    got = {c["case"]: c for c in res["checks"]}
    assert set(got) == {"Bottleneck 1 m door", "Bottleneck 1 m x 2.8 m corridor"}
    assert got["Bottleneck 1 m door"]["passed"] and not got["Bottleneck 1 m x 2.8 m corridor"]["passed"]
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "| Bottleneck 1 m x 2.8 m corridor | csm |" in report and "**FAIL**" in report
    assert "## Known limitations" in report and KNOWN_LIMITATIONS["bottleneck_corridor", "csm"] in report
    assert "a door in a thin wall" in got["Bottleneck 1 m door"]["criterion"]


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
