"""The import direction of DESIGN.md holds: spatial_index <- cim <- bim_import; engines stand alone;
twin_core ties them together; viewer sits on twin_core.

``twin_core.errors`` and ``twin_core.progress`` are dependency-free leaves every package may use.
The CLI (``twin_core.cli``) and the notebook helper (``twin_core.view``) are entry points and may
start the viewer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = {"twin_core", "cim", "bim_import", "spatial_index", "simulation", "viewer", "sample_city"}
LEAVES = {"twin_core.errors", "twin_core.progress"}

# package -> project packages it may import (besides the leaves)
ALLOWED = {
    "spatial_index": set(),
    "cim": {"spatial_index"},
    "bim_import": {"cim", "spatial_index"},
    "simulation": set(),
    "twin_core": {"cim", "bim_import", "spatial_index", "simulation", "sample_city"},
    "viewer": {"twin_core", "cim", "bim_import", "spatial_index", "simulation", "sample_city"},
    "sample_city": {"cim", "spatial_index"},
}
ENTRY_POINTS = ("twin_core.cli", "twin_core.view")


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def modules():
    for pkg in sorted(PROJECT):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            mod = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            yield pkg, mod, path


@pytest.mark.parametrize("pkg", sorted(PROJECT))
def test_import_direction(pkg):
    bad = []
    for p, mod, path in modules():
        if p != pkg or mod.startswith(ENTRY_POINTS):
            continue
        for imp in imports_of(path):
            top = imp.split(".")[0]
            if top not in PROJECT or top == pkg:
                continue
            if any(imp == leaf or imp.startswith(leaf + ".") for leaf in LEAVES):
                continue
            if top not in ALLOWED[pkg]:
                bad.append(f"{mod} imports {imp}")
    assert not bad, "import direction broken:\n" + "\n".join(bad)


def test_spatial_index_needs_only_numpy_and_numba():
    third_party = {"numpy", "numba"}
    bad = []
    for p, mod, path in modules():
        if p != "spatial_index":
            continue
        for imp in imports_of(path):
            top = imp.split(".")[0]
            if top in third_party or top in ("spatial_index", "__future__") or top in _stdlib():
                continue
            if top == "shapely" and _imported_inside_function(path, imp):
                continue  # conversion helpers only
            bad.append(f"{mod} imports {imp}")
    assert not bad, "\n".join(bad)


def _stdlib() -> set[str]:
    import sys

    return set(sys.stdlib_module_names)


def _imported_inside_function(path: Path, name: str) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:  # module level
        if isinstance(node, ast.Import) and any(a.name == name for a in node.names):
            return False
        if isinstance(node, ast.ImportFrom) and node.module == name:
            return False
    return True
