"""A GeoPackage twin that may not be written: one clear StoreError from Python (it was a raw
``sqlite3.OperationalError: attempt to write a readonly database``) and from the CLI, the file unchanged.

The file is made immutable with ``chattr +i`` (permission bits do not stop root, who runs the suite here);
where chattr is not allowed the tests are skipped.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from twin_core.errors import StoreError
from twin_core.twin import Twin


@pytest.fixture
def frozen(small_city_gpkg, tmp_path):
    path = tmp_path / "frozen.gpkg"
    shutil.copy(small_city_gpkg, path)
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)],
                                                         capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not allowed here")
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_python_writes_to_a_read_only_twin_are_one_clear_error(frozen):
    before = _sha(frozen)
    with Twin.open(frozen) as twin:
        n = len(twin.layer("buildings"))
        for write in (lambda: twin.scenarios.create("works"),
                      lambda: twin.save_result("base", "r1", "t", pd.DataFrame({"a": [1]})),
                      lambda: twin.store.write_layer("buildings", twin.layer("buildings").head(1))):
            with pytest.raises(StoreError, match=r"cannot write .*frozen\.gpkg: the file \(or its folder\) is "
                                                 r"read-only .*nothing was changed.*chmod u\+w"):
                write()
        assert len(twin.layer("buildings")) == n  # reading goes on
    assert _sha(frozen) == before


def test_the_cli_says_the_same_in_one_line(frozen):
    before = _sha(frozen)
    r = subprocess.run([sys.executable, "-m", "twin_core.cli", "scenario", "create", str(frozen), "works"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith("error: cannot write") and "read-only" in r.stderr and "chmod" in r.stderr
    assert _sha(frozen) == before
