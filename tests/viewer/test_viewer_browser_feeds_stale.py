"""The command centre's alert box in headless Chromium (as in test_viewer_browser.py): a banner above the alerts
while a sensor feed needs a person (silent, refused, disconnected, not running), in both languages, and nothing
when every feed is live, when there is none, or when the role may not read the feeds (403); and a reading older
than its kind allows shown as "stale since HH:MM", greyed, not as a live alarm."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest

from conftest import private_server
from test_viewer_browser import Page, browser  # noqa: F401  (the module's Chromium fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

BANNER = "#feed-banner"


@pytest.fixture(scope="module")
def feed_server(city_template, tmp_path_factory):
    # stored readings only: the alert list starts empty
    with private_server(city_template, tmp_path_factory, "viewer_feeds_stale", simulated_sensors=False) as (srv, _):
        yield srv


def _write_feed(srv, feed: str, state: str, **extra) -> None:
    from cim.sensors import write_feed_status

    st = srv.server.config.app.state.twin_state
    now = datetime.now(timezone.utc)
    row = {"feed": feed, "broker": "127.0.0.1:1883", "topic": "rongtwin/sensors/+", "state": state, "detail": "",
           "since": now, "last_message_at": now, "received": 1, "stored": 1, "rejected": 0, "updated_at": now,
           "heartbeat_s": 10.0, **extra}
    with st.lock:
        write_feed_status(st.store, row)


def _poll(pg, until: str) -> None:
    """Ask the page to poll the sensors now (not in 10 s), until ``until`` holds."""
    pg.evaluate("window.__twin.pollSensors()")
    pg.wait_for_function(until, timeout=30000)


def _hm(pg, iso: str) -> str:
    """HH:MM of an instant on the browser's clock."""
    return pg.evaluate("(iso) => { const d = new Date(iso), two = (n) => String(n).padStart(2, '0');"
                       " return two(d.getHours()) + ':' + two(d.getMinutes()); }", iso)


def test_a_banner_names_each_feed_in_trouble_and_goes_when_all_are_live(browser, feed_server):  # noqa: F811
    p = Page(browser, feed_server).open()
    try:
        pg = p.page
        pg.wait_for_function("window.__twin.feeds !== undefined && window.__twin.pollSensors", timeout=30000)
        assert pg.evaluate("window.__twin.feeds.count") == 0
        assert pg.is_hidden(BANNER)  # no feed: nothing to say
        _write_feed(feed_server, "broker-a rongtwin/sensors/+", "live")
        _poll(pg, "window.__twin.feeds.count === 1")
        assert pg.is_hidden(BANNER)  # live: nothing to say
        now = datetime.now(timezone.utc)
        detail = "no message on 'rongtwin/sensors/+' at 127.0.0.1:1883 for 10 min: check with mosquitto_sub"
        _write_feed(feed_server, "broker-b rongtwin/sensors/+", "silent", detail=detail,
                    since=now - timedelta(minutes=2), last_message_at=now - timedelta(minutes=10))
        _poll(pg, "window.__twin.feeds.problems === 1")
        pg.wait_for_selector(BANNER, state="visible", timeout=30000)
        row = f'{BANNER} .feed-problem[data-state="silent"]'
        text = pg.inner_text(row)
        assert "Sensor feed silent for 10 min — readings may be stale" in text
        assert "broker-b rongtwin/sensors/+" in text and detail in text
        assert pg.locator(f"{BANNER} .feed-problem").count() == 1  # the live feed is not named
        # the banner stands above the alert list
        assert pg.evaluate(f"!!(document.querySelector('{BANNER}').compareDocumentPosition("
                           "document.getElementById('alert-list')) & Node.DOCUMENT_POSITION_FOLLOWING)")
        # in Chinese too
        pg.click("#lang-toggle")
        pg.wait_for_function(f"document.querySelector('{row}').textContent.includes('传感器数据源已静默 10 分钟')")
        assert "读数可能已过时" in pg.inner_text(row)
        pg.click("#lang-toggle")
        pg.wait_for_function(f"document.querySelector('{row}').textContent.includes('Sensor feed silent')")
        # two in trouble: both named; a feed stopped on purpose is not
        _write_feed(feed_server, "broker-c rongtwin/sensors/+", "refused", detail="the broker refused the subscription")
        _write_feed(feed_server, "broker-d rongtwin/sensors/+", "stopped")
        _poll(pg, "window.__twin.feeds.problems === 2")
        pg.wait_for_function(f"document.querySelectorAll('{BANNER} .feed-problem').length === 2", timeout=30000)
        assert "Sensor feed refused by the broker" in pg.inner_text(f'{BANNER} .feed-problem[data-state="refused"]')
        assert not pg.locator(f'{BANNER} .feed-problem[data-state="stopped"]').count()
        # all live again (or stopped): the banner goes
        _write_feed(feed_server, "broker-b rongtwin/sensors/+", "live")
        _write_feed(feed_server, "broker-c rongtwin/sensors/+", "live")
        _poll(pg, "window.__twin.feeds.problems === 0")
        pg.wait_for_selector(BANNER, state="hidden", timeout=30000)
    finally:
        p.close()


def test_a_sensor_whose_last_reading_is_old_shows_stale_since_not_alarm(browser, feed_server):  # noqa: F811
    p = Page(browser, feed_server).open()
    try:
        pg = p.page
        pg.wait_for_function("window.__twin.pollSensors && window.__twin.alerts !== undefined", timeout=30000)
        old = (datetime.now(timezone.utc) - timedelta(minutes=30)).isoformat(timespec="seconds")
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        r = httpx.post(feed_server.url + "/api/sensors/readings", json={"readings": [
            {"sensor_id": "RG01", "time": old, "value": 80.0},   # in alarm, then went offline
            {"sensor_id": "RL01", "time": now, "value": 2.0}]})  # a live warning
        assert r.status_code == 201, r.text
        rg_alert = next(a for a in httpx.get(feed_server.url + "/api/sensors/alerts").json()["alerts"]
                        if a["sensor_id"] == "RG01")
        # fix_ops: "stale since" is when it became stale (the reading's time + 15 min), not the reading's time
        stored_time, went_stale = rg_alert["time"], rg_alert["stale_since"]
        assert datetime.fromisoformat(went_stale) - datetime.fromisoformat(stored_time) == timedelta(minutes=15)
        rg, rl = '#alert-list li.alert[data-sensor="RG01"]', '#alert-list li.alert[data-sensor="RL01"]'
        _poll(pg, f"!!document.querySelector('{rg}') && !!document.querySelector('{rl}')")
        classes = pg.get_attribute(rg, "class").split()
        assert "stale" in classes and "alarm" not in classes  # greyed, not a live alarm
        text = pg.inner_text(rg)
        assert f"stale since {_hm(pg, went_stale)}" in text, text
        assert f"at {_hm(pg, stored_time)}" in text, text  # the last reading's own time
        assert "last reading 80 mm/h" in text and "no reading for over 15 min" in text
        assert "warn" in pg.get_attribute(rl, "class").split()
        assert pg.evaluate("window.__twin.alerts") == ["RL01", "RG01"]  # the live one first
        assert pg.evaluate("window.__twin.staleSensors") == ["RG01"]  # greyed on the map as well
        # its colour on the map is the stale grey, not the alarm red
        fill = pg.evaluate("""(() => { const l = window.__twin.decks.a.props.layers.find((x) => x && x.id === 'sensors-a');
            const f = l.props.data.features.find((x) => x.properties.sensor_id === 'RG01');
            return Array.from(l.props.getFillColor(f)); })()""")
        assert fill[:3] != [255, 60, 60] and fill[0] == fill[1] - 6 == fill[2] - 14, fill
        pg.click("#lang-toggle")
        pg.wait_for_function(f"document.querySelector('{rg}').textContent.includes('数据过时，始于')")
        pg.click("#lang-toggle")
        # a fresh reading in alarm: a live alarm again
        r = httpx.post(feed_server.url + "/api/sensors/readings", json={"readings": [
            {"sensor_id": "RG01", "time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "value": 70.0}]})
        assert r.status_code == 201, r.text
        _poll(pg, f"document.querySelector('{rg}') && document.querySelector('{rg}').classList.contains('alarm')")
        assert "stale" not in pg.get_attribute(rg, "class").split()
        # a second on at least: another value at the instant of the 70.0 would be a conflict, refused
        later = (datetime.now(timezone.utc) + timedelta(seconds=1)).isoformat(timespec="seconds")
        r = httpx.post(feed_server.url + "/api/sensors/readings", json={"readings": [
            {"sensor_id": "RG01", "time": later, "value": 0.0}, {"sensor_id": "RL01", "time": later, "value": 0.0}]})
        assert r.status_code == 201, r.text
    finally:
        p.close()


def test_a_role_that_may_not_read_the_feeds_gets_no_banner_and_no_error(browser, feed_server):  # noqa: F811
    """The feeds answer 403 (as they do to a role without the right to read): the page shows no banner, no
    error, and its alerts as before, though a feed is in trouble."""
    _write_feed(feed_server, "broker-e rongtwin/sensors/+", "silent", detail="nothing for 10 min")
    assert httpx.get(feed_server.url + "/api/sensors/feeds").json()["problems"] >= 1
    p = Page(browser, feed_server)
    asked = []

    def forbid(route):
        asked.append(route.request.url)
        route.fulfill(status=403, content_type="application/json",
                      body='{"detail": "your role (sensor) may not do this: it needs the right \'read\'"}')

    p.ctx.route("**/api/sensors/feeds", forbid)
    p.open()
    try:
        pg = p.page
        pg.wait_for_function("window.__twin.pollSensors && 'feeds' in window.__twin", timeout=30000)
        _poll(pg, "window.__twin.feeds === null")
        assert asked
        assert pg.is_hidden(BANNER)
        assert pg.is_hidden("#error")
        pg.wait_for_selector("#alerts-none", timeout=30000)  # the alerts are shown as before
    finally:
        _write_feed(feed_server, "broker-e rongtwin/sensors/+", "stopped")
        p.close()
