"""The one-map page as command-centre staff and planners use it: language, time bar, errors, jobs, BIM.

Each test here pins a defect seen in the page (headless Chromium, as in test_viewer_browser.py).
"""

from __future__ import annotations

import json
import re

import pytest

from test_viewer_browser import Page, browser  # noqa: F401  (the module's Chromium fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def page(browser, live_server):  # noqa: F811
    p = Page(browser, live_server).open()
    yield p
    p.close()


def options(p: Page) -> list[str]:
    return p.page.eval_on_selector_all("#series-select option", "os => os.map((o) => o.textContent)")


def pick_sensor(p: Page):
    """A pixel of map a where a sensor is drawn, and the sensor's properties."""
    return p.page.evaluate("""() => {
        const d = window.__twin.decks.a, c = document.getElementById('map-a');
        for (let y = 60; y < c.clientHeight - 20; y += 15) for (let x = 40; x < c.clientWidth - 20; x += 15) {
          const o = d.pickObject({x, y, radius: 0, layerIds: ['sensors-a']});
          if (o && o.object) return [x, y, o.object.properties.sensor_id];
        }
        return null; }""")


def click_a_sensor(p: Page, tries: int = 3):
    """Click a sensor on map a until its attributes show; the sensor's (x, y, id). A click can land while the
    map redraws (the sensors reload every 10 s; a CI run once missed one): each try picks the pixel anew."""
    for _ in range(tries):
        hit = pick_sensor(p)
        assert hit, "no sensor drawn on the map"
        box = p.page.locator("#map-a").bounding_box()
        p.page.mouse.click(box["x"] + hit[0], box["y"] + hit[1])
        try:
            p.page.wait_for_selector("#inspect-table", timeout=15000)
            return hit
        except Exception:  # noqa: BLE001 - try again, then fail below
            p.settle(500)
    raise AssertionError(f"{tries} clicks on sensors showed no attributes; last pick {hit}, "
                         f"page state {p.page.evaluate('window.__twin.lastPick')!r}")


def lang(p: Page, want: str) -> None:
    if p.page.evaluate("document.documentElement.lang") != ("zh-CN" if want == "zh" else "en"):
        p.page.click("#lang-toggle")


def test_language_switch_translates_time_bar_and_keeps_the_inspector(page):
    p = page.page
    p.wait_for_function("document.querySelectorAll('#series-select option').length > 0")
    assert options(page)[0] == "Flood depth · base"
    p.wait_for_function("window.__twin.decks.a.props.layers.some((l) => l && l.id === 'sensors-a')")
    page.settle(500)
    hit = click_a_sensor(page)
    lang(page, "zh")
    try:
        # the time series names and the time label follow the language (they stayed English)
        assert options(page) == ["淹没水深 · 现状", "车辆轨迹 · 现状", "人群 · 现状"]
        assert p.inner_text("#time-label").startswith("时间")
        assert not re.search(r"[A-Za-z]{3,}", p.inner_text("#timebar")), p.inner_text("#timebar")
        # switching the language kept the attributes shown (they were replaced by the click hint)
        assert p.locator("#inspect-table").count() == 1 and hit[2] in p.inner_text("#inspect-table")
    finally:
        lang(page, "en")
    assert options(page)[0] == "Flood depth · base" and p.inner_text("#time-label").startswith("Time")


def test_switching_scenario_lists_only_its_time_series(page):
    p = page.page
    p.select_option("#scenario-a", "levee")
    try:
        # levee has a flood run only: no trips or crowd of 'base' left in the list
        p.wait_for_function("document.querySelectorAll('#series-select option').length === 1")
        assert options(page) == ["Flood depth · levee"]
    finally:
        p.select_option("#scenario-a", "base")
        p.wait_for_function("document.querySelectorAll('#series-select option').length === 3")


def test_play_stops_at_the_end_and_plays_again_from_the_start(page):
    p = page.page
    p.select_option("#series-select", "0")  # flood: 0, 600, 1200 s
    p.click("#play")
    p.wait_for_function("window.__twin.playing === false", timeout=20000)
    page.settle(1000)  # it stays at the end (it used to wrap round to 00:00 and go on)
    assert p.eval_on_selector("#time-slider", "el => el.value === el.max")
    assert "20:00" in p.inner_text("#time-label") and p.inner_text("#play") == "▶"
    p.click("#play")  # at the end: starts over
    p.wait_for_function("window.__twin.time === 600 || window.__twin.time === 0")
    p.click("#play")
    assert p.evaluate("window.__twin.playing") is False
    p.eval_on_selector("#time-slider", "el => { el.value = 0; el.dispatchEvent(new Event('input')); }")


def test_switching_series_stops_playback_and_resets_time(page):
    p = page.page
    p.select_option("#series-select", "1")  # trips
    p.click("#play")
    p.wait_for_function("window.__twin.time > 20")
    p.select_option("#series-select", "2")  # crowd: 0 ... 100 s
    assert p.evaluate("window.__twin.playing") is False and p.inner_text("#play") == "▶"
    assert p.evaluate("window.__twin.time") == 0.0
    page.settle(300)
    assert p.evaluate("window.__twin.time") == 0.0  # no second timer walking on
    p.select_option("#series-select", "0")


@pytest.mark.parametrize("reply, must, must_not", [
    ({"status": 500, "content_type": "text/html", "body": "<html><body>Internal Server Error</body></html>"},
     "server failed (500", "<html"),
    ({"status": 422, "content_type": "application/json",
      "body": json.dumps({"detail": [{"loc": ["body", "engine"], "msg": "field required"}]})},
     "engine: field required", "[object Object]"),
    ({"status": 401, "content_type": "text/plain", "body": "Unauthorized"}, "401", "not valid JSON"),
    ({"status": 403, "content_type": "application/json", "body": json.dumps({"detail": "role viewer may not simulate"})},
     "role viewer may not simulate", "[object"),
    (None, "cannot reach the map server", "Failed to fetch"),
])
def test_failed_requests_read_as_messages(page, reply, must, must_not):
    p = page.page

    def route(r):
        if r.request.method != "POST":
            return r.continue_()
        return r.abort() if reply is None else r.fulfill(**reply)

    p.route("**/api/jobs", route)
    try:
        p.evaluate("document.getElementById('error').hidden = true")
        p.click("#run-flood")
        p.wait_for_selector("#error:not([hidden])")
        text = p.inner_text("#error")
        assert must in text and must_not not in text, text
    finally:
        p.unroute("**/api/jobs")
        p.evaluate("document.getElementById('token-box').hidden = true")


def test_a_job_whose_progress_stream_breaks_does_not_stay_queued(page):
    p = page.page
    job = {"id": "gone1", "engine": "flood", "scenario": "base", "status": "queued", "progress": 0.0,
           "events_url": "/api/jobs/gone1/events"}
    p.route("**/api/jobs", lambda r: r.fulfill(status=202, content_type="application/json", body=json.dumps(job))
            if r.request.method == "POST" else r.continue_())
    try:
        p.click("#run-flood")
        p.wait_for_selector("#job-gone1")
        # the server does not know the job (restarted): the row says so instead of "queued" for ever
        p.wait_for_function("!/queued/.test(document.querySelector('#job-gone1 .st').textContent)", timeout=15000)
        st = p.inner_text("#job-gone1 .st")
        assert "status unknown" in st and "404" in st, st
    finally:
        p.unroute("**/api/jobs")


def test_job_rows_follow_the_language(page):
    p = page.page
    job = {"id": "lang1", "engine": "crowd", "scenario": "base", "status": "failed", "progress": 0.2,
           "error": "no area", "events_url": "/api/jobs/lang1/events"}
    p.route("**/api/jobs", lambda r: r.fulfill(status=202, content_type="application/json", body=json.dumps(job))
            if r.request.method == "POST" else r.continue_())
    p.route("**/api/jobs/lang1/events", lambda r: r.fulfill(
        status=200, content_type="text/event-stream", body=f"event: end\ndata: {json.dumps(job)}\n\n"))
    try:
        p.click("#run-crowd")
        p.wait_for_function("/failed/.test((document.querySelector('#job-lang1') || {}).textContent)")
        lang(page, "zh")
        assert "失败" in p.inner_text("#job-lang1") and "人群疏散" in p.inner_text("#job-lang1")
    finally:
        lang(page, "en")
        p.unroute("**/api/jobs")
        p.unroute("**/api/jobs/lang1/events")


def test_bim_report_does_not_run_markup_from_the_uploaded_model(page, ifc_path, tmp_path):
    text = open(ifc_path, encoding="utf-8").read()
    evil = re.sub(r"IFCBUILDING\('[^']*'", "IFCBUILDING('<img src=x onerror=window.__pwned=1>'", text, count=1)
    assert evil != text
    f = tmp_path / "evil.ifc"
    f.write_text(evil, encoding="utf-8")
    p = page.page
    p.set_input_files("#bim-file", str(f))
    p.click("#bim-submit")
    p.wait_for_selector("#bim-verdict", timeout=60000)
    page.settle(500)
    assert p.evaluate("window.__pwned") is None
    assert p.locator("#bim-report img").count() == 0
    # the importer no longer takes such a GlobalId as the building id (a digest, with a warning)
    assert re.search(r"bim-[0-9a-f]{22}", p.inner_text("#bim-verdict"))
    lang(page, "zh")
    try:
        assert "不通过" in p.inner_text("#bim-verdict") or "通过" in p.inner_text("#bim-verdict")
    finally:
        lang(page, "en")


def test_sensor_without_a_reading_says_so(page):
    tip = page.page.evaluate("""() => window.__twin.decks.a.props.getTooltip({layer: {id: 'sensors-a'},
        object: {properties: {sensor_id: 'RG1', name: 'Rain gauge 1', value: null, unit: 'mm/h', status: 'unknown'}}})""")
    assert "null" not in tip and "no reading" in tip and "unknown" in tip, tip


def test_twin_without_results_and_a_long_scenario_name(browser, live_server):  # noqa: F811
    """No results at all: no time series to play; a 60-character scenario name stays inside its label."""
    long = "a_very_long_scenario_name_for_the_second_phase_of_the_levee_x"[:60]
    p = Page(browser, live_server)

    def scene(r):
        resp = r.fetch()
        d = resp.json()
        d["results"] = []
        d["scenarios"] = d["scenarios"] + [long]
        r.fulfill(response=resp, body=json.dumps(d), headers={**resp.headers, "content-type": "application/json"})

    p.page.route("**/api/scene*", scene)
    p.page.route("**/api/results", lambda r: r.fulfill(status=200, content_type="application/json", body="[]"))
    p.open()
    try:
        pg = p.page
        assert pg.inner_text("#time-label") == "no time series"
        assert pg.is_disabled("#play")  # it used to toggle to "pause" and tick over nothing
        pg.select_option("#scenario-a", long)
        pg.wait_for_function(f"document.getElementById('label-a').textContent.includes('{long[:20]}')")
        lab = pg.locator("#label-a").bounding_box()
        mp = pg.locator("#map-a").bounding_box()
        assert lab["x"] + lab["width"] <= mp["x"] + mp["width"] + 1 and lab["height"] < 30, (lab, mp)
        sel = pg.locator("#scenario-a").bounding_box()
        assert sel["width"] <= 260, sel
    finally:
        p.close()


def test_the_newest_run_is_shown_not_the_last_by_name(browser, live_server):  # noqa: F811
    """A run started from the page ("crowd-2026...") sorts before an older "r3": the map must show the new one."""
    p = Page(browser, live_server)
    new = {"scenario": "base", "run": "crowd-20990101T000000-0001", "name": "trajectories", "kind": "table",
           "ref": "res_x", "created": "2099-01-01T00:00:00+00:00", "steps": None, "meta": {}}

    def scene(r):
        resp = r.fetch()
        d = resp.json()
        d["results"] = sorted(d["results"] + [new], key=lambda e: (e["scenario"], e["run"], e["name"]))
        r.fulfill(response=resp, body=json.dumps(d), headers={**resp.headers, "content-type": "application/json"})

    traj = {"count": 1, "t_min": 0.0, "t_max": 500.0, "trips": [{"id": "p1", "path": [[0, 0], [0, 0]], "timestamps": [0, 500]}]}
    p.page.route("**/api/scene*", scene)
    p.page.route(f"**/api/results/base/{new['run']}/trajectories/trajectories*",
                 lambda r: r.fulfill(status=200, content_type="application/json", body=json.dumps(traj)))
    p.open()
    try:
        pg = p.page
        pg.wait_for_function("document.querySelectorAll('#series-select option').length === 3")
        idx = next(i for i, s in enumerate(options(p)) if s.startswith("Crowd"))
        pg.select_option("#series-select", str(idx))
        assert pg.eval_on_selector("#time-slider", "el => [Number(el.min), Number(el.max)]") == [0, 500]
    finally:
        p.close()
