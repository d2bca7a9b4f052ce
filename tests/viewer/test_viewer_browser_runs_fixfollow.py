"""The time bar when two runs of different lengths are compared (headless Chromium, as in
test_viewer_browser_runs_fixcompare.py).

The defect: each view has its own run select, but the time bar followed the left view's run, so a longer run on
the right was cut off at the left run's end (its last steps could not be reached), and a shorter one on the right
silently kept its last step. Now, compared, the bar spans both runs (the union of their steps, for floods; the
earlier start to the later end, for trajectories); a view whose run is over keeps its last step and its map
label says "ended at ..." (the time, on the clock of the bar).
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import private_server
from test_viewer_browser import Page, browser  # noqa: F401  (the module's Chromium fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def span_server(city_template, tmp_path_factory):
    """Floods saved in this order: "storm50" on the base (2 steps, 0 and 600 s) and on the levee (3 steps, to
    1200 s), then "later" on the base (4 steps, to 1800 s) and on the levee (5 steps, to 2400 s). Traffic runs
    (vehicle trajectories): "am_short" on the base (0-600 s), "am_long" on the levee (0-1800 s)."""
    import pandas as pd

    from twin_core.twin import Twin

    with private_server(city_template, tmp_path_factory, "viewer_fixfollow") as (srv, path):
        with Twin.open(path) as twin:
            dem = twin.raster("dem")
            depth = np.full((1, *dem.shape), 0.2, "float32")
            flood = {"engine": "simulation.flood", "grid": "dem"}
            for scenario, run, n in [("base", "storm50", 2), ("levee", "storm50", 3), ("base", "later", 4),
                                     ("levee", "later", 5)]:
                twin.save_result(scenario, run, "depth_snapshots", np.repeat(depth, n, axis=0),
                                 meta={**flood, "times_s": [600 * k for k in range(n)]})
            links = twin.layer("road_links").head(5)
            for scenario, run, end in [("base", "am_short", 600.0), ("levee", "am_long", 1800.0)]:
                rows = []
                for i, g in enumerate(links.geometry.values):
                    (xa, ya), (xb, yb) = np.asarray(g.coords)[[0, -1]]
                    rows += [{"vehicle_id": f"car{i}", "t": 0.0, "x": xa, "y": ya},
                             {"vehicle_id": f"car{i}", "t": end, "x": xb, "y": yb}]
                twin.save_result(scenario, run, "trajectories", pd.DataFrame(rows),
                                 meta={"engine": "simulation.traffic"})
        yield srv


def _show(p: Page, label_start: str) -> None:
    labels = p.page.eval_on_selector_all("#series-select option", "os => os.map((o) => o.textContent)")
    p.page.select_option("#series-select", str(next(i for i, s in enumerate(labels) if s.startswith(label_start))))


def _slide(p: Page, value) -> None:
    p.page.eval_on_selector("#time-slider", f"el => {{ el.value = {value}; el.dispatchEvent(new Event('input')); }}")


def _image(p: Page, side: str) -> str:
    return p.page.evaluate(f"window.__twin.floodImage.{side} || ''")


def _trips_time(p: Page, side: str) -> float:
    return p.page.evaluate(f"window.__twin.decks.{side}.props.layers.find((x) => x && x.id === 'trips-{side}')"
                           ".props.currentTime")


def test_the_time_bar_spans_both_runs_and_a_view_whose_run_is_over_says_so(browser, span_server):  # noqa: F811
    p = Page(browser, span_server).open()
    pg = p.page
    try:
        pg.check("#compare-toggle")
        pg.select_option("#scenario-b", "levee")
        _show(p, "Flood")
        pg.wait_for_function("(window.__twin.floodImage.b || '').includes('/levee/later/')", timeout=15000)
        assert pg.evaluate("[window.__twin.runs.shown, window.__twin.runsB.shown]") == ["later", "later"]
        # the right run (5 steps, to 40:00) is longer than the left (4, to 30:00): the bar reaches its end
        pg.wait_for_function("document.getElementById('time-slider').max === '4'", timeout=15000)
        _slide(p, 4)
        assert pg.inner_text("#time-label") == "Time 40:00"
        assert "step=4&" in _image(p, "b") and "step=3&" in _image(p, "a")
        assert pg.inner_text("#label-a").endswith("Flood depth later · ended at 30:00"), pg.inner_text("#label-a")
        assert "ended" not in pg.inner_text("#label-b")
        assert pg.evaluate("window.__twin.ended") == {"a": {"at": 1800, "stepIndex": False}, "b": None}
        _slide(p, 3)  # at 30:00 the left run is at its last step, not past it
        assert "ended" not in pg.inner_text("#label-a") and "step=3&" in _image(p, "b")
        _slide(p, 0)
        assert "step=0&" in _image(p, "a") and "step=0&" in _image(p, "b")

        # the right view on a shorter run (storm50: 3 steps, to 20:00): it keeps its last step and says so
        pg.select_option("#run-select-b", "storm50")
        pg.wait_for_function("(window.__twin.floodImage.b || '').includes('/levee/storm50/')", timeout=15000)
        pg.wait_for_function("document.getElementById('time-slider').max === '3'", timeout=15000)
        _slide(p, 3)
        assert "step=2&" in _image(p, "b") and "step=3&" in _image(p, "a")
        assert pg.inner_text("#label-b").endswith("Flood depth storm50 · ended at 20:00"), pg.inner_text("#label-b")
        assert "ended" not in pg.inner_text("#label-a")
        pg.click("#lang-toggle")
        assert pg.inner_text("#label-b").endswith("已于 20:00 结束"), pg.inner_text("#label-b")
        pg.click("#lang-toggle")

        # vehicle trips: 0-10:00 on the left, 0-30:00 on the right; the left ones stop at their end
        _show(p, "Vehicle trips")
        pg.wait_for_function("window.__twin.runsB && window.__twin.runsB.shown === 'am_long'", timeout=15000)
        pg.wait_for_function("document.getElementById('time-slider').max === '1800'", timeout=15000)
        assert pg.get_attribute("#time-slider", "min") == "0"
        _slide(p, 1800)
        assert _trips_time(p, "b") == 1800 and _trips_time(p, "a") == 600
        assert pg.inner_text("#label-a").endswith("ended at 10:00"), pg.inner_text("#label-a")
        assert "ended" not in pg.inner_text("#label-b")

        # one view: its own run alone, as before
        pg.uncheck("#compare-toggle")
        pg.wait_for_function("document.getElementById('time-slider').max === '600'", timeout=15000)
        assert "ended" not in pg.inner_text("#label-a")
        assert not p.errors, p.errors
    finally:
        p.close()
