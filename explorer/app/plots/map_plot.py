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
from holoviews.operation.datashader import rasterize
from holoviews.operation.datashader import spread as spread_op

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


def subset_points(frame: pd.DataFrame, rows: np.ndarray) -> hv.Points:
    """Points of ``frame`` at ``rows`` (no value columns), for highlight layers."""
    sub = frame.iloc[np.asarray(rows, dtype=np.int64)]
    return hv.Points(pd.DataFrame({"x": sub["x"].to_numpy(), "y": sub["y"].to_numpy()}), ["x", "y"], [])


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
        worth it up to a few hundred thousand objects.

    Returns
    -------
    DynamicMap or Image/ImageStack
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
        return agg.opts(cmap=cmap, colorbar=False, tools=tools)
    if spec.kind == "continuous":
        reduce = ds.max(VALUE) if spec.name == "anomaly score" else ds.mean(VALUE)
        agg = rasterize(points, aggregator=reduce, selector=selector, **kw)
        cmap = palette.SCORE_CMAP if spec.name == "anomaly score" else palette.CONTINUOUS_CMAP
        return agg.opts(cmap=cmap, colorbar=True, clabel=spec.name, cnorm="eq_hist", tools=tools)
    agg = rasterize(points, aggregator=ds.count(), selector=selector, **kw)
    return agg.opts(cmap=palette.DENSITY_CMAP, cnorm="eq_hist", colorbar=False, tools=tools)


def highlight_layer(
    points: hv.Points,
    colour: str,
    x_range: tuple[float, float],
    y_range: tuple[float, float],
    width: int = 800,
    height: int = 700,
    ratio: float = 1.0,
    spread: int | None = None,
) -> hv.Image:
    """A subset (the selection) rasterized in one colour over ``x_range`` x ``y_range``, drawn over the base map.

    Rasterized for the given view (not a dynamic operation of its own), so it lines up with the base map even
    when the subset starts empty.
    """
    agg = rasterize(
        points,
        aggregator=ds.count(),
        dynamic=False,
        x_range=tuple(x_range),
        y_range=tuple(y_range),
        width=max(1, int(width * ratio)),
        height=max(1, int(height * ratio)),
    )
    spread = (1 if ratio >= 1 else 0) if spread is None else spread
    layer = spread_op(agg, px=spread) if spread else agg
    return layer.opts(
        cmap=[colour, colour],
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


def veil(bounds: tuple[float, float, float, float], on: bool, alpha: float = 0.65) -> hv.Rectangles:
    """A white sheet over the map's extent that mutes the base layer while something is selected."""
    x0, y0, x1, y1 = bounds
    pad_x, pad_y = (x1 - x0) or 1.0, (y1 - y0) or 1.0
    rects = [(x0 - pad_x, y0 - pad_y, x1 + pad_x, y1 + pad_y)] if on else []
    return hv.Rectangles(rects).opts(color="white", alpha=alpha, line_alpha=0, tools=[])


def markers(
    frame: pd.DataFrame,
    rows: np.ndarray,
    colour: str,
    size: int = 9,
    marker: str = "circle",
    fill: bool = False,
) -> hv.Points:
    """A few objects (find-similar results, the focused object) as outlined markers over the rasters."""
    sub = frame.iloc[np.asarray(rows, dtype=np.int64)]
    pts = hv.Points(
        pd.DataFrame(
            {"x": sub["x"].to_numpy(), "y": sub["y"].to_numpy(), "id": sub["id"].to_numpy(dtype=object)}
        ),
        ["x", "y"],
        ["id"],
    )
    return pts.opts(
        color=colour if fill else None,
        fill_color=colour if fill else None,
        line_color=colour,
        fill_alpha=0.9 if fill else 0.0,
        line_width=2,
        size=size,
        marker=marker,
        tools=[],
    )
