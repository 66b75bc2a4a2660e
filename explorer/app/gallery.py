"""A thumbnail grid that reports clicks: a small ``JSComponent`` (Panel has no clickable image gallery).

Text is set with ``textContent`` and ``alt``/``title`` attributes in the browser, never as HTML, so ids and
catalogue strings cannot inject markup.
"""

from __future__ import annotations

import param
from panel.custom import JSComponent

_ESM = """
export function render({ model, el }) {
  const grid = document.createElement("div");
  grid.className = "gallery";
  function layout() {
    grid.style.gridTemplateColumns = `repeat(${model.columns}, ${model.cell}px)`;
  }
  function draw() {
    layout();
    grid.replaceChildren();
    grid.classList.toggle("is-empty", !model.items.length);
    if (!model.items.length) {
      const empty = document.createElement("div");
      empty.className = "empty";
      empty.textContent = model.empty_text;
      grid.appendChild(empty);
      return;
    }
    for (const item of model.items) {
      const card = document.createElement("div");
      card.className = "card" + (item.id === model.focused ? " focused" : "");
      card.dataset.id = item.id;
      card.title = item.tooltip || item.id;
      if (item.src) {
        const img = document.createElement("img");
        img.src = item.src;
        img.alt = item.id;
        card.appendChild(img);
      } else {
        const ph = document.createElement("div");
        ph.className = "noimg";
        ph.textContent = item.placeholder || "no image";
        card.appendChild(ph);
      }
      const cap = document.createElement("div");
      cap.className = "caption";
      cap.textContent = item.caption;
      card.appendChild(cap);
      if (item.label) {
        const badge = document.createElement("div");
        badge.className = "badge";
        badge.textContent = item.label;
        badge.style.background = item.colour || "#555";
        card.appendChild(badge);
      }
      card.addEventListener("click", () => { model.focused = item.id; });
      grid.appendChild(card);
    }
  }
  model.on("items", draw);
  model.on("focused", draw);
  model.on("empty_text", draw);
  model.on("columns", draw);
  model.on("cell", draw);
  draw();
  return grid;
}
"""

_CSS = """
:host { display: block; width: 100%; }
.gallery { display: grid; gap: 6px; }
.card { position: relative; border: 2px solid #e3e6eb; border-radius: 4px; cursor: pointer; background: #0b0f18;
        overflow: hidden; }
.card:hover { border-color: #8fa3bf; }
.card.focused { border-color: #00b8e6; box-shadow: 0 0 0 2px #00d5ff55; }
.card img { width: 100%; aspect-ratio: 1 / 1; display: block; image-rendering: auto; object-fit: contain; }
.card .noimg { width: 100%; aspect-ratio: 1 / 1; color: #889; font-size: 11px; display: flex;
               align-items: center; justify-content: center; }
.card .caption { font-size: 10px; color: #dde; background: #0b0f18; padding: 1px 3px; white-space: nowrap;
                 overflow: hidden; text-overflow: ellipsis; }
.card .badge { position: absolute; top: 2px; right: 2px; font-size: 9px; color: white; padding: 0 4px;
               border-radius: 3px; }
.gallery.is-empty { display: block; }
.empty { color: #666; font-size: 13px; padding: 16px 4px; }
"""


class Gallery(JSComponent):
    """Thumbnails with captions and label badges; clicking one sets :attr:`focused`.

    ``items`` is a list of dicts with keys ``id``, ``src`` (a data URI or None), ``caption``, ``label``,
    ``colour``, ``tooltip``.
    """

    items = param.List(default=[], doc="Cards to show, in order.")
    focused = param.String(default=None, allow_None=True, doc="Id of the card the user clicked last.")
    empty_text = param.String(default="Nothing to show.")
    columns = param.Integer(default=4, bounds=(1, 20), doc="Cards per row.")
    cell = param.Integer(default=100, bounds=(32, 400), doc="Card width in CSS pixels.")

    _esm = _ESM
    _stylesheets = [_CSS]
