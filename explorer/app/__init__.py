"""The dashboard: Panel components (each a param-based Viewer) over the workspace, composed by :class:`Explorer`.

Import :class:`Explorer` from here; ``explorer serve WS`` serves the same object (see :mod:`explorer.app.serve`).
"""

from __future__ import annotations


def __getattr__(name: str):
    if name == "Explorer":
        from explorer.app.explorer import Explorer

        return Explorer
    raise AttributeError(f"module 'explorer.app' has no attribute {name!r}")


__all__ = ["Explorer"]
