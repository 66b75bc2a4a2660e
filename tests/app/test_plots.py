"""Plot functions return the right HoloViews elements (and pictures) for their data, without a browser."""

from __future__ import annotations

import io

import holoviews as hv
import numpy as np
import pandas as pd
import pytest

from explorer.app.data import ColourSpec
from explorer.app.plots import compare, cutouts, discovery, lightcurve, map_plot, palette, sky


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "id": [f"o{i}" for i in range(500)],
            "x": rng.normal(size=500).astype(np.float32),
            "y": rng.normal(size=500).astype(np.float32),
        }
    )


def test_points_carry_ids_and_the_colour_column(frame):
    spec = ColourSpec("class", "categorical", ("a", "b"))
    values = np.where(np.arange(500) % 2, "a", "b").astype(object)
    pts = map_plot.points_element(frame, values, spec)
    assert [d.name for d in pts.vdims] == ["id", "value"]
    assert pts.get_dimension("value").label == "class"
    assert list(pts.data["value"].cat.categories[:2]) == ["a", "b"]


@pytest.mark.parametrize(
    ("spec", "element"),
    [
        (ColourSpec("density", "count"), hv.Image),
        (ColourSpec("class", "categorical", ("a", "b")), hv.ImageStack),
        (ColourSpec("anomaly score", "continuous"), hv.Image),
    ],
)
def test_base_layer_rasterizes_every_kind_of_colouring(frame, spec, element):
    values = None
    if spec.kind == "categorical":
        values = np.where(np.arange(500) % 2, "a", "b").astype(object)
    elif spec.kind == "continuous":
        values = np.linspace(0, 1, 500)
    pts = map_plot.points_element(frame, values, spec)
    out = map_plot.base_layer(
        pts, spec, palette.category_colours(spec.categories), dynamic=False, width=60, height=40
    )
    assert isinstance(out, element)
    assert out.data.sizes["x"] == 60 and out.data.sizes["y"] == 40
    if spec.kind == "count":  # every object is counted once
        assert int(np.nansum(out.data[out.vdims[0].name].values)) == 500


def test_large_categorical_maps_are_shaded_on_the_server_in_the_class_colours(frame):
    """Without hover (large maps) the class map goes to the browser as one RGB image, each pixel in the colour of
    the class found there; empty pixels are transparent."""
    spec = ColourSpec("class", "categorical", ("a", "b"))
    left = frame["x"].to_numpy() < 0
    values = np.where(left, "a", "b").astype(object)
    colours = {"a": "#ff0000", "b": "#0000ff"}
    pts = map_plot.points_element(frame, values, spec, with_ids=False)
    view = dict(x_range=(-3.0, 3.0), y_range=(-3.0, 3.0), width=60, height=40)
    out = map_plot.base_layer(pts, spec, colours, hover=False, dynamic=False, **view)
    assert isinstance(out, hv.RGB)
    rgba = np.stack([out.dimension_values(d, flat=False) for d in "RGBA"], axis=-1)
    filled = rgba[..., 3] > 0
    assert filled[:, :30].any() and filled[:, 30:].any()
    assert (rgba[:, :30][filled[:, :30]][:, :3] == (255, 0, 0)).all()  # x < 0: class a, red
    assert (rgba[:, 30:][filled[:, 30:]][:, :3] == (0, 0, 255)).all()
    assert filled.sum() < filled.size  # the background stays transparent


def test_highlight_counts_only_the_subset_inside_the_view(frame):
    x, y = frame["x"].to_numpy(), frame["y"].to_numpy()
    rows = np.flatnonzero(x > 0)
    img = map_plot.highlight_layer(x[rows], y[rows], "#f0a", (-5, 5), (-5, 5), 50, 50, spread=0)
    assert isinstance(img, hv.Image)
    assert int(np.nansum(img.dimension_values(2))) == len(rows)
    empty = map_plot.highlight_layer(x[:0], y[:0], "#f0a", (-5, 5), (-5, 5), 50, 50)
    assert np.nansum(empty.dimension_values(2)) == 0


def test_highlight_bins_like_datashader_on_a_partial_view(frame):
    """The selection layer is binned with numpy; it must put every point in the pixel Datashader's base map does,
    or the highlight would drift off the points it marks."""
    import datashader as ds
    from holoviews.operation.datashader import rasterize

    view = dict(x_range=(-2.0, 3.0), y_range=(-1.5, 2.5), width=37, height=23)
    agg = rasterize(hv.Points(frame, ["x", "y"]), aggregator=ds.count(), dynamic=False, **view)
    expected = np.nan_to_num(agg.dimension_values(2, flat=False))
    img = map_plot.highlight_layer(frame["x"].to_numpy(), frame["y"].to_numpy(), "#f0a", spread=0, **view)
    assert img.bounds.lbrt() == agg.bounds.lbrt()
    assert np.array_equal(np.nan_to_num(img.dimension_values(2, flat=False)), expected)
    assert expected.sum() > 100  # the view cuts the cloud: points outside are left out by both
    grown = map_plot.highlight_layer(
        frame["x"].to_numpy()[:1], frame["y"].to_numpy()[:1], "#f0a", spread=1, **view
    )
    assert np.isfinite(grown.dimension_values(2)).sum() in (
        4,
        6,
        9,
    )  # one point grows to its 3x3 (cut at edges)


def test_labelled_objects_are_markers_coloured_by_class(frame):
    labels = np.array(["anomaly", "normal", "merger"], dtype=object)
    pts = map_plot.label_points(frame, np.array([4, 9, 11]), labels, palette.label_colours(["merger"]))
    assert pts.dimension_values("id").tolist() == ["o4", "o9", "o11"]
    assert pts.dimension_values("label").tolist() == list(labels)
    assert len(map_plot.label_points(frame, np.arange(10), np.array(["normal"] * 10), {}, limit=3)) == 3


def test_selection_layer_veils_the_map_and_colours_the_selected_pixels(frame):
    x, y = frame["x"].to_numpy(), frame["y"].to_numpy()
    rows = np.flatnonzero(x > 0.5)
    view = dict(x_range=(-3.0, 3.0), y_range=(-3.0, 3.0), width=60, height=40)
    layer = map_plot.selection_layer(x[rows], y[rows], "#ff00aa", spread=0, **view)
    rgba = np.stack([layer.dimension_values(d, flat=False) for d in "RGBA"], axis=-1)[::-1]  # row 0 on top
    counts = map_plot.bin_counts(x[rows], y[rows], view["x_range"], view["y_range"], 60, 40)
    hit = rgba[..., 3] == 255
    assert np.array_equal(hit, counts > 0)  # exactly the pixels holding a selected point are opaque
    assert (rgba[hit][:, :3] == (255, 0, 170)).all()
    assert (rgba[~hit] == (255, 255, 255, 166)).all()  # the rest is veiled in translucent white
    cols_hit = np.flatnonzero(hit.any(axis=0))
    assert cols_hit.min() >= 35  # x > 0.5 lies right of the view's middle column (30 of 60) + 0.5 / 0.1
    empty = map_plot.selection_layer(x[:0], y[:0], "#ff00aa", **view)
    assert empty.dimension_values("A").max() == 0  # nothing selected: nothing veiled


def test_marker_points_hold_every_group_with_its_colour_and_size(frame):
    marks = map_plot.marker_points(
        frame, [(np.array([3, 7]), palette.SIMILAR, 8), (np.array([5]), palette.FOCUS, 18)]
    )
    assert marks.dimension_values("id").tolist() == ["o3", "o7", "o5"]
    assert marks.dimension_values("colour").tolist() == [palette.SIMILAR, palette.SIMILAR, palette.FOCUS]
    assert marks.dimension_values("size").tolist() == [8, 8, 18]
    assert len(map_plot.marker_points(frame, [(np.array([], int), palette.FOCUS, 18)])) == 0


def test_cutout_rendering_grey_composite_and_png():
    rng = np.random.default_rng(1)
    cut = rng.normal(size=(3, 20, 24)).astype(np.float32)
    cut[:, 8:12, 10:14] += 50
    rgb = cutouts.render(cut, "asinh", "zscale")
    grey = cutouts.render(cut, "log", "99.5%", band="r", bands=("g", "r", "i"))
    assert rgb.shape == (20, 24, 3) and rgb.dtype == np.uint8
    assert grey.shape == (20, 24)
    assert grey[10, 12] >= 250 and grey[0, 0] < 200  # the source is brighter than the sky
    from PIL import Image

    img = Image.open(io.BytesIO(cutouts.png_bytes(rgb, size=48)))
    assert img.size == (48, 40)
    assert cutouts.thumbnail_uri(cut[:1]).startswith("data:image/png;base64,")


def test_stretches_are_monotone_and_bounded():
    ramp = np.linspace(-1, 10, 400).reshape(20, 20)
    for name in cutouts.STRETCHES:
        out = cutouts.stretch_band(ramp, name, "minmax")
        assert out.min() >= 0 and out.max() <= 1
        assert np.all(np.diff(out.ravel()) >= -1e-12)
    with pytest.raises(ValueError, match="unknown stretch"):
        cutouts.stretch_band(ramp, "cubic")


def _sine_lightcurve(period: float = 0.7319, n: int = 150) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    t = np.sort(rng.uniform(58000, 58300, n))
    band = np.where(np.arange(n) % 2, "g", "r")
    mag = 17 + 0.5 * np.sin(2 * np.pi * t / period) + (band == "g") * 0.3 + rng.normal(0, 0.02, n)
    return pd.DataFrame({"id": "v1", "time": t, "mag": mag, "err": 0.02, "band": band})


def test_lomb_scargle_finds_the_period_and_the_plot_folds_on_it():
    lc = _sine_lightcurve()
    found = lightcurve.lomb_scargle_period(lc)
    assert found is not None and abs(found.period - 0.7319) / 0.7319 < 0.005
    assert found.power > 0.8
    raw = lightcurve.lightcurve_plot(lc, bands=["g", "r", "i"])
    assert len(raw) == 6  # error bars + points per band, the absent band empty: a fixed structure
    folded = lightcurve.lightcurve_plot(lc, period=found.period)
    phases = np.concatenate([el.dimension_values("phase") for el in folded if isinstance(el, hv.Scatter)])
    assert phases.min() >= 0 and phases.max() < 2
    assert lightcurve.lomb_scargle_period(lc.head(5)) is None


def test_sky_plot_thins_and_marks_the_focus():
    rng = np.random.default_rng(2)
    big = pd.DataFrame({"ra": rng.uniform(0, 360, 20_000), "dec": rng.uniform(-90, 90, 20_000)})
    out = sky.sky_plot(big, big.head(10), focus=(10.0, 20.0))
    assert len(out.Points.I) == sky.MAX_DRAWN
    assert len(out.Points.II) == 10
    assert out.Points.III.dimension_values("ra").tolist() == [10.0]


def test_discovery_curve_counts_anomalies_in_labelling_order():
    curve = discovery.discovery_frame(
        pd.Series(["normal", "anomaly", "artefact", "anomaly"]), prevalence=0.25
    )
    assert curve["found"].tolist() == [0, 0, 1, 1, 2]
    assert curve["random"].tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert isinstance(discovery.discovery_plot(curve), hv.Overlay)
    no_truth = discovery.discovery_frame(pd.Series(["anomaly"]), prevalence=None)
    assert len(discovery.discovery_plot(no_truth)) == 1


def test_rank_changes_report_the_biggest_moves():
    old = pd.Series([5.0, 4.0, 3.0, 2.0], index=["a", "b", "c", "d"])
    new = pd.Series([2.0, 4.0, 3.0, 5.0], index=["a", "b", "c", "d"])
    moved = compare.rank_changes(old, new, top=2)
    assert set(moved["id"]) == {"a", "d"}
    assert moved.set_index("id").loc["d", "moved"] == 3


def test_palettes_are_distinct_and_legend_is_escaped():
    cols = palette.category_colours(["a", "b", "other"])
    assert cols["other"] == palette.OTHER and cols["a"] != cols["b"]
    assert palette.label_colours(["anomaly", "merger"])["merger"] not in palette.LABEL_COLOURS.values()
    assert "&lt;b&gt;" in palette.legend_html({"<b>": "#000"})


def test_neighbour_overlap_is_one_for_the_same_embedding_and_low_for_unrelated_ones():
    from explorer.app.finetune_panel import neighbour_overlap

    rng = np.random.default_rng(5)
    X = rng.normal(size=(300, 8))
    assert neighbour_overlap(X, X * 3.0) == 1.0  # cosine neighbours ignore scale
    assert neighbour_overlap(X, rng.normal(size=(300, 8))) < 0.2
