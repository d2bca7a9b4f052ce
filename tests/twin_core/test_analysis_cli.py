"""`twin analysis sunlight|viewshed` on the small sample city."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from twin_core.cli import get_app

runner = CliRunner()


def _center(path):
    from twin_core import Twin

    with Twin.open(path) as t:
        x0, y0, x1, y1 = t.extent
    return (x0 + x1) / 2, (y0 + y1) / 2


def test_sunlight_and_viewshed_cli(small_city_gpkg):
    cx, cy = _center(small_city_gpkg)
    box = f"{cx - 50},{cy - 50},{cx + 50},{cy + 50}"
    r = runner.invoke(get_app(), ["analysis", "sunlight", small_city_gpkg, "--bbox", box, "--spacing", "10",
                                  "--step", "30", "--solar-time", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["shape"] == [10, 10] and 0 <= out["hours"]["min"] <= out["hours"]["max"] <= 8.0
    r = runner.invoke(get_app(), ["analysis", "viewshed", small_city_gpkg, "--x", str(cx), "--y", str(cy),
                                  "--radius", "80", "--height", "20", "--json", "--run", "v1"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["run"] == "v1" and 0 < out["visible"] <= out["cells"]
    from twin_core import Twin

    with Twin.open(small_city_gpkg) as t:
        assert t.load_result(None, "v1", "viewshed").shape == tuple(out["shape"])


@pytest.mark.parametrize("args, msg", [
    (["sunlight", "--bbox", "1,2,3"], "--bbox"),
    (["sunlight", "--start", "17:00", "--end", "09:00"], "after start"),
    (["viewshed", "--x", "0", "--y", "0"], "outside the DEM"),
    (["sunlight", "--date", "2026-02-30"], "date must be a day"),  # a pandas traceback before
    (["sunlight", "--step", "inf"], "step_minutes"),
    (["viewshed", "--x", "409720", "--y", "3390975", "--radius", "inf"], "radius must be a finite"),
])
def test_cli_bad_input_is_one_clear_line(small_city_gpkg, args, msg, capsys):
    from twin_core.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["analysis", args[0], small_city_gpkg, *args[1:]])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert msg in err and "Traceback" not in err
