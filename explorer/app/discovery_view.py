"""The live discovery curve part: anomalies found against objects labelled, next to the random-order expectation."""

from __future__ import annotations

import holoviews as hv
import pandas as pd
import panel as pn
import param

from explorer.app.data import AppData
from explorer.app.plots.discovery import discovery_frame, discovery_plot
from explorer.session import Session

TRUTH_COLUMNS = ("is_oddity", "is_anomaly")


class DiscoveryCurve(pn.viewable.Viewer):
    """Anomalies found vs objects labelled (every user of the workspace), redrawn after each label.

    The random-order line needs the true anomaly fraction; it is drawn when the catalogue has a ground-truth
    column (``is_oddity`` in the simulated survey).
    """

    session = param.ClassSelector(class_=Session)

    def __init__(self, session: Session, data: AppData, **params):
        super().__init__(session=session, **params)
        self.data = data
        self._note = pn.pane.HTML("", margin=(0, 5))
        self._prevalence = self._true_prevalence()
        # One plot for the session's life, fed new points through a Pipe: a label updates the curve's data
        # source in place instead of building new Bokeh models (which made every session of the server
        # re-render the plot and recompute its document's model graph after anyone's label).
        self._pipe = hv.streams.Pipe(data=self.curve())
        plot = hv.DynamicMap(
            lambda data: discovery_plot(data, height=200, title="Discovery: anomalies found"),
            streams=[self._pipe],
        )
        self._pane = pn.pane.HoloViews(plot, sizing_mode="stretch_width", height=200)
        self._write_note(self._pipe.data)

    def _true_prevalence(self) -> float | None:
        table = self.data.catalog.table
        for col in TRUTH_COLUMNS:
            if col in table.columns:
                values = table[col].iloc[self.data.rows] if len(self.data.rows) else table[col]
                values = values.fillna(False).astype(bool)
                return float(values.mean()) if len(values) else None
        return None

    def curve(self) -> pd.DataFrame:
        """``viewed, found, random`` for the objects labelled so far, in the order first labelled."""
        store = self.data.labels
        if store is None:
            return discovery_frame(pd.Series([], dtype=object), self._prevalence)
        history = store.history()
        history = history[history["label"].notna()]
        first = history.drop_duplicates("id", keep="first")["id"]
        current = store.current().set_index("id")["label"]
        labels = current.reindex(first.to_numpy()).dropna()
        return discovery_frame(labels, self._prevalence)

    @param.depends("session.labels_version", watch=True)
    def refresh(self) -> None:
        """Redraw the curve and the note under it (called again whenever the session's labels change)."""
        curve = self.curve()
        self._pipe.send(curve)
        self._write_note(curve)

    def _write_note(self, curve: pd.DataFrame) -> None:
        n, found = int(curve["viewed"].iloc[-1]), int(curve["found"].iloc[-1])
        if self._prevalence is None:
            extra = " (no ground-truth column, so no random-order line)"
        else:
            expect = n * self._prevalence
            extra = f" · random order would find {expect:.1f}" + (
                f" · ×{found / expect:.1f}" if expect > 0 and found else ""
            )
        self._note.object = f"<small>{found} anomalies in {n} labelled objects{extra}</small>"

    def __panel__(self):
        return pn.Column(self._pane, self._note, sizing_mode="stretch_width")


__all__ = ["DiscoveryCurve"]
