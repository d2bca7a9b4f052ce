"""The one map: a FastAPI service and a deck.gl page over a city twin.

>>> from viewer import Settings, create_app      # doctest: +SKIP
>>> app = create_app(Settings(store="city.gpkg"))  # doctest: +SKIP

``twin serve city.gpkg`` runs it; ``viewer.server.serve`` is the same from Python.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "Settings", "serve"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from viewer.app import create_app

        return create_app
    if name == "Settings":
        from viewer.settings import Settings

        return Settings
    if name == "serve":
        from viewer.server import serve

        return serve
    raise AttributeError(f"module 'viewer' has no attribute {name!r}")
