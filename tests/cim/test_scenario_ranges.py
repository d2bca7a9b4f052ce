"""Scenario edits keep to the layer's plausible ranges, as imports do (a modify edit recorded height_m 1e300)."""

from __future__ import annotations

import pandas as pd
import pytest
import shapely

from twin_core.errors import ScenarioError
from twin_core.twin import Twin


def test_edits_outside_the_plausible_range_are_refused_and_nothing_is_recorded(small_city_gpkg):
    with Twin.open(small_city_gpkg) as twin:
        s = twin.scenarios.create("tall")
        b = twin.layer("buildings")
        bid = b["building_id"].iloc[0]
        with pytest.raises(ScenarioError, match=r"field 'height_m' of 'buildings' must lie from 0 to 1,000 m "
                                                r"\(.*\); feature .* gives 1e\+300\. Give a value in that range"):
            s.modify_features("buildings", pd.DataFrame({"building_id": [bid], "height_m": [1e300]}))
        with pytest.raises(ScenarioError, match="field 'storeys' of 'buildings' must lie from 0 to 200"):
            s.modify_features("buildings", pd.DataFrame({"building_id": [bid], "storeys": [-3]}))
        new = b.iloc[[0]].copy()
        new["building_id"] = "new-1"
        new["height_m"] = -5.0
        new["geometry"] = [shapely.affinity.translate(new.geometry.iloc[0], 3, 3)]
        with pytest.raises(ScenarioError, match="field 'height_m' of 'buildings' must lie"):
            s.add_features("buildings", new)
        assert s.edits().empty if hasattr(s.edits(), "empty") else not s.edits()
        # in range, and null, are fine
        s.modify_features("buildings", pd.DataFrame({"building_id": [bid], "height_m": [828.0]}))
        s.modify_features("buildings", pd.DataFrame({"building_id": [bid], "storeys": [None]}))
        got = twin.layer("buildings", scenario="tall").set_index("building_id").loc[bid]
        assert got["height_m"] == 828.0 and pd.isna(got["storeys"])
