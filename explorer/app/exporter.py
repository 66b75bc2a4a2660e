"""The export part: the selection, the find-similar results or everything with a label, downloaded from the
browser as CSV, Parquet, FITS table, VOTable or ECSV (written by :func:`explorer.export.export_bytes`)."""

from __future__ import annotations

import html
import importlib.util
import io

import panel as pn
import param

from explorer.app.data import AppData
from explorer.errors import ExplorerError
from explorer.session import Session

FORMATS = {"CSV": "csv", "Parquet": "parquet", "FITS table": "fits", "VOTable": "votable", "ECSV": "ecsv"}
LABEL_PREFIX = "label: "


def export_available() -> bool:
    """Whether the writers (:mod:`explorer.export`) are installed."""
    return importlib.util.find_spec("explorer.export") is not None


class Exporter(pn.viewable.Viewer):
    """Pick what and which format; the download button writes the file on click.

    Parameters
    ----------
    session : Session
    data : AppData
    """

    session = param.ClassSelector(class_=Session)
    what = param.Selector(default="selection", objects=["selection", "similar results"])
    fmt = param.Selector(default="csv", objects=list(FORMATS.values()))
    n_rows = param.Integer(default=0, doc="How many objects the export would hold now.")

    def __init__(self, session: Session, data: AppData, **params):
        super().__init__(session=session, **params)
        self.data = data
        self._what = pn.widgets.Select.from_param(self.param.what, label="", width=170)
        self._fmt = pn.widgets.Select.from_param(self.param.fmt, label="", options=FORMATS, width=110)
        self._download = pn.widgets.FileDownload(
            callback=self._file,
            filename="explorer-export.csv",
            label="Download",
            color="success",
            width=110,
            description="Download the chosen objects as a table",
        )
        self._status = pn.pane.HTML("", margin=(10, 5))
        self._refresh_choices()
        self._refresh_count()

    # ------------------------------------------------------------------ what to export
    @param.depends("session.labels_version", watch=True)
    def _refresh_choices(self) -> None:
        store = self.data.labels
        labels = [f"{LABEL_PREFIX}{k}" for k, v in (store.counts() if store is not None else {}).items() if v]
        options = ["selection", "similar results", "focused object", *labels]
        self.param.what.objects = options
        self._what.options = options
        if self.what not in options:
            self.what = "selection"

    def ids(self) -> list[str]:
        """The ids the export would hold now."""
        if self.what == "selection":
            return [str(i) for i in self.session.selected_ids]
        if self.what == "similar results":
            sim = self.session.similar
            return [] if sim is None else [str(i) for i in sim["id"]]
        if self.what == "focused object":
            return [] if self.session.focused_id is None else [self.session.focused_id]
        if self.what.startswith(LABEL_PREFIX):
            store = self.data.labels
            if store is None:
                return []
            current = store.current()
            return current.loc[current["label"] == self.what[len(LABEL_PREFIX) :], "id"].astype(str).tolist()
        return []

    @param.depends(
        "what",
        "fmt",
        "session.selected_ids",
        "session.similar",
        "session.focused_id",
        "session.labels_version",
        watch=True,
    )
    def _refresh_count(self) -> None:
        self.n_rows = len(self.session.selected_ids) if self.what == "selection" else len(self.ids())
        reason = self.unavailable_reason()
        self._download.disabled = bool(reason) or self.n_rows == 0
        if reason:
            self._status.object = f"<small style='color:#a33'>{html.escape(reason)}</small>"
        elif self.n_rows == 0:
            self._status.object = (
                f"<small style='color:#777'>Nothing to export: the {html.escape(self.what)} is empty.</small>"
            )
        else:
            self._status.object = f"<small>{self.n_rows:,} objects</small>"

    @staticmethod
    def unavailable_reason() -> str | None:
        """Why export cannot work here (:mod:`explorer.export` is not installed), or ``None`` when it can."""
        if not export_available():
            return "Export is not available yet: explorer.export is not installed."
        return None

    # ------------------------------------------------------------------ the file
    def export(self) -> tuple[bytes, str] | None:
        """The file's bytes and name, or None (with a message) when there is nothing to write."""
        reason = self.unavailable_reason()
        if reason:
            self.session.notify(reason)
            return None
        ids = self.ids()
        if not ids:
            self.session.notify(f"Nothing to export: the {self.what} is empty.")
            return None
        from explorer.export import export_bytes

        try:
            content, name = export_bytes(self.data.ws, ids, self.fmt)
        except ExplorerError as err:
            self.session.notify(str(err))
            return None
        self.session.notify(f"Exported {len(ids):,} objects as {name}.")
        return content, name

    def _file(self):
        result = self.export()
        if result is None:  # FileDownload needs a file: an empty one says "nothing" without an error
            self._download.filename = "nothing-to-export.txt"
            return io.BytesIO(b"Nothing to export: select objects or label some first.\n")
        content, name = result
        self._download.filename = name
        return io.BytesIO(content)

    def __panel__(self):
        return pn.Row(
            pn.pane.HTML("<b>Export</b>", margin=(10, 5)),
            self._what,
            self._fmt,
            self._download,
            self._status,
            sizing_mode="stretch_width",
        )


__all__ = ["FORMATS", "Exporter"]
