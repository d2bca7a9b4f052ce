"""Traffic adapter: closures= takes link ids as --close does; unknown ids say where they came from; TSTT's unit."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from twin_core.errors import NetworkError, ParameterError


@pytest.fixture
def twin(small_city_gpkg):
    from twin_core.twin import Twin

    t = Twin.open(small_city_gpkg)
    yield t
    t.close()


def _two_way_link(twin) -> str:
    """A link id of the sample city (whose roads are one-way: the engine link is the road)."""
    return str(twin.layer("road_links")["link_id"].iloc[0])


def test_closures_take_link_ids_like_close(twin):
    lid = _two_way_link(twin)
    one = twin.traffic(closures=lid, save=False)  # one str: a link id (it crashed in shapely before)
    many = twin.traffic(closures=[lid], save=False)
    assert sorted(one.summary["closed_links"]) == sorted(many.summary["closed_links"]) == [lid]
    flows = many.links.set_index("link_id")
    assert flows.loc[lid, "flow"] == 0
    # ids and polygons mixed: the polygon round another link closes that one too
    rl = twin.layer("road_links")
    other = rl[rl["link_id"].astype(str) != lid].iloc[0]
    mixed = twin.traffic(closures=[lid, other.geometry.buffer(0.5)], save=False)
    assert {lid, str(other["link_id"])} <= set(mixed.summary["closed_links"])


def test_closures_refuse_other_things_with_what_they_take(twin):
    for bad in (42, [1.5], {"a": 1}, [None]):
        with pytest.raises(ParameterError, match="closures takes link ids"):
            twin.traffic(closures=bad, save=False)
    with pytest.raises(NetworkError, match=r"closures name link 'nosuch'.*closures=.*--close"):
        twin.traffic(mode="simulate", closures=["nosuch"], save=False)


def test_unknown_close_id_names_close_and_near_ids(twin, small_city_gpkg):
    from twin_core.cli import get_app

    lid = _two_way_link(twin)
    typo = lid[:-1] + ("x" if lid[-1] != "x" else "y")
    r = CliRunner().invoke(get_app(), ["traffic", "assign", small_city_gpkg, "--close", typo, "--run", "c1"])
    assert r.exit_code != 0
    msg = " ".join((r.output + str(r.exception or "")).split())
    assert "--close" in msg and repr(lid) in msg.split("close ids:")[1]
    assert "capacity factor" not in msg
    # the CLI's --close goes the way closures= does
    r = CliRunner().invoke(get_app(), ["traffic", "assign", small_city_gpkg, "--close", lid, "--run", "c2", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["closed_links"] == [lid]


def test_tstt_unit_named_in_summary_cli_and_compare(twin, small_city_gpkg):
    from twin_core.cli import get_app

    a = twin.traffic(run="u1")
    s = a.summary
    assert s["tstt_veh_h"] == pytest.approx(s["tstt"] / 3600) and s["units"]["tstt"] == "veh-s"
    assert twin.load_result("base", "u1", "summary")["tstt_veh_h"] == pytest.approx(s["tstt_veh_h"])
    lid = _two_way_link(twin)
    twin.traffic(run="u2", closures=[lid])
    r = CliRunner().invoke(get_app(), ["compare", small_city_gpkg, "u1", "u2"])
    assert r.exit_code == 0, r.output
    line = next(x for x in r.stdout.splitlines() if "tstt" in x)
    assert "tstt_veh_h" in line
    shown = float(line.split(":")[1].split("->")[0].replace(",", ""))
    assert shown == pytest.approx(s["tstt_veh_h"], rel=0.01)  # the figure printed is in veh-h, as named
    cmp = twin.compare("u1", "u2")
    assert cmp.summary["tstt_veh_a_h"] == pytest.approx(s["tstt_veh_h"])
    assert np.isfinite(cmp.summary["tstt_veh_change_h"])


def test_map_job_with_an_unknown_closure_id_fails_with_what_closures_take(small_city_gpkg):
    import time

    from fastapi.testclient import TestClient

    from viewer.app import create_app
    from viewer.settings import Settings

    with TestClient(create_app(Settings(store=small_city_gpkg)), raise_server_exceptions=False,
                    base_url="http://127.0.0.1") as client:
        job = client.post("/api/jobs", json={"engine": "traffic", "params": {"mode": "simulate", "until": 600,
                                                                             "closures": ["nosuch"]}})
        assert job.status_code == 202, job.text
        for _ in range(600):
            st = client.get(f"/api/jobs/{job.json()['id']}").json()
            if st["status"] in ("done", "failed"):
                break
            time.sleep(0.1)
    assert st["status"] == "failed"
    text = json.dumps(st)
    assert "closures name link 'nosuch'" in text and "incorrect type" not in text
