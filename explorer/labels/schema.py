"""The label database on disk: its tables, opening a connection, and refusing files that are not label stores.

Tables (schema version 1):

``events``          the append-only history, one row per (object, action); never updated or deleted (triggers
                    refuse it). ``label`` NULL means "unlabelled". Ids increase in commit order.
``batches``         one row per call (add / remove / undo) with its user, kind, and the event-id range it wrote;
                    ``undoes_batch`` links an undo to the batch it reverted.
``current_labels``  the latest event per object, maintained in the same transaction as the events (a
                    materialised view of ``events``; :data:`CURRENT_FROM_HISTORY_SQL` derives the same from
                    scratch and :meth:`LabelStore.verify` compares the two).
``classes``         every class name ever used, in order of first use.
``meta``            ``schema_version`` and who created the file; the file's ``PRAGMA application_id`` is
                    :data:`APPLICATION_ID`.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

from explorer.errors import WorkspaceError

SCHEMA_VERSION = 1
APPLICATION_ID = 0x4C41424C  # "LABL"
LABELS_FILENAME = "labels.sqlite"
_SQLITE_MAGIC = b"SQLite format 3\x00"
_TABLES = {"meta", "batches", "events", "current_labels", "classes"}

_DDL = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE batches (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL CHECK (kind IN ('add', 'remove', 'undo')),
        user TEXT NOT NULL, time TEXT NOT NULL, label TEXT, session TEXT,
        undoes_batch INTEGER REFERENCES batches(id),
        first_event INTEGER, n_events INTEGER NOT NULL)""",
    "CREATE INDEX batches_by_user ON batches(user, id)",
    "CREATE INDEX batches_by_undone ON batches(undoes_batch) WHERE undoes_batch IS NOT NULL",
    """CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        batch INTEGER NOT NULL REFERENCES batches(id),
        object_id TEXT NOT NULL, label TEXT, user TEXT NOT NULL, time TEXT NOT NULL,
        model_version TEXT, map_version TEXT, note TEXT, session TEXT,
        undoes_batch INTEGER REFERENCES batches(id))""",
    "CREATE INDEX events_by_object ON events(object_id, id)",
    """CREATE TABLE current_labels (
        event_id INTEGER PRIMARY KEY, object_id TEXT NOT NULL UNIQUE, label TEXT,
        user TEXT NOT NULL, time TEXT NOT NULL, model_version TEXT, map_version TEXT, note TEXT)""",
    "CREATE INDEX current_by_label ON current_labels(label)",  # counts() reads only this index
    "CREATE TABLE classes (name TEXT PRIMARY KEY, first_event INTEGER NOT NULL)",
    *(
        f"""CREATE TRIGGER {table}_append_only_{action} BEFORE {action} ON {table}
            BEGIN SELECT RAISE(ABORT, 'label {table} are append-only'); END"""
        for table in ("events", "batches")
        for action in ("UPDATE", "DELETE")
    ),
)

#: The current label of every labelled object, derived from the history alone (latest event per object wins).
CURRENT_FROM_HISTORY_SQL = """
    SELECT e.id, e.object_id, e.label, e.user, e.time, e.model_version, e.map_version, e.note
    FROM events AS e JOIN (SELECT max(id) AS id FROM events GROUP BY object_id) AS latest ON e.id = latest.id
    WHERE e.label IS NOT NULL ORDER BY e.id"""

#: Copy the events with ids in [?, ?] into the materialised current_labels table.
REFRESH_CURRENT_SQL = """
    INSERT OR REPLACE INTO current_labels
        (event_id, object_id, label, user, time, model_version, map_version, note)
    SELECT id, object_id, label, user, time, model_version, map_version, note
    FROM events WHERE id BETWEEN ? AND ?"""


def is_busy(err: sqlite3.Error) -> bool:
    """True when ``err`` only says another connection holds a lock (worth waiting and retrying)."""
    if not isinstance(err, sqlite3.OperationalError):
        return False
    code = getattr(err, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(err) or "busy" in str(err)


def utc_now() -> str:
    """The current time as UTC ISO 8601 with microseconds, e.g. ``2025-01-31T12:00:00.123456+00:00``."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def resolve_path(path: str | Path) -> Path:
    """The database file for ``path``: the path itself, or ``path/labels.sqlite`` when it is a folder."""
    file = Path(path).expanduser()
    if file.is_dir():
        file = file / LABELS_FILENAME
    if not file.parent.is_dir():
        raise WorkspaceError(
            f"{file}: folder {file.parent} does not exist; create the workspace first or fix the path"
        )
    if file.exists() and file.stat().st_size > 0:
        with open(file, "rb") as handle:
            head = handle.read(len(_SQLITE_MAGIC))
        if head != _SQLITE_MAGIC:
            raise WorkspaceError(
                f"{file}: not a label database (not even a SQLite file); move it away or pass another path"
            )
    return file


def connect(file: Path, timeout: float) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), waiting up to ``timeout`` s for locks.

    ``synchronous=FULL``: in WAL mode every commit fsyncs the WAL, so a label whose call returned survives
    a power loss, not only a killed process (NORMAL would survive SIGKILL but may lose the last commits
    on power loss). ``fullfsync`` makes macOS flush the drive cache too; it is ignored elsewhere.
    """
    existed = {p: p.exists() for p in (Path(f"{file}-wal"), Path(f"{file}-shm"))}
    conn = sqlite3.connect(file, timeout=timeout, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA fullfsync=ON")
    except sqlite3.Error:
        conn.close()  # and remove the side files this failed attempt made, so a damaged store stays as it was
        for side, was_there in existed.items():
            if not was_there:
                side.unlink(missing_ok=True)
        raise
    return conn


def _inspect(conn: sqlite3.Connection, file: Path) -> bool:
    """True for a label store this code can use, False for an empty database; raise for anything else."""
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            return False
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        if app_id != APPLICATION_ID or "meta" not in tables:
            shown = ", ".join(sorted(tables)[:6])
            raise WorkspaceError(
                f"{file}: a SQLite database but not a label store (tables: {shown}); pass another path, "
                f"e.g. <workspace>/{LABELS_FILENAME}"
            )
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.DatabaseError as err:
        if is_busy(err):
            raise  # another process is creating or recovering it: the caller waits and retries
        raise WorkspaceError(f"{file}: not a readable label database ({err}); pass another path") from None
    version = int(meta.get("schema_version", "0"))
    if version > SCHEMA_VERSION:
        raise WorkspaceError(
            f"{file}: label schema version {version} is newer than this explorer understands "
            f"({SCHEMA_VERSION}); upgrade astro-embedding-explorer to open it"
        )
    if version < 1 or not _TABLES <= tables:
        raise WorkspaceError(
            f"{file}: damaged label store (schema version {version}, missing tables "
            f"{sorted(_TABLES - tables)}); restore it from a backup or pass another path"
        )
    return True


def prepare(conn: sqlite3.Connection, file: Path, begin_write) -> None:
    """Check that ``file`` is a label store, or create the schema in an empty one; never touch others.

    ``begin_write(conn)`` must start a ``BEGIN IMMEDIATE`` transaction, retrying while locked.
    """
    if _inspect(conn, file):
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            conn.execute("PRAGMA journal_mode=WAL")
        return
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if mode.lower() != "wal":
        raise WorkspaceError(
            f"{file}: SQLite cannot use write-ahead logging here (journal mode {mode!r}); keep the "
            "workspace on a local disk, not a network file system"
        )
    begin_write(conn)
    try:
        if not _inspect(conn, file):  # another process may have created it while we waited
            for statement in _DDL:
                conn.execute(statement)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            from explorer import __version__

            conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [
                    ("schema_version", str(SCHEMA_VERSION)),
                    ("created_by", f"astro-embedding-explorer {__version__}"),
                    ("created_at", utc_now()),
                ],
            )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
