"""A bounding volume hierarchy over 3-D triangles for ray queries."""

from __future__ import annotations

import numpy as np

from spatial_index import _mesh_kernels as M

__all__ = ["TriangleBVH"]


def _as_rays(a, name: str, n: int | None = None) -> np.ndarray:
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be numeric with shape (n, 3): {exc}") from None
    if arr.ndim == 1 and arr.shape[0] in (0, 3):  # one row, or none ([])
        arr = arr.reshape(-1, 3)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(f"{name} must have shape (n, 3), got {arr.shape}")
    if n is not None and arr.shape[0] not in (1, n):
        raise ValueError(f"{name} has {arr.shape[0]} rows but origins has {n}; give one per ray or a single one")
    if not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        raise ValueError(f"{name} row {bad} has a NaN or infinite value {arr[bad].tolist()}")
    return arr


class TriangleBVH:
    """Triangles in a binned-SAH bounding volume hierarchy, for first-hit and any-hit rays.

    Parameters
    ----------
    vertices : (nv, 3) float array
    faces : (nf, 3) integer array of vertex indices (e.g. ``trimesh.Trimesh.faces``)
    leaf_size : int, default 4

    Notes
    -----
    Distances are Euclidean (directions are normalised). Back faces are hit
    too; degenerate (zero-area) triangles are never hit. Hits closer than
    ``min_distance`` are ignored, which lets shadow rays start on a surface.

    Examples
    --------
    >>> import numpy as np
    >>> v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], float)
    >>> bvh = TriangleBVH(v, np.array([[0, 1, 2]]))
    >>> dist, tri = bvh.intersect([[0.2, 0.2, 5.0], [2, 2, 5]], [[0, 0, -1], [0, 0, -1]])
    >>> dist.tolist(), tri.tolist()
    ([5.0, inf], [0, -1])
    >>> bvh.intersects_any([[0.2, 0.2, 5.0]], [[0, 0, -2]], max_distance=4.0).tolist()
    [False]
    """

    def __init__(self, vertices, faces, leaf_size: int = 4) -> None:
        v = _as_rays(vertices, "vertices") if len(vertices) else np.zeros((0, 3))
        try:
            f = np.asarray(faces)
        except (TypeError, ValueError) as exc:  # pragma: no cover - numpy accepts almost anything
            raise TypeError(f"faces must be an integer array of shape (n, 3): {exc}") from None
        if f.size == 0:
            f = np.zeros((0, 3), np.intp)
        if f.ndim != 2 or f.shape[1] != 3:
            raise ValueError(f"faces must have shape (n, 3), got {f.shape}")
        if not np.issubdtype(f.dtype, np.integer):
            raise TypeError(f"faces must hold integer vertex indices, got dtype {f.dtype}")
        if f.shape[0] and (f.min() < 0 or f.max() >= v.shape[0]):
            raise ValueError(f"faces refer to vertex {int(f.max()) if f.max() >= v.shape[0] else int(f.min())}, "
                             f"but there are {v.shape[0]} vertices")
        if not isinstance(leaf_size, (int, np.integer)) or leaf_size < 1:
            raise ValueError(f"leaf_size must be a positive int, got {leaf_size!r}")
        f = f.astype(np.intp)
        a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
        tmin = np.minimum(np.minimum(a, b), c)
        tmax = np.maximum(np.maximum(a, b), c)
        cen = np.ascontiguousarray((a + b + c) / 3.0)
        perm, bmin, bmax, left, start, count, _, depth = M.build_bvh(tmin, tmax, cen, int(leaf_size))
        self.n_triangles = f.shape[0]
        self.perm = perm
        e1, e2 = b - a, c - a
        # zero-area triangles get zero edges, which the ray test (det == 0) never hits; their rounded
        # edges would give a few hits at a distance that means nothing
        flat = ~np.cross(e1, e2).any(axis=1)
        e1[flat] = 0.0
        e2[flat] = 0.0
        self.v0 = np.ascontiguousarray(a[perm])
        self.e1 = np.ascontiguousarray(e1[perm])
        self.e2 = np.ascontiguousarray(e2[perm])
        self.node_min, self.node_max = bmin, bmax
        self.node_left, self.node_start, self.node_count = left, start, count
        self.depth = int(depth)

    def __len__(self) -> int:
        return self.n_triangles

    def __repr__(self) -> str:
        return f"TriangleBVH(triangles={self.n_triangles}, nodes={self.node_left.shape[0]}, depth={self.depth})"

    @classmethod
    def from_trimesh(cls, mesh, leaf_size: int = 4) -> "TriangleBVH":
        """Build from a ``trimesh.Trimesh`` (triangle ids are face indices)."""
        return cls(np.asarray(mesh.vertices), np.asarray(mesh.faces), leaf_size)

    def _run(self, origins, directions, min_distance, max_distance, any_hit):
        o = _as_rays(origins, "origins") if len(origins) else np.zeros((0, 3))
        d = _as_rays(directions, "directions", o.shape[0])
        zero = ~d.any(axis=1)
        if zero.any():
            raise ValueError(f"directions row {int(np.flatnonzero(zero)[0])} is zero; give a non-zero vector")
        with np.errstate(over="ignore", under="ignore"):
            norm = np.linalg.norm(d, axis=1)
        odd = ~((norm > 1e-150) & (norm < 1e150))  # the squares would underflow or overflow: scale first
        if odd.any():
            d = d.copy()
            d[odd] /= np.abs(d[odd]).max(axis=1)[:, None]
            norm[odd] = np.linalg.norm(d[odd], axis=1)
        d = d / norm[:, None]
        if d.shape[0] == 1 and o.shape[0] != 1:
            d = np.repeat(d, o.shape[0], axis=0)
        try:
            md = np.asarray(np.inf if max_distance is None else max_distance, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"max_distance must be a number or one per ray, got {max_distance!r}") from None
        if md.ndim > 1 or (md.ndim == 1 and md.shape[0] not in (1, o.shape[0])):
            raise ValueError(f"max_distance must be a number or have shape ({o.shape[0]},) (one per ray), "
                             f"got shape {md.shape}")
        md = np.broadcast_to(md.reshape(-1), (o.shape[0],))
        if np.isnan(md).any() or (md < 0).any():
            raise ValueError("max_distance must be >= 0 (or None for unlimited)")
        try:
            min_distance = float(min_distance)
        except (TypeError, ValueError):
            raise TypeError(f"min_distance must be a finite number >= 0, got {min_distance!r}") from None
        if not (np.isfinite(min_distance) and min_distance >= 0):
            raise ValueError(f"min_distance must be a finite number >= 0, got {min_distance!r}")
        out_t = np.empty(o.shape[0])
        out_id = np.empty(o.shape[0], np.intp)
        M.intersect_rays(np.ascontiguousarray(o), np.ascontiguousarray(d), float(min_distance),
                         np.ascontiguousarray(md, dtype=np.float64), any_hit, self.node_min, self.node_max,
                         self.node_left, self.node_start, self.node_count, self.perm, self.v0, self.e1, self.e2,
                         self.depth, out_t, out_id)
        return out_t, out_id

    def intersect(self, origins, directions, min_distance: float = 0.0, max_distance=None):
        """First triangle hit by each ray.

        Parameters
        ----------
        origins, directions : (n, 3) arrays (one direction may serve all rays)
        min_distance : float, default 0
            Hits at or closer than this are ignored.
        max_distance : float or (n,) array, optional

        Returns
        -------
        distance : (n,) float64, ``inf`` where nothing was hit
        triangle : (n,) intp face index, -1 where nothing was hit
        """
        return self._run(origins, directions, min_distance, max_distance, False)

    def intersects_any(self, origins, directions, min_distance: float = 1e-9, max_distance=None) -> np.ndarray:
        """Whether each ray hits any triangle (stops at the first one found): shadow rays."""
        _, tri = self._run(origins, directions, min_distance, max_distance, True)
        return tri >= 0
