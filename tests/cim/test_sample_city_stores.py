"""The real sample city round-trips through both stores unchanged (issue 2, done-when 2)."""

from __future__ import annotations

import numpy as np

import sample_city
from cim.schema import FEATURE_CLASSES, conform
from cim.store import open_store

from .test_store_contract import assert_frames_equal


def test_sample_city_round_trips(store_target, small_city):
    sample_city.build_into(store_target, city=small_city)
    with open_store(store_target) as store:
        assert sorted(store.list_layers()) == sorted(FEATURE_CLASSES)
        for name in FEATURE_CLASSES:
            want = conform(small_city[name], name).reset_index(drop=True)
            got = conform(store.read_layer(name), name)
            assert_frames_equal(want, got)
        for name in ("dem", "manning"):
            want, got = small_city[name], store.read_raster(name)
            np.testing.assert_array_equal(got.data, want.data.astype("float32"))
            assert tuple(got.transform) == tuple(want.transform)
        meta = store.get_meta()
        assert meta["crs"] == "EPSG:4544" and meta["timezone"] == "Asia/Shanghai"
        assert len(meta["extent"]) == 4 and meta["name"]
