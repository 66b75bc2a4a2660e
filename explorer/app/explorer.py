"""The whole dashboard on one screen: map left, inspector right, label bar on top, similar / export / discovery /
fine-tune below. The same object is served by ``explorer serve`` and displayed in a notebook."""

from __future__ import annotations

import html
from pathlib import Path

import panel as pn
import param

from explorer.app.background import batch_callback, reuse_page_stylesheets
from explorer.app.data import AppData, current_user, load_app_data
from explorer.app.discovery_view import DiscoveryCurve
from explorer.app.exporter import Exporter
from explorer.app.finetune_panel import FinetunePanel
from explorer.app.inspector import Inspector
from explorer.app.labeller import Labeller
from explorer.app.map_view import MapView
from explorer.app.samp_panel import SampPanel
from explorer.app.similar import SimilarPanel
from explorer.session import Session
from explorer.workspace import Workspace

TITLE = "Astro Embedding Explorer"
LABEL_POLL_MS = 3000
RIGHT_WIDTH = 450

_HEADER_CSS = """
:host { width: 100%; }
.hdr { display: flex; align-items: baseline; gap: 18px; background: #0f1b2d; color: #e8edf5; padding: 8px 14px;
       border-radius: 6px; font-size: 13px; }
.hdr .title { font-size: 18px; font-weight: 700; letter-spacing: 0.2px; }
.hdr .meta { color: #a9b7cc; }
.hdr .msg { margin-left: auto; color: #ffd479; max-width: 520px; overflow: hidden; text-overflow: ellipsis;
            white-space: nowrap; }
"""


def _served() -> bool:
    return pn.state.curdoc is not None and pn.state.curdoc.session_context is not None


def _later(make):
    """``make()`` rendered after the page has loaded when served (the map and gallery show first), at once
    elsewhere (notebooks, scripts)."""
    return pn.panel(make, defer_load=True, sizing_mode="stretch_width") if _served() else make()


def _extension() -> None:
    """Load Panel's and HoloViews' front-end code once (needed in notebooks, harmless when served)."""
    if "explorer" not in pn.state.cache.get("_explorer_ext", ""):
        pn.extension()
        pn.state.cache["_explorer_ext"] = "explorer"


class Explorer(pn.viewable.Viewer):
    """The dashboard for one workspace; each part is also usable alone (``explorer.map``, ``explorer.inspector``...).

    Parameters
    ----------
    workspace : Workspace, str or Path
        The workspace to explore. Its data is loaded once per process and shared by every Explorer on it.
    user : str, optional
        Who labels (default: the authenticated Panel user, else the OS user).
    background : bool, optional
        Run slow work on threads (default: only when served).

    Examples
    --------
    >>> from explorer.app import Explorer          # doctest: +SKIP
    >>> app = Explorer("my-workspace"); app        # in a notebook
    >>> app.session.select_ids(["FIRST_J0001+0002"])
    """

    session = param.ClassSelector(class_=Session)

    def __init__(
        self,
        workspace: Workspace | str | Path,
        user: str | None = None,
        background: bool | None = None,
        **params,
    ):
        _extension()
        ws = workspace if isinstance(workspace, Workspace) else Workspace.open(workspace)
        data = load_app_data(ws)
        session = Session(data, user=user or current_user())
        super().__init__(session=session, **params)
        self.data: AppData = data
        self.map = MapView(session, data)
        self.inspector = Inspector(session, data)
        self.similar = SimilarPanel(session, data)
        self.labeller = Labeller(session, data, background=background)
        self.exporter = Exporter(session, data)
        self.samp = SampPanel(session, data, background=background)  # connects only when asked
        self.discovery = DiscoveryCurve(session, data)
        self.finetune = FinetunePanel(session, data)
        self._header = pn.pane.HTML("", sizing_mode="stretch_width", stylesheets=[_HEADER_CSS], margin=(5, 5))
        self._seen_event = self._last_event()
        self._show_header()

    # ------------------------------------------------------------------ header and messages
    @param.depends("session.message", watch=True)
    def _show_header(self) -> None:
        d = self.data
        n = len(d.catalog)
        meta = [
            f"{n:,} objects",
            f"map {d.map_version or '—'}",
            f"embeddings {d.embedding_version or '—'}",
            f"user {self.session.user}",
        ]
        self._header.object = (
            f"<div class='hdr'><span class='title'>{TITLE}</span>"
            f"<span class='meta'>{html.escape(d.ws.path.name)}</span>"
            f"<span class='meta'>{html.escape(' · '.join(meta))}</span>"
            f"<span class='msg' title='{html.escape(self.session.message, quote=True)}'>"
            f"{html.escape(self.session.message)}</span></div>"
        )

    def notes(self) -> pn.pane.Alert | None:
        """What is missing from the workspace and how to make it, as one notice (None when nothing is)."""
        notes = [html.escape(v) for k, v in self.data.notes.items() if k != "map"]
        if not notes:
            return None
        return pn.pane.Alert(
            "<br>".join(notes), alert_type="info", sizing_mode="stretch_width", margin=(0, 5)
        )

    # ------------------------------------------------------------------ labels written by other sessions
    def _last_event(self) -> int:
        store = self.data.labels
        return store.last_event_id() if store is not None else 0

    def poll_labels(self) -> bool:
        """Pick up labels written by other users or processes; returns whether anything changed."""
        last = self._last_event()
        if last == self._seen_event:
            return False
        self._seen_event = last
        self.session.labels_changed()
        return True

    @param.depends("session.labels_version", watch=True)
    def _own_change(self) -> None:
        self._seen_event = self._last_event()

    # ------------------------------------------------------------------ layout
    def __panel__(self):
        if _served():
            pn.state.onload(
                lambda: pn.state.add_periodic_callback(batch_callback(self.poll_labels), period=LABEL_POLL_MS)
            )
            doc = pn.state.curdoc
            pn.state.onload(lambda: reuse_page_stylesheets(doc))
            if pn.state.location is not None:  # Panel empties its stylesheet cache when the address arrives
                pn.state.location.param.watch(lambda *_: reuse_page_stylesheets(doc), "pathname")
        tools = pn.Column(
            pn.Row(
                pn.pane.HTML("<b>Find similar</b>", margin=(14, 5), width=90),
                self.similar,
                sizing_mode="stretch_width",
            ),
            self.exporter,
            self.samp,
            pn.Row(
                pn.Column(_later(self.inspector.sky_panel), sizing_mode="stretch_width", min_height=200),
                pn.Column(_later(self.discovery.__panel__), sizing_mode="stretch_width", min_height=200),
                sizing_mode="stretch_width",
            ),
            pn.Row(
                pn.pane.HTML("<b>Fine-tune</b>", margin=(14, 5), width=90),
                self.finetune,
                sizing_mode="stretch_width",
            ),
            sizing_mode="stretch_width",
        )
        left = pn.Column(self.map, tools, sizing_mode="stretch_width", min_width=560)
        right = pn.Column(
            self.inspector.gallery_panel(),
            self.inspector.object_panel(),
            pn.Column(_later(self.inspector.lightcurve_panel), min_height=170, sizing_mode="stretch_width"),
            width=RIGHT_WIDTH,
        )
        parts = [self._header, self.labeller]
        note = self.notes()
        if note is not None:
            parts.append(note)
        parts.append(pn.Row(left, right, sizing_mode="stretch_width"))
        return pn.Column(*parts, sizing_mode="stretch_width")
