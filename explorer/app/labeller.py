"""The label part: anomaly / normal / artefact / any class, for the focused object or the whole selection, by button
or keyboard (a, n, x; j / k move through the gallery; u undoes). Every label is saved the moment it is made, with
who, when, and the model and map versions; the anomaly ranking then re-learns."""

from __future__ import annotations

import html

import numpy as np
import panel as pn
import param

from explorer.app.background import batch_callback, current_document, run_in_background
from explorer.app.data import AppData
from explorer.app.keyboard import KeyboardShortcuts
from explorer.app.plots.palette import label_colours
from explorer.app.ranking import live_ranking
from explorer.errors import ExplorerError
from explorer.session import Session

KEY_LABELS = {"a": "anomaly", "n": "normal", "x": "artefact"}
KEYS = [*KEY_LABELS, "j", "k", "u"]
TARGETS = {"focused object": "focused", "whole selection": "selection"}


class Labeller(pn.viewable.Viewer):
    """Buttons and shortcuts that write labels to the workspace's label store.

    Parameters
    ----------
    session : Session
    data : AppData
    background : bool
        Re-learn the ranking on a thread (served app) instead of inline (notebooks, tests: default when no
        server session is running).
    """

    session = param.ClassSelector(class_=Session)
    target = param.Selector(
        default="focused",
        objects=list(TARGETS.values()),
        doc="What a label applies to: the focused object or the whole selection.",
    )
    advance = param.Boolean(default=True, doc="After labelling the focused object, focus the next one.")
    new_class = param.String(default="", doc="A class name to add.")
    classes = param.List(default=[], doc="Classes offered (built-in first).")
    relearning = param.Boolean(default=False)
    counts = param.Dict(default={})

    def __init__(self, session: Session, data: AppData, background: bool | None = None, **params):
        super().__init__(session=session, **params)
        self.data = data
        self.background = background
        self.ranking = live_ranking(data)
        store = data.labels
        self.classes = list(store.classes()) if store is not None else list(KEY_LABELS.values())
        self.counts = store.counts() if store is not None else {}
        self._buttons = pn.Row(sizing_mode="stretch_width")
        self._target = pn.widgets.RadioButtonGroup.from_param(
            self.param.target, options=TARGETS, label="", variant="outline"
        )
        self._new = pn.widgets.TextInput.from_param(
            self.param.new_class, label="", placeholder="new class…", width=130
        )
        self._add_class = pn.widgets.Button(
            label="+ class", width=70, description="Add a class and label with it"
        )
        self._add_class.on_click(batch_callback(lambda _e: self.add_class(self.new_class)))
        self._undo = pn.widgets.Button(label="Undo label (u)", width=120)
        self._undo.on_click(batch_callback(lambda _e: self.undo()))
        self._spinner = pn.indicators.LoadingSpinner(value=False, size=18, margin=(8, 4), visible=False)
        self._keys = KeyboardShortcuts(
            on_key=batch_callback(self.handle_key), keys=KEYS, width=0, height=0, margin=0
        )
        self._status = pn.pane.HTML("", sizing_mode="stretch_width", margin=(2, 5))
        self._make_buttons()
        self._show_counts()
        if store is None:
            for b in self._buttons:
                b.disabled = True

    # ------------------------------------------------------------------ writing labels
    def target_ids(self) -> list[str]:
        """The ids a label would go to now."""
        if self.target == "selection":
            return [str(i) for i in self.session.selected_ids]
        return [] if self.session.focused_id is None else [self.session.focused_id]

    def label(self, name: str, ids: list[str] | None = None) -> int | None:
        """Give ``ids`` (default: the target) class ``name`` and save it now; returns the batch id.

        Labelling nothing shows a message and writes nothing.
        """
        store = self.data.labels
        if store is None:
            self.session.notify(self.data.notes.get("labels", "Labelling is unavailable here."))
            return None
        ids = self.target_ids() if ids is None else [str(i) for i in ids]
        if not ids:
            what = "select objects on the map" if self.target == "selection" else "click an object first"
            self.session.notify(f"Nothing to label: {what}.")
            return None
        upcoming = self._next_in_gallery() if len(ids) == 1 and self.target == "focused" else None
        try:
            batch = store.add(
                ids,
                name,
                user=self.session.user,
                model_version=self.data.embedding_version,
                map_version=self.data.map_version,
                session=self.session.session_id,
            )
        except ExplorerError as err:
            self.session.notify(str(err))
            return None
        n = len(ids)
        who = ids[0] if n == 1 else f"{n:,} objects"  # plain text: the header escapes every notice
        self.session.notify(f"Saved: {who} → {name}.")
        self._after_change(advance_to=upcoming)
        return batch

    def undo(self) -> list[str]:
        """Undo this user's last labelling; returns the ids restored."""
        store = self.data.labels
        if store is None:
            return []
        restored = store.undo(user=self.session.user)
        self.session.notify(
            f"Undid the last label ({len(restored)} object{'s' if len(restored) != 1 else ''})."
            if restored
            else "No label of yours to undo."
        )
        if restored:
            self._after_change()
        return restored

    def add_class(self, name: str) -> None:
        """Offer a new class and label the target with it."""
        name = (name or "").strip()
        if not name:
            self.session.notify("Type a class name first.")
            return
        if name not in self.classes:
            self.classes = [*self.classes, name]
            self._make_buttons()
        self.new_class = ""
        self.label(name)

    def _next_in_gallery(self) -> str | None:
        """The object after the focused one in the gallery as it is now (before a label re-orders it)."""
        ids = self.session.gallery_ids
        where = np.flatnonzero(ids == self.session.focused_id) if self.session.focused_id is not None else []
        if not len(where) or where[0] + 1 >= len(ids):
            return None
        return str(ids[where[0] + 1])

    def _after_change(self, advance_to: str | None = None) -> None:
        store = self.data.labels
        self.counts = store.counts() if store is not None else {}
        self._show_counts()
        self.session.labels_changed()
        self.relearn()
        if advance_to is not None and self.advance:
            self.session.focus(advance_to)

    # ------------------------------------------------------------------ re-learning
    def relearn(self) -> None:
        """Re-learn the anomaly ranking from all labels (in the background when served)."""
        if self.ranking.reason_unavailable:
            return
        background = self.background if self.background is not None else current_document() is not None
        if not background:
            self._learnt(self.ranking.relearn(), None)
            return
        self.relearning = True
        run_in_background(self.ranking.relearn, self._learnt, name="explorer-relearn")

    def _learnt(self, scores, error) -> None:
        self.relearning = False
        if error is not None:
            self.session.notify(f"The ranking could not re-learn: {error}")
            return
        if scores is not None:
            self.session.ranking = scores

    @param.depends("relearning", watch=True)
    def _spin(self) -> None:
        self._spinner.param.update(value=self.relearning, visible=self.relearning)

    # ------------------------------------------------------------------ keyboard
    def handle_key(self, key: str) -> None:
        """a / n / x label the target; j / k move the focus through the gallery; u undoes the last label."""
        if key in KEY_LABELS:
            self.label(KEY_LABELS[key])
        elif key == "j":
            self.session.step_focus(1)
        elif key == "k":
            self.session.step_focus(-1)
        elif key == "u":
            self.undo()

    # ------------------------------------------------------------------ layout
    def _make_buttons(self) -> None:
        colours = label_colours(self.classes)
        keys = {v: k for k, v in KEY_LABELS.items()}
        buttons = []
        for name in self.classes:
            key = keys.get(name)
            button = pn.widgets.Button(
                label=f"{name} ({key})" if key else name,
                width=110 if key else 90,
                styles={"--surface-color": colours.get(name, "#555")},
                stylesheets=[
                    f":host .bk-btn {{ background: {colours.get(name, '#555')};"
                    " color: white; font-weight: 600; }"
                ],
                description=f"Label the target as {name}",
            )
            button.on_click(batch_callback(lambda _e, n=name: self.label(n)))
            buttons.append(button)
        self._buttons.objects = buttons

    def _show_counts(self) -> None:
        parts = [f"{html.escape(k)} <b>{v:,}</b>" for k, v in self.counts.items() if v]
        self._status.object = (
            "<small style='color:#555'>labelled: "
            + (" · ".join(parts) or "none yet")
            + " &nbsp;|&nbsp; keys: <kbd>a</kbd> anomaly <kbd>n</kbd> normal <kbd>x</kbd> "
            "artefact <kbd>j</kbd>/<kbd>k</kbd> next/previous <kbd>u</kbd> undo</small>"
        )

    def __panel__(self):
        return pn.Column(
            pn.Row(
                pn.pane.HTML("<b>Label</b>", margin=(10, 5)),
                self._target,
                self._buttons,
                self._new,
                self._add_class,
                self._undo,
                self._spinner,
                self._keys,
                sizing_mode="stretch_width",
            ),
            self._status,
            sizing_mode="stretch_width",
            styles={"background": "#f5f7fa", "border-radius": "6px"},
        )
