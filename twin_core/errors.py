"""The one exception hierarchy of RongTwin.

Every error raised on purpose by RongTwin derives from :class:`TwinError` and
from the builtin exception that fits, so callers may catch either::

    try:
        twin.layer("buildingz")
    except KeyError:          # or twin_core.errors.LayerNotFoundError / TwinError
        ...

This module imports nothing from the project, so every package (``cim``,
``bim_import``, ``simulation``, ``viewer``) may import it without creating an
import cycle. Messages say what is wrong *and* what to do about it.
"""

from __future__ import annotations

__all__ = [
    "twin_warn",
    "TwinError",
    "TwinWarning",
    "RunReplacedWarning",
    "CRSError",
    "SchemaError",
    "FieldError",
    "LayerNotFoundError",
    "RasterError",
    "StoreError",
    "StoreConnectionError",
    "StorePermissionError",
    "StoreLockError",
    "CorruptStoreError",
    "TransactionError",
    "ScenarioError",
    "ImportFormatError",
    "GeoreferenceError",
    "RuleError",
    "SimulationError",
    "ParameterError",
    "StabilityError",
    "NetworkError",
    "GeometryError",
    "JobError",
    "AuthError",
    "ReadingError",
    "FeedError",
]


class TwinError(Exception):
    """Root of every error RongTwin raises on purpose."""


class TwinWarning(UserWarning):
    """A recoverable data problem; the message says how to fix it."""


class RunReplacedWarning(TwinWarning):
    """A run is being saved under an id that holds an earlier run of the same engine, which it replaces; runs
    that used the earlier one (a traffic run ``flooded_by`` it) will refer to the new results. Warned before the
    save commits (:func:`cim.results.saving_run`): where warnings are made errors
    (``warnings.simplefilter("error")``) it is raised instead, the save is rolled back and the earlier run
    stays."""


_OURS = ("twin_core", "cim", "viewer", "simulation", "bim_import", "sample_city", "spatial_index")


def twin_warn(message: str, category: type[Warning] = TwinWarning, stacklevel: int | None = None) -> None:
    """Warn, pointing at the first caller outside RongTwin: the notebook cell or script line that asked.

    ``warnings.warn(..., stacklevel=N)`` counted frames by hand and pointed at an adapter whenever a call
    came through one more layer (``Twin.flood`` -> ``run_flood`` -> ``prepare_flood``), so a notebook
    showed ``twin_core/adapters/flood.py:432`` above the message. ``stacklevel`` is accepted and ignored,
    so that calls read as before.

    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     twin_warn("check the units")
    >>> w[0].category.__name__, str(w[0].message)
    ('TwinWarning', 'check the units')
    """
    import sys
    import warnings

    # stacklevel 1 is this function, 2 the one that called it: climb while the frame is the project's
    level, frame = 2, sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__", "").split(".", 1)[0] in _OURS:
        frame, level = frame.f_back, level + 1
    if frame is None:  # called from nothing but our own code (a thread, the CLI): point at the caller
        level = 2
    warnings.warn(message, category, stacklevel=level)


class CRSError(TwinError, ValueError):
    """Missing, unknown or unsuitable coordinate reference system."""


class SchemaError(TwinError, ValueError):
    """Data does not fit a declared feature class schema."""


class FieldError(SchemaError, KeyError):
    """A field is missing, unknown, or of the wrong type."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class LayerNotFoundError(TwinError, KeyError):
    """A layer, raster, table or blob that does not exist was asked for."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class RasterError(TwinError, ValueError):
    """A raster is malformed, mismatched or has unusable values."""


class StoreError(TwinError, RuntimeError):
    """A store (GeoPackage or PostGIS) operation failed."""


class StoreConnectionError(StoreError, ConnectionError):
    """The store could not be opened or reached."""


class StorePermissionError(StoreError, PermissionError):
    """The database refused the store's role a read (no SELECT on a table, such as one made after the role's
    GRANT); the message names the role, the table and the GRANT to run."""


class StoreLockError(StoreError):
    """A write waited too long (the store's ``lock_timeout``) for a lock another session holds; nothing was
    changed, and the message names that session (pid, application, state, since when)."""


class CorruptStoreError(StoreError, ValueError):
    """The file or database is not a usable RongTwin store."""


class TransactionError(StoreError):
    """A write failed; the store was rolled back to its state before it."""


class ScenarioError(TwinError, ValueError):
    """An unknown scenario, or an edit that cannot be applied."""


class ImportFormatError(TwinError, ValueError):
    """An input file is unreadable, truncated or of an unsupported format."""


class GeoreferenceError(TwinError, ValueError):
    """A model cannot be placed in the twin's coordinate reference."""


class RuleError(TwinError, ValueError):
    """A compliance rule set is malformed or names an unknown rule."""


class SimulationError(TwinError, RuntimeError):
    """A simulation could not run or produced an invalid state."""


class ParameterError(SimulationError, ValueError):
    """An engine parameter or input is out of its valid range."""


class StabilityError(SimulationError):
    """A time step cannot be made stable with the given settings."""


class NetworkError(TwinError, ValueError):
    """A transport network or demand is inconsistent."""


class GeometryError(TwinError, ValueError):
    """Geometry is invalid, empty where it must not be, or misplaced."""


class JobError(TwinError, RuntimeError):
    """A background job failed or is unknown."""


class AuthError(TwinError, PermissionError):
    """Missing or insufficient credentials."""


class ReadingError(TwinError, ValueError):
    """Sensor readings refused (unknown sensor, a time without an offset or in the future, a value that is not
    a finite number); nothing of the batch was stored.

    ``problems`` lists ``(index, reason)`` of every bad reading (index: its position in the batch),
    ``unknown_sensors`` the sensor ids the twin does not have, ``total`` the size of the batch.
    """

    def __init__(self, message: str, problems=(), unknown_sensors=(), total: int = 0) -> None:
        super().__init__(message)
        self.problems = list(problems)
        self.unknown_sensors = list(unknown_sensors)
        self.total = total


class FeedError(TwinError, ConnectionError):
    """A live feed (an MQTT broker) cannot be reached or subscribed to, or what it sent cannot be stored."""
