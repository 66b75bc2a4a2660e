"""The fine-tune part: train on the labels in the background with a progress bar, then compare the new map with the
old one (neighbour overlap, anomaly ranks that moved) and let the user switch to it or keep the old one."""

from __future__ import annotations

import html
import importlib.util

import numpy as np
import pandas as pd
import panel as pn
import param

from explorer.app.background import call_soon, current_document, run_in_background
from explorer.app.data import AppData
from explorer.app.plots import palette
from explorer.app.plots.compare import rank_changes, side_by_side
from explorer.errors import ExplorerError
from explorer.session import Session

OVERLAP_SAMPLE = 500
OVERLAP_K = 10


def finetune_available() -> bool:
    """Whether :mod:`explorer.models.finetune` is installed."""
    return importlib.util.find_spec("explorer.models.finetune") is not None


def neighbour_overlap(
    old: np.ndarray, new: np.ndarray, k: int = OVERLAP_K, sample: int = OVERLAP_SAMPLE, seed: int = 0
) -> float:
    """Mean fraction of each sampled object's ``k`` nearest neighbours (cosine) that two embeddings share.

    ``old`` and ``new`` are ``(n, d_old)`` and ``(n, d_new)`` with rows in the same object order.
    """
    n = len(old)
    if n < 2:
        return float("nan")
    k = min(k, n - 1)
    rows = np.random.default_rng(seed).choice(n, min(sample, n), replace=False)

    def knn(X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        X = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
        sims = X[rows] @ X.T
        sims[np.arange(len(rows)), rows] = -np.inf
        return np.argpartition(-sims, k - 1, axis=1)[:, :k]

    a, b = knn(old), knn(new)
    return float(np.mean([len(np.intersect1d(x, y)) / k for x, y in zip(a, b, strict=True)]))


MAP_SETTINGS = ("method", "space", "random_state", "n_neighbors", "min_dist")


def map_settings(ws, version: str | None) -> dict:
    """How map ``version`` was made (method, space, seed, UMAP parameters), so the map after a fine-tune is made
    the same way and the two can be compared; empty (the defaults) when there is no map yet."""
    if version is None:
        return {}
    try:
        meta = ws.product_path("maps", version)[1]
    except ExplorerError:  # an unreadable old map: make the new one with the defaults
        return {}
    return {k: meta[k] for k in MAP_SETTINGS if meta.get(k) is not None}


class FinetunePanel(pn.viewable.Viewer):
    """Start a fine-tune on the labels; watch its progress; compare and choose the map.

    Parameters
    ----------
    session : Session
    data : AppData
    """

    session = param.ClassSelector(class_=Session)
    head_only = param.Boolean(default=True, doc="Train only a small head on the frozen encoder (fast).")
    epochs = param.Integer(
        default=None,
        allow_None=True,
        bounds=(1, None),
        doc="Training epochs (None: the fine-tuning default for the chosen mode).",
    )
    progress = param.Integer(default=0, bounds=(0, 100))
    stage = param.String(default="")
    running = param.Boolean(default=False)

    def __init__(self, session: Session, data: AppData, **params):
        super().__init__(session=session, **params)
        self.data = data
        self.result: dict | None = None
        self._doc = None
        self._button = pn.widgets.Button(label="Fine-tune on labels", color="warning", width=170)
        self._button.on_click(lambda _e: self.start())
        self._head = pn.widgets.Checkbox.from_param(self.param.head_only, label="head only (fast)")
        self._bar = pn.indicators.Progress(value=0, max=100, width=200, visible=False, bar_color="warning")
        self._stage = pn.pane.HTML("", margin=(8, 5))
        self._compare = pn.Column(sizing_mode="stretch_width")
        reason = self.unavailable_reason()
        if reason:
            self._button.disabled = True
            self._button.description = reason

    def unavailable_reason(self) -> str | None:
        """Why fine-tuning cannot start here, or None."""
        if not finetune_available():
            return "Fine-tuning is not available yet: explorer.models.finetune is not installed."
        if self.data.embeddings is None:
            return "Fine-tuning needs embeddings first: run `explorer embed WS`."
        return None

    # ------------------------------------------------------------------ running
    def start(self) -> None:
        """Start fine-tuning on a background thread (refused while one runs or when unavailable)."""
        reason = self.unavailable_reason()
        if reason or self.running:
            self.session.notify(reason or "A fine-tune is already running.")
            return
        store = self.data.labels
        if store is None or not len(store.current()):
            self.session.notify("Fine-tuning learns from labels: label some objects first.")
            return
        self.param.update(running=True, progress=0, stage="starting")
        self._compare.objects = []
        self._doc = current_document()
        run_in_background(self._work, self._finished, doc=self._doc, name="explorer-finetune")

    def _set(self, **values) -> None:
        """Update progress from the worker thread, on the session's event loop."""
        call_soon(self._doc, lambda: self.param.update(**values))

    def _report(self, *args) -> None:
        """Progress callback for the training loop: ``(fraction)``, ``(done, total)`` or with a message."""
        numbers = [a for a in args if isinstance(a, int | float) and not isinstance(a, bool)]
        texts = [a for a in args if isinstance(a, str)]
        if len(numbers) >= 2 and numbers[1]:
            frac = numbers[0] / numbers[1]
        elif numbers:
            frac = numbers[0] if numbers[0] <= 1 else numbers[0] / 100
        else:
            frac = self.progress / 100
        values = {"progress": int(max(0, min(1, frac)) * 70)}
        if texts:
            values["stage"] = texts[0]
        self._set(**values)

    def _work(self) -> dict:
        from explorer.analysis.workspace_ops import map_workspace, score_workspace
        from explorer.models.finetune import finetune_workspace

        ws = self.data.ws.reload()
        old = {k: ws.current(k) for k in ("embeddings", "maps", "scores")}
        self._set(stage="training")
        new_emb = finetune_workspace(ws, head_only=self.head_only, epochs=self.epochs, progress=self._report)
        self._set(progress=72, stage="new map")
        new_map = map_workspace(ws, progress=False, **map_settings(ws, old["maps"]))
        self._set(progress=90, stage="new scores")
        new_scores = score_workspace(ws, progress=False)
        for kind, version in old.items():  # the old versions stay current until the user switches
            if version is not None:
                ws.set_current(kind, version)
        self._set(progress=95, stage="comparing")
        return {
            "old": old,
            "new": {"embeddings": new_emb, "maps": new_map, "scores": new_scores},
            **self._comparison(ws, old, new_emb, new_map, new_scores),
        }

    def _comparison(self, ws, old: dict, new_emb: str, new_map: str, new_scores: str) -> dict:
        old_emb = ws.embeddings(old["embeddings"])
        emb = ws.embeddings(new_emb)
        common = pd.Index(old_emb.ids).intersection(pd.Index(emb.ids))
        a = np.asarray(old_emb.vectors)[pd.Index(old_emb.ids).get_indexer(common)]
        b = np.asarray(emb.vectors)[pd.Index(emb.ids).get_indexer(common)]
        overlap = neighbour_overlap(a, b)
        old_map = ws.map(old["maps"])[0] if old["maps"] else None
        new_frame = ws.map(new_map)[0]
        moved = None
        if old["scores"]:
            s_old, s_new = ws.scores(old["scores"])[0], ws.scores(new_scores)[0]
            moved = rank_changes(
                pd.Series(s_old["score"].to_numpy(), index=s_old["id"].astype(object)),
                pd.Series(s_new["score"].to_numpy(), index=s_new["id"].astype(object)),
            )
        return {"overlap": overlap, "old_map": old_map, "new_map": new_frame, "moved": moved}

    def _finished(self, result, error) -> None:
        if error is not None:
            self.param.update(stage=f"failed: {error}", progress=0, running=False)
            self.session.notify(f"Fine-tuning failed: {error}")
            return
        try:
            self._show_comparison(result)
        except Exception as err:  # noqa: BLE001 - the new versions exist; say why the comparison is missing
            self._compare.objects = [
                pn.pane.HTML(f"<small>Could not draw the comparison: {html.escape(str(err))}</small>")
            ]
        self.result = result
        self.param.update(progress=100, stage="done", running=False)

    # ------------------------------------------------------------------ comparing and choosing
    def _show_comparison(self, result: dict) -> None:
        parts = [
            pn.pane.HTML(
                f"<b>New embeddings {html.escape(result['new']['embeddings'])}</b>: "
                f"{result['overlap']:.0%} of each object's {OVERLAP_K} nearest neighbours are "
                "unchanged."
            )
        ]
        if result["old_map"] is not None:
            highlight = self.session.selected_ids
            parts.append(
                pn.pane.HoloViews(
                    side_by_side(result["old_map"], result["new_map"], highlight, palette.SELECTION),
                    sizing_mode="stretch_width",
                    height=340,
                )
            )
        if result["moved"] is not None and len(result["moved"]):
            parts.append(
                pn.pane.DataFrame(result["moved"].head(10), index=False, sizing_mode="stretch_width")
            )
        use = pn.widgets.Button(label="Use the new map", color="primary")
        keep = pn.widgets.Button(label="Keep the old map")
        use.on_click(lambda _e: self.choose(new=True))
        keep.on_click(lambda _e: self.choose(new=False))
        parts.append(pn.Row(use, keep))
        self._compare.objects = parts

    def choose(self, new: bool) -> None:
        """Make the new versions current (the page reloads onto them) or keep the old ones."""
        if not self.result:
            return
        if new:
            for kind, version in self.result["new"].items():
                self.data.ws.set_current(kind, version)
            self.session.notify("Switched to the new map; reloading.")
            if pn.state.location is not None:
                pn.state.location.reload = True
        else:
            self.session.notify("Kept the old map.")
        self._compare.objects = []

    @param.depends("progress", "stage", "running", watch=True)
    def _show_progress(self) -> None:
        self._bar.visible = self.running or 0 < self.progress < 100
        self._bar.value = self.progress
        self._stage.object = f"<small>{html.escape(self.stage)}</small>" if self.stage else ""
        self._button.disabled = self.running or bool(self.unavailable_reason())

    def __panel__(self):
        reason = self.unavailable_reason()
        note = pn.pane.HTML(f"<small style='color:#777'>{html.escape(reason)}</small>") if reason else None
        row = pn.Row(self._button, self._head, self._bar, self._stage, sizing_mode="stretch_width")
        return pn.Column(
            *(x for x in (row, note, self._compare) if x is not None), sizing_mode="stretch_width"
        )
