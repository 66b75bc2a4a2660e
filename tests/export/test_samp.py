"""SAMP against a real hub on loopback: tables, highlights and sky positions reach a client; selections come back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import warnings

import pytest
from astropy import units as u

from explorer.errors import ExplorerError
from explorer.export import export_subset, resolve_subset
from explorer.samp import SampBridge, samp_module
from tests.conftest import run_cli
from tests.export.samp_hub import WAIT


@pytest.fixture
def bridge(ws, hub, tmp_path):
    b = SampBridge(ws, timeout=WAIT, folder=tmp_path / "sent").connect()
    yield b
    b.close()


def test_send_table_highlight_and_point_reach_the_client(bridge, recorder, ws):
    ids = ["ünï", "obj0", "<b>x</b>"]
    sent = bridge.send_table(ids, name="my pick")
    params = recorder.wait_for("table.load.votable")
    assert params["table-id"] == sent.table_id and params["name"] == "my pick"
    table = recorder.tables[sent.table_id]
    assert [str(i) for i in table["id"]] == ids  # the receiver reads the same objects from the URL
    assert table["ra"].unit == u.deg and list(table["label"][:2]) == ["normal", "anomaly"]

    bridge.highlight("obj0")
    hl = recorder.wait_for("table.highlight.row")
    assert hl["table-id"] == sent.table_id and int(hl["row"]) == 1

    bridge.point_at(150.25, -2.5)
    pt = recorder.wait_for("coord.pointAt.sky")
    assert float(pt["ra"]) == 150.25 and float(pt["dec"]) == -2.5

    bridge.send_selection(["<b>x</b>", "ünï"])
    sel = recorder.wait_for("table.select.rowList")
    assert sorted(int(r) for r in sel["row-list"]) == [0, 2]


def test_a_row_selection_from_the_client_becomes_ids(bridge, recorder):
    got: list[list[str]] = []
    arrived = threading.Event()
    bridge.on_selection(lambda ids: (got.append(ids), arrived.set()))
    sent = bridge.send_table(["obj0", "a/b", "lc0", "m1"])
    me = recorder.wait_for_client("astro-embedding-explorer")
    recorder.client.notify(
        me,
        {
            "samp.mtype": "table.select.rowList",
            "samp.params": {"table-id": sent.table_id, "url": sent.url, "row-list": ["3", "1"]},
        },
    )
    assert arrived.wait(WAIT) and got[-1] == ["m1", "a/b"]
    reply = recorder.client.call_and_wait(
        me,
        {
            "samp.mtype": "table.select.rowList",
            "samp.params": {"table-id": "from-topcat", "url": sent.url, "row-list": ["0"]},
        },
        str(int(WAIT)),
    )
    assert reply["samp.status"] == "samp.ok" and bridge.last_selection == ["obj0"]


def test_a_selection_on_a_table_the_bridge_did_not_send_is_read_from_its_file(bridge, recorder, ws, tmp_path):
    # a table the user opened in TOPCAT by hand
    path = export_subset(ws, tmp_path / "own.vot", labels=["anomaly", "normal"])
    me = recorder.wait_for_client("astro-embedding-explorer")
    reply = recorder.client.call_and_wait(
        me,
        {
            "samp.mtype": "table.select.rowList",
            "samp.params": {"table-id": "topcat-1", "url": path.resolve().as_uri(), "row-list": ["2", "0"]},
        },
        str(int(WAIT)),
    )
    assert reply["samp.status"] == "samp.ok" and bridge.last_selection == ["ünï", "obj0"]
    reply = recorder.client.call_and_wait(
        me,
        {
            "samp.mtype": "table.select.rowList",
            "samp.params": {"table-id": "unknown", "url": "http://example.org/t.vot", "row-list": ["0"]},
        },
        str(int(WAIT)),
    )
    assert reply["samp.status"] == "samp.error" and "cannot read" in reply["samp.error"]["samp.errortxt"]


def test_highlighting_an_object_never_sent_is_refused(bridge, recorder):
    with pytest.raises(ExplorerError, match="'obj1' is not in any table sent over SAMP"):
        bridge.highlight("obj1")
    with pytest.raises(ExplorerError, match="cannot point at ra=400"):
        bridge.point_at(400, 0)


def test_sending_with_nobody_to_receive_is_a_clear_error(bridge):
    with pytest.raises(ExplorerError, match="no SAMP client that loads tables"):
        bridge.send_table(["obj0"])


def test_no_hub_is_a_clear_error(ws, tmp_path, monkeypatch):
    monkeypatch.setenv("SAMP_HUB", f"std-lockurl:file://{tmp_path / 'none.lock'}")
    with pytest.raises(ExplorerError, match="no SAMP hub to connect to"):
        SampBridge(ws).connect()
    res = run_cli("samp", "send", ws.path, "--all", "--timeout", "2")
    assert res.returncode == 2 and "no SAMP hub" in res.stderr


def test_cli_samp_send_delivers_the_labelled_objects(ws, recorder):
    res = run_cli("samp", "send", ws.path, "--label", "anomaly", "--timeout", str(WAIT), timeout=120)
    assert res.returncode == 0, res.stderr
    params = recorder.wait_for("table.load.votable")
    assert [str(i) for i in recorder.tables[params["table-id"]]["id"]] == ["obj0", "a/b"]
    assert "recorder" in res.stdout


def test_cli_samp_listen_saves_the_selection_as_a_workspace_selection(fresh_ws, recorder, tmp_path):
    ws, _ = fresh_ws
    table = export_subset(ws, tmp_path / "shown.vot", all=True)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "explorer.cli",
            "samp",
            "listen",
            str(ws.path),
            "--save",
            "from_topcat",
            "--timeout",
            "30",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TQDM_DISABLE": "1"},
    )
    try:
        # a fresh interpreter imports pandas, astropy and pyvo first: slow on a busy machine
        listener = recorder.wait_for_client("astro-embedding-explorer", timeout=120)
        recorder.client.notify(
            listener,
            {
                "samp.mtype": "table.select.rowList",
                "samp.params": {
                    "table-id": "t1",
                    "url": table.resolve().as_uri(),
                    "row-list": ["5", "3", "8"],
                },
            },
        )
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    saved = json.loads(ws.selection_path("from_topcat").read_text())
    assert saved["ids"] == ["ünï", "a/b", "lc0"] and saved["source"] == "samp"
    assert resolve_subset(ws, selection="from_topcat")[0] == ["a/b", "ünï", "lc0"]


def test_without_pyvo_samp_it_falls_back_to_astropy_samp_quietly(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyvo.samp", None)  # as if pyvo had no SAMP module
    monkeypatch.delitem(sys.modules, "astropy.samp", raising=False)  # import it afresh, warning and all
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        module = samp_module()
    assert module.__name__ == "astropy.samp" and hasattr(module, "SAMPIntegratedClient")
