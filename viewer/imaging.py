"""Rasters to coloured PNG bitmaps in Web Mercator, for deck.gl's BitmapLayer.

The grid is warped from the twin CRS to EPSG:3857 (so the bitmap lies exactly
on the map) and the bounds come back in longitude/latitude.
"""

from __future__ import annotations

import io
import math

import numpy as np

__all__ = ["hillshade", "render_png", "STYLES", "warp_to_3857"]

STYLES = ("hillshade", "depth", "elevation", "value", "diff")


def style_for(name: str) -> str:
    """The style a raster or result is drawn in unless one is asked for: the DEM shaded, a comparison's
    difference (a name ending '_diff', ``twin compare``) on a diverging ramp round 0, water depths (a name with
    'depth' or 'flood') on the depth ramp, anything else on viridis over its own range.

    >>> style_for("dem"), style_for("max_depth"), style_for("sunlight_hours"), style_for("max_depth_diff")
    ('hillshade', 'depth', 'value', 'diff')
    """
    if name == "dem":
        return "hillshade"
    if name.endswith("_diff"):
        return "diff"
    return "depth" if ("depth" in name or "flood" in name) else "value"


def diff_range(values: np.ndarray, vmin: float | None = None, vmax: float | None = None) -> tuple[float, float]:
    """The symmetric range (-m, m) a difference is drawn over, so that 0 (no change) sits in the middle: m is
    the largest of |vmin|, |vmax| given, else the largest |value|."""
    if vmin is not None or vmax is not None:
        m = max(abs(v) for v in (vmin, vmax) if v is not None)
    else:
        a = np.abs(np.asarray(values, dtype="float64"))
        a = a[np.isfinite(a)]
        m = float(a.max()) if a.size else 0.0
    m = m if m > 0 else 1.0
    return -m, m
MAX_PIXELS = 1600  # longest side of a bitmap


def hillshade(z: np.ndarray, res: tuple[float, float], azimuth: float = 315.0, altitude: float = 45.0,
              exaggeration: float = 2.0) -> np.ndarray:
    """Lambertian hillshade in 0..1 (NaN where the input is NaN); Horn's slope via np.gradient."""
    zz = np.where(np.isfinite(z), z, np.nanmean(z) if np.isfinite(z).any() else 0.0) * exaggeration
    dy, dx = np.gradient(zz, res[1], res[0])
    slope = np.arctan(np.hypot(dx, dy))
    aspect = np.arctan2(dy, -dx)
    az = math.radians(360.0 - azimuth + 90.0)
    alt = math.radians(altitude)
    shade = np.sin(alt) * np.cos(slope) + np.cos(alt) * np.sin(slope) * np.cos(az - aspect)
    out = np.clip(shade, 0, 1)
    out[~np.isfinite(z)] = np.nan
    return out


def warp_to_3857(data: np.ndarray, transform, crs: str, *, resampling: str = "bilinear"):
    """(array in EPSG:3857, its transform) with NaN outside; at most MAX_PIXELS a side."""
    from rasterio.enums import Resampling
    from rasterio.warp import calculate_default_transform, reproject

    rows, cols = data.shape
    left, top = transform.c, transform.f
    right, bottom = left + cols * transform.a, top + rows * transform.e
    dst_t, w, h = calculate_default_transform(crs, "EPSG:3857", cols, rows, left, bottom, right, top)
    scale = max(w, h) / MAX_PIXELS
    if scale > 1:
        from affine import Affine

        w, h = max(1, int(w / scale)), max(1, int(h / scale))
        dst_t = dst_t * Affine.scale(scale, scale)
    dst = np.full((h, w), np.nan, dtype="float32")
    reproject(np.asarray(data, dtype="float32"), dst, src_transform=transform, src_crs=crs, src_nodata=np.nan,
              dst_transform=dst_t, dst_crs="EPSG:3857", dst_nodata=np.nan,
              resampling=getattr(Resampling, resampling))
    return dst, dst_t


def _ramp(stops: list[tuple[float, tuple[int, int, int, int]]], v: np.ndarray) -> np.ndarray:
    xs = np.array([s[0] for s in stops])
    cols = np.array([s[1] for s in stops], dtype=float)
    out = np.zeros(v.shape + (4,), dtype=np.uint8)
    vv = np.where(np.isfinite(v), v, xs[0])
    for k in range(4):
        out[..., k] = np.interp(vv, xs, cols[:, k]).astype(np.uint8)
    out[~np.isfinite(v)] = 0
    return out


def colourise(values: np.ndarray, style: str, vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """RGBA uint8 image for ``style`` (see :data:`STYLES`)."""
    if style == "hillshade":
        g = np.where(np.isfinite(values), 40 + 200 * values, 0).astype(np.uint8)
        rgba = np.stack([g, g, (g * 0.95).astype(np.uint8), np.where(np.isfinite(values), 255, 0).astype(np.uint8)], -1)
        return rgba
    if style == "depth":
        v = np.where(values < (vmin if vmin is not None else 0.01), np.nan, values)
        top = vmax if vmax is not None else 2.0
        return _ramp([(0.0, (160, 220, 255, 120)), (0.3 * top, (60, 150, 240, 190)),
                      (top, (10, 40, 160, 235))], v)
    if style == "diff":  # blue where B is lower, red where higher, clear where nothing changed
        lo, hi = diff_range(values, vmin, vmax)
        return _ramp([(lo, (33, 102, 172, 235)), (0.5 * lo, (103, 169, 207, 200)), (0.0, (247, 247, 247, 0)),
                      (0.5 * hi, (239, 138, 98, 200)), (hi, (178, 24, 43, 235))], values)
    finite = values[np.isfinite(values)]
    lo = vmin if vmin is not None else (float(finite.min()) if finite.size else 0.0)
    hi = vmax if vmax is not None else (float(finite.max()) if finite.size else 1.0)
    if hi <= lo:
        hi = lo + 1.0
    t = (values - lo) / (hi - lo)
    return _ramp([(0.0, (68, 1, 84, 255)), (0.25, (59, 82, 139, 255)), (0.5, (33, 145, 140, 255)),
                  (0.75, (94, 201, 98, 255)), (1.0, (253, 231, 37, 255))], t)


def render_png(raster, style: str, *, vmin: float | None = None, vmax: float | None = None,
               data: np.ndarray | None = None) -> tuple[bytes, list[float], dict]:
    """PNG bytes, bounds [west, south, east, north] in lon/lat, and stats of the values shown."""
    from PIL import Image

    from viewer.geo import bounds_to

    if style not in STYLES:
        raise ValueError(f"style must be one of {list(STYLES)}, got {style!r}")
    vals = raster.masked() if data is None else np.asarray(data, dtype="float64")
    finite = vals[np.isfinite(vals)]
    stats = {"min": float(finite.min()) if finite.size else None, "max": float(finite.max()) if finite.size else None}
    if style == "hillshade":
        vals = hillshade(vals, raster.res)
    warped, t = warp_to_3857(vals, raster.transform, raster.crs)
    rgba = colourise(warped, style, vmin, vmax)
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG", optimize=False, compress_level=6)
    h, w = warped.shape
    b3857 = (t.c, t.f + h * t.e, t.c + w * t.a, t.f)
    west, south, east, north = bounds_to(b3857, "EPSG:3857", "EPSG:4326")
    return buf.getvalue(), [west, south, east, north], stats
