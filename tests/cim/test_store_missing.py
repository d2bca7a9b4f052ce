"""A twin path that is not there: the error names the close file or what the folder holds, and how to make
one, in words a CLI user can act on (it said "create it with open_store(path, create=True)")."""

from __future__ import annotations

import pytest

from cim.store import open_store
from twin_core.errors import StoreConnectionError


def test_a_mistyped_twin_path_names_the_close_file(tmp_path):
    (tmp_path / "city.gpkg").write_bytes(b"")
    (tmp_path / "other.gpkg").write_bytes(b"")
    with pytest.raises(StoreConnectionError, match=r"'.*cty\.gpkg' does not exist; did you mean '.*city\.gpkg'\? "
                                                   r".*`twin build .*cty\.gpkg` \(the sample city\)"):
        open_store(tmp_path / "cty.gpkg")
    with pytest.raises(StoreConnectionError, match=r"that folder holds city\.gpkg, other\.gpkg;"):
        open_store(tmp_path / "zz.gpkg")
    with pytest.raises(StoreConnectionError, match=r"the folder '.*nope' does not exist;"):
        open_store(tmp_path / "nope" / "c.gpkg")
    for bad in ("cty.gpkg", "zz.gpkg"):
        with pytest.raises(StoreConnectionError) as e:
            open_store(tmp_path / bad)
        assert "create=True" not in str(e.value) and "open_store" not in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["city.gpkg", "other.gpkg"]  # nothing was made
