"""The scenario parameters the engines read (``twin scenario set``, the map's ``set_param`` edit), what each value
must be, and its check: one table for the CLI, the map server and Python.

>>> check_scenario_param("traffic_demand_scale", 1.2)
>>> check_scenario_param("traffic_demand_scale", "lots")
Traceback (most recent call last):
...
twin_core.errors.ParameterError: scenario parameter 'traffic_demand_scale' takes a number >= 0 (it multiplies the trips of the land use), e.g. 1.2, got "lots"
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable

from twin_core.errors import ParameterError

__all__ = ["scenario_params", "check_scenario_param"]


def _number(v) -> bool:
    """A finite number >= 0 (an int of 400 digits is no float: the engine's float() of it overflowed)."""
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return False
    try:
        return math.isfinite(float(v)) and v >= 0
    except OverflowError:
        return False


def _link_id(v) -> bool:
    return isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool))


def scenario_params() -> dict[str, tuple[str, Callable[[Any], bool]]]:
    """The scenario parameters the engines read, each with what its value must be and a check of a value as the
    engine reads it (False: the engine would refuse it, or misread it)."""
    from twin_core.adapters.crowd import CLOSED_EXITS_PARAM, _exit_names
    from twin_core.adapters.traffic import CAPACITY_PARAM, CLOSED_LINKS_PARAM, DEMAND_SCALE_PARAM

    def exits(v) -> bool:
        try:
            _exit_names(v, CLOSED_EXITS_PARAM)
        except ParameterError:
            return False
        return True

    return {
        CLOSED_LINKS_PARAM: ("a list of road link ids (or one id), e.g. [\"L12\", \"L13\"]",
                             lambda v: v is None or _link_id(v) or (isinstance(v, list) and all(map(_link_id, v)))),
        CAPACITY_PARAM: ("a mapping {link_id: factor}, each factor a number >= 0, e.g. {\"L12\": 0.5}",
                         lambda v: v is None or (isinstance(v, dict) and all(map(_number, v.values())))),
        DEMAND_SCALE_PARAM: ("a number >= 0 (it multiplies the trips of the land use), e.g. 1.2", _number),
        CLOSED_EXITS_PARAM: ("an exit name or a list of exit names, e.g. [\"north gate\"]", exits),
    }


def check_scenario_param(key: str, value: Any) -> None:
    """A :class:`ParameterError` for a value of a parameter the engines read that they would not take (a
    parameter no engine reads is not checked here: the CLI records it with a warning, the map refuses it)."""
    known = scenario_params()
    if key in known:
        what, ok = known[key]
        if not ok(value):
            shown = json.dumps(value, ensure_ascii=False, default=str)
            shown = shown if len(shown) <= 200 else shown[:200] + "..."
            raise ParameterError(f"scenario parameter {key!r} takes {what}, got {shown}")
