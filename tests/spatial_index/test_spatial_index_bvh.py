"""TriangleBVH ray hits equal trimesh's ray_triangle queries (triangle and distance within 1e-9 relative)."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from spatial_index import TriangleBVH


@pytest.fixture(scope="module")
def city_mesh():
    rng = np.random.default_rng(0)
    parts = []
    for _ in range(60):
        m = trimesh.creation.box(extents=rng.uniform(5, 30, 3))
        m.apply_translation([*rng.uniform(0, 300, 2), 0])
        parts.append(m)
    parts.append(trimesh.creation.icosphere(subdivisions=2, radius=20).apply_translation([150, 150, 60]))
    return trimesh.util.concatenate(parts)


def test_first_hit_equals_trimesh(city_mesh):
    pytest.importorskip("rtree")  # trimesh's ray_triangle needs it
    from trimesh.ray.ray_triangle import RayMeshIntersector

    rng = np.random.default_rng(1)
    n = 400
    o = np.column_stack([rng.uniform(0, 300, (n, 2)), rng.uniform(0, 50, n)])
    d = rng.normal(size=(n, 3))
    d[::2] = city_mesh.vertices[rng.integers(0, len(city_mesh.vertices), n // 2)] + rng.normal(0, 2, (n // 2, 3)) \
        - o[::2]  # half of the rays aim near a vertex
    bvh = TriangleBVH.from_trimesh(city_mesh, leaf_size=2)
    dist, tri = bvh.intersect(o, d)
    tri_t, ray_t, loc = RayMeshIntersector(city_mesh).intersects_id(o, d, multiple_hits=False,
                                                                    return_locations=True)
    ref_tri = np.full(n, -1)
    ref_tri[ray_t] = tri_t
    ref_d = np.full(n, np.inf)
    ref_d[ray_t] = np.linalg.norm(loc - o[ray_t], axis=1)
    assert (ref_tri >= 0).sum() > 150  # the test really hits things
    np.testing.assert_array_equal(tri, ref_tri)
    hit = tri >= 0
    np.testing.assert_allclose(dist[hit], ref_d[hit], rtol=1e-9)
    any_ = bvh.intersects_any(o, d)
    np.testing.assert_array_equal(any_, hit)
    # a maximum distance just short of the hit stops the shadow ray
    short = bvh.intersects_any(o[hit], d[hit], max_distance=dist[hit] * (1 - 1e-6))
    assert not short.any()


def test_axis_aligned_and_analytic_distances():
    box = trimesh.creation.box(extents=[2, 2, 2])  # cube [-1, 1]^3
    bvh = TriangleBVH.from_trimesh(box)
    o = np.array([[0.3, 0.2, 10.0], [-10, 0.1, 0.2], [5, 5, 5]])
    d = np.array([[0, 0, -1.0], [3, 0, 0], [1, 0, 0]])
    dist, tri = bvh.intersect(o, d)
    np.testing.assert_allclose(dist[:2], [9.0, 9.0], rtol=1e-15)
    assert tri[2] == -1 and dist[2] == np.inf
    assert np.allclose(box.face_normals[tri[0]], [0, 0, 1]) and np.allclose(box.face_normals[tri[1]], [-1, 0, 0])
    # from inside the cube the ray hits the far wall; min_distance skips the start surface
    dist, _ = bvh.intersect([[0, 0, 1.0]], [[0, 0, -1]], min_distance=1e-9)
    np.testing.assert_allclose(dist, [2.0])


def test_empty_mesh_and_bad_input():
    empty = TriangleBVH(np.zeros((0, 3)), np.zeros((0, 3), int))
    d, t = empty.intersect([[0, 0, 0]], [[0, 0, 1]])
    assert t.tolist() == [-1] and d.tolist() == [np.inf]
    v = np.eye(3)
    with pytest.raises(ValueError, match=r"shape \(n, 3\)"):
        TriangleBVH(v, np.array([[0, 1]]))
    with pytest.raises(TypeError, match="integer"):
        TriangleBVH(v, np.array([[0.0, 1.0, 2.0]]))
    with pytest.raises(ValueError, match="vertices"):
        TriangleBVH(v, np.array([[0, 1, 5]]))
    with pytest.raises(ValueError, match="NaN"):
        TriangleBVH(np.array([[0, 0, np.nan], [1, 0, 0], [0, 1, 0]]), np.array([[0, 1, 2]]))
    bvh = TriangleBVH(v, np.array([[0, 1, 2]]))
    with pytest.raises(ValueError, match="zero"):
        bvh.intersect([[0, 0, 0]], [[0, 0, 0]])
    with pytest.raises(ValueError, match="NaN"):
        bvh.intersect([[np.nan, 0, 0]], [[0, 0, 1]])
    with pytest.raises(ValueError, match="rows"):
        bvh.intersect([[0, 0, 0], [1, 1, 1]], [[0, 0, 1], [0, 1, 0], [1, 0, 0]])


def _brute_first_hit(v0, e1, e2, o, d):
    """Möller-Trumbore over every triangle (no hierarchy): (distance, lowest triangle at it)."""
    d = d / np.linalg.norm(d)
    p = np.cross(d, e2)
    det = np.einsum("ij,ij->i", e1, p)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = o - v0
        u = np.einsum("ij,ij->i", s, p) / det
        q = np.cross(s, e1)
        v = q @ d / det
        t = np.einsum("ij,ij->i", e2, q) / det
        ok = (det != 0) & (u >= 0) & (u <= 1) & (v >= 0) & (u + v <= 1) & (t > 0)
    if not ok.any():
        return np.inf, -1
    best = t[ok].min()
    return best, int(np.flatnonzero(ok & (t == best))[0])


def test_axis_parallel_rays_on_node_box_planes_hit():
    """A ray parallel to an axis that starts on a plane of a node's box (a vertical ray over a wall or the edge
    of the ground, a horizontal ray level with a roof) runs inside that box's slab: it used to give NaN in
    the slab test and miss everything behind it."""
    ground = TriangleBVH(np.array([[0, 0, 0], [10, 0, 0], [10, 10, 0], [0, 10, 0]], float),
                         np.array([[0, 1, 2], [0, 2, 3]]))
    o = np.array([[0, 5, 10], [10, 5, 10], [5, 0, 10], [5, 10, 10], [10, 10, 10], [3, 3, 10]], float)
    dist, tri = ground.intersect(o, [[0, 0, -1]])
    np.testing.assert_array_equal(dist, 10.0)
    assert (tri >= 0).all()
    assert ground.intersects_any(o, [[0, 0, -1]]).all()
    # rays along the axes through the vertices of a block city equal a brute-force Möller-Trumbore
    rng = np.random.default_rng(0)
    parts = []
    for _ in range(30):
        m = trimesh.creation.box(extents=rng.integers(1, 5, 3).astype(float))
        m.apply_translation(rng.integers(0, 40, 3).astype(float))
        parts.append(m)
    mesh = trimesh.util.concatenate(parts)
    bvh = TriangleBVH.from_trimesh(mesh, leaf_size=1)
    tris = mesh.vertices[mesh.faces]
    v0, e1, e2 = tris[:, 0], tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0]
    verts = np.unique(mesh.vertices, axis=0)
    for k in range(200):
        d = np.zeros(3)
        d[k % 3] = 1.0 if k % 2 else -1.0
        o = verts[rng.integers(len(verts))] - 100 * d
        ref = _brute_first_hit(v0, e1, e2, o, d)
        dist, tri = bvh.intersect([o], [d])
        assert (dist[0], tri[0]) == pytest.approx(ref, rel=1e-12), (o, d)


def test_zero_area_triangles_are_never_hit():
    """As documented: a triangle whose corners are collinear is never hit (its rounded edges gave hits)."""
    rng = np.random.default_rng(2)
    for corners in ([[0, 0, 0], [1, 1, 1], [3, 3, 3]], [[0, 0, 0], [1, 2, 3], [2, 4, 6]],
                    [[0, 0, 0], [0, 0, 0], [1, 0, 0]]):
        v = np.array(corners, float)
        bvh = TriangleBVH(np.vstack([v, [[50, 0, 0], [51, 0, 0], [50, 1, 0]]]), np.array([[0, 1, 2], [3, 4, 5]]))
        d = rng.normal(size=(5000, 3))
        o = v[1] * 0.7 - 3 * d  # every ray passes through a point of the segment
        _, tri = bvh.intersect(o, d)
        assert (tri == -1).all()
    # the real triangle beside it is still hit
    assert bvh.intersect([[50.2, 0.2, 1]], [[0, 0, -1]])[1].tolist() == [1]


def test_tiny_and_huge_direction_vectors():
    """Only the direction of a direction vector matters: 1e-200 was refused as zero, 1e200 missed (its norm
    overflowed)."""
    bvh = TriangleBVH(np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0]], float), np.array([[0, 1, 2]]))
    dist, tri = bvh.intersect([[1, 1, 10]] * 3, [[0, 0, -1e-200], [0, 0, -1e200], [1e-300, 0, -1e-290]])
    np.testing.assert_allclose(dist, 10.0, rtol=1e-12)
    assert tri.tolist() == [0, 0, 0]


def test_ray_arguments_bad_and_empty():
    bvh = TriangleBVH(np.eye(3), np.array([[0, 1, 2]]))
    with pytest.raises(ValueError, match=r"max_distance must be a number or have shape \(3,\)"):
        bvh.intersect([[0, 0, 0]] * 3, [[1, 1, 1]], max_distance=[1.0, 2.0])
    with pytest.raises(TypeError, match="min_distance"):
        bvh.intersect([[0, 0, 0]], [[1, 1, 1]], min_distance=None)
    with pytest.raises(TypeError, match="max_distance"):
        bvh.intersect([[0, 0, 0]], [[1, 1, 1]], max_distance="far")
    d, t = bvh.intersect([], [])  # no rays
    assert d.shape == (0,) and t.shape == (0,)
    assert bvh.intersect([[0, 0, 0]], [[1, 1, 1]], max_distance=[1.0])[1].tolist() == [0]
