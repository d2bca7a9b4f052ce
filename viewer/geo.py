"""Coordinates for the browser: twin CRS <-> WGS 84 / Web Mercator, tiles, GeoJSON.

Examples
--------
>>> [round(v) for v in tile_bounds_3857(1, 0, 0)]
[-20037508, 0, 0, 20037508]
>>> parse_bbox("104.05,30.63,104.07,30.65")
(104.05, 30.63, 104.07, 30.65)
>>> parse_bbox("5,5,1,1")
Traceback (most recent call last):
...
ValueError: bbox must have xmin <= xmax and ymin <= ymax, got '5,5,1,1'
"""

from __future__ import annotations

import json
import math
from functools import lru_cache

import numpy as np

__all__ = ["to_wgs84", "tile_bounds_3857", "transformer", "frame_to_geojson", "parse_bbox", "lonlat_to_twin"]

_R = 6378137.0
_HALF = math.pi * _R


@lru_cache(maxsize=32)
def transformer(src: str, dst: str):
    from pyproj import Transformer

    return Transformer.from_crs(src, dst, always_xy=True)


def tile_bounds_3857(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """(xmin, ymin, xmax, ymax) of XYZ tile z/x/y in EPSG:3857 metres."""
    n = 2 ** z
    size = 2 * _HALF / n
    xmin = -_HALF + x * size
    ymax = _HALF - y * size
    return (xmin, ymax - size, xmin + size, ymax)


def bounds_to(bounds, src: str, dst: str) -> tuple[float, float, float, float]:
    t = transformer(src, dst)
    return tuple(float(v) for v in t.transform_bounds(*bounds, densify_pts=11))  # type: ignore[return-value]


def lonlat_box_to(box, crs: str) -> tuple[float, float, float, float] | None:
    """A lon/lat box in ``crs``, clipped first to where ``crs`` is defined (a whole-world box would
    otherwise project to nonsense, e.g. x from 500 km in a Gauss-Kruger zone); None when it misses that area."""
    from pyproj import CRS

    aou = CRS.from_user_input(crs).area_of_use
    if aou is not None:
        w, s, e, n = max(box[0], aou.west), max(box[1], aou.south), min(box[2], aou.east), min(box[3], aou.north)
        if w > e or s > n:
            return None
        box = (w, s, e, n)
    return bounds_to(box, "EPSG:4326", crs)


def to_wgs84(bounds, crs: str) -> tuple[float, float, float, float]:
    return bounds_to(bounds, crs, "EPSG:4326")


def lonlat_to_twin(lon: float, lat: float, crs: str) -> tuple[float, float]:
    x, y = transformer("EPSG:4326", crs).transform(lon, lat)
    return float(x), float(y)


def reproject_geoms(geoms, src: str, dst: str):
    import shapely

    t = transformer(src, dst)

    def f(xy: np.ndarray) -> np.ndarray:
        x, y = t.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(np.asarray(geoms), f)


def parse_bbox(text: str | None) -> tuple[float, float, float, float] | None:
    """``"xmin,ymin,xmax,ymax"`` -> floats, or ValueError with what is wrong."""
    if text is None or text == "":
        return None
    parts = text.split(",")
    if len(parts) != 4:
        raise ValueError(f"bbox must be 'xmin,ymin,xmax,ymax' (4 numbers), got {text!r}")
    try:
        vals = tuple(float(p) for p in parts)
    except ValueError:
        raise ValueError(f"bbox must be 4 comma-separated numbers, got {text!r}") from None
    if not all(math.isfinite(v) for v in vals):
        raise ValueError(f"bbox values must be finite numbers, got {text!r}")
    if vals[0] > vals[2] or vals[1] > vals[3]:
        raise ValueError(f"bbox must have xmin <= xmax and ymin <= ymax, got {text!r}")
    return vals  # type: ignore[return-value]


def _jsonable(v):
    if v is None:
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if v is getattr(__import__("pandas"), "NA"):
        return None
    return v


def frame_to_geojson(gdf, crs: str, *, to: str = "EPSG:4326") -> dict:
    """A GeoJSON FeatureCollection (lon/lat by default) from a GeoDataFrame in ``crs``."""
    import shapely

    geoms = gdf.geometry.values
    if to != crs and len(gdf):
        geoms = reproject_geoms(geoms, crs, to)
    gj = shapely.to_geojson(np.asarray(geoms))

    cols = [c for c in gdf.columns if c != gdf.geometry.name]
    records = gdf[cols].to_dict("records") if cols else [{}] * len(gdf)
    feats = []
    for rec, g in zip(records, gj):
        feats.append({"type": "Feature", "properties": {k: _jsonable(v) for k, v in rec.items()},
                      "geometry": json.loads(g) if g is not None else None})
    return {"type": "FeatureCollection", "features": feats}
