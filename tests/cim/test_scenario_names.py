"""Scenario names in any script (the planners name scenarios in Chinese), on both stores, with their results.

A name is letters and digits of any script, '_' and '-', starting with a letter or digit, at most 63
characters, kept in Unicode NFC; whitespace, punctuation and invisible characters are refused, and
'base' / 'diff' are reserved in any case (``str.casefold``, so 'baſe' with a long s is 'base').
"""

from __future__ import annotations

import unicodedata

import numpy as np
import pandas as pd
import pytest

from cim.results import delete_results, list_results, load_result, result_ref, save_result
from cim.scenario import check_scenario_name
from twin_core.errors import ScenarioError
from twin_core.twin import Twin

from .test_store_contract import synthetic_layer

NFC_CAFE = "caf\u00e9_plan"  # é as one letter
NFD_CAFE = "cafe\u0301_plan"  # e and a combining acute accent: the same name typed another way


@pytest.fixture
def twin(store_target):
    t = Twin.create(store_target, name="names")
    t.store.write_layer("buildings", synthetic_layer("buildings", n=5))
    yield t
    t.close()


@pytest.mark.parametrize("name", ["暴雨50年", "二环路封闭", "levee_2m", "a-b_c", "五十年一遇", "Ливень", "x" * 63,
                                  "雨" * 63, "５０年", NFC_CAFE])
def test_names_in_any_script_are_accepted(name):
    assert check_scenario_name(name) == name


@pytest.mark.parametrize("name, words", [
    ("暴雨 50年", "U+0020 SPACE"),
    ("暴雨\u300050年", "U+3000 IDEOGRAPHIC SPACE"),
    ("暴雨\t50", "U+0009"),
    ("暴雨\n", "U+000A"),
    ("a\u200db", "U+200D ZERO WIDTH JOINER"),
    ("a\u202eb", "U+202E RIGHT-TO-LEFT OVERRIDE"),
    ("\ufeffa", "U+FEFF ZERO WIDTH NO-BREAK SPACE"),
    ("a\u00adb", "U+00AD SOFT HYPHEN"),
    ("road:closed", "U+003A COLON"),
    ("a/b", "U+002F SOLIDUS"),
    ("v1.2", "U+002E FULL STOP"),
    ("暴雨，50年", "U+FF0C FULLWIDTH COMMA"),
    ("_hidden", "starts with '_'"),
    ("-x", "starts with '-'"),
    ("", "empty"),
    ("x" * 64, "64 characters"),
    ("雨" * 64, "64 characters"),
])
def test_bad_names_are_refused_saying_why_and_what_a_name_is(name, words):
    with pytest.raises(ScenarioError, match="not valid") as e:
        check_scenario_name(name)
    msg = str(e.value)
    assert words in msg and "letters and digits of any script" in msg and "at most 63" in msg, msg


@pytest.mark.parametrize("name", ["base", "Base", "BASE", "diff", "DIFF", "ba\u017fe", "di\ufb00", "Diff"])
def test_reserved_names_are_refused_in_any_case_also_non_ascii_case_folds(name):
    # 'baſe' (long s) and 'diﬀ' (ff ligature) case-fold to 'base' and 'diff'
    with pytest.raises(ScenarioError, match="is reserved.*choose another name"):
        check_scenario_name(name)


def test_the_base_itself_may_key_results_but_not_its_other_spellings():
    assert check_scenario_name("base", allow_base=True) == "base"
    for name in ("Base", "diff"):
        with pytest.raises(ScenarioError, match="reserved"):
            check_scenario_name(name, allow_base=True)


def test_a_chinese_scenario_on_both_stores(twin):
    import geopandas as gpd
    import shapely

    s = twin.scenarios.create("暴雨50年", "五十年一遇暴雨")
    assert s.name == "暴雨50年" and twin.scenarios.names() == ["暴雨50年"]
    row = twin.scenarios.list().iloc[0]
    assert row["name"] == "暴雨50年" and row["description"] == "五十年一遇暴雨"
    b = twin.layer("buildings")
    s.modify_features("buildings", pd.DataFrame({"building_id": [b["building_id"][0]], "height_m": [42.0]}))
    s.set_param("storm_return_period_a", 50)
    assert twin.layer("buildings", scenario="暴雨50年")["height_m"][0] == 42.0
    assert twin.scenario("暴雨50年").params() == {"storm_return_period_a": 50}
    child = twin.scenarios.create("二环路封闭", parent="暴雨50年")
    x, y = b.geometry.iloc[0].centroid.coords[0]  # in the city: edits outside the CRS's area are refused
    child.add_features("buildings", gpd.GeoDataFrame(
        {"building_id": ["新楼"], "height_m": [9.0]}, geometry=[shapely.box(x + 500, y, x + 501, y + 1)],
        crs=twin.crs))
    assert "新楼" in set(twin.layer("buildings", scenario="二环路封闭")["building_id"])
    assert twin.layer("buildings", scenario="二环路封闭")["height_m"][0] == 42.0  # the parent's edit
    assert set(twin.scenarios.diff("暴雨50年", "二环路封闭")["change"]) == {"added"}
    with pytest.raises(ScenarioError, match="exists already"):
        twin.scenarios.create("暴雨50年")
    with pytest.raises(ScenarioError, match="parent of"):
        twin.scenarios.delete("暴雨50年")
    twin.scenarios.delete("二环路封闭")
    twin.scenarios.delete("暴雨50年")
    assert twin.scenarios.names() == []


def test_one_name_typed_two_ways_is_one_scenario(twin):
    assert NFC_CAFE != NFD_CAFE and unicodedata.normalize("NFC", NFD_CAFE) == NFC_CAFE
    s = twin.scenarios.create(NFD_CAFE)
    assert s.name == NFC_CAFE and twin.scenarios.names() == [NFC_CAFE]  # stored in NFC
    with pytest.raises(ScenarioError, match="exists already"):
        twin.scenarios.create(NFC_CAFE)
    assert NFD_CAFE in twin.scenarios and NFC_CAFE in twin.scenarios
    assert twin.scenarios.get(NFD_CAFE).name == NFC_CAFE
    twin.scenario(NFD_CAFE).set_param("k", 1)
    assert twin.scenario(NFC_CAFE).params() == {"k": 1}
    assert (twin.scenarios._edits()["scenario"] == NFC_CAFE).all()  # the edits too are under the NFC name
    child = twin.scenarios.create("child", parent=NFD_CAFE)
    assert twin.scenarios.list().set_index("name").loc["child", "parent"] == NFC_CAFE
    assert child.params() == {"k": 1}
    twin.scenarios.delete("child")
    twin.scenarios.delete(NFD_CAFE)
    assert twin.scenarios.names() == [] and len(twin.scenarios._edits()) == 0


def test_reserved_and_bad_names_are_refused_by_the_store_too(twin):
    for name in ("BASE", "ba\u017fe", "di\ufb00"):
        with pytest.raises(ScenarioError, match="reserved"):
            twin.scenarios.create(name)
    for name in ("暴雨 50年", "a\u200db", "a:b"):
        with pytest.raises(ScenarioError, match="not valid"):
            twin.scenarios.create(name)
    with pytest.raises(ScenarioError, match="city itself"):
        twin.scenarios.delete("ba\u017fe")
    assert twin.scenarios.names() == []


def test_results_of_a_chinese_scenario_save_load_list_delete(twin):
    twin.scenarios.create("暴雨50年")
    save_result(twin.store, "暴雨50年", "run1", "summary", {"max_depth_m": 1.5, "说明": "五十年"})
    save_result(twin.store, "暴雨50年", "run1", "depth", np.arange(6, dtype="float32").reshape(2, 3))
    save_result(twin.store, "暴雨50年", "run1", "gauges", pd.DataFrame({"t": [0.0, 60.0], "h": [0.0, 0.1]}))
    save_result(twin.store, "暴雨50年", "run1", "exposure", twin.layer("buildings").iloc[:2])
    save_result(twin.store, "base", "run1", "summary", {"max_depth_m": 1.0})
    assert load_result(twin.store, "暴雨50年", "run1", "summary") == {"max_depth_m": 1.5, "说明": "五十年"}
    assert load_result(twin.store, "暴雨50年", "run1", "depth").shape == (2, 3)
    assert load_result(twin.store, "暴雨50年", "run1", "gauges")["h"].tolist() == [0.0, 0.1]
    assert len(load_result(twin.store, "暴雨50年", "run1", "exposure")) == 2
    assert twin.load_result("暴雨50年", "run1", "summary")["max_depth_m"] == 1.5
    idx = list_results(twin.store, scenario="暴雨50年")
    assert idx["name"].tolist() == ["depth", "exposure", "gauges", "summary"]
    assert set(idx["scenario"]) == {"暴雨50年"}
    assert result_ref("暴雨50年", "run1", "depth").isascii()  # the stored layer/table names stay plain
    assert delete_results(twin.store, "暴雨50年", "run1") == 4
    assert list_results(twin.store)["scenario"].tolist() == ["base"]


def test_results_under_a_name_typed_two_ways_are_one_set(twin):
    save_result(twin.store, NFD_CAFE, "run1", "summary", {"v": 1})
    assert list_results(twin.store)["scenario"].tolist() == [NFC_CAFE]
    assert load_result(twin.store, NFC_CAFE, "run1", "summary") == {"v": 1}
    save_result(twin.store, NFC_CAFE, "run1", "summary", {"v": 2})  # replaces, not a second entry
    assert load_result(twin.store, NFD_CAFE, "run1", "summary") == {"v": 2}
    assert len(list_results(twin.store, scenario=NFD_CAFE)) == 1
    assert delete_results(twin.store, NFD_CAFE) == 1 and list_results(twin.store).empty


@pytest.mark.parametrize("scenario", ["a:b", "a b", "Base", "diff", "a\u202eb"])
def test_results_refuse_what_could_not_be_a_scenario_name(twin, scenario):
    # a ':' would break the result:<scenario>:<run>:<name> key; the same check as scenario names
    with pytest.raises(ScenarioError, match="choose another name|letters and digits of any script"):
        save_result(twin.store, scenario, "run1", "summary", {"v": 1})
    assert list_results(twin.store).empty


def test_a_flood_runs_on_a_scenario_named_in_either_spelling(tmp_path):
    """The flood adapter looked the name up as typed: 'café' typed with a combining accent (NFD) was 'no such
    scenario' although the scenario exists (stored in NFC)."""
    import unicodedata

    import sample_city
    from twin_core.twin import Twin

    path = str(tmp_path / "c.gpkg")
    sample_city.build_into(path, "small", seed=0)
    with Twin.open(path) as twin:
        twin.scenarios.create("café")
        fr = twin.flood(scenario=unicodedata.normalize("NFD", "café"), storm="5y", duration="5min", run="f1")
        assert fr.scenario == "café" and twin.load_result("café", "f1", "summary")["run"] == "f1"
