"""The alert list (aria-live) is updated in place in headless Chromium (as in test_viewer_browser.py): a poll that
brings the same alerts leaves their rows untouched, so a screen reader does not read the list out again; a
changed alert's row is rewritten where it stands, a new one added and a gone one removed, and nothing else."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest

from conftest import private_server
from test_viewer_browser import Page, browser  # noqa: F401  (the module's Chromium fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

RG, RL = '#alert-list li.alert[data-sensor="RG01"]', '#alert-list li.alert[data-sensor="RL01"]'
# every change to the list and its rows, as [what, sensor of the row it is in]
WATCH = """() => {
  window.__alertChanges = [];
  const box = document.getElementById("alert-list");
  new MutationObserver((ms) => ms.forEach((m) => {
    const li = m.target.closest ? m.target.closest("li") : m.target.parentElement.closest("li");
    window.__alertChanges.push([m.type, li ? li.dataset.sensor || li.id : "list",
      Array.from(m.addedNodes).map((n) => n.dataset ? n.dataset.sensor || n.id || n.nodeName : "#text")]);
  })).observe(box, {childList: true, subtree: true, characterData: true, attributes: true});
}"""


@pytest.fixture(scope="module")
def alerts_server(city_template, tmp_path_factory):
    # stored readings only: the list starts empty
    with private_server(city_template, tmp_path_factory, "viewer_alerts_in_place", simulated_sensors=False) as (srv, _):
        yield srv


def _post(srv, ago_s: float = 0.0, **values) -> None:
    now = (datetime.now(timezone.utc) - timedelta(seconds=ago_s)).isoformat(timespec="seconds")
    r = httpx.post(srv.url + "/api/sensors/readings",
                   json={"readings": [{"sensor_id": k, "time": now, "value": v} for k, v in values.items()]})
    assert r.status_code == 201, r.text


def _poll(pg) -> list:
    """Poll the sensors now (the page would in 10 s) and wait for it; the changes to the list since the last."""
    pg.evaluate("window.__twin.pollSensors()")
    return pg.evaluate("window.__alertChanges.splice(0)")


def test_unchanged_alerts_are_not_reinserted(browser, alerts_server):  # noqa: F811
    p = Page(browser, alerts_server).open()
    try:
        pg = p.page
        pg.wait_for_selector("#alerts-none", timeout=30000)
        pg.wait_for_function("window.__twin.pollSensors", timeout=30000)
        pg.evaluate(WATCH)
        assert _poll(pg) == []  # "no alerts" again: the line is left be
        _post(alerts_server, ago_s=120, RL01=2.0)  # a warning since 2 min
        _post(alerts_server, ago_s=60, RG01=80.0)  # an alarm since 1 min: listed first (newest first)
        changes = _poll(pg)
        assert pg.evaluate("window.__twin.alerts") == ["RG01", "RL01"]
        assert pg.query_selector("#alerts-none") is None and changes
        pg.evaluate(f"document.querySelector('{RG}').__mark = 'rg'; document.querySelector('{RL}').__mark = 'rl'")
        for _ in range(2):  # two polls that bring the same alerts: nothing in the list is touched
            assert _poll(pg) == []
        assert pg.evaluate(f"[document.querySelector('{RG}').__mark, document.querySelector('{RL}').__mark]") == [
            "rg", "rl"]
        # a new value of one: only its row changes, in place (the same node); the other is not touched
        _post(alerts_server, RG01=90.0)  # the same run in alarm: still since 1 min, still first
        changes = _poll(pg)
        assert changes and {who for _, who, _ in changes} == {"RG01"}, changes
        assert not any("RG01" in added for kind, who, added in changes if who == "list"), changes
        assert pg.evaluate(f"document.querySelector('{RG}').__mark") == "rg"
        assert "90 mm/h" in pg.inner_text(RG)
        # one back to normal: its row goes, the other stays as it was
        _post(alerts_server, RL01=0.5)
        changes = _poll(pg)
        assert changes == [["childList", "list", []]], changes  # one removal
        assert pg.query_selector(RL) is None and pg.evaluate(f"document.querySelector('{RG}').__mark") == "rg"
    finally:
        p.close()
