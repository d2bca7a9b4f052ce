"""Deleting an imported BIM building deletes its feature from the ``buildings`` layer, not a rewrite of the layer
(a city of 100k buildings was read and written whole for one), on both stores (the ``store`` fixture)."""

from __future__ import annotations

import time

import pytest

from .test_import_fixbimin import _anchor, _box, _city_buildings, _counts


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return _box(tmp_path_factory.mktemp("storedel") / "two.ifc", 2)


def test_delete_building_deletes_its_feature_without_rewriting_the_layer(model, store, monkeypatch):
    from bim_import.importer import delete_building, import_ifc

    store.write_layer("buildings", _city_buildings(5))
    b = import_ifc(model, store, anchor=_anchor(0.0))
    bid = b.building_id
    full = _counts(store, bid)
    assert full["feature"] == 1 and full["elements"] > 0
    before = store.layer_written("buildings")
    time.sleep(0.02)  # a GeoPackage keeps last_change to the millisecond

    def no_rewrite(name, gdf, mode="replace"):
        raise AssertionError(f"delete_building rewrote layer {name!r} ({len(gdf)} features, mode={mode!r})")

    monkeypatch.setattr(store, "write_layer", no_rewrite)
    r = delete_building(store, bid)
    monkeypatch.undo()
    assert (r["feature"], r["elements"], r["summary"], r["blobs"]) == (1, full["elements"], True, full["blobs"])
    assert _counts(store, bid) == {"feature": 0, "elements": 0, "summary": 0, "blobs": 0}
    left = store.read_layer("buildings")
    assert left["building_id"].tolist() == [f"C{i}" for i in range(5)]  # the city's own, in their order
    assert left.geometry.equals(_city_buildings(5).geometry)
    assert store.layer_written("buildings") > before  # runs that read the layer before are marked stale
    assert store.layer_info("buildings")["bounds"] == list(_city_buildings(5).total_bounds)


def test_a_failed_delete_keeps_the_building(model, store, monkeypatch):
    """The feature's delete is in delete_building's transaction: a failure after it keeps the building."""
    from bim_import.importer import delete_building, import_ifc

    store.write_layer("buildings", _city_buildings(2))
    bid = import_ifc(model, store, anchor=_anchor(0.0)).building_id
    full = _counts(store, bid)

    def lost(key):
        raise OSError("connection lost")

    monkeypatch.setattr(store, "delete_blob", lost)
    with pytest.raises(OSError, match="connection lost"):
        delete_building(store, bid)
    monkeypatch.undo()
    assert _counts(store, bid) == full
    assert sorted(store.read_layer("buildings")["building_id"]) == ["C0", "C1", bid]
