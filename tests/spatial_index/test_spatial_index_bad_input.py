"""Bad input to PolygonIndex: a clear builtin error naming the problem, or a documented result."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from spatial_index import PolygonIndex

SQUARE = np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]], float)


def test_from_arrays_round_trip_and_multipolygon():
    coords = np.vstack([SQUARE, SQUARE + 2, SQUARE * 0.2 + 2.4])  # square; square with a hole
    idx = PolygonIndex.from_arrays(coords, [0, 5, 10, 15], [0, 1, 3], [0, 2])  # one multipolygon
    assert len(idx) == 1
    assert idx.query_points([[0.5, 0.5], [2.5, 2.5], [2.1, 2.1]], "within").tolist() == [[0, 2], [0, 0]]


@pytest.mark.parametrize("coords, rings, parts, match", [
    (SQUARE[:-1], [0, 4], [0, 1], "not closed"),
    (SQUARE[[0, 1, 0]], [0, 3], [0, 1], "at least 4"),
    (np.vstack([SQUARE[:2], [[np.nan, 1]], SQUARE[3:]]), [0, 5], [0, 1], "NaN"),
    (SQUARE, [0, 4], [0, 1], "from 0 to 5"),
    (SQUARE, [0, 5], [0, 2], "from 0 to 1"),
    (SQUARE[:, :1], [0, 5], [0, 1], r"shape \(n, 2\)"),
])
def test_from_arrays_bad(coords, rings, parts, match):
    with pytest.raises(ValueError, match=match):
        PolygonIndex.from_arrays(coords, rings, parts)


def test_from_shapely_bad():
    with pytest.raises(TypeError, match="holds polygons"):
        PolygonIndex.from_shapely([shapely.box(0, 0, 1, 1), shapely.Point(0, 0)])
    with pytest.raises(TypeError, match="shapely geometries"):
        PolygonIndex.from_shapely([shapely.box(0, 0, 1, 1), "POLYGON"])
    nan_poly = shapely.Polygon([(0, 0), (1, np.nan), (1, 1), (0, 0)])
    with pytest.raises(ValueError, match="polygon 1 has a NaN"):
        PolygonIndex.from_shapely([shapely.box(0, 0, 1, 1), nan_poly], lazy=False)
    # documented: a lazy index reads coordinates at the first exact query, which reports them
    lazy = PolygonIndex.from_shapely([shapely.box(0, 0, 1, 1), nan_poly])
    assert lazy.query(np.array([[0.5, 0.5, 0.6, 0.6]]), predicate=None).tolist() == [[0, 0], [0, 1]]
    with pytest.raises(ValueError, match="polygon 1 has a NaN"):
        lazy.query_points([[0.5, 0.5]])
    with pytest.raises(ValueError, match="polygon 2 has an infinite coordinate"):
        PolygonIndex.from_shapely([None, shapely.box(0, 0, 1, 1), shapely.Polygon([(0, 0), (np.inf, 0), (1, 1)])])


def test_query_bad_and_documented_results():
    idx = PolygonIndex.from_shapely([shapely.box(0, 0, 1, 1)])
    with pytest.raises(ValueError, match="predicate must be one of"):
        idx.query_points([[0, 0]], predicate="contains")
    with pytest.raises(ValueError, match="predicate must be one of"):
        idx.query([shapely.box(0, 0, 1, 1)], predicate="touches")
    with pytest.raises(ValueError, match="NaN"):
        idx.query_points([[np.nan, 0.5]])
    with pytest.raises(ValueError, match=r"shape \(m, 2\)|shape \(n, 2\)"):
        idx.query_points(np.zeros((3, 3)))
    with pytest.raises(TypeError, match="numeric"):
        idx.query_points([["a", "b"]])
    with pytest.raises(TypeError, match="Points"):
        idx.query_points([shapely.box(0, 0, 1, 1)])
    with pytest.raises(ValueError, match="empty points"):
        idx.query_points([shapely.Point()])
    with pytest.raises(TypeError, match="collections"):
        idx.query([shapely.GeometryCollection([shapely.Point(0, 0)])])
    with pytest.raises(ValueError, match="NaN"):
        idx.query([shapely.LineString([(0, 0), (np.nan, 1)])])
    with pytest.raises(ValueError, match="xmin > xmax"):
        idx.query(np.array([[1.0, 0, 0, 1]]))
    # documented: empty / missing query geometries match nothing; so do empty polygons in the index
    assert idx.query([None, shapely.Polygon(), shapely.box(0.5, 0.5, 2, 2)]).tolist() == [[2], [0]]
    idx2 = PolygonIndex.from_shapely([shapely.Polygon(), shapely.box(0, 0, 1, 1)])
    assert idx2.query_points([[0.5, 0.5]]).tolist() == [[0], [1]]
    # and a point sitting on an empty polygon's would-be position finds nothing there
    assert PolygonIndex.from_shapely([shapely.Polygon()]).query_points([[0, 0]]).shape == (2, 0)


def test_from_arrays_offsets_must_be_integers():
    """A fractional offset was truncated silently (4.5 read as 4); text gave a raw int() error."""
    with pytest.raises(TypeError, match="ring_offsets must hold integer offsets"):
        PolygonIndex.from_arrays(SQUARE, [0.0, 4.5], [0, 1])
    with pytest.raises(TypeError, match="part_offsets must hold integer offsets"):
        PolygonIndex.from_arrays(SQUARE, [0, 5], ["0", "1"])
    # whole floats (e.g. offsets that went through a float column) are fine
    assert PolygonIndex.from_arrays(SQUARE, np.array([0.0, 5.0]), [0, 1]).query_points([[0.5, 0.5]]).tolist() == \
        [[0], [0]]


def test_boxes_as_lists_empty_lists_and_missing_points():
    """query() documents an (m, 4) array of boxes: a list of them was refused ("item 0 is int"); [] is no
    points; a missing point is named as such."""
    idx = PolygonIndex.from_shapely([shapely.box(0, 0, 1, 1), shapely.box(2, 0, 3, 1)])
    assert idx.query([[0.5, 0.5, 2.5, 0.6], [5, 5, 6, 6]]).tolist() == [[0, 0], [0, 1]]
    assert idx.query((0.5, 0.5, 0.6, 0.6)).tolist() == [[0], [0]]
    assert idx.query([[0.5, 0.5, 2.5, 0.6]], predicate=None).tolist() == [[0, 0], [0, 1]]
    assert idx.query([shapely.Point(0.5, 0.5), None]).tolist() == [[0], [0]]
    assert idx.query_points([]).shape == (2, 0)
    with pytest.raises(TypeError, match="point 1 is missing"):
        idx.query_points([shapely.Point(0.5, 0.5), None])
