"""The command centre's alert list in headless Chromium (as in test_viewer_browser.py): a reading in alarm posted
to the server shows up in the list with the sensor's next poll, and clicking it flies the map to the sensor."""

from __future__ import annotations

from datetime import datetime, timezone

import httpx
import pytest

from conftest import private_server
from test_viewer_browser import Page, browser, camera  # noqa: F401  (the module's Chromium fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def alert_server(city_template, tmp_path_factory):
    # stored readings only: the list starts empty
    with private_server(city_template, tmp_path_factory, "viewer_alerts", simulated_sensors=False) as (srv, _):
        yield srv


def test_a_sensor_in_alarm_is_listed_and_a_click_flies_to_it(browser, alert_server):  # noqa: F811
    p = Page(browser, alert_server).open()
    try:
        pg = p.page
        pg.wait_for_selector("#alerts-none", timeout=30000)
        assert pg.inner_text("#alerts-none") == "No alerts: every sensor reads normal"
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        r = httpx.post(alert_server.url + "/api/sensors/readings",
                       json={"readings": [{"sensor_id": "RG01", "time": now, "value": 80.0}]})
        assert r.status_code == 201, r.text
        alert = httpx.get(alert_server.url + "/api/sensors/alerts").json()["alerts"][0]
        row = '#alert-list li.alert[data-sensor="RG01"]'
        pg.wait_for_selector(row, timeout=30000)  # the page polls the sensors every 10 s
        assert "alarm" in pg.get_attribute(row, "class").split()
        text = pg.inner_text(row)
        assert "Rain gauge 1" in text and "alarm" in text and "80 mm/h" in text and "threshold 50" in text
        assert "since" in text
        before = camera(pg)
        assert abs(before["longitude"] - alert["lon"]) + abs(before["latitude"] - alert["lat"]) > 1e-4
        pg.click(row)
        pg.wait_for_function(
            f"""(() => {{ const v = window.__twin.decks.a.getViewports()[0];
                return Math.abs(v.longitude - {alert["lon"]}) < 1e-5 && Math.abs(v.latitude - {alert["lat"]}) < 1e-5
                       && v.zoom >= 16; }})()""", timeout=30000)
        assert pg.evaluate("window.__twin.flyTo.sensor_id") == "RG01"
        pg.wait_for_function("window.__twin.lastPick && window.__twin.lastPick.sensor_id === 'RG01'", timeout=30000)
        # the list speaks the page's language
        pg.click("#lang-toggle")
        pg.wait_for_function(f"document.querySelector('{row}').textContent.includes('报警')")
        assert "始于" in pg.inner_text(row)
        pg.click("#lang-toggle")
        # back to normal: the next poll empties the list
        later = datetime.now(timezone.utc).isoformat(timespec="seconds")
        r = httpx.post(alert_server.url + "/api/sensors/readings",
                       json={"readings": [{"sensor_id": "RG01", "time": later, "value": 1.0}]})
        assert r.status_code == 201, r.text
        pg.evaluate("window.__twin.pollSensors()")  # the page's next poll, now (the first above came by itself)
        pg.wait_for_selector("#alerts-none", timeout=30000)
        assert not any("alerts" in u and "127.0.0.1" not in u for u in p.local)
    finally:
        p.close()
