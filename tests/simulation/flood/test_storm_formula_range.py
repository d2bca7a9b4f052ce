"""The design storm formula is used only for the return periods it was fitted to.

The classic Chengdu formula, q = 2806 (1 + 0.803 lg P) / (t + 12.8 P^0.231)^0.768, has b growing with P, so
beyond the fitted range (1-100 years; GB 50014 compiles storm statistics for 2-100 years) it stops growing:
the 5-minute intensity for 100 years is below the 50-year one, and 100,000 years gave about the 50-year
1-hour depth, silently."""

from __future__ import annotations

import pytest

from simulation.flood import CHENGDU_STORM, StormFormula
from twin_core.errors import ParameterError


@pytest.mark.parametrize("years", [101, 1000, 100_000])
def test_return_period_beyond_the_formula_is_refused(years):
    with pytest.raises(ParameterError, match=r"outside the storm formula's range \(1 to 100 years"):
        CHENGDU_STORM.hyetograph(years, 3600.0)
    with pytest.raises(ParameterError, match="hyetograph of your own"):
        CHENGDU_STORM.intensity_mm_min(years, 60.0)


def test_fitted_range_still_runs_and_the_source_caveat_is_stated():
    hy = CHENGDU_STORM.hyetograph(100, 3600.0)
    assert hy.total_mm() == pytest.approx(CHENGDU_STORM.intensity_mm_min(100, 60.0) * 60.0)
    assert CHENGDU_STORM.hyetograph(1, 3600.0).total_mm() > 0
    assert "not checked" in CHENGDU_STORM.source and "1-100 years" in CHENGDU_STORM.source


def test_a_formula_declares_its_own_range():
    f = StormFormula(A1=16.8, C=0.803, b=12.8, n=0.768, b_exp=0.231, p_max=500.0)
    assert f.intensity_mm_min(300, 60) > 0
    with pytest.raises(ParameterError, match="1 <= p_min <= p_max"):
        StormFormula(A1=16.8, C=0.803, b=12.8, n=0.768, p_min=50.0, p_max=10.0)


def test_cli_help_states_the_range_and_source():
    from typer.testing import CliRunner

    from twin_core.cli import get_app

    out = CliRunner().invoke(get_app(), ["flood", "--help"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
    assert out.exit_code == 0
    text = " ".join(out.output.split())
    assert "1y to 100y" in text and "Design Handbook" in text
