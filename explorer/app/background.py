"""How the served page is updated: slow work (fine-tuning, re-learning the ranking) off the server's event loop with
results handed back to it, batched updates that rebuild Bokeh's model graph only when needed, and Panel's
stylesheet cache kept for the page."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

log = logging.getLogger(__name__)


def current_document():
    """The Bokeh document of the running Panel session, or None (notebook, tests, plain Python)."""
    try:
        import panel as pn

        doc = pn.state.curdoc
        return doc if doc is not None and doc.session_context is not None else None
    except Exception:  # noqa: BLE001 - no Panel state outside a session
        return None


def reuse_page_stylesheets(doc) -> None:
    """Let Panel reuse the stylesheet models a served page already has, so a pane's update sends only its content.

    Panel keeps one ``ImportedStyleSheet`` per URL and document and rebuilds each pane's list from that cache on
    every update. When the browser reports its address, Panel (1.9) empties the cache of that document (for
    apps served under a sub-path, whose URLs change); every pane's first update then sends new stylesheet models
    even though their URLs are the same, and the browser lays out and repaints the whole page: 0.9 s (2.0 s with
    WebGL in software) of the first lasso at 1M objects in headless Chromium, against 0.2 s for later ones.
    This puts the page's own models back in the cache under every URL Panel would turn into theirs (Panel keys
    the cache by the URL before it rewrites it for the server's static path); a URL that really changed is not
    among them and gets a new model as before.
    """
    import panel as pn
    from panel.io import resources

    uses = ("CDN_DIST", "JS_VERSION", "LOCAL_DIST", "patch_stylesheet")  # Panel's own bookkeeping (1.4-1.9):
    if doc is None or not hasattr(pn.state, "_stylesheets") or not all(hasattr(resources, n) for n in uses):
        return  # a Panel without it only loses this speed-up
    from bokeh.models import ImportedStyleSheet

    cache = pn.state._stylesheets.get(doc)
    if cache is None:
        cache = pn.state._stylesheets[doc] = {}
    dist_url = doc._template_variables.get("dist_url", resources.CDN_DIST)  # as Panel's own lookup does
    for model in list(doc.models):
        if isinstance(model, ImportedStyleSheet) and model.url:
            for url in _cache_keys_for(str(model.url), dist_url, resources):
                cache.setdefault(url, model)


def _cache_keys_for(url: str, dist_url: str, resources) -> list[str]:
    """The URLs Panel's ``resources.patch_stylesheet`` turns into ``url`` for this page (``url`` itself included)."""
    from bokeh.models import ImportedStyleSheet

    keys = [url]
    rest = url.removesuffix(f"?v={resources.JS_VERSION}")
    if rest.startswith(dist_url):
        tail = rest[len(dist_url) :]
        for candidate in (
            resources.CDN_DIST + tail,
            resources.LOCAL_DIST + tail,
            resources.CDN_DIST + dist_url + tail,
        ):
            probe = ImportedStyleSheet(url=candidate)
            resources.patch_stylesheet(probe, dist_url)
            if probe.url == url:
                keys.append(candidate)
    return keys


@contextlib.contextmanager
def batched(doc=None) -> Iterator[None]:
    """Send every change made inside as one update, and rebuild Bokeh's model graph once, not per change.

    One click changes many parts (map layers, gallery, detail, sky); without this, Bokeh recomputes its
    model references after each of them (~0.1–0.4 s apiece on a full dashboard).
    """
    doc = doc if doc is not None else current_document()
    if doc is None:
        yield
        return
    import panel as pn

    with model_graph_frozen(doc), pn.io.hold(doc):
        yield


@contextlib.contextmanager
def model_graph_frozen(doc) -> Iterator[None]:
    """Defer Bokeh's rebuild of the document's model graph to the end, and skip it when nothing changed the graph.

    Bokeh's own ``models.freeze()`` always rebuilds on exit: a walk over every model of the page (a quarter of a
    served dashboard's time under load, most of it after updates that only change data: ids, pictures, layers).
    Here the rebuild runs only if something asked for it meanwhile: a property that holds models changed
    (Bokeh calls ``invalidate`` for every such change) or the roots changed. Nested freezes (HoloViews wraps each
    plot update in one) end without a rebuild of their own.
    """
    models = getattr(doc, "models", None)
    if models is None or "_explorer_changed" in vars(models):  # nested: the outermost batch decides
        yield
        return
    if not isinstance(getattr(models, "_freeze_count", None), int):  # a Bokeh without the counter: its freeze
        with models.freeze():
            yield
        return
    changed = [False]

    def invalidate() -> None:
        changed[0] = True

    def pop_freeze() -> None:
        """A nested freeze ending (HoloViews freezes around every plot update): not a change by itself."""
        models._freeze_count -= 1

    roots = list(doc.roots)
    models._freeze_count += 1
    models._explorer_changed = changed
    models.invalidate, models._pop_freeze = invalidate, pop_freeze
    try:
        yield
    finally:
        del models.invalidate, models._pop_freeze, models._explorer_changed
        models._freeze_count -= 1
        if models._freeze_count == 0 and (changed[0] or list(doc.roots) != roots):
            models.recompute()


def batch_callback(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a widget or event callback so its changes go out as one batched update (see :func:`batched`)."""

    def wrapper(*args, **kwargs):
        with batched():
            return fn(*args, **kwargs)

    return wrapper


def call_soon(doc, fn: Callable[[], None]) -> None:
    """Run ``fn`` (batched) on the document's event loop when served, or right away (no document)."""
    if doc is None:
        fn()
        return

    def run() -> None:
        with batched(doc):
            fn()

    try:
        doc.add_next_tick_callback(run)
    except Exception:  # noqa: BLE001 - the session closed meanwhile: nothing to update
        log.debug("session closed before a background result arrived")


def run_in_background(
    work: Callable[[], Any],
    done: Callable[[Any, BaseException | None], None],
    doc=None,
    name: str = "explorer-work",
) -> threading.Thread:
    """Run ``work()`` on a daemon thread, then ``done(result, error)`` on the session's event loop.

    Parameters
    ----------
    work : callable
        The slow part; must not touch widgets (it runs outside the event loop).
    done : callable
        Receives the result (or None) and the exception raised (or None); runs where widgets may change.
    doc : bokeh Document, optional
        Default: the current session's document, if any.
    """
    doc = doc if doc is not None else current_document()

    def target() -> None:
        try:
            result, error = work(), None
        except BaseException as err:  # noqa: BLE001 - handed to ``done`` to show the user
            result, error = None, err
        call_soon(doc, lambda: done(result, error))

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread
