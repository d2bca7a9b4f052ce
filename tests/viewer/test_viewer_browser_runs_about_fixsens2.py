"""The map's run picker says what each run was (``about`` of /api/results: storm, area, agents ...) after its id,
cut to about 60 characters in the list, whole in the option's title."""

from __future__ import annotations

import json
from urllib.parse import urlparse

import test_viewer_browser as browser_module
import test_viewer_browser_runs as runs_module

Page, browser = browser_module.Page, browser_module.browser  # the Chromium fixture

runs_server = runs_module.runs_server
_show_series = runs_module._show_series
LONG = "50-year storm, 30 min, over the whole city with the levee raised 0.5 m on W001 and W002 (2 m cells)"


def test_the_run_picker_says_what_each_run_was(browser, runs_server):
    p = Page(browser, runs_server)

    def results(route):  # the server's answer, with an `about` of our own for the floods
        resp = route.fetch()
        data = resp.json()
        entries = data if isinstance(data, list) else data.get("results", [])  # /api/scene carries them too
        for e in entries:
            if e.get("run") == "storm50":
                e["about"] = LONG
            elif e.get("run") == "later":
                e["about"] = "10-year storm, 1 h"
            elif e.get("run") == "r1":
                e["about"] = ""
        route.fulfill(response=resp, body=json.dumps(data),
                      headers={**resp.headers, "content-type": "application/json"})

    p.ctx.route(lambda url: urlparse(url).path in ("/api/results", "/api/scene"), results)  # runs before the page's
    p.open()
    pg = p.page
    try:
        _show_series(p, "Flood")
        opts = pg.eval_on_selector_all("#run-select option", "os => os.map((o) => [o.value, o.textContent, o.title])")
        by_run = {v: (text, title) for v, text, title in opts}
        assert by_run["later"][0].split(" · ")[0] == "later" and by_run["later"][0].endswith(" · 10-year storm, 1 h")
        text, title = by_run["storm50"]
        shown = text.split(" · ")[-1]
        assert shown.endswith("…") and len(shown) <= 60 and LONG.startswith(shown[:-1]), text
        assert title.endswith(" · " + LONG), title
        assert not by_run["r1"][0].endswith(" · "), by_run["r1"]  # no about: nothing after the time
    finally:
        p.close()
