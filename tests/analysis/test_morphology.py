"""Rings of light about a galaxy's centre, and merging companions of its colour, stand out of ordinary galaxies
(bulge + disc, spiral arms, neighbours of other colours)."""

from __future__ import annotations

import numpy as np

from explorer.analysis.morphology import companion_statistic, morphology_statistics, ring_statistic

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
    }
    cutouts = np.stack([v + rng.normal(0, 1, (3, SIZE, SIZE)) for v in scenes.values()]).astype(np.float32)
    values = dict(zip(scenes, companion_statistic(cutouts), strict=True))
    assert max(values, key=values.get) == "merger", values
    assert values["merger"] > values["pair, no tail"] > values["alone"]
    assert values["merger"] > values["red galaxy"] + 1 and values["merger"] > values["blue star"] + 1  # decades
    # one band: no colour to compare, the companion and its tail still count
    one_band = companion_statistic(cutouts[:, 1])
    assert one_band[1] > one_band[0] + 1
    # both statistics from one pass agree with each alone
    both = morphology_statistics(cutouts)
    np.testing.assert_allclose(both[:, 1], companion_statistic(cutouts))
    np.testing.assert_allclose(both[:, 0], ring_statistic(cutouts))
