"""What the server holds while it runs: one twin behind one lock, caches, jobs.

The stores are not safe for concurrent use (one SQLite connection, one
psycopg connection, and GeoPackage transactions swap the file), so every
store call goes through :class:`LockedStore`, which holds a re-entrant lock
for the call (and for the whole of a ``transaction()`` block). Simulation
jobs share the same locked store: they hold the lock only while they read
inputs or write results, not while they compute.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from contextlib import contextmanager
from typing import Any, Callable, Iterator

__all__ = ["LockedStore", "LRU", "AppState"]


class LockedStore:
    """Forward every call to ``store`` while holding ``lock``."""

    def __init__(self, store, lock: threading.RLock) -> None:
        self._store = store
        self._lock = lock

    @property
    def raw(self):
        return self._store

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    def __getattr__(self, name: str) -> Any:
        with self._lock:  # a property (crs reads the meta table) runs SQL too: not beside another thread's write
            attr = getattr(self._store, name)
        if not callable(attr):
            return attr
        lock = self._lock

        def call(*args, **kwargs):
            with lock:
                return attr(*args, **kwargs)

        call.__name__ = name
        return call

    @contextmanager
    def transaction(self) -> Iterator["LockedStore"]:
        with self._lock, self._store.transaction():
            yield self

    def __repr__(self) -> str:
        return f"<LockedStore {self._store!r}>"


class LRU:
    """A small thread-safe LRU cache of bytes (tiles, PNGs)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._d: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self._inflight: dict = {}
        self.hits = 0
        self.misses = 0

    def get(self, key):
        with self._lock:
            if key in self._d:
                self._d.move_to_end(key)
                self.hits += 1
                return self._d[key]
            self.misses += 1
            return None

    def put(self, key, value) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._d[key] = value
            self._d.move_to_end(key)
            while len(self._d) > self.size:
                self._d.popitem(last=False)

    def get_or_make(self, key, make: Callable[[], Any]):
        """The cached value, or make it once (concurrent callers of one key wait for the first)."""
        v = self.get(key)
        if v is not None:
            return v
        with self._lock:
            ev = self._inflight.get(key)
            mine = ev is None
            if mine:
                ev = self._inflight[key] = threading.Event()
        if not mine:
            ev.wait(timeout=120)
            v = self.get(key)
            if v is not None:
                return v
        try:
            v = make()
            self.put(key, v)
            return v
        finally:
            if mine:
                with self._lock:
                    self._inflight.pop(key, None)
                ev.set()

    def clear(self, pred: Callable[[Any], bool] | None = None) -> None:
        with self._lock:
            if pred is None:
                self._d.clear()
            else:
                for k in [k for k in self._d if pred(k)]:
                    del self._d[k]


class AppState:
    """Everything loaded once in the app's lifespan."""

    def __init__(self, settings, twin, store: LockedStore) -> None:
        self.settings = settings
        self.twin = twin
        self.store = store
        self.lock = store.lock
        self.tiles = LRU(settings.tile_cache)
        self.images = LRU(max(64, settings.tile_cache // 16))
        self.frames: dict = {}  # (layer, scenario) -> projected frame for tiling
        self.frames_lock = threading.Lock()
        self.jobs = None  # set by the app (viewer.jobs.JobManager)
        self.sensor_readings = None  # cim.sensors.ReadingsCache, made by the sensors router on its first request
        self._info: dict = {}
        self._info_lock = threading.Lock()

    def layer_info(self, name: str, ttl: float = 5.0) -> dict | None:
        """``store.layer_info`` cached for ``ttl`` seconds (None if there is no such layer)."""
        import time

        now = time.monotonic()
        with self._info_lock:
            hit = self._info.get(name)
            if hit is not None and now - hit[0] < ttl:
                return hit[1]
        info = self.store.layer_info(name) if self.store.has_layer(name) else None
        with self._info_lock:
            self._info[name] = (now, info)
        return info

    def invalidate(self, scenario: str | None = None) -> None:
        """Forget cached tiles/frames (all, or those of one scenario)."""
        with self._info_lock:
            self._info.clear()
        if scenario is None:
            self.tiles.clear()
            self.images.clear()
            with self.frames_lock:
                self.frames.clear()
            return
        self.tiles.clear(lambda k: k[1] == scenario)
        self.images.clear(lambda k: scenario in k)
        with self.frames_lock:
            for k in [k for k in self.frames if k[1] == scenario]:
                del self.frames[k]
