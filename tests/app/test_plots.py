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


def test_highlight_counts_only_the_subset_inside_the_view(frame):
    rows = np.flatnonzero(frame["x"].to_numpy() > 0)
    img = map_plot.highlight_layer(
        map_plot.subset_points(frame, rows), "#f0a", (-5, 5), (-5, 5), 50, 50, spread=0
    )
    assert isinstance(img, hv.Image)
    assert int(np.nansum(img.data[img.vdims[0].name].values)) == len(rows)
    empty = map_plot.highlight_layer(
        map_plot.subset_points(frame, rows[:0]), "#f0a", (-5, 5), (-5, 5), 50, 50
    )
    assert np.nansum(empty.data[empty.vdims[0].name].values) == 0


def test_labelled_objects_are_markers_coloured_by_class(frame):
    labels = np.array(["anomaly", "normal", "merger"], dtype=object)
    pts = map_plot.label_points(frame, np.array([4, 9, 11]), labels, palette.label_colours(["merger"]))
    assert pts.dimension_values("id").tolist() == ["o4", "o9", "o11"]
    assert pts.dimension_values("label").tolist() == list(labels)
    assert len(map_plot.label_points(frame, np.arange(10), np.array(["normal"] * 10), {}, limit=3)) == 3


def test_veil_and_markers(frame):
    assert len(map_plot.veil((0, 0, 1, 1), on=True)) == 1
    assert len(map_plot.veil((0, 0, 1, 1), on=False)) == 0
    marks = map_plot.markers(frame, np.array([3, 7]), palette.FOCUS)
    assert marks.dimension_values("id").tolist() == ["o3", "o7"]


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
