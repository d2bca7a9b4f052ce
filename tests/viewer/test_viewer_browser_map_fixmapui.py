"""What a command-centre review of the map found missing (headless Chromium, as in test_viewer_browser_runs.py).

- a building's inspector and tooltip show its flood depth (with the run it comes from) and its emergency access;
- a crowd run's exits (people out of each, a closed one grey) and its jams (while the clock is within them) are
  drawn, named in the legend and in a tooltip; an older crowd run without them still plays;
- compared at 1280 x 720, the time bar's slider keeps 300 px (the run selects shrink);
- a finished run started from the page names its run and has a "Show" button that shows it;
- a compared view whose scenario has no run of the series watched says so;
- the inspector forgets a feature when the scenario changes.

Canvas clicks are unreliable under software GL: the page's own inspect and tooltip are called through
``window.__twin`` (T.inspect, T.tooltip), as the other browser tests call the page's hooks.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from conftest import private_server
from test_viewer_browser import Page, browser  # noqa: F401  (the module's Chromium fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

HINT = "Click a feature on the map."
LONG = "flood-2026-12-05T07-30-00-chengdu-return-50y"


@pytest.fixture(scope="module")
def ui_server(city_template, tmp_path_factory):
    """The small city with, on the base: a flood "storm50" (2 steps) with its building exposure (threshold 0.15 m),
    a later flood "later", the newest flood LONG (on the levee too), an access run "acc1" (limit 600 s) and a crowd run "crowd-x" with exits (E1 open,
    E2 closed) and two jams; on the levee a flood "storm50"; a scenario "works" with no run at all. (The
    template's crowd run "r3" has no exits nor jams.) Yields (server, facts)."""
    import geopandas as gpd
    import pandas as pd
    from shapely.geometry import LineString

    from twin_core.twin import Twin

    with private_server(city_template, tmp_path_factory, "viewer_fixmapui") as (srv, path):
        with Twin.open(path) as twin:
            twin.scenarios.create("works", "road works, nothing run yet")
            dem = twin.raster("dem")
            depth = np.full((2, *dem.shape), 0.2, "float32")
            flood = {"engine": "simulation.flood", "grid": "dem", "times_s": [0, 600]}
            twin.save_result("base", "storm50", "depth_snapshots", depth, meta=flood)
            twin.save_result("levee", "storm50", "depth_snapshots", depth, meta=flood)
            ids = [str(b) for b in twin.layer("buildings")["building_id"].values[:4]]
            twin.save_result("base", "storm50", "exposure_buildings",
                             pd.DataFrame({"building_id": [ids[0]], "max_depth_m": [0.42], "time_of_arrival_s": [300.0]}),
                             meta={"engine": "simulation.flood", "threshold_m": 0.15})
            twin.save_result("base", "later", "depth_snapshots", depth, meta=flood)
            twin.save_result("base", "acc1", "access_buildings", pd.DataFrame(
                {"building_id": ids, "time_s": [450.0, 900.0, float("nan"), float("nan")],
                 "within": [True, False, False, False], "dry_time_s": [450.0, 900.0, 300.0, float("nan")],
                 "lost": [False, False, True, False]}), meta={"within_s": 600.0})
            x0, y0, _, _ = twin.extent
            cx, cy = x0 + 300.0, y0 + 400.0
            agents = [{"agent_id": f"p{i}", "t": float(t), "x": cx + i + t * 0.3, "y": cy + i} for i in range(10)
                      for t in range(0, 121, 20)]
            crowd = {"engine": "simulation.crowd"}
            twin.save_result("base", "crowd-x", "trajectories", pd.DataFrame(agents), meta=crowd)
            exits = gpd.GeoDataFrame(
                {"exit": ["E1", "E2"], "width_m": [40.0, 20.0], "agents": [10, 0], "first_s": [30.0, None],
                 "last_s": [95.0, None], "flow_per_s": [0.15, 0.0], "specific_flow_per_m_s": [0.004, 0.0],
                 "closed": [False, True]},
                geometry=[LineString([(cx + 60, cy - 20), (cx + 60, cy + 20)]),
                          LineString([(cx - 10, cy - 30), (cx + 10, cy - 30)])], crs=twin.crs)
            twin.save_result("base", "crowd-x", "exits", exits, meta=crowd)
            jams = pd.DataFrame({"time_s": [20.0, 80.0], "x": [cx + 55, cx + 40], "y": [cy + 5, cy - 10],
                                 "n_agents": [8, 3], "exit": ["E1", "E1"], "kind": ["exit", "exit"],
                                 "waypoint": [None, None], "end_s": [60.0, float("nan")], "peak_density": [4.2, 2.5]})
            twin.save_result("base", "crowd-x", "jams", jams, meta=crowd)
            # the newest floods, with run ids as long as the CLI's (a timestamp and the storm)
            for scenario in ("base", "levee"):
                twin.save_result(scenario, LONG, "depth_snapshots", depth, meta=flood)
            crs = twin.crs
        from pyproj import Transformer

        to_ll = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
        yield srv, {"ids": ids, "jam0": to_ll.transform(cx + 55, cy + 5)}


def _series(p: Page, prefix: str) -> None:
    labels = p.page.eval_on_selector_all("#series-select option", "os => os.map((o) => o.textContent)")
    p.page.select_option("#series-select", str(next(i for i, s in enumerate(labels) if s.startswith(prefix))))


def _set_time(p: Page, seconds: float) -> None:
    p.page.evaluate("(v) => { const s = document.getElementById('time-slider'); s.value = v;"
                    " s.dispatchEvent(new Event('input')); }", seconds)


def test_a_building_shows_its_flood_depth_and_access_and_forgets_it_on_a_scenario_switch(browser, ui_server):  # noqa: F811
    srv, facts = ui_server
    b0, b1, b2, b3 = facts["ids"]
    p = Page(browser, srv).open()
    pg = p.page
    try:
        # the inspector (as a click shows it): the attributes, then what the runs say of the building
        pg.evaluate(f"window.__twin.inspect('buildings-a', {{properties: {{building_id: '{b0}'}}}}, 'a')")
        pg.wait_for_function(f"window.__twin.lastPick && window.__twin.lastPick.building_id === '{b0}'", timeout=30000)
        pick = pg.evaluate("window.__twin.lastPick")
        assert pick["flood depth"] == "0.42 m · run storm50", pick
        assert pick["access"] == "within: 7.5 min (limit 10.0 min) · run acc1", pick
        text = pg.inner_text("#inspect-table")
        assert "0.42 m · run storm50" in text and "within: 7.5 min" in text

        # the hover tooltip says the same; a building not in the exposure table is below its threshold
        tip = pg.evaluate(f"window.__twin.tooltip('buildings-a', {{properties: {{building_id: '{b1}', height_m: 12, use: 'office'}}}})")
        assert tip.split("\n") == [f"{b1} · 12 m · office", "flood depth: not flooded (below 0.15 m) · run storm50",
                                   "access: beyond: 15.0 min (limit 10.0 min) · run acc1"], tip
        tip2 = pg.evaluate(f"window.__twin.tooltip('buildings-a', {{properties: {{building_id: '{b2}', height_m: 9}}}})")
        assert "access: lost to the flood (5.0 min when dry) · run acc1" in tip2, tip2
        tip3 = pg.evaluate(f"window.__twin.tooltip('buildings-a', {{properties: {{building_id: '{b3}', height_m: 9}}}})")
        assert "access: no road · run acc1" in tip3, tip3

        # another scenario (no runs there): the inspector is cleared, and its tooltip names no run
        pg.select_option("#scenario-a", "works")
        pg.wait_for_function(f"document.getElementById('inspect-body').innerText === '{HINT}'", timeout=15000)
        assert pg.evaluate("window.__twin.lastPick") is None
        tip4 = pg.evaluate(f"window.__twin.tooltip('buildings-a', {{properties: {{building_id: '{b0}', height_m: 9}}}})")
        assert tip4 == f"{b0} · 9 m · ", tip4

        # ... in Chinese too
        pg.select_option("#scenario-a", "base")
        pg.wait_for_function("window.__twin.runs && window.__twin.runs.scenario === 'base'", timeout=15000)
        pg.click("#lang-toggle")
        pg.evaluate(f"window.__twin.inspect('buildings-a', {{properties: {{building_id: '{b0}'}}}}, 'a')")
        pg.wait_for_function(f"window.__twin.lastPick && window.__twin.lastPick.building_id === '{b0}'", timeout=30000)
        assert pg.evaluate("window.__twin.lastPick['淹没水深']") == "0.42 m · 运行 storm50"
        pg.click("#lang-toggle")
    finally:
        p.close()


def test_a_crowd_run_draws_its_exits_and_jams_and_an_older_one_still_plays(browser, ui_server):  # noqa: F811
    srv, facts = ui_server
    p = Page(browser, srv).open()
    pg = p.page
    try:
        _series(p, "Crowd")
        pg.wait_for_function("window.__twin.runs && window.__twin.runs.shown === 'crowd-x'", timeout=15000)
        pg.wait_for_function("window.__twin.layerIds.a.includes('crowd-exits-a')", timeout=15000)
        ids = pg.evaluate("window.__twin.layerIds.a")
        assert "crowd-exits-closed-a" in ids and "crowd-jams-a" in ids, ids
        _set_time(p, 30)
        shown = pg.evaluate("window.__twin.crowdExtra.a")
        assert shown["exits"] == 2 and shown["closed"] == ["E2"] and shown["jams"] == 1, shown
        # the jam stands where its x, y (the twin's CRS) are: within 0.5 m (a fraction of a person's width)
        lon, lat = pg.evaluate("window.__twin.crowdExtra.a.positions[0]")
        elon, elat = facts["jam0"]
        metres = math.hypot((lon - elon) * 111320 * math.cos(math.radians(elat)), (lat - elat) * 110540)
        assert metres < 0.5, (lon, lat, facts["jam0"])
        _set_time(p, 70)  # the first jam is over, the second not begun
        assert pg.evaluate("window.__twin.crowdExtra.a.jams") == 0
        _set_time(p, 100)  # the second has no end: it lasts to the end of the run
        assert pg.evaluate("window.__twin.crowdExtra.a.jams") == 1

        # an exit's tooltip: name, width, people out, the last one's time; a closed one says so
        tips = pg.evaluate("""() => {
            const L = window.__twin.decks.a.props.layers;
            const f = (id) => L.find((l) => l.id === id).props.data.features[0];
            return [window.__twin.tooltip('crowd-exits-a', f('crowd-exits-a')),
                    window.__twin.tooltip('crowd-exits-closed-a', f('crowd-exits-closed-a'))];
        }""")
        assert tips == ["E1 · 40.0 m · 10 persons · last out 01:35", "E2 · 20.0 m · 0 persons · exit closed"], tips
        legend = pg.evaluate("window.__twin.legend.items")
        assert "exits (width: people out)" in legend and "exit closed" in legend and "jams (size: people)" in legend, legend

        # the vehicle trips watched: no exits drawn
        _series(p, "Vehicle")
        pg.wait_for_function("!window.__twin.layerIds.a.some((i) => i.startsWith('crowd-exits'))", timeout=15000)
        assert "exits (width: people out)" not in pg.evaluate("window.__twin.legend.items")

        # an older crowd run without exits nor jams: it plays, nothing more is drawn, no error
        _series(p, "Crowd")
        pg.select_option("#run-select", "r3")
        pg.wait_for_function("window.__twin.runs.shown === 'r3'", timeout=15000)
        pg.wait_for_function("window.__twin.layerIds.a.includes('crowd-a')", timeout=15000)
        _set_time(p, 40)
        ids = pg.evaluate("window.__twin.layerIds.a")
        assert not any(i.startswith(("crowd-exits", "crowd-jams")) for i in ids), ids
        assert pg.evaluate("window.__twin.errors") == []
    finally:
        p.close()


@pytest.mark.parametrize("size", [(1280, 720), (1400, 900)])
def test_compared_the_time_bar_keeps_its_slider_and_a_view_without_a_run_says_so(browser, ui_server, size, tmp_path):  # noqa: F811
    srv, _ = ui_server
    p = Page(browser, srv).open()
    pg = p.page
    try:
        pg.set_viewport_size({"width": size[0], "height": size[1]})
        pg.check("#compare-toggle")
        pg.select_option("#scenario-b", "levee")
        _series(p, "Flood")
        pg.wait_for_selector("#run-select-b", state="visible", timeout=15000)
        pg.wait_for_timeout(300)
        boxes = pg.evaluate("""() => Object.fromEntries(['time-slider', 'series-select', 'run-select', 'run-select-b',
            'run-side-a', 'run-side-b', 'time-label'].map((id) => { const r = document.getElementById(id).getBoundingClientRect();
            return [id, [r.left, r.right, r.width]]; }))""")
        assert boxes["time-slider"][2] >= 299, boxes
        for k, (left, right, width) in boxes.items():  # nothing is pushed off the screen or squeezed to nothing
            assert left >= 0 and right <= size[0] + 0.5 and width > 20, (k, boxes)
        # a cut run select names its view and the run shown whole in its title
        assert pg.get_attribute("#run-select-b", "title").startswith(
            f"the run the right map shows of scenario levee (newest first) · {LONG} · "), pg.get_attribute("#run-select-b", "title")
        pg.screenshot(path=str(tmp_path / f"compare_{size[0]}.png"))

        # the right view's scenario has no flood run: said, not a blank map
        pg.select_option("#scenario-b", "works")
        pg.wait_for_selector("#run-note", state="visible", timeout=15000)
        assert pg.inner_text("#run-note") == "Right (works): no flood run yet"
        assert pg.evaluate("window.__twin.runNote.none") == [{"side": "b", "kind": "flood", "scenario": "works"}]
        pg.click("#lang-toggle")
        assert pg.inner_text("#run-note") == "右侧（works）：尚无洪水运行"
        pg.click("#lang-toggle")
        pg.select_option("#scenario-b", "levee")
        pg.wait_for_selector("#run-note", state="hidden", timeout=15000)
    finally:
        p.close()


def test_a_finished_run_from_the_page_names_its_run_and_shows_it(browser, ui_server):  # noqa: F811
    """The job API is answered by the test (a real flood would take a minute): the run it names, "storm50",
    is a real run of the base, older than its newest ("later")."""
    srv, _ = ui_server
    p = Page(browser, srv).open()
    pg = p.page
    posted = []

    def engines(route):
        route.fulfill(status=200, content_type="application/json", body=json.dumps(["flood"]))

    def jobs(route):
        body = json.loads(route.request.post_data or "{}")
        posted.append(body)
        route.fulfill(status=202, content_type="application/json", body=json.dumps(
            {"id": "fake1", "engine": "flood", "scenario": body["scenario"], "run": "storm50", "status": "queued",
             "progress": 0, "events_url": "/api/jobs/fake1/events"}))

    def events(route):
        end = {"id": "fake1", "engine": "flood", "scenario": "base", "run": "storm50", "status": "done", "progress": 1}
        route.fulfill(status=200, content_type="text/event-stream", body=f"event: end\ndata: {json.dumps(end)}\n\n")

    try:
        pg.route("**/api/jobs/engines", engines)
        pg.route("**/api/jobs", jobs)
        pg.route("**/api/jobs/fake1/events", events)
        pg.reload()
        pg.wait_for_function("window.__twin && window.__twin.ready", timeout=30000)
        pg.click("#run-flood")
        pg.wait_for_selector("#job-fake1 .show-run", state="visible", timeout=15000)
        assert posted and posted[0]["scenario"] == "base"
        assert pg.inner_text("#job-fake1 .name").startswith("Flood · base · run storm50"), \
            pg.inner_text("#job-fake1 .name")
        # elsewhere meanwhile: another scenario, another series
        pg.select_option("#scenario-a", "levee")
        pg.wait_for_function("window.__twin.runs && window.__twin.runs.scenario === 'levee'", timeout=15000)
        shown = ("window.__twin.runs && window.__twin.runs.scenario === 'base' && window.__twin.runs.kind === 'flood'"
                 " && window.__twin.runs.shown === 'storm50'")
        pg.click("#job-fake1 .show-run")
        pg.wait_for_function(shown, timeout=15000)
        assert pg.input_value("#scenario-a") == "base" and pg.input_value("#run-select") == "storm50"
        pg.wait_for_function("(window.__twin.floodImage.a || '').includes('/base/storm50/')", timeout=15000)
        # ... and from another series of the same scenario
        _series(p, "Vehicle")
        pg.wait_for_function("window.__twin.runs.kind === 'trips'", timeout=15000)
        pg.click("#job-fake1 .show-run")
        pg.wait_for_function(shown, timeout=15000)
        assert pg.evaluate("document.getElementById('series-select').selectedOptions[0].textContent").startswith("Flood")
    finally:
        pg.unroute("**/api/jobs/engines")
        pg.unroute("**/api/jobs")
        pg.unroute("**/api/jobs/fake1/events")
        p.close()
