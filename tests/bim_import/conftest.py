"""Fixtures for bim_import: the real models (read once) and authored box buildings."""

from __future__ import annotations

import os

import pytest

IFC_DIR = os.environ.get("TWIN_IFC_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "ifc"))
if not os.path.isdir(IFC_DIR):
    IFC_DIR = "/work/shared/data/ifc"

DUPLEX = os.path.join(IFC_DIR, "Ifc2x3_Duplex_Architecture.ifc")
FZK = os.path.join(IFC_DIR, "AC20-FZK-Haus.ifc")
GEOREF = os.path.join(IFC_DIR, "geographic-referencing.ifc")

# The sample plot: a 60 m x 60 m parcel in EPSG:4544 (hand-computed values below use it).
PARCEL = [[499980.0, 3389980.0], [500040.0, 3389980.0], [500040.0, 3390040.0], [499980.0, 3390040.0]]


def need(path: str) -> str:
    """The path of a real model from ../shared/data/ifc, or skip (a clone without the shared data)."""
    if not os.path.isfile(path):
        pytest.skip(f"no {os.path.basename(path)} in {IFC_DIR} (set TWIN_IFC_DIR to the real IFC models)")
    return path


@pytest.fixture(scope="session")
def duplex():
    from bim_import import read_model

    return read_model(need(DUPLEX))


@pytest.fixture(scope="session")
def fzk():
    from bim_import import read_model

    return read_model(need(FZK))


@pytest.fixture(scope="session")
def georef_ifc():
    return need(GEOREF)


def with_schema(src: str, dst, schema: str) -> str:
    """Copy of an IFC file with another FILE_SCHEMA in its header."""
    import re

    text = open(src, encoding="utf-8").read()
    text = re.sub(r"FILE_SCHEMA\s*\(\s*\(\s*'[^']*'", f"FILE_SCHEMA(('{schema}'", text, count=1)
    with open(dst, "w", encoding="utf-8") as fh:
        fh.write(text)
    return str(dst)


@pytest.fixture(scope="session")
def boxes(tmp_path_factory):
    """Authored IFC4 buildings on PARCEL: name -> (path, spec)."""
    from bim_import.samples import BoxBuilding, write_box_building

    d = tmp_path_factory.mktemp("ifc")
    specs = {
        # 20 x 10 m, 3 storeys of 3 m, at the parcel's (20, 20): all rules pass
        "ok": BoxBuilding(20, 10, 3, 3.0, 500000.0, 3390000.0, green=(20, 0, 30, 10)),
        # 8 storeys: 24.3 m, breaks max_height_m 24
        "tall": BoxBuilding(20, 10, 8, 3.0, 500000.0, 3390000.0, green=(20, 0, 30, 10)),
        # 2 m from the east edge: breaks min_setback_m 3
        "setback": BoxBuilding(20, 10, 3, 3.0, 500018.0, 3390000.0, green=(-15, 0, 0, 10)),
        # 40 x 30 m, 4 storeys: FAR 1.333, coverage 0.333: breaks max_far 1.2 and max_site_coverage 0.3
        "dense": BoxBuilding(40, 30, 4, 3.0, 499990.0, 3389990.0, green=(0, -8, 40, -2)),
        # no IfcMapConversion, no site lat/lon
        "nogeo": BoxBuilding(20, 10, 1, 3.0, 0.0, 0.0, georeferenced=False),
    }
    return {k: (write_box_building(s, d / f"{k}.ifc"), s) for k, s in specs.items()}
