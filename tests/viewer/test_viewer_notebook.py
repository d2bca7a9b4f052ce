"""``twin_core.view.view``: an offline pydeck Deck (local deck.gl bundle, no CDN, no basemap)."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest


@pytest.fixture(scope="module")
def deck_html(city_template):
    from twin_core.twin import Twin
    from twin_core.view import view

    with Twin.open(city_template["path"]) as twin:
        deck = view(twin, layers=("buildings", "road_links", "sensors"))
        return deck, deck.to_html(as_string=True)


def test_view_html_references_nothing_outside(deck_html):
    deck, page = deck_html
    assert "createDeck" in page and "BitmapLayer" in page
    # no script, stylesheet or image from the network: every src/href of the page's own markup is inline
    markup = re.sub(r"<script>.*?</script>", "<script></script>", page, flags=re.S)
    assert "<script src" not in markup and "<link" not in markup
    assert not re.findall(r'(?:src|href)\s*=\s*["\']?https?://', markup)
    assert deck._repr_html_().startswith("<iframe")
    js = deck.to_json()
    assert '"mapStyle": null' in js or '"mapStyle":null' in js or "mapStyle" not in js


def test_view_bad_input(city_template):
    from twin_core.errors import LayerNotFoundError, ParameterError
    from twin_core.twin import Twin
    from twin_core.view import view

    with Twin.open(city_template["path"]) as twin:
        with pytest.raises(LayerNotFoundError, match="no layer"):
            view(twin, layers=("nope",))
        with pytest.raises(ParameterError, match="colour_by"):
            view(twin, colour_by="colour")
        with pytest.raises(ParameterError, match="max_features"):
            view(twin, max_features=10)


@pytest.mark.browser
@pytest.mark.slow
def test_view_renders_offline_in_chromium(deck_html, tmp_path, offline_page):
    """The page draws buildings with every network request refused."""
    from PIL import Image

    _, page_html = deck_html
    path = tmp_path / "view.html"
    path.write_text(page_html, encoding="utf-8")
    with offline_page(path, settle_ms=4000) as (page, asked, errors):
        shot = np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("RGB")).astype(int)
    assert not asked, f"the offline page asked the network for {asked[:5]}"
    assert not errors, errors[:3]
    background = np.array([11, 14, 18])
    assert (np.abs(shot - background).sum(axis=2) > 30).mean() > 0.05


def test_twin_facade_refuses_stores_it_would_misread(city, tmp_path):
    """Twin.create over a twin in another CRS refuses instead of relabelling its data; Twin.open of a store
    that holds no twin says so instead of opening an empty twin with no CRS."""
    from cim.store import open_store
    from twin_core.errors import CRSError, StoreConnectionError
    from twin_core.twin import Twin

    with pytest.raises(CRSError, match="already holds a twin in EPSG:4544"):
        Twin.create(city, crs="EPSG:32648")
    with Twin.open(city) as twin:
        assert twin.crs == "EPSG:4544"
    empty = str(tmp_path / "empty.gpkg")
    open_store(empty, create=True).close()
    with pytest.raises(StoreConnectionError, match="holds no twin"):
        Twin.open(empty)


def test_twin_view_takes_one_layer_name_and_a_closed_twin_still_shows(city_template):
    from twin_core.twin import Twin

    twin = Twin.open(city_template["path"])
    deck = twin.view(layers="sensors", hillshade=False)  # a name, not a sequence of its letters
    assert [layer.id for layer in deck.layers] == ["sensors"]
    twin.close()
    assert "closed" in repr(twin)


def test_view_takes_one_layer_name_and_names_a_missing_colour_column(city_template, tmp_path):
    """view(twin, layers="sensors") shows that layer (not the letters s, e, n ...); colour_by="use" on buildings
    without a ``use`` column is a FieldError naming the column and the columns there are, not a bare KeyError."""
    import geopandas as gpd
    from shapely.geometry import box

    from twin_core.errors import FieldError
    from twin_core.twin import Twin
    from twin_core.view import view

    with Twin.open(city_template["path"]) as twin:
        deck = view(twin, layers="sensors", hillshade=False)
        assert [layer.id for layer in deck.layers] == ["sensors"]
    with Twin.create(str(tmp_path / "nouse.gpkg"), crs="EPSG:4544") as twin:
        b = gpd.GeoDataFrame({"building_id": ["b1"], "height_m": [12.0]},
                             geometry=[box(500000, 3390000, 500020, 3390020)], crs="EPSG:4544")
        twin.store.write_layer("buildings", b)
        with pytest.raises(FieldError, match=r"'use' column in buildings; its columns are \['building_id', 'height_m'"):
            view(twin, layers="buildings", colour_by="use", hillshade=False)
        assert [layer.id for layer in view(twin, "buildings", hillshade=False).layers] == ["buildings"]
