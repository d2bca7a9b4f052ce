"""``twin build -q`` is quiet (it printed the 15-line summary though -q promises no chatter); errors are still
shown, and ``--json`` still prints the summary it asks for. ``twin flood`` into a twin it may not write fails in
one line before the storm is computed."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess

import pytest
from typer.testing import CliRunner

from twin_core.cli import get_app, main
from twin_core.twin import Twin


def _stub_build(monkeypatch):
    """The sample city's build as an empty twin: what is printed is under test, not the city."""
    import sample_city

    def build_into(path, size, seed=0, progress=None):
        Twin.create(path, name="stub").close()

    monkeypatch.setattr(sample_city, "build_into", build_into)


def _main(*args):
    """The `twin` console entry point in process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as ex:
            code = ex.code or 0
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("flag", ["-q", "--quiet"])
def test_build_quiet_prints_nothing(tmp_path, monkeypatch, flag):
    _stub_build(monkeypatch)
    target = tmp_path / "c.gpkg"
    code, out, err = _main("build", str(target), flag)
    assert code == 0 and out == "" and err == "", (out, err)
    assert target.exists()


def test_build_without_quiet_still_prints_the_summary_and_json_wins_over_quiet(tmp_path, monkeypatch):
    _stub_build(monkeypatch)
    res = CliRunner().invoke(get_app(), ["build", str(tmp_path / "a.gpkg")])
    assert res.exit_code == 0 and "twin 'stub' in" in res.stdout and "built in" in res.stdout
    res = CliRunner().invoke(get_app(), ["build", str(tmp_path / "b.gpkg"), "-q", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["name"] == "stub"


def test_build_quiet_still_shows_errors(tmp_path, monkeypatch):
    _stub_build(monkeypatch)
    (tmp_path / "c.gpkg").write_bytes(b"")
    code, out, err = _main("build", str(tmp_path / "c.gpkg"), "-q")
    assert code != 0 and out == "" and "exists; pass --force" in err


def test_flood_into_a_read_only_twin_fails_in_one_line_before_the_storm(tmp_path, monkeypatch):
    import twin_core.adapters.flood as flood

    path = tmp_path / "ro.gpkg"
    Twin.create(path, name="ro").close()
    if os.geteuid() != 0:
        path.chmod(0o444)
    elif shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)],
                                                           capture_output=True).returncode != 0:
        pytest.skip("running as root, which permission bits do not stop, and chattr +i is not allowed here")

    def ran(*a, **k):
        raise AssertionError("the flood engine ran")

    monkeypatch.setattr(flood, "prepare_flood", ran)
    try:
        code, out, err = _main("flood", str(path), "--duration", "10min", "-q")
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        else:
            path.chmod(0o644)
    assert code == 2 and "Traceback" not in err, err
    assert err.startswith("error: cannot write") and "read-only" in err and "chmod" in err
    assert "checked before a flood run started: nothing was computed" in err and len(err.strip().splitlines()) == 1
