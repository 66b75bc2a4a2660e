"""LabelStore behaviour a user notices: labels persist, undo restores, odd ids round-trip, bad files are refused."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import random
import sqlite3
import threading
import time
import warnings

import pandas as pd
import pytest

from explorer.errors import DataError, WorkspaceError
from explorer.labels import Label, LabelStore, normalise_label
from explorer.labels import batches as batches_module

ODD_IDS = [
    "J1234+5678",
    "a/b/c",
    "<b>&amp;\"'</b>",
    "é漢字😀",
    " spaced ",
    "tab\tid",
    "new\nline",
    "x" * 1000,
    "'; DROP TABLE events; --",
    "%_*?",
    "0",
]


@pytest.fixture
def store(tmp_path):
    with LabelStore(tmp_path / "labels.sqlite") as s:
        yield s


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------ files
def test_new_store_is_a_wal_sqlite_file_and_labels_persist_across_reopen(tmp_path):
    with LabelStore(tmp_path) as store:  # a folder means folder/labels.sqlite
        store.add(["a", "b"], "anomaly", user="alice", model_version="emb-0001", map_version="map-0002")
    path = tmp_path / "labels.sqlite"
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with LabelStore(path) as store:
        current = store.current()
        assert store._connection().execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert current["id"].tolist() == ["a", "b"]
    assert set(current["label"]) == {"anomaly"}
    assert set(current["map_version"]) == {"map-0002"} and set(current["model_version"]) == {"emb-0001"}
    assert str(current["time"].dt.tz) == "UTC"
    assert (pd.Timestamp.now(tz="UTC") - current["time"]).max() < pd.Timedelta(minutes=1)


def test_missing_folder_is_refused(tmp_path):
    with pytest.raises(WorkspaceError, match="does not exist"):
        LabelStore(tmp_path / "nope" / "labels.sqlite")


def test_a_sqlite_file_of_something_else_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE galaxies (id TEXT, z REAL)")
        raw.execute("INSERT INTO galaxies VALUES ('a', 0.1)")
    raw.close()
    before = _digest(path)
    with pytest.raises(WorkspaceError, match="not a label store.*galaxies"):
        LabelStore(path)
    assert _digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.sqlite"]


@pytest.mark.parametrize(
    "content", [os.urandom(5000), b"id,label\na,anomaly\n", b"SQLite format 3\x00" + b"\xff" * 200]
)
def test_a_file_that_is_not_a_database_is_refused_and_left_untouched(tmp_path, content):
    path = tmp_path / "labels.sqlite"
    path.write_bytes(content)
    with pytest.raises(WorkspaceError, match=str(path)):
        LabelStore(path)
    assert path.read_bytes() == content


def test_a_newer_schema_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "labels.sqlite"
    LabelStore(path).close()
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    raw.close()
    before = _digest(path)
    with pytest.raises(WorkspaceError, match="version 99 is newer"):
        LabelStore(path)
    assert _digest(path) == before


def test_a_read_only_store_is_a_clear_error(store):
    store._connection().execute("PRAGMA query_only = ON")  # what SQLite reports for a read-only file
    with pytest.raises(WorkspaceError, match="read-only"):
        store.add(["a"], "anomaly", user="alice")


def test_history_cannot_be_rewritten_even_with_raw_sql(store):
    store.add(["a"], "anomaly", user="alice")
    raw = sqlite3.connect(store.path)
    for sql in ("UPDATE events SET label = 'normal'", "DELETE FROM events", "DELETE FROM batches"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            raw.execute(sql)
    raw.close()
    assert store.label_of(["a"]) == {"a": "anomaly"}


def test_a_closed_store_says_so(tmp_path):
    store = LabelStore(tmp_path / "labels.sqlite")
    store.close()
    with pytest.raises(WorkspaceError, match="closed"):
        store.current()


# ------------------------------------------------------------------ names and ids
def test_normalise_label():
    assert normalise_label(" ANOMALY ") == "anomaly"
    assert normalise_label(Label.ARTEFACT) == "artefact"
    assert normalise_label("Merger ring") == "Merger ring"  # user classes keep their case
    assert normalise_label("x" * 64) == "x" * 64


@pytest.mark.parametrize("bad", ["", "   ", "x" * 65, "a\nb", "bell\x07", "tab\there", 5, None])
def test_bad_labels_are_refused_and_nothing_is_written(store, bad):
    with pytest.raises(DataError, match="label"):
        store.add(["a"], bad, user="alice")
    assert store.last_event_id() == 0


@pytest.mark.parametrize("bad", [[], [123], ["ok", ""], ["a\x00b"], None])
def test_bad_ids_are_refused_and_nothing_is_written(store, bad):
    with pytest.raises(DataError):
        store.add(bad, "anomaly", user="alice")
    assert store.last_event_id() == 0


def test_a_user_name_is_required(store):
    with pytest.raises(DataError, match="user"):
        store.add(["a"], "anomaly", user="  ")


def test_odd_ids_round_trip_exactly(store):
    batch = store.add(ODD_IDS, "anomaly", user="alice")
    assert store.current()["id"].tolist() == ODD_IDS
    assert store.label_of(ODD_IDS + ["absent"]) == dict.fromkeys(ODD_IDS, "anomaly")
    assert store.history(ODD_IDS[2:4])["id"].tolist() == ODD_IDS[2:4]
    assert set(store.history()["batch"]) == {batch}


def test_a_lone_string_is_one_id_and_duplicates_count_once(store):
    store.add("J0001", "normal", user="alice")
    store.add(["a", "b", "a"], "anomaly", user="alice")
    assert store.label_of(["J0001", "J", "a", "b"]) == {"J0001": "normal", "a": "anomaly", "b": "anomaly"}
    assert store.last_event_id() == 3


def test_a_failure_inside_the_transaction_writes_nothing(store, monkeypatch):
    store.add(["a"], "anomaly", user="alice")
    monkeypatch.setattr(batches_module.schema, "REFRESH_CURRENT_SQL", "SELECT no_such_column FROM events")
    with pytest.raises(sqlite3.OperationalError):
        store.add([f"bulk{i}" for i in range(1000)], "normal", user="alice")
    monkeypatch.undo()
    assert store.last_event_id() == 1 and len(store.history()) == 1
    assert store.label_of(["a", "bulk0"]) == {"a": "anomaly"}
    store.verify()


# ------------------------------------------------------------------ unlabel and undo
def test_unlabel_is_a_new_event_not_a_delete(store):
    store.add(["a", "b"], "anomaly", user="alice")
    store.remove(["a"], user="alice", note="misclick")
    assert store.current()["id"].tolist() == ["b"]
    history = store.history(["a"])
    assert history["label"].isna().tolist() == [False, True]
    assert history["note"].iloc[-1] == "misclick"
    assert store.counts()["anomaly"] == 1


def test_undo_restores_the_previous_label(store):
    store.add(["a"], "anomaly", user="alice")
    store.add(["a"], "normal", user="alice")
    assert store.undo(user="alice") == ["a"]
    assert store.label_of(["a"]) == {"a": "anomaly"}
    history = store.history()
    assert len(history) == 3 and history["undoes_batch"].tolist()[-1] == history["batch"].iloc[1]
    assert store.undo(user="alice") == ["a"]  # walks further back: a was unlabelled before
    assert store.label_of(["a"]) == {}
    assert store.undo(user="alice") == []  # nothing left; no event written
    assert store.last_event_id() == 4


def test_undo_of_a_bulk_batch_restores_each_objects_own_previous_label(store):
    store.add(["a"], "normal", user="alice")
    store.add(["b"], "Merger", user="alice")
    store.add(["a", "b", "c"], "anomaly", user="alice", map_version="map-0002")
    assert store.undo(user="alice") == ["a", "b", "c"]
    assert store.label_of(["a", "b", "c"]) == {"a": "normal", "b": "Merger"}


def test_undo_of_an_unlabel_brings_the_label_back(store):
    store.add(["a", "b"], "artefact", user="alice")
    store.remove(["a", "b"], user="alice")
    assert store.undo(user="alice") == ["a", "b"]
    assert store.label_of(["a", "b"]) == {"a": "artefact", "b": "artefact"}


def test_undo_by_another_user_does_not_touch_mine(store):
    store.add(["a", "b"], "anomaly", user="alice")
    store.add(["c"], "normal", user="bob")
    assert store.undo(user="bob") == ["c"]
    assert store.label_of(["a", "b", "c"]) == {"a": "anomaly", "b": "anomaly"}
    assert store.undo(user="bob") == []
    assert store.label_of(["a", "b"]) == {"a": "anomaly", "b": "anomaly"}


def test_undo_leaves_objects_someone_else_relabelled_since_and_warns(store):
    store.add(["a", "b"], "anomaly", user="alice")
    store.add(["b"], "normal", user="bob")
    with pytest.warns(UserWarning, match="1 object"):
        assert store.undo(user="alice") == ["a"]
    assert store.label_of(["a", "b"]) == {"b": "normal"}
    assert store.undo(user="alice") == []  # that batch counts as undone


# ------------------------------------------------------------------ reading
def test_classes_and_counts(store):
    store.add(["a", "b"], "Merger", user="alice")
    store.add(["c"], "anomaly", user="alice")
    store.add(["d"], "lens", user="alice")
    store.remove(["d"], user="alice")
    assert store.classes() == ["anomaly", "normal", "artefact", "Merger", "lens"]
    assert store.counts() == {"anomaly": 1, "normal": 0, "artefact": 0, "Merger": 2, "lens": 0}


def test_changed_since_lets_another_session_follow_the_labels(tmp_path):
    path = tmp_path / "labels.sqlite"
    with LabelStore(path) as writer, LabelStore(path) as reader:
        assert reader.changed_since(0).empty and reader.last_event_id() == 0
        writer.add(["a", "b"], "anomaly", user="alice")
        first = reader.changed_since(0)
        assert first["id"].tolist() == ["a", "b"] and set(first["label"]) == {"anomaly"}
        cursor = first["event_id"].max()  # a numpy integer is accepted as it is
        assert reader.changed_since(cursor).empty
        writer.add(["b"], "normal", user="alice")
        writer.remove(["a"], user="bob")
        writer.add(["b"], "artefact", user="bob")
        changes = reader.changed_since(cursor).set_index("id")
        assert sorted(changes.index) == ["a", "b"]
        assert pd.isna(changes.loc["a", "label"]) and changes.loc["b", "label"] == "artefact"
        assert int(changes["event_id"].max()) == reader.last_event_id() == 5
    with LabelStore(path) as reader:
        for bad in (-1, 1.5, float("nan"), "3"):
            with pytest.raises(DataError, match="event_id"):
                reader.changed_since(bad)


def test_current_matches_a_reference_model_after_many_random_events(store):
    rng = random.Random(7)
    ids = [f"obj{i}" for i in range(150)]
    state: dict[str, tuple] = {}  # id -> (label, user, set by an undo)
    stacks: dict[str, list] = {"alice": [], "bob": [], "carol": []}
    undone: set[int] = set()
    warnings.simplefilter("ignore")
    for _ in range(400):
        user = rng.choice(list(stacks))
        action = rng.random()
        if action < 0.15:
            open_batches = [b for b in stacks[user] if id(b) not in undone]
            expected = []
            if open_batches:
                batch = open_batches[-1]
                undone.add(id(batch))
                for oid, set_to, before in batch:
                    label, who, by_undo = state.get(oid, (None, None, False))
                    if label == set_to and (who == user or by_undo):
                        state[oid] = (before, user, True)
                        expected.append(oid)
            assert store.undo(user=user) == expected
            continue
        chosen = list(dict.fromkeys(rng.sample(ids, rng.choice((1, 1, 3, 20)))))
        label = None if action < 0.3 else rng.choice(["anomaly", "normal", "artefact", "lens"])
        if label is None:
            store.remove(chosen, user=user)
        else:
            store.add(chosen, label, user=user)
        stacks[user].append([(oid, label, state.get(oid, (None,))[0]) for oid in chosen])
        for oid in chosen:
            state[oid] = (label, user, False)
    expected = {oid: s[0] for oid, s in state.items() if s[0] is not None}
    current = store.current()
    assert dict(zip(current["id"], current["label"], strict=True)) == expected
    assert store.label_of(ids) == expected
    counts = store.counts()
    assert all(counts[k] == list(expected.values()).count(k) for k in counts)
    store.verify()


# ------------------------------------------------------------------ threads and locks
def test_threads_sharing_one_store_lose_nothing(store):
    def click(t):
        for i in range(60):
            store.add([f"t{t}-{i}"], "anomaly", user=f"user{t}")

    threads = [threading.Thread(target=click, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(store.current()) == 480 and store.last_event_id() == 480


def test_a_writer_waits_for_the_lock_instead_of_failing(store):
    raw = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False)
    raw.execute("BEGIN IMMEDIATE")
    threading.Timer(0.3, lambda: raw.execute("COMMIT")).start()
    start = time.perf_counter()
    store.add(["a"], "anomaly", user="alice")
    assert time.perf_counter() - start >= 0.25
    assert store.label_of(["a"]) == {"a": "anomaly"}
    raw.close()


def test_a_lock_held_past_the_timeout_is_a_clear_error(tmp_path):
    with LabelStore(tmp_path / "labels.sqlite", timeout=0.2) as store:
        raw = sqlite3.connect(store.path, isolation_level=None)
        raw.execute("BEGIN IMMEDIATE")
        with pytest.raises(WorkspaceError, match="locked"):
            store.add(["a"], "anomaly", user="alice")
        raw.execute("ROLLBACK")
        raw.close()
        store.add(["a"], "anomaly", user="alice")
        assert store.last_event_id() == 1


def _label_in_child(store: LabelStore) -> None:
    store.add(["from-child"], "normal", user="child")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_store_inherited_through_fork_still_works_in_both_processes(store):
    store.add(["from-parent"], "anomaly", user="parent")
    child = multiprocessing.get_context("fork").Process(target=_label_in_child, args=(store,))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    store.add(["parent-again"], "artefact", user="parent")
    assert store.label_of(["from-parent", "from-child", "parent-again"]) == {
        "from-parent": "anomaly",
        "from-child": "normal",
        "parent-again": "artefact",
    }
    store.verify()
