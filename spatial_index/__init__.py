"""spatial_index: numba spatial indexes over flat NumPy arrays.

- :class:`PackedRTree`: a static STR-packed R-tree over boxes;
- :class:`LineIndex`: polylines with each point's nearest line and the
  lines within a distance of it (distance and position along each);
- :class:`PolygonIndex`: polygons with holes (GeoArrow layout) with exact
  point-in-polygon, intersects and nearest, equal to shapely's results;
- :class:`TriangleBVH`: a bounding volume hierarchy over 3-D triangles for
  first-hit and any-hit ray queries;
- grid helpers: :func:`rasterize`, :func:`sample`, :func:`cells_in_polygon`,
  :func:`line_of_sight` over a DEM.

Imports only numpy and numba (shapely inside conversion helpers). Errors are
builtin ``ValueError`` / ``TypeError``. Results equal shapely's (GEOS rules,
exact orientation predicates): a point on a polygon's boundary intersects it
but is not within it. Kernels live in ``_kernels.py`` / ``_line_kernels.py`` /
``_mesh_kernels.py`` and also run with ``NUMBA_DISABLE_JIT=1``.

Examples
--------
>>> import shapely
>>> from spatial_index import PolygonIndex
>>> PolygonIndex.from_shapely([shapely.box(0, 0, 1, 1)]).query_points([[0.5, 0.5], [1, 1]], "within").tolist()
[[0], [0]]
"""

from spatial_index.bvh import TriangleBVH
from spatial_index.grid import cells_in_polygon, line_of_sight, rasterize, sample
from spatial_index.lines import LineIndex
from spatial_index.polygons import PolygonIndex, ragged_geometries
from spatial_index.rtree import PackedRTree

__all__ = ["LineIndex", "PackedRTree", "PolygonIndex", "TriangleBVH", "cells_in_polygon", "line_of_sight", "rasterize",
           "ragged_geometries", "sample"]
