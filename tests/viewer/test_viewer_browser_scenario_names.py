"""The page with a scenario named in Chinese (headless Chromium, as in test_viewer_browser.py): it is offered,
shown in the label, and its flood result loads through percent-encoded URLs the page builds."""

from __future__ import annotations

import shutil
from urllib.parse import quote

import numpy as np
import pytest

from conftest import LiveServer
from test_viewer_browser import Page, browser  # noqa: F401  (the module's Chromium fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FLOOD = "暴雨50年"


@pytest.fixture(scope="module")
def cn_server(city_template, tmp_path_factory):
    from twin_core.twin import Twin

    path = str(tmp_path_factory.mktemp("viewer_cn") / "city.gpkg")
    shutil.copy(city_template["path"], path)
    with Twin.open(path) as twin:
        twin.scenarios.create(FLOOD, "五十年一遇暴雨")
        dem = twin.raster("dem")
        rr, cc = np.mgrid[0:dem.shape[0], 0:dem.shape[1]]
        pond = np.clip(1.0 - np.hypot(rr - dem.shape[0] / 2, cc - dem.shape[1] / 2) / 40.0, 0, None)
        twin.save_result(FLOOD, "r1", "flood_depth", np.stack([pond * 0.2, pond]).astype("float32"),
                         meta={"times_s": [0, 600], "grid": "dem"})
    with LiveServer(path) as srv:
        yield srv


def test_a_chinese_scenario_shows_its_flood(browser, cn_server):  # noqa: F811
    p = Page(browser, cn_server).open()
    try:
        pg = p.page
        assert FLOOD in pg.eval_on_selector_all("#scenario-a option", "os => os.map((o) => o.value)")
        pg.select_option("#scenario-a", FLOOD)
        pg.wait_for_function(f"document.getElementById('label-a').textContent.includes('{FLOOD}')")
        pg.wait_for_function("document.querySelectorAll('#series-select option').length === 1")
        assert pg.eval_on_selector_all("#series-select option", "os => os.map((o) => o.textContent)") == \
            [f"Flood depth · {FLOOD}"]
        pg.wait_for_function("window.__twin.floodImage.a", timeout=30000)
        img = pg.evaluate("window.__twin.floodImage.a")
        assert img.startswith(f"/api/results/{quote(FLOOD)}/r1/flood_depth/image.png?"), img
        p.drawn()
        got = [u for u in p.local if "/api/results/" in u]
        assert any(f"/api/results/{quote(FLOOD)}/r1/flood_depth/meta" in u for u in got), got
        assert any(f"/api/results/{quote(FLOOD)}/r1/flood_depth/image.png" in u for u in got), got
        assert any(f"scenario={quote(FLOOD)}" in u for u in p.local if "/tiles/buildings/" in u)
    finally:
        p.close()
