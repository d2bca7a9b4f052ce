"""`twin scenario ...` and an engine's `--scenario` with a scenario named in Chinese; `--json` keeps the characters."""

from __future__ import annotations

import io
import json
import subprocess
import sys

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
