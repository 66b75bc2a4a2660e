"""The inspector part: a paged gallery of the selection (or similar objects, or top candidates) and the focused
object in detail: cutout with astronomical stretches, light curves raw and phase-folded, catalogue row, sky."""

from __future__ import annotations

import html
from collections import OrderedDict

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from explorer.app.background import batch_callback, call_soon, current_document
from explorer.app.data import AppData
from explorer.app.gallery import Gallery
from explorer.app.plots import cutouts, lightcurve, palette, sky
from explorer.errors import ExplorerError
from explorer.session import Session

THUMB_CACHE = 20_000
SOURCE_NAMES = {"selection": "Selection", "similar": "Similar", "candidates": "Top candidates"}


def _fmt(value) -> str:
    if isinstance(value, float | np.floating):
        return "" if not np.isfinite(value) else f"{value:.6g}"
    if value is None or (not isinstance(value, str | bytes) and pd.isna(value)):
        return ""
    return str(value)


def catalogue_row_html(row: pd.Series, score: float | None = None, label: str | None = None,
                       flagged_by: str | None = None) -> str:
    """One object's catalogue row as an HTML table (every value escaped), with ra/dec also in sexagesimal."""
    items = [("id", row.get("id"))]
    if "ra" in row and "dec" in row and np.isfinite(row["ra"]) and np.isfinite(row["dec"]):
        from astropy import units as u
        from astropy.coordinates import SkyCoord

        c = SkyCoord(ra=float(row["ra"]) * u.deg, dec=float(row["dec"]) * u.deg)
        items += [
            ("ra, dec (deg)", f"{row['ra']:.5f}, {row['dec']:+.5f}"),
            ("ra, dec", c.to_string("hmsdms", precision=1, sep=":")),
        ]
    if label:
        items.append(("label", label))
    if score is not None and np.isfinite(score):
        items.append(("anomaly score", f"{score:.4g}"))
    if flagged_by:
        items.append(("flagged by", flagged_by.replace("_", " ")))
    skip = {"id", "ra", "dec"}
    items += [(k, v) for k, v in row.items() if k not in skip]
    cells = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>"
        for k, v in items
        if _fmt(v) != ""
    )
    return f"<table class='catrow'>{cells}</table>"


_ROW_CSS = """
table.catrow { border-collapse: collapse; font-size: 12px; width: 100%; }
table.catrow th { text-align: left; color: #555; font-weight: 500; padding: 1px 8px 1px 0; white-space: nowrap;
                  vertical-align: top; }
table.catrow td { padding: 1px 0; overflow-wrap: anywhere; font-family: ui-monospace, monospace; }
"""


_SkyView = hv.streams.Stream.define(
    "SkyView",
    selected_rows=param.Parameter(default=np.empty(0, np.int64)),
    focused_id=param.Parameter(default=None),
)


class Inspector(pn.viewable.Viewer):
    """Gallery of what the session shows, and the focused object in detail.

    Parameters
    ----------
    session : Session
    data : AppData
    """

    session = param.ClassSelector(class_=Session)
    page = param.Integer(default=0, bounds=(0, None))
    page_size = param.Integer(default=12, bounds=(1, 200))
    stretch = param.Selector(default="asinh", objects=list(cutouts.STRETCHES))
    interval = param.Selector(default="99.5%", objects=list(cutouts.INTERVALS))
    zoom = param.Selector(
        default="auto", objects=list(cutouts.ZOOMS), doc="Show the central part of big cutouts."
    )
    band = param.Selector(default=cutouts.COMPOSITE, objects=[cutouts.COMPOSITE])

    def __init__(self, session: Session, data: AppData, **params):
        super().__init__(session=session, **params)
        self.data = data
        bands = sorted({b for s in data.catalog.images.values() for b in s.bands})
        self.param.band.objects = [cutouts.COMPOSITE, *bands]
        self._thumbs: OrderedDict = data.thumbnails
        self._gallery = Gallery(
            empty_text="Select objects on the map (lasso, box or click) to see them here.",
            columns=4,
            cell=100,
            width=440,
        )
        self._gallery.param.watch(batch_callback(self._gallery_clicked), "focused")
        self._title = pn.pane.HTML("", margin=(4, 5), sizing_mode="stretch_width")
        self._pager = pn.pane.HTML("", margin=(8, 5))
        self._prev = pn.widgets.Button(label="◀", width=36, description="previous page")
        self._next = pn.widgets.Button(label="▶", width=36, description="next page")
        self._prev.on_click(batch_callback(lambda _e: self._turn(-1)))
        self._next.on_click(batch_callback(lambda _e: self._turn(1)))
        self._source = pn.widgets.RadioButtonGroup.from_param(
            session.param.gallery_source,
            options={v: k for k, v in SOURCE_NAMES.items()},
            variant="outline",
            label="",
        )
        self._sort = pn.widgets.Select.from_param(
            session.param.sort_by, label="", width=125, description="gallery order"
        )
        self._stretch = pn.widgets.Select.from_param(
            self.param.stretch, label="", width=90, description="stretch"
        )
        self._interval = pn.widgets.Select.from_param(
            self.param.interval, label="", width=90, description="limits"
        )
        self._band = pn.widgets.Select.from_param(self.param.band, label="", width=118, description="band")
        self._zoom = pn.widgets.Select.from_param(self.param.zoom, label="", width=68, description="zoom")
        self._picture = pn.pane.HTML("", width=156, height=156, margin=(2, 5))
        self._bands = pn.pane.HTML("", sizing_mode="stretch_width")
        self._row = pn.pane.HTML(
            "", width=270, height=205, stylesheets=[_ROW_CSS], styles={"overflow-y": "auto"}
        )
        lcs = data.catalog.lightcurves
        self._lc_bands = [str(b) for b in lcs.bands] if lcs is not None else []
        self._lc_value = lcs.value_column if lcs is not None else "mag"
        self._lc_cache: tuple | None = None
        self._lc_raw = pn.pane.HoloViews(None, width=220, height=165, visible=lcs is not None, margin=(0, 2))
        self._lc_fold = pn.pane.HoloViews(None, width=220, height=165, visible=lcs is not None, margin=(0, 2))
        if lcs is not None:
            focus = hv.streams.Params(session, ["focused_id"])
            self._lc_raw.object = hv.DynamicMap(self._raw_lightcurve, streams=[focus])
            self._lc_fold.object = hv.DynamicMap(self._folded_lightcurve, streams=[focus])
        self._period = pn.pane.HTML("", margin=(0, 5))
        self._sky = pn.pane.HoloViews(None, sizing_mode="stretch_width", height=200)
        table = data.catalog.table
        has_sky = {"ra", "dec"} <= set(table.columns)
        self._radec = (table["ra"].to_numpy(), table["dec"].to_numpy()) if has_sky else None
        self._sky_background = (
            data.shared(("sky-background",), lambda: sky.thin(table[["ra", "dec"]])) if has_sky else None
        )
        self._sky_follow: hv.streams.Stream | None = None
        self._sky_pending = False
        self._refresh_gallery()
        self._refresh_detail()
        self._refresh_sky()

    # ------------------------------------------------------------------ gallery
    @property
    def n_pages(self) -> int:
        """Number of gallery pages of ``page_size`` ids (at least 1, even for an empty gallery)."""
        return max(1, -(-len(self.session.gallery_ids) // self.page_size))

    def page_ids(self) -> np.ndarray:
        """Ids on the current page."""
        start = self.page * self.page_size
        return self.session.gallery_ids[start : start + self.page_size]

    def _turn(self, delta: int) -> None:
        self.page = min(max(self.page + delta, 0), self.n_pages - 1)

    @param.depends("session.gallery_ids", watch=True)
    def _new_items(self) -> None:
        if self.page != 0:
            self.page = 0  # triggers _refresh_gallery
        else:
            self._refresh_gallery()

    @param.depends("session.labels_version", watch=True)
    def _labels_changed(self) -> None:
        """Redraw only what shows a label that changed: the page's badges, the focused object's row.

        Every session hears every label (its own and other people's); most change nothing this one shows.
        """
        ids, oid = self.page_ids(), self.session.focused_id
        labels = self._labels_of(ids if oid is None else np.append(ids, np.array([oid], dtype=object)))
        if {i: labels[i] for i in ids.tolist() if i in labels} != self._shown_labels:
            self._refresh_gallery()
        if oid is not None and labels.get(oid) != self._shown_label:
            self._refresh_detail()

    @param.depends("page", "stretch", "interval", "band", "zoom", watch=True)
    def _refresh_gallery(self) -> None:
        ids = self.page_ids()
        labels = self._shown_labels = self._labels_of(ids)
        scores = self.session.scores_of(ids) if len(ids) else np.empty(0)
        colours = palette.label_colours(list(set(labels.values())))
        items = []
        thumbs = self._thumbnails([str(i) for i in ids])
        for oid, score, src in zip(ids.tolist(), scores, thumbs, strict=True):
            label = labels.get(oid)
            tip = (
                oid
                + (f"\nanomaly score {score:.3g}" if np.isfinite(score) else "")
                + (f"\nlabel {label}" if label else "")
            )
            items.append(
                {
                    "id": oid,
                    "src": src,
                    "caption": oid,
                    "label": label or "",
                    "colour": colours.get(label, "#555") if label else "",
                    "tooltip": tip,
                }
            )
        self._gallery.param.update(items=items, focused=self.session.focused_id)
        n = len(self.session.gallery_ids)
        source = SOURCE_NAMES[self.session.gallery_source]
        self._title.object = (
            f"<b>{html.escape(source)}</b> · {n:,} object{'s' if n != 1 else ''}"
            f" <span style='color:#777'>({html.escape(self.session.sort_by)} order)</span>"
        )
        self._pager.object = f"page {self.page + 1} / {self.n_pages}"
        self._prev.disabled = self.page == 0
        self._next.disabled = self.page >= self.n_pages - 1

    def _labels_of(self, ids: np.ndarray) -> dict[str, str]:
        store = self.data.labels
        if store is None or not len(ids):
            return {}
        return store.label_of([str(i) for i in ids])

    def _thumbnails(self, ids: list[str]) -> list[str | None]:
        """Thumbnail data URIs of ``ids`` (None: no cutout), rendered in one batch for the ones not cached."""
        style = (self.stretch, self.interval, self.band, self.zoom)
        uris = [self._thumbs.get((oid, *style)) for oid in ids]
        todo = [oid for oid, uri in zip(ids, uris, strict=True) if uri is None]
        made = dict(zip(todo, self.data.cutouts(todo), strict=True))
        for k, oid in enumerate(ids):
            key = (oid, *style)
            if uris[k] is not None:
                self._thumbs.move_to_end(key)
                continue
            found = made.get(oid)
            if found is None:
                continue
            pixels, bands = found
            uris[k] = self._thumbs[key] = cutouts.thumbnail_uri(
                pixels, 96, self.stretch, self.interval, self.band, bands, self.zoom
            )
        while len(self._thumbs) > THUMB_CACHE:
            self._thumbs.popitem(last=False)
        return uris

    def _gallery_clicked(self, event) -> None:
        if event.new and event.new != self.session.focused_id:
            self.session.focus(event.new)

    # ------------------------------------------------------------------ focused object
    @param.depends("session.focused_id", watch=True)
    def _follow_focus(self) -> None:
        ids = self.session.gallery_ids
        fid = self.session.focused_id
        if fid is not None and len(ids):
            where = np.flatnonzero(ids == fid)
            if len(where) and where[0] // self.page_size != self.page:
                self.page = int(where[0] // self.page_size)
        self._gallery.focused = fid
        self._refresh_detail()

    @param.depends("stretch", "interval", "band", "zoom", watch=True)
    def _refresh_detail(self) -> None:
        oid = self.session.focused_id
        row = self.data.row(oid)
        self._shown_label = None
        if row is None:
            self._picture.object = "<div style='color:#777;padding:8px'>No object in focus.</div>"
            self._bands.object = ""
            self._row.object = ""
            self._period.object = ""
            return
        label = self._shown_label = self._labels_of(np.array([oid], dtype=object)).get(oid)
        score = float(self.session.scores_of(np.array([oid], dtype=object))[0])
        self._row.object = catalogue_row_html(row, score, label, self.data.flag_explanation(oid))
        self._show_cutout(oid)
        self._show_period(oid)

    def _show_cutout(self, oid: str) -> None:
        found = self.data.cutouts([oid])[0]
        if found is None:
            self._picture.object = "<div style='color:#777;padding:8px'>No cutout for this object.</div>"
            self._bands.object = ""
            return
        cut, bands = found
        cut = cutouts.crop(cut, self.zoom)
        big = cutouts.data_uri(
            cutouts.png_bytes(cutouts.render(cut, self.stretch, self.interval, self.band, bands), 150)
        )
        alt = html.escape(oid, quote=True)
        self._picture.object = (
            f"<img src='{big}' alt='{alt}' style='width:150px;height:150px;"
            f"image-rendering:auto;border-radius:4px;background:#000'>"
        )
        if cut.shape[0] > 1:
            strip = []
            for i, name in enumerate(bands or [str(i) for i in range(cut.shape[0])]):
                uri = cutouts.data_uri(
                    cutouts.png_bytes(cutouts.render(cut, self.stretch, self.interval, i), 48)
                )
                strip.append(
                    f"<figure style='margin:0 3px 0 0;text-align:center'><img src='{uri}' "
                    f"style='width:46px;height:46px'><figcaption style='font-size:10px'>"
                    f"{html.escape(str(name))}</figcaption></figure>"
                )
            self._bands.object = f"<div style='display:flex'>{''.join(strip)}</div>"
        else:
            self._bands.object = ""

    # ------------------------------------------------------------------ light curves
    def _lightcurve_of(self, oid: str | None) -> tuple[pd.DataFrame, lightcurve.Period | None, str]:
        """The focused object's light curve, its period and a note (cached for the last object asked)."""
        if self._lc_cache is not None and self._lc_cache[0] == oid:
            return self._lc_cache[1]
        empty = pd.DataFrame({"time": [], self._lc_value: [], "err": [], "band": []})
        row = self.data.row(oid)
        if row is None:
            result = (empty, None, "")
        elif not bool(row.get("has_lightcurve", False)):
            result = (empty, None, "no light curve")
        else:
            try:
                lc = self.data.catalog.lightcurve(oid)
                found = lightcurve.lomb_scargle_period(lc)
                note = "Too few points for a period search." if found is None else ""
                result = (lc, found, note)
            except ExplorerError as err:
                result = (empty, None, str(err))
        self._lc_cache = (oid, result)
        return result

    def _raw_lightcurve(self, focused_id):
        lc, _, note = self._lightcurve_of(focused_id)
        return lightcurve.lightcurve_plot(
            lc, title=note or "light curve", height=165, width=220, bands=self._lc_bands, value=self._lc_value
        )

    def _folded_lightcurve(self, focused_id):
        lc, found, _ = self._lightcurve_of(focused_id)
        title = f"folded at P = {found.period:.5g} d" if found else "folded (no period)"
        return lightcurve.lightcurve_plot(
            lc if found else lc.iloc[:0],
            period=found.period if found else 1.0,
            title=title,
            height=165,
            width=220,
            bands=self._lc_bands,
            value=self._lc_value,
            legend=False,
        )

    def _show_period(self, oid: str) -> None:
        _, found, note = self._lightcurve_of(oid)
        if found is None:
            self._period.object = f"<small>{html.escape(note)}</small>" if note else ""
            return
        fap = "" if not np.isfinite(found.fap) else f", false-alarm probability {found.fap:.2g}"
        self._period.object = (
            f"<small>Lomb–Scargle period <b>{found.period:.6g}</b> d (power {found.power:.2f}{fap})</small>"
        )

    # ------------------------------------------------------------------ sky
    def _refresh_sky(self) -> None:
        """Draw the sky plot once; it follows the selection and the focus through a stream (data-only updates)."""
        if self._sky_background is None:
            self._sky.object = None
            return
        s = self.session
        self._sky_follow = _SkyView(selected_rows=s.selected_rows, focused_id=s.focused_id)
        follow = hv.DynamicMap(self._sky_element, streams=[self._sky_follow])
        self._sky.object = (sky.background_points(self._sky_background) * follow).opts(
            **sky.sky_options(height=200, title="sky position of the selection")
        )

    @param.depends("session.selected_rows", "session.focused_id", watch=True)
    def _sky_changed(self) -> None:
        """Redraw the sky plot on the next tick when served (after the gallery and detail have gone out)."""
        if self._sky_follow is None or self._sky_pending:
            return
        doc = current_document()
        self._sky_pending = doc is not None
        call_soon(doc, self._redraw_sky)

    def _redraw_sky(self) -> None:
        self._sky_pending = False
        if self._sky_follow is not None:
            self._sky_follow.event(
                selected_rows=self.session.selected_rows, focused_id=self.session.focused_id
            )

    def _sky_element(self, selected_rows, focused_id):
        rows = np.asarray(selected_rows, dtype=np.int64)
        if len(rows) > sky.MAX_DRAWN:  # thin before gathering: a million-object selection stays cheap
            rows = rows[np.sort(np.random.default_rng(0).choice(len(rows), sky.MAX_DRAWN, replace=False))]
        rows = self.data.rows[rows] if len(self.data.rows) else np.empty(0, np.int64)
        ra, dec = self._radec
        selected = pd.DataFrame({"ra": ra[rows], "dec": dec[rows]})
        r = self.data.row(focused_id)
        focus = None if r is None else (float(r["ra"]), float(r["dec"]))
        return sky.selection_layers(selected, focus)

    # ------------------------------------------------------------------ layout
    def gallery_panel(self) -> pn.Column:
        """The gallery with its controls (usable alone)."""
        source = pn.Row(self._source, self._sort, margin=0)
        view = pn.Row(self._stretch, self._interval, self._band, self._zoom, margin=0)
        pager = pn.Row(self._title, self._prev, self._pager, self._next, sizing_mode="stretch_width")
        return pn.Column(source, view, pager, self._gallery, width=440)

    def object_panel(self) -> pn.Column:
        """The focused object's cutout (with its bands) and catalogue row (usable alone)."""
        top = pn.Row(pn.Column(self._picture, self._bands, width=165, margin=0), self._row, margin=0)
        return pn.Column(top, self._period, sizing_mode="stretch_width", margin=0)

    def lightcurve_panel(self) -> pn.Row:
        """The focused object's light curve, raw and phase-folded (usable alone)."""
        return pn.Row(self._lc_raw, self._lc_fold, margin=0)

    def detail_panel(self) -> pn.Column:
        """The focused object: cutout, catalogue row, light curves raw and folded (usable alone)."""
        return pn.Column(self.object_panel(), self.lightcurve_panel(), sizing_mode="stretch_width", margin=0)

    def sky_panel(self) -> pn.pane.HoloViews:
        """Where the selection lies on the sky (usable alone)."""
        return self._sky

    def __panel__(self):
        return pn.Column(
            self.gallery_panel(), self.detail_panel(), self.sky_panel(), sizing_mode="stretch_width"
        )
