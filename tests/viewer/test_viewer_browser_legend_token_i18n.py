"""The one map's legend, token box and accessible names (headless Chromium, as in test_viewer_browser.py).

Each test pins a defect seen in the page: the legend named closed roads on any scenario but the base, even one
without a closed road; the token box stayed open after a good sign-in; aria-labels and tooltips stayed English
in Chinese mode.
"""

from __future__ import annotations

import re

import pytest

from conftest import LiveServer, private_server, save_flood_closed_traffic_run
from test_viewer_browser import Page, browser  # noqa: F401  (the module's Chromium fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def legend_server(city_template, tmp_path_factory):
    """The base's newest traffic run has every link closed by flood water over [600, 1200) s (none closed for
    good), with trips over 0 ... 1800 s; scenario "shut" closes a road; "levee" (from the template) closes none."""
    from twin_core.twin import Twin

    with private_server(city_template, tmp_path_factory, "viewer_legend") as (srv, path):
        with Twin.open(path) as twin:
            g = save_flood_closed_traffic_run(twin).geometry.values[0]
            shut = twin.scenarios.create("shut", "one road closed")
            assert shut.close_roads(g.interpolate(0.5, normalized=True).buffer(1.0))
        yield srv


def _items(p: Page) -> list[str]:
    return p.page.evaluate("window.__twin.legend.items")


def _wait_items(p: Page, label: str, present: bool) -> None:
    p.page.wait_for_function(f"window.__twin.legend && window.__twin.legend.items.includes({label!r}) === "
                             f"{'true' if present else 'false'}", timeout=20000)


def _slide(p: Page, value: float) -> None:
    p.page.eval_on_selector("#time-slider", f"el => {{ el.value = {value}; el.dispatchEvent(new Event('input')); }}")
    p.settle(300)


def test_legend_names_closed_roads_only_where_there_are_some(browser, legend_server):  # noqa: F811
    p = Page(browser, legend_server).open()
    try:
        pg = p.page
        pg.wait_for_load_state("networkidle")
        p.settle(500)
        # the base: its traffic run closed no road for good, and at the flood's clock no road is flood-closed
        items = _items(p)
        assert "closed" not in items and "closed by flood water" not in items, items
        # on the trips' clock the flood closes every road over [600, 1200) s: named only while it does
        labels = pg.eval_on_selector_all("#series-select option", "os => os.map((o) => o.textContent)")
        pg.select_option("#series-select", str(next(i for i, s in enumerate(labels) if s.lower().startswith("vehicle"))))
        _slide(p, 300)
        assert "closed by flood water" not in _items(p), _items(p)
        _slide(p, 900)
        assert "closed by flood water" in _items(p), _items(p)
        _slide(p, 1500)
        assert "closed by flood water" not in _items(p), _items(p)
        # a scenario with a closed road names it; one without (a levee) does not
        pg.select_option("#scenario-a", "shut")
        _wait_items(p, "closed", True)
        pg.select_option("#scenario-a", "levee")
        _wait_items(p, "closed", False)
        # compare: named while one of the two shown closes a road
        pg.check("#compare-toggle")
        pg.select_option("#scenario-b", "shut")
        _wait_items(p, "closed", True)
        pg.uncheck("#compare-toggle")
        _wait_items(p, "closed", False)
    finally:
        p.close()


def test_sign_in_collapses_the_token_box_and_a_refused_token_keeps_it_open(browser, city):  # noqa: F811
    from cim.store import open_store
    from viewer.auth import create_token

    with open_store(city) as st:
        tok = create_token(st, "viewer", name="token box test")
    with LiveServer(city, prewarm=False) as srv:
        p = Page(browser, srv)
        pg = p.page
        try:
            pg.goto(srv.url + "/")
            pg.wait_for_selector("#token-box:not([hidden])", timeout=30000)
            assert pg.is_visible("#token-input") and pg.is_visible("#token-save")
            assert not pg.is_visible("#token-change")
            # a wrong token: the box stays open, with the reason beside it
            pg.fill("#token-input", "rt_not_a_token")
            pg.click("#token-save")
            pg.wait_for_selector("#token-error:not([hidden])", timeout=30000)
            assert "401" in pg.inner_text("#token-error")
            assert pg.is_visible("#token-input") and pg.is_visible("#token-save") and not pg.is_visible("#token-change")
            # the right one: the map loads and the box folds into one line naming the role
            pg.fill("#token-input", tok)
            pg.click("#token-save")
            pg.wait_for_function("window.__twin && window.__twin.ready && window.__twin.buildingsLoaded.a > 0",
                                 timeout=60000)
            assert pg.is_visible("#token-change")
            assert pg.inner_text("#token-change") == "signed in as viewer · change token"
            assert not pg.is_visible("#token-input") and not pg.is_visible("#token-save")
            assert not pg.is_visible("#token-error")
            pg.click("#lang-toggle")
            assert pg.inner_text("#token-change") == "已登录：查看者 · 更换令牌"
            pg.click("#lang-toggle")
            # a click opens the box again, to change the token
            pg.click("#token-change")
            assert pg.is_visible("#token-input") and pg.is_visible("#token-save") and not pg.is_visible("#token-change")
            assert pg.evaluate("document.activeElement && document.activeElement.id") == "token-input"
        finally:
            p.errors = [e for e in p.errors if "401" not in e]  # the refused attempts
            p.close()


ACCESSIBLE = """() => Array.from(document.querySelectorAll('[aria-label], [title]'))
    // a scenario's own name (an option's, a map label's tooltip) is data, not interface text
    .filter((el) => el.tagName !== 'OPTION' && !el.classList.contains('map-label'))
    .map((el) => [el.id || el.className || el.tagName, el.getAttribute('aria-label') || '', el.getAttribute('title') || ''])
    .filter((x) => x[1] || x[2])"""


def test_accessible_names_and_tooltips_follow_the_language(browser, live_server):  # noqa: F811
    p = Page(browser, live_server).open()
    pg = p.page
    try:
        pg.wait_for_function("window.__twin.alerts !== undefined")
        en = {k: (a, t) for k, a, t in pg.evaluate(ACCESSIBLE)}
        assert en["scenario-a"][0] == "Scenario" and en["time-slider"][0] == "Time" and en["play"][0] == "play"
        pg.click("#lang-toggle")
        pg.wait_for_function("document.documentElement.lang === 'zh-CN'")
        zh = {k: (a, t) for k, a, t in pg.evaluate(ACCESSIBLE)}
        assert set(zh) == set(en)
        for k, (aria, title) in zh.items():
            text = re.sub(r"IFC|BIM|（base）", "", aria + " " + title)  # names, not words: the base scenario's
            assert not re.search(r"[A-Za-z]{3,}", text), (k, aria, title)
        assert zh["scenario-a"][0] == "情景" and zh["time-slider"][0] == "时间" and zh["series-select"][0] == "时序结果"
        assert zh["lang-toggle"][1] == "切换为英文界面" and zh["bim-file"][0] == "IFC 文件"
        # the play button's name follows both its state and the language
        assert zh["play"][0] == "播放"
        pg.click("#play")
        assert pg.get_attribute("#play", "aria-label") == "暂停"
        # (the flood's three steps play out in about a second, then it stops by itself)
        pg.wait_for_function("document.getElementById('play').getAttribute('aria-label') === '播放'", timeout=20000)
        pg.click("#lang-toggle")
        pg.wait_for_function("document.documentElement.lang === 'en'")
        assert {k: (a, t) for k, a, t in pg.evaluate(ACCESSIBLE)} == en
    finally:
        p.close()
