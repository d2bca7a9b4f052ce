"""Reading the durations people type (``"90min"``, ``"2h"``) as seconds, for every engine alike."""

from __future__ import annotations

import math
import re

from twin_core.errors import ParameterError

__all__ = ["parse_duration"]

_DUR = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(s|sec|m|min|h|hr|d)?\s*$", re.I)


def parse_duration(value, what: str = "a duration") -> float:
    """Seconds from ``3600``, ``"3600s"``, ``"45m"``/``"45min"``, ``"2h"``, ``"1d"``.

    >>> parse_duration("2h"), parse_duration("90min"), parse_duration("45m"), parse_duration(600)
    (7200.0, 5400.0, 2700.0, 600.0)
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        v = float(value)
    else:
        m = _DUR.match(str(value))
        if not m:
            raise ParameterError(f"cannot read {what} {value!r}; write seconds (3600) or e.g. '90min', '2h'")
        unit = (m.group(2) or "s").lower()
        v = float(m.group(1)) * {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400}[unit]
    if not v > 0 or not math.isfinite(v):
        raise ParameterError(f"{what} must be a finite time > 0 s, got {value!r}")
    return v
