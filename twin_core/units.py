"""Reading what people type for the engines, alike everywhere: durations (``"90min"``, ``"2h"``) as seconds,
numbers given as numbers (:func:`as_number`) and counts as whole numbers (:func:`as_count`). The adapters
call these, so a notebook (``twin.crowd(...)``), a script calling an adapter and the ``twin`` CLI get the
same checks and messages."""

from __future__ import annotations

import datetime
import math
import numbers
import re

import numpy as np

from twin_core.errors import ParameterError

__all__ = ["as_count", "as_number", "is_bare_number", "parse_duration", "parse_offset"]

_DUR = re.compile(r"^\s*([+-]?)\s*([0-9]*\.?[0-9]+)\s*(s|sec|m|min|h|hr|d)?\s*$", re.I)
_UNIT_S = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400}


def _seconds(value, what: str) -> float:
    """Seconds, of any sign, from a number (NumPy's too), a text such as ``"-30min"``, or a
    ``datetime.timedelta`` / ``pandas.Timedelta`` / ``numpy.timedelta64`` (a notebook's own durations were
    refused: "cannot read a duration Timedelta('0 days 00:05:00')")."""
    if isinstance(value, datetime.timedelta):  # pandas.Timedelta too
        return value.total_seconds()
    if isinstance(value, np.timedelta64):  # before Real: NumPy registers it as an integer
        if np.isnat(value):
            raise ParameterError(f"{what} is NaT (not a time); write seconds (3600) or e.g. '90min', '2h'")
        if np.datetime_data(value.dtype)[0] in ("Y", "M", "generic"):
            raise ParameterError(f"{what} {value!r} has no fixed length in seconds (years, months or no unit); "
                                 "write seconds (3600) or e.g. '90min', '2h'")
        return float(value / np.timedelta64(1, "ns")) / 1e9
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        try:
            return float(value)
        except OverflowError:  # an int of 400 digits: no float holds it
            raise ParameterError(f"{what} {str(value)[:20]}... ({len(str(value))} digits) is beyond any duration; "
                                 "write seconds (3600) or e.g. '90min', '2h'") from None
    m = _DUR.match(str(value))
    if not m:
        raise ParameterError(f"cannot read {what} {value!r}; write seconds (3600) or e.g. '90min', '2h'")
    v = float(m.group(2)) * _UNIT_S[(m.group(3) or "s").lower()]
    return -v if m.group(1) == "-" else v


def parse_duration(value, what: str = "a duration") -> float:
    """Seconds from ``3600``, ``"3600s"``, ``"45m"``/``"45min"``, ``"2h"``, ``"1d"``.

    >>> parse_duration("2h"), parse_duration("90min"), parse_duration("45m"), parse_duration(600)
    (7200.0, 5400.0, 2700.0, 600.0)
    >>> import datetime, numpy as np
    >>> parse_duration(datetime.timedelta(minutes=30)), parse_duration(np.timedelta64(2, "h"))
    (1800.0, 7200.0)
    """
    v = _seconds(value, what)
    if not v > 0 or not math.isfinite(v):
        raise ParameterError(f"{what} must be a finite time > 0 s, got {value!r}")
    return v


def parse_offset(value, what: str = "an offset") -> float:
    """Seconds, zero or of either sign, from a number or a duration: when something starts relative to
    something else (``"-30min"``: half an hour before; ``"+15min"``, ``"0"``).

    >>> parse_offset("-30min"), parse_offset("+15min"), parse_offset("0h"), parse_offset(90)
    (-1800.0, 900.0, 0.0, 90.0)
    """
    v = _seconds(value, what)
    if not math.isfinite(v):
        raise ParameterError(f"{what} must be a finite number of seconds, got {value!r}")
    return v + 0.0  # -0.0 as 0.0


def is_bare_number(value) -> bool:
    """Whether ``value`` is a number without a unit (``10``, ``"10"``), which the parsers read as seconds: worth a
    warning where minutes were more likely meant.

    >>> is_bare_number(10), is_bare_number("10"), is_bare_number("10min")
    (True, True, False)
    """
    if isinstance(value, (datetime.timedelta, np.timedelta64)):
        return False
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        return True
    m = _DUR.match(str(value))
    return bool(m) and m.group(3) is None


_LEADING_NUMBER = re.compile(r"^\s*([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:e[+-]?[0-9]+)?)", re.I)


def as_number(value, name: str, unit: str | None = None, *, example=None, about: str | None = None,
              allow_none: bool = False) -> float | None:
    """``value`` as a float when it is a real number (NumPy scalars and 0-d arrays too); else a ParameterError
    that names the argument, its unit and how to write it.

    A number typed as text (``threshold="0.15"``, ``drainage_mm_h="20mm/h"``) failed far from the call: a
    range check that said the value was wrong ("must be > 0 m, got '0.15'"), or a bare "could not convert
    string to float" that named no argument. The error suggests the number the text starts with, else
    ``example``. ``about`` says what the number is, in brackets after the unit. No range check: the caller
    knows the range.

    Examples
    --------
    >>> import numpy as np
    >>> as_number(0.15, "threshold", "metres"), as_number(np.float32(0.5), "threshold", "metres")
    (0.15, 0.5)
    >>> as_number("20mm/h", "drainage_mm_h", "mm/h", example=20)
    Traceback (most recent call last):
    ...
    twin_core.errors.ParameterError: drainage_mm_h must be a number of mm/h, got str '20mm/h'; write drainage_mm_h=20
    >>> as_number("heavy", "drainage_mm_h", "mm/h", example=20)
    Traceback (most recent call last):
    ...
    twin_core.errors.ParameterError: drainage_mm_h must be a number of mm/h, got str 'heavy'; write e.g. drainage_mm_h=20
    """
    if value is None and allow_none:
        return None
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":
        value = value[()]
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        return float(value)
    hint = ""
    m = _LEADING_NUMBER.match(value) if isinstance(value, str) else None
    if m:
        hint = f"; write {name}={m.group(1).strip().lstrip('+')}"
    elif example is not None:
        hint = f"; write e.g. {name}={example!r}"
    what = (f" of {unit}" if unit else "") + (f" ({about})" if about else "")
    raise ParameterError(f"{name} must be a number{what}, got {type(value).__name__} {value!r}"[:300] + hint)


def as_count(value, name: str, what: str | None, *, minimum: int | None = None) -> int:
    """``value`` as an int when it is a whole number: an int (NumPy's too) or a float with no fraction
    (``np.linspace(100, 1000, 4)`` in a sweep); else a ParameterError that names the argument and what it
    counts (``what``; None for a number that counts nothing, such as a seed), and how to write it. ``minimum``:
    the least count allowed.

    The crowd engine said "n must be a whole number of agents (int)" for ``agents=200.0`` or ``"200"``, a
    name the caller never typed.

    Examples
    --------
    >>> import numpy as np
    >>> as_count(np.float64(200.0), "agents", "people"), as_count(np.int32(5), "agents", "people")
    (200, 5)
    >>> as_count("200", "agents", "people")
    Traceback (most recent call last):
    ...
    twin_core.errors.ParameterError: agents must be a whole number of people, got str '200'; write agents=200
    >>> as_count(0, "agents", "people", minimum=1)
    Traceback (most recent call last):
    ...
    twin_core.errors.ParameterError: agents must be at least 1 (a whole number of people), got 0
    """
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":
        value = value[()]
    n = None
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
        n = int(value)
    elif (isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
          and math.isfinite(value) and float(value).is_integer()):
        n = int(value)
    if n is None:
        hint = ""
        if isinstance(value, str):
            try:
                v = float(value)
            except ValueError:
                v = math.nan
            if math.isfinite(v) and v.is_integer():
                hint = f"; write {name}={int(v)}"
        whole = f"a whole number of {what}" if what else "a whole number"
        raise ParameterError(f"{name} must be {whole}, got {type(value).__name__} {value!r}"[:300] + hint)
    if minimum is not None and n < minimum:
        raise ParameterError(f"{name} must be at least {minimum} (a whole number{f' of {what}' if what else ''}), "
                             f"got {n}")
    return n
