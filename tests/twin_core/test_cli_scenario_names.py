"""`twin scenario ...` and an engine's `--scenario` with a scenario named in Chinese; `--json` keeps the characters.
A mistyped name in an edit command, and undo with nothing to undo."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from twin_core.cli import get_app
from twin_core.twin import Twin

# the two-link city of the core CLI tests (the fixture is imported, not copied)
from test_cli_core import city  # noqa: E402,F401

runner = CliRunner()


def run(*args):
    return runner.invoke(get_app(), list(args))


def test_scenario_commands_with_a_chinese_name(city):
    res = run("scenario", "create", city, "暴雨50年", "-d", "五十年一遇暴雨", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"created": "暴雨50年"}
    assert "暴雨50年" in res.stdout  # the characters themselves, not \u66b4\u96e8 escapes
    res = run("scenario", "close-roads", city, "二环路封闭", "--bbox", "410050,3394990,410060,3395010", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"scenario": "二环路封闭", "closed": ["a"]} and "二环路封闭" in res.stdout
    res = run("scenario", "set", city, "暴雨50年", "storm_return_period_a", "50")
    assert res.exit_code == 0 and "暴雨50年: storm_return_period_a = 50" in res.stdout, res.output
    res = run("scenario", "list", city, "--json")
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    assert set(rows) == {"暴雨50年", "二环路封闭"} and rows["暴雨50年"]["description"] == "五十年一遇暴雨"
    assert "五十年一遇暴雨" in res.stdout
    res = run("scenario", "list", city)
    assert "暴雨50年" in res.stdout and "二环路封闭" in res.stdout
    res = run("scenario", "diff", city, "base", "二环路封闭", "--json")
    assert json.loads(res.stdout) == [{"target": "road_links", "feature_id": "a", "change": "modified",
                                       "fields": "capacity_vph"}]
    assert run("scenario", "delete", city, "二环路封闭").stdout.strip() == "deleted scenario 二环路封闭"
    with Twin.open(city) as t:
        assert t.scenarios.names() == ["暴雨50年"]
        assert t.scenario("暴雨50年").params() == {"storm_return_period_a": 50}


def test_a_bad_name_is_one_clear_line(city):
    from twin_core.errors import ScenarioError

    res = run("scenario", "create", city, "暴雨 50年")
    assert isinstance(res.exception, ScenarioError) and "U+0020 SPACE" in str(res.exception)
    proc = subprocess.run([sys.executable, "-m", "twin_core.cli", "scenario", "create", city, "暴雨:50年"],
                          capture_output=True, timeout=120)
    err = proc.stderr.decode("utf-8")
    assert proc.returncode == 2 and err.count("\n") == 1, err
    assert err.startswith("error: scenario name '暴雨:50年' is not valid: it holds ':' (U+003A COLON)") and \
        "letters and digits of any script" in err, err


def test_json_output_falls_back_to_escapes_on_a_terminal_that_cannot_show_them(monkeypatch):
    from twin_core.cli._common import emit

    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="ascii")
    monkeypatch.setattr(sys, "stdout", out)
    emit({"created": "暴雨50年"}, True)
    out.flush()
    text = raw.getvalue().decode("ascii")
    assert "\\u66b4" in text and json.loads(text) == {"created": "暴雨50年"}


def test_flood_on_a_chinese_scenario(small_city_gpkg):
    res = run("scenario", "raise-ground", small_city_gpkg, "暴雨50年", "--bbox", "409500,3391090,409700,3391100",
              "--delta", "2")
    assert res.exit_code == 0, res.output
    res = run("flood", small_city_gpkg, "--storm", "50y", "--duration", "10min", "--scenario", "暴雨50年",
              "--run", "r1", "--json")
    assert res.exit_code == 0, (res.output, res.exception)
    s = json.loads(res.stdout)
    assert s["scenario"] == "暴雨50年" and s["run"] == "r1" and '"暴雨50年"' in res.stdout
    with Twin.open(small_city_gpkg) as t:
        idx = t.results(scenario="暴雨50年")
        assert set(idx["run"]) == {"r1"} and "summary" in set(idx["name"])
        assert t.load_result("暴雨50年", "r1", "summary")["scenario"] == "暴雨50年"
    res = run("info", small_city_gpkg, "--json")
    assert "暴雨50年" in json.loads(res.stdout)["scenarios"]


# -- a mistyped scenario name in an edit command; undo with nothing to undo ------------------------------------

CLOSE_A = "410050,3394990,410060,3395010"  # crosses link 'a' of the two-link city


def test_an_edit_to_a_mistyped_scenario_is_refused_with_the_name_meant(city):
    # `twin scenario raise-ground c.gpkg leve ...` recorded the levee into a new scenario 'leve' beside 'levee'
    from twin_core.errors import ScenarioError

    assert run("scenario", "create", city, "works").exit_code == 0
    for args in (["close-roads", city, "work", "--bbox", CLOSE_A],
                 ["set", city, "Works", "traffic_demand_scale", "1.2"]):
        res = run("scenario", *args)
        assert isinstance(res.exception, ScenarioError), (args, res.output)
        msg = str(res.exception)
        assert msg.startswith(f"no scenario {args[2]!r}; did you mean 'works'? (create a new one with "
                              f"`twin scenario create {city} {args[2]}`, or pass --create)"), msg
    with Twin.open(city) as t:
        assert t.scenarios.names() == ["works"] and t.scenarios["works"].n_edits == 0  # nothing recorded anywhere
    # meant: --create makes it
    res = run("scenario", "close-roads", city, "work", "--bbox", CLOSE_A, "--create")
    assert res.exit_code == 0 and res.stdout.strip() == "created scenario work; closed 1 links in work", res.output
    # a name close to none is created by its first edit, as the README's lines do, and the output says so
    res = run("scenario", "set", city, "storm", "traffic_demand_scale", "1.2")
    assert res.exit_code == 0 and res.stdout.strip() == "created scenario storm; storm: traffic_demand_scale = 1.2"
    res = run("scenario", "set", city, "storm", "traffic_demand_scale", "1.3")  # it exists now: no "created"
    assert res.exit_code == 0 and res.stdout.strip() == "storm: traffic_demand_scale = 1.3"
    with Twin.open(city) as t:
        assert t.scenarios.names() == ["storm", "work", "works"] and t.scenarios["work"].n_edits == 1


def test_a_mistyped_levee_is_one_clear_line(small_city_gpkg):
    assert run("scenario", "create", small_city_gpkg, "levee").exit_code == 0
    proc = subprocess.run([sys.executable, "-m", "twin_core.cli", "scenario", "raise-ground", small_city_gpkg, "leve",
                           "--bbox", "409500,3391090,409700,3391100", "--delta", "2"], capture_output=True, timeout=120)
    err = proc.stderr.decode("utf-8")
    assert proc.returncode == 2 and err.count("\n") == 1 and not proc.stdout, err
    assert err.startswith("error: no scenario 'leve'; did you mean 'levee'?") and "--create" in err, err
    with Twin.open(small_city_gpkg) as t:
        assert t.scenarios.names() == ["levee"]


def test_the_base_is_named_as_the_cli_names_it(city):
    # `twin scenario undo c.gpkg base` said "create one with twin.scenarios.create(name)"
    from twin_core.errors import ScenarioError

    run("scenario", "create", city, "works")
    for args in (["undo", city, "base"], ["close-roads", city, "base", "--bbox", CLOSE_A]):
        res = run("scenario", *args)
        assert isinstance(res.exception, ScenarioError), res.output
        msg = str(res.exception)
        assert "'base' is the city itself" in msg and "twin.scenarios" not in msg, msg
    assert "twin scenario list" in str(run("scenario", "undo", city, "base").exception)


def test_python_and_cli_undo_agree_on_nothing_to_undo(city):
    # Python returned an empty table without a word; the CLI exited 2 saying there was nothing to undo
    from twin_core.errors import ScenarioError

    run("scenario", "create", city, "e")
    run("scenario", "create", city, "child", "--parent", "e")
    run("scenario", "set", city, "e", "traffic_demand_scale", "1.1")
    for name in ("e", "child"):
        if name == "e":
            assert run("scenario", "undo", city, "e").exit_code == 0  # its one edit; then nothing is left
        res = run("scenario", "undo", city, name)
        assert res.exit_code != 0 and isinstance(res.exception, ScenarioError)
        with Twin.open(city) as t, pytest.raises(ScenarioError) as py:
            t.scenarios[name].undo()
        assert str(py.value) == str(res.exception)
    assert str(py.value) == "scenario 'child' has no edits of its own to undo; the edits it shows from its parent " \
                            "'e' are undone on 'e'"
    with Twin.open(city) as t:
        assert t.scenarios["e"].undo(missing_ok=True).empty  # asked for: nothing, no error
