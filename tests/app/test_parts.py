"""The dashboard's parts driven from Python (no browser): labels land in the store, find-similar returns the exact
neighbours, export writes readable files, and workspaces missing a map, light curves, scores or embeddings show
a helpful message instead of failing."""

from __future__ import annotations

import io
import sqlite3
import time

import numpy as np
import pytest
from bokeh.document import Document

from explorer.analysis.selection import Selection
from explorer.app.explorer import Explorer
from explorer.app.inspector import catalogue_row_html
from explorer.app.keyboard import KeyboardShortcuts
from explorer.workspace import Workspace


def render(viewable) -> None:
    """Build the Bokeh models as a server would (fails on any error in a part)."""
    viewable.__panel__().get_root(Document()) if hasattr(viewable, "__panel__") else viewable.get_root(
        Document()
    )


def text_of(viewable) -> str:
    """Every text an HTML/Markdown/Alert pane inside ``viewable`` shows (to assert on messages)."""
    import panel as pn

    layout = viewable.__panel__() if hasattr(viewable, "__panel__") else viewable
    panes = layout.select(pn.pane.HTML) + layout.select(pn.pane.Markdown) + layout.select(pn.pane.Alert)
    return " ".join(str(p.object) for p in panes)


def stored_labels(ws_path) -> dict[str, tuple[str, str, str, str]]:
    with sqlite3.connect(ws_path / "labels.sqlite") as conn:
        rows = conn.execute(
            "SELECT object_id, label, user, model_version, map_version FROM current_labels "
            "WHERE label IS NOT NULL"
        ).fetchall()
    return {r[0]: r[1:] for r in rows}


@pytest.fixture(params=["object ids", "arrow ids"])
def app(request, fresh_workspace, monkeypatch) -> Explorer:
    """The app on a private workspace copy, with the catalogue's ids as Python strings and, as a workspace of
    millions of objects keeps them (``LEAN_IDS_MIN_ROWS``), as one Arrow array looked up by binary search."""
    import explorer.workspace

    lean = request.param == "arrow ids"
    if lean:
        monkeypatch.setattr(explorer.workspace, "LEAN_IDS_MIN_ROWS", 0)
    app = Explorer(fresh_workspace, user="alice", background=False)
    assert app.data.catalog.lean == lean
    return app


def test_the_app_and_each_part_render(app_workspace):
    app = Explorer(Workspace.open(app_workspace), user="bob", background=False)
    render(app)
    for part in (
        app.map,
        app.inspector,
        app.similar,
        app.labeller,
        app.exporter,
        app.discovery,
        app.finetune,
    ):
        render(part)
    assert "2,000 objects" in app._header.object


def test_labels_for_the_focus_and_the_selection_land_in_the_store(app, fresh_workspace):
    s = app.session
    s.select(Selection.box(-100, -100, 0, 0))
    chosen = [str(i) for i in s.selected_ids]
    assert len(chosen) > 5
    app.labeller.target = "selection"
    version = s.labels_version
    assert app.labeller.label("anomaly") is not None
    stored = stored_labels(fresh_workspace)
    assert {k for k, v in stored.items() if v[0] == "anomaly"} == set(chosen)
    assert stored[chosen[0]][1:] == ("alice", app.data.embedding_version, app.data.map_version)
    assert s.labels_version == version + 1
    assert app.labeller.counts["anomaly"] == len(chosen)
    curve = app.discovery._pipe.data  # the discovery curve follows the label at once
    assert int(curve["found"].iloc[-1]) == int(curve["viewed"].iloc[-1]) == len(chosen)
    assert f"{len(chosen)} anomalies in {len(chosen)} labelled objects" in app.discovery._note.object

    # keyboard on the focused object: n labels it normal and moves on; u undoes; j/k move the focus
    app.labeller.target = "focused"
    first = s.focused_id
    second = str(s.gallery_ids[list(s.gallery_ids).index(first) + 1])
    app.labeller.handle_key("n")
    assert stored_labels(fresh_workspace)[first][0] == "normal"
    assert s.focused_id == second  # the next object as the gallery stood when the key was pressed
    s.sort_by = "catalogue order"
    app.labeller.handle_key("j")
    assert s.focused_id == str(s.gallery_ids[list(s.gallery_ids).index(second) + 1])
    s.focus(first)
    app.labeller.handle_key("u")
    assert stored_labels(fresh_workspace)[first][0] == "anomaly"
    app.labeller.add_class("merger")
    assert stored_labels(fresh_workspace)[first][0] == "merger"
    assert "merger" in app.labeller.classes


def test_the_ranking_relearns_after_a_label(app):
    s = app.session
    s.select(Selection.box(-100, -100, 100, 100))
    assert s.ranking is None
    low = str(s.gallery_ids[-1])  # the least anomalous object so far
    app.labeller.label("anomaly", [low])
    assert s.ranking is not None
    rank = list(app.session.order(app.session.selected_ids)).index(low)
    assert rank < len(s.selected_ids) - 1  # it moved up


def test_a_ranking_too_big_for_the_server_stays_off_and_labels_still_land(app, fresh_workspace, monkeypatch):
    """Above ``LIVE_RANKING_MAX_BYTES`` of vectors (10M objects) the live re-ranking would hold every vector in
    the server: it stays off with a reason that says so, and labelling works as ever."""
    import explorer.app.ranking as ranking_mod

    monkeypatch.setattr(ranking_mod, "LIVE_RANKING_MAX_BYTES", 1000)
    s = app.session
    s.select(Selection.box(-100, -100, 100, 100))
    target = str(s.gallery_ids[0])
    assert app.labeller.label("anomaly", [target]) is not None
    assert stored_labels(fresh_workspace)[target][0] == "anomaly"
    assert s.ranking is None
    assert "labels are saved" in app.labeller.ranking.reason_unavailable


def test_labelling_nothing_says_so_and_writes_nothing(app, fresh_workspace):
    app.labeller.target = "selection"
    assert app.labeller.label("anomaly") is None
    assert "Nothing to label" in app.session.message
    app.labeller.target = "focused"
    app.session.focus(None)
    app.labeller.handle_key("a")
    assert "Nothing to label" in app.session.message
    assert stored_labels(fresh_workspace) == {}


def test_find_similar_gives_the_exact_cosine_neighbours(app):
    emb = app.data.embeddings
    X = np.asarray(emb.vectors, dtype=np.float64)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    q = 17
    sims = X @ X[q]
    sims[q] = -np.inf
    app.session.focus(str(emb.ids[q]))
    app.similar.k = 10
    result = app.similar.from_focused()
    assert list(result["id"]) == [str(i) for i in emb.ids[np.argsort(-sims, kind="stable")[:10]]]
    assert app.session.gallery_source == "similar" and list(app.session.gallery_ids) == list(result["id"])


def test_find_similar_from_the_selection_steers_away_from_normals(app):
    s = app.session
    s.select(Selection.box(-100, -100, 0, 0))
    normals = [str(i) for i in s.selected_ids[:3]]
    app.labeller.label("normal", normals)
    result = app.similar.from_selection()
    assert result is not None and not set(normals) & set(result["id"])
    s.clear()
    assert app.similar.from_selection() is None and "Nothing to search from" in s.message


def test_export_of_nothing_is_refused_with_a_message(app):
    assert app.exporter.n_rows == 0 and app.exporter._download.disabled
    assert "Nothing to export" in app.exporter._status.object
    assert app.exporter.export() is None and "Nothing to export" in app.session.message
    assert app.exporter._file().read().startswith(b"Nothing to export")


@pytest.mark.parametrize("fmt", ["csv", "fits"])
def test_export_of_the_selection_reads_back_with_astropy(app, fmt):
    from astropy.table import Table

    app.session.select(Selection.box(-100, -100, 0, 0))
    app.exporter.fmt = fmt
    assert not app.exporter._download.disabled
    content, name = app.exporter.export()
    table = Table.read(io.BytesIO(content), format="ascii.csv" if fmt == "csv" else "fits")
    assert set(np.asarray(table["id"]).astype(str)) == {str(i) for i in app.session.selected_ids}
    assert name.endswith("." + fmt)


def test_workspace_without_a_map_explains_how_to_make_one(small_workspaces):
    app = Explorer(small_workspaces["no_map"], user="carol", background=False)
    render(app)
    assert "explorer map" in text_of(app.map)
    app.session.select(Selection.box(0, 0, 1, 1))
    assert "no map" in app.session.message
    app.session.focus("SIM00001")  # the inspector still shows an object's data
    assert "SIM00001" in app.inspector._row.object


def test_images_only_workspace_hides_light_curves_and_score_colouring(small_workspaces):
    app = Explorer(small_workspaces["images_only"], user="carol", background=False)
    render(app)
    assert not app.inspector._lc_raw.visible
    assert "anomaly score" not in app.session.param.colour_by.objects
    app.session.select(Selection.box(-100, -100, 100, 100))
    assert app.session.n_selected == len(app.data.frame)
    assert "<img" in app.inspector._picture.object


def test_workspace_without_products_disables_what_needs_them(small_workspaces):
    app = Explorer(small_workspaces["bare"], user="carol", background=False)
    render(app)
    assert app.similar._from_focus.disabled and "explorer embed" in app.similar.unavailable_reason()
    assert app.finetune._button.disabled
    assert "explorer map" in text_of(app.map)
    app.session.focus("SIM00002")
    assert app.similar.from_focused() is None and "embed" in app.session.message


@pytest.mark.slow
def test_every_colouring_renders(small_workspaces):
    app = Explorer(small_workspaces["full"], user="dan", background=False)
    render(app.map)
    for name in app.session.param.colour_by.objects:
        app.session.colour_by = name
        assert app.map._pane.object is not None


def test_the_inspector_says_which_detector_flagged_an_object(fresh_workspace):
    import pandas as pd

    ws = Workspace.open(fresh_workspace)
    saved, _ = ws.scores()
    ids = saved["id"].to_numpy(dtype=object)
    before = Explorer(fresh_workspace, user="erin", background=False)  # scores of one detector: no such line
    before.session.focus(ids[1])
    assert before.data.reason_of(ids[1]) is None and "flagged by" not in before.inspector._row.object
    flagged = pd.Categorical.from_codes(np.arange(len(ids)) % 3, categories=["knn_joint", "hot_pixel", "trail"])
    ws.save_product(
        "scores",
        tables={"scores": pd.DataFrame({"id": ids, "score": saved["score"], "flagged_by": flagged})},
        meta={"method": "knn", "embeddings": ws.current("embeddings"), "detectors": list(flagged.categories)},
    )
    app = Explorer(fresh_workspace, user="erin", background=False)
    app.session.focus(ids[1])
    assert "flagged by" in app.inspector._row.object and "hot pixel" in app.inspector._row.object
    app.session.focus(ids[2])
    assert "trail" in app.inspector._row.object
    assert app.data.reason_of(ids[1]) == "hot_pixel" and app.data.reason_of("not-an-id") is None


def test_the_map_can_show_which_detector_flagged_the_top_objects(fresh_workspace):
    import pandas as pd

    from explorer.app.data import FLAGGED

    ws = Workspace.open(fresh_workspace)
    saved, _ = ws.scores()
    ids = saved["id"].to_numpy(dtype=object)
    flagged = pd.Categorical.from_codes(np.arange(len(ids)) % 2, categories=["knn_joint", "hot_pixel"])
    ws.save_product(
        "scores",
        tables={"scores": pd.DataFrame({"id": ids, "score": saved["score"], "flagged_by": flagged})},
        meta={"method": "knn", "embeddings": ws.current("embeddings"), "detectors": list(flagged.categories)},
    )
    app = Explorer(fresh_workspace, user="erin", background=False)
    spec = app.data.colour_options()[FLAGGED]
    assert spec.categories == ("knn joint", "hot pixel", "other")
    values = app.data.colour_values(spec)
    scores = app.data.scores
    top = values != "other"
    assert 0 < top.sum() <= int(np.ceil(0.01 * len(values))) + 1  # only the top 1 % by saved score
    assert scores[top].min() >= scores[~top].max()
    code = pd.Series(flagged, index=ids.astype(str)).reindex(app.data.frame["id"].astype(str)).to_numpy()
    assert list(values[top]) == [str(c).replace("_", " ") for c in code[top]]
    render(app.map)
    app.session.colour_by = FLAGGED
    assert app.map._pane.object is not None and "hot pixel" in app.map._legend.object


def test_a_variability_flag_names_the_statistic_that_stands_out(fresh_workspace):
    import re

    import pandas as pd

    from explorer.analysis.data_detectors import lightcurve_variability
    from explorer.analysis.variability import CURVE_STATISTICS, standardised, variability_features

    ws = Workspace.open(fresh_workspace)
    saved, _ = ws.scores()
    variability, reference = lightcurve_variability(ws, progress=False, return_reference=True)
    oid = str(variability.idxmax())  # the most unusual curve
    ids = saved["id"].astype(str).to_numpy()
    flagged = pd.Categorical(np.where(ids == oid, "variability", "knn_joint"), categories=["knn_joint", "variability"])
    ws.save_product(
        "scores",
        tables={"scores": pd.DataFrame({"id": ids, "score": saved["score"], "flagged_by": flagged})},
        meta={"method": "knn", "embeddings": ws.current("embeddings"), "detectors": list(flagged.categories),
              "references": {"variability": reference}},
    )
    app = Explorer(fresh_workspace, user="erin", background=False)
    app.session.focus(oid)
    # one band's statistic ("skew in r +12σ") or the whole curve's ("brightening sustained over 60 d ... +9σ")
    shown = re.search(r"variability: (?:(\w+) in (\w+)|([a-z][\w ]+)) ([+-]\d+(?:\.\d)?)σ", app.inspector._row.object)
    assert shown, app.inspector._row.object
    z = standardised(variability_features(ws.catalog.lightcurve(oid), bands=reference["bands"]), reference).iloc[0]
    name = z.abs().idxmax()
    said = f"{shown[1]}_{shown[2]}" if shown[1] else {v: k for k, v in CURVE_STATISTICS.items()}[shown[3]]
    assert name == said and float(shown[4]) == pytest.approx(z[name], abs=0.51)
    # an object flagged by another detector: its name and what it looks for
    other = ids[ids != oid][0]
    assert app.data.flag_explanation(other) == "knn_joint: far from its neighbours in the joint embedding"


def test_ids_and_catalogue_strings_are_escaped():
    import pandas as pd

    row = pd.Series({"id": "<script>alert(1)</script>", "ra": 10.0, "dec": -5.0, "note": "a & b <i>"})
    out = catalogue_row_html(row, score=0.5, label="<b>x</b>")
    assert "<script>" not in out and "&lt;script&gt;" in out and "&lt;b&gt;x&lt;/b&gt;" in out
    assert "00:40:00.0 -05:00:00" in out


def test_keyboard_component_only_forwards_its_keys():
    pressed = []
    keys = KeyboardShortcuts(on_key=pressed.append, keys=["a", "j"])
    keys._handle_msg({"key": "a"})
    keys._handle_msg({"key": "q"})
    keys._handle_msg("garbage")
    assert pressed == ["a"] and keys.last_key == "a"


def test_serve_command_is_registered_with_its_options():
    from explorer.cli import build_parser
    from explorer.cli.serve_cmd import _origins

    args = build_parser().parse_args(["serve", "ws", "--port", "0", "--basic-auth", "secret", "--show"])
    assert (args.port, args.address, args.basic_auth, args.show) == (0, "127.0.0.1", "secret", True)
    assert build_parser().parse_args(["serve", "ws"]).show is False
    assert "127.0.0.1:5006" in _origins("127.0.0.1", 5006, None)
    assert _origins("10.0.0.5", 80, ["proxy:443"]) == ["10.0.0.5:80", "proxy:443"]


@pytest.mark.slow
def test_finetune_runs_in_the_background_then_offers_the_new_map(small_workspaces, tmp_path, monkeypatch):
    import shutil

    import pandas as pd

    import explorer.analysis.workspace_ops as ops
    import explorer.models.finetune as finetune

    ws_path = tmp_path / "ws"
    shutil.copytree(small_workspaces["full"], ws_path)
    calls = []

    def fake_finetune(ws, head_only=True, progress=None, **_):
        calls.append(head_only)
        emb = ws.embeddings()
        for i in range(4):
            progress((i + 1) / 4, "training head")
        X = np.asarray(emb.vectors) + np.random.default_rng(1).normal(0, 0.3, emb.vectors.shape)
        return ws.save_embeddings({"joint": (emb.ids, X.astype(np.float32))}, meta={"model": "tuned"})

    def fake_map(ws, progress=False, **_):
        emb = ws.embeddings()
        table = pd.DataFrame({"id": emb.ids, "x": emb.vectors[:, 0], "y": emb.vectors[:, 1]})
        return ws.save_product("maps", tables={"coords": table}, meta={"embeddings": emb.version})

    def fake_scores(ws, progress=False, **_):
        emb = ws.embeddings()
        table = pd.DataFrame({"id": emb.ids, "score": np.linalg.norm(emb.vectors, axis=1)})
        return ws.save_product("scores", tables={"scores": table}, meta={"embeddings": emb.version})

    monkeypatch.setattr(finetune, "finetune_workspace", fake_finetune)
    monkeypatch.setattr(ops, "map_workspace", fake_map)
    monkeypatch.setattr(ops, "score_workspace", fake_scores)
    app = Explorer(ws_path, user="erin", background=False)
    panel = app.finetune
    panel.start()
    assert "label some objects first" in app.session.message and not calls
    app.labeller.label("anomaly", ["SIM00001", "SIM00002"])
    panel.start()
    deadline = time.monotonic() + 60
    while panel.running or panel.result is None:
        assert time.monotonic() < deadline, panel.stage
        time.sleep(0.1)
    assert calls == [True] and panel.progress == 100
    assert 0.0 <= panel.result["overlap"] <= 1.0
    ws = Workspace.open(ws_path)
    assert ws.current("embeddings") == "emb-0001"  # the old map stays current until the user switches
    assert any("nearest neighbours" in str(getattr(o, "object", "")) for o in panel._compare)
    panel.choose(new=True)
    assert Workspace.open(ws_path).current("maps") == panel.result["new"]["maps"]


def test_two_sessions_share_the_data_and_the_label_store_but_not_the_selection(fresh_workspace):
    alice = Explorer(fresh_workspace, user="alice", background=False)
    bob = Explorer(fresh_workspace, user="bob", background=False)
    assert alice.data is bob.data  # loaded once per process
    alice.session.select(Selection.box(-100, -100, 0, 0))
    assert bob.session.n_selected == 0
    assert not bob.poll_labels()
    version = bob.session.labels_version
    alice.labeller.label("anomaly", ["SIM00010"])
    assert bob.poll_labels() and bob.session.labels_version == version + 1
    assert stored_labels(fresh_workspace)["SIM00010"][:2] == ("anomaly", "alice")


def test_another_users_label_redraws_only_what_it_changes(fresh_workspace):
    alice = Explorer(fresh_workspace, user="alice", background=False)
    bob = Explorer(fresh_workspace, user="bob", background=False)
    bob.session.select(Selection.box(-100, -100, 100, 100))
    page = [str(i) for i in bob.inspector.page_ids()]
    beyond = str(bob.session.gallery_ids[len(page)])
    target = page[1]
    bob.session.focus(target)
    items, row = bob.inspector._gallery.items, bob.inspector._row.object
    alice.labeller.label("normal", [beyond])
    assert bob.poll_labels()
    assert bob.inspector._gallery.items is items and bob.inspector._row.object == row  # nothing shown changed
    alice.labeller.label("anomaly", [target])
    assert bob.poll_labels()
    shown = {i["id"]: i["label"] for i in bob.inspector._gallery.items}
    assert shown[target] == "anomaly" and shown[page[0]] == ""
    assert "anomaly" in bob.inspector._row.object


def test_cutouts_of_a_page_come_in_one_batch_and_match_the_stores(app):
    data = app.data
    table = data.catalog.table
    with_image = table.loc[table["image_set"].notna(), ["id", "image_set"]].sample(12, random_state=1)
    without = table.loc[table["image_set"].isna(), "id"].head(2).tolist()
    ids = [*with_image["id"].astype(str), *without, "NO-SUCH-OBJECT"]
    found = data.cutouts(ids)
    for (oid, name), got in zip(with_image.itertuples(index=False), found, strict=False):
        store = data.catalog.images[name]
        np.testing.assert_array_equal(got[0], store.get([oid])[0])
        assert got[1] == tuple(store.bands)
    assert found[-3:] == [None, None, None]
    assert data.cutouts([ids[0]])[0] is found[0]  # kept for the next session that shows it
    assert data.catalog.image_sets_of(ids) == {
        name: [oid for oid, n in with_image.itertuples(index=False) if n == name]
        for name in dict.fromkeys(with_image["image_set"])
    }


def test_moving_the_focus_redraws_the_map_markers_but_not_the_selection_image(app):
    from bokeh.models import GlyphRenderer

    root = app.map.__panel__().get_root(Document())

    def sources() -> dict:
        return {
            type(r.glyph).__name__: dict(r.data_source.data) for r in root.select({"type": GlyphRenderer})
        }

    app.session.select(Selection.box(-100, -100, 100, 100))
    before = sources()
    app.session.focus(str(app.session.gallery_ids[3]))
    after = sources()
    assert after["ImageRGBA"]["image"] is before["ImageRGBA"]["image"]  # the selection is not sent again
    focus = app.data.frame.set_index("id").loc[app.session.focused_id]
    assert (focus["x"], focus["y"]) in set(zip(after["Scatter"]["x"], after["Scatter"]["y"], strict=True))
    app.session.select(Selection.box(-100, -100, 0, 0))
    assert sources()["ImageRGBA"]["image"] is not after["ImageRGBA"]["image"]


def test_map_streams_drive_the_selection_from_python(app):
    """``lasso_stream``, ``box_stream`` and ``tap_stream`` are what a notebook uses to drive the map as the browser
    does; they stay valid (the current streams) after the plot is rebuilt for another colouring."""
    import holoviews as hv
    import shapely

    m, s = app.map, app.session
    coords = app.data.frame
    x, y = coords["x"].to_numpy(np.float64), coords["y"].to_numpy(np.float64)
    polygon = [(-2.0, -2.0), (2.5, -1.0), (1.5, 3.0), (-1.5, 2.0)]
    assert isinstance(m.lasso_stream, hv.streams.Lasso)
    m.lasso_stream.event(geometry=np.array(polygon))
    inside = shapely.contains_xy(shapely.Polygon(polygon), x, y)
    assert 10 < inside.sum() and set(s.selected_ids) == set(coords["id"][inside])
    assert s.selected_rows.tolist() == np.flatnonzero(inside).tolist()  # rows and ids agree

    s.colour_by = "anomaly score"  # rebuilds the plot and its streams
    assert isinstance(m.box_stream, hv.streams.BoundsXY) and m.box_stream.source is not None
    m.box_stream.event(bounds=(0.0, 0.0, 3.0, 2.0))
    in_box = (x >= 0) & (x <= 3) & (y >= 0) & (y <= 2)
    assert set(s.selected_ids) == set(coords["id"][in_box])

    target = int(np.flatnonzero(in_box)[0])
    m.tap_stream.event(x=float(x[target]), y=float(y[target]))
    assert s.focused_id == coords["id"].iloc[target] and s.n_selected == 1


@pytest.mark.parametrize("arrow", [False, True])
@pytest.mark.parametrize("lean", [False, True])
def test_id_lookups_agree_with_a_plain_dictionary(app_workspace, monkeypatch, arrow, lean):
    """The app finds objects by id through the catalogue's fast lookup (same-order shortcut, Arrow hash join for
    many ids, hash index -- or, for a lean catalogue of Arrow ids, binary search -- for a few): every path must
    give the row a plain dict gives, and -1 / NaN when unknown."""
    import explorer.data.catalog as catalog_mod
    import explorer.workspace
    from explorer.app.data import _load

    monkeypatch.setattr(catalog_mod, "_ARROW_LOOKUP_MIN", 10 if arrow else 10**9)
    monkeypatch.setattr(explorer.workspace, "LEAN_IDS_MIN_ROWS", 0 if lean else 10**9)
    data = _load(Workspace.open(app_workspace))
    assert data.catalog.lean == lean
    table_ids = data.catalog.table["id"].tolist()
    where = {oid: i for i, oid in enumerate(table_ids)}
    rng = np.random.default_rng(0)
    asked = np.array([*rng.choice(table_ids, 300), "no-such-id", table_ids[5]], dtype=object)
    assert data.catalog.lookup(asked).tolist() == [where.get(i, -1) for i in asked]
    assert data.catalog.lookup(list(table_ids)).tolist() == list(range(len(table_ids)))  # same-order shortcut
    assert data.catalog.contains(asked).tolist() == [i in where for i in asked]

    on_map = {oid: r for r, oid in enumerate(data.frame["id"])}
    assert data.frame_positions(asked).tolist() == [on_map.get(i, -1) for i in asked]
    scores = data.score_of(asked)
    assert np.isnan(scores[-2]) and scores[-1] == data.scores[on_map[table_ids[5]]]
    assert data.row("no-such-id") is None and data.row(table_ids[7])["id"] == table_ids[7]


def test_warm_up_builds_the_similarity_index_and_ranking_before_the_first_visitor(fresh_workspace):
    from explorer.app.ranking import live_ranking
    from explorer.app.serve import warm_up

    warm_up(fresh_workspace)
    app = Explorer(fresh_workspace, user="first-visitor", background=False)
    index = app.data._similarity
    assert index is not None  # the first find-similar does not build it on the event loop
    app.session.focus(str(app.data.frame["id"].iloc[0]))
    app.similar.from_focused()
    assert app.data.similarity_index() is index and len(app.session.gallery_ids) > 1
    ranking = live_ranking(app.data)
    fitted = ranking.scorer_
    assert fitted is not None and ranking.n_labels_ == 0  # fitted without labels: the first label only updates
    first = str(app.data.frame["id"].iloc[1])
    app.data.labels.add([first], "anomaly", user="first-visitor")
    scores = ranking.relearn()
    assert ranking.scorer_ is fitted and ranking.n_labels_ == 1 and np.isfinite(scores).any()


def test_warm_up_still_serves_when_the_similarity_index_cannot_be_built(fresh_workspace, monkeypatch, capsys):
    from explorer.app.data import AppData
    from explorer.app.serve import warm_up
    from explorer.errors import WorkspaceError

    def broken(self):
        raise WorkspaceError("the saved index is unreadable; run `explorer index WS` again")

    monkeypatch.setattr(AppData, "similarity_index", broken)
    warm_up(fresh_workspace)
    assert "find-similar is unavailable: the saved index is unreadable" in capsys.readouterr().err


def test_the_inspector_says_when_labels_moved_a_detectors_trust(fresh_workspace):
    import json

    import pandas as pd

    from explorer.analysis.anomaly import AnomalyScorer
    from explorer.analysis.detectors import significances

    ws = Workspace.open(fresh_workspace)
    saved, _ = ws.scores()
    ids = saved["id"].astype(str).to_numpy()
    trail = np.zeros(len(ids))
    trail[:12] = np.linspace(20.0, 15.0, 12)  # a detector that flags twelve objects far out
    S = significances({"knn_joint": saved["score"].to_numpy(np.float64), "trail": trail})
    table = saved.assign(knn_joint=saved["score"], trail=trail, score=S.max(axis=1),
                         flagged_by=pd.Categorical.from_codes(S.argmax(axis=1), categories=["knn_joint", "trail"]))
    params = json.loads(json.dumps(AnomalyScorer(random_state=0).get_params()))  # what the live ranking reuses
    ws.save_product("scores", tables={"scores": table}, arrays={"score": table["score"].to_numpy(np.float32)},
                    meta={"method": "knn", "params": params, "embeddings": ws.current("embeddings"), "space": "joint",
                          "detectors": ["knn_joint", "trail"]})
    app = Explorer(fresh_workspace, user="erin", background=False)
    assert app.data.flag_explanation(ids[5]) == "trail: a straight line in one band"  # no label yet
    app.labeller.label("normal", ids=list(ids[:4]))  # four of its finds called normal
    note = app.data.flag_explanation(ids[5])
    assert note.startswith("trail: a straight line in one band · trusted less after the labels (-"), note
    other = ids[np.flatnonzero(S.argmax(axis=1) == 0)[0]]
    assert "trusted" not in app.data.flag_explanation(other)  # flagged by the other detector: unchanged
    app.session.focus(ids[5])
    assert "trusted less" in app.inspector._row.object
