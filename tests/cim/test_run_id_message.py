"""A run id outside ASCII is refused with a message that says so (it said "use letters", and Chinese
characters are letters: a DBA's review, 2026-12-05)."""
import pytest

from cim.results import check_run_id
from twin_core.errors import SchemaError


@pytest.mark.parametrize("bad", ["运行1", "Lauf-ä", "run one", "-x", "", "x" * 81])
def test_a_run_id_outside_ascii_names_what_is_allowed(bad):
    with pytest.raises(SchemaError, match=r"ASCII letters \(A-Z, a-z\), digits"):
        check_run_id(bad)


def test_ascii_run_ids_pass():
    assert check_run_id("storm50-levee_2.b") == "storm50-levee_2.b"
