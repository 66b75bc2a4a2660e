"""Benchmark anomaly ranking on the simulated survey: how many injected oddities each score puts at the top.

Usage::

    python benchmarks/bench_anomaly.py                         # 20,000 objects, seed 0 (~5-10 min on 2 cores)
    python benchmarks/bench_anomaly.py --n 5000 --seed 1 --json out.json
    python benchmarks/bench_anomaly.py --workspace /tmp/ws20k  # reuse (or create, then keep) a workspace

Simulates ``n`` objects (:func:`explorer.data.defaults.add_simulated`) in a temporary workspace, embeds them with
the shipped encoders through the pipeline (:func:`explorer.models.embed.embed_workspace`), then scores them
without any label and reports, per scoring method, the fraction of injected oddities (ground truth
``is_oddity``, used only here, never by a scorer) in the top 1 % and top 5 % of the ranking, the ROC AUC, and how
many of each oddity class land in the top 1 %, beside a random ranking (expected 1 %, 5 %, 0.5).

Methods (``space`` column):

- ``joint``: one score over the joint embedding (a block per encoder, zeros where a modality is absent);
- ``image`` / ``lightcurve``: the per-modality space, ranked among the objects that have that modality only
  (so its top 1 % is 1 % of that population);
- ``max-rank``: each modality scored on the objects that have it, converted to a rank percentile ``u`` in
  ``(0, 1]``, combined as ``max(u) ** k`` over the ``k`` modalities an object has (the chance that the best of
  ``k`` independent uniform ranks is that high, so objects with two modalities are not favoured);
- ``max-rank/group``: the same, but each modality ranked within the objects that share the same set of
  modalities (e.g. galaxy cutouts among image-only objects, star cutouts among objects with a light curve);
- ``workspace``: what ``score_workspace`` (``explorer score WS``) saves with its defaults: the kNN score of the
  joint space, of each modality's space whose objects mostly have another modality (here the light curves),
  and the cutout statistics (hot pixels, satellite trails, rings),
  combined as the best tail significance (:mod:`explorer.analysis.detectors`); ``workspace, --embeddings-only``:
  the kNN score of the joint space alone (what the engine saved before); then each extra detector alone (ranked
  among the objects it applies to) and the same detectors combined by rank (``max-rank``) instead.

Then a labelling session with an oracle (skip with ``--no-feedback``): the top unlabelled object is viewed and
labelled (anomaly if it is an oddity, else normal), the ranking re-learns, for 1 % of the catalogue; it reports
the oddities found in those views, per class, for kNN + kernel feedback and for the forest + AAD, and for
kNN + kernel feedback starting from the saved workspace scores, with the kernel in the embedding alone and, as
the app's live ranking does, in the embedding and the detectors' tail significances (``side_features``).

Prints one table and, with ``--json PATH``, writes every row plus the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from explorer.analysis.anomaly import AnomalyScorer  # noqa: E402
from explorer.analysis.detectors import significances  # noqa: E402
from explorer.data.simulate import ODDITY_MIX  # noqa: E402
from explorer.workspace import Workspace  # noqa: E402

ODDITIES = tuple(ODDITY_MIX)


def build_workspace(path: Path, n: int, seed: int) -> Workspace:
    """Simulate ``n`` objects and embed them with the shipped encoders (reused when already there)."""
    from explorer.data.defaults import add_simulated, simulated_count
    from explorer.models.embed import embed_workspace, embeddings_stale

    ws = Workspace.open_or_create(path)
    have = simulated_count(ws)
    if have == 0:
        add_simulated(ws, n, seed=seed, progress=True)
    elif have != n:
        print(f"note: reusing {path} with {have:,} simulated objects (asked for {n:,})", flush=True)
    if embeddings_stale(ws):
        embed_workspace(ws, progress=True)
    return ws


def rank_percentile(scores: np.ndarray) -> np.ndarray:
    """Rank of each score in ``(0, 1]`` (1 = most anomalous); ties share their mean rank."""
    from scipy.stats import rankdata

    return rankdata(scores) / max(len(scores), 1)


def evaluate(scores: np.ndarray, odd: np.ndarray, cls: np.ndarray) -> dict[str, Any]:
    """Top-1 % / top-5 % recall of the oddities, ROC AUC and per-class counts in the top 1 %."""
    from sklearn.metrics import roc_auc_score

    n = len(scores)
    order = np.argsort(-scores, kind="stable")
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    top1, top5 = max(int(round(0.01 * n)), 1), max(int(round(0.05 * n)), 1)
    row: dict[str, Any] = {
        "n": int(n),
        "oddities": int(odd.sum()),
        "top1": float((rank[odd] < top1).mean()) if odd.any() else float("nan"),
        "top5": float((rank[odd] < top5).mean()) if odd.any() else float("nan"),
        "auc": float(roc_auc_score(odd, scores)) if 0 < odd.sum() < n else float("nan"),
    }
    for c in ODDITIES:
        mine = cls == c
        row[f"{c}_top1"] = int((rank[mine] < top1).sum())
        row[f"{c}_n"] = int(mine.sum())
        if mine.any() and (~odd).any():
            row[f"{c}_auc"] = float(
                roc_auc_score(
                    np.r_[np.ones(mine.sum()), np.zeros((~odd).sum())], np.r_[scores[mine], scores[~odd]]
                )
            )
    return row


def score_space(X: np.ndarray, ids: np.ndarray, method: str, seed: int) -> tuple[np.ndarray, float]:
    """Prior scores of one space with :class:`AnomalyScorer` defaults for ``method``; and the seconds taken."""
    t0 = time.perf_counter()
    s = AnomalyScorer(method=method, random_state=seed).fit(X, ids).score_samples()
    return s, time.perf_counter() - t0


def max_rank(percentiles: pd.DataFrame) -> np.ndarray:
    """``max(u) ** k`` over the modalities each object has (NaN where it lacks one)."""
    P = percentiles.to_numpy(dtype=np.float64)
    k = np.isfinite(P).sum(axis=1)
    return np.nanmax(P, axis=1) ** k


def run(ws: Workspace, seed: int, feedback: bool = True) -> list[dict[str, Any]]:
    """Every method's row (see module docstring)."""
    table = ws.catalog.table.set_index("id")
    joint = ws.embeddings(space="joint")
    all_ids = joint.ids
    truth = lambda ids: (  # noqa: E731
        table.loc[ids, "is_oddity"].to_numpy(bool),
        table.loc[ids, "class"].astype(str).to_numpy(),
    )
    odd_all, cls_all = truth(all_ids)
    rows: list[dict[str, Any]] = []

    def add(method: str, space: str, scores: np.ndarray, ids: np.ndarray, seconds: float | None) -> None:
        odd, cls = truth(ids) if ids is not all_ids else (odd_all, cls_all)
        row = {"method": method, "space": space, "seconds": None if seconds is None else round(seconds, 2)}
        rows.append({**row, **evaluate(np.asarray(scores, np.float64), odd, cls)})
        print(format_row(rows[-1]), flush=True)

    rng = np.random.default_rng(seed)
    add("random", "-", rng.random(len(all_ids)), all_ids, None)
    modalities = [
        m for m in ("image", "lightcurve") if m in ws.versions("embeddings")[joint.version]["spaces"]
    ]
    spaces = {m: ws.embeddings(space=m) for m in modalities}
    for method in ("iforest", "knn"):
        s, sec = score_space(np.asarray(joint.vectors), all_ids, method, seed)
        add(method, "joint", s, all_ids, sec)
        pct, pct_group, total = (
            pd.DataFrame(index=pd.Index(all_ids)),
            pd.DataFrame(index=pd.Index(all_ids)),
            sec,
        )
        pattern = pd.Series("", index=pd.Index(all_ids))
        for m, emb in spaces.items():
            pattern[pd.Index(emb.ids)] += m[0]
        for m, emb in spaces.items():
            X = np.asarray(emb.vectors)
            s, sec = score_space(X, emb.ids, method, seed)
            total += sec
            add(method, m, s, emb.ids, sec)
            pct[m] = pd.Series(rank_percentile(s), index=pd.Index(emb.ids))
            grp = pattern[pd.Index(emb.ids)].to_numpy()
            within = np.empty(len(s))
            for g in np.unique(grp):
                rows_g = np.flatnonzero(grp == g)
                if len(rows_g) < 3:
                    within[rows_g] = 1.0
                    continue
                sg, sec = score_space(X[rows_g], emb.ids[rows_g], method, seed)
                total += sec
                within[rows_g] = rank_percentile(sg)
            pct_group[m] = pd.Series(within, index=pd.Index(emb.ids))
        if len(spaces) > 1:
            add(method, "max-rank", max_rank(pct), all_ids, None)
            add(method, "max-rank/group", max_rank(pct_group), all_ids, None)
    if feedback:
        X = np.asarray(joint.vectors)
        for method in ("knn", "iforest"):
            rows.append(discovery(X, all_ids, odd_all, cls_all, method, seed))
            print(format_discovery(rows[-1]), flush=True)
    from explorer.analysis.workspace_ops import score_workspace

    for detectors in (False, True):
        t0 = time.perf_counter()
        version = score_workspace(ws, progress=False, random_state=seed, detectors=detectors)
        sec = time.perf_counter() - t0
        saved, meta = ws.scores(version)
        saved = saved.set_index("id").reindex(pd.Index(all_ids))
        name = "workspace" if detectors else "workspace, --embeddings-only"
        add(f"{name} ({meta['method']})", meta.get("space", "joint"), saved["score"].to_numpy(), all_ids, sec)
    # the detectors one by one, and the same detectors combined by rank (every detector the same share of
    # the top) instead of tail significance
    for name in meta["detectors"][1:]:
        has = saved[name].notna().to_numpy()
        add(name, "detector", saved[name].to_numpy()[has], all_ids[has], None)
    percentiles = pd.DataFrame({d: pd.Series(rank_percentile(saved[d].dropna().to_numpy()),
                                             index=saved[d].dropna().index) for d in meta["detectors"]})
    add("detectors max-rank", "-", max_rank(percentiles.reindex(pd.Index(all_ids))), all_ids, None)
    if feedback:
        rows.append(discovery(np.asarray(joint.vectors), all_ids, odd_all, cls_all, "knn", seed,
                              prior=saved["score"].to_numpy(np.float64), label="workspace+kernel feedback"))
        print(format_discovery(rows[-1]), flush=True)
        # what the app's live ranking does: labels spread in the embedding and the detectors' significances, and
        # weigh the detectors that flagged the labelled objects
        side = significances({d: saved[d].to_numpy(np.float64) for d in meta["detectors"]})
        rows.append(discovery(np.asarray(joint.vectors), all_ids, odd_all, cls_all, "knn", seed,
                              prior=saved["score"].to_numpy(np.float64), side=side, detectors=side,
                              label="workspace+detector trust (app)"))
        print(format_discovery(rows[-1]), flush=True)
    return rows


def discovery(
    X: np.ndarray, ids: np.ndarray, odd: np.ndarray, cls: np.ndarray, method: str, seed: int,
    prior: np.ndarray | None = None, label: str | None = None, side: np.ndarray | None = None,
    detectors: np.ndarray | None = None,
) -> dict[str, Any]:
    """An oracle views the top unlabelled object, labels it (anomaly if an oddity, else normal), re-rank; repeat
    for 1 % of the catalogue. Oddities found in that budget, beside the static top 1 %, and ms per re-rank.
    ``prior``: start from these scores (the saved ones, as the app's live ranking does); ``side``: the
    scorer's ``side_features`` (the app passes the saved detectors' significances); ``detectors``: the scorer's
    ``detectors`` (the app passes the same)."""
    scorer = AnomalyScorer(method=method, random_state=seed).fit(X, ids, prior_scores=prior, side_features=side,
                                                                  detectors=detectors)
    budget = max(int(round(0.01 * len(ids))), 1)
    static = scorer.rank_rows(top=budget)
    seen, times = [], []
    for _ in range(budget):
        row = int(scorer.rank_rows(top=1, exclude_labelled=True)[0])
        seen.append(row)
        t0 = time.perf_counter()
        scorer.update({ids[row]: "anomaly" if odd[row] else "normal"})
        times.append(time.perf_counter() - t0)
    seen_a = np.asarray(seen)
    row = {
        "method": label or f"{method}+{scorer.feedback_} feedback",
        "space": "joint",
        "budget": budget,
        "oddities": int(odd.sum()),
        "static_top1": float(odd[static].sum() / max(odd.sum(), 1)),
        "feedback_top1": float(odd[seen_a].sum() / max(odd.sum(), 1)),
        "update_ms_median": round(1e3 * float(np.median(times)), 2),
    }
    for c in ODDITIES:
        row[f"{c}_found"] = int((cls[seen_a] == c).sum())
    return row


def format_discovery(row: dict[str, Any]) -> str:
    classes = " ".join(f"{row[f'{c}_found']:>3}" for c in ODDITIES)
    return (
        f"{row['method']:<30}first {row['budget']} viewed: {row['feedback_top1']:.2f} of the oddities "
        f"(static ranking {row['static_top1']:.2f}); per class {classes}; {row['update_ms_median']} ms/label"
    )


def format_row(row: dict[str, Any]) -> str:
    classes = " ".join(f"{row[f'{c}_top1']:>3}/{row[f'{c}_n']:<3}" for c in ODDITIES)
    sec = "" if row["seconds"] is None else f"{row['seconds']:.1f}"
    return (
        f"{row['method']:<30}{row['space']:<12}{row['n']:>7}{row['oddities']:>5}{row['top1']:>7.2f}"
        f"{row['top5']:>7.2f}{row['auc']:>7.3f}  {classes}{sec:>8}"
    )


def header() -> str:
    classes = " ".join(f"{c[:7]:<7}" for c in ODDITIES)
    return (
        f"{'method':<30}{'space':<12}{'n':>7}{'odd':>5}{'top1%':>7}{'top5%':>7}{'AUC':>7}  {classes}"
        f"{'sec':>8}\n" + "-" * 150
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20_000, help="simulated objects (default 20,000)")
    ap.add_argument("--seed", type=int, default=0, help="survey and scorer seed (default 0)")
    ap.add_argument(
        "--workspace", type=Path, help="use (or create and keep) this workspace instead of a temp one"
    )
    ap.add_argument("--json", type=Path, help="write all rows to this JSON file")
    ap.add_argument(
        "--no-feedback",
        action="store_true",
        help="skip the labelling session with an oracle (1 %% of n labels)",
    )
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-anomaly-") as tmp:
        path = args.workspace or Path(tmp) / "ws"
        ws = build_workspace(path, args.n, args.seed)
        build_s = time.perf_counter() - t0
        print(f"\nworkspace {path}: {len(ws.catalog.ids):,} objects, built/embedded in {build_s:.0f} s\n")
        print("oddity columns: found in the top 1 % / total of that class in the ranked population")
        print(header(), flush=True)
        rows = run(ws, args.seed, feedback=not args.no_feedback)
    load = os.getloadavg()
    print(f"\nload average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; total {time.perf_counter() - t0:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"n": args.n, "seed": args.seed, "loadavg": load, "rows": rows}, indent=1)
        )


if __name__ == "__main__":
    main()
