"""The Session: selections resolved on the map, modes, undo/redo, focus stepping and gallery order (no Panel)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from explorer.analysis.selection import PointIndex, Selection, points_in_box, points_in_lasso
from explorer.session import Session


class FakeData:
    """The little a Session needs from AppData: an index, scores per row, a frame."""

    def __init__(self, n: int = 400, seed: int = 0, with_map: bool = True):
        rng = np.random.default_rng(seed)
        self.frame = pd.DataFrame(
            {"id": [f"o{i:03d}" for i in range(n)], "x": rng.uniform(0, 10, n), "y": rng.uniform(0, 10, n)}
        )
        self.scores = rng.random(n)
        self.index = (
            PointIndex(
                self.frame["x"],
                self.frame["y"],
                self.frame["id"].to_numpy(dtype=object),
                map_version="map-0001",
            )
            if with_map
            else None
        )
        self.map_version = "map-0001"
        self.labelled = np.zeros(n, dtype=bool)

    def score_of(self, ids):
        pos = pd.Index(self.frame["id"]).get_indexer(list(ids))
        return np.where(pos >= 0, self.scores[pos], np.nan)

    def labelled_mask(self):
        return self.labelled


@pytest.fixture
def data() -> FakeData:
    return FakeData()


def ids_where(data: FakeData, mask: np.ndarray) -> set[str]:
    return set(data.frame["id"][mask])


def test_lasso_and_box_resolve_to_the_ids_inside(data):
    s = Session(data)
    poly = [(1, 1), (8, 2), (6, 9), (2, 7)]
    s.select(Selection.lasso(poly, "map-0001"))
    assert set(s.selected_ids) == ids_where(data, points_in_lasso(data.frame.x, data.frame.y, poly))
    assert s.n_selected == len(s.selected_ids) > 0
    s.select(Selection.box(0, 0, 3, 3))
    assert set(s.selected_ids) == ids_where(data, points_in_box(data.frame.x, data.frame.y, 0, 0, 3, 3))


def test_modes_add_subtract_intersect_and_undo_redo(data):
    s = Session(data)
    a = ids_where(data, points_in_box(data.frame.x, data.frame.y, 0, 0, 6, 6))
    b = ids_where(data, points_in_box(data.frame.x, data.frame.y, 4, 4, 10, 10))
    s.select(Selection.box(0, 0, 6, 6))
    s.select(Selection.box(4, 4, 10, 10), mode="add")
    assert set(s.selected_ids) == a | b
    s.mode = "subtract"
    s.select(Selection.box(4, 4, 10, 10))
    assert set(s.selected_ids) == a - b
    s.select(Selection.box(0, 0, 6, 6), mode="replace")
    s.select(Selection.box(4, 4, 10, 10), mode="intersect")
    assert set(s.selected_ids) == a & b
    s.undo()
    assert set(s.selected_ids) == a
    s.undo()
    assert set(s.selected_ids) == a - b
    assert s.can_redo
    s.redo()
    assert set(s.selected_ids) == a
    s.clear()
    assert s.n_selected == 0 and s.can_undo
    s.undo()
    assert set(s.selected_ids) == a


def test_selected_ids_stay_in_catalogue_order_after_add(data):
    s = Session(data)
    s.select(Selection.box(5, 5, 10, 10))
    s.select(Selection.box(0, 0, 5, 5), mode="add")
    rows = data.index.rows_of(s.selected_ids)
    assert np.all(np.diff(rows) > 0)


def test_nothing_to_undo_and_no_map_give_messages_not_errors():
    s = Session(FakeData(with_map=False))
    s.undo()
    assert "Nothing to undo" in s.message
    s.select(Selection.box(0, 0, 1, 1))
    assert "no map" in s.message and s.n_selected == 0
    s.step_focus(1)
    assert "gallery is empty" in s.message


def test_gallery_is_sorted_by_score_and_focus_steps_through_it(data):
    s = Session(data)
    s.select(Selection.box(0, 0, 10, 10))
    scores = data.score_of(s.gallery_ids)
    assert np.all(np.diff(scores) <= 0)
    assert s.focused_id == s.gallery_ids[0]
    s.step_focus(1)
    assert s.focused_id == s.gallery_ids[1]
    s.step_focus(-5)
    assert s.focused_id == s.gallery_ids[0]
    s.sort_by = "catalogue order"
    assert list(s.gallery_ids) == sorted(s.gallery_ids)


def test_live_ranking_overrides_the_saved_scores(data):
    s = Session(data)
    s.select(Selection.box(0, 0, 10, 10))
    s.ranking = -data.scores  # the opposite order
    assert data.score_of([s.gallery_ids[0]])[0] == data.scores.min()


def test_candidates_are_the_top_unlabelled(data):
    s = Session(data)
    top = data.frame["id"].to_numpy()[np.argsort(-data.scores)]
    data.labelled[np.argmax(data.scores)] = True
    s.show("candidates")
    assert s.gallery_ids[0] == top[1]
    assert len(s.gallery_ids) == len(data.frame) - 1


def test_similar_results_fill_the_gallery(data):
    s = Session(data)
    result = pd.DataFrame({"id": ["o005", "o001", "o009"], "similarity": [0.9, 0.8, 0.7], "rank": [1, 2, 3]})
    s.set_similar(result, "object o000")
    assert s.gallery_source == "similar"
    assert list(s.gallery_ids) == ["o005", "o001", "o009"]
    assert s.focused_id == "o005"
    s.select_ids(result["id"])
    assert set(s.selected_ids) == {"o001", "o005", "o009"} and s.gallery_source == "selection"
