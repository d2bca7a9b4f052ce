"""The page in headless Chromium (Debian's chromium driven by Playwright).

Every request the page makes is checked: anything not addressed to the local
server is recorded and aborted, and the tests fail if there was any.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import time
from urllib.parse import urlparse

import numpy as np
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM) or shutil.which("chromium") is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing at /usr/bin/chromium (make test installs it)")
        pytest.skip("no /usr/bin/chromium on this machine")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


# resolves after two animation frames (deck.gl draws in its frame callback)
_NEXT_FRAMES = "() => new Promise((ok) => requestAnimationFrame(() => requestAnimationFrame(() => ok(true))))"
# every map's deck has applied its last layers, has them all loaded and has nothing left to draw
_DRAWN = """() => Object.values(window.__twin.decks).every((d) => !d || (!!d.layerManager
    && !d.layerManager.needsUpdate() && d.layerManager.getLayers().every((l) => l.isLoaded)
    && !d.needsRedraw({clearRedrawFlags: false})))"""


class Page:
    """A page on the live server that refuses (and records) requests to any other host."""

    def __init__(self, browser, server, lang="en") -> None:
        self.server = server
        self.ctx = browser.new_context(viewport={"width": 1400, "height": 860})
        self.ctx.add_init_script(f"localStorage.setItem('twin.lang', '{lang}')")
        self.foreign: list[str] = []
        self.local: list[str] = []
        self.errors: list[str] = []
        host = urlparse(server.url).netloc

        def route(r):
            u = urlparse(r.request.url)
            if u.scheme in ("data", "blob") or u.netloc == host:
                self.local.append(r.request.url)
                r.continue_()
            else:
                self.foreign.append(r.request.url)
                r.abort()

        self.ctx.route("**/*", route)
        self.page = self.ctx.new_page()
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        # requests of the page not yet answered in full (drawn() waits for none); an event stream never ends
        self.inflight: set = set()
        self.page.on("request", lambda r: None if "/events" in r.url else self.inflight.add(r))
        self.page.on("requestfinished", lambda r: self.inflight.discard(r))
        self.page.on("requestfailed", lambda r: self.inflight.discard(r))

    def open(self, timeout=30000):
        self.page.goto(self.server.url + "/")
        self.page.wait_for_function("window.__twin && window.__twin.ready", timeout=timeout)
        self.page.wait_for_function("window.__twin.buildingsLoaded.a > 0", timeout=timeout)
        return self

    def map_pixels(self, side="a") -> np.ndarray:
        from PIL import Image

        shot = self.page.locator(f"#map-{side}").screenshot()
        return np.asarray(Image.open(io.BytesIO(shot)).convert("RGB")).astype(int)

    def settle(self, ms=800):
        """A fixed pause: only where real time must pass (a timer that must not fire, a banner that fades)."""
        self.page.wait_for_timeout(ms)

    def drawn(self, timeout=60000):
        """Wait until the maps show what they were last asked to (instead of a fixed pause before a screenshot or
        a pick): no request of the page in flight, every deck's layers updated and loaded (tiles, bitmaps,
        data) and drawn, and all of it still so a few frames and 150 ms later (an answer's handler may ask for
        more). The timeout is generous: software WebGL on a loaded machine."""
        deadline = time.monotonic() + timeout / 1000

        def left() -> int:
            return max(1000, int((deadline - time.monotonic()) * 1000))

        quiet = 0
        while quiet < 2:
            self.page.wait_for_function(_NEXT_FRAMES, timeout=left())
            while self.inflight:
                if time.monotonic() > deadline:
                    raise AssertionError(f"requests still in flight: {[r.url for r in self.inflight][:5]}")
                self.page.wait_for_timeout(50)
            self.page.wait_for_function(_DRAWN, timeout=left(), polling=50)
            self.page.wait_for_timeout(150)
            quiet = quiet + 1 if not self.inflight and self.page.evaluate(_DRAWN) else 0
        return self

    def close(self):
        assert not self.foreign, f"the page asked other hosts: {self.foreign[:5]}"
        assert not self.errors, f"page errors: {self.errors[:3]}"
        self.ctx.close()


@pytest.fixture(scope="module")
def page(browser, live_server):
    """One page for the module (loading it costs seconds in software GL); tests restore what they toggle."""
    p = Page(browser, live_server).open()
    yield p
    p.close()


def camera(pg) -> dict:
    """The left map's camera: longitude, latitude, zoom, pitch."""
    return pg.evaluate("(() => { const v = window.__twin.decks.a.getViewports()[0];"
                       " return {longitude: v.longitude, latitude: v.latitude, zoom: v.zoom, pitch: v.pitch}; })()")


def set_layers(p: "Page", **visible: bool) -> None:
    for name, on in visible.items():
        (p.page.check if on else p.page.uncheck)(f"#toggle-{name}")


BACKGROUND = np.array([11, 14, 18])  # the map's clear colour (#0b0e12)


def building_pixel(p: Page, side="a"):
    """A screen pixel (x, y) relative to the map div where a building is picked."""
    return p.page.evaluate(f"""() => {{
        const d = window.__twin.decks['{side}'];
        const c = document.getElementById('map-{side}');
        const w = c.clientWidth, h = c.clientHeight;
        for (let y = Math.floor(h * 0.3); y < h * 0.9; y += 17) {{
          for (let x = Math.floor(w * 0.2); x < w * 0.8; x += 17) {{
            const o = d.pickObject({{x, y, radius: 0, layerIds: ['buildings-{side}']}});
            if (o && o.object) return [x, y, o.object.properties.building_id];
          }}
        }}
        return null;
    }}""")


def test_buildings_render_from_local_tiles_within_5_s(page):
    ms = page.page.evaluate("window.__twin.firstBuildingsMs")
    assert ms is not None and ms < 5000, f"first buildings after {ms} ms"
    set_layers(page, hillshade=False, flood=False)
    page.drawn()
    px = page.map_pixels()
    differs = np.abs(px - BACKGROUND).sum(axis=2) > 30
    assert differs.mean() > 0.05, f"only {differs.mean():.3f} of the map differs from the background"
    assert any("/tiles/buildings/" in u for u in page.local)
    assert any(u.endswith("/static/vendor/mvt-worker.js") for u in page.local)  # the MVT worker came from us
    set_layers(page, hillshade=True, flood=True)


def test_click_shows_attributes(page):
    set_layers(page, flood=False)
    page.drawn()
    hit = building_pixel(page)
    assert hit is not None, "no building under any probed pixel"
    x, y, bid = hit
    box = page.page.locator("#map-a").bounding_box()
    page.page.mouse.click(box["x"] + x, box["y"] + y)
    # software WebGL on a loaded 2-core machine: the pick and the attribute fetch took > 20 s once
    page.page.wait_for_function(f"window.__twin.lastPick && window.__twin.lastPick.building_id === '{bid}'", timeout=60000)
    text = page.page.inner_text("#inspect-table")
    assert bid in text and "height_m" in text and "gfa_m2" in text  # full attributes, fetched on click
    set_layers(page, flood=True)


def test_toggle_hides_a_layer(page):
    set_layers(page, flood=False, hillshade=False)
    page.drawn()
    hit = building_pixel(page)
    assert hit is not None
    before = page.map_pixels()
    page.page.uncheck("#toggle-buildings")
    page.drawn()
    after = page.map_pixels()
    assert "buildings-a:hidden" in page.page.evaluate("window.__twin.layerIds.a")
    picked = page.page.evaluate(f"window.__twin.decks.a.pickObject({{x: {hit[0]}, y: {hit[1]}, radius: 0, layerIds: ['buildings-a']}})")
    assert picked is None
    changed = (np.abs(before - after).sum(axis=2) > 30).mean()
    assert changed > 0.05, f"hiding buildings changed only {changed:.3f} of the map"
    set_layers(page, flood=True, hillshade=True, buildings=True)


def test_time_slider_changes_the_flood_layer(page):
    set_layers(page, buildings=False, road_links=False, sensors=False, bim=False, trips=False, crowd=False)
    page.drawn()
    url0 = page.page.evaluate("window.__twin.floodImage.a")
    assert "step=0" in url0
    px0 = page.map_pixels()
    page.page.eval_on_selector("#time-slider", "el => { el.value = 2; el.dispatchEvent(new Event('input')); }")
    page.page.wait_for_function("window.__twin.floodImage.a.includes('step=2')")
    page.page.wait_for_load_state("networkidle")
    page.drawn()
    px2 = page.map_pixels()
    assert "20:00" in page.page.inner_text("#time-label")  # 1200 s
    changed = (np.abs(px0 - px2).sum(axis=2) > 30).mean()
    assert changed > 0.01, f"the flood layer did not change ({changed:.4f})"
    page.page.eval_on_selector("#time-slider", "el => { el.value = 0; el.dispatchEvent(new Event('input')); }")
    set_layers(page, buildings=True, road_links=True, sensors=True, bim=True, trips=True, crowd=True)


def _crowd_on_screen(p: Page):
    """The crowd layer's agents on side a: [lon, lat] and where the map draws each, and which of them a
    pick at that pixel finds (from the rendered picking buffer, so only what was really drawn)."""
    return p.page.evaluate("""() => {
        const d = window.__twin.decks.a;
        const layer = d.props.layers.find((l) => l && l.id === 'crowd-a');
        if (!layer) return null;
        const vp = d.getViewports()[0];
        const c = document.getElementById('map-a');
        return layer.props.data.map((a) => {
          const [x, y] = vp.project(a.position);
          const inside = x >= 0 && y >= 0 && x < c.clientWidth && y < c.clientHeight;
          const o = inside ? d.pickObject({x, y, radius: 2, layerIds: ['crowd-a']}) : null;
          return {id: a.id, position: a.position, inside, picked: !!(o && o.object)};
        });
    }""")


def test_crowd_run_shows_its_agents_moving_on_the_map(page):
    # a crowd run's agents are drawn where they are at the slider's time, and move with it
    labels = page.page.eval_on_selector_all("#series-select option", "os => os.map((o) => o.textContent)")
    idx = next(i for i, s in enumerate(labels) if s.lower().startswith("crowd"))
    page.page.select_option("#series-select", str(idx))
    page.page.wait_for_function("window.__twin.decks.a.props.layers.some((l) => l && l.id === 'crowd-a')")
    lo, hi = (float(page.page.eval_on_selector("#time-slider", f"el => el.{k}")) for k in ("min", "max"))
    assert (lo, hi) == (0.0, 100.0)  # the agents' records: t = 0 ... 100 s
    page.page.evaluate("""() => {  // zoom onto the agents' start
        const d = window.__twin.decks.a;
        const pts = d.props.layers.find((l) => l && l.id === 'crowd-a').props.data;
        const v = Object.assign({}, d.viewState || d.props.viewState, {longitude: pts[10].position[0],
                                 latitude: pts[10].position[1], zoom: 18, pitch: 0, bearing: 0});
        d.setProps({viewState: v});
    }""")
    page.drawn()
    start = _crowd_on_screen(page)
    assert len(start) == 20
    shown = [a for a in start if a["inside"]]
    assert len(shown) >= 10 and all(a["picked"] for a in shown), start
    page.page.eval_on_selector("#time-slider", "el => { el.value = 100; el.dispatchEvent(new Event('input')); }")
    page.drawn()
    end = _crowd_on_screen(page)
    moved = [np.hypot(*(np.subtract(b["position"], a["position"]) * [np.cos(np.radians(a["position"][1])), 1]))
             * 111_320 for a, b in zip(start, end)]
    assert np.allclose(moved, 50.0, rtol=0.02)  # 0.5 m/s for 100 s, east
    assert all(a["picked"] for a in end if a["inside"])
    page.page.eval_on_selector("#time-slider", "el => { el.value = el.min; el.dispatchEvent(new Event('input')); }")
    page.page.select_option("#series-select", "0")


def test_bim_upload_shows_report_and_highlight(page, ifc_path):
    page.page.set_input_files("#bim-file", ifc_path)
    page.page.click("#bim-submit")
    page.page.wait_for_selector("#bim-verdict", timeout=60000)
    assert "Test_box" in page.page.inner_text("#bim-verdict") or page.page.evaluate("window.__twin.bim.building_id")
    assert page.page.locator("#bim-table tr").count() >= 5
    # the columns say what they are; a count is whole (49.00 walls, 1.00 door were shown)
    assert page.page.eval_on_selector_all("#bim-table th", "hs => hs.map((h) => h.textContent)") == [
        "rule", "measured", "limit", ""]
    cells = page.page.eval_on_selector_all("#bim-table td", "ts => ts.map((c) => c.textContent)")
    assert not [c for c in cells if re.fullmatch(r"-?\d+\.00", c)], cells
    # the table fits the side panel (its verdict column was cut off by a long rule name)
    over = page.page.evaluate("""() => { const right = document.getElementById('panel').getBoundingClientRect().right;
        return Array.from(document.querySelectorAll('#bim-table td, #bim-table th'))
          .filter((c) => c.getBoundingClientRect().right > right + 0.5).map((c) => c.textContent); }""")
    assert not over, over
    ids = page.page.evaluate("window.__twin.layerIds.a")
    assert "bim-footprint-a" in ids and "bim-mesh-a" in ids
    page.drawn()  # the camera flies to the building
    o = page.page.evaluate("""() => { const c = document.getElementById('map-a');
        const o = window.__twin.decks.a.pickObject({x: c.clientWidth / 2, y: c.clientHeight / 2, radius: 60,
                                                    layerIds: ['bim-footprint-a', 'bim-mesh-a']});
        return o ? o.layer.id : null; }""")
    assert o in ("bim-footprint-a", "bim-mesh-a"), "the checked building is not on the map at the centre of the view"


def test_language_switch(page):
    assert page.page.inner_text("#panel h3") == "Layers"
    page.page.click("#lang-toggle")
    assert page.page.inner_text("#panel h3") == "图层"
    assert "图层" in page.page.inner_text("#layer-toggles") or "建筑" in page.page.inner_text("#layer-toggles")
    page.page.click("#lang-toggle")
    assert page.page.inner_text("#panel h3") == "Layers"


def test_legend_says_what_the_colours_mean(page):
    """There was no legend: buildings coloured by emergency access on a scenario without an access run were all
    grey, with nothing to say why (nor which colour meant 'lost to the flood'); roads coloured by V/C unexplained."""
    pg = page.page

    def legend(by):
        pg.select_option("#colour-by", by)
        pg.wait_for_function(f"window.__twin.legend && window.__twin.legend.colourBy === {by!r}")
        return pg.evaluate("window.__twin.legend")

    try:
        lg = legend("access")  # the small city's base has no access run
        assert lg["notes"] and "no emergency-access run on this scenario" in lg["notes"][0], lg
        assert "Roads V/C" in lg["items"]  # its traffic run's link loads colour the roads
        assert "no emergency-access run" in pg.inner_text("#legend")
        assert "residential" in legend("use")["items"]
        lg = legend("flood")  # a flood run, but no exposure table: grey, and said so
        assert "no flood exposure" in lg["notes"][0], lg
        assert "building height" in legend("height")["items"] and "≥120 m" in pg.inner_text("#legend")
        pg.click("#lang-toggle")
        pg.wait_for_function("window.__twin.legend.items[0] === '建筑高度'")
        assert "建筑高度" in pg.inner_text("#legend")
        assert "住宅" in legend("use")["items"]
        assert not re.search(r"[A-Za-z]{3,}", pg.inner_text("#legend")), pg.inner_text("#legend")
    finally:
        if pg.evaluate("document.documentElement.lang") != "en":
            pg.click("#lang-toggle")
        pg.select_option("#colour-by", "height")
    # the inspector shows a float without its binary noise (speed_limit_kmh 50.004000000000005)
    assert pg.evaluate("window.__twin.cellText(50.004000000000005)") == "50.004"
    assert pg.evaluate("window.__twin.cellText(2803.6)") == "2803.6"
    assert pg.evaluate("window.__twin.cellText(12)") == "12"


def test_compare_view_shows_two_scenarios(page):
    page.page.check("#compare-toggle")
    page.page.select_option("#scenario-b", "levee")
    page.page.wait_for_function("window.__twin.buildingsLoaded.b > 0", timeout=30000)
    page.drawn()
    assert page.page.locator("#map-b canvas").count() == 1
    assert "levee" in page.page.inner_text("#label-b") and "base" in page.page.inner_text("#label-a")
    assert "/levee/" in page.page.evaluate("window.__twin.floodImage.b")
    assert "/base/" in page.page.evaluate("window.__twin.floodImage.a")
    for side in "ab":
        px = page.map_pixels(side)
        assert (np.abs(px - BACKGROUND).sum(axis=2) > 30).mean() > 0.05
    a, b = page.map_pixels("a"), page.map_pixels("b")
    h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    assert (np.abs(a[:h, :w] - b[:h, :w]).sum(axis=2) > 30).mean() > 0.001  # the two floods differ


def test_token_sign_in_then_map_loads(browser, city):
    """With tokens configured the page asks for one, then loads tiles and bitmaps with it."""
    from cim.store import open_store
    from conftest import LiveServer
    from viewer.auth import create_token

    with open_store(city) as st:
        tok = create_token(st, "viewer", name="browser test")
    with LiveServer(city, prewarm=False) as srv:
        p = Page(browser, srv)
        p.page.goto(srv.url + "/")
        p.page.wait_for_selector("#token-box:not([hidden])", timeout=30000)
        p.page.fill("#token-input", tok)
        p.page.click("#token-save")
        p.page.wait_for_function("window.__twin && window.__twin.ready && window.__twin.buildingsLoaded.a > 0",
                                 timeout=60000)
        assert p.page.inner_text("#who") == "viewer"
        # a viewer may not start runs nor check BIM: no buttons that only answer 403
        assert not p.page.is_visible("#sim-box") and not p.page.is_visible("#run-flood")
        assert not p.page.is_visible("#bim-box") and not p.page.is_visible("#bim-submit")
        p.page.click("#lang-toggle")
        assert p.page.inner_text("#who") == "查看者"  # the role follows the language
        p.errors = [e for e in p.errors if "401" not in e]  # the first, token-less attempt
        p.close()
