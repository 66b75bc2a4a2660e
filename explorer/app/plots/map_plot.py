"""The embedding map as HoloViews elements: the rasterized base coloured by a column, highlight layers, markers.

Every function takes data and options and returns a HoloViews object; the map Viewer only wires them to streams.
Points are always drawn with Datashader's ``rasterize`` (never one glyph per object), so the map stays
interactive at millions of objects, keeps a colour bar and lets the server answer hover.
"""

from __future__ import annotations

from collections.abc import Mapping

import datashader as ds
import holoviews as hv
import numpy as np
import pandas as pd
from holoviews.operation.datashader import rasterize, shade

from explorer.app.data import ColourSpec
from explorer.app.plots import palette

VALUE = "value"
HOVER_SELECTOR_MAX = 100_000  # above this many objects the per-pixel hover lookup costs more than a redraw
SELECT_TOOLS = (
    "lasso_select",
    "box_select",
    "tap",
)  # above this many objects the per-pixel hover lookup costs more than a redraw


def points_element(
    frame: pd.DataFrame,
    values: np.ndarray | None = None,
    spec: ColourSpec | None = None,
    with_ids: bool = True,
) -> hv.Points:
    """Map points ``x, y`` with the id and the colouring column as value dimensions.

    Parameters
    ----------
    frame : DataFrame
        ``id, x, y`` per object.
    values : ndarray, optional
        The colouring value per row (category strings or numbers), stored as column ``value``.
    spec : ColourSpec, optional
        Names the value dimension and, for categories, their order.
    """
    data = {"x": frame["x"].to_numpy(), "y": frame["y"].to_numpy()}
    vdims = []
    if with_ids:
        data["id"] = frame["id"].to_numpy(dtype=object)
        vdims.append(hv.Dimension("id", label="id"))
    if values is not None and spec is not None and spec.kind != "count":
        if spec.kind == "categorical":
            cats = list(dict.fromkeys([*spec.categories, *pd.unique(np.asarray(values, dtype=object))]))
            data[VALUE] = pd.Categorical(values, categories=cats)
        else:
            data[VALUE] = np.asarray(values, dtype=np.float32)
        vdims.append(hv.Dimension(VALUE, label=spec.name))
    return hv.Points(pd.DataFrame(data), ["x", "y"], vdims)


def pixel_ratio(n_objects: int) -> float:
    """Bins per screen pixel: coarser for small maps so sparse points stay visible without a spreading pass."""
    return 0.5 if n_objects < 50_000 else 1.0


def base_layer(
    points,
    spec: ColourSpec,
    colours: Mapping[str, str] | None = None,
    *,
    hover: bool = True,
    dynamic: bool = True,
    width: int = 800,
    height: int = 700,
    ratio: float = 1.0,
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
):
    """The whole map rasterized and coloured by ``spec``.

    Parameters
    ----------
    points : hv.Points or DynamicMap of Points
        From :func:`points_element`.
    spec : ColourSpec
        ``count`` shades by density; ``categorical`` gives one colour per category (legend);
        ``continuous`` maps the column's maximum (anomaly score) or mean per pixel (colour bar).
    colours : mapping, optional
        Colour per category (categorical only).
    ratio : float
        Bins per screen pixel (see :func:`pixel_ratio`).
    x_range, y_range : tuple, optional
        The view to aggregate (static rasters only; default the data's extent).
    hover : bool
        Let hover name the object under the cursor (``selector=ds.first``): a server-side lookup per pixel,
        worth it up to a few hundred thousand objects. Without hover, a static categorical map is shaded to RGB
        on the server: the browser then receives one 4-byte colour per pixel instead of a count per category
        and pixel (17 MB for 8 classes on 800x700), and the page draws in a fraction of the time.

    Returns
    -------
    DynamicMap or Image/ImageStack/RGB
        Re-aggregated on every zoom and pan when ``dynamic``.
    """
    selector = ds.first("x") if hover else None
    kw = {"dynamic": dynamic, "width": width, "height": height, "pixel_ratio": ratio}
    if not dynamic and x_range is not None and y_range is not None:
        kw.update(x_range=tuple(x_range), y_range=tuple(y_range))
    tools = [*SELECT_TOOLS, "hover"] if hover else list(SELECT_TOOLS)
    if spec.kind == "categorical":
        agg = rasterize(points, aggregator=ds.count_cat(VALUE), selector=selector, **kw)
        cmap = dict(colours or {})
        if not hover and not dynamic:  # shade on the server: 4 bytes a pixel, not 4 per category and pixel
            key = {str(c): cmap.get(str(c), palette.OTHER) for c in agg.vdims}
            return shade(agg, color_key=key, cnorm="eq_hist").opts(tools=tools)
        return agg.opts(cmap=cmap, colorbar=False, tools=tools)
    if spec.kind == "continuous":
        reduce = ds.max(VALUE) if spec.name == "anomaly score" else ds.mean(VALUE)
        agg = rasterize(points, aggregator=reduce, selector=selector, **kw)
        cmap = palette.SCORE_CMAP if spec.name == "anomaly score" else palette.CONTINUOUS_CMAP
        return agg.opts(cmap=cmap, colorbar=True, clabel=spec.name, cnorm="eq_hist", tools=tools)
    agg = rasterize(points, aggregator=ds.count(), selector=selector, **kw)
    return agg.opts(cmap=palette.DENSITY_CMAP, cnorm="eq_hist", colorbar=False, tools=tools)


def bin_counts(
    x: np.ndarray,
    y: np.ndarray,
    x_range: tuple[float, float],
    y_range: tuple[float, float],
    width: int,
    height: int,
) -> np.ndarray:
    """Points per pixel of a ``width`` x ``height`` grid over ``x_range`` x ``y_range``, shape ``(height, width)``,
    row 0 at the top (``y_range[1]``), as ``hv.Image`` expects; points outside are not counted.

    Pixels are half-open ``[x0 + i dx, x0 + (i + 1) dx)`` like Datashader's, with the far edge included.
    """
    (x0, x1), (y0, y1) = x_range, y_range
    if not (x1 > x0 and y1 > y0) or len(x) == 0:
        return np.zeros((height, width), dtype=np.float32)
    u = (np.asarray(x, dtype=np.float64) - x0) * (width / (x1 - x0))
    w = (np.asarray(y, dtype=np.float64) - y0) * (height / (y1 - y0))
    inside = (u >= 0) & (u <= width) & (w >= 0) & (w <= height)
    i = np.minimum(u[inside].astype(np.int64), width - 1)
    j = np.minimum(w[inside].astype(np.int64), height - 1)
    counts = np.bincount(j * width + i, minlength=width * height).reshape(height, width)
    return counts[::-1].astype(np.float32)


def _dilate(img: np.ndarray, px: int) -> np.ndarray:
    """Grow every non-empty pixel into a ``(2 px + 1)``-square (maximum filter), so single points stay visible."""
    out = img.copy()
    h, w = img.shape
    for dy in range(-px, px + 1):
        for dx in range(-px, px + 1):
            if dx or dy:
                ys, yd = slice(max(0, -dy), h - max(0, dy)), slice(max(0, dy), h - max(0, -dy))
                xs, xd = slice(max(0, -dx), w - max(0, dx)), slice(max(0, dx), w - max(0, -dx))
                np.maximum(out[yd, xd], img[ys, xs], out=out[yd, xd])
    return out


def _spread_counts(
    x, y, x_range, y_range, width: int, height: int, ratio: float, spread: int | None
) -> np.ndarray:
    """Counts of ``(x, y)`` on the view's ``(height·ratio, width·ratio)`` grid, each point grown by ``spread``
    pixels (default: 1 at full resolution, 0 when the view is drawn coarser) so single objects stay visible."""
    w, h = max(1, int(width * ratio)), max(1, int(height * ratio))
    counts = bin_counts(x, y, tuple(x_range), tuple(y_range), w, h)
    spread = (1 if ratio >= 1 else 0) if spread is None else spread
    return _dilate(counts, spread) if spread and counts.any() else counts


def highlight_layer(
    x: np.ndarray,
    y: np.ndarray,
    colour: str,
    x_range: tuple[float, float],
    y_range: tuple[float, float],
    width: int = 800,
    height: int = 700,
    ratio: float = 1.0,
    spread: int | None = None,
) -> hv.Image:
    """A subset of the map (the selection: the coordinates of its rows) binned in one colour over
    ``x_range`` x ``y_range``, drawn over the base map.

    Binned directly with numpy (one ``bincount``; ~2 ms for 100k points) for the given view, rather than through a
    Datashader operation on a new DataFrame: a lasso redraws only this small image, and it lines up with the
    base map even when the subset starts empty. Empty pixels are NaN (transparent).
    """
    counts = _spread_counts(x, y, x_range, y_range, width, height, ratio, spread)
    counts[counts == 0] = np.nan
    (x0, x1), (y0, y1) = x_range, y_range
    img = hv.Image(
        counts, bounds=(x0, y0, x1, y1), kdims=["x", "y"], vdims=[hv.Dimension("count", range=(0, 1))]
    )
    return img.opts(
        cmap=[colour, colour],
        clim=(0, 1),
        colorbar=False,
        tools=[],
        clipping_colors={"min": "transparent", "NaN": "transparent"},
    )


def label_points(
    frame: pd.DataFrame, rows: np.ndarray, labels: np.ndarray, colours: Mapping[str, str], limit: int = 50_000
) -> hv.Points:
    """Labelled objects as markers coloured by class, drawn over the muted density map (at most ``limit``: the
    most recently listed rows are kept)."""
    rows = np.asarray(rows, dtype=np.int64)[-limit:]
    labels = np.asarray(labels, dtype=object)[-limit:]
    sub = frame.iloc[rows]
    pts = hv.Points(
        pd.DataFrame(
            {
                "x": sub["x"].to_numpy(),
                "y": sub["y"].to_numpy(),
                "id": sub["id"].to_numpy(dtype=object),
                "label": labels,
            }
        ),
        ["x", "y"],
        ["id", "label"],
    )
    return pts.opts(
        color=hv.dim("label").categorize(dict(colours), default=palette.OTHER),
        size=6,
        line_color="white",
        line_width=0.5,
        tools=[],
    )


def _rgb(colour: str) -> tuple[int, int, int]:
    c = colour.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def selection_layer(
    x: np.ndarray,
    y: np.ndarray,
    colour: str,
    x_range: tuple[float, float],
    y_range: tuple[float, float],
    width: int = 800,
    height: int = 700,
    ratio: float = 1.0,
    spread: int | None = None,
    veil_alpha: float = 0.65,
) -> hv.RGB:
    """The selection drawn over the map as one RGBA image: a white veil that mutes the rest of the map, and the
    selected points (``x, y``: the coordinates of the selection's rows) in ``colour``.

    One glyph instead of a veil plus a highlight (each layer costs a redraw on every lasso); with nothing
    selected it is a single transparent pixel, so clearing sends almost nothing to the browser.
    """
    (x0, x1), (y0, y1) = x_range, y_range
    kw = dict(bounds=(x0, y0, x1, y1), kdims=["x", "y"], vdims=["R", "G", "B", "A"])
    if len(x) == 0:
        return hv.RGB(np.zeros((1, 1, 4), dtype=np.uint8), **kw).opts(tools=[])
    hit = _spread_counts(x, y, x_range, y_range, width, height, ratio, spread) > 0
    rgba = np.empty((*hit.shape, 4), dtype=np.uint8)
    rgba[...] = (255, 255, 255, int(round(veil_alpha * 255)))
    rgba[hit] = (*_rgb(colour), 255)
    return hv.RGB(rgba, **kw).opts(tools=[])


def marker_points(frame: pd.DataFrame, groups: list[tuple[np.ndarray, str, int]]) -> hv.Points:
    """Several small sets of objects (find-similar results, the focused object) as outlined markers in one layer:
    ``groups`` holds ``(rows, colour, size)``; later groups are drawn on top."""
    rows = [np.asarray(r, dtype=np.int64) for r, _, _ in groups]
    at = np.concatenate(rows) if rows else np.empty(0, np.int64)
    lens = [len(r) for r in rows]
    sub = frame.iloc[at]
    pts = hv.Points(
        pd.DataFrame(
            {
                "x": sub["x"].to_numpy(),
                "y": sub["y"].to_numpy(),
                "id": sub["id"].to_numpy(dtype=object),
                "colour": np.repeat(
                    np.array([c for _, c, _ in groups] or [""], dtype=object)[: len(rows)], lens
                ),
                "size": np.repeat(
                    np.array([z for _, _, z in groups] or [0], dtype=np.int64)[: len(rows)], lens
                ),
            }
        ),
        ["x", "y"],
        ["id", "colour", "size"],
    )
    return pts.opts(
        color=None, line_color=hv.dim("colour"), size=hv.dim("size"), fill_alpha=0.0, line_width=2, tools=[]
    )
