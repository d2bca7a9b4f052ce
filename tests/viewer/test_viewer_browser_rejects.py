"""The map's folded box of rejected readings in headless Chromium (as in test_viewer_browser.py): the latest
messages a feed refused, newest first, each with its reason, in both languages."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from conftest import private_server
from test_viewer_browser import Page, browser  # noqa: F401  (the module's Chromium fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def rejects_server(city_template, tmp_path_factory):
    with private_server(city_template, tmp_path_factory, "viewer_rejects", simulated_sensors=False) as (srv, _):
        yield srv


def _reject(srv, rows) -> None:
    from cim.sensors import append_rejects

    st = srv.server.config.app.state.twin_state
    with st.lock:
        append_rejects(st.store, rows)


def test_the_latest_rejects_are_listed_with_their_reason(browser, rejects_server):  # noqa: F811
    p = Page(browser, rejects_server).open()
    try:
        pg = p.page
        pg.wait_for_function("window.__twin.rejects !== undefined && window.__twin.pollSensors", timeout=30000)
        assert pg.is_visible("#rejects-box") and pg.inner_text("#rejects-count") == "(0)"
        assert pg.get_attribute("#rejects-box", "open") is None  # folded
        at = datetime.now(timezone.utc)
        _reject(rejects_server, [
            {"topic": "rongtwin/sensors/RG01", "payload": b"1e308", "reason": "row 0: value 1e+308 mm/h is above 500 mm/h",
             "received_at": at},
            {"topic": "rongtwin/sensors/RL01", "payload": b'{"value": 1, "value": 2}',
             "reason": "the key 'value' appears more than once", "received_at": at},
            {"topic": "rongtwin/sensors/RG01", "payload": b"<b>not json</b>", "reason": "the payload is not JSON",
             "received_at": at}])
        pg.evaluate("window.__twin.pollSensors()")
        pg.wait_for_function("window.__twin.rejects.length === 3", timeout=30000)
        assert pg.inner_text("#rejects-count") == "(3)"
        pg.click("#rejects-box summary")  # unfold
        rows = pg.query_selector_all("#reject-list li.reject")
        assert len(rows) == 3
        first = rows[0].inner_text()
        assert "the payload is not JSON" in first and "<b>not json</b>" in first  # newest first, as text
        assert "above 500 mm/h" in rows[2].inner_text() and "rongtwin/sensors/RG01" in rows[2].inner_text()
        assert pg.query_selector("#reject-list b") is None  # a payload is never markup
        assert pg.inner_text("#rejects-box summary").startswith("Rejected readings")
        pg.click("#lang-toggle")
        pg.wait_for_function("document.querySelector('#rejects-box summary').textContent.includes('被拒收')")
        pg.click("#lang-toggle")
        # more than are shown: the box says so, and where the rest are
        _reject(rejects_server, [{"topic": "t", "payload": str(k), "reason": f"r{k}", "received_at": at}
                                 for k in range(25)])
        pg.evaluate("window.__twin.pollSensors()")
        pg.wait_for_function("window.__twin.rejects[0] === 'r24'", timeout=30000)
        assert pg.inner_text("#rejects-count") == "(28)"
        assert len(pg.query_selector_all("#reject-list li.reject")) == 20
        assert "the latest 20 of 28" in pg.inner_text("#reject-list li.none")
    finally:
        p.close()
