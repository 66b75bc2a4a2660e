"""A real SAMP hub for tests (standard profile, loopback, found through ``SAMP_HUB``) and a client that stands in
for TOPCAT/Aladin, recording every message it gets. Shared by the export and the dashboard SAMP tests."""

from __future__ import annotations

import threading
import time

import pytest
from astropy.table import Table

from explorer.samp import samp_module

samp = samp_module()
WAIT = 30.0  # seconds: only a failing test waits this long; a loaded 2-core CI machine needs the room


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A SAMP hub of our own (standard profile only, loopback), found through ``SAMP_HUB``; stopped afterwards."""
    lockfile = tmp_path / "samp-hub.lock"
    monkeypatch.setenv("SAMP_HUB", f"std-lockurl:file://{lockfile}")
    with samp.conf.set_temp("use_internet", False):
        server = samp.SAMPHubServer(
            web_profile=False, mode="multiple", lockfile=str(lockfile), addr="127.0.0.1"
        )
        server.start()
    try:
        yield server
    finally:
        server.stop()


class Recorder:
    """A SAMP client standing in for TOPCAT/Aladin: loads tables it is sent and records every message."""

    MTYPES = ("table.load.votable", "table.highlight.row", "coord.pointAt.sky", "table.select.rowList")

    def __init__(self, hub):
        self.messages: list[tuple[str, dict]] = []
        self.tables: dict[str, Table] = {}
        self._cond = threading.Condition()
        with samp.conf.set_temp("use_internet", False):
            self.client = samp.SAMPIntegratedClient(name="recorder", addr="127.0.0.1")
            self.client.connect(hub=hub)
        for mtype in self.MTYPES:
            self.client.bind_receive_call(mtype, self._call)
            self.client.bind_receive_notification(mtype, self._notification)

    def _record(self, mtype, params):
        if mtype == "table.load.votable":  # read it now, as TOPCAT would, before confirming
            path = params["url"].removeprefix("file://")
            self.tables[params["table-id"]] = Table.read(path, format="votable")
        with self._cond:
            self.messages.append((mtype, params))
            self._cond.notify_all()

    def _call(self, private_key, sender_id, msg_id, mtype, params, extra):
        self._record(mtype, params)
        self.client.reply(msg_id, {"samp.status": "samp.ok", "samp.result": {}})

    def _notification(self, private_key, sender_id, mtype, params, extra):
        self._record(mtype, params)

    def wait_for(self, mtype: str, timeout: float = WAIT, where=None) -> dict:
        """The params of the latest ``mtype`` message (for which ``where(params)`` holds, if given)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [p for m, p in self.messages if m == mtype and (where is None or where(p))]
                if found:
                    return found[-1]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no {mtype} within {timeout} s; got {[m for m, _ in self.messages]}"
                    )
                self._cond.wait(left)

    def wait_for_client(self, name: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for cid in self.client.get_registered_clients():
                if self.client.get_metadata(cid).get("samp.name") == name:
                    return cid
            time.sleep(0.1)
        raise AssertionError(f"client {name!r} never registered")

    def close(self):
        self.client.disconnect()


@pytest.fixture
def recorder(hub):
    rec = Recorder(hub)
    yield rec
    rec.close()
