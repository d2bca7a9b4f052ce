"""A flood run's duration is bounded (7 days), a huge storm fails with a clear error, and the engine reports
progress often enough in wall time for a caller (a cancelled job) to stop it (review2, item 2)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from typer.testing import CliRunner

from simulation.flood import CHENGDU_STORM, FloodModel, FloodParameters
from twin_core.adapters.flood import MAX_FLOOD_DURATION_S, design_storm_years, flood_duration, run_flood
from twin_core.cli import get_app
from twin_core.errors import ParameterError
from twin_core.twin import Twin


@pytest.mark.parametrize("value", ["7d", "168h", 604800, "90min"])
def test_flood_duration_takes_up_to_a_week(value):
    assert 0 < flood_duration(value) <= MAX_FLOOD_DURATION_S == 7 * 86400


@pytest.mark.parametrize("value", ["99999h", "169h", 1e308, "8d"])
def test_flood_duration_past_a_week_is_refused_with_the_limit(value):
    with pytest.raises(ParameterError, match=r"until=.* days; a flood run takes at most 7 days"):
        flood_duration(value, "until")


def test_design_storm_years_checks_the_formula_range():
    assert design_storm_years("100y") == 100.0
    with pytest.raises(ParameterError, match="outside the storm formula's range"):
        design_storm_years("500y")


def test_a_huge_storm_is_a_clear_error_not_a_numpy_one():
    # it failed as "ValueError: Maximum allowed size exceeded" (np.arange of 3e305 blocks)
    with pytest.raises(ParameterError, match="blocks, more than 1,000,000; .* give a shorter duration"):
        CHENGDU_STORM.hyetograph(50, 1e308)
    assert CHENGDU_STORM.hyetograph(50, 7 * 86400.0, step_s=1.0).edges.size == 7 * 86400 + 1  # a week at 1 s fits


def test_run_flood_refuses_a_long_duration_before_it_computes(small_city_gpkg):
    with Twin.open(small_city_gpkg) as twin:
        for kw in ({"duration": "99999h"}, {"duration": "1h", "until": "1000h"}, {"duration": 1e308}):
            t0 = time.perf_counter()
            with pytest.raises(ParameterError, match="at most 7 days"):
                run_flood(twin, storm="50y", run="long", **kw)
            assert time.perf_counter() - t0 < 5
        assert "long" not in set(twin.results()["run"])


def test_cli_flood_refuses_a_long_duration_at_once(small_city_gpkg):
    t0 = time.perf_counter()
    res = CliRunner().invoke(get_app(), ["flood", small_city_gpkg, "--duration", "99999h"])
    # (main() prints a TwinError as "error: ..." and exits 2; get_app() hands it to the runner)
    assert isinstance(res.exception, ParameterError), res.output
    assert "--duration='99999h' is 4167 days; a flood run takes at most 7 days" in str(res.exception)
    res = CliRunner().invoke(get_app(), ["flood", small_city_gpkg, "--duration", "1h", "--until", "30d"])
    assert isinstance(res.exception, ParameterError) and "--until='30d'" in str(res.exception)
    assert time.perf_counter() - t0 < 20


def test_engine_reports_progress_in_wall_time_however_long_the_run():
    """A week of still water 5 m deep on 1 m cells: ~0.07 s steps, so 1 % of the run (6048 s) is ~86,000 steps,
    seconds of wall time. Progress came only every 1 %, so a callback that stops the run (a cancelled job)
    waited that long; now it comes at least every PROGRESS_WALL_S (0.25 s)."""
    m = FloodModel(np.zeros((60, 60)), 1.0, initial_depth=5.0,
                   params=FloodParameters(gauge_interval=None, snapshot_interval=None))
    m.run(1.0)  # compiled (or loaded from cache) before the clock starts

    class Stop(Exception):
        pass

    calls = []
    t0 = time.perf_counter()

    def progress(done, total):
        calls.append(time.perf_counter())
        if calls[-1] - t0 > 1.0:
            raise Stop

    with pytest.raises(Stop):
        m.run(7 * 86400.0, progress=progress)
    stopped = time.perf_counter() - t0
    assert m.time < 0.01 * 7 * 86400  # still inside the first 1 % of the run
    assert stopped < 2.0, stopped
    assert np.diff([t0] + calls).max() < 0.75
