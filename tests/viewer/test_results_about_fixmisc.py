"""The map's run picker reads /api/results: each entry carries its run's ``about`` (a crowd's area, agents and
model ...), so runs with ids like ``crowd-20261205T063139-3894`` can be told apart."""

from __future__ import annotations

import warnings

from twin_core.errors import TwinWarning


def test_results_api_says_what_each_run_was(city):
    from fastapi.testclient import TestClient

    from twin_core.twin import Twin
    from viewer.app import create_app
    from viewer.settings import Settings

    with Twin.open(city) as twin, warnings.catch_warnings():
        warnings.simplefilter("ignore", TwinWarning)
        twin.crowd("A001", agents=15, until="1min", run="c15")
        twin.crowd("A001", agents=25, until="1min", model="sfm", run="c25")
        expected = twin.runs().set_index(["scenario", "run"])["about"].to_dict()
    with TestClient(create_app(Settings(store=city)), raise_server_exceptions=False,
                    base_url="http://127.0.0.1") as c:
        entries = c.get("/api/results").json()
    about = {(e["scenario"], e["run"]): e["about"] for e in entries}
    assert about == expected  # every run's entries, the same line as `twin runs`
    assert about[("base", "c15")].endswith(", 15 agents, csm") and about[("base", "c25")].endswith(", 25 agents, sfm")
    assert about[("base", "r1")] == ""  # results saved by hand: nothing to say
