"""Coordinate reference handling: one projected CRS per twin.

The Chengdu default is EPSG:4544 (CGCS2000 / 3-degree Gauss-Kruger CM 105E).

Examples
--------
>>> resolve_crs("EPSG:4544").to_epsg()
4544
>>> resolve_crs(None)
Traceback (most recent call last):
...
twin_core.errors.CRSError: no CRS given: name one, e.g. crs='EPSG:4490' (CGCS2000), 'EPSG:4326' (WGS 84) or 'EPSG:32648' (UTM 48N)
"""

from __future__ import annotations

from typing import Any

from twin_core.errors import CRSError

__all__ = ["DEFAULT_CRS", "resolve_crs", "check_projected", "to_twin_crs", "transformer"]

DEFAULT_CRS = "EPSG:4544"
_HINT = "name one, e.g. crs='EPSG:4490' (CGCS2000), 'EPSG:4326' (WGS 84) or 'EPSG:32648' (UTM 48N)"


def resolve_crs(crs: Any):
    """A :class:`pyproj.CRS` from anything pyproj understands, or a clear CRSError."""
    from pyproj import CRS
    from pyproj.exceptions import CRSError as ProjCRSError

    if crs is None or (isinstance(crs, str) and not crs.strip()):
        raise CRSError(f"no CRS given: {_HINT}")
    try:
        return CRS.from_user_input(crs)
    except ProjCRSError as exc:
        raise CRSError(f"unknown CRS {crs!r} ({exc}); {_HINT}") from None


def check_projected(crs: Any):
    """The twin CRS must be projected in metres."""
    c = resolve_crs(crs)
    if not c.is_projected:
        raise CRSError(
            f"the twin CRS must be projected in metres, {c.to_string()} is geographic; "
            "use EPSG:4544 (CGCS2000 GK CM105E, Chengdu) or another projected CRS"
        )
    units = {a.unit_name for a in c.axis_info}
    if not units <= {"metre", "meter"}:
        raise CRSError(f"the twin CRS must use metres, {c.to_string()} uses {sorted(units)}")
    return c


def to_twin_crs(gdf, twin_crs: Any, source_crs: Any = None):
    """Reproject a GeoDataFrame into the twin CRS.

    A frame without a CRS is refused unless ``source_crs`` names one.
    """
    target = resolve_crs(twin_crs)
    if gdf.crs is None:
        if source_crs is None:
            raise CRSError(f"the input has no CRS (no .prj / crs member): {_HINT} with crs=... or --crs")
        gdf = gdf.set_crs(resolve_crs(source_crs), allow_override=True)
    elif source_crs is not None and not resolve_crs(source_crs).equals(gdf.crs):
        raise CRSError(
            f"the input says its CRS is {gdf.crs.to_string()} but crs={source_crs!r} (CLI: --crs) was given; "
            "drop the argument or fix the file"
        )
    if gdf.crs.equals(target):
        return gdf.set_crs(target, allow_override=True)
    return gdf.to_crs(target)


def transformer(src: Any, dst: Any):
    from pyproj import Transformer

    return Transformer.from_crs(resolve_crs(src), resolve_crs(dst), always_xy=True)
