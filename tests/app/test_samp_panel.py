"""The dashboard's SAMP part against a real hub on loopback, driven from Python: the selection and labelled subsets
reach a client as tables, the focused object is highlighted and pointed at, a row list sent back becomes the
session's selection (through the document's event loop when served), and no hub is a message, not a traceback."""

# ruff: noqa: F811 - the hub fixtures are imported from tests/export (shared, not copied) and requested by name

from __future__ import annotations

import threading
import time

import numpy as np
import panel as pn
import pytest
from bokeh.document import Document

from explorer.app.data import load_app_data
from explorer.app.explorer import Explorer
from explorer.app.samp_panel import SampPanel
from explorer.session import Session
from tests.export.conftest import build_workspace
from tests.export.samp_hub import WAIT, hub, recorder  # noqa: F401 - a real hub, a client recording messages

NAME = "astro-embedding-explorer"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """The export tests' workspace: odd ids ("a/b", "<b>x</b>", "ünï"), labels, a map and scores."""
    ws, _ = build_workspace(tmp_path_factory.mktemp("samp_app") / "ws")
    return ws


@pytest.fixture
def part(workspace):
    data = load_app_data(workspace)
    panel = SampPanel(Session(data, user="alice"), data, background=False, timeout=WAIT)
    yield panel
    panel.disconnect()


def _texts(panel: SampPanel) -> str:
    return " ".join(str(p.object) for p in panel.__panel__().select(pn.pane.HTML))


def _wait_until(condition, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def test_sending_with_no_hub_is_a_message_not_a_traceback(part, tmp_path, monkeypatch):
    monkeypatch.setenv("SAMP_HUB", f"std-lockurl:file://{tmp_path / 'no-hub.lock'}")
    part.session.select_ids(["obj0", "a/b"])
    assert part.send_selection() is False  # as the Send button does
    assert not part.connected and part.bridge is None
    assert "No SAMP hub is running" in part.session.message and "TOPCAT" in part.session.message
    assert "No SAMP hub is running" in _texts(part)
    assert part.connect() is False and "Start TOPCAT or Aladin" in part.status


def test_nothing_selected_is_a_message_and_no_connection(part, hub, recorder):
    assert part.send_selection() is False
    assert "select objects on the map first" in part.session.message and not part.connected


def _registered(recorder) -> list[str]:
    return [
        recorder.client.get_metadata(c).get("samp.name") for c in recorder.client.get_registered_clients()
    ]


def test_the_part_does_not_connect_until_asked(part, hub, recorder):
    part.__panel__().get_root(Document())  # rendered as on page load
    time.sleep(0.3)
    assert NAME not in _registered(recorder) and not part.connected
    assert "Not connected" in _texts(part)
    assert part.connect() and part.status == "Connected to the SAMP hub; also there: recorder."
    recorder.wait_for_client(NAME)
    part.toggle()  # the Connect/Disconnect button
    assert not part.connected and part.status.startswith("Not connected")
    _wait_until(lambda: NAME not in _registered(recorder))


@pytest.mark.slow
def test_the_app_shows_the_samp_part_without_connecting(workspace, hub, recorder):
    app = Explorer(workspace, user="bob", background=False)
    layout = app.__panel__()
    layout.get_root(Document())
    assert isinstance(app.samp, SampPanel)
    assert [b for b in layout.select(pn.widgets.Button) if b.label == "Send selection"]
    time.sleep(0.3)
    assert NAME not in _registered(recorder) and not app.samp.connected


def test_send_selection_delivers_the_selected_ids_as_a_table(part, hub, recorder):
    chosen = part.session.select_ids(["ünï", "obj0", "<b>x</b>"])
    assert part.send_selection() is True  # connects on the way
    params = recorder.wait_for("table.load.votable")
    table = recorder.tables[params["table-id"]]
    assert [str(i) for i in table["id"]] == [str(i) for i in chosen]
    assert "Sent 3 objects over SAMP to recorder" in part.session.message and part.n_sent == 3
    assert part.connected and "Disconnect" in [b.label for b in part.__panel__().select(pn.widgets.Button)]


def test_when_served_sending_runs_off_the_event_loop(part, hub, recorder, monkeypatch):
    part.background = True  # as when served: the click returns at once, the table goes out on a thread
    part.session.select_ids(["m0", "m1"])
    assert part.connect()
    gate, send_table = threading.Event(), part.bridge.send_table
    monkeypatch.setattr(part.bridge, "send_table", lambda *a, **k: gate.wait(WAIT) and send_table(*a, **k))
    assert part.send_selection() is True
    assert part.sending and "Sending" in _texts(part)
    assert part.send_selection() is False and "still on its way" in part.session.message  # a second click
    gate.set()
    _wait_until(lambda: not part.sending)
    params = recorder.wait_for("table.load.votable")
    assert [str(i) for i in recorder.tables[params["table-id"]]["id"]] == list(part.session.selected_ids)
    assert "Sent 2 objects over SAMP to recorder" in part.session.message


def test_send_label_delivers_the_labelled_objects(part, hub, recorder):
    assert set(part.param.label.objects) == {"anomaly", "normal", "artefact", "merger"}
    assert part.send_label("anomaly") is True
    params = recorder.wait_for("table.load.votable")
    assert [str(i) for i in recorder.tables[params["table-id"]]["id"]] == ["obj0", "a/b"]
    assert "anomaly" in params["name"]
    assert part.send_label("merger") and part.last_sent.ids == ["m0"]


def test_focus_highlights_its_row_and_points_aladin_at_it(part, hub, recorder, workspace):
    part.session.select_ids(["obj1", "a/b", "lc0"])
    part.send_selection()
    sent = part.last_sent
    part.session.focus("lc0")
    hl = recorder.wait_for("table.highlight.row", where=lambda p: p["row"] == "2")
    assert hl["table-id"] == sent.table_id and hl["url"] == sent.url
    ra, dec = workspace.catalog.rows(["lc0"])[["ra", "dec"]].to_numpy()[0]
    pt = recorder.wait_for("coord.pointAt.sky", where=lambda p: float(p["ra"]) == ra)
    assert float(pt["dec"]) == dec
    # an object never sent is pointed at but cannot be highlighted; with follow_focus off nothing is sent
    assert part.show_focus("m1") == (False, True)
    m1_ra = workspace.catalog.rows(["m1"])["ra"].iloc[0]
    recorder.wait_for("coord.pointAt.sky", where=lambda p: float(p["ra"]) == m1_ra)
    part.follow_focus = False
    n = len(recorder.messages)
    part.session.focus("obj1")
    time.sleep(0.3)
    assert len(recorder.messages) == n


def test_a_row_list_from_the_client_becomes_the_selection(part, hub, recorder):
    part.session.select_ids(["obj0", "obj1", "obj2", "m0"])
    part.send_selection()
    sent = part.last_sent
    recorder.client.notify(
        part.bridge.public_id,
        {
            "samp.mtype": "table.select.rowList",
            "samp.params": {"table-id": sent.table_id, "url": sent.url, "row-list": ["3", "1"]},
        },
    )
    _wait_until(lambda: part.n_received == 1)
    assert sorted(part.session.selected_ids) == ["m0", "obj1"]  # rows 3 and 1 of the table sent
    assert "2 objects selected from a SAMP application" in part.session.message
    assert sorted(part.session.undo()) == ["m0", "obj0", "obj1", "obj2"]  # undoable like any selection


def test_when_served_a_received_selection_waits_for_the_document(part, hub, recorder):
    """The SAMP thread never touches the session: it queues the change on the document's event loop."""

    class Doc(Document):
        def __init__(self):
            super().__init__()
            self.queued = []

        def add_next_tick_callback(self, callback):
            self.queued.append(callback)

    part.session.select_ids(["obj0", "ünï"])
    part.send_selection()
    doc = part._doc = Doc()  # what connect() records when served
    reply = recorder.client.call_and_wait(
        part.bridge.public_id,
        {
            "samp.mtype": "table.select.rowList",
            "samp.params": {
                "table-id": part.last_sent.table_id,
                "url": part.last_sent.url,
                "row-list": ["1"],
            },
        },
        str(int(WAIT)),
    )
    assert reply["samp.status"] == "samp.ok" and len(doc.queued) == 1
    assert part.session.selected_ids.tolist() == ["obj0", "ünï"]  # unchanged until the loop runs it
    doc.queued.pop()()
    assert part.session.selected_ids.tolist() == ["ünï"]


def test_unknown_ids_in_a_received_selection_are_left_out(part):
    assert part.apply_selection(["nope"]).tolist() == []
    assert "named no object of this workspace" in part.session.message
    assert part.apply_selection(["nope", "lc1"]).tolist() == ["lc1"]
    assert "1 unknown ids left out" in part.session.message
    assert np.array_equal(part.session.selected_ids, ["lc1"])
