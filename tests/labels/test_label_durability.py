"""Labels survive real concurrent processes and SIGKILL: none lost, none doubled, every call all-or-nothing."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest

from explorer.labels import LabelStore

pytestmark = [pytest.mark.slow, pytest.mark.skipif(os.name != "posix", reason="uses SIGKILL")]

WORKER = Path(__file__).with_name("helpers_label_worker.py")
REPO = Path(__file__).resolve().parents[2]
LABELS = ("anomaly", "normal", "artefact", "Merger ring")


class Worker:
    """A helpers_label_worker.py process whose stdout is collected by a thread."""

    def __init__(self, db: Path, name: str, *args: str) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), str(db), name, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            env=env,
        )
        self.confirmed: list[str] = []
        self.planned: dict[str, int] = {}
        self.done = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            kind, _, rest = line.rstrip("\n").partition(" ")
            if kind == "OK":
                self.confirmed.append(rest)
            elif kind == "PLAN":
                tag, size = rest.split()
                self.planned[tag] = int(size)
            elif kind == "DONE":
                self.done = True

    def wait_confirmed(self, n: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while len(self.confirmed) < n:
            assert self.proc.poll() is None, f"worker died early: {self.proc.stderr.read()}"
            assert time.monotonic() < deadline, f"only {len(self.confirmed)} labels confirmed"
            time.sleep(0.002)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.finish()
        assert self.proc.returncode == -signal.SIGKILL

    def finish(self, timeout: float = 60) -> None:
        self.proc.wait(timeout)
        self._reader.join(timeout)  # collects every line printed before the process ended
        self.proc.stdout.close()
        self.proc.stderr.close()


def _check_database(db: Path, workers: list[Worker]) -> tuple[set[str], int]:
    """Integrity, every confirmed id present, each call all-or-nothing; return (ids, n_events)."""
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with LabelStore(db) as store:
        store.verify()  # materialised current labels == latest event per object in the history
        current = store.current()
        n_events = store.last_event_id()
        assert len(store.history()) == n_events  # no event lost, none doubled
    ids = set(current["id"])
    assert len(ids) == len(current)
    for worker in workers:
        missing = set(worker.confirmed) - ids
        assert not missing, f"{len(missing)} confirmed labels lost, e.g. {sorted(missing)[:3]}"
    per_call: dict[str, int] = defaultdict(int)
    for oid in ids:
        name, tag, _ = oid.split("/", 2)
        per_call[f"{name}/{tag}"] += 1
    for worker in workers:
        name = worker.proc.args[3]
        for tag, size in worker.planned.items():
            assert per_call.get(f"{name}/{tag}", 0) in (0, size), f"call {name}/{tag} half-written"
    return ids, n_events


def test_eight_processes_label_at_once_and_nothing_is_lost_or_doubled(tmp_path):
    db = tmp_path / "labels.sqlite"
    LabelStore(db).close()  # the workers open an existing store (creation races are tested below)
    workers = [Worker(db, f"w{i}", "--mode", "fixed", "--count", "1000", "--seed", str(i)) for i in range(8)]
    for worker in workers:
        worker.finish()
        assert worker.proc.returncode == 0 and worker.done
    ids, n_events = _check_database(db, workers)
    assert len(ids) == 8000 and n_events == 8000
    with LabelStore(db) as store:
        current = store.current().set_index("id")
        calls = store.history().groupby("batch").size()
    tags = current.index.str.split("/").str[1].str[1:].astype(int)
    assert (current["label"] == [LABELS[t % 4] for t in tags]).all()
    assert (calls == 1).sum() > 100 and (calls > 1).sum() > 50  # single clicks and bulk calls both ran


def test_creating_the_store_from_several_processes_at_once(tmp_path):
    db = tmp_path / "labels.sqlite"
    workers = [Worker(db, f"c{i}", "--mode", "fixed", "--count", "50", "--seed", str(i)) for i in range(4)]
    for worker in workers:
        worker.finish()
        assert worker.proc.returncode == 0, worker.proc.stderr
    ids, _ = _check_database(db, workers)
    assert len(ids) == 200


def test_sigkill_mid_run_loses_no_confirmed_label(tmp_path, capsys):
    db = tmp_path / "labels.sqlite"
    confirmed_total = 0
    in_flight = {"committed": 0, "rolled back": 0}  # the call the kill interrupted, when there was one
    for round_ in range(5):
        worker = Worker(db, f"k{round_}", "--mode", "loop", "--seed", str(round_))
        worker.wait_confirmed(2000 + 97 * round_)
        worker.kill()
        ids, n_events = _check_database(db, [worker])
        confirmed_total += len(worker.confirmed)
        # at most the one call in flight at the kill committed without being confirmed
        assert 0 <= len(ids) - confirmed_total <= 200
        last = max(worker.planned)
        if not any(f"/{last}/" in oid for oid in worker.confirmed[-200:]):
            in_flight[
                "committed" if any(oid.startswith(f"k{round_}/{last}/") for oid in ids) else "rolled back"
            ] += 1
    assert confirmed_total >= 10_000
    with capsys.disabled():
        print(
            f"\n[labels] SIGKILL x5: {confirmed_total} labels confirmed, {len(ids)} in the database, 0 lost, "
            f"{n_events} events; calls cut by the kill: {in_flight}"
        )


def test_two_writers_one_killed_the_other_carries_on(tmp_path, capsys):
    db = tmp_path / "labels.sqlite"
    confirmed_total = 0
    for round_ in range(2):
        victim = Worker(db, f"v{round_}", "--mode", "loop", "--seed", str(10 + round_))
        survivor = Worker(db, f"s{round_}", "--mode", "loop", "--seed", str(20 + round_))
        victim.wait_confirmed(2000)
        survivor.wait_confirmed(1)  # both are writing when the victim dies
        victim.kill()
        survivor.wait_confirmed(len(survivor.confirmed) + 2000)  # and the survivor carries on without it
        survivor.proc.send_signal(signal.SIGTERM)
        survivor.finish()
        assert survivor.proc.returncode == 0 and survivor.done
        ids, _ = _check_database(db, [victim, survivor])
        confirmed_total += len(victim.confirmed) + len(survivor.confirmed)
    assert len(ids) >= confirmed_total >= 8000
    with capsys.disabled():
        print(f"\n[labels] two writers, one SIGKILLed (x2): {confirmed_total} labels confirmed, 0 lost")
