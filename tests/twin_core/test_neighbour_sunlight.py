"""A regulator's rule that needs the city: a submitted building must not take the neighbouring homes' sun below
GB 50180-2018's standard (2 h on the Major Cold day, 08:00-16:00 true solar time, ground-floor window sill)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely

from bim_import.samples import BoxBuilding, write_box_building

X, Y = 500000.0, 3390000.0  # the new building's south-west corner (EPSG:4544, about 30.6 N, as Chengdu)


@pytest.fixture
def city(tmp_path):
    """A twin whose buildings layer holds one 20 x 10 m home, 12 m tall, 5 m north of where the new building
    goes (its ground 500 m, as the boxes' 0.00 level), and an office beside it."""
    from cim.store import open_store

    path = str(tmp_path / "c.gpkg")
    st = open_store(path, create=True, crs="EPSG:4544")
    homes = gpd.GeoDataFrame(
        {"building_id": ["H1", "O1"], "height_m": [12.0, 12.0], "use": ["residential", "office"],
         "ground_elev_m": [500.0, 500.0]},
        geometry=[shapely.MultiPolygon([shapely.box(X + 20, Y + 25, X + 40, Y + 35)]),
                  shapely.MultiPolygon([shapely.box(X + 200, Y + 25, X + 220, Y + 35)])], crs="EPSG:4544")
    st.write_layer("buildings", homes)
    st.write_layer("parcels", gpd.GeoDataFrame(
        {"parcel_id": ["P1", "P2", "P3"]}, geometry=[shapely.box(X - 20, Y - 20, X + 80, Y + 22),
                                               shapely.box(X, Y - 320, X + 60, Y - 280),
                                               shapely.box(X + 190, Y, X + 230, Y + 22)], crs="EPSG:4544"))
    yield st
    st.close()


def _check(st, tmp_path, spec):
    from bim_import import check_compliance
    from twin_core.adapters.analysis import COMPLIANCE_EVALUATORS

    path = write_box_building(spec, tmp_path / "new.ifc")
    r = check_compliance(path, {"rules": {"min_neighbour_sunlight_h": 2}}, store=st,
                         evaluators=COMPLIANCE_EVALUATORS)
    return next(x for x in r.results if x.rule == "min_neighbour_sunlight_h"), r


def test_a_tall_wide_block_right_south_of_a_home_takes_its_sun(city, tmp_path):
    # 60 m wide, 30 storeys (90.3 m), 5 m south of the home: seen from the home's south wall it spans more than
    # +-70 degrees of azimuth and rises above 80 degrees, while the Major Cold day's sun stays within about
    # +-62 degrees of south and below 40 degrees: the middle of that wall gets no sun at all (it had 8 h)
    res, report = _check(city, tmp_path, BoxBuilding(60, 20, 30, 3.0, X, Y, use="office"))
    assert not res.passed and not report.passed
    assert res.measured == 0.0 and res.offending == ["H1"]  # the office beside it is no home
    assert "lose it with the new building" in res.note and "GB 50180-2018" in res.note


def test_a_low_block_across_the_street_leaves_the_standard(city, tmp_path):
    # 3 storeys (9.3 m), as wide as the home. 15 m south of it, the block's top is 29 degrees up from the
    # middle of the home's south wall at noon, below the noon sun (39 degrees): no sill loses sun; the least
    # on a sill that had 2 h stays that of the east and west walls, sunny from 08:00 to 12:00 and from 12:00
    # to 16:00 true solar time: 4 h
    res, _ = _check(city, tmp_path, BoxBuilding(20, 10, 3, 3.0, X + 20, Y, use="office"))
    assert res.passed and res.measured == pytest.approx(4.0) and res.offending == []
    assert "0 of them lose it" in res.note
    # 10 m south, its top stands 40 degrees up at noon: the south wall loses its midday sun but keeps the
    # morning's and the afternoon's, over 2 h
    res, _ = _check(city, tmp_path, BoxBuilding(20, 10, 3, 3.0, X + 20, Y + 5, use="office"))
    assert res.passed and 2.0 <= res.measured < 4.0


def test_out_of_reach_or_no_homes_passes_and_without_the_city_the_rule_says_what_it_needs(city, tmp_path):
    from bim_import import check_compliance

    far = BoxBuilding(20, 10, 3, 3.0, X + 20, Y - 300, use="office")  # its longest shadow ~ 50 m
    res, _ = _check(city, tmp_path, far)
    assert res.passed and res.measured is None and "no building within" in res.note and "longest shadow" in res.note
    # right south of the office only: offices are not homes, the standard does not protect them
    res, _ = _check(city, tmp_path, BoxBuilding(20, 10, 3, 3.0, X + 200, Y + 10, use="office"))
    assert res.passed and res.measured is None and "no home" in res.note
    path = write_box_building(far, tmp_path / "far.ifc")
    plain = check_compliance(path, {"rules": {"min_neighbour_sunlight_h": 2}}, store=city)  # no evaluator
    r = plain.results[0]
    assert not r.passed and r.measured is None and "needs the city model" in r.note


def test_twin_check_bim_runs_the_city_rules(city, tmp_path):
    from twin_core.twin import Twin

    path = write_box_building(BoxBuilding(60, 20, 30, 3.0, X, Y, use="office"), tmp_path / "big.ifc")
    city.close()
    with Twin.open(str(tmp_path / "c.gpkg")) as twin:
        r = twin.check_bim(path, {"rules": {"min_neighbour_sunlight_h": 2, "max_height_m": 100}})
    got = {x.rule: x for x in r.results}
    assert got["max_height_m"].passed and not got["min_neighbour_sunlight_h"].passed
    assert np.isclose(got["min_neighbour_sunlight_h"].measured, 0.0)


def test_a_rule_failed_only_by_sills_that_had_less_shows_what_failed(city, tmp_path, monkeypatch):
    """A review saw "measured 2.000 h, limit 2.0 h: FAIL": the figure was the least sun left on the sills that had
    the standard (which passed), while the failure came from a sill that had less and lost more. The figure is
    now the least sun left on a failing sill, and the note says the worst fall. The sun hours are set here: every
    sill keeps 3 h, but the first had 1.5 h and is left 0.5 h."""
    import twin_core.adapters.analysis as analysis

    calls = []

    def hours(pts, **kw):
        h = np.full(len(pts), 3.0)
        h[0] = 1.5 if not calls else 0.5
        calls.append(1)
        return h

    monkeypatch.setattr(analysis, "sunlight_hours", hours)
    res, _ = _check(city, tmp_path, BoxBuilding(20, 10, 3, 3.0, X + 20, Y, use="office"))
    assert len(calls) == 2
    assert not res.passed and res.measured == pytest.approx(0.5) and res.offending == ["H1"]
    assert "0 of them lose it" in res.note and "1 sills that had less lose more (the most: 1.50 h to 0.50 h at " \
        "building H1)" in res.note
