"""A regulator checks a model that does not say where it stands in the city, in headless Chromium: the refusal
stays beside the form with what to do, 'Pick site' and a click on the map place the model, and the check runs there.
"""

from __future__ import annotations


import numpy as np
import pytest

from conftest import private_server
from test_viewer_browser import Page, browser  # noqa: F401  (the module's Chromium fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def site_server(city_template, tmp_path_factory):
    with private_server(city_template, tmp_path_factory, "viewer_bim_site") as (srv, path):
        yield srv, path


@pytest.fixture(scope="module")
def far_ifc(tmp_path_factory) -> str:
    """A box whose own georeference puts it 80 km from the sample city."""
    from bim_import.samples import BoxBuilding, write_box_building

    return str(write_box_building(BoxBuilding(20, 10, 3, 3.0, 500000.0, 3390000.0, name="far"),
                                  tmp_path_factory.mktemp("far") / "far.ifc"))


def _parcel_site(path: str) -> tuple[float, float]:
    """lon/lat in the largest parcel, where the 20 m x 10 m box fits."""
    from cim.store import open_store
    from viewer.geo import transformer

    s = open_store(path)
    try:
        parcels = s.read_layer("parcels")
        p = parcels.geometry[parcels.geometry.area.idxmax()].representative_point()
        return transformer(s.crs, "EPSG:4326").transform(p.x, p.y)
    finally:
        s.close()


def test_pick_the_site_on_the_map_then_check(browser, site_server, far_ifc):  # noqa: F811
    srv, path = site_server
    p = Page(browser, srv).open()
    try:
        pg = p.page
        pg.set_input_files("#bim-file", far_ifc)
        pg.click("#bim-submit")
        pg.wait_for_selector("#bim-error", timeout=60000)
        err = pg.inner_text("#bim-report")
        assert "stands on no parcel" in err and "Pick site" in err, err
        assert "click where the building stands" in err  # the page's own hint, in the page's language
        assert pg.inner_text("#bim-site") == "site: from the model"
        assert not pg.is_visible("#bim-rotation") and not pg.is_visible("#bim-site-clear")  # no site, no rotation
        assert pg.evaluate("""() => { const r = document.getElementById('bim-error').getBoundingClientRect();
            return r.top >= 0 && r.bottom <= window.innerHeight; }""")  # scrolled into view: the panel is long

        lon, lat = _parcel_site(path)
        pg.evaluate(f"""() => {{  // top down over the parcel, so that a click lands where it is drawn
            const d = window.__twin.decks.a;
            d.setProps({{viewState: Object.assign({{}}, d.viewState || d.props.viewState,
                        {{longitude: {lon}, latitude: {lat}, zoom: 18, pitch: 0, bearing: 0}})}}); }}""")
        p.drawn()
        pg.click("#bim-pick")
        assert pg.inner_text("#bim-site") == "click where the building stands…"
        box = pg.locator("#map-a").bounding_box()
        px, py = pg.evaluate(f"window.__twin.decks.a.getViewports()[0].project([{lon}, {lat}])")
        pg.mouse.click(box["x"] + px, box["y"] + py)
        pg.wait_for_function("window.__twin.bimSite", timeout=10000)
        site = pg.evaluate("window.__twin.bimSite")
        d_m = np.hypot((site[0] - lon) * 111_320 * np.cos(np.radians(lat)), (site[1] - lat) * 110_540)
        assert d_m < 3, (site, lon, lat)
        assert pg.inner_text("#bim-site").startswith("site: ")
        assert pg.is_visible("#bim-rotation") and pg.is_visible("#bim-site-clear")
        assert "bim-site-a" in pg.evaluate("window.__twin.layerIds.a")
        assert pg.inner_text("#inspect-body") == "Click a feature on the map."  # the click placed, not inspected

        pg.click("#bim-submit")
        pg.wait_for_selector("#bim-verdict", timeout=60000)
        assert pg.locator("#bim-error").count() == 0
        r = pg.evaluate("""async () => { const r = await fetch('/api/bim/checks?limit=1'); return r.json(); }""")
        assert r and r[0]["parcel_id"], r
        o = pg.evaluate("window.__twin.decks.a.props.layers.find((l) => l && l.id === 'bim-footprint-a').props.data")
        ring = np.asarray(o["features"][0]["geometry"]["coordinates"][0], dtype=float).reshape(-1, 2)[:-1]
        c = ring.mean(axis=0)
        d_m = np.hypot((c[0] - site[0]) * 111_320 * np.cos(np.radians(lat)), (c[1] - site[1]) * 110_540)
        assert d_m < 15, (c, site)  # the box's middle is 11 m from its origin, the picked point

        pg.click("#bim-site-clear")
        assert pg.inner_text("#bim-site") == "site: from the model"
        assert "bim-site-a" not in pg.evaluate("window.__twin.layerIds.a")
    finally:
        p.close()


def test_homes_a_building_would_take_below_the_sunlight_standard_turn_violet(browser, site_server, tmp_path):  # noqa: F811
    """A 60 m block submitted on the parcel just south of a home (its own georeference places it there): the
    residential R2 rules include the sunlight standard (GB 50180-2018), and the homes that fall below it are
    listed beside the verdict and drawn violet on the map."""
    import shapely

    from bim_import.samples import BoxBuilding, write_box_building
    from cim.store import open_store

    srv, path = site_server
    with open_store(path) as s:
        b, parcels = s.read_layer("buildings"), s.read_layer("parcels")
        dem = s.read_raster("dem")
    homes = b[b["use"] == "residential"]
    spot = None
    for geom in homes.geometry:  # a parcel point 25-45 m south of a home, the box's origin 30 m west of it
        c = geom.centroid
        for dy in (25.0, 35.0, 45.0):
            pt = shapely.Point(c.x - 15, geom.bounds[1] - dy)
            if parcels.contains(pt).any():
                spot = (pt.x, pt.y - 20)
                break
        if spot:
            break
    assert spot, "no parcel south of a home in the sample city"
    z = float(np.nanmedian(dem.data))
    ifc = write_box_building(BoxBuilding(30, 20, 20, 3.0, spot[0], spot[1], orthogonal_height=z, name="tower"),
                             tmp_path / "tower.ifc")
    p = Page(browser, srv).open()
    try:
        pg = p.page
        pg.select_option("#bim-ruleset", "residential_r2")
        pg.set_input_files("#bim-file", str(ifc))
        pg.click("#bim-submit")
        pg.wait_for_selector("#bim-verdict", timeout=90000)
        shaded = pg.evaluate("window.__twin.bim.shaded")
        assert shaded, pg.inner_text("#bim-report")
        assert "below the sunlight standard" in pg.inner_text("#bim-shaded") and shaded[0] in pg.inner_text("#bim-shaded")
        row = [r for r in pg.eval_on_selector_all("#bim-table tr", "rs => rs.map((r) => r.innerText)")
               if "min_neighbour_sunlight_h" in r]
        assert row and "✗" in row[0]
        colour = pg.evaluate(f"""() => window.__twin.decks.a.props.layers.find((l) => l && l.id === 'buildings-a')
            .props.getFillColor({{properties: {{building_id: {shaded[0]!r}, height_m: 10}}}})""")
        assert colour == [190, 70, 230, 255]
    finally:
        p.close()
