"""RongTwin facade: open a city twin, read layers, run scenarios and engines.

Heavy modules load lazily, so ``import twin_core`` is cheap and
``twin_core.errors`` can be imported by every other package.

Examples
--------
>>> import twin_core
>>> twin_core.__version__
'0.1.0'
>>> "Twin" in dir(twin_core)     # tab completion offers the lazy names too
True
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

__all__ = ["Twin", "errors", "__version__"]

_LAZY = {"Twin": ("twin_core.twin", "Twin")}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(import_module(module), attr)
    if name == "errors":
        return import_module("twin_core.errors")
    raise AttributeError(f"module 'twin_core' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The module's names and the lazy ones (``twin_core.Tw<Tab>`` offered nothing: ``Twin`` is loaded lazily)."""
    return sorted(set(globals()) | set(__all__))
