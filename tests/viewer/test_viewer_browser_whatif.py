"""A planner makes a what-if from the map, in headless Chromium: a new scenario (a bad name is refused with the
server's reason beside the form), an area drawn over roads closes them (the scenario's road tiles show them
closed), a levee line raises the ground by its height, Esc cancels a drawing, and a viewer sees no tools.
"""

from __future__ import annotations

from urllib.parse import quote

import numpy as np
import pytest

from conftest import LiveServer, private_server
from test_viewer_browser import Page, browser  # noqa: F401  (the module's Chromium fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NAME = "暴雨50年"
M_LON, M_LAT = 111_320 * np.cos(np.radians(30.63)), 110_540  # metres per degree in the sample city


@pytest.fixture(scope="module")
def whatif_server(city_template, tmp_path_factory):
    with private_server(city_template, tmp_path_factory, "viewer_whatif") as (srv, path):
        yield srv, path


def _a_road(path: str) -> tuple[str, float, float]:
    """A road link near the middle of the city, at least 60 m long: its id and midpoint (lon, lat)."""
    from cim.store import open_store
    from viewer.geo import transformer

    s = open_store(path)
    try:
        links = s.read_layer("road_links")
        x0, y0, x1, y1 = links.total_bounds
        mid = links.geometry.interpolate(0.5, normalized=True)
        d = np.hypot(mid.x - (x0 + x1) / 2, mid.y - (y0 + y1) / 2) + np.where(links.geometry.length > 60, 0, 1e9)
        i = int(np.argmin(d.to_numpy()))
        lon, lat = transformer(s.crs, "EPSG:4326").transform(mid.x.iloc[i], mid.y.iloc[i])
        return str(links["link_id"].iloc[i]), lon, lat
    finally:
        s.close()


def _look_at(p: Page, lon: float, lat: float, zoom: float = 18) -> None:
    """Top down over (lon, lat), so that a click lands where the ground is drawn."""
    p.page.evaluate(f"""() => {{ const d = window.__twin.decks.a;
        const v = Object.assign({{}}, d.viewState || d.props.viewState,
                                {{longitude: {lon}, latitude: {lat}, zoom: {zoom}, pitch: 0, bearing: 0}});
        d.setProps({{viewState: v}}); d.props.onViewStateChange({{viewState: v}}); }}""")
    p.drawn()


def _pixel(p: Page, lon: float, lat: float) -> tuple[float, float]:
    box = p.page.locator("#map-a").bounding_box()
    x, y = p.page.evaluate(f"window.__twin.decks.a.getViewports()[0].project([{lon}, {lat}])")
    return box["x"] + x, box["y"] + y


def _click_map(p: Page, lon: float, lat: float, points_after: int) -> None:
    p.page.mouse.click(*_pixel(p, lon, lat))
    p.page.wait_for_function(f"window.__twin.whatif && window.__twin.whatif.points === {points_after}", timeout=15000)


def _api(p: Page, path: str):
    return p.page.evaluate(f"fetch({path!r}).then((r) => r.json())")


def test_planner_makes_a_what_if_on_the_map(browser, whatif_server):  # noqa: F811
    srv, path = whatif_server
    link, lon, lat = _a_road(path)
    p = Page(browser, srv).open()
    try:
        pg = p.page
        pg.wait_for_function("window.__twin.whatifShown === true")
        assert pg.is_visible("#whatif-box")
        # the base is read-only: the tools are off, with the reason
        assert pg.is_disabled("#whatif-draw-area") and pg.is_disabled("#whatif-draw-levee")
        assert "cannot be edited" in pg.inner_text("#whatif-target")

        # a bad name: the server's reason stays beside the form, and nothing is created
        pg.fill("#whatif-name", "bad name!")
        pg.click("#whatif-create")
        pg.wait_for_selector("#whatif-create-error", timeout=15000)
        assert pg.is_visible("#error")
        pg.wait_for_function("document.getElementById('error').hidden", timeout=30000)  # the banner fades (6 s);
        # the reason beside the form does not
        err = pg.inner_text("#whatif-create-error")
        assert "is not valid" in err and "U+0021 EXCLAMATION MARK" in err, err
        assert pg.is_visible("#whatif-create-error")
        assert [r["name"] for r in _api(p, "/api/scenarios")] == ["levee"]
        assert pg.input_value("#scenario-a") == "base"

        # a good one (any script), from the scenario shown: it becomes the shown scenario
        pg.fill("#whatif-name", NAME)
        pg.click("#whatif-create")
        pg.wait_for_function(f"document.getElementById('scenario-a').value === {NAME!r}", timeout=15000)
        assert pg.locator("#whatif-create-error").count() == 0
        assert {r["name"]: r["parent"] for r in _api(p, "/api/scenarios")}[NAME] == "base"
        assert NAME in pg.inner_text("#label-a")
        pg.wait_for_selector("#whatif-edits li.none")
        assert "no edits yet" in pg.inner_text("#whatif-edits")
        assert not pg.is_disabled("#whatif-draw-area")

        # close roads: an area drawn around the link's middle (the clicks place corners, they inspect nothing)
        _look_at(p, lon, lat)
        pg.click("#whatif-draw-area")
        assert pg.is_visible("#whatif-drawing") and pg.is_disabled("#whatif-finish")
        d = 15.0
        corners = [(lon - d / M_LON, lat - d / M_LAT), (lon + d / M_LON, lat - d / M_LAT),
                   (lon + d / M_LON, lat + d / M_LAT)]
        for i, (x, y) in enumerate(corners):
            _click_map(p, x, y, i + 1)
        assert "whatif-draw-fill-a" in pg.evaluate("window.__twin.layerIds.a")  # drawn live
        # the last corner with a double-click, which finishes the area
        pg.mouse.dblclick(*_pixel(p, lon - d / M_LON, lat + d / M_LAT))
        pg.wait_for_selector("#whatif-edits li[data-op=close_roads]", timeout=30000)
        assert pg.inner_text("#inspect-body") == "Click a feature on the map."
        assert not pg.is_visible("#whatif-drawing")
        last = pg.evaluate("window.__twin.whatif.last")
        assert last["op"] == "close_roads" and link in last["result"], last
        assert "roads closed" in pg.inner_text("#whatif-report")
        row = pg.inner_text("#whatif-edits li[data-op=close_roads]")
        assert f"{len(last['result'])} roads closed" in row and "close roads" in row, row
        edits = _api(p, f"/api/scenarios/{quote(NAME)}")["edits"]
        closed = {e["feature_id"] for e in edits if e["op"] == "modify" and '"capacity_vph": 0.0' in e["attrs"]}
        assert closed == set(last["result"])
        assert "whatif-shapes-a" in pg.evaluate("window.__twin.layerIds.a")  # the area stays outlined

        # the scenario's road tiles, reloaded, carry the closure: the link is drawn closed
        src = pg.evaluate("window.__twin.decks.a.props.layers.find((l) => l && l.id === 'road_links-a').props.data")
        assert "capacity_vph" in src and "&v=" in src, src
        x, y = pg.evaluate(f"window.__twin.decks.a.getViewports()[0].project([{lon}, {lat}])")
        pg.wait_for_function(f"""() => {{ const o = window.__twin.decks.a.pickObject({{x: {x}, y: {y}, radius: 4,
            layerIds: ['road_links-a']}}); return o && o.object && o.object.properties.capacity_vph === 0; }}""",
                             timeout=30000)
        colour = pg.evaluate(f"""() => {{ const d = window.__twin.decks.a;
            const o = d.pickObject({{x: {x}, y: {y}, radius: 4, layerIds: ['road_links-a']}});
            return d.props.layers.find((l) => l && l.id === 'road_links-a').props.getLineColor(o.object); }}""")
        assert colour == [70, 70, 80, 255]  # the map's colour of a closed road

        # Esc cancels a drawing: nothing is posted
        n_edits = len(edits)
        pg.click("#whatif-draw-area")
        _click_map(p, lon + 40 / M_LON, lat + 40 / M_LAT, 1)
        pg.keyboard.press("Escape")
        pg.wait_for_function("window.__twin.whatif.drawing === null")
        assert "whatif-draw-points-a" not in pg.evaluate("window.__twin.layerIds.a")
        assert len(_api(p, f"/api/scenarios/{quote(NAME)}")["edits"]) == n_edits

        # a levee: a line 60 m long, 2 m high, ended with Enter; then the ground along it stands 2 m higher
        llon, llat = lon, lat + 60 / M_LAT
        pg.fill("#whatif-levee-height", "2")
        pg.click("#whatif-draw-levee")
        _click_map(p, llon - 30 / M_LON, llat, 1)
        _click_map(p, llon + 30 / M_LON, llat, 2)
        pg.keyboard.press("Enter")
        pg.wait_for_selector("#whatif-edits li[data-op=raise_ground]", timeout=30000)
        row = pg.inner_text("#whatif-edits li[data-op=raise_ground]")
        assert "raise ground" in row and "dem" in row and "+2 m" in row, row
        assert [e["op"] for e in pg.evaluate("window.__twin.whatifEdits")] == ["close_roads", "raise_ground"]
        assert pg.evaluate("window.__twin.whatifEdits")[1]["delta"] == 2
        assert [e["op"] for e in _api(p, f"/api/scenarios/{quote(NAME)}")["edits"]][-1] == "patch_raster"
        q = f"/api/rasters/dem/value?lon={llon}&lat={llat}"
        base = _api(p, q)["value"]
        raised = _api(p, q + f"&scenario={quote(NAME)}")["value"]
        assert raised - base == pytest.approx(2.0, abs=1e-3)
        off = f"/api/rasters/dem/value?lon={llon}&lat={llat + 30 / M_LAT}"  # 30 m off the line: as it was
        assert _api(p, off + f"&scenario={quote(NAME)}")["value"] == pytest.approx(_api(p, off)["value"], abs=1e-6)
        pg.wait_for_function("(window.__twin.hillshadeImage.a || '').includes('&v=')", timeout=30000)  # as of the levee

        # the edits follow the shown scenario; the base shows none and keeps its tools off
        pg.select_option("#scenario-a", "base")
        pg.wait_for_function("window.__twin.whatifEdits && window.__twin.whatifEdits.length === 0")
        assert pg.is_disabled("#whatif-draw-levee")
        pg.screenshot(path="/tmp/whatif_base.png")
        pg.select_option("#scenario-a", NAME)
        pg.wait_for_function("window.__twin.whatifEdits && window.__twin.whatifEdits.length === 2")
        pg.screenshot(path="/tmp/whatif_scenario.png")
        pg.locator("#whatif-box").screenshot(path="/tmp/whatif_panel.png")

        # the page in Chinese
        pg.click("#lang-toggle")
        assert pg.inner_text("#whatif-box h3") == "情景推演"
        assert "封闭道路" in pg.inner_text("#whatif-edits")
        pg.click("#lang-toggle")

        # deleting it asks first: dismissed keeps it, accepted removes it and shows the base
        assert not pg.is_disabled("#whatif-delete")
        pg.once("dialog", lambda d: d.dismiss())
        pg.click("#whatif-delete")
        p.settle(300)
        assert NAME in [x["name"] for x in _api(p, "/api/scenarios")]
        pg.once("dialog", lambda d: d.accept())
        pg.click("#whatif-delete")
        pg.wait_for_function(f"window.__twin.whatifDeleted === {NAME!r}", timeout=30000)
        assert NAME not in [x["name"] for x in _api(p, "/api/scenarios")]
        assert pg.input_value("#scenario-a") == "base" and pg.is_disabled("#whatif-delete")
        assert NAME not in pg.eval_on_selector_all("#scenario-a option", "os => os.map((o) => o.value)")
    finally:
        p.close()


def test_a_viewer_sees_no_what_if_tools(browser, city):  # noqa: F811
    from cim.store import open_store
    from viewer.auth import create_token

    with open_store(city) as st:
        tok = create_token(st, "viewer", name="whatif test")
    with LiveServer(city, prewarm=False) as srv:
        p = Page(browser, srv)
        p.ctx.add_init_script(f"localStorage.setItem('twin.token', {tok!r})")
        p.open(timeout=60000)
        try:
            assert p.page.inner_text("#who") == "viewer"
            assert p.page.evaluate("window.__twin.whatifShown") is False
            assert not p.page.is_visible("#whatif-box")
            assert not p.page.is_visible("#whatif-draw-area")
        finally:
            p.close()


def _call(srv, method: str, path: str, body=None):
    """Another planner's request (not the page's): the server's JSON answer."""
    import json
    import urllib.request

    req = urllib.request.Request(srv.url + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def test_undo_and_edits_made_in_another_browser(browser, whatif_server):  # noqa: F811
    # a wrong closure could only be taken back by deleting the whole scenario; and a second screen of the
    # command centre kept showing a scenario as it was before another planner's edit, until reloaded
    srv, path = whatif_server
    link, lon, lat = _a_road(path)
    name = "撤销test"
    p = Page(browser, srv).open()
    try:
        pg = p.page
        pg.wait_for_function("window.__twin.whatifShown === true")
        assert not pg.is_visible("#whatif-undo")  # the base: nothing to undo
        # another planner creates a scenario: this page lists it at its next look
        _call(srv, "POST", "/api/scenarios", {"name": name})
        pg.evaluate("window.__twin.syncNow()")
        assert name in pg.eval_on_selector_all("#scenario-a option", "os => os.map((o) => o.value)")
        pg.select_option("#scenario-a", name)
        pg.wait_for_function("window.__twin.whatifEdits && window.__twin.whatifEdits.length === 0")
        assert pg.is_visible("#whatif-undo") and pg.is_disabled("#whatif-undo")
        _look_at(p, lon, lat)

        # the other planner closes roads round the link: this page redraws the scenario's roads, says so
        d = 15.0 / M_LAT
        ring = [[lon - d, lat - d], [lon + d, lat - d], [lon + d, lat + d], [lon - d, lat + d], [lon - d, lat - d]]
        closed = _call(srv, "POST", f"/api/scenarios/{quote(name)}/edits",
                       {"op": "close_roads", "polygon": {"type": "Polygon", "coordinates": [ring]}})["result"]
        assert link in closed
        syncs = pg.evaluate("window.__twin.syncs || 0")
        pg.evaluate("window.__twin.syncNow()")
        pg.wait_for_function(f"window.__twin.syncs > {syncs}", timeout=30000)
        assert pg.evaluate("window.__twin.sync.changed") == [name]
        assert "changed elsewhere" in pg.inner_text("#sync-note")
        pg.wait_for_function("window.__twin.whatifEdits && window.__twin.whatifEdits.length === 1", timeout=30000)
        src = pg.evaluate("window.__twin.decks.a.props.layers.find((l) => l && l.id === 'road_links-a').props.data")
        assert "&v=" in src, src  # new tile URLs: the closure is drawn
        x, y = pg.evaluate(f"window.__twin.decks.a.getViewports()[0].project([{lon}, {lat}])")
        pick = f"""() => {{ const o = window.__twin.decks.a.pickObject({{x: {x}, y: {y}, radius: 4,
            layerIds: ['road_links-a']}}); return o && o.object && o.object.properties.capacity_vph; }}"""
        pg.wait_for_function(f"({pick})() === 0", timeout=30000)

        # this planner undoes it: the roads open again, the list is empty, the button is off
        assert not pg.is_disabled("#whatif-undo")
        pg.click("#whatif-undo")
        pg.wait_for_function("window.__twin.whatifUndo && window.__twin.whatifUndo.undone", timeout=30000)
        u = pg.evaluate("window.__twin.whatifUndo")
        assert u["undone"]["op"] == "modify" and u["undone"]["rows"] == len(closed) and u["edits"] == 0
        assert "undone" in pg.inner_text("#whatif-report") and "roads closed" in pg.inner_text("#whatif-report")
        assert _call(srv, "GET", f"/api/scenarios/{quote(name)}")["edits"] == []
        pg.wait_for_function("window.__twin.whatifEdits && window.__twin.whatifEdits.length === 0", timeout=30000)
        assert pg.is_disabled("#whatif-undo")
        pg.wait_for_function(f"({pick})() !== 0", timeout=30000)  # drawn open again (the base's capacity)
        syncs = pg.evaluate("window.__twin.syncs || 0")
        pg.evaluate("window.__twin.syncNow()")
        pg.wait_for_function(f"window.__twin.syncs > {syncs}", timeout=30000)
        assert pg.evaluate("window.__twin.sync.changed") == [name]  # still the other planner's note: own undo adds none

        # the other planner runs a short storm on it: the run shows up in this page's time bar, announced
        import time

        job = _call(srv, "POST", "/api/jobs", {"engine": "flood", "scenario": name,
                                              "params": {"storm": "2y", "duration": "10min"}})
        for _ in range(600):
            st = _call(srv, "GET", f"/api/jobs/{job['id']}")
            if st["status"] in ("done", "failed"):
                break
            time.sleep(0.2)
        assert st["status"] == "done", st
        syncs = pg.evaluate("window.__twin.syncs || 0")
        pg.evaluate("window.__twin.syncNow()")
        pg.wait_for_function(f"window.__twin.syncs > {syncs}", timeout=30000)
        assert pg.evaluate("window.__twin.newRuns") == [{"scenario": name, "run": job["run"]}]
        assert "new runs made elsewhere" in pg.inner_text("#sync-note") and job["run"] in pg.inner_text("#sync-note")
        assert any("Flood depth" in o and name in o for o in
                   pg.eval_on_selector_all("#series-select option", "os => os.map((o) => o.textContent)"))

        # the other planner deletes the scenario: this page falls back to the base and says why
        _call(srv, "DELETE", f"/api/scenarios/{quote(name)}")
        pg.evaluate("window.__twin.syncNow()")
        pg.wait_for_function("document.getElementById('scenario-a').value === 'base'", timeout=30000)
        assert "deleted elsewhere" in pg.inner_text("#sync-note")
        assert name not in pg.eval_on_selector_all("#scenario-a option", "os => os.map((o) => o.value)")
        assert not p.errors and not p.foreign
    finally:
        p.close()
