"""Sessions that speak Bokeh's websocket protocol instead of rendering a page: the load on the *server* of many users.

Each :class:`ProtocolSession` opens a real server session with ``bokeh.client.pull_session`` (the same document a
browser receives) and sends the events a browser would send: a lasso is the ``SelectionGeometry`` event of the
map's lasso tool, a key is the keyboard component's message, "Similar to focused" is a ``ButtonClick``. The
server runs exactly the code it runs for a browser; what is missing is only the browser drawing the result. The
latency of an action is the time from sending its event until the document the server patches shows the header
notice that the browser test waits for ("N selected", "N objects similar to ...", "Saved: ID → label."). A
session counts as open once its page has stopped changing for a second (the panels the app renders after load
have arrived); the minute of work starts when all are open.

Used by ``bench_load.py --client protocol`` when browsers cannot be given their own cores (here the 10 Chromium
renderers needed ~5x the server's CPU on the same 2 cores). Details of ``bokeh.client`` that matter: a Python
client must import Panel's model classes to read the document; it must send ``DocumentReady`` as BokehJS does
(Panel treats a session as connected only then, and HoloViews otherwise re-schedules plot refreshes on every
tick); and the connection's loop must run for the session's whole life on one thread of its own (the
``bokeh.client`` helpers that run it until a reply arrives drop the server's patches that come first, and a loop
stopped while reading and started again reads with two coroutines at once, scrambling the fragments).
"""

from __future__ import annotations

import html
import math
import random
import re
import threading
import time
from typing import Any

SAVED = re.compile(r"^Saved: (.+) → (\S+)\.$")
_MSG = re.compile(r"<span class='msg'[^>]*>(.*?)</span>", re.S)


def _event_classes():
    """``SelectionGeometry`` that carries its geometry to the server (Bokeh serialises only the model of a
    Python-side UI event) and Panel's ``DataEvent`` (what a ``JSComponent``'s ``send_msg`` sends)."""
    from bokeh.events import ButtonClick, SelectionGeometry
    from panel.models.esm import DataEvent

    class SentSelectionGeometry(SelectionGeometry):
        def event_values(self) -> dict[str, Any]:
            return {**super().event_values(), "geometry": self.geometry, "final": self.final}

    return SentSelectionGeometry, ButtonClick, DataEvent


class ProtocolSession:
    """One user: a Bokeh client session on the served app, its timings, errors and confirmed labels."""

    def __init__(self, index: int, seed: int, action_timeout: float, xy) -> None:
        self.index = index
        self.xy = xy
        self.rng = random.Random(seed)
        self.timeout = action_timeout
        self.times: dict[str, list[float]] = {"lasso": [], "find-similar": [], "label": []}
        self.errors: list[str] = []
        self.labels: list[tuple[str, str]] = []
        self.timeline: list[tuple[str, float, float]] = []  # (action, perf_counter at the start, seconds)

    # ---- connection ---------------------------------------------------------------------------------------
    def open(self, url: str) -> float:
        import panel.models  # noqa: F401 - the document's Panel model classes
        from bokeh.client import pull_session
        from bokeh.events import DocumentReady

        import explorer.app.explorer  # noqa: F401 - the app's own component models
        from explorer.app.background import model_graph_frozen

        start = time.perf_counter()
        self.client = pull_session(url=url)
        doc = self.doc = self.client.document
        self.header = next(
            m for m in doc.models if isinstance(getattr(m, "text", None), str) and "class='hdr'" in _text(m)
        )
        self.plot = doc.select_one({"name": "explorer-map"})
        self.similar_button = next(m for m in doc.models if getattr(m, "label", None) == "Similar to focused")
        self.keyboard = next(m for m in doc.models if _shortcut_keys(m))
        self.events = _event_classes()
        self._changed = threading.Condition()
        doc.on_change(self._on_change)
        # Bokeh's Python client recomputes its whole model graph after every property in a patch that involves
        # models (a gallery page: 9 times, 0.66 s at 1M objects) where BokehJS does it once; all sessions share
        # this process's GIL, so that would be charged to every session's latency. At most one recompute per
        # patch, none for patches that only change values (the server's own batching does the same).
        apply = doc.apply_json_patch

        def apply_frozen(patch, **kw):
            with model_graph_frozen(doc):
                return apply(patch, **kw)

        doc.apply_json_patch = apply_frozen
        # One reader for the connection's whole life, on its own thread: the server's patches are applied as
        # they arrive (a loop stopped mid-read and started again would read with two coroutines at once).
        self._closing = False
        conn = self.client._connection
        self._reader = threading.Thread(
            target=conn._loop_until, args=(lambda: self._closing,), name=f"session-{self.index}", daemon=True
        )
        self._reader.start()
        # What BokehJS sends once the page is drawn: Panel counts the session as connected only then, and until
        # it does HoloViews re-schedules every plot refresh on the next tick (a busy loop on the server).
        self._send(DocumentReady())
        return self._settled(start) - start

    def _settled(self, start: float, quiet: float = 1.0, limit: float = 60.0) -> float:
        """Wait until the page has stopped changing for ``quiet`` seconds (the panels the app renders after
        load have arrived, as a browser would draw them); returns when the last change came."""
        last = time.perf_counter()
        with self._changed:
            while time.perf_counter() - start < limit:
                if not self._changed.wait(timeout=quiet):
                    break
                last = time.perf_counter()
        return last

    def close(self) -> None:
        self._closing = True
        try:
            self.client._connection._loop.add_callback(self.client._connection._loop.stop)
            self._reader.join(timeout=5)
            self.client.close()
        except Exception:  # noqa: BLE001 - closing a dead connection
            pass

    def _on_change(self, event) -> None:
        with self._changed:
            self._changed.notify_all()

    def _send(self, event) -> None:
        """Send a UI event from the connection's own thread (where the document is read and patched)."""
        self.client._connection._loop.add_callback(self.doc.callbacks.send_event, event)

    def message(self) -> str:
        m = _MSG.search(_text(self.header))
        return html.unescape(m.group(1)).strip() if m else ""

    def _wait_for(self, pattern: str, before: str) -> str | None:
        """Wait until the header shows a new notice matching ``pattern`` (None after the action timeout)."""
        regex = re.compile(pattern)
        deadline = time.perf_counter() + self.timeout
        with self._changed:
            while True:
                text = self.message()
                if text != before and regex.search(text):
                    return text
                left = deadline - time.perf_counter()
                if left <= 0:
                    return None
                self._changed.wait(min(left, 0.5))

    def _act(self, action: str, event, pattern: str) -> str | None:
        before = self.message()
        start = time.perf_counter()
        self._send(event)
        text = self._wait_for(pattern, before)
        if text is None:
            self.errors.append(
                f"{action}: not confirmed in {self.timeout:.0f} s (header: {self.message()!r})"
            )
            return None
        self.times[action].append(time.perf_counter() - start)
        self.timeline.append((action, start, time.perf_counter() - start))
        return text

    # ---- actions ------------------------------------------------------------------------------------------
    def lasso(self) -> bool:
        geometry_event = self.events[0]
        x, y = self.xy[self.rng.randrange(len(self.xy))]
        xr, yr = self.plot.x_range, self.plot.y_range
        span = min(xr.end - xr.start, yr.end - yr.start)
        radius = span * self.rng.uniform(10, 70) / 700  # 10-70 px on a ~700 px map, as in the browser test
        angles = sorted(self.rng.uniform(0, 2 * math.pi) for _ in range(8))
        xs = [x + radius * self.rng.uniform(0.6, 1.0) * math.cos(a) for a in angles]
        ys = [y + radius * self.rng.uniform(0.6, 1.0) * math.sin(a) for a in angles]
        geometry = {"type": "poly", "x": xs, "y": ys, "sx": [0.0] * 8, "sy": [0.0] * 8}
        text = self._act(
            "lasso",
            geometry_event(self.plot, geometry=geometry, final=True),
            r"( selected|^Selection cleared\.)$",
        )
        return text is not None and text.endswith(" selected")

    def key(self, key: str):
        return self.events[2](self.keyboard, data={"key": key})

    def find_similar(self) -> None:
        self._send(self.key("j"))  # focus the first gallery object (no notice to wait for)
        time.sleep(0.3)
        self._act("find-similar", self.events[1](self.similar_button), r"similar to |^Nothing|^Click|focus")

    def label(self) -> None:
        text = self._act("label", self.key("a"), r"^Saved: |^Nothing to label")
        match = SAVED.match(text or "")
        if match:
            self.labels.append(match.groups())

    def run(self, until: float, think: float) -> None:
        """After a first pause of ``think`` x U(0, 1) s, lasso, find similar, label, each followed by a pause of
        ``think`` x U(0.5, 1.5) s, until ``until``."""
        steps = (self.lasso, self.find_similar, self.label)
        time.sleep(self.rng.uniform(0, 1) * think)  # people do not all start at the same instant
        while time.perf_counter() < until:
            for step in steps:
                if time.perf_counter() >= until:
                    return
                try:
                    ok = step()
                except Exception as err:  # noqa: BLE001 - keep the session going; the error is reported
                    self.errors.append(f"{type(err).__name__}: {str(err).splitlines()[0][:120]}")
                    ok = False
                time.sleep(self.rng.uniform(0.5, 1.5) * think)
                if step == self.lasso and not ok:
                    break  # nothing selected: draw again


def _shortcut_keys(model) -> list[str]:
    """The keys of the app's keyboard component (a ``ReactiveESM`` whose data holds ``keys``), else []."""
    data = getattr(model, "data", None)
    keys = getattr(data, "keys", None) if data is not None and not isinstance(data, dict) else None
    return list(keys) if isinstance(keys, list | tuple) and "a" in keys else []


def _text(model) -> str:
    return html.unescape(getattr(model, "text", "") or "")


def drive_protocol(
    url: str,
    n_sessions: int,
    duration: float,
    think: float,
    action_timeout: float,
    seed: int,
    xy,
    cpu_seconds,
):
    """Open ``n_sessions`` protocol sessions (three at a time), run them together in threads for ``duration``
    seconds; returns the sessions, their open times and the CPU used by the server and by this client."""
    sessions = [ProtocolSession(i, seed + i, action_timeout, xy) for i in range(n_sessions)]
    open_times: list[float] = [0.0] * n_sessions
    gate = threading.Semaphore(3)

    def start(s: ProtocolSession) -> None:
        with gate:
            open_times[s.index] = s.open(url)
        print(f"session {s.index + 1}/{n_sessions} ready in {open_times[s.index]:.1f} s", flush=True)

    openers = [threading.Thread(target=start, args=(s,)) for s in sessions]
    for t in openers:
        t.start()
    for t in openers:
        t.join()
    cpu_start, client_start, active = cpu_seconds(), time.process_time(), time.perf_counter()
    until = active + duration
    workers = [threading.Thread(target=s.run, args=(until, think), daemon=True) for s in sessions]
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout=duration + 2 * action_timeout)
    for s, t in zip(sessions, workers, strict=True):
        if t.is_alive():
            s.errors.append("still busy when the run's time was up")
    cpu_end = cpu_seconds()
    cpu = {
        "active_s": time.perf_counter() - active,
        "server_cpu_s": cpu_end - cpu_start,
        "client_cpu_s": time.process_time() - client_start,
    }
    for s in sessions:
        s.close()
    return sessions, open_times, cpu
