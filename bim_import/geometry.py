"""Geometry helpers shared by the building feature, the floor plans and CityJSON."""

from __future__ import annotations

import numpy as np

__all__ = ["project_union", "footprint_triangles", "section_polygons", "to_multipolygon", "affine_geom"]


def _signed_area2(tri: np.ndarray) -> np.ndarray:
    xy = tri[:, :, :2]
    return (xy[:, 1, 0] - xy[:, 0, 0]) * (xy[:, 2, 1] - xy[:, 0, 1]) - (xy[:, 2, 0] - xy[:, 0, 0]) * (xy[:, 1, 1] - xy[:, 0, 1])


def footprint_triangles(tri: np.ndarray) -> np.ndarray:
    """The triangles whose projection makes up a mesh's footprint.

    For a closed mesh the upward faces alone cover its projection (every
    vertical line through the solid leaves it through an upward face), and
    their projected area equals the downward faces'; then only those are
    kept, halving the union's work. An open surface keeps both.
    """
    tri = np.asarray(tri, dtype=np.float64)
    if not len(tri):
        return tri
    a = _signed_area2(tri)
    up, down = a[a > 0].sum(), -a[a < 0].sum()
    if up > 0 and abs(up - down) <= 1e-3 * up:
        return tri[a > 0]
    return tri


def project_union(tri: np.ndarray, *, min_area: float = 1e-8, grid_size: float | None = None):
    """Union of the XY projections of triangles (m, 3, >=2) as a shapely geometry.

    Vertical (zero-area) triangles are dropped first. Returns an empty
    GeometryCollection when nothing is left. Without ``grid_size`` a GEOS
    topology failure is retried on a 0.1 mm grid. Call it on model (local)
    coordinates, which are small, and transform the result.
    """
    import shapely

    tri = np.asarray(tri, dtype=np.float64)
    if tri.size == 0:
        return shapely.GeometryCollection()
    keep = np.abs(_signed_area2(tri)) * 0.5 > min_area
    xy = tri[keep][:, :, :2]
    if not len(xy):
        return shapely.GeometryCollection()
    # drop exact duplicates (top and bottom faces often project onto each other)
    key = np.round(np.sort(xy.reshape(len(xy), -1), axis=1), 6)
    _, first = np.unique(key, axis=0, return_index=True)
    xy = xy[np.sort(first)]
    ring = np.concatenate([xy, xy[:, :1]], axis=1)
    polys = shapely.polygons(ring)
    if grid_size:
        return shapely.union_all(polys, grid_size=grid_size)
    try:
        return shapely.union_all(polys)
    except shapely.errors.GEOSException:
        return shapely.union_all(polys, grid_size=1e-4)


def to_multipolygon(geom):
    """Polygonal parts of ``geom`` as a MultiPolygon (possibly empty)."""
    from shapely.geometry import MultiPolygon, Polygon

    if geom is None or geom.is_empty:
        return MultiPolygon()
    if isinstance(geom, Polygon):
        return MultiPolygon([geom])
    if isinstance(geom, MultiPolygon):
        return geom
    parts = [g for g in getattr(geom, "geoms", []) if isinstance(g, (Polygon, MultiPolygon))]
    polys = []
    for p in parts:
        polys.extend(p.geoms if isinstance(p, MultiPolygon) else [p])
    return MultiPolygon(polys)


def polygons_of(geom) -> list:
    return list(to_multipolygon(geom).geoms)


def section_polygons(vertices: np.ndarray, faces: np.ndarray, z: float) -> list:
    """Polygons where the horizontal plane at height ``z`` cuts a closed mesh.

    The cut segments are polygonised; a face of the planar arrangement is
    solid when it is nested inside an even number of other faces (so a ring
    section keeps its hole).
    """
    import shapely

    tri = vertices[faces]
    zs = tri[:, :, 2]
    zmin, zmax = zs.min(axis=1), zs.max(axis=1)
    hit = (zmin < z) & (zmax > z)
    if not hit.any():
        return []
    tri = tri[hit]
    d = tri[:, :, 2] - z  # signed distances (m, 3)
    segs = []
    for i, j in ((0, 1), (1, 2), (2, 0)):
        di, dj = d[:, i], d[:, j]
        cross = (di * dj) < 0
        t = np.where(cross, di / np.where(cross, di - dj, 1.0), 0.0)
        p = tri[:, i, :2] + t[:, None] * (tri[:, j, :2] - tri[:, i, :2])
        segs.append((cross, p))
    pts = []
    for k in range(len(tri)):
        row = [segs[e][1][k] for e in range(3) if segs[e][0][k]]
        # a vertex exactly on the plane
        for v in range(3):
            if d[k, v] == 0.0:
                row.append(tri[k, v, :2])
        if len(row) >= 2:
            pts.append((row[0], row[1]))
    if not pts:
        return []
    lines = shapely.linestrings(np.array(pts))
    noded = shapely.union_all(lines, grid_size=1e-6)
    faces_ = list(shapely.get_parts(shapely.polygonize(shapely.get_parts(noded))))
    faces_ = [f for f in faces_ if f.area > 1e-8]
    if len(faces_) <= 1:
        return faces_
    shells = [shapely.Polygon(f.exterior) for f in faces_]
    solid = []
    for i, f in enumerate(faces_):
        rp = f.representative_point()
        depth = sum(1 for j, s in enumerate(shells) if j != i and s.contains(rp))
        if depth % 2 == 0:
            solid.append(f)
    return solid


def affine_geom(geom, georef):
    """Apply a :class:`bim_import.georef.Georeference` to a 2D shapely geometry."""
    from shapely import affinity

    if georef is None:
        return geom
    return affinity.affine_transform(geom, [georef.a, georef.b, georef.d, georef.e, georef.c, georef.f])
