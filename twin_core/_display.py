"""How a run object shows in a notebook: one line for ``repr()``, a small table for Jupyter (``_repr_html_``).

A dataclass's own repr printed the whole engine result (every array of a flood run, thousands of lines);
these show what a researcher looks for first: the scenario, the run id, the headline figures, and how to
load the stored results again. Any object with ``scenario``, ``run`` and a ``summary`` dict can use them.

Examples
--------
>>> class R:
...     scenario, run, summary = "levee", "f1", {"engine": "flood", "max_depth_m": 0.91234, "grid": [10, 10]}
>>> run_repr(R(), ("max_depth_m",))
"<R 'levee'/'f1' flood: max_depth_m=0.9123>"
"""

from __future__ import annotations

import html
import numbers

__all__ = ["run_repr", "run_repr_html"]


def _fmt(v) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, numbers.Integral):
        return str(int(v))
    if isinstance(v, numbers.Real):
        return f"{float(v):.4g}"
    return str(v)


def _summary(run) -> dict:
    s = getattr(run, "summary", None)
    return dict(s) if isinstance(s, dict) else {}


def run_repr(run, headline=()) -> str:
    """``<FloodRun 'levee'/'f1' flood: max_depth_m=0.91, ...>``: the ``headline`` keys of the summary that it has."""
    s = _summary(run)
    figures = ", ".join(f"{k}={_fmt(s[k])}" for k in headline if s.get(k) is not None)
    engine = s.get("engine")
    head = f"<{type(run).__name__} {getattr(run, 'scenario', '?')!r}/{getattr(run, 'run', '?')!r}"
    return head + (f" {engine}" if engine else "") + (f": {figures}" if figures else "") + ">"


def run_repr_html(run, saved: bool = True) -> str:
    """A table of the summary's numbers and strings, and the line that loads the stored results."""
    s = _summary(run)
    rows = []
    for k, v in s.items():
        if k in ("scenario", "run"):
            continue
        if isinstance(v, (str, numbers.Real)) or v is None:
            text = _fmt(v)
        elif isinstance(v, (list, tuple)) and len(v) <= 8 and all(isinstance(x, (str, numbers.Real)) for x in v):
            text = ", ".join(_fmt(x) for x in v) if v else "(none)"
        elif isinstance(v, (list, tuple)):
            text = f"{len(v)} items"
        else:
            continue  # nested dicts: in run.summary
        rows.append(f"<tr><th style='text-align:left'>{html.escape(str(k))}</th>"
                    f"<td style='text-align:left'>{html.escape(text)}</td></tr>")
    scen, rid = getattr(run, "scenario", "?"), getattr(run, "run", "?")
    where = (f"stored: <code>twin.load_result({html.escape(repr(scen))}, {html.escape(repr(rid))}, name)</code>; "
             f"<code>twin.results(run={html.escape(repr(rid))})</code> lists them" if saved
             else "not saved (save=False)")
    return (f"<div><b>{html.escape(type(run).__name__)}</b> run <code>{html.escape(str(rid))}</code> on scenario "
            f"<code>{html.escape(str(scen))}</code><br>{where}"
            f"<table>{''.join(rows)}</table>"
            "<small>run.summary (dict), run.result (the engine's arrays and tables)</small></div>")
