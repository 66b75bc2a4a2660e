"""Keyboard shortcuts for the whole page: a small ``JSComponent`` that listens to ``keydown`` on the document and
sends the key to Python (Panel has no key handler of its own).

Keys typed into text fields are ignored, and so are keys with Ctrl, Alt or Meta, so shortcuts never steal
typing or browser commands.
"""

from __future__ import annotations

from collections.abc import Callable

import param
from panel.custom import JSComponent

_ESM = """
export function render({ model }) {
  const handler = (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) { return; }
    const target = event.composedPath ? event.composedPath()[0] : event.target;
    const tag = target && target.tagName ? target.tagName.toUpperCase() : "";
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable)) {
      return;
    }
    if (model.keys.includes(event.key)) {
      event.preventDefault();
      model.send_msg({ key: event.key });
    }
  };
  document.addEventListener("keydown", handler);
  model.on("remove", () => document.removeEventListener("keydown", handler));
  const hint = document.createElement("span");
  hint.style.display = "none";
  return hint;
}
"""


class KeyboardShortcuts(JSComponent):
    """Calls ``on_key(key)`` in Python for each key in :attr:`keys` pressed anywhere on the page."""

    keys = param.List(default=[], item_type=str, doc="Keys (``KeyboardEvent.key`` values) to listen for.")
    last_key = param.String(default="", doc="The last shortcut pressed.")

    _esm = _ESM

    def __init__(self, on_key: Callable[[str], None] | None = None, **params):
        super().__init__(**params)
        self._on_key = on_key

    def _handle_msg(self, msg) -> None:
        key = str(msg.get("key", "")) if isinstance(msg, dict) else ""
        if key not in self.keys:
            return
        self.last_key = key
        if self._on_key is not None:
            self._on_key(key)
