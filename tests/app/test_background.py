"""Batched updates of a served page: one Bokeh update per click, and the page's model graph kept right."""

from __future__ import annotations

from bokeh.document import Document
from bokeh.models import Column, Div

from explorer.app.background import batched


def _page():
    doc = Document()
    col = Column(Div(text="first"))
    doc.add_root(col)
    rebuilds: list[int] = []
    recompute = doc.models.recompute
    doc.models.recompute = lambda: (rebuilds.append(1), recompute())[1]
    return doc, col, rebuilds


def test_a_batch_that_changes_only_values_does_not_rebuild_the_page_graph():
    doc, col, rebuilds = _page()
    with batched(doc):
        col.children[0].text = "changed"
        with doc.models.freeze():  # HoloViews freezes around each plot update: not a change by itself
            col.children[0].styles = {"color": "red"}
    assert rebuilds == [] and col.children[0].text == "changed"
    assert doc.models._freeze_count == 0


def test_a_batch_that_adds_parts_attaches_them_once():
    doc, col, rebuilds = _page()
    first, second = Div(text="new"), Div(text="newer")
    with batched(doc):
        col.children = [*col.children, first]
        with batched(doc):  # nested batches (a callback inside a callback) end with the outer one
            col.children = [*col.children, second]
        assert rebuilds == []
    assert len(rebuilds) == 1
    assert doc.get_model_by_id(first.id) is first and doc.get_model_by_id(second.id) is second
    assert first.document is doc and doc.models._freeze_count == 0


def test_a_batch_that_fails_leaves_the_page_usable():
    doc, col, rebuilds = _page()
    added = Div(text="added before the error")
    try:
        with batched(doc):
            col.children = [*col.children, added]
            raise ValueError("boom")
    except ValueError:
        pass
    assert doc.get_model_by_id(added.id) is added and doc.models._freeze_count == 0
    assert "invalidate" not in vars(doc.models)  # the document's own bookkeeping is back


def test_a_pane_update_after_panel_drops_its_stylesheet_cache_sends_no_new_stylesheets():
    """Panel empties a page's stylesheet cache when the browser reports its address; each pane's next update then
    re-sent its stylesheets and the browser re-laid out the whole page (~2 s of the first lasso at 1M objects).
    With Panel 1.9 this fails without ``reuse_page_stylesheets`` (the update brings new stylesheet models)."""
    import panel as pn

    from explorer.app.background import reuse_page_stylesheets

    def render():
        doc = Document()
        panes = [pn.pane.HTML("one"), pn.pane.HTML("two")]
        root = pn.Column(*panes).get_root(doc)
        doc.add_root(root)
        pn.state._stylesheets.pop(doc, None)  # what panel.io.location does when the address arrives
        return doc, panes, [p._models[root.ref["id"]][0] for p in panes]

    doc, panes, models = render()
    sheets = [list(m.stylesheets) for m in models]
    reuse_page_stylesheets(doc)
    for pane in panes:
        pane.object = "changed"
    assert [list(m.stylesheets) for m in models] == sheets and models[0].text.endswith("changed")
