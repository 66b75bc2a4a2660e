"""Benchmark the analysis engine: lasso -> ids, find-similar, UMAP/PCA, anomaly ranking with feedback.

Usage::

    python benchmarks/bench_engine.py                    # full sizes (~5-10 min on 2 cores)
    python benchmarks/bench_engine.py --sizes quick      # 10x smaller
    python benchmarks/bench_engine.py --json out.json --umap-100k --hnsw-1m

Prints one table (median of warm runs, wall-clock ms, plus CPU ms where threads are not involved) and, with
``--json``, writes every row. Every selection row is checked against the brute-force reference on the same
polygon in the same run; every ANN row reports recall@20 against exact search.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from explorer.analysis import AnomalyScorer, PointIndex, Projector, SimilarityIndex  # noqa: E402
from explorer.analysis.detectors import significances  # noqa: E402
from explorer.analysis.selection import points_in_lasso  # noqa: E402

ROWS: list[dict[str, Any]] = []

SIZES = {
    "full": {
        "lasso": [1_000_000, 10_000_000],
        "similar": [100_000, 1_000_000],
        "anomaly": [100_000, 1_000_000],
        "umap": [10_000],
    },
    "quick": {
        "lasso": [100_000, 1_000_000],
        "similar": [10_000, 100_000],
        "anomaly": [10_000, 100_000],
        "umap": [5_000],
    },
    "tiny": {"lasso": [20_000], "similar": [5_000], "anomaly": [5_000], "umap": [4_096]},
}


def timed(fn: Callable[[], Any], repeat: int = 7, warm: int = 1) -> tuple[float, float, Any]:
    """Median wall and CPU milliseconds of ``fn`` over ``repeat`` runs after ``warm`` untimed runs."""
    out = None
    for _ in range(warm):
        out = fn()
    walls, cpus = [], []
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return 1e3 * statistics.median(walls), 1e3 * statistics.median(cpus), out


def once(fn: Callable[[], Any]) -> tuple[float, Any]:
    w = time.perf_counter()
    out = fn()
    return 1e3 * (time.perf_counter() - w), out


def record(task: str, size: str, method: str, ms: float, cpu_ms: float | None = None, **extra: Any) -> None:
    row = {
        "task": task,
        "size": size,
        "method": method,
        "ms": round(ms, 3),
        "cpu_ms": None if cpu_ms is None else round(cpu_ms, 3),
        **extra,
    }
    ROWS.append(row)
    note = " ".join(f"{k}={v}" for k, v in extra.items())
    cpu = "" if cpu_ms is None else f"{cpu_ms:10.2f}"
    print(f"{task:<14}{size:<12}{method:<34}{ms:11.2f}{cpu:>11}  {note}", flush=True)


# ------------------------------------------------------------------------------------------------------------------
# lasso
# ------------------------------------------------------------------------------------------------------------------
def clustered_map(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    k = 30
    centres = rng.uniform(-10, 10, (k, 2))
    lab = rng.integers(0, k, n)
    scale = rng.uniform(0.3, 1.5, k)[lab][:, None]
    xy = (centres[lab] + rng.normal(size=(n, 2)) * scale).astype(np.float32)
    return xy[:, 0].copy(), xy[:, 1].copy(), centres


def freehand(centre: np.ndarray, seed: int = 1, m: int = 200) -> np.ndarray:
    """A wobbly 200-vertex outline around ``centre``, like a hand-drawn lasso."""
    rng = np.random.default_rng(seed)
    ang = np.linspace(0, 2 * np.pi, m, endpoint=False)
    r = 3 + 0.8 * np.sin(5 * ang) + 0.3 * rng.normal(size=m)
    return np.c_[centre[0] + r * np.cos(ang), centre[1] + r * np.sin(ang)]


def numpy_ray_cast(x: np.ndarray, y: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Plain numpy even-odd ray cast with a bounding-box prefilter (the matplotlib.path-style baseline)."""
    x0, y0 = v.min(axis=0)
    x1, y1 = v.max(axis=0)
    cand = np.flatnonzero((x >= x0) & (x <= x1) & (y >= y0) & (y <= y1))
    px, py = x[cand].astype(np.float64), y[cand].astype(np.float64)
    inside = np.zeros(cand.size, dtype=bool)
    for (ax, ay), (bx, by) in zip(v, np.roll(v, -1, axis=0), strict=True):
        straddle = (ay > py) != (by > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            xc = ax + (py - ay) * (bx - ax) / (by - ay)
        inside ^= straddle & (px < xc)
    return cand[inside]


def bench_lasso(sizes: list[int]) -> None:
    for n in sizes:
        label = f"{n:,}"
        x, y, centres = clustered_map(n)
        v = freehand(centres[0])
        ms_build, index = once(lambda: PointIndex(x, y, np.arange(n)))  # noqa: B023
        record("lasso", label, f"ours: build index (grid {index.grid})", ms_build)
        ref = np.flatnonzero(points_in_lasso(x, y, v))
        wall, cpu, rows = timed(lambda: index.lasso_rows(v))  # noqa: B023
        record(
            "lasso",
            label,
            "ours: grid lasso -> rows",
            wall,
            cpu,
            selected=int(rows.size),
            exact=bool(np.array_equal(np.sort(rows), ref)),
        )
        wall, cpu, rows_s = timed(lambda: index.lasso_rows(v, sort=True), repeat=5)  # noqa: B023
        record(
            "lasso",
            label,
            "ours: grid lasso -> rows, sorted",
            wall,
            cpu,
            exact=bool(np.array_equal(rows_s, ref)),
        )
        wall, cpu, _ = timed(lambda: index.lasso(v), repeat=5)  # noqa: B023
        record("lasso", label, "ours: grid lasso -> ids (int)", wall, cpu)
        wall, cpu, mask = timed(lambda: points_in_lasso(x, y, v), repeat=3)  # noqa: B023
        record("lasso", label, "brute force shapely.contains_xy", wall, cpu, exact=True)
        wall, cpu, rc = timed(lambda: numpy_ray_cast(x, y, v), repeat=3)  # noqa: B023
        record(
            "lasso", label, "numpy even-odd ray cast + bbox", wall, cpu, exact=bool(np.array_equal(rc, ref))
        )
        bench_holoviews(x, y, v, ref, label, n)


def bench_holoviews(x: np.ndarray, y: np.ndarray, v: np.ndarray, ref: np.ndarray, label: str, n: int) -> None:
    """HoloViews' own columnar lasso path (spatialpandas if importable, else its point-by-point shapely loop)."""
    try:
        from holoviews.element.selection import spatial_select_columnar
    except ImportError:
        record("lasso", label, "holoviews spatial_select", float("nan"), note="holoviews not importable")
        return
    geom = "spatialpandas" if find_spec("spatialpandas") else "shapely"
    if geom == "shapely" and n > 2_000_000:
        record(
            "lasso",
            label,
            "holoviews spatial_select (shapely)",
            float("nan"),
            note="skipped: point-by-point loop, ~4 s per million points in the bbox",
        )
        return
    fn = lambda: spatial_select_columnar(x, y, v, geom_method=geom)  # noqa: E731
    first, mask = once(fn)
    reps = 3 if geom == "spatialpandas" else 1
    wall, cpu, mask = timed(fn, repeat=reps, warm=0)
    rows = np.flatnonzero(mask)
    record(
        "lasso",
        label,
        f"holoviews spatial_select ({geom})",
        wall,
        cpu,
        first_call_ms=round(first, 1),
        exact=bool(np.array_equal(rows, ref)),
        mismatches=int(np.setxor1d(rows, ref).size),
    )


# ------------------------------------------------------------------------------------------------------------------
# find similar
# ------------------------------------------------------------------------------------------------------------------
def clustered_vectors(n: int, d: int = 128, k: int = 1000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)).astype(np.float32)
    out = np.empty((n, d), np.float32)
    step = 200_000
    for a in range(0, n, step):
        m = min(step, n - a)
        out[a : a + m] = centres[rng.integers(0, k, m)] + 0.6 * rng.normal(size=(m, d)).astype(np.float32)
    return out


def bench_similar(sizes: list[int], hnsw_1m: bool) -> None:
    from sklearn.neighbors import NearestNeighbors

    for n in sizes:
        label = f"{n:,}x128"
        X = clustered_vectors(n)
        ids = np.array([f"o{i}" for i in range(n)], dtype=object)
        rng = np.random.default_rng(1)
        queries = ids[rng.choice(n, 20, replace=False)]
        ms, exact = once(lambda: SimilarityIndex(method="exact").fit(X, ids))  # noqa: B023
        record("similar", label, "ours exact: fit (normalise)", ms)
        truth = {q: set(exact.query(q, k=20)["id"]) for q in queries}
        it = iter(np.tile(queries, 10))
        wall, cpu, _ = timed(lambda: exact.query(next(it), k=20), repeat=15)  # noqa: B023
        record("similar", label, "ours exact: query top-20", wall, cpu, recall=1.0)
        qv = exact.vectors_[exact.rows_of(queries[:1])][0]
        wall, cpu, _ = timed(lambda: exact._exact_top(qv, 21), repeat=15)  # noqa: B023
        record("similar", label, "ours exact: search only", wall, cpu)
        Xn = exact.vectors_

        def plain_numpy(Xn=Xn, qv=qv):  # the obvious way: a fresh product, argpartition of -s, sort the top
            s = Xn @ qv
            top = np.argpartition(-s, 20)[:21]
            return top[np.argsort(-s[top])]

        wall, cpu, _ = timed(plain_numpy, repeat=15)
        record("similar", label, "plain numpy X @ q + argpartition", wall, cpu)
        methods = [("faiss-ivf", {})]
        if n <= 200_000 or hnsw_1m:
            methods.append(("faiss-hnsw", {}))
        for method, kw in methods:
            ms, ann = once(lambda: SimilarityIndex(method=method, **kw).fit(X, ids))  # noqa: B023
            extra = (
                {"nlist": ann.index_.nlist, "nprobe": ann.index_.nprobe}
                if method == "faiss-ivf"
                else {"M": ann.hnsw_m, "efSearch": ann.ef_search}
            )
            record("similar", label, f"ours {method}: build", ms, **extra)
            recall = np.mean([len(truth[q] & set(ann.query(q, k=20)["id"])) / 20 for q in queries])
            it = iter(np.tile(queries, 10))
            wall, cpu, _ = timed(lambda: ann.query(next(it), k=20), repeat=15)  # noqa: B023
            record(
                "similar", label, f"ours {method}: query top-20", wall, cpu, recall=round(float(recall), 4)
            )
            wall, cpu, _ = timed(lambda: ann.index_.search(qv[None, :], 21), repeat=15)  # noqa: B023
            record("similar", label, f"ours {method}: search only", wall, cpu)
        ms, nn = once(lambda: NearestNeighbors(n_neighbors=21, metric="cosine", algorithm="brute").fit(X))  # noqa: B023
        record("similar", label, "sklearn NearestNeighbors: fit", ms)
        rows = exact.rows_of(queries)
        it = iter(np.tile(rows, 10))
        wall, cpu, _ = timed(lambda: nn.kneighbors(X[next(it)][None, :]), repeat=7)  # noqa: B023
        got = [set(ids[nn.kneighbors(X[r][None, :])[1][0]]) - {ids[r]} for r in rows[:5]]
        recall = np.mean([len(g & truth[ids[r]]) / 20 for g, r in zip(got, rows[:5], strict=True)])
        record(
            "similar", label, "sklearn NearestNeighbors brute cos", wall, cpu, recall=round(float(recall), 4)
        )


# ------------------------------------------------------------------------------------------------------------------
# projection
# ------------------------------------------------------------------------------------------------------------------
JIT_PROBE = textwrap.dedent(
    """
    import json, time, warnings
    warnings.filterwarnings("ignore")
    t0 = time.perf_counter()
    import numpy as np
    from explorer.analysis.projection import Projector
    t1 = time.perf_counter()
    X = np.random.default_rng(0).normal(size=(4096, 32)).astype(np.float32)
    Y = np.random.default_rng(1).normal(size=(4096, 32)).astype(np.float32)
    a = time.perf_counter(); p = Projector(n_epochs=50).fit(X); b = time.perf_counter()
    p.transform(X[:500]); c = time.perf_counter()
    q = Projector(n_epochs=50).fit(Y); d = time.perf_counter()
    q.transform(Y[:500]); e = time.perf_counter()
    print(json.dumps({"import_s": t1 - t0, "first_fit_s": b - a, "first_transform_s": c - b,
                      "second_fit_s": d - c, "second_transform_s": e - d}))
    """
)


def jit_probe(cache_dir: str | None) -> dict[str, float]:
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    repo = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = repo + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run(
        [sys.executable, "-c", JIT_PROBE], capture_output=True, text=True, env=env, timeout=900
    )
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_projection(sizes: list[int], umap_100k: bool, skip_jit: bool) -> None:
    if not skip_jit:
        with tempfile.TemporaryDirectory() as cache:
            for tag, cdir in [
                ("fresh process, empty NUMBA_CACHE_DIR", cache),
                ("fresh process, same NUMBA_CACHE_DIR", cache),
                ("fresh process, default cache", None),
            ]:
                r = jit_probe(cdir)
                record(
                    "umap-jit",
                    "4,096x32",
                    tag,
                    1e3 * r["first_fit_s"],
                    None,
                    first_transform_ms=round(1e3 * r["first_transform_s"], 1),
                    warm_fit_ms=round(1e3 * r["second_fit_s"], 1),
                    warm_transform_ms=round(1e3 * r["second_transform_s"], 1),
                    import_ms=round(1e3 * r["import_s"], 1),
                )
    ms_warm = 1e3 * Projector().warm_up()
    record("umap-jit", "4,096x16", "Projector.warm_up() in this process", ms_warm)
    sizes = list(sizes) + ([100_000] if umap_100k and 100_000 not in sizes else [])
    for n in sizes:
        X = clustered_vectors(n, d=64, k=50)
        label = f"{n:,}x64"
        ms, p = once(lambda: Projector(method="pca").fit(X))  # noqa: B023
        record("projection", label, "PCA fit+transform", ms)
        ms, p = once(lambda: Projector(method="umap").fit(X))  # noqa: B023
        record("projection", label, "UMAP fit (seeded, 1 thread)", ms)
        wall, _, _ = timed(lambda: p.transform(X[:1000]), repeat=3)  # noqa: B023
        record("projection", label, "UMAP transform 1,000 new", wall)


# ------------------------------------------------------------------------------------------------------------------
# anomaly
# ------------------------------------------------------------------------------------------------------------------
def label_latencies(scorer: AnomalyScorer, labels: int = 7) -> tuple[list, list, list]:
    """Seconds to update after one label (normal, anomaly, ... on the current top objects), to then rank the
    next 100 to show, and to rank everything, one entry per label."""
    lat, lat_top, lat_full = [], [], []
    for i, oid in enumerate(scorer.rank(top=labels)):
        w = time.perf_counter()
        scorer.update({oid: "normal" if i % 2 == 0 else "anomaly"})
        u = time.perf_counter()
        scorer.rank(top=100, exclude_labelled=True)
        t = time.perf_counter()
        scorer.rank()
        f = time.perf_counter()
        lat.append(u - w)
        lat_top.append(t - u)
        lat_full.append(f - t)
    return lat, lat_top, lat_full


def bench_anomaly(sizes: list[int]) -> None:
    rng = np.random.default_rng(9)
    small = rng.normal(size=(2000, 64)).astype(np.float32)
    ms, warm = once(lambda: AnomalyScorer(method="iforest").fit(small, np.arange(2000)).update({0: "normal"}))
    record("anomaly", "2,000x64", "first use in process (numba compile)", ms)
    for n in sizes:
        label = f"{n:,}x64"
        rng = np.random.default_rng(0)
        X = rng.normal(size=(n, 64)).astype(np.float32)
        ids = np.array([f"o{i}" for i in range(n)], dtype=object)
        ms, sc = once(lambda: AnomalyScorer(method="iforest").fit(X, ids))  # noqa: B023
        record("anomaly", label, "iforest: fit + score all", ms)
        new = X[: min(n, 100_000)]
        wall, cpu, _ = timed(lambda: sc.score_samples(new), repeat=3)  # noqa: B023
        record("anomaly", label, f"iforest: score_samples {len(new):,} new", wall, cpu)
        med = lambda v: 1e3 * statistics.median(v)  # noqa: E731
        lat, lat_top, lat_full = label_latencies(sc)
        record("anomaly", label, "AAD: update after 1 label", med(lat), None, labels_at_end=len(sc.labels_))
        record("anomaly", label, "AAD: update + next 100 to show", med(lat) + med(lat_top))
        record("anomaly", label, "AAD: update + full ranking", med(lat) + med(lat_full))
        if n <= 200_000:
            ms, kn = once(lambda: AnomalyScorer(method="knn").fit(X, ids))  # noqa: B023
            record("anomaly", label, "knn: fit + score all (faiss)", ms)
            top = kn.rank(top=10)
            ws = []
            for oid in top[:5]:
                w = time.perf_counter()
                kn.update({oid: "normal"})
                ws.append(time.perf_counter() - w)
            record("anomaly", label, "kernel feedback: update after 1 label", med(ws))
        # the app's live ranking: kNN kernel feedback seeded with saved scores (no kNN search), with and without
        # the saved detectors' tail significances as side features (5 detectors, as the simulated survey has)
        side = significances({f"d{j}": rng.gamma(2.0, size=n) for j in range(5)})
        for name, extra in (("live ranking", None), ("live ranking + 5 detector significances", side)):
            ms, live = once(lambda: AnomalyScorer().fit(X, ids, prior_scores=sc.prior_scores_,  # noqa: B023
                                                        side_features=extra))  # noqa: B023
            record("anomaly", label, f"{name}: fit from saved scores", ms)
            lat, lat_top, lat_full = label_latencies(live)
            record("anomaly", label, f"{name}: update after 1 label", med(lat))
            record("anomaly", label, f"{name}: update + next 100 to show", med(lat) + med(lat_top))
            record("anomaly", label, f"{name}: update + full ranking", med(lat) + med(lat_full))


def bench_discovery(n: int = 20_000, budget: int = 100) -> None:
    """Simulated labelling session: artefacts (boring outliers) vs true anomalies, with and without feedback.

    2 % artefacts sit 6-10 sigma out on one axis (like saturated pixels); 0.2 % true anomalies form a rarer, milder
    group in three other dimensions. An oracle labels the top unlabelled object each step.
    """
    rng = np.random.default_rng(5)
    d = 16
    X = rng.normal(size=(n, d)).astype(np.float32)
    n_art, n_anom = int(0.02 * n), int(0.002 * n)
    pick = rng.choice(n, n_art + n_anom, replace=False)
    anom, art = pick[:n_anom], pick[n_anom:]
    X[art, 0] += rng.choice([-1, 1], n_art) * rng.uniform(6, 10, n_art)
    X[anom, 1:4] += rng.normal(size=(n_anom, 3)) * 0.3 + 3.5
    ids = np.array([f"o{i}" for i in range(n)])
    truth = set(ids[anom])
    static = AnomalyScorer(method="iforest").fit(X, ids).rank(top=budget)
    found = {}
    for feedback in ("aad", "kernel"):
        sc = AnomalyScorer(method="iforest", feedback=feedback).fit(X, ids)
        seen = []
        w = time.perf_counter()
        for _ in range(budget):
            nxt = sc.rank(top=1, exclude_labelled=True)[0]
            seen.append(nxt)
            sc.update({nxt: "anomaly" if nxt in truth else "artefact"})
        found[feedback] = (len(set(seen) & truth), 1e3 * (time.perf_counter() - w) / budget)
    record(
        "discovery",
        f"{n:,}x{d}",
        f"anomalies found in first {budget} viewed",
        found["aad"][1],
        static_iforest=len(set(static) & truth),
        aad_feedback=found["aad"][0],
        kernel_feedback=found["kernel"][0],
        planted=n_anom,
        random=round(budget * n_anom / n, 2),
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--sizes", choices=sorted(SIZES), default="full", help="problem sizes (quick = 10x smaller)"
    )
    ap.add_argument("--json", type=Path, help="write all rows to this JSON file")
    ap.add_argument("--only", nargs="*", choices=["lasso", "similar", "projection", "anomaly", "discovery"])
    ap.add_argument("--umap-100k", action="store_true", help="also fit UMAP on 100k points (~30-60 s)")
    ap.add_argument("--hnsw-1m", action="store_true", help="also build HNSW at 1M (~90 s on 2 cores)")
    ap.add_argument("--skip-jit", action="store_true", help="skip the fresh-process UMAP JIT probes")
    args = ap.parse_args(argv)
    sizes = SIZES[args.sizes]
    only = set(args.only or ["lasso", "similar", "projection", "anomaly", "discovery"])
    print(f"{'task':<14}{'size':<12}{'method':<34}{'wall ms':>11}{'cpu ms':>11}  notes")
    start = time.perf_counter()
    if "lasso" in only:
        bench_lasso(sizes["lasso"])
    if "similar" in only:
        bench_similar(sizes["similar"], args.hnsw_1m)
    if "anomaly" in only:
        bench_anomaly(sizes["anomaly"])
    if "discovery" in only:
        bench_discovery()
    if "projection" in only:
        bench_projection(sizes["umap"], args.umap_100k, args.skip_jit)
    total = time.perf_counter() - start
    print(f"total {total:.0f} s; cpu count {os.cpu_count()}; numba threads {numba_threads()}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        meta = {"total_s": total, "cpu_count": os.cpu_count(), "sizes": args.sizes, "python": sys.version}
        args.json.write_text(json.dumps({"meta": meta, "rows": ROWS}, indent=1, default=float))


def numba_threads() -> int:
    import numba

    return numba.get_num_threads()


if __name__ == "__main__":
    main()
