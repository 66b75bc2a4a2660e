"""The map part: every object rasterized and coloured, lasso / box / tap selection with modes and undo.

Geometry drawn in the browser (``hv.streams.Lasso``, ``BoundsXY``, ``Tap``) is handed to the session, which
resolves it to ids on the server with the shared :class:`~explorer.analysis.selection.PointIndex`.
``Selection1D`` is not used: it never fires on a rasterized plot.
"""

from __future__ import annotations

import html

import holoviews as hv
import numpy as np
import panel as pn
import param

from explorer.analysis.selection import Selection
from explorer.app.background import batch_callback, call_soon, current_document
from explorer.app.data import FLAGGED, LABEL, NONE, OTHER, UNLABELLED, AppData, ColourSpec
from explorer.app.plots import map_plot, palette
from explorer.errors import ExplorerError
from explorer.session import Session

TAP_RADIUS_PX = 12
MAP_NAME = "explorer-map"


def _name_figure(plot, element) -> None:
    """Bokeh hook: name the map figure so tests and scripts can find it in the page."""
    plot.state.name = MAP_NAME


_SelectionView = hv.streams.Stream.define(
    "SelectionView", selected_rows=param.Parameter(default=np.empty(0, np.int64))
)
_MarkerView = hv.streams.Stream.define(
    "MarkerView", similar=param.Parameter(default=None), focused_id=param.Parameter(default=None)
)


class MapView(pn.viewable.Viewer):
    """The embedding map with its selection controls.

    Parameters
    ----------
    session : Session
        Whose selection, focus and colouring this map shows and changes.
    data : AppData
        The shared workspace data.
    """

    session = param.ClassSelector(class_=Session)
    hover_text = param.String(
        default="", doc="The object under the cursor (large maps, where hover is server-side)."
    )
    height = param.Integer(default=600)

    def __init__(self, session: Session, data: AppData, **params):
        super().__init__(session=session, **params)
        self.data = data
        self._ranges: tuple | None = None
        self._ratio = 1.0
        self._base_args: tuple = ()
        self._follow: tuple[hv.streams.Stream, hv.streams.Stream] | None = None
        self._redraw_pending = False
        self._streams: list = []
        self._pane = pn.pane.HoloViews(
            None, sizing_mode="stretch_width", height=self.height, linked_axes=False
        )
        self._legend = pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 10))
        self._mode = pn.widgets.RadioButtonGroup.from_param(
            session.param.mode,
            variant="outline",
            label="",
            width=270,
            options={"replace": "replace", "add": "add", "subtract": "subtract", "intersect": "intersect"},
        )
        self._colour = pn.widgets.Select.from_param(session.param.colour_by, label="Colour by", width=150)
        self._undo = pn.widgets.Button(label="↶ Undo", width=64, description="Undo the last selection change")
        self._redo = pn.widgets.Button(label="↷ Redo", width=64, description="Redo")
        self._clear = pn.widgets.Button(label="Clear", width=56, description="Select nothing (undoable)")
        self._undo.on_click(batch_callback(lambda _e: session.undo()))
        self._redo.on_click(batch_callback(lambda _e: session.redo()))
        self._clear.on_click(batch_callback(lambda _e: session.clear()))
        self._xy = (data.frame["x"].to_numpy(), data.frame["y"].to_numpy())
        self._count_pane = pn.pane.HTML("", margin=(8, 10))
        self._sync_buttons()
        self._show_count()
        if data.has_map:
            self._build()
        else:
            self._pane.object = None

    # ------------------------------------------------------------------ streams (drive the map from Python)
    @property
    def lasso_stream(self) -> hv.streams.Lasso | None:
        """The map's current lasso stream (None without a map).

        Drive the map from a notebook or script as the browser does, e.g.
        ``app.map.lasso_stream.event(geometry=np.array([(x0, y0), (x1, y1), (x2, y2)]))``; the polygon is in map
        coordinates and is resolved to ids on the server like a drawn lasso. Read it again after the colouring
        changes: the plot, and with it the stream, is rebuilt.
        """
        return self._stream_of(hv.streams.Lasso)

    @property
    def box_stream(self) -> hv.streams.BoundsXY | None:
        """The map's current box-select stream (None without a map): ``box_stream.event(bounds=(x0, y0, x1, y1))``."""
        return self._stream_of(hv.streams.BoundsXY)

    @property
    def tap_stream(self) -> hv.streams.Tap | None:
        """The map's current tap stream (None without a map): ``tap_stream.event(x=x, y=y)`` picks the nearest
        object within a few screen pixels and focuses it."""
        return self._stream_of(hv.streams.Tap)

    def _stream_of(self, kind: type) -> hv.streams.Stream | None:
        return next((s for s in self._streams if type(s) is kind), None)

    # ------------------------------------------------------------------ building the plot
    def _spec(self) -> ColourSpec:
        opts = self.data.colour_options()
        return opts.get(self.session.colour_by) or opts[NONE]

    @param.depends("session.colour_by", watch=True)
    def _build(self) -> None:
        """(Re)build the overlay for the current colouring; keeps the zoom of the previous one."""
        if not self.data.has_map:
            return
        for stream in self._streams:
            stream.source = None
        frame = self.data.frame
        spec = self._spec()
        hover = len(frame) <= map_plot.HOVER_SELECTOR_MAX
        self._ratio = map_plot.pixel_ratio(len(frame))
        if spec.name == LABEL:
            base_spec, colours = ColourSpec(NONE, "count"), None
            cats = palette.label_colours(self.data.label_categories())
            cats.pop(UNLABELLED, None)
            self._legend.object = palette.legend_html(
                {**cats, "unlabelled": palette.DENSITY_CMAP[1]}, "label"
            )
        elif spec.name == FLAGGED:  # the few flagged objects as points over the density of all the others
            base_spec, colours = ColourSpec(NONE, "count"), None
            self._legend.object = palette.legend_html(
                {**self._flag_colours(spec), "the rest": palette.DENSITY_CMAP[1]}, spec.name
            )
        else:
            base_spec = spec
            colours = palette.category_colours(spec.categories) if spec.kind == "categorical" else None
            self._legend.object = palette.legend_html(colours, spec.name) if colours else ""
        points = self.data.shared(("map-points", base_spec, hover), lambda: self._points(base_spec, hover))
        tips = [("id", "@id")] + ([(spec.name, "@value")] if base_spec.kind != "count" else [])
        self._base_args = (points, base_spec, colours, hover, tips)
        ranges, size = hv.streams.RangeXY(), hv.streams.PlotSize()
        base = hv.DynamicMap(self._base_raster, streams=[ranges, size])
        self._attach_streams(base, hover)
        view = [ranges, size]
        layers = [base]
        if spec.name == LABEL:
            labels = hv.streams.Params(self.session, ["labels_version"])
            layers.append(hv.DynamicMap(self._labelled_layer, streams=[labels]))
        elif spec.name == FLAGGED:
            layers.append(hv.DynamicMap(self._flagged_layer))
        s = self.session
        self._follow = (
            _SelectionView(selected_rows=s.selected_rows),
            _MarkerView(similar=s.similar, focused_id=s.focused_id),
        )
        layers.append(hv.DynamicMap(self._selection_layer, streams=[self._follow[0], *view]))
        layers.append(hv.DynamicMap(self._marker_layer, streams=[self._follow[1]]))
        opts = dict(
            active_tools=["lasso_select", "wheel_zoom"],
            responsive=True,
            height=self.height,
            xaxis=None,
            yaxis=None,
            hooks=[_name_figure],
            toolbar="above",
            title="",
            show_legend=False,
        )
        if self._ranges is not None:
            opts.update(xlim=self._ranges[0], ylim=self._ranges[1])
        self._pane.object = hv.Overlay(layers).collate().opts(**opts)

    def _points(self, spec: ColourSpec, hover: bool) -> hv.Points:
        """Every map point with the values of ``spec`` (built once per process and colouring: see ``_build``)."""
        values = self.data.colour_values(spec) if spec.kind != "count" else None
        return map_plot.points_element(self.data.frame, values, spec, with_ids=hover)

    def _base_raster(self, x_range=None, y_range=None, width=None, height=None, scale=None):
        """The whole map rasterized for the current view, cached for the process (every session that opens on
        the same view and colouring gets the same image), so that redraws of the layers above it (a new
        selection, focus, labels) and new visitors never aggregate the millions of points again."""
        view = self._view(x_range, y_range, width, height)
        points, spec, colours, hover, tips = self._base_args
        key = ("map-raster", spec, hover, view["x_range"], view["y_range"], view["width"], view["height"])

        def make():
            raster = map_plot.base_layer(points, spec, colours, hover=hover, dynamic=False, **view)
            return raster.opts(hover_tooltips=tips) if hover else raster

        return self.data.shared(key, make)

    def _attach_streams(self, base, hover: bool) -> None:
        """Listen to the base layer (streams on the whole overlay never reach Bokeh's selection tools)."""
        lasso = hv.streams.Lasso(source=base)
        box = hv.streams.BoundsXY(source=base)
        tap = hv.streams.Tap(source=base)
        lasso.add_subscriber(self._on_lasso)
        box.add_subscriber(self._on_box)
        tap.add_subscriber(self._on_tap)
        base.streams[0].add_subscriber(self._on_range)
        self._streams = [lasso, box, tap]
        if not hover:
            pointer = hv.streams.PointerXY(source=base)
            pointer.add_subscriber(self._on_pointer)
            self._streams.append(pointer)

    # ------------------------------------------------------------------ layers that follow the session
    def _view(self, x_range, y_range, width, height) -> dict:
        if x_range is None or y_range is None:
            x0, y0, x1, y1 = self.data.index.bounds
            x_range, y_range = (x0, x1), (y0, y1)
        return {
            "x_range": tuple(map(float, x_range)),
            "y_range": tuple(map(float, y_range)),
            "width": int(width or 800),
            "height": int(height or 700),
            "ratio": self._ratio,
        }

    def _selection_layer(
        self, selected_rows, x_range=None, y_range=None, width=None, height=None, scale=None
    ) -> hv.RGB:
        """The selection with the veil that mutes the rest of the map: one RGBA image binned straight from the
        selection's map rows (no new DataFrame, no id lookups)."""
        rows = np.asarray(selected_rows, dtype=np.int64)
        x, y = self._xy
        return map_plot.selection_layer(
            x[rows], y[rows], palette.SELECTION, **self._view(x_range, y_range, width, height)
        )

    def _marker_layer(self, similar, focused_id) -> hv.Points:
        """Find-similar results and the focused object, as one layer of outlined markers."""
        sim_rows = self.data.frame_rows([] if similar is None else similar["id"].to_numpy(dtype=object))
        focus_rows = self.data.frame_rows([] if focused_id is None else [focused_id])
        return map_plot.marker_points(
            self.data.frame, [(sim_rows, palette.SIMILAR, 8), (focus_rows, palette.FOCUS, 18)]
        )

    @param.depends("session.selected_rows", "session.similar", "session.focused_id", watch=True)
    def _session_changed(self) -> None:
        """Redraw the layers that follow the session on the next tick of the event loop, when served: the count,
        the gallery and the detail view (what the user looks at after a lasso) reach the browser first, and the
        map's selection layer follows in a second, separate update. Without a server it redraws at once."""
        if self._follow is None or self._redraw_pending:
            return
        doc = current_document()
        self._redraw_pending = doc is not None
        call_soon(doc, self._redraw_session_layers)

    def _redraw_session_layers(self) -> None:
        """Send the session's new selection, results and focus to the map's layers, in one plot refresh, touching
        only the layers whose part changed (moving the focus does not re-send the selection's image)."""
        self._redraw_pending = False
        if self._follow is None:
            return
        s = self.session
        selection, marks = self._follow
        changed = []
        if selection.selected_rows is not s.selected_rows:
            selection.update(selected_rows=s.selected_rows)
            changed.append(selection)
        if marks.similar is not s.similar or marks.focused_id != s.focused_id:
            marks.update(similar=s.similar, focused_id=s.focused_id)
            changed.append(marks)
        if changed:
            hv.streams.Stream.trigger(changed)

    @staticmethod
    def _flag_colours(spec: ColourSpec) -> dict[str, str]:
        return palette.category_colours(tuple(c for c in spec.categories if c != OTHER))

    def _flagged_layer(self):
        spec = self._spec()
        values = self.data.colour_values(spec)
        rows = np.flatnonzero(values != OTHER)
        rows = rows[np.argsort(self.data.scores[rows], kind="stable")]  # label_points keeps the last: the highest
        return map_plot.label_points(self.data.frame, rows, values[rows], self._flag_colours(spec))

    def _labelled_layer(self, labels_version):
        labels = self.data.label_column()
        rows = np.flatnonzero(labels != UNLABELLED)
        cats = palette.label_colours(self.data.label_categories())
        return map_plot.label_points(self.data.frame, rows, labels[rows], cats)

    # ------------------------------------------------------------------ stream callbacks
    def _apply(self, make, then=None) -> None:
        """Resolve and apply a selection on the next tick of the event loop.

        Stream callbacks run while HoloViews is still handling the browser's event; changing the session there
        would leave the plot's own layers (highlight, veil, markers) un-redrawn.
        """

        def run() -> None:
            try:
                self.session.select(make())
            except ExplorerError as err:
                self.session.notify(str(err))
            if then is not None:
                then()

        call_soon(current_document(), run)

    def _on_lasso(self, geometry=None, **_):
        if geometry is None or len(geometry) == 0:
            return
        self._apply(lambda: Selection.lasso(np.asarray(geometry, dtype=np.float64), self.data.map_version))

    def _on_box(self, bounds=None, **_):
        if bounds is None:
            return
        self._apply(lambda: Selection.box(*bounds, map_version=self.data.map_version))

    def _pixel_size(self) -> float:
        if self._ranges is None:
            x0, y0, x1, y1 = self.data.index.bounds
            return max(x1 - x0, y1 - y0) / 700
        (x0, x1), (y0, y1) = self._ranges
        return max(abs(x1 - x0), abs(y1 - y0)) / 700

    def _on_tap(self, x=None, y=None, **_):
        if x is None or y is None:
            return
        radius = TAP_RADIUS_PX * self._pixel_size()
        hit = self.data.index.nearest(x, y, max_distance=radius)
        if hit is None:
            call_soon(
                current_document(),
                lambda: self.session.notify("No object under the click; zoom in or click closer to a point."),
            )
            return
        self._apply(
            lambda: Selection.tap(x, y, radius, map_version=self.data.map_version),
            then=lambda: self.session.focus(str(hit)),
        )

    def _on_range(self, x_range=None, y_range=None, **_):
        if x_range is not None and y_range is not None:
            self._ranges = (tuple(x_range), tuple(y_range))

    def _on_pointer(self, x=None, y=None, **_):
        if x is None or y is None:
            self.hover_text = ""
            return
        hit = self.data.index.nearest(x, y, max_distance=6 * self._pixel_size())
        self.hover_text = "" if hit is None else f"under cursor: {hit}"

    # ------------------------------------------------------------------ controls
    @param.depends("session.can_undo", "session.can_redo", watch=True)
    def _sync_buttons(self) -> None:
        self._undo.disabled = not self.session.can_undo
        self._redo.disabled = not self.session.can_redo

    @param.depends("session.selected_ids", "hover_text", watch=True)
    def _show_count(self) -> None:
        """ "N selected" (and the object under the cursor), updated in place: no new Bokeh model per lasso."""
        n = len(self.session.selected_ids)
        extra = (
            f" &nbsp;·&nbsp; <span style='color:#666'>{html.escape(self.hover_text)}</span>"
            if self.hover_text
            else ""
        )
        self._count_pane.object = (
            f"<div class='n-selected' style='font-size:15px;font-weight:600'>{n:,} selected</div>{extra}"
        )

    def _hint(self) -> pn.pane.HTML:
        return pn.pane.HTML(
            "<span style='color:#666;font-size:12px'>drag: lasso · toolbar: box, pan · "
            "click: pick one object</span>",
            margin=(10, 6),
        )

    def __panel__(self):
        if not self.data.has_map:
            note = html.escape(self.data.notes.get("map", "This workspace has no map."))
            return pn.Column(
                pn.pane.Alert(f"<b>No map to show.</b><br>{note}", alert_type="warning"),
                sizing_mode="stretch_width",
            )
        controls = pn.Row(
            self._colour,
            pn.Column(pn.pane.HTML("<small>mode</small>", margin=(0, 5)), self._mode, margin=0),
            self._undo,
            self._redo,
            self._clear,
            align="end",
            sizing_mode="stretch_width",
        )
        return pn.Column(
            controls,
            pn.Row(self._count_pane, self._hint),
            self._legend,
            self._pane,
            sizing_mode="stretch_width",
        )
