"""Lasso / box / tap on the grid index equal brute force exactly; selections are JSON values with set algebra."""

from __future__ import annotations

import json

import numpy as np
import pytest
import shapely

from explorer.analysis.selection import (
    PointIndex,
    Selection,
    SelectionHistory,
    SelectionMode,
    combine,
    points_in_box,
    points_in_lasso,
)
from explorer.errors import DataError


@pytest.fixture(scope="module")
def cloud():
    """Gaussian points plus points on a 0.25 lattice, so that outlines drawn on the lattice hit points exactly."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=6000)
    y = rng.normal(size=6000)
    g = np.arange(-2.0, 2.01, 0.25)
    gx, gy = np.meshgrid(g, g)
    x = np.concatenate((x, gx.ravel())).astype(np.float32)
    y = np.concatenate((y, gy.ravel())).astype(np.float32)
    ids = np.array([f"obj{i}" for i in range(len(x))], dtype=object)
    return x, y, ids


def random_polygons(rng, count):
    for i in range(count):
        m = int(rng.integers(3, 25))
        if i % 3 == 0:  # arbitrary (mostly self-intersecting)
            yield rng.uniform(-3, 3, (m, 2))
        elif i % 3 == 1:  # vertices on the lattice: edges pass exactly through points
            yield np.round(rng.uniform(-2, 2, (m, 2)) * 4) / 4
        else:  # star-shaped freehand blob
            ang = np.sort(rng.uniform(0, 2 * np.pi, m))
            r = rng.uniform(0.3, 2.5, m)
            yield np.c_[r * np.cos(ang), r * np.sin(ang)] + rng.normal(size=2)


def even_odd(x, y, v):
    """Independent numpy ray cast (even-odd rule), for points not on the outline."""
    inside = np.zeros(len(x), dtype=bool)
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    for (x1, y1), (x2, y2) in zip(v, np.roll(v, -1, axis=0), strict=True):
        straddle = (y1 > y) != (y2 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            xc = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        inside ^= straddle & (x < xc)
    return inside


@pytest.mark.parametrize("grid", [1, 5, 64, 512])
def test_lasso_equals_brute_force_on_random_and_self_intersecting_polygons(cloud, grid):
    x, y, ids = cloud
    index = PointIndex(x, y, ids, grid=grid)
    rng = np.random.default_rng(grid)
    for v in random_polygons(rng, 60):
        expected = np.flatnonzero(points_in_lasso(x, y, v))
        got = index.lasso_rows(v)
        np.testing.assert_array_equal(np.sort(got), expected)
        np.testing.assert_array_equal(index.lasso_rows(v, sort=True), expected)
        assert set(index.lasso(v)) == set(ids[expected])


def test_reference_agrees_with_an_independent_even_odd_ray_cast_off_the_outline(cloud):
    x, y, _ = cloud
    rng = np.random.default_rng(5)
    for v in random_polygons(rng, 30):
        boundary = shapely.boundary(shapely.Polygon(v))
        off = shapely.distance(boundary, shapely.points(x, y)) > 1e-9
        np.testing.assert_array_equal(points_in_lasso(x, y, v)[off], even_odd(x, y, v)[off])


def test_points_on_the_outline_are_not_selected_and_box_is_closed():
    g = np.arange(0.0, 4.01, 1.0)
    gx, gy = np.meshgrid(g, g)
    x, y = gx.ravel(), gy.ravel()
    index = PointIndex(x, y, np.arange(x.size), grid=3)
    square = [(1, 1), (3, 1), (3, 3), (1, 3)]
    assert index.lasso(square, sort=True).tolist() == [12]  # (2, 2) only: vertices and edge points excluded
    assert sorted(index.box(1, 1, 3, 3).tolist()) == [6, 7, 8, 11, 12, 13, 16, 17, 18]


def test_self_intersecting_outlines_use_even_odd():
    rng = np.random.default_rng(1)
    x, y = rng.uniform(-1, 1, 4000), rng.uniform(-1, 1, 4000)
    index = PointIndex(x, y, np.arange(4000), grid=16)
    bowtie = [(-1, -1), (1, 1), (1, -1), (-1, 1)]  # both lobes
    got = index.lasso(bowtie)
    assert np.all(np.abs(y[got]) < np.abs(x[got]))
    assert len(got) > 1500
    ang = np.pi / 2 + np.arange(5) * 4 * np.pi / 5
    star = np.c_[np.cos(ang), np.sin(ang)]  # pentagram: centre enclosed twice -> not selected
    assert index.nearest_row(0.0, 0.0) not in set(index.lasso_rows(star).tolist())
    assert index.lasso_rows(star).size > 0


def test_bad_polygons_raise_and_degenerate_ones_select_nothing(cloud):
    x, y, ids = cloud
    index = PointIndex(x, y, ids)
    with pytest.raises(DataError, match="at least 3"):
        index.lasso([(0, 0), (1, 1)])
    with pytest.raises(DataError, match="at least 3"):
        index.lasso([(0, 0), (1, 1), (0, 0)])  # closed, but only 2 distinct vertices
    with pytest.raises(DataError, match="not finite"):
        index.lasso([(0, 0), (1, np.nan), (1, 0)])
    with pytest.raises(DataError):
        index.lasso(np.zeros((4, 3)))
    assert index.lasso([(-1, -1), (0, 0), (1, 1), (2, 2)]).size == 0  # zero area
    assert index.lasso([(100, 100), (101, 100), (101, 101)]).size == 0  # outside the map
    assert points_in_lasso(x, y, [(-1, -1), (0, 0), (1, 1)]).sum() == 0


def test_lasso_larger_than_the_map_selects_everything(cloud):
    x, y, ids = cloud
    index = PointIndex(x, y, ids, grid=32)
    assert index.lasso_rows([(-50, -50), (50, -50), (50, 50), (-50, 50)]).size == len(x)


def test_box_equals_brute_force_and_validates(cloud):
    x, y, ids = cloud
    index = PointIndex(x, y, ids, grid=16)
    rng = np.random.default_rng(3)
    for _ in range(100):
        b = np.round(rng.uniform(-3, 3, 4) * 4) / 4
        np.testing.assert_array_equal(index.box_rows(*b, sort=True), np.flatnonzero(points_in_box(x, y, *b)))
    assert index.box(10, 10, 11, 11).size == 0
    with pytest.raises(DataError, match="NaN"):
        index.box(0, 0, np.nan, 1)


def test_nearest_equals_brute_force(cloud):
    x, y, ids = cloud
    index = PointIndex(x, y, ids, grid=32)
    rng = np.random.default_rng(4)
    for qx, qy in rng.uniform(-6, 6, (200, 2)):
        d = np.hypot(x.astype(float) - qx, y.astype(float) - qy)
        assert index.nearest(qx, qy) == ids[np.argmin(d)]
        limit = 0.3
        expected = ids[np.argmin(d)] if d.min() <= limit else None
        assert index.nearest(qx, qy, max_distance=limit) == expected


def test_nearest_breaks_ties_by_lower_row_and_handles_empty_index():
    index = PointIndex([1.0, 0.0, 1.0], [0.0, 0.0, 0.0], ["a", "b", "c"], grid=4)
    assert index.nearest(1.0, 0.0) == "a"
    assert PointIndex([], [], []).nearest(0, 0) is None
    assert PointIndex([], [], []).lasso([(0, 0), (1, 0), (0, 1)]).size == 0


def test_nan_coordinates_are_refused_naming_ids():
    with pytest.raises(DataError, match=r"1 map coordinates.*'b'"):
        PointIndex([0.0, np.nan], [0.0, 1.0], ["a", "b"])


def test_selection_json_round_trip_and_resolution(cloud):
    x, y, ids = cloud
    index = PointIndex(x, y, ids, grid=32, map_version="umap-v1")
    lasso = Selection.lasso([(-1, -1), (1, -1), (0, 1.5)], map_version="umap-v1")
    box = Selection.box(1, 1, -0.5, -0.5, map_version="umap-v1")
    tap = Selection.tap(0.5, 0.5, 0.2, map_version="umap-v1")
    explicit = Selection.from_ids(["obj1", "obj2", "nope"])
    expr = (lasso | box) - (tap & explicit)
    for sel in (lasso, box, tap, explicit, expr):
        again = Selection.from_json(json.dumps(json.loads(sel.to_json())))
        assert again == sel
        np.testing.assert_array_equal(again.resolve(index), sel.resolve(index))
    a, b = set(lasso.resolve(index)), set(box.resolve(index))
    assert set((lasso | box).resolve(index)) == a | b
    assert set((lasso & box).resolve(index)) == a & b
    assert set((lasso - box).resolve(index)) == a - b
    assert explicit.resolve(index).tolist() == ["obj1", "obj2"]  # unknown ids dropped
    assert tap.resolve(index).tolist() == [index.nearest(0.5, 0.5, 0.2)]
    rows = lasso.resolve_rows(index)
    assert np.all(np.diff(rows) > 0)  # catalogue order


def test_selection_on_another_map_version_is_refused(cloud):
    x, y, ids = cloud
    index = PointIndex(x, y, ids, map_version="umap-v2")
    with pytest.raises(DataError, match="umap-v1"):
        Selection.box(0, 0, 1, 1, map_version="umap-v1").resolve(index)
    with pytest.raises(DataError, match="different maps"):
        Selection.box(0, 0, 1, 1, map_version="a") | Selection.box(0, 0, 1, 1, map_version="b")
    assert Selection.from_ids(["obj3"]).resolve(index).tolist() == ["obj3"]  # ids travel across maps


def test_combine_modes_keep_order():
    old, new = np.array(["a", "b", "c"]), np.array(["c", "d"])
    assert combine(old, new, SelectionMode.REPLACE).tolist() == ["c", "d"]
    assert combine(old, new, "add").tolist() == ["a", "b", "c", "d"]
    assert combine(old, new, "subtract").tolist() == ["a", "b"]
    assert combine(old, new, "intersect").tolist() == ["c"]
    with pytest.raises(ValueError):
        combine(old, new, "xor")


def test_history_applies_modes_and_undoes(cloud):
    x, y, ids = cloud
    index = PointIndex(x, y, ids, grid=32)
    h = SelectionHistory()
    assert h.current is None and not h.can_undo
    first = Selection.box(-1, -1, 1, 1)
    second = Selection.box(0, 0, 2, 2)
    h.apply(first)
    h.apply(second, "add")
    assert set(h.current.resolve(index)) == set(first.resolve(index)) | set(second.resolve(index))
    h.apply(second, SelectionMode.SUBTRACT)
    assert set(h.current.resolve(index)) == set(first.resolve(index)) - set(second.resolve(index))
    assert h.undo() == first | second
    assert h.undo() == first
    assert h.redo() == first | second
    h.apply(second, "intersect")  # drops the redo branch
    assert not h.can_redo
    restored = SelectionHistory.from_dict(json.loads(json.dumps(h.to_dict())))
    assert restored.current == h.current and restored.undo() == first | second
    h.clear()
    assert h.current is None and h.undo() is not None
    empty = SelectionHistory()
    assert empty.apply(first, "subtract") is None
