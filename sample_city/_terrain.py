"""Terrain of the sample city: a DEM of the Chengdu plain, the river and the Manning raster.

The DEM is a function of world coordinates, so every size of the city (and each
tile of the large one) sees the same ground where they overlap:

- plain: 500 m at the centre of the network, falling to the south-east at
  :data:`SLOPE_M_PER_KM` (the Chengdu plain falls from about 540 m in the
  north-west to about 450 m in the south-east over ~40 km);
- undulations: a few long sine waves (wavelengths 0.4-2 km), about +-1 m;
- streets: 0.15 m below the blocks (kerbs), so streets carry surface water;
- the river: a channel :data:`RIVER_DEPTH_M` deep (parabolic cross-section)
  whose bed follows the plain's trend along the river, so it always flows
  downstream (north-west to south-east).
"""

from __future__ import annotations

import numpy as np
import shapely
from affine import Affine

SLOPE_M_PER_KM = 1.5
BASE_ELEV_M = 500.0
RIVER_WIDTH_M = 40.0
RIVER_DEPTH_M = 2.5
RIVER_NORMAL_DEPTH_M = 1.0
KERB_M = 0.15

#: Manning n by land cover (s/m^(1/3)); see :func:`manning_raster`.
MANNING = {
    "yard": 0.025,     # compound ground inside blocks: mixed paving, lawns and trees
    "road": 0.015,     # streets (network roads and local streets), sidewalks: asphalt, paving
    "plaza": 0.015,    # paved square
    "building": 0.015, # roofs/ground floor (flood adapters may block these cells using the buildings layer)
    "green": 0.035,    # parks, river greenways (grass)
    "water": 0.030,    # natural river channel
}


def river_centreline(world_extent: tuple[float, float, float, float], seed: int) -> shapely.LineString:
    """A meandering river crossing ``world_extent`` from north-west to south-east."""
    x0, y0, x1, y1 = world_extent
    h = y1 - y0
    rng = np.random.default_rng([seed, 101])
    a = np.array([x0 - 150.0, y0 + 0.80 * h])
    b = np.array([x1 + 150.0, y0 + 0.22 * h])
    t = np.linspace(0.0, 1.0, 400)
    d = b - a
    n = np.array([-d[1], d[0]]) / np.hypot(*d)
    phase = rng.uniform(0, 2 * np.pi)
    amp = 70.0 + 30.0 * rng.uniform()
    off = amp * np.sin(2 * np.pi * 2.3 * t + phase) * np.sin(np.pi * t) ** 0.3
    pts = a + t[:, None] * d + off[:, None] * n
    return shapely.LineString(pts)


def _trend(x, y, centre):
    s = ((x - centre[0]) - (y - centre[1])) / np.sqrt(2.0)  # distance towards the south-east
    return BASE_ELEV_M - SLOPE_M_PER_KM / 1000.0 * s


def _undulation(x, y, seed):
    rng = np.random.default_rng([seed, 102])
    z = np.zeros(np.broadcast(x, y).shape, dtype="float64")
    for _ in range(5):
        wl = rng.uniform(400.0, 2000.0)
        ang = rng.uniform(0, np.pi)
        amp = rng.uniform(0.15, 0.35)
        ph = rng.uniform(0, 2 * np.pi)
        z += amp * np.sin(2 * np.pi * (x * np.cos(ang) + y * np.sin(ang)) / wl + ph)
    return z


def grid(extent: tuple[float, float, float, float], res: float) -> tuple[Affine, tuple[int, int]]:
    x0, y0, x1, y1 = extent
    cols = int(round((x1 - x0) / res))
    rows = int(round((y1 - y0) / res))
    return Affine(res, 0.0, x0, 0.0, -res, y1), (rows, cols)


def dem_array(extent, res, centre, seed, rivers, road_mask=None) -> np.ndarray:
    """The DEM (float32) on the grid of ``extent`` at ``res``.

    ``rivers``: river centre lines (world coordinates); ``road_mask``: bool
    array of street cells (lowered by :data:`KERB_M`).
    """
    from rasterio.features import rasterize
    from scipy import ndimage

    transform, (rows, cols) = grid(extent, res)
    xs = extent[0] + (np.arange(cols) + 0.5) * res
    ys = extent[3] - (np.arange(rows) + 0.5) * res
    X, Y = np.meshgrid(xs, ys)
    trend = _trend(X, Y, centre)
    z = trend + _undulation(X, Y, seed)
    if road_mask is not None:
        z = z - KERB_M * road_mask
    lines = [r for r in rivers if r is not None and not r.is_empty]
    if lines:
        mask = rasterize(((ln, 1) for ln in lines), out_shape=(rows, cols), transform=transform, fill=0,
                         all_touched=True, dtype="uint8")
        if mask.any():
            dist, (ri, ci) = ndimage.distance_transform_edt(mask == 0, return_indices=True)
            dist = dist * res
            hw = RIVER_WIDTH_M / 2.0
            bed = trend[ri, ci] - RIVER_DEPTH_M
            bank = 1.6 * hw
            # parabolic channel to the water's edge, then a gentle bank up to the plain
            chan = np.where(dist <= hw, bed + RIVER_DEPTH_M * (dist / hw) ** 2,
                            bed + RIVER_DEPTH_M + 1.5 * (dist - hw) / (bank - hw))
            inside = dist <= bank
            z = np.where(inside, np.minimum(z, chan), z)
    return z.astype("float32")


def river_bed(points_xy: np.ndarray, centre) -> np.ndarray:
    """Channel bed elevation at points on the river centre line."""
    return _trend(points_xy[:, 0], points_xy[:, 1], centre) - RIVER_DEPTH_M


def manning_raster(extent, res, *, yards=None, green=None, plaza=None, water=None, buildings=None) -> np.ndarray:
    """Manning n (float32) by land cover.

    Streets are the ground outside the ``yards`` (the blocks; roads, sidewalks
    and local streets, paved); then, painted in order, yards (compound
    ground), green (parks, greenways), the plaza, water and buildings.
    """
    from rasterio.features import rasterize

    transform, shape = grid(extent, res)
    n = np.full(shape, MANNING["road"], dtype="float32")
    for geoms, key in ((yards, "yard"), (green, "green"), (plaza, "plaza"), (water, "water"),
                       (buildings, "building")):
        if geoms is None:
            continue
        geoms = [g for g in np.atleast_1d(np.asarray(geoms, dtype=object)) if g is not None and not g.is_empty]
        if not geoms:
            continue
        m = rasterize(((g, 1) for g in geoms), out_shape=shape, transform=transform, fill=0, dtype="uint8")
        n[m.astype(bool)] = MANNING[key]
    return n


def mask_of(geoms, extent, res, all_touched=False) -> np.ndarray:
    from rasterio.features import rasterize

    transform, shape = grid(extent, res)
    geoms = [g for g in np.atleast_1d(np.asarray(geoms, dtype=object)) if g is not None and not g.is_empty]
    if not geoms:
        return np.zeros(shape, dtype=bool)
    return rasterize(((g, 1) for g in geoms), out_shape=shape, transform=transform, fill=0, dtype="uint8",
                     all_touched=all_touched).astype(bool)
