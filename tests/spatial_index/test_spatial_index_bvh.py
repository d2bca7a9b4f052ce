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
