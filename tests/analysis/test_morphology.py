"""Rings of light about a galaxy's centre, merging companions of its colour and blue lensed arcs about red
galaxies stand out of ordinary galaxies (bulge + disc, spiral arms, neighbours of other colours)."""

from __future__ import annotations

import numpy as np

from explorer.analysis.morphology import (
    arc_statistic,
    companion_statistic,
    morphology_statistics,
    ring_statistic,
)

SIZE = 64


def _coords(q: float, pa: float, x0: float = 31.5, y0: float = 31.5):
    y, x = np.mgrid[:SIZE, :SIZE].astype(np.float64)
    dx, dy = x - x0, y - y0
    u = dx * np.cos(pa) + dy * np.sin(pa)
    v = (-dx * np.sin(pa) + dy * np.cos(pa)) / q
    return np.hypot(u, v), np.arctan2(v, u)


def galaxies(n: int = 120, seed: int = 0, rounder: tuple = ()) -> tuple[np.ndarray, list]:
    """Ordinary galaxies on a noisy sky: exponential discs with a bulge, half with two spiral arms, some with a
    neighbour; three bands of slightly different colour. Also each disc's ``(q, pa)``: axis ratio 0.4-1, or
    0.65-1 for the rows ``rounder`` (a ring in a disc seen more inclined than that is not looked for)."""
    rng = np.random.default_rng(seed)
    out = rng.normal(0.0, 1.0, (n, 3, SIZE, SIZE)).astype(np.float32)
    shapes = []
    for i in range(n):
        shapes.append((rng.uniform(0.65 if i in rounder else 0.4, 1.0), rng.uniform(0, np.pi)))
        r, phi = _coords(*shapes[-1])
        scale = rng.uniform(2.0, 6.0)
        light = rng.uniform(20, 300) * np.exp(-r / scale) + rng.uniform(50, 400) * np.exp(-((r / 1.5) ** 2))
        if i % 2:
            arms = (0.5 * (1 + np.cos(2 * (phi - np.log(r + 1e-3) / np.tan(0.4))))) ** 3
            light = light * (1 + 1.5 * arms * (1 - np.exp(-((r / scale) ** 2))))
        if i % 3 == 0:
            nx, ny = rng.uniform(8, 56, 2)
            light = light + rng.uniform(20, 200) * np.exp(-0.5 * ((np.mgrid[:SIZE, :SIZE][1] - nx) ** 2
                                                                 + (np.mgrid[:SIZE, :SIZE][0] - ny) ** 2) / 2.0)
        colour = rng.uniform(0.6, 1.0, 3)
        out[i] += (colour[:, None, None] * light).astype(np.float32)
    return out, shapes


def add_ring(img: np.ndarray, radius: float, shape: tuple, flux: float, clumps: float = 0.5) -> None:
    """A clumpy ring of star formation in the disc's plane (its axis ratio and angle ``shape``), ``flux`` in
    total per band."""
    r, phi = _coords(*shape)
    ring = np.exp(-0.5 * ((r - radius) / 1.5) ** 2) * (1 + clumps * np.cos(5 * phi))
    img += (flux * ring / ring.sum()).astype(np.float32)


def test_rings_stand_out_of_discs_spirals_and_neighbours():
    rings = (5, 40, 77)
    cutouts, shapes = galaxies(rounder=rings)
    for row, radius in zip(rings, [9.0, 12.0, 15.0], strict=True):
        add_ring(cutouts[row], radius, shapes[row], flux=4000.0)  # 12-24 % of the light
    values = ring_statistic(cutouts)
    assert values.shape == (len(cutouts),) and np.isfinite(values).all()
    top = set(np.argsort(-values)[: len(rings)].tolist())
    assert top == set(rings), f"the rings are not the most ring-like: {np.sort(values)[-6:]}"


def test_a_faint_ring_is_weaker_than_a_bright_one_and_shifts_do_not_matter():
    base, shapes = galaxies(n=8, seed=3)
    row = int(np.argmax([q for q, _ in shapes]))  # a disc seen nearly face-on (an edge-on ring is a line)
    faint, bright = base.copy(), base.copy()
    add_ring(faint[row], 10.0, shapes[row], flux=1500.0)
    add_ring(bright[row], 10.0, shapes[row], flux=4000.0)
    v_base, v_faint, v_bright = (ring_statistic(c)[row] for c in (base, faint, bright))
    assert v_base < v_faint < v_bright
    # the statistic is measured about the light centroid, not the pixel grid: a 2-px shift changes little
    shifted = np.roll(bright, 2, axis=-1)
    assert abs(ring_statistic(shifted)[row] - v_bright) < 0.25 * v_bright


def test_one_band_and_blank_cutouts():
    cutouts, shapes = galaxies(n=3, seed=5, rounder=(1,))
    add_ring(cutouts[1], 11.0, shapes[1], flux=4000.0)
    one_band = ring_statistic(cutouts[:, 0])  # (n, H, W): a single band
    assert np.argmax(one_band) == 1
    blank = cutouts.copy()
    blank[2] = 0.0  # no noise to scale by: no evidence either way
    values = ring_statistic(blank)
    assert np.isnan(values[2]) and np.isfinite(values[:2]).all()


def _blob(x0: float, y0: float, sigma: float) -> np.ndarray:
    y, x = np.mgrid[:SIZE, :SIZE].astype(np.float64)
    g = np.exp(-0.5 * ((x - x0) ** 2 + (y - y0) ** 2) / sigma**2)
    return g / g.sum()


def _tail(x0: float, y0: float, radius: float, start: float, length: float) -> np.ndarray:
    """A curved band of light (tidal tail) about ``(x0, y0)``, unit flux."""
    y, x = np.mgrid[:SIZE, :SIZE].astype(np.float64)
    r, phi = np.hypot(x - x0, y - y0), np.arctan2(y - y0, x - x0)
    along = np.mod(phi - start, 2 * np.pi)
    band = np.exp(-0.5 * ((r - radius * np.exp(0.4 * along)) / 1.5) ** 2) * (along < length)
    return band / band.sum()


def test_a_companion_of_the_hosts_colour_with_a_tail_beats_neighbours_of_other_colours():
    rng = np.random.default_rng(7)
    colour = np.array([0.6, 1.0, 1.3])  # the host's g, r, i
    host = _blob(31.5, 31.5, 2.5)
    scenes = {
        "alone": 3000 * colour[:, None, None] * host,
        "merger": colour[:, None, None] * (3000 * host + 1500 * _blob(40.0, 35.0, 2.0)
                                           + 900 * _tail(31.5, 31.5, 7.0, 2.0, 2.5)),
        "blue star": 3000 * colour[:, None, None] * host + 1500 * np.array([1.4, 1.0, 0.8])[:, None, None]
        * _blob(40.0, 35.0, 1.0),
        "red galaxy": 3000 * colour[:, None, None] * host + np.array([0.2, 1.0, 1.8])[:, None, None]
        * (1500 * _blob(40.0, 35.0, 2.0) + 900 * _tail(31.5, 31.5, 7.0, 2.0, 2.5)),
        "pair, no tail": colour[:, None, None] * (3000 * host + 1500 * _blob(40.0, 35.0, 2.0)),
        # a star of about the host's colour, far brighter than the galaxy, beside it: the fainter of a pair counts
        "bright star": colour[:, None, None] * (3000 * host + 900 * _tail(31.5, 31.5, 7.0, 2.0, 2.5)
                                                + 60000 * _blob(40.0, 35.0, 1.0)),
    }
    cutouts = np.stack([v + rng.normal(0, 1, (3, SIZE, SIZE)) for v in scenes.values()]).astype(np.float32)
    values = dict(zip(scenes, companion_statistic(cutouts), strict=True))
    assert max(values, key=values.get) == "merger", values
    assert values["merger"] > values["pair, no tail"] > values["alone"]
    assert values["merger"] > values["red galaxy"] + 1 and values["merger"] > values["blue star"] + 1  # decades
    assert values["merger"] > values["bright star"] + 0.5
    # one band: no colour to compare, the companion and its tail still count
    one_band = companion_statistic(cutouts[:, 1])
    assert one_band[1] > one_band[0] + 1
    # both statistics from one pass agree with each alone
    both = morphology_statistics(cutouts)
    np.testing.assert_allclose(both[:, 1], companion_statistic(cutouts))
    np.testing.assert_allclose(both[:, 0], ring_statistic(cutouts))


RED, BLUE = np.array([0.45, 1.0, 1.5]), np.array([1.4, 1.0, 0.8])  # g, r, i of an early-type host, of an arc


def _arc(x0: float, y0: float, radius: float, centre: float, length: float, width: float = 1.2) -> np.ndarray:
    """A thin arc of a circle about ``(x0, y0)``, ``length`` rad long about angle ``centre``, unit flux."""
    y, x = np.mgrid[:SIZE, :SIZE].astype(np.float64)
    r, phi = np.hypot(x - x0, y - y0), np.arctan2(y - y0, x - x0)
    turn = np.mod(phi - centre + np.pi, 2 * np.pi) - np.pi
    band = np.exp(-0.5 * ((r - radius) / width) ** 2 - 0.5 * (turn / (length / 4)) ** 2)
    return band / band.sum()


def _lens_scenes(red: np.ndarray = RED, blue: np.ndarray = BLUE) -> dict:
    host = 0.7 * _blob(31.5, 31.5, 2.0) + 0.3 * _blob(31.5, 31.5, 5.0)  # a core and its wings
    arc = 0.8 * _arc(31.5, 31.5, 9.0, 0.7, 1.6) + 0.2 * _arc(31.5, 31.5, 9.0, 0.7 + np.pi, 0.8)  # + counter-image
    r, phi = _coords(0.9, 0.3)
    arms = (0.5 * (1 + np.cos(2 * (phi - np.log(r + 1e-3) / np.tan(0.4))))) ** 3 * np.exp(-r / 6.0)
    disc, _ = _coords(0.4, 0.6)
    return {
        "lens": 4000 * red[:, None, None] * host + 900 * blue[:, None, None] * arc,
        "elliptical": 4000 * red[:, None, None] * host,
        "spiral, blue arms": 4000 * red[:, None, None] * host + 900 * blue[:, None, None] * arms / arms.sum(),
        "inclined blue disc": 4000 * red[:, None, None] * host
        + 2500 * blue[:, None, None] * np.exp(-disc / 4.0) / np.exp(-disc / 4.0).sum(),
        "blue neighbour": 4000 * red[:, None, None] * host + 900 * blue[:, None, None] * _blob(38.0, 37.0, 1.5),
        "arc of the host's colour": 4000 * red[:, None, None] * host + 900 * red[:, None, None] * arc,
    }


def _noisy(scenes: dict, seed: int = 11) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([v + rng.normal(0, 1, v.shape) for v in scenes.values()]).astype(np.float32)


def test_a_blue_arc_with_a_counter_image_about_a_red_galaxy_is_the_most_lens_like():
    scenes = _lens_scenes()
    cutouts = _noisy(scenes)
    values = dict(zip(scenes, arc_statistic(cutouts), strict=True))
    assert np.isfinite(list(values.values())).all()
    # in decades: the lens by far; blue arms, a blue disc (one colour gradient, point-symmetric) and a blue
    # neighbour (no counter-image) do not look like one, nor does an arc of the host's own colour
    for name, value in values.items():
        if name != "lens":
            assert values["lens"] > value + 1, values
    # one pass of all three statistics gives the same
    np.testing.assert_allclose(morphology_statistics(cutouts)[:, 2], arc_statistic(cutouts))


def test_an_arc_only_a_little_bluer_than_its_host_is_far_less_lens_like():
    # a lensed source is a star-forming galaxy behind a red early-type: ~1.9 mag bluer in g - i here; spiral arms
    # are ~0.5 mag bluer than their bulge, and this arc ~0.6 (3/10 of the lens's colour contrast)
    scenes = _lens_scenes()
    arc = scenes["lens"] - scenes["elliptical"]
    a_little = RED * (BLUE / RED) ** 0.3
    scenes["an arc a little bluer"] = scenes["elliptical"] + (a_little / BLUE)[:, None, None] * arc
    values = dict(zip(scenes, arc_statistic(_noisy(scenes)), strict=True))
    assert values["lens"] > values["an arc a little bluer"] + 1.4, values


def test_the_arc_statistic_follows_the_arc_not_the_pixel_grid():
    scenes = _lens_scenes()
    cutouts = _noisy({"lens": scenes["lens"]})
    faint = _noisy({"lens": scenes["elliptical"] + 0.4 * (scenes["lens"] - scenes["elliptical"])})
    value, weaker = arc_statistic(cutouts)[0], arc_statistic(faint)[0]
    assert weaker < value
    shifted = np.roll(cutouts, (3, -2), axis=(-2, -1))  # centred on the galaxy, wherever it is
    rotated = np.rot90(cutouts, 1, axes=(-2, -1)).copy()
    for other in (shifted, rotated):
        assert abs(arc_statistic(other)[0] - value) < 0.2, (value, arc_statistic(other)[0])


def test_the_arc_statistic_needs_two_bands_and_light():
    cutouts = _noisy(_lens_scenes())
    assert np.isnan(arc_statistic(cutouts[:, 1])).all()  # one band: no colour, the detector does not apply
    two = arc_statistic(cutouts[:, [0, 2]])  # blue and red bands only: the lens still stands out
    assert np.argmax(two) == 0
    # u, g, r, i, z: the bluer half (u + g) against the redder (i + z)
    five = _noisy(_lens_scenes(np.array([0.15, 0.45, 1.0, 1.5, 1.8]), np.array([1.5, 1.4, 1.0, 0.8, 0.7])))
    values = arc_statistic(five)
    assert np.argmax(values) == 0 and values[0] > np.delete(values, 0).max() + 1
    blank = cutouts.copy()
    blank[3] = 0.0
    values = arc_statistic(blank)
    assert np.isnan(values[3]) and np.isfinite(np.delete(values, 3)).all()


def test_small_frames_and_bands_stored_red_first(tmp_path):
    import pandas as pd

    from explorer.analysis.data_detectors import CutoutPart, blue_to_red, cutout_part
    from explorer.data.ingest import add_objects
    from explorer.data.readers_images import ImageInput
    from explorer.workspace import Workspace

    cutouts = _noisy(_lens_scenes())
    small = arc_statistic(cutouts[..., 24:40, 24:40])  # 16 px: circles out to 6.4 px only, the lens still first
    assert np.isfinite(small).all() and np.argmax(small) == 0
    assert np.isnan(arc_statistic(cutouts[..., 26:38, 26:38])).all()  # 12 px: no room for an arc about a core

    assert blue_to_red(["i", "r", "g"]) == [2, 1, 0] and blue_to_red(["F150W", "F444W"]) == [0, 1]
    # an image set stored i, r, g is measured as g, r, i: the same statistics as the same cutouts stored g, r, i
    ws = Workspace.create(tmp_path / "ws")
    values = {}
    for name, order, bands in (("gri", [0, 1, 2], ("g", "r", "i")), ("irg", [2, 1, 0], ("i", "r", "g"))):
        table = pd.DataFrame({"id": [f"{name}{i}" for i in range(len(cutouts))], "ra": 1.0, "dec": 2.0})
        arr = np.ascontiguousarray(cutouts[:, order])
        inp = ImageInput(table["id"].tolist(), arr.shape[1:], bands, lambda a, b, arr=arr: arr[a:b], name, len(arr))
        add_objects(ws, table, source=name, images=inp, image_set=name, progress=False)
        detector = type("NoArtefacts", (), {"max_size": 128, "transform": lambda self, c: np.zeros((len(c), 0))})()
        values[name] = cutout_part(detector, CutoutPart(str(ws.path), name, tuple(table["id"])))
    np.testing.assert_allclose(values["irg"], values["gri"])
    np.testing.assert_allclose(values["gri"][:, 2], arc_statistic(cutouts), rtol=1e-6)
