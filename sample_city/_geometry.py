"""Geometry helpers of the generator: recursive polygon splitting and oriented footprints.

Everything here is vectorised over shapely arrays; randomness comes in through a
``numpy.random.Generator`` so the caller controls determinism.
"""

from __future__ import annotations

import numpy as np
import shapely


def _envelope_axes(polys: np.ndarray):
    """Origin, long axis and short axis vectors of each polygon's minimum rotated rectangle."""
    env = shapely.oriented_envelope(polys)
    out_o = np.zeros((len(polys), 2))
    out_l = np.zeros((len(polys), 2))
    out_s = np.zeros((len(polys), 2))
    ok = shapely.get_type_id(env) == 3
    ok &= shapely.get_num_coordinates(env) == 5
    if ok.any():
        c = shapely.get_coordinates(env[ok]).reshape(-1, 5, 2)
        e1 = c[:, 1] - c[:, 0]
        e2 = c[:, 2] - c[:, 1]
        l1 = np.hypot(*e1.T)
        l2 = np.hypot(*e2.T)
        first = l1 >= l2
        out_o[ok] = c[:, 0]
        out_l[ok] = np.where(first[:, None], e1, e2)
        out_s[ok] = np.where(first[:, None], e2, e1)
        # when the long edge is e2, the rectangle spans e2 from c1; shift the origin so that
        # origin + a*long + b*short covers it for a, b in [0, 1]
        out_o[ok] = np.where(first[:, None], c[:, 0], c[:, 1] - e1)
    return out_o, out_l, out_s, ok


def _quads(o, a_lo, a_hi, L, S):
    """Quads origin + a*L + b*S for a in [a_lo, a_hi], b in [-0.1, 1.1] (vectorised)."""
    b_lo, b_hi = -0.1, 1.1
    pts = np.stack([
        o + a_lo[:, None] * L + b_lo * S,
        o + a_hi[:, None] * L + b_lo * S,
        o + a_hi[:, None] * L + b_hi * S,
        o + a_lo[:, None] * L + b_hi * S,
        o + a_lo[:, None] * L + b_lo * S,
    ], axis=1)
    return shapely.polygons(pts)


def split_polygons(polys, target_area, rng: np.random.Generator, *, gap: float = 0.0, min_area: float = 50.0,
                   jitter: float = 0.12, max_levels: int = 24):
    """Recursively halve polygons across their long axis until each is at most ``target_area``.

    Parameters
    ----------
    polys : array of Polygon
    target_area : float or array (one per input polygon)
    gap : float
        Width of the strip removed along each cut (a local street), in metres.
    min_area : float
        Pieces smaller than this are dropped (slivers).

    Returns
    -------
    (pieces, origin) : array of Polygon, array of int (index of the input polygon)
    """
    polys = np.asarray(polys, dtype=object)
    target = np.broadcast_to(np.asarray(target_area, dtype="float64"), polys.shape).copy()
    origin = np.arange(len(polys))
    done, done_origin = [], []
    for _ in range(max_levels):
        if len(polys) == 0:
            break
        area = shapely.area(polys)
        keep = area >= min_area
        polys, target, origin, area = polys[keep], target[keep], origin[keep], area[keep]
        big = area > target
        done.append(polys[~big])
        done_origin.append(origin[~big])
        if not big.any():
            polys = polys[:0]
            break
        P, T, Og = polys[big], target[big], origin[big]
        o, L, S, ok = _envelope_axes(P)
        done.append(P[~ok])
        done_origin.append(Og[~ok])
        P, T, Og, o, L, S = P[ok], T[ok], Og[ok], o[ok], L[ok], S[ok]
        n = len(P)
        f = 0.5 + rng.uniform(-jitter, jitter, n)
        half_gap = gap / 2.0 / np.maximum(np.hypot(*L.T), 1e-9)
        qa = _quads(o, np.full(n, -0.1), f - half_gap, L, S)
        qb = _quads(o, f + half_gap, np.full(n, 1.1), L, S)
        pieces = np.concatenate([shapely.intersection(P, qa), shapely.intersection(P, qb)])
        p_origin = np.concatenate([Og, Og])
        p_target = np.concatenate([T, T])
        parts, idx = shapely.get_parts(pieces, return_index=True)
        poly = shapely.get_type_id(parts) == 3
        polys, origin, target = parts[poly], p_origin[idx[poly]], p_target[idx[poly]]
    if len(polys):
        done.append(polys)
        done_origin.append(origin)
    pieces = np.concatenate(done) if done else np.empty(0, dtype=object)
    org = np.concatenate(done_origin) if done_origin else np.empty(0, dtype=np.intp)
    keep = shapely.area(pieces) >= min_area
    return pieces[keep], org[keep]


def road_angles(centres: np.ndarray, lines: np.ndarray, max_dist: float, fallback: np.ndarray) -> np.ndarray:
    """Direction (radians) of the nearest road segment to each centre point, or ``fallback`` beyond ``max_dist``."""
    pts = shapely.points(centres)
    tree = shapely.STRtree(lines)
    (qi, li), dist = tree.query_nearest(pts, return_distance=True, all_matches=False)
    angle = np.asarray(fallback, dtype="float64").copy()
    near = dist <= max_dist
    qi, li = qi[near], li[near]
    ln = lines[li]
    d = shapely.line_locate_point(ln, pts[qi])
    a = shapely.get_coordinates(shapely.line_interpolate_point(ln, np.maximum(d - 3.0, 0.0)))
    b = shapely.get_coordinates(shapely.line_interpolate_point(ln, d + 3.0))
    dv = b - a
    good = np.hypot(*dv.T) > 1e-6
    angle[qi[good]] = np.arctan2(dv[good, 1], dv[good, 0])
    return angle


def envelope_angles(polys: np.ndarray) -> np.ndarray:
    """Direction (radians) of the long axis of each polygon's minimum rotated rectangle."""
    _, L, _, _ = _envelope_axes(polys)
    return np.arctan2(L[:, 1], L[:, 0])


def local_extent(poly, cx: float, cy: float, ux: float, uy: float) -> tuple[float, float, float, float]:
    """Bounds of ``poly`` in the frame with origin (cx, cy), u = (ux, uy), v = (-uy, ux)."""
    xy = shapely.get_coordinates(poly) - (cx, cy)
    pu = xy[:, 0] * ux + xy[:, 1] * uy
    pv = -xy[:, 0] * uy + xy[:, 1] * ux
    return float(pu.min()), float(pu.max()), float(pv.min()), float(pv.max())


def footprints(u0, v0, L, D, cx, cy, ux, uy, shape_kind, notch=0.45, margin=10.0):
    """Footprint polygons in world coordinates from local-frame boxes.

    ``u0, v0`` lower-left corners in the local frame, ``L`` x ``D`` sizes (arrays);
    ``shape_kind``: 0 rectangle, 1 L-shape (a corner notch), 2 courtyard (a hole
    ``margin`` metres in from the outline).
    """
    u0, v0, L, D = (np.asarray(a, dtype="float64") for a in (u0, v0, L, D))
    shape_kind = np.asarray(shape_kind)

    def world(pu, pv):
        return np.stack([cx + pu * ux - pv * uy, cy + pu * uy + pv * ux], axis=-1)

    n = len(u0)
    out = np.empty(n, dtype=object)
    rect = shape_kind == 0
    if rect.any():
        pu = np.stack([u0, u0 + L, u0 + L, u0, u0], axis=1)[rect]
        pv = np.stack([v0, v0, v0 + D, v0 + D, v0], axis=1)[rect]
        out[rect] = shapely.polygons(world(pu, pv))
    ell = shape_kind == 1
    if ell.any():
        nu, nv = L * (1 - notch), D * (1 - notch)
        pu = np.stack([u0, u0 + L, u0 + L, u0 + nu, u0 + nu, u0, u0], axis=1)[ell]
        pv = np.stack([v0, v0, v0 + nv, v0 + nv, v0 + D, v0 + D, v0], axis=1)[ell]
        out[ell] = shapely.polygons(world(pu, pv))
    yard = shape_kind == 2
    if yard.any():
        pu = np.stack([u0, u0 + L, u0 + L, u0, u0], axis=1)[yard]
        pv = np.stack([v0, v0, v0 + D, v0 + D, v0], axis=1)[yard]
        iu = np.stack([u0 + margin, u0 + margin, u0 + L - margin, u0 + L - margin, u0 + margin], axis=1)[yard]
        iv = np.stack([v0 + margin, v0 + D - margin, v0 + D - margin, v0 + margin, v0 + margin], axis=1)[yard]
        shells = world(pu, pv)
        holes = world(iu, iv)
        out[yard] = [shapely.Polygon(s, [h]) for s, h in zip(shells, holes)]
    return out
