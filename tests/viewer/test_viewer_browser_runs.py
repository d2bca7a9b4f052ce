"""Which runs the one map shows, and what it says when it cannot (headless Chromium, as in test_viewer_browser.py).

Each test pins a defect a reviewer saw: a traffic run whose id has no "traffic" in it (``--run am_peak``) was
drawn as a crowd and never offered as vehicle trips; the time bar showed only the newest run of each kind, so
a script's ``storm50`` could not be shown after a later flood; without a token the page said "no simulation
engine installed here" and "loading…" where the server had asked for a token; the flood on the measured rain
failed on a window the gauges did not cover.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import LiveServer, private_server
from test_viewer_browser import Page, browser  # noqa: F401  (the module's Chromium fixture)
from test_viewer_browser_flood_closures import _fake_jobs

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def runs_server(city_template, tmp_path_factory):
    """On the base, besides the template's runs (r1 flood, r2 vehicle trips, r3 crowd agents): a traffic run
    "am_peak" and a crowd run "drill", saved as their engines save them (a "trajectories" table each, told
    apart only by meta "engine"), then a script's flood "storm50" (2 steps) and a later flood "later"
    (4 steps); and one stored rain gauge reading."""
    from datetime import datetime, timezone

    import pandas as pd

    from cim.sensors import append_readings
    from twin_core.twin import Twin

    with private_server(city_template, tmp_path_factory, "viewer_runs") as (srv, path):
        with Twin.open(path) as twin:
            links = twin.layer("road_links").head(5)
            x0, y0, _, _ = twin.extent
            rows = []
            for i, g in enumerate(links.geometry.values):
                (xa, ya), (xb, yb) = np.asarray(g.coords)[[0, -1]]
                rows += [{"vehicle_id": f"car{i}", "t": 0.0, "x": xa, "y": ya},
                         {"vehicle_id": f"car{i}", "t": 900.0, "x": xb, "y": yb}]
            traffic = {"engine": "simulation.traffic"}
            twin.save_result("base", "am_peak", "trajectories", pd.DataFrame(rows), meta=traffic)
            loads = links[["link_id", "geometry"]].copy()
            loads["vc"] = 0.5
            twin.save_result("base", "am_peak", "link_loads", loads, meta=traffic)
            people = pd.DataFrame([{"agent_id": f"p{i}", "t": float(t), "x": x0 + 300 + i, "y": y0 + 400 + t * 0.1}
                                   for i in range(3) for t in (0, 60)])
            twin.save_result("base", "drill", "trajectories", people, meta={"engine": "simulation.crowd"})
            dem = twin.raster("dem")
            depth = np.full((1, *dem.shape), 0.2, "float32")
            flood = {"engine": "simulation.flood", "grid": "dem"}
            twin.save_result("base", "storm50", "depth_snapshots", np.repeat(depth, 2, axis=0),
                             meta={**flood, "times_s": [0, 300]})
            twin.save_result("base", "later", "depth_snapshots", np.repeat(depth, 4, axis=0),
                             meta={**flood, "times_s": [0, 600, 1200, 1800]})
            append_readings(twin.store, [{"sensor_id": "RG01", "value": 8.0,
                                          "time": datetime.now(timezone.utc).replace(microsecond=0).isoformat()}])
        yield srv


def _series(p: Page) -> list[str]:
    return p.page.eval_on_selector_all("#series-select option", "os => os.map((o) => o.textContent)")


def _layer_rows(p: Page, layer_id: str) -> int:
    """How many vehicles (trips) or people on the map (crowd) the layer draws (-1: no such layer)."""
    return p.page.evaluate(f"(() => {{ const l = window.__twin.decks.a.props.layers.find((x) => x && x.id === "
                           f"'{layer_id}'); return l ? l.props.data.length : -1; }})()")


def _show_series(p: Page, label_start: str) -> None:
    idx = next(i for i, s in enumerate(_series(p)) if s.startswith(label_start))
    p.page.select_option("#series-select", str(idx))


def test_runs_are_told_apart_by_engine_and_any_run_can_be_shown(browser, runs_server):  # noqa: F811
    p = Page(browser, runs_server).open()
    pg = p.page
    try:
        # the traffic run "am_peak" is the newest vehicle trips, "drill" the newest crowd: not the other way round
        _show_series(p, "Vehicle trips")
        assert _layer_rows(p, "trips-a") == 5 and _layer_rows(p, "crowd-a") == 3  # am_peak's cars, drill's people
        assert pg.evaluate("window.__twin.runs") == {"kind": "trips", "scenario": "base", "runs": ["am_peak", "r2"],
                                                     "shown": "am_peak"}
        _show_series(p, "Crowd")
        assert pg.evaluate("window.__twin.runs") == {"kind": "crowd", "scenario": "base", "runs": ["drill", "r3"],
                                                     "shown": "drill"}
        # the floods, newest first, each labelled with its run id; the newest is shown
        _show_series(p, "Flood")
        runs = pg.evaluate("window.__twin.runs")
        assert runs["runs"] == ["later", "storm50", "r1"] and runs["shown"] == "later", runs
        labels = pg.eval_on_selector_all("#run-select option", "os => os.map((o) => o.textContent)")
        assert [s.split(" · ")[0] for s in labels] == ["later", "storm50", "r1"], labels
        assert pg.is_visible("#run-select") and pg.is_enabled("#run-select")
        assert pg.get_attribute("#time-slider", "max") == "3"
        # a script's older storm: its two steps on the slider, its depth on the map
        pg.select_option("#run-select", "storm50")
        pg.wait_for_function("window.__twin.runs.shown === 'storm50'", timeout=15000)
        pg.wait_for_function("document.getElementById('time-slider').max === '1'", timeout=15000)
        pg.wait_for_function("(window.__twin.floodImage.a || '').includes('/storm50/')", timeout=15000)
        assert pg.input_value("#run-select") == "storm50"
        assert _series(p)[pg.evaluate("Number(document.getElementById('series-select').value)")].startswith("Flood")
        # back to the newest
        pg.select_option("#run-select", "later")
        pg.wait_for_function("(window.__twin.floodImage.a || '').includes('/later/')", timeout=15000)
        assert pg.get_attribute("#time-slider", "max") == "3"
        pg.click("#lang-toggle")  # the run select's name follows the language
        assert pg.get_attribute("#run-select", "aria-label") == "显示哪次运行（最新在前）"
        pg.click("#lang-toggle")
    finally:
        p.close()


def test_flood_on_the_measured_rain_takes_gaps_as_dry_and_says_how_many(browser, runs_server):  # noqa: F811
    """One stored gauge reading: the strict default would refuse the 2 h window; the map's run takes the
    stretches no gauge reported as dry and the finished job row says how many there were."""
    p = Page(browser, runs_server).open()
    posted = _fake_jobs(p, {"id": "fakeg", "engine": "flood", "scenario": "base", "status": "done",
                            "summary": {"storm": {"gauges": ["RG01"], "total_mm": 2.0, "unknown_blocks": 21,
                                                  "step_s": 300.0, "duration_s": 7200.0}}})
    try:
        p.page.wait_for_function("!document.getElementById('run-flood-measured').disabled", timeout=30000)
        assert "taken as dry" in p.page.get_attribute("#run-flood-measured", "title")
        p.page.click("#run-flood-measured")
        p.page.wait_for_function("document.querySelectorAll('#jobs .job').length === 1")
        assert posted[-1]["params"]["rain_from_sensors"] == "2h" and posted[-1]["params"]["rain_gaps"] == "dry"
        p.page.wait_for_function("document.querySelector('#jobs .job').innerText.includes('taken as dry')",
                                 timeout=15000)
        row = p.page.inner_text("#jobs .job")
        assert "2.0 mm of rain measured (RG01)" in row and "21 of 24 5-min stretches had no gauge reading" in row, row
    finally:
        p.close()


def test_without_a_token_the_page_asks_for_one_instead_of_saying_nothing_is_there(browser, city):  # noqa: F811
    from cim.store import open_store
    from viewer.auth import create_token

    with open_store(city) as st:
        create_token(st, "planner", name="auth on")
    with LiveServer(city, prewarm=False) as srv:
        p = Page(browser, srv)
        pg = p.page
        try:
            pg.goto(srv.url + "/")
            pg.wait_for_selector("#engines-refused", timeout=30000)
            assert pg.inner_text("#engines") == "sign in with a token to run simulations"
            pg.wait_for_selector("#alerts-refused", timeout=30000)
            assert pg.inner_text("#alert-list") == "sign in with a token to see the alerts"
            assert "no simulation engine" not in pg.inner_text("body") and "loading" not in pg.inner_text("#panel")
            pg.click("#lang-toggle")
            assert pg.inner_text("#engines") == "请用访问令牌登录后运行模拟"
            assert pg.inner_text("#alert-list") == "请用访问令牌登录后查看告警"
        finally:
            p.errors = [e for e in p.errors if "401" not in e]
            p.close()
