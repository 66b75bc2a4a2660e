"""Appending one batch of label events (add, remove, undo) inside an open write transaction."""

from __future__ import annotations

import sqlite3

from explorer.labels import schema

# For each event of a batch: what it set, the object's current label and who/what set that, and the
# event before it (the label to restore).
_UNDO_PLAN_SQL = """
    SELECT e.object_id, e.label, c.label, cur.user, cur.undoes_batch,
           prev.label, prev.model_version, prev.map_version, prev.note
    FROM events AS e
    JOIN current_labels AS c ON c.object_id = e.object_id
    JOIN events AS cur ON cur.id = c.event_id
    LEFT JOIN events AS prev ON prev.id =
        (SELECT max(q.id) FROM events AS q WHERE q.object_id = e.object_id AND q.id < e.id)
    WHERE e.id BETWEEN ? AND ? ORDER BY e.id"""


def write_batch(
    conn: sqlite3.Connection,
    kind: str,
    user: str,
    label: str | None,
    session: str | None,
    undoes: int | None,
    rows: list[tuple],
) -> int:
    """Append one batch: ``rows`` are ``(object_id, label, model_version, map_version, note)``."""
    now = schema.utc_now()  # taken under the write lock, so times increase with event ids
    first = _next_id(conn, "events")
    cursor = conn.execute(
        "INSERT INTO batches (kind, user, time, label, session, undoes_batch, first_event, n_events) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (kind, user, now, label, session, undoes, first if rows else None, len(rows)),
    )
    batch = cursor.lastrowid
    conn.executemany(
        "INSERT INTO events (id, batch, object_id, label, user, time, model_version, map_version, note, "
        "session, undoes_batch) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            (first + k, batch, oid, lab, user, now, model, map_, note, session, undoes)
            for k, (oid, lab, model, map_, note) in enumerate(rows)
        ),
    )
    if rows:
        conn.execute(schema.REFRESH_CURRENT_SQL, (first, first + len(rows) - 1))
    if label is not None:
        conn.execute("INSERT OR IGNORE INTO classes (name, first_event) VALUES (?, ?)", (label, first))
    return batch


def _next_id(conn: sqlite3.Connection, table: str) -> int:
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)).fetchone()
    return (row[0] if row else 0) + 1


def undo_latest(conn: sqlite3.Connection, user: str) -> tuple[list[str], int, int | None]:
    """Append the undo of ``user``'s latest batch not yet undone: (ids restored, ids skipped, batch)."""
    found = conn.execute(
        "SELECT id, first_event, n_events FROM batches AS b WHERE user = ? AND kind != 'undo' "
        "AND NOT EXISTS (SELECT 1 FROM batches AS u WHERE u.undoes_batch = b.id) "
        "ORDER BY id DESC LIMIT 1",
        (user,),
    ).fetchone()
    if found is None:
        return [], 0, None
    target, first, n_events = found
    rows, skipped = [], 0
    for oid, set_to, now_label, now_user, now_is_undo, *previous in conn.execute(
        _UNDO_PLAN_SQL, (first, first + n_events - 1)
    ):
        if now_label == set_to and (now_user == user or now_is_undo is not None):
            rows.append((oid, *previous))
        else:
            skipped += 1
    write_batch(conn, "undo", user, None, None, target, rows)
    return [row[0] for row in rows], skipped, target
