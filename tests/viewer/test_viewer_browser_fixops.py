"""fix_ops on the one map (headless Chromium, as test_viewer_browser.py): no 400 asking a static assignment's
link_flows for flood-closure times; a silent sensor whose last reading was ok is in the alert list, "stale
since" the time it went stale; times carry their zone; the measured-rain job row shows its window."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from conftest import private_server
from test_viewer_browser import Page, browser  # noqa: F401  (the module's Chromium fixture)
from test_viewer_browser_flood_closures import _fake_jobs

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ZONE = r"[+-]\d\d:\d\d"  # the browser's offset from UTC


@pytest.fixture(scope="module")
def ops_server(city_template, tmp_path_factory):
    with private_server(city_template, tmp_path_factory, "viewer_fixops", simulated_sensors=False) as (srv, _):
        yield srv


def test_no_closure_times_asked_of_a_static_assignment(browser, ops_server):  # noqa: F811
    # the template's r2 has a static assignment's link_flows (no closed_from_s): asking it got a 400 on load
    p = Page(browser, ops_server)
    bad: list[str] = []
    p.page.on("response", lambda r: bad.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    p.open()
    try:
        p.drawn()
        assert not [b for b in bad if "closed_from_s" in b], bad
    finally:
        p.close()


def test_a_silent_ok_sensor_is_listed_stale_since_it_went_stale_with_the_zone(browser, ops_server):  # noqa: F811
    old = (datetime.now(timezone.utc) - timedelta(minutes=40)).replace(microsecond=0)
    r = httpx.post(ops_server.url + "/api/sensors/readings", json={"readings": [
        {"sensor_id": "TC01", "time": old.isoformat(), "value": 1.0}]})  # ok, then silent
    assert r.status_code == 201, r.text
    p = Page(browser, ops_server).open()
    try:
        pg = p.page
        row = '#alert-list li.alert[data-sensor="TC01"]'
        pg.evaluate("window.__twin.pollSensors()")
        pg.wait_for_function(f"!!document.querySelector('{row}')", timeout=30000)
        assert "stale" in pg.get_attribute(row, "class").split()
        text = pg.inner_text(row)
        went = pg.evaluate("(iso) => { const d = new Date(iso), two = (n) => String(n).padStart(2, '0');"
                           " return two(d.getHours()) + ':' + two(d.getMinutes()); }",
                           (old + timedelta(minutes=15)).isoformat())
        assert re.search(rf"stale since {went} {ZONE}", text), text
        assert "last reading 1" in text and "(ok)" in text, text
    finally:
        p.close()


def test_the_measured_rain_job_row_shows_its_window(browser, ops_server):  # noqa: F811
    from cim.sensors import append_readings  # noqa: F401  (the button needs a stored gauge reading)

    now = datetime.now(timezone.utc).replace(microsecond=0)
    r = httpx.post(ops_server.url + "/api/sensors/readings", json={"readings": [
        {"sensor_id": "RG01", "time": now.isoformat(), "value": 8.0}]})
    assert r.status_code == 201, r.text
    p = Page(browser, ops_server).open()
    start, end = (now - timedelta(hours=2) + timedelta(minutes=5)), now + timedelta(minutes=5)
    _fake_jobs(p, {"id": "fakew", "engine": "flood", "scenario": "base", "status": "done",
                   "summary": {"storm": {"gauges": ["RG01"], "total_mm": 2.0, "unknown_blocks": 0, "step_s": 300.0,
                                         "duration_s": 7200.0, "start": start.isoformat(),
                                         "end": end.isoformat()}}})
    try:
        pg = p.page
        pg.evaluate("window.__twin.pollSensors()")
        pg.wait_for_function("!document.getElementById('run-flood-measured').disabled", timeout=30000)
        pg.click("#run-flood-measured")
        pg.wait_for_function("document.querySelector('#jobs .job') && "
                             "document.querySelector('#jobs .job').innerText.includes('window')", timeout=15000)
        row = pg.inner_text("#jobs .job")
        assert re.search(rf"window \d\d:\d\d {ZONE} to \d\d:\d\d {ZONE}", row), row
    finally:
        p.close()
