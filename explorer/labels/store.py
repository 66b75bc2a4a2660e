"""LabelStore: add, remove and undo labels in an append-only SQLite history shared safely by processes and threads."""

from __future__ import annotations

import operator
import os
import random
import sqlite3
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from explorer.errors import DataError, WorkspaceError
from explorer.labels import schema
from explorer.labels.batches import undo_latest, write_batch
from explorer.labels.frames import CURRENT_COLUMNS, HISTORY_COLUMNS, to_frame
from explorer.labels.names import (
    BUILTIN_LABELS,
    check_ids,
    check_optional_text,
    check_user,
    normalise_label,
)

if TYPE_CHECKING:
    import pandas as pd

T = TypeVar("T")
_CHUNK = 10_000  # ids per "IN (...)" query: well under SQLite's bound-parameter limit
_CURRENT_SELECT = (
    "SELECT object_id, label, user, time, model_version, map_version, note, event_id FROM current_labels"
)
_HISTORY_SELECT = (
    "SELECT id, batch, object_id, label, user, time, model_version, map_version, note, session, "
    "undoes_batch FROM events"
)


class LabelStore:
    """The labels of one workspace: an append-only history in one SQLite file (WAL mode).

    Every call that changes labels appends events in one ``BEGIN IMMEDIATE`` transaction, committed with
    ``synchronous=FULL`` before the call returns: a label whose call returned survives the process being
    killed (and a power loss). Nothing is ever updated or deleted in the history; "unlabel" and "undo"
    are new events. Concurrent writers (processes or threads) queue for the write lock for up to
    ``timeout`` seconds instead of failing.

    Each thread gets its own connection, so one store may be shared by the sessions Panel serves on
    threads; each process must open its own store (a store inherited through ``fork`` opens new
    connections in the child).

    Parameters
    ----------
    path : str or Path
        The database file, created with its schema if absent; a folder means ``folder/labels.sqlite``.
    timeout : float
        Seconds to wait for another writer before raising :class:`WorkspaceError`.

    Examples
    --------
    >>> with LabelStore(tmp_path / "labels.sqlite") as store:  # doctest: +SKIP
    ...     batch = store.add(["J0001", "J0002"], "anomaly", user="alice", map_version="map-0001")
    ...     store.undo(user="alice")
    ['J0001', 'J0002']
    """

    def __init__(self, path: str | Path, *, timeout: float = 30.0) -> None:
        self.path = schema.resolve_path(path)
        self.timeout = float(timeout)
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()  # threads of this process queue here, not in SQLite's busy loop
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._inherited: list[sqlite3.Connection] = []
        self._pid = os.getpid()
        self._closed = False
        try:
            conn = self._connection()
            self._retry(lambda: schema.prepare(conn, self.path, self._begin_write))
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ connections and transactions
    def _connection(self) -> sqlite3.Connection:
        if self._closed:
            raise WorkspaceError(f"{self.path}: this LabelStore was closed; open a new LabelStore")
        if os.getpid() != self._pid:  # forked: never use the parent's connections (SQLite forbids it)
            self._inherited.extend(self._connections)
            self._connections, self._local = [], threading.local()
            self._lock, self._write_lock, self._pid = threading.Lock(), threading.Lock(), os.getpid()
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = schema.connect(self.path, self.timeout)
            except sqlite3.Error as err:
                raise WorkspaceError(f"{self.path}: cannot open the label database ({err})") from None
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def _retry(self, action: Callable[[], T]) -> T:
        """Run ``action``, retrying while another connection holds the lock, up to ``timeout`` s in all."""
        deadline = time.monotonic() + self.timeout
        delay = 0.005
        while True:
            try:
                return action()
            except sqlite3.OperationalError as err:
                if not schema.is_busy(err):
                    _raise_for_disk(err, self.path)
                    raise
                if time.monotonic() >= deadline:
                    raise WorkspaceError(
                        f"{self.path}: the label database stayed locked for {self.timeout:g} s by another "
                        "process; close other sessions writing labels or pass a larger timeout"
                    ) from err
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.2)

    @staticmethod
    def _begin_write(conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")

    def _transaction(self, body: Callable[[sqlite3.Connection], T], *, write: bool) -> T:
        """Run ``body(conn)`` in one transaction (``BEGIN IMMEDIATE`` for writes), all or nothing."""
        conn = self._connection()

        def attempt() -> T:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                result = body(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return result

        if not write:
            return self._retry(attempt)
        if not self._write_lock.acquire(timeout=self.timeout):
            raise WorkspaceError(
                f"{self.path}: another thread kept writing labels for {self.timeout:g} s; pass a larger timeout"
            )
        try:
            return self._retry(attempt)
        finally:
            self._write_lock.release()

    def _select(self, sql: str, params: Sequence = ()) -> list[tuple]:
        return self._transaction(lambda conn: conn.execute(sql, params).fetchall(), write=False)

    def _select_ids(self, sql: str, ids: list[str]) -> list[tuple]:
        """Rows of ``sql`` (ending in ``IN ({})``) for all ``ids``, queried in chunks in one snapshot."""

        def body(conn: sqlite3.Connection) -> list[tuple]:
            rows: list[tuple] = []
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                rows += conn.execute(sql.format(",".join("?" * len(chunk))), chunk).fetchall()
            return rows

        return self._transaction(body, write=False)

    def close(self) -> None:
        """Close every connection this store opened (all threads). Committed labels are already on disk."""
        self._closed = True
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()

    def __enter__(self) -> LabelStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LabelStore({str(self.path)!r})"

    # ------------------------------------------------------------------ writing
    def add(
        self,
        ids: Sequence[str],
        label: str,
        *,
        user: str,
        model_version: str | None = None,
        map_version: str | None = None,
        note: str | None = None,
        session: str | None = None,
    ) -> int:
        """Give every object in ``ids`` the class ``label``, in one transaction; return the batch id.

        All events are written, or none (on any error nothing changes). Repeated ids count once.
        ``model_version`` and ``map_version`` record what the user was looking at, so the label can be
        replayed later; ``session`` names the app session or script that wrote it.
        """
        return self._append(
            "add", ids, normalise_label(label), user, model_version, map_version, note, session
        )

    def remove(
        self,
        ids: Sequence[str],
        *,
        user: str,
        model_version: str | None = None,
        map_version: str | None = None,
        note: str | None = None,
        session: str | None = None,
    ) -> int:
        """Unlabel every object in ``ids`` (a new event with no label; the history keeps the old one)."""
        return self._append("remove", ids, None, user, model_version, map_version, note, session)

    def _append(
        self,
        kind: str,
        ids: Iterable[str],
        label: str | None,
        user: str,
        model_version: str | None,
        map_version: str | None,
        note: str | None,
        session: str | None,
    ) -> int:
        objects = check_ids(ids)
        user = check_user(user)
        texts = [
            check_optional_text(value, what)
            for value, what in (
                (model_version, "model_version"),
                (map_version, "map_version"),
                (note, "note"),
                (session, "session"),
            )
        ]
        rows = [(oid, label, *texts[:3]) for oid in objects]
        return self._transaction(
            lambda conn: write_batch(conn, kind, user, label, texts[3], None, rows), write=True
        )

    def undo(self, *, user: str) -> list[str]:
        """Undo ``user``'s most recent add or remove that is not undone yet; return the ids restored.

        The undo is a new batch of events giving each object the label it had just before that batch.
        Objects relabelled since by someone else (their label is no longer the one the batch set, or the
        latest event is another user's label) are left as they are, with a warning. Calling ``undo``
        again walks further back through the same user's batches; other users' batches are never undone.
        Returns ``[]`` when the user has nothing left to undo.
        """
        user = check_user(user)
        restored, skipped, target = self._transaction(lambda conn: undo_latest(conn, user), write=True)
        if skipped:
            warnings.warn(
                f"{self.path}: undo of batch {target} left {skipped} object(s) unchanged because another "
                "user relabelled them since",
                stacklevel=2,
            )
        return restored

    # ------------------------------------------------------------------ reading
    def current(self) -> pd.DataFrame:
        """One row per labelled object: ``id, label, user, time, model_version, map_version, note, event_id``.

        The latest event per object wins; unlabelled objects have no row. ``time`` is a UTC timestamp.
        Rows are in the order of their latest event.
        """
        rows = self._select(f"{_CURRENT_SELECT} WHERE label IS NOT NULL ORDER BY event_id")
        return to_frame(rows, CURRENT_COLUMNS)

    def history(self, ids: Sequence[str] | None = None) -> pd.DataFrame:
        """Every event (of ``ids`` if given), oldest first; ``label`` is NA where an object was unlabelled."""
        if ids is None:
            rows = self._select(f"{_HISTORY_SELECT} ORDER BY id")
        else:
            rows = sorted(self._select_ids(f"{_HISTORY_SELECT} WHERE object_id IN ({{}})", _ids(ids)))
        return to_frame(rows, HISTORY_COLUMNS)

    def label_of(self, ids: Sequence[str]) -> dict[str, str]:
        """The current label of each of ``ids`` that is labelled (unlabelled and unknown ids are absent)."""
        sql = "SELECT object_id, label FROM current_labels WHERE label IS NOT NULL AND object_id IN ({})"
        return dict(self._select_ids(sql, _ids(ids)))

    def classes(self) -> list[str]:
        """The built-in classes, then every other class name ever used, in order of first use."""
        used = [row[0] for row in self._select("SELECT name FROM classes ORDER BY first_event")]
        return list(BUILTIN_LABELS) + [name for name in used if name not in BUILTIN_LABELS]

    def counts(self) -> dict[str, int]:
        """Number of objects currently holding each class (every class of :meth:`classes`, zeros included)."""

        def body(conn: sqlite3.Connection) -> dict[str, int]:
            names = [row[0] for row in conn.execute("SELECT name FROM classes ORDER BY first_event")]
            sql = "SELECT label, count(*) FROM current_labels WHERE label IS NOT NULL GROUP BY label"
            found = dict(conn.execute(sql).fetchall())
            return {name: found.get(name, 0) for name in dict.fromkeys([*BUILTIN_LABELS, *names])}

        return self._transaction(body, write=False)

    def changed_since(self, event_id: int) -> pd.DataFrame:
        """Objects whose label changed after event ``event_id``, one row each, as :meth:`current` columns.

        ``label`` is NA for an object unlabelled since. Poll with the largest ``event_id`` seen so far
        (``frame.event_id.max()``, or 0 at first): events are numbered in commit order, so none is missed.
        """
        try:
            cursor = operator.index(event_id)  # int or numpy integer, e.g. frame.event_id.max()
        except TypeError:
            cursor = -1
        if cursor < 0 or isinstance(event_id, bool):
            raise DataError(f"event_id {event_id!r} must be an integer >= 0 (0 = from the beginning)")
        sql = (
            "SELECT object_id, label, user, time, model_version, map_version, note, id FROM events "
            # "+object_id" keeps SQLite on the id range instead of scanning the whole object index
            "WHERE id IN (SELECT max(id) FROM events WHERE id > ? GROUP BY +object_id) ORDER BY id"
        )
        return to_frame(self._select(sql, (cursor,)), CURRENT_COLUMNS)

    def last_event_id(self) -> int:
        """The id of the newest event (0 for an empty store)."""
        return int(self._select("SELECT coalesce(max(id), 0) FROM events")[0][0])

    def verify(self) -> None:
        """Raise :class:`WorkspaceError` unless SQLite's integrity check passes and the materialised
        current labels equal those derived from the history alone."""

        def body(conn: sqlite3.Connection) -> tuple[str, bool]:
            check = conn.execute("PRAGMA integrity_check").fetchone()[0]
            derived = conn.execute(schema.CURRENT_FROM_HISTORY_SQL).fetchall()
            stored = conn.execute(
                "SELECT event_id, object_id, label, user, time, model_version, map_version, note "
                "FROM current_labels WHERE label IS NOT NULL ORDER BY event_id"
            ).fetchall()
            return check, derived == stored

        check, same = self._transaction(body, write=False)
        if check != "ok" or not same:
            raise WorkspaceError(
                f"{self.path}: label database check failed (integrity: {check}; current labels match "
                f"history: {same}); copy the file aside and report it"
            )


def _raise_for_disk(err: sqlite3.OperationalError, path: Path) -> None:
    """Turn the errors a user fixes on their disk (read-only, full, unreadable) into a WorkspaceError."""
    hints = {
        sqlite3.SQLITE_READONLY: "the file or its folder is read-only; fix the permissions or copy the workspace",
        sqlite3.SQLITE_FULL: "the disk is full; free some space (no label was written by this call)",
        sqlite3.SQLITE_CANTOPEN: "the file cannot be opened; check the folder exists and is writable",
        sqlite3.SQLITE_IOERR: "the disk reported an I/O error; check the disk and copy the file aside",
    }
    hint = hints.get((getattr(err, "sqlite_errorcode", 0) or 0) & 0xFF)
    if hint:
        raise WorkspaceError(f"{path}: {err}: {hint}") from err


def _ids(ids: Sequence[str]) -> list[str]:
    return check_ids(ids, allow_empty=True)
