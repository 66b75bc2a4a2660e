"""Colours the app uses everywhere: label classes, categories, bands and the selection highlight."""

from __future__ import annotations

from collections.abc import Sequence

LABEL_COLOURS = {"anomaly": "#e6194b", "normal": "#3c78d8", "artefact": "#9a6324", "(unlabelled)": "#b0b0b0"}
SELECTION = "#ff00aa"
SIMILAR = "#ff8c00"
FOCUS = "#00d5ff"
DENSITY_CMAP = ["#c9d2df", "#8a9cb6", "#4f6789", "#263b5e"]
SCORE_CMAP = "fire"
CONTINUOUS_CMAP = "viridis"
OTHER = "#9e9e9e"
_CATEGORY = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#393b79",
    "#637939",
    "#8c6d31",
    "#843c39",
    "#7b4173",
    "#3182bd",
    "#e6550d",
    "#31a354",
    "#756bb1",
    "#636363",
    "#6baed6",
    "#fd8d3c",
    "#74c476",
    "#9e9ac8",
    "#fdae6b",
]
BAND_COLOURS = {
    "u": "#7b3294",
    "g": "#2ca02c",
    "r": "#d62728",
    "i": "#8c564b",
    "z": "#555555",
    "y": "#000000",
}


def category_colours(categories: Sequence[str]) -> dict[str, str]:
    """A distinct colour per category (``other`` grey), stable for a given order."""
    out = {}
    for i, cat in enumerate(categories):
        out[cat] = OTHER if cat == "other" else _CATEGORY[i % len(_CATEGORY)]
    return out


def label_colours(classes: Sequence[str]) -> dict[str, str]:
    """Built-in label colours, then a distinct colour per user class."""
    out = dict(LABEL_COLOURS)
    extra = [c for c in classes if c not in out]
    spare = [c for c in _CATEGORY if c not in out.values()]
    for i, cat in enumerate(extra):
        out[cat] = spare[i % len(spare)]
    return out


def band_colour(band: str, i: int) -> str:
    """A colour for a photometric band (common bands by name, others by position)."""
    return BAND_COLOURS.get(str(band).lower()[-1:], _CATEGORY[i % len(_CATEGORY)])


def legend_html(colours: dict[str, str], title: str = "") -> str:
    """A one-line HTML legend of coloured dots (names escaped)."""
    import html

    items = "".join(
        f"<span style='white-space:nowrap;margin-right:10px'><span style='display:inline-block;"
        f"width:10px;height:10px;border-radius:50%;background:{c};margin-right:4px'></span>"
        f"{html.escape(str(name))}</span>"
        for name, c in colours.items()
    )
    head = f"<b style='margin-right:8px'>{html.escape(title)}</b>" if title else ""
    return f"<div style='font-size:12px;line-height:18px'>{head}{items}</div>"
