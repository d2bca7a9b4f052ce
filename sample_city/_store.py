"""Write the sample city into a store."""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["build_into"]


def build_into(path_or_store: Any, size: str = "small", seed: int = 0,
               progress: Callable[[float, float], None] | None = None, *, city=None):
    """Build the sample city and write it into a store, in one transaction.

    Parameters
    ----------
    path_or_store : str, PathLike or cim.store.Store
        A ``.gpkg`` path or a PostGIS DSN (created if missing), or an open store.
    size, seed : see :func:`sample_city.build`.
    progress : callable(done, total), optional
        Called with fractions of 1.0 (building takes ~70 %, writing the rest).
    city : SampleCity, optional
        An already built city to write (``size`` and ``seed`` are then ignored).

    Returns
    -------
    SampleCity
        The city that was written.

    Examples
    --------
    >>> import tempfile, os
    >>> from cim import open_store
    >>> path = os.path.join(tempfile.mkdtemp(), "city.gpkg")
    >>> city = build_into(path, "small")
    >>> with open_store(path) as s:
    ...     s.get_meta()["timezone"], len(s.read_layer("road_nodes")) == len(city["road_nodes"])
    ('Asia/Shanghai', True)
    """
    from cim.store import Store, open_store
    from sample_city._city import CRS, build

    report = progress or (lambda done, total: None)
    if city is None:
        city = build(size, seed, progress=lambda d, t: report(0.7 * d / t, 1.0))
    report(0.7, 1.0)
    owned = not isinstance(path_or_store, Store)
    store = open_store(path_or_store, create=True, crs=CRS) if owned else path_or_store
    try:
        steps = len(city.layers) + len(city.rasters) + 1
        done = 0
        with store.transaction():
            for name, gdf in city.layers.items():
                store.write_layer(name, gdf, mode="replace")
                done += 1
                report(0.7 + 0.3 * done / steps, 1.0)
            for name, raster in city.rasters.items():
                store.write_raster(name, raster)
                done += 1
                report(0.7 + 0.3 * done / steps, 1.0)
            for name, df in city.tables.items():  # plain tables: the road network's allowed turns (road_turns)
                store.write_table(name, df, mode="replace")
            store.set_meta(city.meta())
        report(1.0, 1.0)
    finally:
        if owned:
            store.close()
    return city
