"""The store format version (a DBA's review, 2026-12-05): a store records the layout of its own tables as
``format_version`` in ``twin_meta``, so that a later layout can tell an old store from a new one and this code
refuses a store of a newer layout rather than misread it. Both stores: stamped when made; on a store written
before the key existed (layout 1) when first opened by a session that may write it, nothing else rewritten; a
store that may not be written opens without it; a newer version is one clear error naming both versions."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from cim.store import open_store
from cim.store.base import FORMAT_KEY, FORMAT_VERSION
from twin_core.errors import StoreConnectionError


def _fill(store) -> None:
    store.write_layer("pois", gpd.GeoDataFrame({"k": [1, 2]}, geometry=[shapely.Point(409300, 3390500),
                                                                     shapely.Point(409301, 3390500)], crs="EPSG:4544"))
    store.write_table("notes", pd.DataFrame({"a": [1, 2, 3]}))
    store.set_meta({"name": "old", "timezone": "Asia/Shanghai"})


def test_the_version_this_code_writes_is_one():
    assert FORMAT_VERSION == 1 and FORMAT_KEY == "format_version"


def test_a_new_store_records_its_format_version(store_target):
    with open_store(store_target, create=True, crs="EPSG:4544") as s:
        assert s.get_meta()[FORMAT_KEY] == FORMAT_VERSION
    with open_store(store_target) as s:  # kept, and opened again without complaint
        assert s.get_meta()[FORMAT_KEY] == FORMAT_VERSION


def test_an_older_store_is_stamped_when_first_opened_and_nothing_else_changes(store_target):
    with open_store(store_target, create=True, crs="EPSG:4544") as s:
        _fill(s)
        s.delete_meta([FORMAT_KEY])  # as a store written before the key existed
        before = s.get_meta()
        assert FORMAT_KEY not in before
    with open_store(store_target) as s:
        meta = s.get_meta()
        assert meta.pop(FORMAT_KEY) == 1  # a missing version is the current layout 1
        assert meta == before  # nothing else rewritten
        assert s.read_layer("pois")["k"].tolist() == [1, 2]
        assert s.read_table("notes")["a"].tolist() == [1, 2, 3]


@pytest.mark.parametrize("newer", [FORMAT_VERSION + 1, 7])
def test_a_store_of_a_newer_version_is_refused_naming_both_versions(store_target, newer):
    with open_store(store_target, create=True, crs="EPSG:4544") as s:
        _fill(s)
        s.set_meta({FORMAT_KEY: newer})  # as a newer RongTwin would stamp it
    with pytest.raises(StoreConnectionError) as ei:
        open_store(store_target)
    msg = str(ei.value)
    assert f"format version {newer}" in msg and "newer RongTwin" in msg
    assert f"reads format version {FORMAT_VERSION}" in msg and "Upgrade RongTwin" in msg
    with pytest.raises(StoreConnectionError, match=f"format version {newer}"):
        open_store(store_target, create=True)  # create=True on it is refused too, not stamped over
    if not store_target.endswith(".gpkg"):
        return
    con = sqlite3.connect(store_target)  # the refused open left the file as it was (its version kept)
    try:
        assert json.loads(con.execute("SELECT value FROM twin_meta WHERE key = ?", (FORMAT_KEY,)).fetchone()[0]) == newer
    finally:
        con.close()


def test_a_version_that_is_no_number_is_refused(store_target):
    with open_store(store_target, create=True, crs="EPSG:4544") as s:
        s.set_meta({FORMAT_KEY: "2.0-beta"})
    with pytest.raises(StoreConnectionError, match="not a version number"):
        open_store(store_target)


def test_a_read_only_older_geopackage_opens_without_being_stamped(tmp_path):
    path = tmp_path / "old.gpkg"
    with open_store(str(path), create=True, crs="EPSG:4544") as s:
        _fill(s)
        s.delete_meta([FORMAT_KEY])
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)],
                                                         capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not allowed here (permission bits do not stop root)")
    try:
        with open_store(str(path)) as s:  # opens (read-only), unstamped, no error
            assert FORMAT_KEY not in s.get_meta()
            assert s.read_table("notes")["a"].tolist() == [1, 2, 3]
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)
    with open_store(str(path)) as s:  # writable again: stamped at this open
        assert s.get_meta()[FORMAT_KEY] == 1
