"""`explorer label` / `explorer labels` write to and read from the workspace's real SQLite label store."""

from __future__ import annotations

import json
import sqlite3

from explorer.workspace import Workspace
from tests.conftest import run_cli
from tests.pipeline.conftest import add_blobs


def test_label_list_undo_round_trip(tmp_path):
    ws = Workspace.create(tmp_path / "ws")
    add_blobs(ws, n=8)
    res = run_cli("label", ws.path, "src001", "src002", "--as", "anomaly", "--user", "alice")
    assert res.returncode == 0, res.stderr
    res = run_cli("label", ws.path, "src003", "--as", "Spiral arm", "--user", "bob")
    assert res.returncode == 0, res.stderr
    rows = json.loads(run_cli("labels", ws.path, "--json").stdout)
    assert {(r["id"], r["label"], r["user"]) for r in rows} == {
        ("src001", "anomaly", "alice"), ("src002", "anomaly", "alice"), ("src003", "Spiral arm", "bob")}
    with sqlite3.connect(ws.path / "labels.sqlite") as conn:  # the real file, read independently
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    res = run_cli("label", ws.path, "--undo", "--user", "alice")
    assert res.returncode == 0 and "2 objects restored" in res.stdout
    rows = json.loads(run_cli("labels", ws.path, "--json").stdout)
    assert [r["id"] for r in rows] == ["src003"]
    history = json.loads(run_cli("labels", ws.path, "--history", "--json").stdout)
    assert len(history) == 5  # nothing deleted: 2 adds, 1 add, 2 undo events


def test_unknown_ids_label_nothing(tmp_path):
    ws = Workspace.create(tmp_path / "ws")
    add_blobs(ws, n=4)
    res = run_cli("label", ws.path, "src001", "ghost<script>", "--as", "normal")
    assert res.returncode == 2 and "unknown object id 'ghost<script>'" in res.stderr
    assert json.loads(run_cli("labels", ws.path, "--json").stdout) == []
