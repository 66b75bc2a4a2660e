"""A summary of a workspace: objects per modality and source, classes, and which products exist from what."""

from __future__ import annotations

import pandas as pd

from explorer.workspace import Workspace


def describe(ws: Workspace) -> dict:
    """Everything ``explorer info`` shows, as a JSON-able dict."""
    cat = ws.catalog
    table = cat.table
    has_img = table["image_set"].notna() if "image_set" in table else pd.Series(False, index=table.index)
    has_lc = table["has_lightcurve"].astype(bool) if "has_lightcurve" in table else pd.Series(False, index=table.index)
    sources = {}
    if len(table):
        for name, group in table.groupby(table.get("source", pd.Series("unknown", index=table.index)), sort=True):
            gi, gl = has_img[group.index], has_lc[group.index]
            entry = {"objects": len(group), "image": int(gi.sum()), "lightcurve": int(gl.sum()),
                     "both": int((gi & gl).sum())}
            if "class" in group:
                entry["classes"] = {str(k): int(v) for k, v in group["class"].value_counts().items() if v > 0}
            if "is_oddity" in group and group["is_oddity"].notna().any():
                entry["oddities"] = int(group["is_oddity"].fillna(False).astype(bool).sum())
            sources[str(name)] = entry
    image_sets = {name: {"objects": len(store), "shape": list(store.shape), "bands": list(store.bands)}
                  for name, store in cat.images.items()}
    lcs = None
    if cat.lightcurves is not None:
        lc = cat.lightcurves
        lcs = {"objects": len(lc), "points": _stored_points(lc), "bands": lc.bands, "value": lc.value_column}
    labels = None
    if ws.labels_path.exists():
        with ws.labels() as store:
            labels = store.counts()
    return {
        "workspace": str(ws.path),
        "objects": len(table),
        "modalities": {"image": int(has_img.sum()), "lightcurve": int(has_lc.sum()),
                       "both": int((has_img & has_lc).sum())},
        "sources": sources,
        "image_sets": image_sets,
        "lightcurves": lcs,
        "products": ws.manifest["products"],
        "current": ws.manifest["current"],
        "labels": labels,
        "created": ws.manifest["created"],
        "updated": ws.manifest["updated"],
    }


def format_info(info: dict) -> str:
    """The human-readable form of :func:`describe`."""
    lines = [f"workspace {info['workspace']}: {info['objects']} objects "
             f"({info['modalities']['image']} with cutouts, {info['modalities']['lightcurve']} with light curves, "
             f"{info['modalities']['both']} with both)"]
    for name, s in info["sources"].items():
        lines.append(f"  source {name}: {s['objects']} objects ({s['image']} cutouts, {s['lightcurve']} light curves)")
        if s.get("classes"):
            classes = ", ".join(f"{k} {v}" for k, v in list(s["classes"].items())[:12])
            lines.append(f"    classes: {classes}")
    for name, s in info["image_sets"].items():
        lines.append(f"  image set {name}: {s['objects']} cutouts of {'×'.join(map(str, s['shape']))} "
                     f"(bands {', '.join(s['bands'])})")
    if info["lightcurves"]:
        lc = info["lightcurves"]
        points = "points rendered on demand" if lc["points"] is None else f"{lc['points']} points"
        lines.append(f"  light curves: {lc['objects']} objects, {points}, bands {', '.join(lc['bands'])}")
    for kind, versions in info["products"].items():
        current = info["current"].get(kind)
        for v, meta in versions.items():
            parts = [meta[k] for k in ("method", "embeddings") if k in meta]
            if "models" in meta:
                parts.append("models " + ", ".join(f"{key}={m.get('name')}" for key, m in meta["models"].items()))
            mark = "*" if v == current else " "
            lines.append(f"  {mark} {kind} {v} ({meta['created']}): {'; '.join(map(str, parts))}")
    if not any(info["products"].values()):
        lines.append("  nothing computed yet: run `explorer embed`, `explorer map`, `explorer score`")
    if info["labels"]:
        lines.append("  labels: " + ", ".join(f"{k} {v}" for k, v in info["labels"].items()))
    return "\n".join(lines)


def _stored_points(store) -> int | None:
    """How many light-curve points the workspace holds; None when some curves are simulated on demand (counting
    them would render every one)."""
    from explorer.data.simulated_lightcurves import SimulatedLightCurveStore

    if any(isinstance(s, SimulatedLightCurveStore) for s in getattr(store, "stores", [store])):
        return None
    return len(store.table)
