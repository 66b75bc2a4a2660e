"""SAMP: send objects to TOPCAT or Aladin, highlight one, point a sky viewer, and receive row selections back.

Uses ``pyvo.samp`` (pyvo >= 1.5), or ``astropy.samp`` (deprecated in astropy 8) with its warning silenced when
pyvo has none. The bridge only ever talks to a hub on this machine: it advertises itself on 127.0.0.1 and never
probes the internet (the SAMP library's ``use_internet`` check is switched off while it connects).

Tables are sent as VOTable files (``table.load.votable`` with a ``file://`` URL) written to a folder that
outlives the message, so a receiver may read them at its own pace and a later ``explorer samp listen`` can map a
``table.select.rowList`` that refers to one back to object ids (by the table's ``id`` column).

Examples
--------
>>> with SampBridge(ws) as bridge:  # doctest: +SKIP
...     bridge.send_table(["J0001", "J0002"])
...     bridge.highlight("J0002")
...     bridge.on_selection(lambda ids: print("TOPCAT selected", ids))
"""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
import tempfile
import threading
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np

from explorer.errors import DataError, ExplorerError
from explorer.export import export_table, provenance
from explorer.export_formats import ExportBundle, get_writer, write_json_atomic
from explorer.workspace import Workspace, safe_name, utc_now

log = logging.getLogger(__name__)

MTYPE_LOAD = "table.load.votable"
MTYPE_HIGHLIGHT = "table.highlight.row"
MTYPE_SELECT = "table.select.rowList"
MTYPE_POINT = "coord.pointAt.sky"
ID_COLUMNS = ("id", "id_str", "object_id", "objid", "source_id", "name")


def samp_module():
    """``pyvo.samp`` if pyvo ships it, else ``astropy.samp`` (its deprecation warning silenced)."""
    try:
        import pyvo.samp as samp

        return samp
    except ImportError:
        from astropy.utils.exceptions import AstropyDeprecationWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyDeprecationWarning)
            import astropy.samp as samp
        return samp


@contextlib.contextmanager
def _offline(samp):
    """Keep the SAMP library from probing the internet (it fetches a web page to choose its host name)."""
    with samp.conf.set_temp("use_internet", False):
        yield


@dataclass
class SentTable:
    """A table this bridge sent: its SAMP table id, URL, file, and the object id of each row."""

    table_id: str
    url: str
    path: Path
    ids: list[str]

    def __post_init__(self) -> None:
        self._rows = {oid: row for row, oid in enumerate(self.ids)}

    def row_of(self, object_id: str) -> int | None:
        """Row of ``object_id`` in the table (``None`` if it is not there)."""
        return self._rows.get(object_id)


def _path_of_url(url: str) -> Path | None:
    parsed = urlparse(url)
    if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
        return None
    return Path(unquote(parsed.path))


def ids_from_votable(path: Path) -> list[str]:
    """Object ids of the rows of a table file (its ``id`` column, or ``id_str``, ``object_id``...)."""
    from astropy.table import Table

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = Table.read(path)
    except Exception as err:  # astropy raises many kinds for a file it cannot read
        raise DataError(f"{path}: cannot read the table a SAMP selection refers to ({err})") from err
    lower = {c.lower(): c for c in table.colnames}
    col = next((lower[c] for c in ID_COLUMNS if c in lower), None)
    if col is None:
        raise DataError(f"{path}: the selected table has no id column (looked for {', '.join(ID_COLUMNS)})")
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in table[col].tolist()]


class SampBridge:
    """One SAMP client for a workspace: send tables, highlight rows, point at the sky, hear row selections.

    Parameters
    ----------
    ws : Workspace
    name : str
        The client name other applications show (``samp.name``).
    folder : path, optional
        Where sent VOTables are written (default: a temporary folder removed by :meth:`close`).
    hub_params : dict, optional
        Lock-file contents of the hub to use; default the one ``SAMP_HUB`` or ``~/.samp`` names.
    timeout : float
        Seconds to wait for a receiver to confirm it loaded a table.

    Notes
    -----
    Callbacks given to :meth:`on_selection` run on the SAMP client's server thread; an app must hand the ids
    to its own event loop (e.g. ``pn.state.execute``).
    """

    def __init__(
        self,
        ws: Workspace,
        *,
        name: str = "astro-embedding-explorer",
        folder: str | Path | None = None,
        hub_params: dict | None = None,
        timeout: float = 10.0,
    ):
        self.ws = ws
        self.name = name
        self.timeout = float(timeout)
        self.hub_params = hub_params
        self._own_folder = folder is None
        self.folder = Path(tempfile.mkdtemp(prefix="explorer-samp-")) if folder is None else Path(folder)
        self._client = None
        self._samp = samp_module()
        self._sent: list[SentTable] = []
        self._callbacks: list[Callable[[list[str]], None]] = []
        self._lock = threading.Lock()
        self.last_selection: list[str] | None = None

    # ------------------------------------------------------------------ connection
    @property
    def connected(self) -> bool:
        """Whether the bridge's client is connected to a SAMP hub now."""
        return self._client is not None and self._client.is_connected

    @property
    def public_id(self) -> str | None:
        """This client's public id on the hub (what other clients address it by); ``None`` when not connected."""
        return self._client.get_public_id() if self.connected else None

    def connect(self) -> SampBridge:
        """Register with the running hub; :class:`ExplorerError` if there is none."""
        if self.connected:
            return self
        samp = self._samp
        with _offline(samp):
            client = samp.SAMPIntegratedClient(
                name=self.name,
                description="astro-embedding-explorer: survey objects by their embeddings",
                metadata={"explorer.version": _version()},
                addr="127.0.0.1",
            )
            try:
                client.connect(hub_params=self.hub_params)
            except (samp.SAMPHubError, samp.SAMPClientError, samp.SAMPProxyError, OSError, KeyError) as err:
                raise ExplorerError(
                    f"no SAMP hub to connect to ({err}); start TOPCAT or Aladin (each runs a hub) "
                    "and try again"
                ) from None
        self._client = client
        client.bind_receive_notification(MTYPE_SELECT, self._on_select_notification)
        client.bind_receive_call(MTYPE_SELECT, self._on_select_call)
        return self

    def close(self) -> None:
        """Unregister from the hub and remove the temporary folder of sent tables (if the bridge made it)."""
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):  # the hub may already be gone
                client.disconnect()
        if self._own_folder:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> SampBridge:
        return self.connect()

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _require(self):
        if not self.connected:
            raise ExplorerError("the SAMP bridge is not connected; call connect() first")
        return self._client

    def clients(self, mtype: str | None = None) -> dict[str, str]:
        """Other registered clients (public id -> name), only those subscribed to ``mtype`` if given.

        The hub itself (which registers as a client too) is left out.
        """
        client = self._require()
        ids = client.get_subscribed_clients(mtype) if mtype else client.get_registered_clients()
        # the hub registers as a client too; the SAMP library keeps its id private
        hub_id = getattr(getattr(client, "client", None), "_hub_id", None)
        return {cid: client.get_metadata(cid).get("samp.name", cid) for cid in ids if cid != hub_id}

    # ------------------------------------------------------------------ sending
    def write_table(self, ids: Sequence[str], name: str = "explorer") -> SentTable:
        """Write the export table of ``ids`` as a VOTable in :attr:`folder` (no message sent)."""
        ids = list(dict.fromkeys(str(i) for i in ids))
        if not ids:
            raise DataError("no objects to send; choose at least one object")
        table, versions = export_table(self.ws, ids)
        prov = provenance(self.ws, f"SAMP table {name!r}", len(table), versions)
        table_id = f"explorer-{uuid.uuid4().hex[:12]}"
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{table_id}.vot"
        tmp = path.with_name(f".{path.name}.tmp")
        get_writer("votable").func(ExportBundle(table, prov), tmp)
        tmp.replace(path)
        sent = SentTable(table_id, path.resolve().as_uri(), path, ids)
        with self._lock:
            self._sent.append(sent)
        return sent

    def send_table(self, ids: Sequence[str], *, name: str = "explorer selection") -> SentTable:
        """Send the objects as a VOTable (``table.load.votable``) to every client that loads tables.

        Waits up to ``timeout`` s for each receiver to confirm; a receiver that fails or does not answer is a
        warning. :class:`ExplorerError` if no connected client loads tables.
        """
        client = self._require()
        receivers = self.clients(MTYPE_LOAD)
        if not receivers:
            raise ExplorerError(
                "no SAMP client that loads tables (table.load.votable) is connected to the hub; "
                "start TOPCAT or Aladin first"
            )
        sent = self.write_table(ids, name)
        message = {
            "samp.mtype": MTYPE_LOAD,
            "samp.params": {"url": sent.url, "table-id": sent.table_id, "name": name},
        }
        for cid, cname in receivers.items():
            try:
                reply = client.call_and_wait(cid, message, str(max(1, math.ceil(self.timeout))))
            except Exception as err:  # SAMPProxyError on timeout, xmlrpc faults from the receiver
                warnings.warn(
                    f"SAMP client {cname!r} did not confirm loading the table ({err})", stacklevel=2
                )
                continue
            if reply.get("samp.status") == "samp.error":
                warnings.warn(
                    f"SAMP client {cname!r} could not load the table: "
                    f"{reply.get('samp.error', {}).get('samp.errortxt', reply)}",
                    stacklevel=2,
                )
        return sent

    def _table_with(self, object_ids: Sequence[str]) -> SentTable:
        with self._lock:
            sent = list(self._sent)
        for table in reversed(sent):
            if all(table.row_of(i) is not None for i in object_ids):
                return table
        raise DataError(f"object {object_ids[0]!r} is not in any table sent over SAMP; send_table() it first")

    def highlight(self, object_id: str) -> None:
        """Highlight one object's row (``table.highlight.row``) in the latest sent table holding it."""
        table = self._table_with([str(object_id)])
        self._require().notify_all(
            {
                "samp.mtype": MTYPE_HIGHLIGHT,
                "samp.params": {
                    "table-id": table.table_id,
                    "url": table.url,
                    "row": str(table.row_of(str(object_id))),
                },
            }
        )

    def send_selection(self, ids: Sequence[str]) -> None:
        """Select rows (``table.select.rowList``) of the latest sent table that holds all of ``ids``."""
        ids = [str(i) for i in ids]
        if not ids:
            raise DataError("no objects to select; choose at least one object")
        table = self._table_with(ids)
        rows = [str(table.row_of(i)) for i in ids]
        self._require().notify_all(
            {
                "samp.mtype": MTYPE_SELECT,
                "samp.params": {"table-id": table.table_id, "url": table.url, "row-list": rows},
            }
        )

    def point_at(self, ra: float, dec: float) -> None:
        """Point sky viewers (Aladin) at ``ra, dec`` in degrees (``coord.pointAt.sky``)."""
        ra, dec = float(ra), float(dec)
        if not (math.isfinite(ra) and math.isfinite(dec) and 0 <= ra <= 360 and -90 <= dec <= 90):
            raise DataError(
                f"cannot point at ra={ra}, dec={dec}; need 0 <= ra <= 360 and -90 <= dec <= 90 degrees"
            )
        self._require().notify_all(
            {"samp.mtype": MTYPE_POINT, "samp.params": {"ra": repr(ra), "dec": repr(dec)}}
        )

    # ------------------------------------------------------------------ receiving
    def on_selection(self, callback: Callable[[list[str]], None]) -> None:
        """Call ``callback(ids)`` whenever another application sends a ``table.select.rowList``."""
        self._callbacks.append(callback)

    def _on_select_notification(self, private_key, sender_id, mtype, params, extra):
        try:
            self._handle_selection(sender_id, params)
        except ExplorerError as err:
            log.warning("ignored a SAMP row selection from %s: %s", sender_id, err)

    def _on_select_call(self, private_key, sender_id, msg_id, mtype, params, extra):
        try:
            self._handle_selection(sender_id, params)
            self._client.reply(msg_id, {"samp.status": "samp.ok", "samp.result": {}})
        except Exception as err:
            self._client.reply(
                msg_id, {"samp.status": "samp.error", "samp.error": {"samp.errortxt": str(err)}}
            )

    def rows_to_ids(self, params: dict) -> list[str]:
        """Object ids of a ``table.select.rowList``'s rows: from a table this bridge sent, else from the file."""
        table_id, url = params.get("table-id"), params.get("url")
        with self._lock:
            known = next(
                (t for t in reversed(self._sent) if t.table_id == table_id or (url and t.url == url)), None
            )
        if known is not None:
            table_ids = known.ids
        else:
            path = _path_of_url(url or "")
            if path is None or not path.exists():
                raise DataError(
                    f"a SAMP selection refers to table {table_id!r} at {url!r}, which this bridge did "
                    "not send and cannot read; send the table from explorer first"
                )
            table_ids = ids_from_votable(path)
        rows = [int(r) for r in params.get("row-list", [])]
        bad = [r for r in rows if not 0 <= r < len(table_ids)]
        if bad:
            warnings.warn(
                f"SAMP selection has rows {bad[:5]} outside the table of {len(table_ids)} rows; ignored",
                stacklevel=2,
            )
        return list(dict.fromkeys(table_ids[r] for r in rows if 0 <= r < len(table_ids)))

    def _handle_selection(self, sender_id, params: dict) -> None:
        ids = self.rows_to_ids(params)
        self.last_selection = ids
        for callback in list(self._callbacks):
            try:
                callback(ids)
            except Exception:  # a broken callback must not break the SAMP client thread
                log.exception("SAMP selection callback %r failed", callback)


def _version() -> str:
    from explorer import __version__

    return __version__


# ---------------------------------------------------------------------------------------------- saved selections
def save_selection(
    ws: Workspace, name: str, ids: Sequence[str], *, source: str = "samp", overwrite: bool = False
) -> Path:
    """Save ``ids`` as the workspace selection ``name`` (ids that are not in the catalogue are dropped).

    The record is ``{"geometry": {"kind": "ids", ...}, "map_version": <current map>, "ids": [...], "source",
    "created"}``: explicit ids, valid on any map.
    """
    name = safe_name(name, "selection")
    ids = list(dict.fromkeys(str(i) for i in ids))
    known = ws.catalog.contains(ids)
    if not known.all():
        warnings.warn(
            f"{int((~known).sum())} selected ids are not in the workspace (first: "
            f"{np.asarray(ids, dtype=object)[~known][0]!r}); left out",
            stacklevel=2,
        )
        ids = [i for i, k in zip(ids, known, strict=True) if k]
    if not ids:
        raise DataError(f"selection {name!r} has no object of this workspace; nothing saved")
    path = ws.selection_path(name)
    path.parent.mkdir(exist_ok=True)
    record = {
        "geometry": {"kind": "ids", "ids": ids, "map_version": None},
        "map_version": ws.current("maps"),
        "ids": ids,
        "source": source,
        "created": utc_now(),
    }
    write_json_atomic(path, record, overwrite=overwrite)
    return path


def listen_for_selection(bridge: SampBridge, timeout: float) -> list[str]:
    """Wait up to ``timeout`` s for one ``table.select.rowList`` and return its ids."""
    got = threading.Event()
    result: list[list[str]] = []

    def receive(ids: list[str]) -> None:
        result.append(ids)
        got.set()

    bridge.on_selection(receive)
    if not got.wait(timeout):
        raise ExplorerError(
            f"no row selection arrived over SAMP within {timeout:g} s; select rows in TOPCAT "
            "and broadcast them (Subsets > Transmit) or pass a longer --timeout"
        )
    return result[0]


__all__ = [
    "SampBridge",
    "SentTable",
    "ids_from_votable",
    "listen_for_selection",
    "samp_module",
    "save_selection",
]
