"""Load test: concurrent browser sessions lasso, find similar and label on a served workspace (loopback only).

Usage::

    flock /tmp/explorer-bench.lock python benchmarks/bench_load.py --workspace WS1M          # 10 sessions, 60 s
    python benchmarks/bench_load.py --workspace WS --sessions 2 --duration 15 --json out.json

``explorer serve WS`` runs as a subprocess on a free port of 127.0.0.1; one headless Chromium (Debian's, at
``/usr/bin/chromium``) opens one browser context per session, each a real Bokeh server session. Every session
repeats, until ``--duration`` is over:

1. **lasso**: a random 8-vertex polygon (20-140 px across) dragged on the map; timed from mouse-up until the page
   shows the server's "N selected" (the whole update, gallery included, arrives in one batch);
2. **find-similar**: ``j`` focuses the first gallery object, then "Similar to focused" is clicked; timed until
   "N objects similar to ID" shows;
3. **label**: ``a`` labels the focused object; timed until "Saved: ID → anomaly." shows;

each action followed by a pause of ``--think`` x U(0.5, 1.5) seconds (a person looks at the result). An action
not confirmed within ``--action-timeout`` counts as an error, and so does every page error and every traceback in
the server log. At the end every label a page confirmed is looked up in ``labels.sqlite`` (0 lost is the
requirement), and the database's integrity is checked. Prints p50 / p95 / max latency per action, errors, labels confirmed and found, the load average before
and after, and the server's peak memory. Bounded: a fixed number of sessions, a fixed duration, one machine.

``--client protocol`` drives the same sessions over Bokeh's websocket protocol instead of browser pages
(``benchmarks/load_protocol.py``: real server sessions, same events, nothing rendered), to measure the server
alone when the browsers cannot have cores of their own. ``--num-procs N`` serves with ``explorer serve --num-procs
N`` (memory and CPU are then summed over the server's processes).

Without ``--workspace`` a copy of ``--copy-from`` (default ``/tmp/sb1m``, a 1M-object simulated workspace made
as in docs/scale.md) is made in a temporary folder; the source is never written to.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from explorer.app.browser_probes import CHROMIUM, CHROMIUM_ARGS, GEOMETRY, READY

# The header's notice (inside Panel's shadow roots), found once per page and cached.
MESSAGE = """() => {
  const find = (root) => {
    const el = root.querySelector('.hdr .msg');
    if (el) { return el; }
    for (const e of root.querySelectorAll('*')) {
      if (e.shadowRoot) { const f = find(e.shadowRoot); if (f) { return f; } }
    }
    return null;
  };
  let el = window.__explorerMsg;
  if (!el || !el.isConnected) { el = window.__explorerMsg = find(document); }
  return el ? el.textContent.trim() : '';
}"""
WAIT_CHANGE = f"""([prev, pattern]) => {{
  const t = ({MESSAGE})();
  return t !== prev && new RegExp(pattern).test(t) ? t : null;
}}"""
SAVED = re.compile(r"^Saved: (.+) → (\S+)\.$")
ACTIONS = ("lasso", "find-similar", "label")
OPEN_AT_ONCE = 3


# ---------------------------------------------------------------------------------------------- server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    ws: Path, log: Path, timeout: float, num_procs: int = 1
) -> tuple[subprocess.Popen, str, float]:
    """``explorer serve`` on a free port of 127.0.0.1; returns the process, URL and seconds until it answered."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    start = time.perf_counter()
    repo = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        "TQDM_DISABLE": "1",
        "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "explorer.cli", "serve", str(ws), "--port", str(port), "--no-show"]
        + ["--num-procs", str(num_procs)],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        env=env,
    )
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"explorer serve exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=60) as resp:
                if resp.status == 200:
                    return proc, url, time.perf_counter() - start
        except OSError:
            pass
        if time.perf_counter() - start > timeout:
            proc.kill()
            raise SystemExit(f"explorer serve did not answer within {timeout:.0f} s")
        time.sleep(0.5)


def cpu_seconds(server_pid: int) -> tuple[float, float]:
    """CPU seconds used so far by the server and by this run's browser processes (Chromium and its helpers)."""
    import psutil

    def used(proc) -> float:
        try:
            t = proc.cpu_times()
            return t.user + t.system
        except psutil.Error:
            return 0.0

    server = psutil.Process(server_pid)
    tree = [server, *server.children(recursive=True)]
    pids = {p.pid for p in tree}
    mine = psutil.Process(os.getpid()).children(recursive=True)
    browser = sum(used(c) for c in mine if c.pid not in pids)
    return sum(used(p) for p in tree), browser


def rss_mb(pid: int) -> tuple[float, float]:
    """Resident and peak resident memory in MB (Linux /proc) of ``pid`` and, with ``--num-procs``, the server
    processes it forked (summed: each loads the workspace itself)."""
    import psutil

    pids = [pid]
    with contextlib.suppress(psutil.Error):
        pids += [p.pid for p in psutil.Process(pid).children(recursive=True)]
    total = [0.0, 0.0]
    for p in pids:
        fields = {}
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                key, _, value = line.partition(":")
                fields[key] = value
        for k, name in enumerate(("VmRSS", "VmHWM")):
            total[k] += float(fields.get(name, "0 kB").split()[0]) / 1024
    return total[0], total[1]


# ---------------------------------------------------------------------------------------------- one session
class Session:
    """One browser context driving the app: its timings, errors and confirmed labels."""

    def __init__(self, index: int, page, seed: int, action_timeout: float, xy) -> None:
        self.index = index
        self.page = page
        self.xy = xy
        self.rng = random.Random(seed)
        self.timeout_ms = action_timeout * 1000
        self.times: dict[str, list[float]] = {a: [] for a in ACTIONS}
        self.errors: list[str] = []
        self.labels: list[tuple[str, str]] = []
        self.message = ""
        page.on("pageerror", lambda err: self.errors.append(f"page error: {err}"))

    async def open(self, url: str) -> float:
        start = time.perf_counter()
        await self.page.goto(url, timeout=self.timeout_ms * 4)
        await self.page.wait_for_function(READY, timeout=self.timeout_ms * 4, polling=200)
        self.geometry = await self.page.evaluate(GEOMETRY)
        self.message = await self.page.evaluate(MESSAGE)
        return time.perf_counter() - start

    async def _confirmed(self, action: str, pattern: str, start: float) -> str | None:
        """Wait for a new header notice matching ``pattern``; record the latency from ``start``."""
        try:
            handle = await self.page.wait_for_function(
                WAIT_CHANGE, arg=[self.message, pattern], polling=25, timeout=self.timeout_ms
            )
        except Exception as err:  # noqa: BLE001 - a timeout or a closed page counts as an error and goes on
            self.message = await self.page.evaluate(MESSAGE)
            self.errors.append(f"{action}: {type(err).__name__} (header then: {self.message!r})")
            return None
        self.times[action].append(time.perf_counter() - start)
        self.message = await handle.json_value()
        return self.message

    def _on_an_object(self) -> tuple[float, float]:
        """Page position of a random object in the middle of the map (a lasso there never comes back empty)."""
        g = self.geometry
        for _ in range(1000):
            x, y = self.xy[self.rng.randrange(len(self.xy))]
            fx = (x - g["x0"]) / (g["x1"] - g["x0"])
            fy = (g["y1"] - y) / (g["y1"] - g["y0"])
            if 0.15 < fx < 0.85 and 0.15 < fy < 0.85:
                return g["left"] + fx * g["width"], g["top"] + fy * g["height"]
        return g["left"] + g["width"] / 2, g["top"] + g["height"] / 2

    async def lasso(self) -> bool:
        # where the map is now: panels that load after the page (sky, discovery curve) can move it
        self.geometry = await self.page.evaluate(GEOMETRY)
        cx, cy = self._on_an_object()
        radius = self.rng.uniform(10, 70)
        angles = sorted(self.rng.uniform(0, 6.283) for _ in range(8))
        vertices = [
            (
                cx + radius * self.rng.uniform(0.6, 1.0) * math.cos(a),
                cy + radius * self.rng.uniform(0.6, 1.0) * math.sin(a),
            )
            for a in angles
        ]
        mouse = self.page.mouse
        await mouse.move(*vertices[0])
        await mouse.down()
        for v in [*vertices[1:], vertices[0]]:
            await mouse.move(*v, steps=4)
        start = time.perf_counter()
        await mouse.up()
        text = await self._confirmed("lasso", r"( selected|^Selection cleared\.)$", start)
        return text is not None and text.endswith(" selected")

    async def find_similar(self) -> None:
        await self.page.keyboard.press("j")
        await asyncio.sleep(0.3)
        start = time.perf_counter()
        await self.page.get_by_role("button", name="Similar to focused").click(timeout=self.timeout_ms)
        await self._confirmed("find-similar", r"similar to |^Nothing|^Click|focus", start)

    async def label(self) -> None:
        start = time.perf_counter()
        await self.page.keyboard.press("a")
        text = await self._confirmed("label", r"^Saved: |^Nothing to label", start)
        match = SAVED.match(text or "")
        if match:
            self.labels.append(match.groups())

    async def run(self, until: float, think: float) -> None:
        """Lasso, find similar, label, each followed by a pause of ``think`` x U(0.5, 1.5) seconds (a person
        looking at the result), until ``until``."""
        steps = (self.lasso, self.find_similar, self.label)
        while time.perf_counter() < until:
            for step in steps:
                if time.perf_counter() >= until:
                    return
                try:
                    ok = await step()
                except Exception as err:  # noqa: BLE001 - keep the session going; the error is reported
                    self.errors.append(f"{type(err).__name__}: {str(err).splitlines()[0][:120]}")
                    ok = False
                await asyncio.sleep(self.rng.uniform(0.5, 1.5) * think)
                if step == self.lasso and not ok:
                    break  # nothing selected: draw again


# ---------------------------------------------------------------------------------------------- the run
async def drive(
    url: str,
    n_sessions: int,
    duration: float,
    think: float,
    action_timeout: float,
    seed: int,
    xy,
    server_pid: int,
):
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        gate = asyncio.Semaphore(OPEN_AT_ONCE)  # page loads are not what is measured: a few at a time

        async def start(i: int) -> tuple[Session, float]:
            async with gate:
                context = await browser.new_context(
                    viewport={"width": 1200, "height": 900}, device_scale_factor=1
                )
                s = Session(i, await context.new_page(), seed + i, action_timeout, xy)
                took = await s.open(url)
                print(f"session {i + 1}/{n_sessions} ready in {took:.1f} s", flush=True)
                return s, took

        opened = await asyncio.gather(*(start(i) for i in range(n_sessions)))
        sessions = [s for s, _ in opened]
        cpu_start, active = cpu_seconds(server_pid), time.perf_counter()
        until = active + duration
        runs = asyncio.gather(*(s.run(until, think) for s in sessions))
        try:  # bounded: an action still waiting this long after the end is abandoned
            await asyncio.wait_for(runs, timeout=duration + 2 * action_timeout)
        except TimeoutError:
            for s in sessions:
                s.errors.append("still busy when the run's time was up")
        cpu_end = cpu_seconds(server_pid)
        await browser.close()
    cpu = {
        "active_s": time.perf_counter() - active,
        "server_cpu_s": cpu_end[0] - cpu_start[0],
        "browser_cpu_s": cpu_end[1] - cpu_start[1],
    }
    return sessions, [t for _, t in opened], cpu


def map_positions(ws: Path, n: int = 20_000, seed: int = 0):
    """Map coordinates of a random sample of objects, ``(n, 2)`` float64: where lassos are drawn."""
    import numpy as np

    from explorer.workspace import Workspace

    w = Workspace.open(ws)
    path, _ = w.product_path("maps")
    if (path / "xy.npy").exists():
        xy = np.load(path / "xy.npy", mmap_mode="r")
    else:
        coords = w.map()[0]
        xy = np.column_stack([coords["x"].to_numpy(), coords["y"].to_numpy()])
    rows = np.random.default_rng(seed).choice(len(xy), size=min(n, len(xy)), replace=False)
    return np.asarray(xy[np.sort(rows)], dtype=np.float64).tolist()


def server_tracebacks(text: str) -> list[str]:
    """The last line of every traceback in the server log, except a websocket closed by a departing browser."""
    found = []
    for block in text.split("Traceback (most recent call last):")[1:]:
        lines = [ln for ln in block.splitlines() if ln.strip()]
        last = next((ln for ln in lines if not ln.startswith((" ", "\t"))), lines[-1] if lines else "")
        if not re.search(r"WebSocketClosedError|StreamClosedError", block):
            found.append(last.strip()[:160])
    return found


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def check_labels(ws: Path, confirmed: list[tuple[str, str]]) -> dict:
    with sqlite3.connect(ws / "labels.sqlite") as conn:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        events = set(conn.execute("SELECT object_id, label FROM events").fetchall())
    lost = [pair for pair in confirmed if pair not in events]
    return {"confirmed": len(confirmed), "events": len(events), "lost": len(lost), "integrity": integrity}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--workspace", type=Path, default=None, help="workspace to serve (labels are written to it)"
    )
    p.add_argument(
        "--copy-from", type=Path, default=Path("/tmp/sb1m"), help="copied when --workspace is not given"
    )
    p.add_argument("--sessions", type=int, default=10)
    p.add_argument("--duration", type=float, default=60.0, help="seconds every session keeps working")
    p.add_argument("--think", type=float, default=3.0, help="mean pause after each action, seconds")
    p.add_argument("--action-timeout", type=float, default=30.0)
    p.add_argument("--server-timeout", type=float, default=300.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--num-procs", type=int, default=1, help="server processes (explorer serve --num-procs; default 1)"
    )
    p.add_argument("--json", type=Path, default=None)
    p.add_argument(
        "--client",
        choices=("browser", "protocol"),
        default="browser",
        help="browser: headless Chromium pages; protocol: Bokeh websocket sessions without rendering "
        "(benchmarks/load_protocol.py), the server's load alone",
    )
    args = p.parse_args(argv)
    if args.client == "browser" and not Path(CHROMIUM).exists():
        raise SystemExit(f"needs Chromium at {CHROMIUM} (apt-get install chromium)")

    tmp = None
    ws = args.workspace
    if ws is None:
        tmp = Path(tempfile.mkdtemp(prefix="bench-load-"))
        ws = tmp / "ws"
        shutil.copytree(args.copy_from, ws, ignore=shutil.ignore_patterns("labels.sqlite*", ".lock"))
    from explorer.workspace import Workspace

    n_objects = sum(int(src.get("objects", 0)) for src in Workspace.open(ws).manifest.get("sources", []))
    xy = map_positions(ws)
    load_before = os.getloadavg()
    log = (tmp or ws.parent) / "bench_load_server.log"
    proc, url, start_s = start_server(ws, log, args.server_timeout, args.num_procs)
    print(f"server up in {start_s:.1f} s at {url} (log {log})", flush=True)
    try:
        t0 = time.perf_counter()
        run = (url, args.sessions, args.duration, args.think, args.action_timeout, args.seed, xy)
        if args.client == "protocol":
            from load_protocol import drive_protocol

            sessions, open_times, cpu = drive_protocol(*run, lambda: cpu_seconds(proc.pid)[0])
            cpu["browser_cpu_s"] = cpu.pop("client_cpu_s")
        else:
            sessions, open_times, cpu = asyncio.run(drive(*run, proc.pid))
        wall = time.perf_counter() - t0
        rss, peak = rss_mb(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    load_after = os.getloadavg()
    server_errors = server_tracebacks(log.read_text(errors="replace"))
    confirmed = [pair for s in sessions for pair in s.labels]
    labels = check_labels(ws, confirmed)

    rows = []
    for action in ACTIONS:
        times = [t for s in sessions for t in s.times[action]]
        rows.append(
            {
                "action": action,
                "n": len(times),
                "p50_s": percentile(times, 50),
                "p95_s": percentile(times, 95),
                "max_s": max(times) if times else float("nan"),
            }
        )
    errors = [e for s in sessions for e in s.errors]
    result = {
        "workspace": str(ws),
        "objects": n_objects,
        "sessions": args.sessions,
        "num_procs": args.num_procs,
        "client": args.client,
        "duration_s": args.duration,
        "think_s": args.think,
        "server_start_s": start_s,
        "page_open_s_median": statistics.median(open_times),
        "wall_s": wall,
        "actions": rows,
        "errors": len(errors) + len(server_errors),
        "error_samples": (errors + server_errors)[:10],
        "labels": labels,
        "latencies_s": {a: sorted(t for s in sessions for t in s.times[a]) for a in ACTIONS},
        "timeline": sorted(
            (round(start - t0, 2), action, round(took, 3), s.index)
            for s in sessions
            for action, start, took in getattr(s, "timeline", [])
        ),
        **cpu,
        "server_rss_mb": rss,
        "server_peak_rss_mb": peak,
        "loadavg_before": load_before,
        "loadavg_after": load_after,
    }
    print()
    print(
        f"{args.sessions} sessions x {args.duration:.0f} s on {ws} ({n_objects or '?'} objects); "
        f"server start {start_s:.1f} s, page open median {result['page_open_s_median']:.1f} s"
    )
    print(f"{'action':<14}{'n':>6}{'p50 s':>9}{'p95 s':>9}{'max s':>9}")
    for r in rows:
        print(f"{r['action']:<14}{r['n']:>6}{r['p50_s']:>9.2f}{r['p95_s']:>9.2f}{r['max_s']:>9.2f}")
    print(f"errors: {result['errors']} ({len(errors)} in pages, {len(server_errors)} in the server log)")
    for e in result["error_samples"]:
        print(f"  {e}")
    print(
        f"labels: {labels['confirmed']} confirmed on screen, {labels['lost']} lost, "
        f"{labels['events']} distinct (id, label) events in the store, integrity {labels['integrity']}"
    )
    print(f"server memory: {rss:.0f} MB now, {peak:.0f} MB peak")
    print(
        f"CPU while the sessions worked: server {cpu['server_cpu_s']:.0f} s, "
        f"{'browsers' if args.client == 'browser' else 'protocol clients'} {cpu['browser_cpu_s']:.0f} s "
        f"(2 cores x {cpu['active_s']:.0f} s = {2 * cpu['active_s']:.0f} core-seconds)"
    )
    print(
        "load average (1/5/15 min): before "
        + "/".join(f"{x:.1f}" for x in load_before)
        + ", after "
        + "/".join(f"{x:.1f}" for x in load_after)
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if labels["lost"] == 0 and labels["integrity"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
