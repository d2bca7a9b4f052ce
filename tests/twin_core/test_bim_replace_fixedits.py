"""``twin import STORE FILE --class buildings`` over a layer holding buildings imported from IFC says which it
drops and what to do, with a real IFC import (bim_import) in the twin."""

from __future__ import annotations

import contextlib
import io
import warnings

import geopandas as gpd
import pytest
import shapely

CRS = "EPSG:4544"


def _main(*args):
    """Run the `twin` console entry point in process: (exit code, stdout, stderr)."""
    from twin_core.cli import main

    out, err = io.StringIO(), io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            pytest.raises(SystemExit) as ex:
        warnings.simplefilter("always")
        main([str(a) for a in args])
    return ex.value.code, out.getvalue(), err.getvalue()


def test_replacing_buildings_names_the_ifc_buildings_it_drops(tmp_path):
    from bim_import.georef import Anchor
    from bim_import.importer import import_ifc
    from bim_import.samples import BoxBuilding, write_box_building
    from cim.schema import conform
    from cim.store import open_store

    model = write_box_building(BoxBuilding(20, 10, 2, 3.0, 0.0, 0.0, georeferenced=False), tmp_path / "b.ifc")
    target = str(tmp_path / "t.gpkg")
    with open_store(target, create=True, crs=CRS) as st:
        bid = import_ifc(str(model), st, anchor=Anchor(500034.0, 3390057.0, 0.0)).building_id
    city = conform(gpd.GeoDataFrame({"building_id": ["C0"], "height_m": [10.0]},
                                    geometry=[shapely.box(500200.0, 3390200.0, 500220.0, 3390220.0)], crs=CRS),
                   "buildings")
    path = tmp_path / "city.geojson"
    city.to_file(path)
    code, out, err = _main("import", target, path, "--class", "buildings")
    assert code in (0, None), err
    assert "imported 1 features into buildings" in out
    assert f"warning: the new buildings layer drops 1 building(s) imported from IFC ({bid}); their element rows " \
           "and 3D models stay in bim_elements/bim_buildings as stale records" in err
    assert "twin bim delete STORE ID" in err and "--replace" in err and "--append" in err
    # the advice works: the stale record deleted, the next replace says nothing of IFC
    code, out, err = _main("bim", "delete", target, bid)
    assert code in (0, None), err
    code, out, err = _main("import", target, path, "--class", "buildings")
    assert code in (0, None) and "IFC" not in err, err
