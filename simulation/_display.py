"""A short ``repr`` for the engines' result dataclasses: their arrays and tables by shape, not by content.

``repr(flood.result)`` printed every array (truncated by NumPy, still ~6 kB of numbers per result) in a
notebook cell; a researcher wants to see what is there.

Examples
--------
>>> from dataclasses import dataclass
>>> import numpy as np, pandas as pd
>>> @dataclass(repr=False)
... class R:
...     depth: np.ndarray
...     gauges: pd.DataFrame
...     steps: int
...     info: dict
...     __repr__ = compact_repr
>>> R(np.zeros((2, 3)), pd.DataFrame({"a": [1]}), 5, {"x": 1, "y": 2})
<R depth=float64[2x3] gauges=DataFrame[1 row: a] steps=5 info={2 keys}>
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

__all__ = ["compact_repr", "describe"]


def describe(v) -> str:
    """One short word for a value: arrays and tables by type and shape, scalars as themselves."""
    if isinstance(v, np.ndarray):
        return f"{v.dtype}[{'x'.join(map(str, v.shape)) or 'scalar'}]"
    if isinstance(v, pd.DataFrame):
        cols = ", ".join(map(str, v.columns[:6])) + (", ..." if len(v.columns) > 6 else "")
        return f"DataFrame[{len(v):,} row{'' if len(v) == 1 else 's'}: {cols}]"
    if isinstance(v, dict):
        return f"{{{len(v)} key{'' if len(v) == 1 else 's'}}}"
    if isinstance(v, (list, tuple)):
        return f"[{len(v)} item{'' if len(v) == 1 else 's'}]" if len(v) > 4 else repr(list(v))
    if isinstance(v, float):
        return f"{v:.6g}"
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def compact_repr(self) -> str:
    """``<ClassName field=short ...>`` for a dataclass instance (use as ``__repr__``)."""
    parts = [f"{f.name}={describe(getattr(self, f.name))}" for f in dataclasses.fields(self)]
    return f"<{type(self).__name__} {' '.join(parts)}>"
