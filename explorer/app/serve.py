"""What ``panel serve`` runs: one :class:`~explorer.app.explorer.Explorer` per browser session.

``explorer serve WS`` uses :func:`app_factory` directly; to run this file with Panel's own command, name the
workspace in ``EXPLORER_WORKSPACE`` or after ``--args``::

    panel serve explorer/app/serve.py --args my-workspace
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

WORKSPACE_ENV = "EXPLORER_WORKSPACE"


def app_factory(path: str | Path) -> Callable[[], object]:
    """A function building a fresh Explorer (own Session) over the shared data of ``path``, per session."""
    path = Path(path)

    def make():
        from explorer.app.explorer import Explorer

        return Explorer(path, background=True)

    return make


def warm_up(path: str | Path) -> float:
    """Load the workspace data, render the app once, build the similarity index and fit the live ranking, so
    Datashader's and Numba's compilation, the index and the fit happen before the first visitor arrives; returns
    the seconds it took."""
    import time

    from bokeh.document import Document

    from explorer.app.explorer import Explorer
    from explorer.app.ranking import live_ranking
    from explorer.errors import ExplorerError

    start = time.perf_counter()
    app = Explorer(path, user="warm-up", background=False)
    app.__panel__().get_root(Document())
    data = app.data
    if data.has_map:  # the selection, gallery, detail and light-curve paths compile on first use too
        app.session.select_ids(data.frame["id"].iloc[:50].to_numpy(dtype=object))
        table = data.catalog.table
        with_lc = table.loc[table.get("has_lightcurve", False) == True, "id"]  # noqa: E712
        if len(with_lc):
            app.session.focus(str(with_lc.iloc[0]))
        app.session.clear()
    if data.embeddings is not None:  # built once per process: not on the first visitor's find-similar, which
        try:  # would hold every session's event loop for as long (1.5 s at 1M objects)
            data.similarity_index()
        except ExplorerError as err:  # the app still serves; find-similar shows this reason when asked
            print(f"Warning: find-similar is unavailable: {err}", file=sys.stderr, flush=True)
        try:  # likewise the live ranking's fit, which the first label would otherwise pay on everyone's time
            t0 = time.perf_counter()
            ranking = live_ranking(data)
            if ranking.prepare() and not ranking.from_saved_scores_ and time.perf_counter() - t0 > 5:
                print(
                    f"Note: fitting the live anomaly ranking took {time.perf_counter() - t0:.0f} s: the workspace "
                    "has no saved scores for these embeddings; `explorer score WS` saves them and shortens this",
                    file=sys.stderr,
                    flush=True,
                )
        except ExplorerError as err:  # labels are still saved; the ranking re-learns on the first label
            print(f"Warning: the live ranking could not be prepared: {err}", file=sys.stderr, flush=True)
    return time.perf_counter() - start


def _workspace_from_args() -> str | None:
    return os.environ.get(WORKSPACE_ENV) or (sys.argv[1] if len(sys.argv) > 1 else None)


if __name__.startswith("bokeh_app") or __name__ == "__main__":
    _path = _workspace_from_args()
    if _path is None:
        import panel as pn

        pn.pane.Alert(
            f"No workspace given: set {WORKSPACE_ENV} or run `explorer serve WS`.", alert_type="danger"
        ).servable()
    else:
        app_factory(_path)()
