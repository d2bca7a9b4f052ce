"""`twin crowd-verify` says which start placement (seed) each case ran on, and --seed runs them all on one."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from simulation.crowd.verification import run_checks
from twin_core.cli import get_app
from twin_core.crowd_report import write_crowd_verification
from twin_core.errors import ParameterError


def test_each_case_runs_on_its_own_seed_and_the_report_says_which(tmp_path):
    # a random crowd passes a case on some placements and not others (RiMEA 12 with the CSM: 9 of seeds 1-10),
    # so a report that says "pass" must say on which placement
    res = write_crowd_verification(tmp_path, models=["csm"], cases=["rimea_1", "bottleneck"])
    assert [c["seed"] for c in res["checks"]] == [0, 1]  # the cases' own defaults, as the docs quote them
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "| case | model | seed | criterion | measured | result |" in report
    assert "| Bottleneck 1 m door | csm | 1 |" in report and "--seed N" in report


def test_one_seed_for_every_case(tmp_path):
    checks = run_checks(["csm"], ["rimea_1", "bottleneck"], seed=3)
    assert [c.data["seed"] for c in checks] == [3, 3]
    r = CliRunner().invoke(get_app(), ["crowd-verify", "--out", str(tmp_path / "v"), "-m", "csm", "-c", "rimea_1",
                                       "--seed", "5", "-q"])
    assert r.exit_code == 0, r.output
    assert "seed 5" in r.output


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2"])
def test_a_bad_seed_is_refused(bad):
    with pytest.raises(ParameterError, match="seed must be a whole number >= 0"):
        run_checks(["csm"], ["rimea_1"], seed=bad)
