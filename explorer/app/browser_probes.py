"""How tests and benchmarks drive the served app in headless Chromium: the browser to launch and JavaScript probes.

Debian's Chromium with the flags that work on a machine without a GPU or internet (never ``playwright install``),
and probes that read the map's Bokeh view: when the page is ready, and where the map's frame lies on the screen
with its data ranges (to draw a lasso in data coordinates with the mouse).
"""

from __future__ import annotations

#: Debian's Chromium (``apt-get install chromium``).
CHROMIUM = "/usr/bin/chromium"
#: Launch flags for headless Chromium here (pass as ``args=`` to ``playwright``'s ``chromium.launch``).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: JavaScript predicate selecting the map's Bokeh view (the figure is named ``explorer-map``).
IS_MAP = "v => v.model && v.model.name === 'explorer-map'"
#: ``page.wait_for_function`` probe: Bokeh idle and the map drawn with its renderers.
READY = f"""() => window.Bokeh && Bokeh.documents.length > 0 && Bokeh.documents[0].is_idle &&
  (() => {{ const v = Bokeh.index.query_one({IS_MAP});
           return v != null && v.frame.bbox.width > 0 && v.model.renderers.length > 0; }})()"""
#: ``page.evaluate`` probe: the map frame on screen (left, top, width, height in CSS px) and its data ranges.
GEOMETRY = f"""() => {{
  const v = Bokeh.index.query_one({IS_MAP});
  const r = v.canvas_view.events_el.getBoundingClientRect();
  const fb = v.frame.bbox;
  return {{left: r.x + fb.left, top: r.y + fb.top, width: fb.width, height: fb.height,
          x0: v.model.x_range.start, x1: v.model.x_range.end, y0: v.model.y_range.start, y1: v.model.y_range.end}};
}}"""
