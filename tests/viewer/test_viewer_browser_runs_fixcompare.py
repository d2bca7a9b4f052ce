"""Which run each view shows when two scenarios are compared (headless Chromium, as in test_viewer_browser_runs.py).

The defect a command-centre user saw: comparing "storm50 in base" with "storm50 in levee", the right view always
drew the levee's newest flood (a later run), for the time bar's run select served the left view only. Now each
view has its own select, named by side and scenario; a pick holds across a scenario switch where the new scenario
has that run, and where it has not the time bar says so (and what is shown instead) rather than silently
showing the newest.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import private_server
from test_viewer_browser import Page, browser  # noqa: F401  (the module's Chromium fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def compare_server(city_template, tmp_path_factory):
    """Two floods on the base and on the levee scenario each, saved in this order: "storm50" (base, 2 steps),
    "storm50" (levee, 3 steps), "later" (base, 4 steps), "later" (levee, 5 steps); the levee's newest is
    "later". A third scenario "levee_hi" has one flood, "spill" (6 steps), and no "storm50". (The template's
    older "r1" floods stay on the base and the levee.)"""
    from twin_core.twin import Twin

    with private_server(city_template, tmp_path_factory, "viewer_fixcompare") as (srv, path):
        with Twin.open(path) as twin:
            twin.scenarios.create("levee_hi", "a higher levee")
            dem = twin.raster("dem")
            depth = np.full((1, *dem.shape), 0.2, "float32")
            flood = {"engine": "simulation.flood", "grid": "dem"}
            for scenario, run, n in [("base", "storm50", 2), ("levee", "storm50", 3), ("base", "later", 4),
                                     ("levee", "later", 5), ("levee_hi", "spill", 6)]:
                twin.save_result(scenario, run, "depth_snapshots", np.repeat(depth, n, axis=0),
                                 meta={**flood, "times_s": [600 * k for k in range(n)]})
        yield srv


def _show_flood(p: Page) -> None:
    labels = p.page.eval_on_selector_all("#series-select option", "os => os.map((o) => o.textContent)")
    p.page.select_option("#series-select", str(next(i for i, s in enumerate(labels) if s.startswith("Flood"))))


def _wait_image(p: Page, side: str, part: str) -> None:
    """Wait until the ``side`` view draws the flood whose URL holds ``part`` ("/levee/storm50/")."""
    p.page.wait_for_function(f"(window.__twin.floodImage.{side} || '').includes('{part}')", timeout=15000)


def test_the_right_view_shows_the_run_picked_for_it_and_says_when_its_scenario_lacks_it(browser, compare_server):  # noqa: F811
    p = Page(browser, compare_server).open()
    pg = p.page
    try:
        pg.check("#compare-toggle")
        pg.select_option("#scenario-b", "levee")
        _show_flood(p)
        pg.wait_for_selector("#run-select-b", state="visible", timeout=15000)
        # each view's runs, newest first, in a select named by its side and scenario
        assert pg.evaluate("window.__twin.runs") == {"kind": "flood", "scenario": "base",
                                                     "runs": ["later", "storm50", "r1"], "shown": "later"}
        assert pg.evaluate("window.__twin.runsB") == {"kind": "flood", "scenario": "levee",
                                                      "runs": ["later", "storm50", "r1"], "shown": "later"}
        assert pg.inner_text("#run-side-a") == "Left · base" and pg.inner_text("#run-side-b") == "Right · levee"
        assert pg.get_attribute("#run-select", "aria-label") == "the run the left map shows of scenario base (newest first)"
        assert pg.get_attribute("#run-select-b", "aria-label") == \
            "the run the right map shows of scenario levee (newest first)"
        assert pg.is_enabled("#run-select-b") and not pg.is_visible("#run-note")
        _wait_image(p, "b", "/levee/later/")

        # storm50 on the left only: the right view keeps its own (the levee's newest)
        pg.select_option("#run-select", "storm50")
        _wait_image(p, "a", "/base/storm50/")
        assert pg.evaluate("window.__twin.runsB.shown") == "later"
        assert "/levee/later/" in pg.evaluate("window.__twin.floodImage.b")

        # ... and storm50 on the right: the levee's storm50 is drawn there, and its map label names it
        pg.select_option("#run-select-b", "storm50")
        _wait_image(p, "b", "/levee/storm50/")
        assert pg.input_value("#run-select-b") == "storm50" and pg.input_value("#run-select") == "storm50"
        assert "/base/storm50/" in pg.evaluate("window.__twin.floodImage.a")
        assert pg.inner_text("#label-b").endswith("levee · Flood depth storm50"), pg.inner_text("#label-b")
        # the clock spans both runs: the left's two steps and the right's three (test_viewer_browser_runs_fixfollow)
        assert pg.get_attribute("#time-slider", "max") == "2"

        # another scenario on the right without storm50: its newest, and the time bar says why
        pg.select_option("#scenario-b", "levee_hi")
        _wait_image(p, "b", "/levee_hi/spill/")
        pg.wait_for_selector("#run-note", state="visible", timeout=15000)
        note = pg.inner_text("#run-note")
        assert note == "Right: scenario levee_hi has no flood depth run storm50 (the one picked): showing its newest, spill", note
        assert pg.evaluate("window.__twin.runNote.missing") == [
            {"side": "b", "kind": "flood", "run": "storm50", "scenario": "levee_hi", "shown": "spill"}]
        assert pg.get_attribute("#run-note", "role") == "status"
        assert pg.evaluate("window.__twin.runsB") == {"kind": "flood", "scenario": "levee_hi", "runs": ["spill"],
                                                      "shown": "spill"}
        assert pg.inner_text("#run-side-b") == "Right · levee_hi"

        # back to a scenario that has it: the pick holds, the note goes
        pg.select_option("#scenario-b", "levee")
        _wait_image(p, "b", "/levee/storm50/")
        pg.wait_for_selector("#run-note", state="hidden", timeout=15000)
        assert pg.input_value("#run-select-b") == "storm50"

        # the left view's pick holds across its own scenario switch too (the levee on both sides)
        pg.select_option("#scenario-a", "levee")
        _wait_image(p, "a", "/levee/storm50/")
        pg.select_option("#scenario-a", "base")
        _wait_image(p, "a", "/base/storm50/")

        # the names follow the language
        pg.click("#lang-toggle")
        assert pg.get_attribute("#run-select-b", "aria-label") == "右侧地图显示情景 levee 的哪次运行（最新在前）"
        assert pg.inner_text("#run-side-b") == "右侧 · levee"
        pg.click("#lang-toggle")

        # one scenario on both sides: two of its runs side by side (the right's storm50 pick holds on the base)
        pg.select_option("#scenario-b", "base")
        _wait_image(p, "b", "/base/storm50/")
        pg.select_option("#run-select-b", "later")
        _wait_image(p, "b", "/base/later/")
        assert "/base/storm50/" in pg.evaluate("window.__twin.floodImage.a")
        assert pg.evaluate("[window.__twin.runs.shown, window.__twin.runsB.shown]") == ["storm50", "later"]

        # compare off: one select, named as before, serving the one map
        pg.uncheck("#compare-toggle")
        pg.wait_for_selector("#run-select-b", state="hidden", timeout=15000)
        assert pg.get_attribute("#run-select", "aria-label") == "the run shown (newest first)"
        assert not pg.is_visible("#run-side-a") and pg.input_value("#run-select") == "storm50"
    finally:
        p.close()
