"""Roads a flood closes for part of a traffic run are drawn closed on the map while they are closed, on the
trips' clock (headless Chromium, as in test_viewer_browser.py)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from conftest import LiveServer, save_flood_closed_traffic_run
from test_viewer_browser import Page, browser, set_layers  # noqa: F401  (the module's Chromium fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MAGENTA = np.array([230, 40, 210])  # FLOOD_CLOSED_COLOUR in viewer/static/app.js (magenta)


@pytest.fixture(scope="module")
def closures_server(city_template, tmp_path_factory):
    """A traffic run's link loads where every link is closed by flood water over [600, 1200) s, and its trips
    over 0 ... 1800 s (the newest run of the base scenario, so the page shows it)."""
    import pandas as pd

    from twin_core.twin import Twin

    path = str(tmp_path_factory.mktemp("viewer_closures") / "city.gpkg")
    shutil.copy(city_template["path"], path)
    with Twin.open(path) as twin:
        links = save_flood_closed_traffic_run(twin)  # green (V/C 0.1) but for 600-1200 s
        # a flood engine's run on the base (its road exposure table is what marks it), none on scenario "dry"
        twin.save_result("base", "flood-r8", "exposure_road_links", pd.DataFrame(
            {"link_id": [str(links["link_id"].iloc[0])], "max_depth_m": [0.5], "time_of_arrival_s": [600.0],
             "flooded_fraction": [1.0]}))
        twin.scenarios.create("dry", "no flood run here")
    with LiveServer(path) as srv:
        srv.path = path  # tests add results to it
        yield srv


def _fake_jobs(p, reply: dict, then: dict | None = None) -> list:
    """Answer the page's job requests with ``reply`` (a finished job; or, given ``then``, ``reply`` to the start
    and ``then`` to the page's later look at the job) instead of running anything; returns the list the bodies
    it posts are appended to."""
    import json

    posted: list = []

    def jobs(route):
        post = route.request.method == "POST"
        if post:
            posted.append(json.loads(route.request.post_data))
        r = reply if post or then is None else then
        route.fulfill(status=202, content_type="application/json", body=json.dumps(
            {"progress": 1.0, "events_url": f"/api/jobs/{reply['id']}", **r}))

    p.page.route("**/api/jobs", jobs)
    p.page.route("**/api/jobs/fake*", jobs)
    return posted


def _slide(p, value):
    p.page.eval_on_selector("#time-slider", f"el => {{ el.value = {value}; el.dispatchEvent(new Event('input')); }}")
    p.page.wait_for_load_state("networkidle")
    p.drawn()


def _magenta_share(p) -> float:
    px = p.map_pixels()
    return float((np.abs(px - MAGENTA).sum(axis=2) < 60).mean())


def test_flood_closed_roads_turn_magenta_while_closed(browser, closures_server):  # noqa: F811
    p = Page(browser, closures_server).open()
    try:
        labels = p.page.eval_on_selector_all("#series-select option", "os => os.map((o) => o.textContent)")
        idx = next(i for i, s in enumerate(labels) if s.lower().startswith("vehicle"))
        p.page.select_option("#series-select", str(idx))
        set_layers(p, hillshade=False, flood=False, buildings=False, sensors=False, bim=False, trips=False, crowd=False)
        colour = """(props) => window.__twin.decks.a.props.layers.find((l) => l && l.id === 'road_links-a')
                                 .props.getLineColor({properties: props}).slice(0, 3)"""
        _slide(p, 300)
        assert _magenta_share(p) < 0.0005  # before the water: coloured by load
        assert p.page.evaluate(f"({colour})({{closed_from_s: 600, closed_until_s: 1200, vc: 0.1}})") != MAGENTA.tolist()
        _slide(p, 900)
        assert _magenta_share(p) > 0.002, "the closed roads were not drawn closed"
        assert p.page.evaluate(f"({colour})({{closed_from_s: 600, closed_until_s: 1200, vc: 0.1}})") == MAGENTA.tolist()
        # a road still under water when the flood run ended (closed_until_s inf, or null in JSON) stays closed
        assert p.page.evaluate(f"({colour})({{closed_from_s: 600, closed_until_s: null, vc: 0.1}})") == MAGENTA.tolist()
        _slide(p, 1500)
        assert _magenta_share(p) < 0.0005  # reopened
        assert p.page.evaluate(f"({colour})({{closed_from_s: 600, closed_until_s: Infinity, vc: 0.1}})") == MAGENTA.tolist()
        # the tooltip says when
        tip = p.page.evaluate("""() => window.__twin.decks.a.props.getTooltip({object: {properties:
            {link_id: 'L1', closed_from_s: 600, closed_until_s: 1200}}, layer: {id: 'road_links-a'}})""")
        assert "L1" in str(tip) and "10:00" in str(tip) and "20:00" in str(tip)
    finally:
        p.close()


def test_run_traffic_from_the_map_closes_the_scenarios_flooded_roads(browser, closures_server):  # noqa: F811
    """The command centre runs a storm, then traffic, from the map: the traffic job ignored the flood (a
    script had to pass flooded_by). It now names the scenario's newest flood run, and only where there is one."""
    import json

    p = Page(browser, closures_server).open()
    posted = []

    def jobs(route):
        req = route.request
        if req.method == "POST":
            body = json.loads(req.post_data)
            posted.append(body)
            route.fulfill(status=202, content_type="application/json", body=json.dumps(
                {"id": f"fake{len(posted)}", "engine": body["engine"], "scenario": body["scenario"],
                 "status": "done", "progress": 1.0, "events_url": f"/api/jobs/fake{len(posted)}"}))
        else:
            route.fulfill(status=200, content_type="application/json", body=json.dumps(
                {"id": "fake", "engine": "traffic", "scenario": "base", "status": "done", "progress": 1.0}))

    try:
        p.page.route("**/api/jobs", jobs)
        p.page.route("**/api/jobs/fake*", jobs)
        p.page.click("#run-traffic")
        p.page.wait_for_function("document.querySelectorAll('#jobs .job').length === 1")
        assert posted[-1]["params"]["flooded_by"] == "flood-r8" and posted[-1]["scenario"] == "base"
        assert "flood-r8" in p.page.inner_text("#jobs")
        p.page.select_option("#scenario-a", "dry")
        p.drawn()
        p.page.click("#run-traffic")
        p.page.wait_for_function("document.querySelectorAll('#jobs .job').length === 2")
        assert posted[-1]["scenario"] == "dry" and "flooded_by" not in posted[-1]["params"]
    finally:
        p.close()


def test_run_crowd_from_the_map_evacuates_in_the_scenarios_flood(browser, closures_server):  # noqa: F811
    """A crowd run from the map on a scenario with a flood run evacuates in that flood (deep water is no floor,
    exits under it close), and its row says how many people the water cut off."""
    from affine import Affine

    from cim.raster import Raster
    from twin_core.twin import Twin

    with Twin.open(closures_server.path) as twin:
        x0, y0, x1, y1 = twin.layer("areas").total_bounds
        twin.save_result("dry", "flood-r7", "max_depth", Raster(np.zeros((4, 4), "float32"),
                                                                 Affine(100, 0, x0, 0, -100, y1), twin.crs, unit="m"))
    p = Page(browser, closures_server).open()
    posted = _fake_jobs(p, {"id": "fakec", "engine": "crowd", "scenario": "dry", "status": "running", "progress": 0.5},
                        then={"id": "fakec", "engine": "crowd", "scenario": "dry", "status": "done",
                              "summary": {"flooded_by": "flood-r7", "cut_off_persons": 12,
                                          "exits_under_water": ["e1", "e2"]}})
    try:
        p.page.click("#run-crowd")  # the base has no flood grid: a dry evacuation
        p.page.wait_for_function("document.querySelectorAll('#jobs .job').length === 1")
        assert posted[-1]["scenario"] == "base" and "flooded_by" not in posted[-1]["params"]
        p.page.select_option("#scenario-a", "dry")
        p.drawn()
        p.page.click("#run-crowd")
        p.page.wait_for_function("document.querySelectorAll('#jobs .job').length === 2")
        assert posted[-1]["scenario"] == "dry" and posted[-1]["params"]["flooded_by"] == "flood-r7"
        p.page.wait_for_function("document.querySelector('#jobs .job').innerText.includes('cut off')", timeout=15000)
        row = p.page.inner_text("#jobs .job")
        assert "12 cut off by water" in row and "2 exit(s) under water" in row, row
    finally:
        p.close()


def test_run_flood_on_the_measured_rain_from_the_map(browser, closures_server):  # noqa: F811
    """The command centre runs a flood on what the rain gauges measured: the button is off while no gauge has
    a stored reading (simulated values do not count), and posts the 2 h window once one has."""
    from datetime import datetime, timedelta, timezone

    from cim.sensors import append_readings
    from twin_core.twin import Twin

    p = Page(browser, closures_server).open()
    try:
        p.page.wait_for_selector("#run-flood-measured")
        assert p.page.is_disabled("#run-flood-measured")
        assert "no rain gauge" in p.page.get_attribute("#run-flood-measured", "title")
    finally:
        p.close()
    now = datetime.now(timezone.utc).replace(microsecond=0)
    with Twin.open(closures_server.path) as twin:
        # 12 mm/h for 2 h, the latest 60 mm/h: over RG01's warning threshold (the sample city's 20 mm/h)
        append_readings(twin.store, [{"sensor_id": "RG01", "time": (now - timedelta(minutes=m)).isoformat(),
                                      "value": 60.0 if m == 0 else 12.0} for m in range(0, 120, 5)])
    p = Page(browser, closures_server).open()
    posted = _fake_jobs(p, {"id": "fakem", "engine": "flood", "scenario": "base", "status": "done"})
    try:
        p.page.wait_for_function("!document.getElementById('run-flood-measured').disabled", timeout=30000)
        p.page.wait_for_function("window.__twin.measuredRain && window.__twin.measuredRain.suggested", timeout=30000)
        assert "suggest" in p.page.get_attribute("#run-flood-measured", "class")  # raining hard: press me
        p.page.click("#run-flood-measured")
        p.page.wait_for_function("document.querySelectorAll('#jobs .job').length === 1")
        assert posted[-1]["engine"] == "flood" and posted[-1]["params"]["rain_from_sensors"] == "2h"
        assert "measured rain 2h" in p.page.inner_text("#jobs")
    finally:
        p.close()


def test_emergency_access_from_the_map_and_buildings_coloured_by_it(browser, closures_server):  # noqa: F811
    """'Run emergency access' posts the city's station kind (fire stations, held to their standard) with the
    scenario's newest flood; 'colour buildings by emergency access' draws the newest access
    run: within, beyond, lost to the flood, no road."""
    import json

    import pandas as pd

    from twin_core.twin import Twin

    with Twin.open(closures_server.path) as twin:
        ids = twin.layer("buildings")["building_id"].astype(str).tolist()[:5]
        nan = float("nan")
        twin.save_result("base", "access-r1", "access_buildings", pd.DataFrame(
            {"building_id": ids, "time_s": [100.0, 900.0, 700.0, nan, nan],
             "within": [True, False, False, False, False], "dry_time_s": [100.0, 900.0, 300.0, 200.0, nan],
             "lost": [False, False, True, True, False]}))
    p = Page(browser, closures_server).open()
    posted = _fake_jobs(p, {"id": "fakea", "engine": "access", "scenario": "base", "status": "done",
                            "summary": {"within": 1, "buildings": 4, "within_s": 600, "flooded_by": "flood-r8",
                                        "lost": 2}})
    try:
        p.page.click("#run-access")
        p.page.wait_for_function("document.querySelectorAll('#jobs .job').length === 1")
        assert posted[-1]["params"] == {"from_kind": "fire_station", "flooded_by": "flood-r8"}
        p.page.wait_for_function("document.querySelector('#jobs .job').innerText.includes('lost to the flood')",
                                 timeout=15000)
        assert "1 of 4 buildings within 10 min" in p.page.inner_text("#jobs .job")
        p.page.select_option("#colour-by", "access")
        p.drawn()
        colours = p.page.evaluate(f"""() => {{ const l = window.__twin.decks.a.props.layers.find((x) => x && x.id === 'buildings-a');
            return {json.dumps(ids)}.map((i) => l.props.getFillColor({{properties: {{building_id: i, height_m: 10}}}})); }}""")
        # within, beyond, slowed past the limit by the flood, cut off by it, no road even when dry
        assert colours == [[60, 185, 95, 235], [240, 150, 40, 240], [230, 40, 210, 245], [230, 40, 210, 245],
                           [200, 30, 40, 245]]
    finally:
        p.close()
