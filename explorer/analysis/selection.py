"""Selections on a 2-D map: a grid point index (lasso, box, tap -> ids), Selection value objects, modes, undo.

A :class:`Selection` is a geometry drawn on one map version (glue's "subset state"), resolved to object ids on
demand by a :class:`PointIndex` built once from the map coordinates. Selections combine with ``|``, ``&``, ``-``;
a new selection meets the current one through a :class:`SelectionMode`; :class:`SelectionHistory` undoes changes.

Rules (the fast path and the brute-force references :func:`points_in_lasso` / :func:`points_in_box` agree exactly):

- **Lasso**: the polygon is repaired with ``shapely.make_valid`` (GEOS "linework" method), which gives *even-odd*
  semantics for a self-intersecting freehand outline (a figure-eight selects both lobes; the centre of a pentagram
  is not selected). Points *on* the outline are not selected (GEOS ``contains``: interior only). Fewer than 3
  distinct vertices or non-finite vertices raise :class:`~explorer.errors.DataError`; a polygon of zero area, or one
  entirely outside the map, selects nothing.
- **Box**: closed rectangle, ``x0 <= x <= x1 and y0 <= y <= y1`` (corners in any order).
- **Tap**: the nearest point within ``radius`` (ties go to the lower row), or nothing.

``PointIndex.lasso`` / ``box`` return rows or ids in grid order (fast; pass ``sort=True`` for catalogue order);
``Selection.resolve`` always returns catalogue order.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np
import pandas as pd
import shapely
from scipy import ndimage

from explorer.analysis.id_table import LazyIds
from explorer.errors import DataError

__all__ = [
    "PointIndex",
    "Selection",
    "SelectionMode",
    "SelectionHistory",
    "combine",
    "points_in_lasso",
    "points_in_box",
]

_EPS_CELLS = 1e-6  # safety margin (in cell units) when marking the cells an outline passes through


# --------------------------------------------------------------------------------------------------------------
# polygon helpers and brute-force references
# --------------------------------------------------------------------------------------------------------------
def _clean_vertices(vertices: Any) -> np.ndarray:
    """Return lasso vertices as a ``(m, 2)`` float64 array without the closing repeat; raise on bad input."""
    v = np.asarray(vertices, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 2:
        raise DataError(f"lasso vertices have shape {v.shape}; pass an (m, 2) array of x, y map coordinates")
    if not np.isfinite(v).all():
        bad = np.flatnonzero(~np.isfinite(v).all(axis=1))
        raise DataError(
            f"lasso vertex {int(bad[0])} is not finite ({v[bad[0]].tolist()}); "
            f"{bad.size} of {len(v)} vertices are NaN/inf: draw the lasso again inside the map"
        )
    if len(v) > 1 and np.array_equal(v[0], v[-1]):
        v = v[:-1]
    if len(v) < 3:
        raise DataError(f"a lasso needs at least 3 distinct vertices, got {len(v)}; draw a closed outline")
    return v


def _repaired_polygon(v: np.ndarray) -> shapely.Geometry | None:
    """The polygonal part of ``make_valid(Polygon(v))``, prepared; ``None`` when it has zero area."""
    geom = shapely.make_valid(shapely.Polygon(v))
    if geom.geom_type not in ("Polygon", "MultiPolygon"):
        parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon")]
        geom = shapely.union_all(parts) if parts else shapely.Polygon()
    if geom.is_empty or geom.area == 0.0:
        return None
    shapely.prepare(geom)
    return geom


def _ring_edges(geom: shapely.Geometry) -> np.ndarray:
    """All ring segments (exteriors and holes) of a valid (multi)polygon as ``(k, 4)`` rows ``ax, ay, bx, by``."""
    rings = shapely.get_rings(shapely.get_parts(geom))
    segs = []
    for ring in rings:
        c = shapely.get_coordinates(ring)
        segs.append(np.hstack((c[:-1], c[1:])))
    return np.ascontiguousarray(np.vstack(segs), dtype=np.float64)


# Shewchuk's orient2d error bound (3 + 16 eps) eps, eps = 2**-53: a determinant larger than this times the
# sum of the magnitudes of its two products has the right sign.
_CCW_ERRBOUND = (3.0 + 16.0 * 2.0**-53) * 2.0**-53


@numba.njit(cache=True, nogil=True)
def _ray_parity(px, py, slab, ptr, order, edges, out):  # pragma: no cover - compiled
    """Even-odd ray cast against the edges of each point's slab with an exact-sign filter.

    ``out[i]``: 0 outside, 1 inside, 2 undecided (the point is on or within rounding of an edge: ask GEOS).
    For a valid (multi)polygon, the parity of crossings with all ring edges is interior membership.
    """
    for i in range(px.shape[0]):
        x = px[i]
        y = py[i]
        s = slab[i]
        inside = False
        unsure = False
        for k in range(ptr[s], ptr[s + 1]):
            e = order[k]
            x1 = edges[e, 0]
            y1 = edges[e, 1]
            x2 = edges[e, 2]
            y2 = edges[e, 3]
            if y < min(y1, y2) or y > max(y1, y2):
                continue
            detl = (x1 - x) * (y2 - y)
            detr = (y1 - y) * (x2 - x)
            det = detl - detr
            if abs(det) <= _CCW_ERRBOUND * (abs(detl) + abs(detr)):
                unsure = True
                break
            if (y1 > y) != (y2 > y):
                if (det > 0.0) == (y2 > y1):
                    inside = not inside
        out[i] = 2 if unsure else (1 if inside else 0)


def points_in_lasso(x: np.ndarray, y: np.ndarray, vertices: Any) -> np.ndarray:
    """Brute-force lasso test of every point: the reference the grid index must equal exactly.

    Parameters
    ----------
    x, y : numpy.ndarray
        Point coordinates, shape ``(n,)``.
    vertices : array-like
        ``(m, 2)`` outline, closed implicitly; see the module docstring for the rules.

    Returns
    -------
    numpy.ndarray
        ``(n,)`` bool mask.
    """
    v = _clean_vertices(vertices)
    geom = _repaired_polygon(v)
    if geom is None:
        return np.zeros(len(x), dtype=bool)
    return shapely.contains_xy(geom, np.asarray(x, np.float64), np.asarray(y, np.float64))


def _clean_box(x0: float, y0: float, x1: float, y1: float) -> tuple[float, float, float, float]:
    vals = [float(x0), float(y0), float(x1), float(y1)]
    if not all(math.isfinite(b) for b in vals):
        raise DataError(f"box corners {vals} contain NaN/inf; drag the box inside the map")
    return min(vals[0], vals[2]), min(vals[1], vals[3]), max(vals[0], vals[2]), max(vals[1], vals[3])


def points_in_box(x: np.ndarray, y: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Brute-force closed-box test (``x0 <= x <= x1`` and ``y0 <= y <= y1``), the reference for the index."""
    x0, y0, x1, y1 = _clean_box(x0, y0, x1, y1)
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    return (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)


# --------------------------------------------------------------------------------------------------------------
# the grid index
# --------------------------------------------------------------------------------------------------------------
class PointIndex:
    """A uniform grid over map coordinates, built once, that turns lasso / box / tap into object ids fast.

    Points are sorted by grid cell, so the points of a cell (and of a run of adjacent cells in one grid row) are
    one contiguous slice. A lasso takes cells that lie wholly inside the outline as they are and tests only the
    points of the cells the outline passes through, with ``shapely.contains_xy``.

    Parameters
    ----------
    x, y : array-like
        Map coordinates, shape ``(n,)``, finite (float32 or float64; kept as given).
    ids : array-like
        Object ids, shape ``(n,)``.
    grid : int, optional
        Cells per axis; default 512 below 4M points, 1024 from 4M (measured: at 10M points a 200-vertex
        lasso takes ~25 ms of CPU with 512 cells, ~17 ms with 1024).
    map_version : str, optional
        The map these coordinates come from; selections drawn on another version refuse to resolve.

    Notes
    -----
    Memory: the coordinates (kept as given), a cell-sorted copy of them and an int32/int64 order array, plus
    ``grid**2 + 1`` offsets: about 16–24 bytes per point. Build time is one argsort (1.5–6 s at 10M points
    on 2 busy cores).
    """

    def __init__(
        self, x: Any, y: Any, ids: Any, grid: int | None = None, map_version: str | None = None
    ) -> None:
        x = np.asarray(x)
        y = np.asarray(y)
        ids = (
            ids if isinstance(ids, LazyIds) else np.asarray(ids)
        )  # LazyIds: millions of ids, no Python strings
        if x.ndim != 1 or x.shape != y.shape or ids.shape != x.shape:
            raise DataError(
                f"x, y and ids must be 1-D and of one length, got shapes {x.shape}, {y.shape}, {ids.shape}"
            )
        if x.dtype.kind != "f":
            x = x.astype(np.float64)
        if y.dtype.kind != "f":
            y = y.astype(np.float64)
        bad = ~(np.isfinite(x) & np.isfinite(y))
        if bad.any():
            rows = np.flatnonzero(bad)
            raise DataError(
                f"{rows.size} map coordinates are NaN/inf (first ids: {ids[rows[:5]].tolist()}); "
                "drop those objects or recompute the map"
            )
        if grid is None:
            grid = 512 if len(x) < 4_000_000 else 1024
        if int(grid) < 1:
            raise DataError(f"grid={grid} must be a positive number of cells per axis")
        self.x, self.y, self.ids = x, y, ids
        self.grid = int(grid)
        self.map_version = map_version
        self._id_index: pd.Index | None = None
        self._build()

    # ---- construction ---------------------------------------------------------------------------------------
    def _build(self) -> None:
        g = self.grid
        n = len(self.x)
        if n:
            self.bounds = (float(self.x.min()), float(self.y.min()), float(self.x.max()), float(self.y.max()))
        else:
            self.bounds = (0.0, 0.0, 1.0, 1.0)
        x0, y0, x1, y1 = self.bounds
        self._sx = g / (x1 - x0) if x1 > x0 else 1.0
        self._sy = g / (y1 - y0) if y1 > y0 else 1.0
        cell = self._cell_y(self.y) * g + self._cell_x(self.x)
        itype = np.int32 if n < 2**31 - 1 else np.int64
        self._order = np.argsort(cell, kind="stable").astype(itype, copy=False)
        counts = np.bincount(cell, minlength=g * g)
        self._starts = np.zeros(g * g + 1, dtype=np.int64)
        np.cumsum(counts, out=self._starts[1:])
        self._xs = self.x[self._order]
        self._ys = self.y[self._order]

    def __len__(self) -> int:
        return len(self.x)

    def __repr__(self) -> str:
        return f"PointIndex(n={len(self)}, grid={self.grid}, map_version={self.map_version!r})"

    # cell units: u = (x - x0) * sx; the same monotone formula for points, outlines and boxes
    def _u(self, x: Any) -> np.ndarray:
        return (np.asarray(x, np.float64) - self.bounds[0]) * self._sx

    def _w(self, y: Any) -> np.ndarray:
        return (np.asarray(y, np.float64) - self.bounds[1]) * self._sy

    def _cell_x(self, x: Any) -> np.ndarray:
        return np.clip(np.floor(self._u(x)), 0, self.grid - 1).astype(np.int64)

    def _cell_y(self, y: Any) -> np.ndarray:
        return np.clip(np.floor(self._w(y)), 0, self.grid - 1).astype(np.int64)

    # ---- id <-> row -----------------------------------------------------------------------------------------
    def rows_of(self, ids: Iterable[Any], missing: str = "raise") -> np.ndarray:
        """Row positions of ``ids``; ``missing="raise"`` raises :class:`DataError`, ``"drop"`` skips them."""
        if self._id_index is None:
            index = pd.Index(self.ids)
            if not index.is_unique:
                dup = index[index.duplicated()][:5].tolist()
                raise DataError(f"object ids are not unique (e.g. {dup}); give every object one id")
            self._id_index = index
        wanted = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids)
        rows = self._id_index.get_indexer(wanted) if wanted.size else np.empty(0, np.int64)
        if (rows < 0).any():
            if missing == "raise":
                unknown = wanted[rows < 0][:5].tolist()
                raise DataError(f"unknown object ids {unknown} ({int((rows < 0).sum())} in all) in this map")
            rows = rows[rows >= 0]
        return rows.astype(np.int64)

    # ---- gathering ------------------------------------------------------------------------------------------
    def _runs(self, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sorted global cell ids -> (start, end) slices of the cell-sorted arrays, adjacent cells merged."""
        if cells.size == 0:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        brk = np.flatnonzero(np.diff(cells) != 1)
        first = np.concatenate(([cells[0]], cells[brk + 1]))
        last = np.concatenate((cells[brk], [cells[-1]]))
        return self._starts[first], self._starts[last + 1]

    @staticmethod
    def _take(
        arr: np.ndarray, starts: np.ndarray, ends: np.ndarray, extra: np.ndarray | None = None
    ) -> np.ndarray:
        """Concatenate the slices ``arr[s:e]`` (and then ``extra``) into one new array."""
        lens = ends - starts
        n_in = int(lens.sum())
        total = n_in + (0 if extra is None else extra.size)
        out = np.empty(total, dtype=arr.dtype)
        if lens.size > 32 and n_in < 64 * lens.size:  # many short slices: one fancy-index gather
            offsets = np.cumsum(lens) - lens
            out[:n_in] = arr[np.arange(n_in) + np.repeat(starts - offsets, lens)]
        else:  # few long slices: plain copies
            pos = 0
            for a, n in zip(starts.tolist(), lens.tolist(), strict=True):
                out[pos : pos + n] = arr[a : a + n]
                pos += n
        if extra is not None:
            out[n_in:] = extra
        return out

    def _finish(self, rows: np.ndarray) -> np.ndarray:
        """Rows in catalogue order. numpy's vectorised sort beats a bitmap of all rows at every size measured
        (10M points, AVX-512: 4.2 vs 33.8 ms for 1M rows, 25.5 vs 55.0 ms for 5M, 42.4 vs 90.1 ms for 8M)."""
        return np.sort(rows)

    # ---- lasso ----------------------------------------------------------------------------------------------
    def _edge_cell_units(self, edges: np.ndarray) -> tuple[np.ndarray, ...]:
        """Ring edges in cell units, each ordered left to right: ``ua <= ub``."""
        ua, wa = self._u(edges[:, 0]), self._w(edges[:, 1])
        ub, wb = self._u(edges[:, 2]), self._w(edges[:, 3])
        swap = ua > ub
        return (
            np.where(swap, ub, ua),
            np.where(swap, wb, wa),
            np.where(swap, ua, ub),
            np.where(swap, wa, wb),
        )

    def _outline_cells(self, edges: np.ndarray, win: tuple[int, int, int, int]) -> np.ndarray:
        """Boolean window ``(rows, cols)`` marking every cell that an edge passes within eps of.

        Each edge is walked column by column; in each column it covers the rows between its heights at the
        column's two sides (exact supercover, widened by eps so rounding can never leave a point unmarked).
        """
        cx0, cy0, cx1, cy1 = win
        mask = np.zeros((cy1 - cy0 + 1, cx1 - cx0 + 1), dtype=bool)
        ua, wa, ub, wb = self._edge_cell_units(edges)
        e = _EPS_CELLS
        c_lo = np.clip(np.floor(ua - e), cx0, cx1).astype(np.int64)
        c_hi = np.clip(np.floor(ub + e), cx0, cx1).astype(np.int64)
        inside_x = (ub + e >= cx0) & (ua - e < cx1 + 1)
        ncol = np.where(inside_x, c_hi - c_lo + 1, 0)
        edge = np.repeat(np.arange(len(ua)), ncol)
        col = c_lo[edge] + (np.arange(edge.size) - np.repeat(np.cumsum(ncol) - ncol, ncol))
        a, b = ua[edge], ub[edge]
        lo_u = np.maximum(a, col - e)
        hi_u = np.minimum(b, col + 1 + e)
        span = b - a
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = np.where(span > 0, (wb[edge] - wa[edge]) / span, 0.0)
        w1 = np.where(span > 0, wa[edge] + (lo_u - a) * slope, np.minimum(wa[edge], wb[edge]))
        w2 = np.where(span > 0, wa[edge] + (hi_u - a) * slope, np.maximum(wa[edge], wb[edge]))
        w_min = np.minimum(w1, w2) - e
        w_max = np.maximum(w1, w2) + e
        ok = (w_max >= cy0) & (w_min < cy1 + 1)
        r_lo = np.clip(np.floor(w_min), cy0, cy1).astype(np.int64)[ok]
        r_hi = np.clip(np.floor(w_max), cy0, cy1).astype(np.int64)[ok]
        col = col[ok]
        nrow = r_hi - r_lo + 1
        k = np.repeat(np.arange(col.size), nrow)
        rr = r_lo[k] + (np.arange(k.size) - np.repeat(np.cumsum(nrow) - nrow, nrow))
        mask[rr - cy0, col[k] - cx0] = True
        return mask

    def _inner_cells(self, geom: shapely.Geometry, free: np.ndarray, cx0: int, cy0: int) -> np.ndarray:
        """Cells no edge passes through that lie inside: one centre tested per connected component.

        No edge crosses a component of such cells, so all its points are on one side of the outline.
        """
        labels, n = ndimage.label(free)
        if n == 0:
            return np.zeros_like(free)
        flat = labels.ravel()
        rep = np.zeros(n + 1, dtype=np.int64)
        rep[flat] = np.arange(flat.size)  # any one cell of each component
        r, c = np.divmod(rep[1:], free.shape[1])
        xc = self.bounds[0] + (c + cx0 + 0.5) / self._sx
        yc = self.bounds[1] + (r + cy0 + 0.5) / self._sy
        inside = np.zeros(n + 1, dtype=bool)
        inside[1:] = shapely.contains_xy(geom, xc, yc)
        return inside[labels]

    def _edge_hits(
        self, geom: shapely.Geometry, edges: np.ndarray, xs: np.ndarray, ys: np.ndarray, cy0: int, cy1: int
    ) -> np.ndarray:
        """Exact lasso test of the points of the outline cells: a filtered ray cast, GEOS for the unsure."""
        xs = xs.astype(np.float64)
        ys = ys.astype(np.float64)
        ua, wa, ub, wb = self._edge_cell_units(edges)
        lo = np.clip(np.floor(np.minimum(wa, wb) - _EPS_CELLS), cy0, cy1).astype(np.int64) - cy0
        hi = np.clip(np.floor(np.maximum(wa, wb) + _EPS_CELLS), cy0, cy1).astype(np.int64) - cy0
        cnt = hi - lo + 1
        eid = np.repeat(np.arange(len(edges)), cnt)
        slab_of_edge = lo[eid] + (np.arange(eid.size) - np.repeat(np.cumsum(cnt) - cnt, cnt))
        order = np.argsort(slab_of_edge, kind="stable")
        ptr = np.zeros(cy1 - cy0 + 2, dtype=np.int64)
        np.cumsum(np.bincount(slab_of_edge, minlength=cy1 - cy0 + 1), out=ptr[1:])
        slab = self._cell_y(ys) - cy0
        status = np.empty(xs.size, dtype=np.int8)
        _ray_parity(xs, ys, slab, ptr, eid[order], edges, status)
        unsure = np.flatnonzero(status == 2)
        if unsure.size:
            status[unsure] = shapely.contains_xy(geom, xs[unsure], ys[unsure])
        return status == 1

    def lasso_rows(self, vertices: Any, sort: bool = False) -> np.ndarray:
        """Rows of the points inside a lasso outline; see the module docstring for the rules.

        Parameters
        ----------
        vertices : array-like
            ``(m, 2)`` outline in map coordinates.
        sort : bool
            Return rows in catalogue order (costs a sort: ~9 ms for 2M rows on 2 cores); otherwise grid order.
        """
        v = _clean_vertices(vertices)
        geom = _repaired_polygon(v)
        empty = np.empty(0, np.int64)
        if geom is None or len(self) == 0:
            return empty
        px0, py0, px1, py1 = geom.bounds
        bx0, by0, bx1, by1 = self.bounds
        if px1 < bx0 or px0 > bx1 or py1 < by0 or py0 > by1:
            return empty
        cx0, cx1 = (int(c) for c in self._cell_x([px0, px1]))
        cy0, cy1 = (int(c) for c in self._cell_y([py0, py1]))
        edges = _ring_edges(geom)
        edge = self._outline_cells(edges, (cx0, cy0, cx1, cy1))
        inner = self._inner_cells(geom, ~edge, cx0, cy0)
        g = self.grid
        rr, cc = np.nonzero(inner)
        s_in, e_in = self._runs((rr + cy0) * g + (cc + cx0))
        rr, cc = np.nonzero(edge)
        s, e = self._runs((rr + cy0) * g + (cc + cx0))
        cand = self._take(self._order, s, e)
        hit = self._edge_hits(geom, edges, self._take(self._xs, s, e), self._take(self._ys, s, e), cy0, cy1)
        rows = self._take(self._order, s_in, e_in, extra=cand[hit])
        return self._finish(rows) if sort else rows

    def lasso(self, vertices: Any, sort: bool = False) -> np.ndarray:
        """Ids of the points inside a lasso outline ``(m, 2)`` (grid order unless ``sort``)."""
        return self.ids[self.lasso_rows(vertices, sort=sort)]

    # ---- box ------------------------------------------------------------------------------------------------
    def box_rows(self, x0: float, y0: float, x1: float, y1: float, sort: bool = False) -> np.ndarray:
        """Rows of the points in the closed box, corners in any order (grid order unless ``sort``)."""
        x0, y0, x1, y1 = _clean_box(x0, y0, x1, y1)
        bx0, by0, bx1, by1 = self.bounds
        if len(self) == 0 or x1 < bx0 or x0 > bx1 or y1 < by0 or y0 > by1:
            return np.empty(0, np.int64)
        g = self.grid
        i0, i1 = (int(c) for c in self._cell_x([x0, x1]))
        j0, j1 = (int(c) for c in self._cell_y([y0, y1]))
        # whole cells strictly between the border cells are inside (floor is monotone); border cells tested
        rows_j = np.arange(j0 + 1, j1)
        inner_s = self._starts[rows_j * g + i0 + 1] if i1 - i0 > 1 else np.empty(0, np.int64)
        inner_e = self._starts[rows_j * g + i1] if i1 - i0 > 1 else np.empty(0, np.int64)
        border = np.unique(
            np.concatenate(
                [
                    j0 * g + np.arange(i0, i1 + 1),
                    j1 * g + np.arange(i0, i1 + 1),
                    rows_j * g + i0,
                    rows_j * g + i1,
                ]
            )
        )
        s, e = self._runs(border)
        cand = self._take(self._order, s, e)
        xs = self._take(self._xs, s, e).astype(np.float64)
        ys = self._take(self._ys, s, e).astype(np.float64)
        hit = (xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1)
        rows = self._take(self._order, inner_s, inner_e, extra=cand[hit])
        return self._finish(rows) if sort else rows

    def box(self, x0: float, y0: float, x1: float, y1: float, sort: bool = False) -> np.ndarray:
        """Ids of the points in the closed box ``[x0, x1] x [y0, y1]`` (grid order unless ``sort``)."""
        return self.ids[self.box_rows(x0, y0, x1, y1, sort=sort)]

    # ---- tap ------------------------------------------------------------------------------------------------
    def nearest_row(self, x: float, y: float, max_distance: float | None = None) -> int | None:
        """Row of the point nearest to ``(x, y)`` (ties: lower row), or ``None`` if none within ``max_distance``."""
        if not (math.isfinite(float(x)) and math.isfinite(float(y))):
            raise DataError(f"tap position ({x}, {y}) is not finite; tap inside the map")
        if max_distance is not None and not float(max_distance) >= 0:
            raise DataError(f"max_distance={max_distance} must be >= 0 (or None for no limit)")
        if len(self) == 0:
            return None
        g = self.grid
        cw, ch = 1.0 / self._sx, 1.0 / self._sy
        ci, cj = int(self._cell_x([x])[0]), int(self._cell_y([y])[0])
        # distance from the query to the outside of the searched square of cells grows by min(cw, ch) per ring
        bx0, by0, bx1, by1 = self.bounds
        dx_out = max(bx0 - x, 0.0, x - bx1)
        dy_out = max(by0 - y, 0.0, y - by1)
        base = math.hypot(dx_out, dy_out)
        best_d2, best_row = math.inf, -1
        r = 0
        while True:
            j_lo, j_hi = max(cj - r, 0), min(cj + r, g - 1)
            i_lo, i_hi = max(ci - r, 0), min(ci + r, g - 1)
            cells = self._ring_cells(r, ci, cj, i_lo, i_hi, j_lo, j_hi)
            s, e = self._runs(cells)
            if s.size:
                xs = self._take(self._xs, s, e).astype(np.float64)
                ys = self._take(self._ys, s, e).astype(np.float64)
                rows = self._take(self._order, s, e)
                if rows.size:
                    d2 = (xs - x) ** 2 + (ys - y) ** 2
                    m = d2.min()
                    row = int(rows[d2 == m].min())
                    if m < best_d2 or (m == best_d2 and row < best_row):
                        best_d2, best_row = float(m), row
            covered = i_lo == 0 and j_lo == 0 and i_hi == g - 1 and j_hi == g - 1
            reach = max(r * min(cw, ch), base)  # every point not yet seen is farther than this
            if best_row >= 0 and math.sqrt(best_d2) <= reach or covered:
                break
            if max_distance is not None and reach > float(max_distance):
                break
            r += 1
        if best_row < 0:
            return None
        if max_distance is not None and math.sqrt(best_d2) > float(max_distance):
            return None
        return best_row

    def _ring_cells(self, r: int, ci: int, cj: int, i_lo: int, i_hi: int, j_lo: int, j_hi: int) -> np.ndarray:
        """Sorted global ids of the cells on ring ``r`` around ``(ci, cj)``, clipped to the grid."""
        g = self.grid
        if r == 0:
            return np.array([cj * g + ci], dtype=np.int64)
        out = []
        for j in (cj - r, cj + r):
            if 0 <= j < g:
                out.append(j * g + np.arange(i_lo, i_hi + 1))
        js = np.arange(max(cj - r + 1, 0), min(cj + r - 1, g - 1) + 1)
        for i in (ci - r, ci + r):
            if 0 <= i < g and js.size:
                out.append(js * g + i)
        return np.unique(np.concatenate(out)) if out else np.empty(0, np.int64)

    def nearest(self, x: float, y: float, max_distance: float | None = None) -> Any | None:
        """Id of the point nearest to ``(x, y)``, or ``None`` if there is none within ``max_distance``."""
        row = self.nearest_row(x, y, max_distance)
        return None if row is None else self.ids[row]


# --------------------------------------------------------------------------------------------------------------
# selections as values
# --------------------------------------------------------------------------------------------------------------
class SelectionMode(enum.StrEnum):
    """How a new selection meets the current one."""

    REPLACE = "replace"
    ADD = "add"
    SUBTRACT = "subtract"
    INTERSECT = "intersect"


def combine(old_ids: Any, new_ids: Any, mode: SelectionMode | str) -> np.ndarray:
    """Combine two id arrays by ``mode``; order is kept (``old`` first, then new ids not in ``old``).

    Examples
    --------
    >>> combine(["a", "b"], ["b", "c"], "add").tolist()
    ['a', 'b', 'c']
    >>> combine(["a", "b"], ["b", "c"], "subtract").tolist()
    ['a']
    """
    mode = SelectionMode(mode)
    old = np.asarray(old_ids)
    new = np.asarray(new_ids)
    if mode is SelectionMode.REPLACE:
        return new.copy()
    if mode is SelectionMode.ADD:
        return np.concatenate((old, new[~np.isin(new, old)])) if old.size else new.copy()
    if mode is SelectionMode.SUBTRACT:
        return old[~np.isin(old, new)]
    return old[np.isin(old, new)]


_GEOMETRY_KINDS = ("lasso", "box", "tap", "ids")
_SET_KINDS = {"union": "|", "intersection": "&", "difference": "-"}


def _jsonable_ids(ids: Sequence[Any]) -> list[Any]:
    return np.asarray(ids).tolist()


@dataclass(frozen=True)
class Selection:
    """A selection as a value: a geometry drawn on one map version, or a set expression of selections.

    Build with :meth:`lasso`, :meth:`box`, :meth:`tap`, :meth:`from_ids`, or combine with ``|``, ``&``, ``-``.
    Resolve to ids with :meth:`resolve`. Round-trips through :meth:`to_dict` / :meth:`from_dict` (JSON-able).

    Attributes
    ----------
    kind : str
        ``"lasso"``, ``"box"``, ``"tap"``, ``"ids"``, or ``"union"`` / ``"intersection"`` / ``"difference"``.
    params : tuple
        The geometry: lasso vertices ``((x, y), ...)``; box ``(x0, y0, x1, y1)``; tap ``(x, y, radius)``;
        ids ``(id, ...)``; for set kinds the two operand selections.
    map_version : str or None
        The map the geometry was drawn on (``None``: any map, e.g. explicit ids).
    """

    kind: str
    params: tuple = field(default=())
    map_version: str | None = None

    # ---- builders -------------------------------------------------------------------------------------------
    @classmethod
    def lasso(cls, vertices: Any, map_version: str | None = None) -> Selection:
        """A lasso outline; validated now (``DataError`` for < 3 vertices or NaN)."""
        v = _clean_vertices(vertices)
        return cls("lasso", tuple((float(a), float(b)) for a, b in v), map_version)

    @classmethod
    def box(cls, x0: float, y0: float, x1: float, y1: float, map_version: str | None = None) -> Selection:
        """A closed box with corners in any order."""
        return cls("box", _clean_box(x0, y0, x1, y1), map_version)

    @classmethod
    def tap(cls, x: float, y: float, radius: float, map_version: str | None = None) -> Selection:
        """The object nearest to ``(x, y)`` if it lies within ``radius`` map units."""
        vals = (float(x), float(y), float(radius))
        if not all(math.isfinite(v) for v in vals) or vals[2] < 0:
            raise DataError(f"tap (x, y, radius)={vals} must be finite with radius >= 0")
        return cls("tap", vals, map_version)

    @classmethod
    def from_ids(cls, ids: Iterable[Any]) -> Selection:
        """An explicit list of object ids (valid on any map)."""
        return cls("ids", tuple(_jsonable_ids(list(ids))), None)

    # ---- set algebra ----------------------------------------------------------------------------------------
    def _join(self, other: Selection, kind: str) -> Selection:
        if not isinstance(other, Selection):
            return NotImplemented
        versions = {s.map_version for s in (self, other)} - {None}
        if len(versions) > 1:
            raise DataError(
                f"cannot combine selections drawn on different maps {sorted(versions)}; redraw one of them"
            )
        return Selection(kind, (self, other), versions.pop() if versions else None)

    def __or__(self, other: Selection) -> Selection:
        return self._join(other, "union")

    def __and__(self, other: Selection) -> Selection:
        return self._join(other, "intersection")

    def __sub__(self, other: Selection) -> Selection:
        return self._join(other, "difference")

    # ---- resolution -----------------------------------------------------------------------------------------
    def resolve_rows(self, index: PointIndex) -> np.ndarray:
        """Rows of ``index`` this selection covers, in catalogue order."""
        if self.kind in _SET_KINDS:
            a, b = (s.resolve_rows(index) for s in self.params)
            if self.kind == "union":
                return np.union1d(a, b)
            if self.kind == "intersection":
                return np.intersect1d(a, b, assume_unique=True)
            return np.setdiff1d(a, b, assume_unique=True)
        if (
            self.map_version is not None
            and index.map_version is not None
            and self.map_version != index.map_version
        ):
            raise DataError(
                f"this {self.kind} selection was drawn on map {self.map_version!r} but the index is map "
                f"{index.map_version!r}; redraw it, or save selections as ids to carry them across maps"
            )
        if self.kind == "lasso":
            return index.lasso_rows(np.asarray(self.params, dtype=np.float64), sort=True)
        if self.kind == "box":
            return index.box_rows(*self.params, sort=True)
        if self.kind == "tap":
            row = index.nearest_row(self.params[0], self.params[1], max_distance=self.params[2])
            return np.empty(0, np.int64) if row is None else np.array([row], dtype=np.int64)
        if self.kind == "ids":
            return np.unique(index.rows_of(np.asarray(self.params), missing="drop"))
        raise DataError(f"unknown selection kind {self.kind!r}; expected one of {_GEOMETRY_KINDS}")

    def resolve(self, index: PointIndex) -> np.ndarray:
        """Object ids this selection covers on ``index``, in catalogue order."""
        return index.ids[self.resolve_rows(index)]

    # ---- persistence ----------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict that :meth:`from_dict` turns back into an equal selection."""
        if self.kind in _SET_KINDS:
            return {
                "kind": self.kind,
                "operands": [s.to_dict() for s in self.params],
                "map_version": self.map_version,
            }
        key = {"lasso": "vertices", "box": "bounds", "tap": "point_radius", "ids": "ids"}[self.kind]
        value = [list(p) for p in self.params] if self.kind == "lasso" else list(self.params)
        return {"kind": self.kind, key: value, "map_version": self.map_version}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Selection:
        """Rebuild a selection from :meth:`to_dict` output (e.g. after ``json.loads``)."""
        kind = d.get("kind")
        mv = d.get("map_version")
        if kind in _SET_KINDS:
            a, b = (cls.from_dict(o) for o in d["operands"])
            return Selection(kind, (a, b), mv)
        if kind == "lasso":
            return cls.lasso(d["vertices"], mv)
        if kind == "box":
            return cls.box(*d["bounds"], map_version=mv)
        if kind == "tap":
            return cls.tap(*d["point_radius"], map_version=mv)
        if kind == "ids":
            return cls.from_ids(d["ids"])
        raise DataError(
            f"unknown selection kind {kind!r}; expected one of {_GEOMETRY_KINDS + tuple(_SET_KINDS)}"
        )

    def to_json(self) -> str:
        """:meth:`to_dict` as a JSON string."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> Selection:
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))


_MODE_TO_KIND = {
    SelectionMode.ADD: "union",
    SelectionMode.SUBTRACT: "difference",
    SelectionMode.INTERSECT: "intersection",
}


class SelectionHistory:
    """The current selection and an undo/redo trail of earlier ones.

    ``None`` stands for "nothing selected". :meth:`apply` meets a new selection with the current one through a
    :class:`SelectionMode` (as a lazy set expression, resolved later); :meth:`undo` / :meth:`redo` step back and
    forth; a new change after an undo drops the redo branch.

    Parameters
    ----------
    max_len : int
        Oldest states beyond this many are forgotten.
    """

    def __init__(self, max_len: int = 100) -> None:
        self.max_len = int(max_len)
        self._states: list[Selection | None] = [None]
        self._pos = 0

    @property
    def current(self) -> Selection | None:
        """The selection now in force (``None``: nothing selected)."""
        return self._states[self._pos]

    def push(self, selection: Selection | None) -> Selection | None:
        """Make ``selection`` current, remembering the previous state for :meth:`undo`."""
        del self._states[self._pos + 1 :]
        self._states.append(selection)
        if len(self._states) > self.max_len:
            del self._states[: len(self._states) - self.max_len]
        self._pos = len(self._states) - 1
        return selection

    def apply(self, new: Selection, mode: SelectionMode | str = SelectionMode.REPLACE) -> Selection | None:
        """Combine ``new`` with the current selection by ``mode`` and push the result."""
        mode = SelectionMode(mode)
        cur = self.current
        if mode is SelectionMode.REPLACE or (cur is None and mode is SelectionMode.ADD):
            return self.push(new)
        if cur is None:  # subtract from / intersect with nothing
            return self.push(None)
        return self.push(cur._join(new, _MODE_TO_KIND[mode]))

    def clear(self) -> None:
        """Select nothing (undoable)."""
        self.push(None)

    @property
    def can_undo(self) -> bool:
        """Whether :meth:`undo` can step back (an earlier state is remembered)."""
        return self._pos > 0

    @property
    def can_redo(self) -> bool:
        """Whether :meth:`redo` can step forward (a state was undone and nothing pushed since)."""
        return self._pos < len(self._states) - 1

    def undo(self) -> Selection | None:
        """Step back one change and return the selection then in force (no-op at the start)."""
        if self.can_undo:
            self._pos -= 1
        return self.current

    def redo(self) -> Selection | None:
        """Step forward again after :meth:`undo`."""
        if self.can_redo:
            self._pos += 1
        return self.current

    def to_dict(self) -> dict[str, Any]:
        """JSON-able trail (states and position)."""
        return {
            "max_len": self.max_len,
            "position": self._pos,
            "states": [None if s is None else s.to_dict() for s in self._states],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SelectionHistory:
        """Inverse of :meth:`to_dict`."""
        h = cls(d.get("max_len", 100))
        h._states = [None if s is None else Selection.from_dict(s) for s in d["states"]] or [None]
        h._pos = min(int(d.get("position", len(h._states) - 1)), len(h._states) - 1)
        return h
