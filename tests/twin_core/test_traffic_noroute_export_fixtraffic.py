"""Every road closed: plain words, no NaN in the stored summary; a run's link layer exported to CSV (WKT)."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest
import shapely
from typer.testing import CliRunner


@pytest.mark.parametrize("mode", ["assign", "simulate"])
def test_every_road_closed_says_no_trip_has_a_path(small_city_gpkg, mode):
    from twin_core.cli import get_app
    from twin_core.twin import Twin

    with Twin.open(small_city_gpkg) as twin:
        ids = twin.layer("road_links")["link_id"].astype(str).tolist()
    args = ["traffic", mode, small_city_gpkg, "--run", "shut"] + [x for i in ids for x in ("--close", i)]
    if mode == "simulate":
        args += ["--route-iterations", "1", "--until", "10min"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = CliRunner().invoke(get_app(), args)
    assert r.exit_code == 0, r.output
    assert "no trip has a path" in r.stdout
    assert "nan" not in r.stdout.lower() and "0/0" not in r.stdout and "converged" not in r.stdout
    assert not [w for w in caught if "NaN" in str(w.message)]  # the store's developer-facing NaN warning
    with Twin.open(small_city_gpkg) as twin:
        s = twin.load_result("base", "shut", "summary")
    key = "max_vc" if mode == "assign" else "mean_trip_time_s"
    assert s[key] is None and s["disconnected_trips"] == pytest.approx(s["trips"])


def test_link_flows_export_to_csv_with_wkt(small_city_gpkg, tmp_path):
    from twin_core.cli import get_app
    from twin_core.twin import Twin

    with Twin.open(small_city_gpkg) as twin:
        tr = twin.traffic(run="lf")
    out = tmp_path / "lf.csv"
    r = CliRunner().invoke(get_app(), ["export", small_city_gpkg, "link_flows", str(out), "--run", "lf"])
    assert r.exit_code == 0, r.output
    df = pd.read_csv(out, dtype={"link_id": str})
    assert len(df) == len(tr.links) and {"link_id", "flow", "geometry"} <= set(df.columns)
    got = df.set_index("link_id")
    want = tr.links.set_index("link_id")
    assert got["flow"].to_numpy() == pytest.approx(want.loc[got.index, "flow"].to_numpy())
    g = shapely.from_wkt(got["geometry"].to_numpy())
    assert shapely.equals_exact(g, want.loc[got.index].geometry.to_numpy(), tolerance=1e-6).all()
