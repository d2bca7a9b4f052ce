"""The scenario parameters the engines read (``twin scenario set``, the map's ``set_param`` edit), what each value
must be, and its check: one table for the CLI, the map server and Python.

>>> check_scenario_param("traffic_demand_scale", 1.2)
>>> check_scenario_param("traffic_demand_scale", "lots")
Traceback (most recent call last):
...
twin_core.errors.ParameterError: scenario parameter 'traffic_demand_scale' takes a number >= 0 and at most 10 (it multiplies the run's demand, by default the real Chengdu peak's density; at most 10 times it), e.g. 1.2, got "lots"

Link ids (``traffic_closed_links``, the keys of ``traffic_capacity_factor``) are checked against the road links
as of the scenario when one is given (``scenario=``): an unknown id would make every later traffic run on it fail.
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


def _scale(v) -> bool:
    """A number >= 0 and at most the traffic adapter's MAX_PEAK_MULTIPLE (the run refuses more)."""
    from twin_core.adapters.traffic import MAX_PEAK_MULTIPLE

    return _number(v) and v <= MAX_PEAK_MULTIPLE


def _link_id(v) -> bool:
    return isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool))


def scenario_params() -> dict[str, tuple[str, Callable[[Any], bool]]]:
    """The scenario parameters the engines read, each with what its value must be and a check of a value as the
    engine reads it (False: the engine would refuse it, or misread it)."""
    from twin_core.adapters.crowd import CLOSED_EXITS_PARAM, CLOSED_EXITS_REACH_PARAM, _exit_names
    from twin_core.adapters.traffic import CAPACITY_PARAM, CLOSED_LINKS_PARAM, DEMAND_SCALE_PARAM, MAX_PEAK_MULTIPLE

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
        DEMAND_SCALE_PARAM: (f"a number >= 0 and at most {MAX_PEAK_MULTIPLE:g} (it multiplies the run's demand, by default "
                             f"the real Chengdu peak's density; at most {MAX_PEAK_MULTIPLE:g} times it), e.g. 1.2", _scale),
        CLOSED_EXITS_PARAM: ("an exit name or a list of exit names, e.g. [\"north gate\"]", exits),
        CLOSED_EXITS_REACH_PARAM: (f"the --road-reach (metres > 0) the {CLOSED_EXITS_PARAM} names were made with, "
                                   "e.g. 10", lambda v: v is None or (_number(v) and v > 0)),
    }


def check_scenario_param(key: str, value: Any, scenario=None) -> None:
    """A :class:`ParameterError` for a value of a parameter the engines read that they would not take (a
    parameter no engine reads is not checked here: the CLI records it with a warning, the map refuses it).

    ``scenario`` (a :class:`cim.scenario.Scenario`, the one the value is set on): link ids are also checked
    against its road links, as the traffic run checks them (a two-way road's id, or its reverse ``<id>:r``)."""
    known = scenario_params()
    if key in known:
        what, ok = known[key]
        if not ok(value):
            shown = json.dumps(value, ensure_ascii=False, default=str)
            shown = shown if len(shown) <= 200 else shown[:200] + "..."
            raise ParameterError(f"scenario parameter {key!r} takes {what}, got {shown}")
    if scenario is not None:
        _check_link_ids(key, value, scenario)


def _check_link_ids(key: str, value: Any, scenario) -> None:
    """Unknown link ids in ``traffic_closed_links`` / ``traffic_capacity_factor`` refused, with ids close to them."""
    from twin_core.adapters.traffic import CAPACITY_PARAM, CLOSED_LINKS_PARAM, _close_ids, network_links

    if key == CLOSED_LINKS_PARAM and value is not None:
        ids = [value] if not isinstance(value, list) else value
    elif key == CAPACITY_PARAM and isinstance(value, dict):
        ids = list(value)
    else:
        return
    if not ids:
        return
    ids = [str(x) for x in ids]
    try:
        roads = scenario.layer("road_links")
    except KeyError:  # no road_links layer (LayerNotFoundError)
        raise ParameterError(f"scenario parameter {key!r} names road links {ids[:5]}, but this twin has no "
                             "road_links layer; import a road network first (twin import STORE FILE --class "
                             "road_links)") from None
    links = network_links(roads)
    known = set(links["link_id"].astype(str))
    bad = [x for x in ids if x not in known]
    if bad:
        raise ParameterError(f"scenario parameter {key!r} names link{'s' if len(bad) > 1 else ''} "
                             f"{', '.join(map(repr, bad[:5]))}{f' and {len(bad) - 5} more' if len(bad) > 5 else ''}, "
                             f"not in road_links as of scenario {scenario.name!r}; every traffic run on it would "
                             f"fail. Give link ids of the road_links layer" + _close_ids(bad[0], links))
