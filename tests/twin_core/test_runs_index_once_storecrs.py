"""``twin runs TARGET RUN`` reads the results index (the whole ``twin_meta`` table) once: it read it in
``find_run`` and again in ``list_results``. ``find_run(meta=...)`` takes an index read already. Both stores (the
PostGIS half skips without a server)."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from cim.store.gpkg import GeoPackageStore
from cim.store.postgis import PostGISStore
from twin_core.cli import get_app
from twin_core.errors import LayerNotFoundError
from twin_core.twin import Twin


@pytest.fixture
def twin_target(store_target):
    with Twin.create(store_target, crs="EPSG:4544", name="runs") as twin:
        twin.save_result("base", "r1", "summary", {"max_depth_m": 1.2})
        twin.save_result("base", "r1", "table", pd.DataFrame({"x": [1, 2]}))
        twin.scenarios.create("levee")
        twin.save_result("levee", "r2", "summary", {"max_depth_m": 0.4})
    return store_target


def _count_meta_reads(monkeypatch) -> list:
    reads = []
    for cls in (GeoPackageStore, PostGISStore):
        real = cls.get_meta
        monkeypatch.setattr(cls, "get_meta", lambda self, _real=real: reads.append(1) or _real(self))
    return reads


def test_twin_runs_of_one_run_reads_the_index_once(twin_target, monkeypatch):
    reads = _count_meta_reads(monkeypatch)
    res = CliRunner().invoke(get_app(), ["runs", twin_target, "r1", "--json"])
    assert res.exit_code == 0, res.output
    assert '"summary"' in res.output and '"table"' in res.output and '"r2"' not in res.output
    # one read for the CRS as the twin opens (kept by the store), one for the results index (was two)
    assert len(reads) == 2


def test_find_run_takes_the_index_read_already(twin_target, monkeypatch):
    from twin_core.adapters.results_export import find_run

    with Twin.open(twin_target) as twin:
        index = twin.store.get_meta()
        reads = _count_meta_reads(monkeypatch)
        assert find_run(twin, "r1", meta=index) == "base"
        assert find_run(twin, "r2", "levee", meta=index) == "levee"
        with pytest.raises(LayerNotFoundError, match="no run 'r3' in this twin"):
            find_run(twin, "r3", meta=index)
        with pytest.raises(LayerNotFoundError, match="it is under scenario 'levee'"):
            find_run(twin, "r2", "base", meta=index)
        assert not reads
        assert find_run(twin, "r1") == "base"  # without: read, as before
        assert len(reads) == 1
