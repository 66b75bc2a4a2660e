"""Plotting functions: data and options in, HoloViews elements (or PNG bytes) out; no widgets, no state.

Importing this package registers HoloViews' Bokeh backend (``holoviews.plotting.bokeh``), whose options the
functions set; it loads no front-end code.
"""

import holoviews.plotting.bokeh  # noqa: F401 - registers the Bokeh options the plot functions use
