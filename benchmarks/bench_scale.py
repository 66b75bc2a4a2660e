"""Benchmark a 1M / 10M-object workspace: build it stage by stage, then measure what a server does with it.

Every stage runs in a fresh subprocess, so its time and peak memory are its own:

- ``simulate``: the partitioned simulated survey (on-demand cutouts and light curves);
- ``vectors``: the embeddings-only simulation (clusters by class, rare oddities; float16 by default);
- ``score`` / ``map``: anomaly scores and the UMAP map (fit on a sample, the rest in partitions), in process or
  on Dask (``--scheduler local:2``);
- ``index``: the IVF-SQ8 FAISS index saved in the workspace;
- ``serve``: load the map data the way a server would (:class:`explorer.analysis.map_data.MapData`), then time
  lasso -> ids, find-similar (with recall@20 against exact search), and Datashader aggregation;
- ``app``: ``explorer serve`` itself: time to the first page and the server's RSS.

Other commands: ``compare`` (in-process vs Dask at the same number of cores: scoring, map placement, and
embedding with a default-size image encoder on ``--embed-n`` objects), ``umap-quality`` (sample fit + placement
against a full fit), ``float16`` (search quality of float16 vs float32 vectors).

Usage::

    python benchmarks/bench_scale.py build --workspace /tmp/ws10m --n 10000000 --json out.json
    python benchmarks/bench_scale.py compare --workspace /tmp/ws1m --json cmp.json
    python benchmarks/bench_scale.py umap-quality --workspace /tmp/ws1m --n 100000 --sample 20000

Columns: wall seconds, CPU seconds of this process and of its exited children (Dask workers), the 1-minute load
average at the end (the machine is shared: wall times stretch with it, CPU seconds do not), peak RSS of this
process (and its anonymous part, without memory-mapped file pages), and peak RSS of the whole process tree
(Dask workers included), in MB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TQDM_DISABLE", "1")


# ------------------------------------------------------------------------------------------------ measuring
class PeakMemory:
    """Sample this process's RSS (and anonymous RSS) and the whole tree's RSS every ``interval`` seconds."""

    def __init__(self, interval: float = 0.1):
        import psutil

        self.proc = psutil.Process()
        self.interval = interval
        self.peak_rss = self.peak_anon = self.peak_tree = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        status = Path("/proc/self/status").read_text().split("\n")
        fields = {
            line.split(":")[0]: line.split()[1] for line in status if line.startswith(("VmRSS", "RssAnon"))
        }
        rss, anon = int(fields.get("VmRSS", 0)) * 1024, int(fields.get("RssAnon", 0)) * 1024
        tree = rss
        for child in self.proc.children(recursive=True):
            try:
                tree += child.memory_info().rss
            except Exception:  # noqa: BLE001 - a worker may exit between listing and reading
                pass
        self.peak_rss, self.peak_anon = max(self.peak_rss, rss), max(self.peak_anon, anon)
        self.peak_tree = max(self.peak_tree, tree)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            time.sleep(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self.peak_rss = max(self.peak_rss, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)

    def row(self) -> dict[str, float]:
        mb = 1 << 20
        return {
            "peak_rss_mb": round(self.peak_rss / mb),
            "peak_anon_mb": round(self.peak_anon / mb),
            "peak_tree_mb": round(self.peak_tree / mb),
        }


def rss_now() -> dict[str, float]:
    status = Path("/proc/self/status").read_text().split("\n")
    f = {
        line.split(":")[0]: int(line.split()[1]) // 1024
        for line in status
        if line.startswith(("VmRSS", "RssAnon", "RssFile"))
    }
    return {"rss_mb": f.get("VmRSS"), "anon_mb": f.get("RssAnon"), "file_mb": f.get("RssFile")}


def timed(fn, repeat: int = 15, warm: int = 2) -> tuple[float, float, Any]:
    """Median wall ms, median CPU ms of this thread, and the last result of ``fn()``.

    On a shared machine the wall time of a 1-2 ms call includes time the thread waited for a core; the thread's
    CPU time is what the call costs on a core of its own (for single-threaded calls, as lasso and one query are).
    """
    out = None
    for _ in range(warm):
        out = fn()
    times, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.thread_time()
        out = fn()
        cpu.append(1e3 * (time.thread_time() - c))
        times.append(1e3 * (time.perf_counter() - t))
    return statistics.median(times), statistics.median(cpu), out


def timed_ms(fn, repeat: int = 15, warm: int = 2) -> tuple[float, Any]:
    wall, _, out = timed(fn, repeat, warm)
    return wall, out


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


# ------------------------------------------------------------------------------------------------ stages
def stage_simulate(ws_path: str, a: argparse.Namespace) -> dict:
    from explorer.data.simulated_survey import add_simulated_partitioned
    from explorer.workspace import Workspace

    ws = Workspace.create(ws_path)
    added = add_simulated_partitioned(ws, a.n, seed=a.seed, progress=False)
    return {
        "objects": added["objects"],
        "cutouts": added["image"],
        "lightcurves": added["lightcurve"],
        "disk_mb": round(du(ws.path) / 2**20, 1),
    }


def stage_vectors(ws_path: str, a: argparse.Namespace) -> dict:
    from explorer.data.synthetic_vectors import add_synthetic_embeddings
    from explorer.workspace import Workspace

    ws = Workspace.open(ws_path)
    version = add_synthetic_embeddings(ws, dim=a.dim, seed=a.seed, dtype=a.dtype, progress=False)
    return {
        "version": version,
        "dim": a.dim,
        "dtype": a.dtype,
        "disk_mb": round(du(ws.path / "embeddings" / version) / 2**20, 1),
    }


def stage_score(ws_path: str, a: argparse.Namespace) -> dict:
    from explorer.analysis.workspace_ops import score_workspace
    from explorer.workspace import Workspace

    ws = Workspace.open(ws_path)
    version = score_workspace(  # the embeddings' scorer: what this benchmark has measured since session 2
        ws, method=a.score_method, sample_size=a.score_sample, scheduler=a.scheduler, progress=False,
        detectors=False,
    )
    return {
        "version": version,
        "method": ws.versions("scores")[version]["method"],
        "scheduler": a.scheduler or "in-process",
        "fit_sample": a.score_sample,
    }


def stage_map(ws_path: str, a: argparse.Namespace) -> dict:
    from explorer.analysis.workspace_ops import map_workspace
    from explorer.workspace import Workspace

    ws = Workspace.open(ws_path)
    t = time.perf_counter()
    version = map_workspace(
        ws,
        method="umap",
        sample_size=a.map_sample,
        placement=a.placement,
        scheduler=a.scheduler,
        progress=False,
    )
    return {
        "version": version,
        "scheduler": a.scheduler or "in-process",
        "fit_sample": a.map_sample,
        "placement": a.placement,
        "seconds_inner": round(time.perf_counter() - t, 1),
    }


def stage_index(ws_path: str, a: argparse.Namespace) -> dict:
    from explorer.analysis.index_store import build_index
    from explorer.workspace import Workspace

    ws = Workspace.open(ws_path)
    path = build_index(ws, nprobe=a.nprobe, progress=False)
    return {
        "index_mb": round(path.stat().st_size / 2**20, 1),
        **json.loads(path.with_suffix(".json").read_text()),
    }


def _polygon(cx: float, cy: float, r: float, m: int = 64, seed: int = 0) -> np.ndarray:
    """A wobbly freehand-like outline with ``m`` vertices."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 2 * np.pi, m, endpoint=False)
    rr = r * (1 + 0.15 * np.sin(3 * t + rng.uniform(0, 6)) + 0.05 * rng.uniform(-1, 1, m))
    return np.column_stack([cx + rr * np.cos(t), cy + rr * np.sin(t)])


def stage_serve(ws_path: str, a: argparse.Namespace) -> dict:
    """Load the map data as a server does, then time lasso, find-similar and Datashader aggregation.

    ``--serve-parts`` picks which of ``lasso``, ``similar``, ``datashader`` run (a loaded machine may need them
    in separate runs of under 10 minutes each).
    """
    from explorer.analysis.map_data import MapData
    from explorer.workspace import Workspace

    parts = set(a.serve_parts.split(","))
    out: dict[str, Any] = {}
    ws = Workspace.open(ws_path)
    t = time.perf_counter()
    data = MapData.load(ws)
    out["load_s"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    sim = data.similarity()
    out["index_load_s"] = round(time.perf_counter() - t, 2)
    out["rss_after_load"] = rss_now()
    out["n"] = len(data)
    rng = np.random.default_rng(0)
    if "lasso" in parts:
        out.update(_serve_lasso(data, rng))
    rng = np.random.default_rng(1)
    if "similar" in parts:
        out.update(_serve_similar(data, sim, rng, a))
    if "datashader" in parts:
        out.update(_serve_datashader(data))
    out["rss_end"] = rss_now()
    return out


def _serve_lasso(data, rng: np.random.Generator) -> dict:
    """Outlines around random objects, sized to hold from ~0.1% to ~25% of the map: rows, sorted rows, ids."""
    n, xy = len(data), data.xy
    span = float(np.subtract(*np.percentile(xy[::97, 0], [99, 1])))
    rows_ms, sorted_ms, arrow_ms, ids_ms, sizes, cpu_ms, sorted_cpu_ms = [], [], [], [], [], [], []
    for k, frac in enumerate((0.01, 0.03, 0.1, 0.2)):
        for j in range(3):
            c = xy[int(rng.integers(n))]
            poly = _polygon(float(c[0]), float(c[1]), frac * span, seed=10 * k + j)
            ms, ms_cpu, rows = timed(lambda poly=poly: data.lasso_rows(poly), repeat=5, warm=1)
            ms_sorted, ms_sorted_cpu, _ = timed(
                lambda poly=poly: data.lasso_rows(poly, sort=True), repeat=3, warm=1
            )
            cpu_ms.append(ms_cpu)
            sorted_cpu_ms.append(ms_sorted_cpu)
            ms_arrow, _ = timed_ms(
                lambda poly=poly: data.ids.take_arrow(data.lasso_rows(poly)), repeat=3, warm=1
            )
            ms_ids, _ = timed_ms(lambda poly=poly: data.lasso(poly), repeat=3, warm=1)
            rows_ms.append(ms)
            sorted_ms.append(ms_sorted)
            arrow_ms.append(ms_arrow)
            ids_ms.append(ms_ids)
            sizes.append(len(rows))
    table = sorted(zip(sizes, rows_ms, sorted_ms, arrow_ms, ids_ms, cpu_ms, sorted_cpu_ms, strict=True))
    return {
        "lasso": [
            {
                "selected": s,
                "rows_ms": round(r, 1),
                "rows_cpu_ms": round(rc, 1),
                "rows_sorted_ms": round(o, 1),
                "rows_sorted_cpu_ms": round(oc, 1),
                "ids_arrow_ms": round(a_, 1),
                "ids_str_ms": round(i, 1),
            }
            for s, r, o, a_, i, rc, oc in table
        ],
        "lasso_rows_cpu_ms_max": round(max(cpu_ms), 1),
        "lasso_sorted_cpu_ms_max": round(max(sorted_cpu_ms), 1),
        "lasso_rows_ms_median": round(statistics.median(rows_ms), 1),
        "lasso_rows_ms_max": round(max(rows_ms), 1),
        "lasso_sorted_ms_median": round(statistics.median(sorted_ms), 1),
        "lasso_sorted_ms_max": round(max(sorted_ms), 1),
    }


def exact_top(vectors: np.ndarray, queries: np.ndarray, exclude: np.ndarray, k: int = 20) -> list[set]:
    """Exact cosine top-``k`` rows per query (each query's own row excluded), in one chunked pass."""
    Q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    best_s = np.full((len(Q), 0), -np.inf, np.float32)
    best_r = np.empty((len(Q), 0), np.int64)
    for a in range(0, len(vectors), 1 << 20):
        X = np.asarray(vectors[a : a + (1 << 20)], dtype=np.float32)
        X /= np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-30)
        S = Q @ X.T
        top = np.argpartition(-S, k, axis=1)[:, : k + 1]
        best_s = np.concatenate((best_s, np.take_along_axis(S, top, 1)), axis=1)
        best_r = np.concatenate((best_r, top + a), axis=1)
        keep = np.argsort(-best_s, axis=1)[:, : k + 1]
        best_s, best_r = np.take_along_axis(best_s, keep, 1), np.take_along_axis(best_r, keep, 1)
    return [set(r[r != e][:k].tolist()) for r, e in zip(best_r, exclude, strict=True)]


def _serve_similar(data, sim, rng: np.random.Generator, a: argparse.Namespace) -> dict:
    """Find-similar latency (whole query, and the FAISS candidate search alone) and recall@20, per nprobe."""
    n = len(data)
    qrows = np.sort(rng.choice(n, a.recall_queries, replace=False))
    queries = data.ids.take(qrows)
    directions = np.stack([sim.query_direction([q]) for q in queries])
    t = time.perf_counter()
    truth = exact_top(sim.vectors, directions, qrows)
    out: dict[str, Any] = {"exact_truth_s": round(time.perf_counter() - t, 1)}
    sweep = []
    default_nprobe = sim.index.nprobe if sim.index is not None else None
    n_cand = int(sim.meta.get("rerank", 200))
    nprobes = [int(v) for v in a.nprobes.split(",")] if sim.index is not None else [None]
    for nprobe in nprobes:
        if nprobe is not None:
            sim.index.nprobe = nprobe
        runs = [timed(lambda q=q: sim.query([q], k=20), repeat=5, warm=1) for q in queries]
        lat, lat_cpu = [r[0] for r in runs], [r[1] for r in runs]
        # the FAISS candidate search alone (the rest of a query: id lookup, exact re-ranking, the result frame)
        faiss_runs = (
            [timed(lambda v=v: sim.index.search(v[None], n_cand), repeat=5, warm=1) for v in directions]
            if sim.index is not None
            else [(float("nan"), float("nan"), None)]
        )
        got = [set(sim.rows_of(sim.query([q], k=20)["id"]).tolist()) for q in queries]
        recall = [len(g & t_) / 20 for g, t_ in zip(got, truth, strict=True)]
        sweep.append(
            {
                "nprobe": nprobe,
                "ms_median": round(statistics.median(lat), 2),
                "ms_p90": round(float(np.percentile(lat, 90)), 2),
                "cpu_ms_median": round(statistics.median(lat_cpu), 2),
                "cpu_ms_p90": round(float(np.percentile(lat_cpu, 90)), 2),
                "faiss_ms_median": round(statistics.median([r[0] for r in faiss_runs]), 2),
                "faiss_cpu_ms_median": round(statistics.median([r[1] for r in faiss_runs]), 2),
                "recall_at_20": round(float(np.mean(recall)), 4),
                "recall_min": min(recall),
                "load_average": os.getloadavg()[0],
            }
        )
        print(json.dumps(sweep[-1]), file=sys.stderr, flush=True)
    if default_nprobe is not None:
        sim.index.nprobe = default_nprobe
    chosen = next((r for r in sweep if r["nprobe"] == default_nprobe), sweep[0])
    out.update(
        similar_sweep=sweep,
        similar_default_nprobe=default_nprobe,
        similar_cpu_ms_median=chosen["cpu_ms_median"],
        similar_ms_median=chosen["ms_median"],
        similar_ms_p90=chosen["ms_p90"],
        similar_recall_at_20=chosen["recall_at_20"],
        similar_method=sim.method,
    )
    return out


def _serve_datashader(data) -> dict:
    """Count and mean score on 800 x 800 (what a rasterized map does per pan/zoom)."""
    import datashader as ds

    out: dict[str, Any] = {}
    frame = data.points()
    canvas = ds.Canvas(plot_width=800, plot_height=800)
    t = time.perf_counter()
    canvas.points(frame, "x", "y", agg=ds.count())
    out["datashader_first_ms"] = round(1e3 * (time.perf_counter() - t))
    out["datashader_count_ms"], _ = timed_ms(lambda: canvas.points(frame, "x", "y", agg=ds.count()), repeat=5)
    if "score" in frame:
        out["datashader_mean_score_ms"], _ = timed_ms(
            lambda: canvas.points(frame, "x", "y", agg=ds.mean("score")), repeat=5
        )
    return out


def stage_app(ws_path: str, a: argparse.Namespace) -> dict:
    """``explorer serve``: seconds to the first page (a fresh session) and to a second one; server RSS."""
    import socket
    import urllib.request

    import psutil

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [
        sys.executable,
        "-m",
        "explorer.cli",
        "serve",
        ws_path,
        "--port",
        str(port),
        "--address",
        "127.0.0.1",
    ]
    t0 = time.perf_counter()
    log = open(Path(ws_path).parent / f"serve-{port}.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    out: dict[str, Any] = {"cmd": " ".join(cmd[2:])}
    peak = [0]
    ps = psutil.Process(proc.pid)
    stop = threading.Event()

    def guard() -> None:  # the server may not grow past --app-max-rss-mb: the machine is shared
        while not stop.is_set() and proc.poll() is None:
            try:
                rss = ps.memory_info().rss + sum(c.memory_info().rss for c in ps.children(recursive=True))
            except psutil.Error:
                return
            peak[0] = max(peak[0], rss)
            if rss > a.app_max_rss_mb * 2**20:
                out["error"] = (
                    f"stopped: server RSS passed {a.app_max_rss_mb:.0f} MB after {time.perf_counter() - t0:.0f} s"
                )
                proc.kill()
                return
            time.sleep(0.25)

    watchdog = threading.Thread(target=guard, daemon=True)
    watchdog.start()
    try:
        url = f"http://127.0.0.1:{port}/"
        first = listening = None
        while time.perf_counter() - t0 < a.app_timeout:
            if proc.poll() is not None:
                out.setdefault("error", f"server exited with {proc.returncode}")
                break
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    listening = time.perf_counter() - t0
                break
            except OSError:
                time.sleep(0.5)
        if listening is not None:  # data loaded and warmed up; now one real page (a new session)
            out["listening_s"] = round(listening, 1)
            with urllib.request.urlopen(url, timeout=a.app_timeout) as r:
                r.read()
            first = time.perf_counter() - t0
        out["first_page_s"] = None if first is None else round(first, 1)
        if first is not None:
            t = time.perf_counter()
            with urllib.request.urlopen(url, timeout=a.app_timeout) as r:
                r.read()
            out["second_page_s"] = round(time.perf_counter() - t, 2)
            rss = ps.memory_info().rss
            out["server_rss_mb"] = round(rss / 2**20)
        out["server_peak_rss_mb_sampled"] = round(peak[0] / 2**20)
    except OSError as err:
        out.setdefault("error", f"page request failed: {err}")
    finally:
        stop.set()
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    return out


def stage_embed(ws_path: str, a: argparse.Namespace) -> dict:
    """Embed the first ``--embed-n`` cutouts with a default-size image encoder (random weights: same cost)."""
    import torch

    from explorer.models.checkpoints import save_checkpoint
    from explorer.models.embed import Job, plan, run_jobs
    from explorer.models.image_encoder import ImageCNN, ImageModelConfig
    from explorer.workspace import Workspace

    ws = Workspace.open(ws_path)
    target = ws.checkpoint_dir("bench-image")
    if not target.exists():
        torch.manual_seed(0)
        config = ImageModelConfig(bands=3)
        save_checkpoint(target, ImageCNN(config).eval(), config.to_dict())
    if a.scheduler is None:
        torch.set_num_threads(a.threads)
    jobs = [j for j in plan(ws, image_model="bench-image") if j.modality == "image"]
    job = Job(jobs[0].key, "image", jobs[0].image_set, jobs[0].checkpoint, jobs[0].ids[: a.embed_n])
    t = time.perf_counter()
    vecs = run_jobs(ws, [job], scheduler=a.scheduler, progress=False)[job.key]
    secs = time.perf_counter() - t
    np.save(Path(ws_path).parent / f"embed-{'dask' if a.scheduler else 'local'}.npy", vecs[:2048])
    return {
        "objects": len(vecs),
        "seconds_inner": round(secs, 1),
        "objects_per_s": round(len(vecs) / secs, 1),
        "scheduler": a.scheduler or f"in-process ({a.threads} torch threads)",
    }


def stage_app_session(ws_path: str, a: argparse.Namespace) -> dict:
    """What two dashboard sessions do in one server process (the app's own Python API, no browser): build the
    pages, lasso a region, find objects similar to the focused one, colour the map by score; RSS after each."""
    import psutil
    from bokeh.document import Document

    from explorer.analysis.selection import Selection
    from explorer.app.explorer import Explorer

    proc = psutil.Process()
    out: dict[str, Any] = {}

    def mark(step: str) -> None:  # RSS, and its anonymous part (the rest: pages of memory-mapped files)
        out[f"rss_{step}_mb"] = round(proc.memory_info().rss / 2**20)
        status = Path("/proc/self/status")
        if status.exists():
            anon = next((ln for ln in status.read_text().splitlines() if ln.startswith("RssAnon:")), None)
            if anon:
                out[f"anon_{step}_mb"] = round(int(anon.split()[1]) / 1024)

    t = time.perf_counter()
    apps = []
    for user in ("alice", "bob"):
        app = Explorer(ws_path, user=user, background=False)
        app.__panel__().get_root(Document())
        apps.append(app)
    out["two_pages_s"] = round(time.perf_counter() - t, 1)
    out["lean_ids"] = bool(apps[0].data.catalog.lean)
    mark("pages")
    app = apps[0]
    x0, y0, x1, y1 = app.data.index.bounds
    row = len(app.data.frame) // 3  # centred on an object, so the outline is never empty
    cx, cy = float(app.data.frame["x"].iloc[row]), float(app.data.frame["y"].iloc[row])
    poly = _polygon(cx, cy, (x1 - x0) / 20)
    ms, _ = timed_ms(
        lambda: app.session.select(Selection.lasso(poly, app.data.map_version)), repeat=5, warm=1
    )
    out["lasso_to_session_ms"], out["lasso_selected"] = round(ms, 1), app.session.n_selected
    mark("lasso")
    focus = str(app.session.selected_ids[0])

    def similar():
        app.session.focus(focus)
        return app.similar.from_focused()

    ms, result = timed_ms(similar, repeat=5, warm=1)
    out["similar_to_session_ms"], out["similar_method"] = round(ms, 1), app.data.similarity_index().method
    out["similar_found"] = 0 if result is None else len(result)
    mark("similar")
    for a_ in apps:
        a_.session.colour_by = "anomaly score" if "anomaly score" in a_.data.colour_options() else "density"
        a_.map.__panel__()
    mark("colour")
    return out


STAGES = {
    "app-session": stage_app_session,
    "simulate": stage_simulate,
    "vectors": stage_vectors,
    "score": stage_score,
    "map": stage_map,
    "index": stage_index,
    "serve": stage_serve,
    "app": stage_app,
    "embed": stage_embed,
}


def run_stage_here(name: str, a: argparse.Namespace) -> None:
    """Inside the child process: run one stage and print one JSON line."""
    t, c = time.perf_counter(), time.process_time()
    with PeakMemory() as mem:
        extra = STAGES[name](a.workspace, a)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # Dask nannies and workers, once they have exited
    row = {
        "stage": name,
        "seconds": round(time.perf_counter() - t, 1),
        "cpu_seconds": round(time.process_time() - c, 1),
        "worker_cpu_seconds": round(kids.ru_utime + kids.ru_stime, 1),
        "load_average": os.getloadavg()[0],
        **mem.row(),
        **extra,
    }
    print("STAGE-RESULT " + json.dumps(row, default=str), flush=True)


def run_stage(name: str, a: argparse.Namespace, **overrides) -> dict:
    """Run one stage in a fresh Python process and return its row."""
    args = {**vars(a), **overrides}
    cmd = [sys.executable, __file__, "_stage", name]
    for key, value in args.items():
        if key in ("command", "stage", "json") or value is None or value is False:
            continue
        cmd += [f"--{key.replace('_', '-')}"] + ([] if value is True else [str(value)])
    print(f"# {name} {overrides or ''} ...", file=sys.stderr, flush=True)
    res = subprocess.run(cmd, capture_output=True, text=True)
    line = next((ln for ln in res.stdout.splitlines() if ln.startswith("STAGE-RESULT ")), None)
    if line is None:
        sys.stderr.write(res.stdout[-3000:] + res.stderr[-5000:])
        return {"stage": name, "error": f"exit {res.returncode}"}
    row = json.loads(line[len("STAGE-RESULT ") :])
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


# ------------------------------------------------------------------------------------------------ commands
def cmd_build(a: argparse.Namespace) -> list[dict]:
    rows = []
    for name in a.stages.split(","):
        rows.append(run_stage(name, a))
    return rows


def _worker_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _worker_peak_rss_mb(reset: bool = False) -> float:
    """Peak RSS of this (worker) process in MB since the last reset (Linux ``VmHWM``; reset via clear_refs)."""
    status = Path("/proc/self/status").read_text()
    peak = next(int(ln.split()[1]) for ln in status.splitlines() if ln.startswith("VmHWM")) / 1024
    if reset:
        Path("/proc/self/clear_refs").write_text("5")
    return peak


def _warm_worker() -> None:
    """What a long-running worker has imported already: the scorer, the placer, the encoders."""
    import explorer.analysis.anomaly  # noqa: F401
    import explorer.analysis.placement  # noqa: F401
    import explorer.models.embed  # noqa: F401


def cmd_compare(a: argparse.Namespace) -> list[dict]:
    """In process vs Dask with as many single-thread workers as cores given to the in-process run.

    With ``--warm-cluster`` the LocalCluster is started (and its workers import the package) once, before the
    timed stages, as a long-running cluster would be; otherwise each Dask stage starts its own.
    """
    rows = []
    cluster = client = None
    sched = f"local:{a.threads}"
    if a.warm_cluster:
        from distributed import Client, LocalCluster

        cluster = LocalCluster(
            n_workers=a.threads, threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = Client(cluster)
        client.run(_warm_worker)
        sched = cluster.scheduler_address
    try:
        for name in a.stages.split(","):
            for s in (None, sched):
                before = sum(client.run(_worker_cpu).values()) if client is not None and s else 0.0
                if client is not None and s:
                    client.run(_worker_peak_rss_mb, reset=True)
                rows.append(run_stage(name, a, scheduler=s))
                if s is not None and client is not None:
                    rows[-1]["worker_cpu_seconds"] = round(sum(client.run(_worker_cpu).values()) - before, 1)
                    rows[-1]["worker_peak_rss_mb"] = round(max(client.run(_worker_peak_rss_mb).values()))
                    rows[-1]["scheduler"] = f"warm LocalCluster ({a.threads} workers)"
            if len(rows) >= 2 and rows[-2].get("seconds") and rows[-1].get("seconds"):
                rows[-1]["dask_overhead_pct"] = round(
                    100 * (rows[-1]["seconds"] / rows[-2]["seconds"] - 1), 1
                )
    finally:
        if client is not None:
            client.close()
            cluster.close()
    return rows


def cmd_umap_quality(a: argparse.Namespace) -> list[dict]:
    """Full UMAP fit on ``--n`` objects vs fit on ``--sample`` + placement (UMAP transform, kNN): quality and time."""
    from sklearn.manifold import trustworthiness

    from explorer.analysis.distributed import sample_rows, take_rows
    from explorer.analysis.index_store import embedding_files
    from explorer.analysis.placement import KnnPlacer
    from explorer.analysis.projection import Projector
    from explorer.workspace import Workspace

    ws = Workspace.open(a.workspace)
    _, path, ids_path, _ = embedding_files(ws)
    X_all = np.load(path, mmap_mode="r")
    rows = sample_rows(len(X_all), a.n, 7)
    X = take_rows(X_all, rows)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    import pyarrow.parquet as pq

    cat = pq.read_table(Path(a.workspace) / ws.manifest["catalog"], columns=["class"])["class"]
    labels = np.asarray(cat.to_numpy(zero_copy_only=False)).astype(str)[rows]
    Projector(random_state=0).warm_up(4096, X.shape[1])
    maps, times = {}, {}
    t = time.perf_counter()
    maps["full fit"] = Projector(random_state=42).fit_transform(X)
    times["full fit"] = time.perf_counter() - t
    for size in (int(v) for v in str(a.sample).split(",")):
        fit = sample_rows(len(X), size, 42)
        rest = np.setdiff1d(np.arange(len(X)), fit)
        t = time.perf_counter()
        proj = Projector(random_state=42).fit(X[fit])
        t_fit = time.perf_counter() - t
        for how, placer in (
            ("umap transform", proj),
            ("knn placement", KnnPlacer().fit(X[fit], proj.embedding_)),
        ):
            name = f"fit {size} + {how}"
            t = time.perf_counter()
            coords = np.empty((len(X), 2), np.float32)
            coords[fit] = proj.embedding_
            coords[rest] = placer.transform(X[rest])
            placed = time.perf_counter() - t
            times[name] = t_fit + placed
            times[name + " per 1k"] = 1e6 * placed / len(rest)  # ms per 1,000 objects placed
            maps[name] = coords
    probe = sample_rows(len(X), a.probe, 3)
    import faiss

    hi = faiss.IndexFlatIP(X.shape[1])
    hi.add(X)
    _, nn_hi = hi.search(X[probe], 16)
    out = []
    for name, coords in maps.items():
        lo = faiss.IndexFlatL2(2)
        lo.add(np.ascontiguousarray(coords, dtype=np.float32))
        _, nn_lo = lo.search(np.ascontiguousarray(coords[probe], dtype=np.float32), 16)
        keep = [len(set(a_[1:]) & set(b_[1:])) / 15 for a_, b_ in zip(nn_hi, nn_lo, strict=True)]
        same = (labels[nn_lo[:, 1:]] == labels[probe][:, None]).mean()
        tw = trustworthiness(X[probe], coords[probe], n_neighbors=15, metric="cosine")
        out.append(
            {
                "stage": "umap-quality",
                "map": name,
                "n": len(X),
                "seconds": round(times[name], 1),
                "placement_ms_per_1k": round(times.get(name + " per 1k", float("nan")), 1),
                "knn15_preserved": round(float(np.mean(keep)), 4),
                "class_agreement_knn15": round(float(same), 4),
                "trustworthiness_15": round(float(tw), 4),
            }
        )
        print(json.dumps(out[-1]), file=sys.stderr, flush=True)
    return out


def cmd_float16(a: argparse.Namespace) -> list[dict]:
    """Exact top-20 with the stored float16 vectors vs the same vectors regenerated in float32."""
    from explorer.analysis.id_table import IdTable
    from explorer.analysis.index_store import StoredIndex, embedding_files
    from explorer.data.synthetic_vectors import add_synthetic_embeddings
    from explorer.workspace import Workspace

    ws = Workspace.open(a.workspace)
    current = ws.current("embeddings")
    meta = ws.versions("embeddings")[current]["synthetic"]
    v32 = add_synthetic_embeddings(ws, dim=meta["dim"], seed=meta["seed"], dtype="float32", progress=False)
    ws.set_current("embeddings", current)
    _, p16, ids_path, _ = embedding_files(ws, version=current)
    _, p32, _, _ = embedding_files(ws, version=v32)
    ids = IdTable.read(ids_path)
    i16 = StoredIndex(np.load(p16, mmap_mode="r"), ids, None, {})
    i32 = StoredIndex(np.load(p32, mmap_mode="r"), ids, None, {})
    rng = np.random.default_rng(5)
    qs = ids.take(rng.choice(len(ids), a.recall_queries, replace=False))
    rec = [len(set(i16.query([q], k=20)["id"]) & set(i32.query([q], k=20)["id"])) / 20 for q in qs]
    return [
        {
            "stage": "float16",
            "n": len(ids),
            "queries": len(qs),
            "recall_at_20_fp16_vs_fp32": round(float(np.mean(rec)), 4),
            "min_recall": min(rec),
            "bytes_per_object_fp16": 2 * meta["dim"],
            "bytes_per_object_fp32": 4 * meta["dim"],
        }
    ]


def print_table(rows: list[dict]) -> None:
    keys = [
        "stage",
        "seconds",
        "cpu_seconds",
        "worker_cpu_seconds",
        "peak_rss_mb",
        "peak_anon_mb",
        "peak_tree_mb",
    ]
    print(" | ".join(f"{k:>12}" for k in keys) + " | details")
    for r in rows:
        rest = {k: v for k, v in r.items() if k not in keys}
        print(" | ".join(f"{r.get(k, ''):>12}" for k in keys) + " | " + json.dumps(rest, default=str)[:400])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("command", choices=["build", "compare", "umap-quality", "float16", "_stage"])
    p.add_argument("stage", nargs="?", default=None)
    p.add_argument("--workspace", required=True)
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--dtype", default="float16")
    p.add_argument("--scheduler", default=None)
    p.add_argument("--score-sample", type=int, default=200_000)
    p.add_argument("--score-method", default=None, help="iforest or knn (default: the scorer's default)")
    p.add_argument("--map-sample", type=int, default=100_000)
    p.add_argument("--placement", default="knn")
    p.add_argument("--nprobe", type=int, default=None)
    p.add_argument("--recall-queries", type=int, default=20)
    p.add_argument("--nprobes", default="16,32,48,64,96", help="serve: nprobe values to sweep")
    p.add_argument("--serve-parts", default="lasso,similar,datashader", help="serve: which measurements")
    p.add_argument("--app-timeout", type=float, default=600)
    p.add_argument(
        "--app-max-rss-mb", type=float, default=6000, help="stop the server if its RSS passes this"
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--warm-cluster", action="store_true", help="compare: start the Dask cluster before timing"
    )
    p.add_argument("--embed-n", type=int, default=32_768)
    p.add_argument("--sample", default="20000", help="umap-quality: fit sample size(s), comma-separated")
    p.add_argument("--probe", type=int, default=3000)
    p.add_argument("--stages", default="simulate,vectors,score,map,index,serve")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    if a.command == "_stage":
        run_stage_here(a.stage, a)
        return 0
    rows = {
        "build": cmd_build,
        "compare": cmd_compare,
        "umap-quality": cmd_umap_quality,
        "float16": cmd_float16,
    }[a.command](a)
    print_table(rows)
    if a.json:
        Path(a.json).write_text(
            json.dumps(
                {
                    "command": a.command,
                    "args": vars(a),
                    "rows": rows,
                    "load_average": os.getloadavg(),
                    "cpus": os.cpu_count(),
                },
                indent=2,
                default=str,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
