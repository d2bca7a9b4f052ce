"""Shared camera bookmarks in headless Chromium: a view saved on one screen shows on another (it used to stay
in the browser that saved it), flies the camera there, and can be removed."""

from __future__ import annotations


import pytest

from conftest import private_server
from test_viewer_browser import Page, browser, camera  # noqa: F401  (the module's Chromium fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def bm_server(city_template, tmp_path_factory):
    with private_server(city_template, tmp_path_factory, "viewer_bookmarks") as (srv, _):
        yield srv


def test_a_view_saved_on_one_screen_shows_on_another(browser, bm_server):  # noqa: F811
    one = Page(browser, bm_server).open()
    two = None
    try:
        pg = one.page
        pg.wait_for_function("window.__twin.bookmarks && window.__twin.bookmarks.length === 2")  # the built-in two
        start = camera(pg)
        target = dict(start, longitude=start["longitude"] + 0.002, latitude=start["latitude"] + 0.001,
                      zoom=start["zoom"] + 1.5, pitch=30)
        pg.evaluate(f"""() => {{ const d = window.__twin.decks.a;
            d.setProps({{viewState: Object.assign({{}}, d.viewState || d.props.viewState, {target})}});
            d.props.onViewStateChange({{viewState: Object.assign({{}}, d.viewState || d.props.viewState, {target})}}); }}""")
        one.settle(500)
        pg.fill("#bookmark-name", "station forecourt")
        pg.click("#bookmark-save")
        pg.wait_for_function("window.__twin.bookmarks.some((b) => b.name === 'station forecourt' && b.shared)")
        assert pg.input_value("#bookmark-name") == ""

        two = Page(browser, bm_server).open()  # another screen, its own localStorage
        p2 = two.page
        p2.wait_for_function("window.__twin.bookmarks.some((b) => b.name === 'station forecourt')", timeout=30000)
        names = [b["name"] for b in p2.evaluate("window.__twin.bookmarks")]
        i = names.index("station forecourt")
        p2.click(f"#bookmark-{i}")
        # the camera flies (800 ms of transition, longer in software GL on a loaded machine): wait for it to land
        # rather than a fixed time, which once caught it 6e-6 degrees short
        p2.wait_for_function(
            "(() => { const v = window.__twin.decks.a.getViewports()[0];"
            f" return Math.abs(v.longitude - {target['longitude']!r}) < 1e-6"
            f" && Math.abs(v.latitude - {target['latitude']!r}) < 1e-6; }})()", timeout=20000)
        v = camera(p2)
        assert v["longitude"] == pytest.approx(target["longitude"], abs=1e-6)
        assert v["latitude"] == pytest.approx(target["latitude"], abs=1e-6)
        assert v["zoom"] == pytest.approx(target["zoom"], abs=1e-3) and v["pitch"] == pytest.approx(30, abs=1e-3)

        p2.click("#bookmarks button[aria-label='remove station forecourt']")
        p2.wait_for_function("!window.__twin.bookmarks.some((b) => b.name === 'station forecourt')")
        assert p2.evaluate("fetch('/api/bookmarks').then((r) => r.json())") == []
    finally:
        one.close()
        if two is not None:
            two.close()
