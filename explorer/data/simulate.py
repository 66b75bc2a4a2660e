"""The simulated survey with ground truth: its classes, and one catalogue row per object holding every parameter.

A seeded, reproducible survey of any size (10 to 10,000,000 objects): galaxies with Sérsic profiles (images),
variable stars and transients with a survey cadence (light curves, plus a star in an image), and a known fraction
of injected oddities. :func:`simulate_parameters` draws the catalogue; :func:`render_cutouts` and
:func:`render_lightcurves` turn any rows of it into pixels and light curves, from the rows alone.

Reproducibility: object ``i`` draws its numbers from a Philox counter block keyed by ``seed`` and placed at the
object's global index ``start + i``, so ``simulate_parameters(50, start=50)`` equals rows 50..99 of
``simulate_parameters(100)``. Everything a renderer draws later (neighbours, cadence, noise) is hashed from the
row's ``p_key`` (and the render seed), never from the batch, so an object renders the same alone or in a batch.

Units: positions and sizes in pixels of :data:`PIXEL_SCALE` arcsec, measured from the cutout centre (x along
the last array axis, y along the one before); angles in radians unless the column name says ``deg``; magnitudes AB with fluxes in nanomaggies
(:data:`ZEROPOINT`); times MJD, durations days. Columns that do not apply to an object hold NaN (floats),
0 (counts) or -1 (codes). The parameter columns and their meaning per class are listed in :data:`PARAMETER_DOCS`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special

from explorer.errors import DataError

IMAGE_BANDS = ("g", "r", "i")
LC_BANDS = ("g", "r")

PIXEL_SCALE = 0.4  # arcsec per pixel
ZEROPOINT = 22.5  # AB magnitude of one nanomaggy
FOOTPRINT = (120.0, 240.0, -10.0, 40.0)  # ra_min, ra_max, dec_min, dec_max (deg)
SURVEY_START = 58200.0  # MJD (March 2018, ZTF-like)
YEAR = 365.2422
EQUINOX_MJD = 58197.68  # March equinox 2018: the Sun at ra = 0

#: Ground-truth classes of ordinary objects and their share of the survey (65% galaxies, 35% point sources).
CLASS_MIX = {
    "elliptical": 0.18,
    "disk": 0.20,
    "spiral": 0.27,
    "flat": 0.13,
    "rrlyrae": 0.05,
    "cepheid": 0.03,
    "eclipsing_binary": 0.07,
    "lpv": 0.03,
    "supernova": 0.04,
}
#: Classes of the injected oddities and their share among oddities (images first, then light curves).
ODDITY_MIX = {
    "merger": 0.18,
    "ring": 0.12,
    "lens": 0.12,
    "artefact_trail": 0.12,
    "artefact_hotpix": 0.11,
    "microlensing": 0.13,
    "flare": 0.11,
    "dipper": 0.11,
}
CLASSES = (*CLASS_MIX, *ODDITY_MIX)
GALAXY_CLASSES = ("elliptical", "disk", "spiral")
IMAGE_ODDITIES = ("merger", "ring", "lens", "artefact_trail", "artefact_hotpix")
LC_ODDITIES = ("microlensing", "flare", "dipper")
SUBCLASSES = (
    *CLASSES,
    "star",
    "RRab",
    "RRc",
    "detached",
    "contact",
    "Ia-like",
    "II-like",
)

#: Light-curve model codes stored in ``p_lc_model``.
LC_MODELS = {
    "none": -1,
    "flat": 0,
    "fourier": 1,
    "eclipse": 2,
    "bazin": 3,
    "paczynski": 4,
    "flare": 5,
    "dips": 6,
}

#: What each group of ``p_*`` columns means (the generic light-curve columns ``p_lc_a/b/c`` per model).
PARAMETER_DOCS = {
    "p_key": "64-bit key (as int64) from which renderers hash neighbours, cadence and noise",
    "p_fwhm_g/r/i": "PSF core FWHM per band (px); the PSF is a Gaussian core plus a 2.5x wider Gaussian wing "
    "(extended light is blurred by the core alone)",
    "p_psf_wing": "fraction of the PSF flux in the wing",
    "p_sky_g/r/i": "sky level (nanomaggies per pixel): sets the Poisson noise; cutouts are sky-subtracted",
    "p_n_nb": "number of neighbour stars/galaxies in the frame (their details are hashed from p_key)",
    "p_gal_*": "main Sérsic component: centre x, y (px), index n, effective radius re (px, semi-major), axis "
    "ratio q, position angle pa (rad), total magnitudes mag_g/r/i (disc light of a spiral includes its arms)",
    "p_s2_*": "second Sérsic component, same fields: bulge (disk, spiral), companion (merger)",
    "p_arm_*": "spiral arms on the main component: number m, pitch (deg), phase (rad), sharpness, and the "
    "fraction of the disc light in the arm pattern per band frac_g/r/i (bluer arms: larger in g)",
    "p_arc_*": "ring / lensed arc / tidal tail about the main centre: radius r and width w (px), angle theta "
    "(rad), angular extent len (rad, >= 2 pi: full ring), curl (log-spiral rate, 0: circular), axis ratio q of "
    "its frame (pa of the main), counter (flux of the mirrored arc), clump amplitude and number m, mag_g/r/i",
    "p_star_*": "point source: centre x, y (px), magnitudes mag_g/r/i (mean magnitude of a variable)",
    "p_art_*": "artefact: kind (0 none, 1 satellite trail, 2 hot pixels/cosmic rays), band of a trail, number "
    "of hits, amplitude (in sky sigma), trail angle (rad), offset (px), width (px)",
    "p_lc_model": "light-curve model code, see LC_MODELS",
    "p_mean_g/r": "mean (flat, fourier, eclipse: out-of-eclipse; bazin: peak; others: quiescent) magnitude",
    "p_amp_g/r": "fourier: peak-to-peak; eclipse: primary depth; flare: brightest flare; dips: deepest dip (mag)",
    "p_period": "period (d) of fourier and eclipse models",
    "p_t0": "fourier: epoch of maximum light; eclipse: primary minimum; bazin: t0; paczynski: peak (MJD)",
    "p_lc_a": "fourier: harmonic ratio R; eclipse: secondary/primary depth; bazin: tau_rise (d); "
    "paczynski: impact parameter u0; flare: number of flares; dips: number of dips",
    "p_lc_b": "fourier: harmonic phase jitter (rad); eclipse: half-width of an eclipse (phase); bazin: tau_fall "
    "in r (d); paczynski: Einstein time tE (d); flare: decay time (d); dips: dip width (d)",
    "p_lc_c": "fourier: cycle-to-cycle irregularity (mag); eclipse: 1 contact, 0 detached; bazin: tau_fall "
    "ratio g/r (colour evolution); paczynski: source flux fraction (blending)",
    "p_n_g/r": "number of epochs per band",
    "p_t_start, p_baseline": "observing window (MJD, d); epochs fall in the seasons the object is visible",
    "p_depth_g/r": "median 5-sigma limiting magnitude of the epochs",
}

# ---------------------------------------------------------------------------------------------------------
# Randomness: per-object Philox blocks for parameters, a splitmix64 hash for everything renderers draw.

_WORDS = 48  # 64-bit words per object (96 uniform slots); a multiple of 4, one Philox block holds 4 words
_SLOTS = (
    "key_lo key_hi class oddity odd_class base_class ra dec "
    "fwhm fwhm_g fwhm_i wing sky n_nb has_img "
    "g_mag g_size g_n g_q g_pa g_x g_y g_gr g_ri g_sub "
    "b_frac b_n b_re b_q b_pa b_gr b_ri "
    "a_m a_pitch a_phase a_frac a_sharp "
    "c_dist c_ang c_ratio c_n c_re c_q c_pa "
    "arc_r arc_w arc_theta arc_len arc_curl arc_frac arc_gr arc_ri arc_counter arc_clump arc_m "
    "art_band art_n art_amp art_angle art_offset art_width "
    "s_mag s_gr s_ri s_x s_y s_sub "
    "lc_p lc_amp lc_ampratio lc_a lc_b lc_c lc_t0 lc_n lc_nratio lc_start lc_base lc_depth lc_dg"
).split()
_SLOT = {name: i for i, name in enumerate(_SLOTS)}
assert len(_SLOTS) <= 2 * _WORDS
_CHUNK = 1 << 17  # rows drawn at once: bounds the temporary memory of big catalogues

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _mix_int(x: int) -> int:
    """splitmix64 finaliser of one Python integer (no numpy scalar overflow warnings)."""
    x &= _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def mix64(x: np.ndarray) -> np.ndarray:
    """Return the splitmix64 finaliser of ``x`` (uint64 array): a well-mixed, vectorised 64-bit hash."""
    x = np.asarray(x, dtype=np.uint64)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def hash_bits(keys: np.ndarray, stream) -> np.ndarray:
    """Return 64 random bits per key (uint64 array) for the numbered ``stream`` (independent per stream).

    ``stream`` is an int or an integer array broadcast against ``keys``.
    """
    if np.ndim(stream) == 0:
        salt = np.uint64(_mix_int(int(stream) * _GOLDEN + 0x632BE59BD9B4E019))
    else:
        salt = mix64(np.asarray(stream, dtype=np.uint64) * np.uint64(_GOLDEN) + np.uint64(0x632BE59BD9B4E019))
    return mix64(mix64(np.asarray(keys, dtype=np.uint64) ^ salt) + np.uint64(_GOLDEN))


def hash_uniform(keys: np.ndarray, stream) -> np.ndarray:
    """Return a uniform float64 in the open interval (0, 1) per key for ``stream``."""
    return ((hash_bits(keys, stream) >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53


def hash_normal(keys: np.ndarray, stream) -> np.ndarray:
    """Return a standard normal float64 per key for ``stream``."""
    return special.ndtri(hash_uniform(keys, stream))


def seed_salt(seed: int, what: int) -> np.uint64:
    """Return a 64-bit salt mixing a render ``seed`` with the kind of thing rendered (1 images, 2 light curves)."""
    return np.uint64(_mix_int(what * _GOLDEN ^ _mix_int(seed)))


class _Draws:
    """Uniform draws of a block of objects, addressed by slot name: ``d.u("ra")`` is one number per object."""

    def __init__(self, u32: np.ndarray):
        self._u32 = u32  # (m, 2 * _WORDS) uint32

    def __len__(self) -> int:
        return len(self._u32)

    def take(self, rows: np.ndarray) -> _Draws:
        return _Draws(self._u32[rows])

    def u(self, name: str) -> np.ndarray:
        return (self._u32[:, _SLOT[name]].astype(np.float64) + 0.5) * 2.0**-32

    def uniform(self, name: str, lo: float, hi: float) -> np.ndarray:
        return lo + (hi - lo) * self.u(name)

    def loguniform(self, name: str, lo: float, hi: float) -> np.ndarray:
        return np.exp(self.uniform(name, np.log(lo), np.log(hi)))

    def normal(self, name: str, mean: float = 0.0, sigma: float = 1.0) -> np.ndarray:
        return mean + sigma * special.ndtri(self.u(name))

    def integers(self, name: str, lo: int, hi: int) -> np.ndarray:
        """Integers from ``lo`` to ``hi`` inclusive."""
        return lo + np.minimum(np.floor(self.u(name) * (hi - lo + 1)), hi - lo).astype(np.int64)

    def choice(self, name: str, probs) -> np.ndarray:
        """Index into ``probs`` drawn with those probabilities."""
        cum = np.cumsum(np.asarray(probs, dtype=np.float64))
        return np.minimum(np.searchsorted(cum / cum[-1], self.u(name), side="right"), len(cum) - 1)

    def counts_mag(self, name: str, lo: float, hi: float, slope: float) -> np.ndarray:
        """Magnitudes in [lo, hi] with number counts dN/dm proportional to 10**(slope * m)."""
        alpha = slope * np.log(10.0)
        return lo + np.log1p(self.u(name) * np.expm1(alpha * (hi - lo))) / alpha

    def key(self) -> np.ndarray:
        return self._u32[:, 0:2].copy().view(np.uint64)[:, 0]


def _object_words(seed: int, first: int, m: int) -> np.ndarray:
    """Return the (m, 2 * _WORDS) uint32 draws of objects ``first .. first + m - 1``."""
    key = np.random.SeedSequence(seed).generate_state(2, np.uint64)
    bitgen = np.random.Philox(key=key, counter=first * (_WORDS // 4))
    return bitgen.random_raw(m * _WORDS).reshape(m, _WORDS).view(np.uint32)


# ---------------------------------------------------------------------------------------------------------
# Seasons: when an object at (ra, dec) can be observed from a northern site (used for cadence and event times).


def season_intervals(ra, dec, t_start, t_end) -> tuple[np.ndarray, np.ndarray]:
    """Return the start times and lengths (both ``(m, 5)``) of the observing seasons inside [t_start, t_end].

    A season is centred on opposition (the Sun at ``ra + 180``) and lasts 150-300 days, longer for northern
    declinations. Five seasons cover any window up to three years; unused ones have length 0.
    """
    ra, dec, t0, t1 = (np.asarray(a, dtype=np.float64) for a in (ra, dec, t_start, t_end))
    opposition = EQUINOX_MJD + np.mod(ra - 180.0, 360.0) / 360.0 * YEAR
    half = 0.5 * np.clip(210.0 + 1.2 * dec, 150.0, 300.0)
    first = np.floor((t0 - opposition - half) / YEAR)
    centres = opposition[:, None] + (first[:, None] + np.arange(5)) * YEAR
    begin = np.clip(centres - half[:, None], t0[:, None], t1[:, None])
    end = np.clip(centres + half[:, None], t0[:, None], t1[:, None])
    return begin, end - begin


def place_in_seasons(u, begin, length, rows=None) -> np.ndarray:
    """Map uniforms ``u`` to times spread evenly over the seasons ``(begin, length)`` of their objects.

    ``rows`` gives the object of each ``u`` (default: one ``u`` per object). Memory stays O(len(u)).
    """
    rows = np.arange(len(u)) if rows is None else rows
    cum = np.cumsum(length, axis=1)
    total = cum[:, -1]
    s = u * total[rows]
    which = np.zeros(len(u), dtype=np.int64)
    for k in range(length.shape[1] - 1):
        which += s > cum[rows, k]
    t = begin[rows, which] + s - (cum[rows, which] - length[rows, which])
    empty = total[rows] <= 0
    if np.any(empty):  # no visibility at all: spread over the window start (should not happen)
        t[empty] = begin[rows[empty], 0] + u[empty]
    return t


# ---------------------------------------------------------------------------------------------------------
# Parameter columns.

_FLOAT_COLUMNS = (
    "p_fwhm_g p_fwhm_r p_fwhm_i p_psf_wing p_sky_g p_sky_r p_sky_i "
    "p_gal_x p_gal_y p_gal_n p_gal_re p_gal_q p_gal_pa p_gal_mag_g p_gal_mag_r p_gal_mag_i "
    "p_s2_x p_s2_y p_s2_n p_s2_re p_s2_q p_s2_pa p_s2_mag_g p_s2_mag_r p_s2_mag_i "
    "p_arm_pitch p_arm_phase p_arm_sharp p_arm_frac_g p_arm_frac_r p_arm_frac_i "
    "p_arc_r p_arc_w p_arc_theta p_arc_len p_arc_curl p_arc_q p_arc_counter p_arc_clump "
    "p_arc_mag_g p_arc_mag_r p_arc_mag_i "
    "p_star_x p_star_y p_star_mag_g p_star_mag_r p_star_mag_i "
    "p_art_amp p_art_angle p_art_offset p_art_width "
    "p_mean_g p_mean_r p_amp_g p_amp_r p_period p_t0 p_lc_a p_lc_b p_lc_c p_t_start p_baseline "
    "p_depth_g p_depth_r"
).split()
_INT_COLUMNS = {
    "p_n_nb": (np.int8, 0),
    "p_arm_m": (np.int8, 0),
    "p_arc_m": (np.int8, 0),
    "p_art_kind": (np.int8, 0),
    "p_art_band": (np.int8, -1),
    "p_art_n": (np.int8, 0),
    "p_lc_model": (np.int8, -1),
    "p_n_g": (np.int16, 0),
    "p_n_r": (np.int16, 0),
}


def _blank(name: str, n: int) -> np.ndarray:
    """A column of ``n`` "does not apply" values: NaN, or the integer fill of ``name``."""
    if name in _INT_COLUMNS:
        return np.full(n, _INT_COLUMNS[name][1], dtype=np.float64)
    return np.full(n, np.nan)


def _mags(r, gr, ri) -> dict:
    return {"g": r + gr, "r": r, "i": r - ri}


def _put(out: dict, prefix: str, mags: dict) -> None:
    for band, value in mags.items():
        out[f"{prefix}_{band}"] = value


def _observing(d: _Draws) -> dict:
    """PSF, sky and neighbours of every object with an image."""
    fwhm_r = np.clip(10.0 ** d.normal("fwhm", np.log10(1.1), 0.08), 0.75, 1.7) / PIXEL_SCALE
    moon = d.u("sky")
    return {
        "p_fwhm_r": fwhm_r,
        "p_fwhm_g": fwhm_r * 1.055 * (1.0 + 0.02 * d.normal("fwhm_g")),
        "p_fwhm_i": fwhm_r * 0.963 * (1.0 + 0.02 * d.normal("fwhm_i")),
        "p_psf_wing": d.uniform("wing", 0.05, 0.15),
        "p_sky_g": 0.254 * (1.0 + 1.5 * moon),
        "p_sky_r": 0.58 * (1.0 + 0.8 * moon),
        "p_sky_i": 1.11 * (1.0 + 0.4 * moon),
        "p_n_nb": d.choice("n_nb", _NEIGHBOUR_PMF),
    }


# Poisson(1.6) neighbours in a cutout, at most 6
_NEIGHBOUR_PMF = np.exp(-1.6) * 1.6 ** np.arange(7) / special.factorial(np.arange(7))


def _size(d: _Draws, mag_r: np.ndarray, offset: float) -> np.ndarray:
    """Effective radius (px) from a size-magnitude relation with scatter."""
    log_re = 0.45 - 0.12 * (mag_r - 17.0) + offset + d.normal("g_size", 0.0, 0.12)
    return np.clip(10.0**log_re / PIXEL_SCALE, 1.5, 14.0)


def _main_body(d: _Draws, mag_r, n, re, q, gr, ri) -> dict:
    out = {
        "p_gal_x": d.uniform("g_x", -0.5, 0.5),
        "p_gal_y": d.uniform("g_y", -0.5, 0.5),
        "p_gal_n": n,
        "p_gal_re": re,
        "p_gal_q": q,
        "p_gal_pa": d.uniform("g_pa", 0.0, np.pi),
    }
    _put(out, "p_gal_mag", _mags(mag_r, gr, ri))
    return out


def _inclined_q(cos_i: np.ndarray, q0: float = 0.15) -> np.ndarray:
    return np.sqrt(cos_i**2 * (1.0 - q0**2) + q0**2)


def _bulge(d: _Draws, out: dict, total_r, frac) -> None:
    """Split ``total_r`` into a disc (main) and a red de Vaucouleurs-like bulge (second component)."""
    gr, ri = out["p_gal_mag_g"] - out["p_gal_mag_r"], out["p_gal_mag_r"] - out["p_gal_mag_i"]
    disc_r = total_r - 2.5 * np.log10(1.0 - frac)
    _put(out, "p_gal_mag", _mags(disc_r, gr, ri))
    out.update(
        p_s2_x=out["p_gal_x"],
        p_s2_y=out["p_gal_y"],
        p_s2_n=d.uniform("b_n", 2.5, 4.5),
        p_s2_re=np.maximum(out["p_gal_re"] * d.uniform("b_re", 0.12, 0.3), 0.8),
        p_s2_q=d.uniform("b_q", 0.7, 1.0),
        p_s2_pa=out["p_gal_pa"] + d.normal("b_pa", 0.0, 0.15),
    )
    _put(
        out,
        "p_s2_mag",
        _mags(total_r - 2.5 * np.log10(frac), d.normal("b_gr", 0.85, 0.05), d.normal("b_ri", 0.4, 0.03)),
    )


def _galaxy(d: _Draws, cls: str) -> dict:
    """Parameters of an ordinary galaxy (elliptical, disk, spiral)."""
    mag_r = d.counts_mag("g_mag", 14.5, 19.0, 0.4)
    if cls == "elliptical":
        out = _main_body(
            d,
            mag_r,
            d.loguniform("g_n", 2.5, 6.0),
            _size(d, mag_r, -0.1),
            d.uniform("g_q", 0.5, 1.0),
            d.normal("g_gr", 0.88, 0.05),
            d.normal("g_ri", 0.40, 0.03),
        )
        return out
    if cls == "disk":
        q = _inclined_q(d.u("g_q"))
        out = _main_body(
            d,
            mag_r,
            d.uniform("g_n", 0.5, 1.5),
            _size(d, mag_r, 0.0),
            q,
            d.normal("g_gr", 0.7, 0.08),
            d.normal("g_ri", 0.35, 0.04),
        )
        _bulge(d, out, mag_r, d.uniform("b_frac", 0.1, 0.5))
        return out
    q = _inclined_q(d.uniform("g_q", 0.35, 1.0))
    re = np.maximum(_size(d, mag_r, 0.2), 4.0)
    out = _main_body(
        d,
        mag_r,
        d.uniform("g_n", 0.7, 1.3),
        re,
        q,
        d.normal("g_gr", 0.55, 0.08),
        d.normal("g_ri", 0.28, 0.04),
    )
    _bulge(d, out, mag_r, d.uniform("b_frac", 0.05, 0.35))
    frac_r = d.uniform("a_frac", 0.45, 0.75)
    out.update(
        p_arm_m=np.array([2, 3, 4])[d.choice("a_m", [0.65, 0.25, 0.10])],
        p_arm_pitch=d.uniform("a_pitch", 12.0, 30.0),
        p_arm_phase=d.uniform("a_phase", 0.0, 2 * np.pi),
        p_arm_sharp=d.uniform("a_sharp", 2.0, 6.0),
        p_arm_frac_g=np.minimum(frac_r * 1.35, 0.95),
        p_arm_frac_r=frac_r,
        p_arm_frac_i=frac_r * 0.8,
    )
    return out


def _merger(d: _Draws) -> dict:
    mag_r = d.counts_mag("g_mag", 14.5, 18.5, 0.4)
    re = _size(d, mag_r, 0.0)
    out = _main_body(
        d,
        mag_r,
        d.uniform("g_n", 1.0, 4.0),
        re,
        d.uniform("g_q", 0.4, 1.0),
        d.normal("g_gr", 0.7, 0.1),
        d.normal("g_ri", 0.35, 0.05),
    )
    dist, ang = d.uniform("c_dist", 4.0, 14.0), d.uniform("c_ang", 0.0, 2 * np.pi)
    out.update(
        p_s2_x=out["p_gal_x"] + dist * np.cos(ang),
        p_s2_y=out["p_gal_y"] + dist * np.sin(ang),
        p_s2_n=d.uniform("c_n", 1.0, 4.0),
        p_s2_re=np.maximum(re * d.uniform("c_re", 0.5, 1.0), 1.2),
        p_s2_q=d.uniform("c_q", 0.4, 1.0),
        p_s2_pa=d.uniform("c_pa", 0.0, np.pi),
    )
    gr = out["p_gal_mag_g"] - out["p_gal_mag_r"]
    _put(
        out,
        "p_s2_mag",
        _mags(
            mag_r - 2.5 * np.log10(d.uniform("c_ratio", 0.3, 1.0)),
            gr + 0.05,
            out["p_gal_mag_r"] - out["p_gal_mag_i"],
        ),
    )
    _arc(
        d,
        out,
        radius=re * d.uniform("arc_r", 1.2, 2.5),
        width=d.uniform("arc_w", 1.2, 3.0),
        length=d.uniform("arc_len", 1.5, 3.5),
        curl=d.uniform("arc_curl", 0.25, 0.6),
        q=np.ones(len(d)),
        counter=d.uniform("arc_counter", 0.0, 0.8),
        mag_r=mag_r - 2.5 * np.log10(d.uniform("arc_frac", 0.15, 0.35)),
        gr=d.normal("arc_gr", 0.6, 0.1),
        ri=d.normal("arc_ri", 0.3, 0.05),
    )
    return out


def _arc(
    d: _Draws, out: dict, *, radius, width, length, curl, q, counter, mag_r, gr, ri, clump=None, m=None
) -> None:
    n = len(d)
    out.update(
        p_arc_r=radius,
        p_arc_w=width,
        p_arc_theta=d.uniform("arc_theta", 0.0, 2 * np.pi),
        p_arc_len=length,
        p_arc_curl=curl,
        p_arc_q=q,
        p_arc_counter=counter,
        p_arc_clump=np.zeros(n) if clump is None else clump,
        p_arc_m=np.zeros(n) if m is None else m,
    )
    _put(out, "p_arc_mag", _mags(mag_r, gr, ri))


def _ring(d: _Draws) -> dict:
    total_r = d.counts_mag("g_mag", 15.0, 18.5, 0.4)
    frac = d.uniform("arc_frac", 0.4, 0.7)
    core_r = total_r - 2.5 * np.log10(1.0 - frac)
    out = _main_body(
        d,
        core_r,
        d.uniform("g_n", 1.5, 4.0),
        d.uniform("g_size", 1.2, 3.0),
        _inclined_q(d.uniform("g_q", 0.3, 1.0), 0.3),
        d.normal("g_gr", 0.75, 0.06),
        d.normal("g_ri", 0.38, 0.03),
    )
    _arc(
        d,
        out,
        radius=d.uniform("arc_r", 7.0, 16.0),
        width=d.uniform("arc_w", 1.0, 2.5),
        length=np.full(len(d), 2 * np.pi),
        curl=np.zeros(len(d)),
        q=out["p_gal_q"],
        counter=np.zeros(len(d)),
        mag_r=total_r - 2.5 * np.log10(frac),
        gr=d.normal("arc_gr", 0.35, 0.08),
        ri=d.normal("arc_ri", 0.15, 0.05),
        clump=d.uniform("arc_clump", 0.2, 0.8),
        m=d.integers("arc_m", 3, 8),
    )
    return out


def _lens(d: _Draws) -> dict:
    mag_r = d.uniform("g_mag", 16.5, 18.5)
    out = _main_body(
        d,
        mag_r,
        d.uniform("g_n", 3.0, 5.0),
        d.uniform("g_size", 2.5, 6.0),
        d.uniform("g_q", 0.6, 1.0),
        d.normal("g_gr", 0.9, 0.05),
        d.normal("g_ri", 0.42, 0.03),
    )
    _arc(
        d,
        out,
        radius=d.uniform("arc_r", 6.0, 13.0),
        width=d.uniform("arc_w", 0.7, 1.5),
        length=d.uniform("arc_len", 0.8, 2.2),
        curl=np.zeros(len(d)),
        q=np.ones(len(d)),
        counter=d.uniform("arc_counter", 0.15, 0.5),
        mag_r=mag_r + d.uniform("arc_frac", 1.0, 2.2),
        gr=d.normal("arc_gr", 0.25, 0.1),
        ri=d.normal("arc_ri", 0.1, 0.05),
    )
    return out


def _artefact(d: _Draws, kind: str) -> tuple[dict, str]:
    """An ordinary image scene (a galaxy or a star) with a satellite trail or hot pixels on top."""
    base = d.choice("base_class", [0.2, 0.2, 0.25, 0.35])  # elliptical, disk, spiral, star
    out: dict = {}
    for code, cls in enumerate((*GALAXY_CLASSES, "star")):
        rows = np.flatnonzero(base == code)
        part = (
            _star_image(d.take(rows), *_flat_star(d.take(rows)))
            if cls == "star"
            else _galaxy(d.take(rows), cls)
        )
        for name, values in part.items():
            out.setdefault(name, _blank(name, len(d)))[rows] = values
    n = len(d)
    if kind == "artefact_trail":
        out.update(
            p_art_kind=np.ones(n),
            p_art_band=d.integers("art_band", 0, 2),
            p_art_amp=d.uniform("art_amp", 4.0, 15.0),
            p_art_angle=d.uniform("art_angle", 0.0, np.pi),
            p_art_offset=d.uniform("art_offset", -20.0, 20.0),
            p_art_width=d.uniform("art_width", 0.4, 1.0),
        )
    else:
        out.update(
            p_art_kind=np.full(n, 2),
            p_art_n=d.integers("art_n", 3, 15),
            p_art_amp=d.uniform("art_amp", 8.0, 40.0),
        )
    subclass = np.array([*GALAXY_CLASSES, "star"])[base]
    return out, subclass


# --- point sources and light curves ----------------------------------------------------------------------


def _flat_star(d: _Draws, lo: float = 14.0, hi: float = 19.8) -> tuple:
    mean_r = d.counts_mag("s_mag", lo, hi, 0.2)
    gr = d.uniform("s_gr", 0.25, 1.5)
    ri = 0.38 * gr - 0.05 + 1.2 * np.maximum(gr - 1.2, 0.0) + 0.03 * d.normal("s_ri")
    return mean_r, gr, ri


def _star_image(d: _Draws, mean_r, gr, ri) -> dict:
    out = {"p_star_x": d.uniform("s_x", -0.5, 0.5), "p_star_y": d.uniform("s_y", -0.5, 0.5)}
    _put(out, "p_star_mag", _mags(mean_r, gr, ri))
    return out


def _cadence(d: _Draws, n_lo: int = 20, n_hi: int = 400) -> dict:
    n_r = np.rint(d.loguniform("lc_n", n_lo, n_hi))
    depth_r = np.clip(d.normal("lc_depth", 20.6, 0.2), 20.1, 21.2)
    return {
        "p_n_r": n_r,
        "p_n_g": np.clip(np.rint(n_r * d.uniform("lc_nratio", 0.55, 0.9)), n_lo, n_hi),
        "p_t_start": SURVEY_START + d.uniform("lc_start", 0.0, 60.0),
        "p_baseline": d.uniform("lc_base", 730.0, 1096.0),
        "p_depth_r": depth_r,
        "p_depth_g": depth_r + 0.2 + 0.1 * d.normal("lc_dg"),
    }


def _flat(d: _Draws, n: int) -> tuple:
    return {"p_lc_model": np.zeros(n)}, *_flat_star(d), "flat"


def _rrlyrae(d: _Draws, n: int) -> tuple:
    """RRab (sawtooth, 0.45-0.9 d, Bailey-diagram amplitudes) and RRc (near-sinusoidal, 0.25-0.4 d)."""
    mean_r = d.counts_mag("s_mag", 14.5, 19.5, 0.2)
    ab = d.u("s_sub") < 0.7
    period = np.where(ab, np.clip(d.normal("lc_p", 0.57, 0.08), 0.45, 0.9), d.uniform("lc_p", 0.25, 0.4))
    amp_g = np.where(
        ab, np.clip(1.9 - 1.8 * period + 0.1 * d.normal("lc_amp"), 0.3, 1.2), d.uniform("lc_amp", 0.3, 0.6)
    )
    out = {
        "p_lc_model": np.ones(n),
        "p_period": period,
        "p_amp_g": amp_g,
        "p_amp_r": amp_g / d.uniform("lc_ampratio", 1.25, 1.4),
        "p_lc_a": np.where(ab, d.uniform("lc_a", 0.42, 0.55), d.uniform("lc_a", 0.08, 0.2)),
        "p_lc_b": np.full(n, 0.15),
        "p_lc_c": np.zeros(n),
    }
    return (
        out,
        mean_r,
        d.uniform("s_gr", 0.1, 0.35),
        d.uniform("s_ri", 0.05, 0.15),
        np.where(ab, "RRab", "RRc"),
    )


def _cepheid(d: _Draws, n: int) -> tuple:
    """Classical Cepheids, 1-50 d; longer periods are cooler (redder)."""
    period = d.loguniform("lc_p", 1.0, 50.0)
    gr = 0.4 + 0.25 * np.log10(period) + 0.05 * d.normal("s_gr")
    amp_g = d.uniform("lc_amp", 0.4, 1.2)
    out = {
        "p_lc_model": np.ones(n),
        "p_period": period,
        "p_amp_g": amp_g,
        "p_amp_r": amp_g / 1.45,
        "p_lc_a": d.uniform("lc_a", 0.3, 0.5),
        "p_lc_b": np.full(n, 0.4),
        "p_lc_c": np.zeros(n),
    }
    return out, d.counts_mag("s_mag", 13.5, 18.5, 0.2), gr, 0.45 * gr, "cepheid"


def _lpv(d: _Draws, n: int) -> tuple:
    """Long-period variables (Mira-like): 100-500 d, 1.5-4.5 mag in g, very red, wandering cycles."""
    amp_g = d.uniform("lc_amp", 1.5, 4.5)
    out = {
        "p_lc_model": np.ones(n),
        "p_period": d.uniform("lc_p", 100.0, 500.0),
        "p_amp_g": amp_g,
        "p_amp_r": amp_g * d.uniform("lc_ampratio", 0.6, 0.8),
        "p_lc_a": d.uniform("lc_a", 0.1, 0.3),
        "p_lc_b": np.full(n, 0.2),
        "p_lc_c": d.uniform("lc_c", 0.05, 0.3),
    }
    return (
        out,
        d.counts_mag("s_mag", 12.5, 17.5, 0.2),
        d.uniform("s_gr", 1.3, 1.7),
        d.uniform("s_ri", 0.9, 1.8),
        "lpv",
    )


def _eclipsing_binary(d: _Draws, n: int) -> tuple:
    """Detached (Algol-like, 0.8-10 d, narrow eclipses) and contact (W UMa, 0.25-0.6 d) binaries."""
    contact = d.u("s_sub") < 0.4
    period = np.where(contact, d.uniform("lc_p", 0.25, 0.6), d.loguniform("lc_p", 0.8, 10.0))
    amp_g = np.where(contact, d.uniform("lc_amp", 0.2, 0.8), d.uniform("lc_amp", 0.15, 1.0))
    width = np.clip(d.uniform("lc_b", 0.5, 1.5) * 0.05 * period ** (-2.0 / 3.0), 0.01, 0.12)
    out = {
        "p_lc_model": np.full(n, 2),
        "p_period": period,
        "p_amp_g": amp_g,
        "p_amp_r": amp_g * d.uniform("lc_ampratio", 0.9, 1.0),
        "p_lc_a": np.where(contact, d.uniform("lc_a", 0.7, 1.0), d.uniform("lc_a", 0.1, 0.9)),
        "p_lc_b": np.where(contact, np.nan, width),
        "p_lc_c": contact.astype(float),
    }
    return out, *_flat_star(d, 14.0, 19.5), np.where(contact, "contact", "detached")


def _microlensing(d: _Draws, n: int) -> tuple:
    """A Paczyński bump on a steady star: impact parameter 0.05-0.7, Einstein time 15-80 d, some blending."""
    out = {
        "p_lc_model": np.full(n, 4),
        "p_lc_a": d.loguniform("lc_a", 0.05, 0.7),
        "p_lc_b": d.uniform("lc_b", 15.0, 80.0),
        "p_lc_c": d.uniform("lc_c", 0.6, 1.0),
    }
    mean_r, gr, ri = (
        d.counts_mag("s_mag", 16.0, 19.8, 0.2),
        d.uniform("s_gr", 0.5, 1.2),
        d.uniform("s_ri", 0.2, 0.5),
    )
    return out, mean_r, gr, ri, "microlensing"


def _flare(d: _Draws, n: int) -> tuple:
    """M dwarfs with 3-10 flares: 0.8-2.5 mag in g at the brightest, hot, so much weaker in r."""
    gr = d.uniform("s_gr", 1.35, 1.6)
    amp_g = d.uniform("lc_amp", 0.8, 2.5)
    boost_r = 0.8 * np.expm1(0.4 * np.log(10) * amp_g) * 10.0 ** (-0.4 * gr)
    out = {
        "p_lc_model": np.full(n, 5),
        "p_amp_g": amp_g,
        "p_amp_r": 2.5 * np.log10(1.0 + boost_r),
        "p_lc_a": d.integers("lc_a", 3, 10),
        "p_lc_b": d.loguniform("lc_b", 0.1, 1.0),
    }
    return out, d.counts_mag("s_mag", 15.0, 19.5, 0.2), gr, d.uniform("s_ri", 1.0, 2.0), "flare"


def _dipper(d: _Draws, n: int) -> tuple:
    """Young stars dimmed irregularly by dust: 6-20 dips of 0.3-1 mag (in g), 1-8 d wide."""
    amp_g = d.uniform("lc_amp", 0.3, 1.0)
    out = {
        "p_lc_model": np.full(n, 6),
        "p_amp_g": amp_g,
        "p_amp_r": amp_g * 0.72,
        "p_lc_a": d.integers("lc_a", 6, 20),
        "p_lc_b": d.uniform("lc_b", 1.0, 8.0),
    }
    return (
        out,
        d.counts_mag("s_mag", 14.0, 19.0, 0.2),
        d.uniform("s_gr", 0.9, 1.5),
        d.uniform("s_ri", 0.5, 1.0),
        "dipper",
    )


_VARIABLES = {
    "flat": _flat,
    "rrlyrae": _rrlyrae,
    "cepheid": _cepheid,
    "lpv": _lpv,
    "eclipsing_binary": _eclipsing_binary,
    "microlensing": _microlensing,
    "flare": _flare,
    "dipper": _dipper,
}


def _variable(d: _Draws, cls: str, ra, dec) -> tuple[dict, np.ndarray | str]:
    """Light-curve and star-image parameters of a point source of class ``cls``."""
    out = _cadence(d)
    if cls == "supernova":
        return _supernova(d, out, ra, dec)
    model, mean_r, gr, ri, subclass = _VARIABLES[cls](d, len(d))
    out.update(model, p_mean_r=mean_r, p_mean_g=mean_r + gr)
    if "p_period" in out:
        out["p_t0"] = out["p_t_start"] + d.u("lc_t0") * out["p_period"]
    elif cls == "microlensing":  # the peak falls in an observing season
        begin, length = season_intervals(ra, dec, out["p_t_start"], out["p_t_start"] + out["p_baseline"])
        out["p_t0"] = place_in_seasons(d.u("lc_t0"), begin, length)
    out.update(_star_image(d, mean_r, gr, ri))
    return out, subclass


def bazin_mag(t, t0, tau_rise, tau_fall) -> np.ndarray:
    """Magnitude below peak (>= 0) of a Bazin et al. (2009) rise-and-fall flux at times ``t``."""
    x = np.asarray(t, dtype=np.float64) - t0
    peak = tau_rise * np.log(tau_fall / tau_rise - 1.0)
    log_f = -x / tau_fall - np.logaddexp(0.0, -x / tau_rise)
    log_peak = -peak / tau_fall - np.logaddexp(0.0, -peak / tau_rise)
    return -2.5 / np.log(10.0) * (log_f - log_peak)


def _supernova(d: _Draws, out: dict, ra, dec) -> tuple[dict, np.ndarray]:
    """A Bazin transient on a faint host; its light curve covers the weeks it is detectable."""
    n = len(d)
    peak_r = d.uniform("s_mag", 17.0, 19.5)
    peak_gr, ri = d.uniform("s_gr", -0.15, 0.15), d.uniform("s_ri", -0.3, 0.0)
    tau_rise, tau_fall, ratio = (
        d.uniform("lc_a", 1.5, 6.0),
        d.uniform("lc_b", 18.0, 60.0),
        d.uniform("lc_c", 0.55, 0.85),
    )
    begin, length = season_intervals(ra, dec, out["p_t_start"], out["p_t_start"] + out["p_baseline"])
    t0 = place_in_seasons(d.u("lc_t0"), begin, length)
    grid = np.linspace(-60.0, 360.0, 211)
    mag_r = peak_r[:, None] + bazin_mag(grid, 0.0, tau_rise[:, None], tau_fall[:, None])
    mag_g = (
        peak_r[:, None]
        + peak_gr[:, None]
        + bazin_mag(grid, 0.0, 0.9 * tau_rise[:, None], ratio[:, None] * tau_fall[:, None])
    )
    seen = (mag_r < out["p_depth_r"][:, None]) & (mag_g < out["p_depth_g"][:, None] + 0.5)
    first = grid[np.argmax(seen, axis=1)]
    last = grid[len(grid) - 1 - np.argmax(seen[:, ::-1], axis=1)]
    n_r = np.rint(d.loguniform("lc_n", 20, 90))
    out.update(
        p_lc_model=np.full(n, 3),
        p_mean_r=peak_r,
        p_mean_g=peak_r + peak_gr,
        p_t0=t0,
        p_lc_a=tau_rise,
        p_lc_b=tau_fall,
        p_lc_c=ratio,
        p_t_start=t0 + first,
        p_baseline=last - first,
        p_n_r=n_r,
        p_n_g=np.clip(np.rint(n_r * d.uniform("lc_nratio", 0.6, 1.0)), 20, 90),
    )
    # Half of them come with a cutout: the transient (about a magnitude past peak) offset from a faint disc host.
    has_img = d.u("has_img") < 0.6
    host_r = d.uniform("g_mag", 17.5, 20.0)
    host = _main_body(
        d,
        host_r,
        d.uniform("g_n", 0.7, 1.5),
        _size(d, host_r, 0.0),
        _inclined_q(d.u("g_q")),
        d.normal("g_gr", 0.6, 0.1),
        d.normal("g_ri", 0.3, 0.05),
    )
    dist, ang = d.uniform("c_dist", 1.0, 6.0), d.uniform("c_ang", 0.0, 2 * np.pi)
    host["p_gal_x"] = host["p_gal_x"] + dist * np.cos(ang)
    host["p_gal_y"] = host["p_gal_y"] + dist * np.sin(ang)
    host.update(_star_image(d, peak_r + d.uniform("lc_amp", 0.3, 1.5), peak_gr, ri))
    for name, values in host.items():
        out[name] = np.where(has_img, values, np.nan)
    out["has_image"] = has_img
    return out, np.where(tau_fall < 35.0, "Ia-like", "II-like")


# ---------------------------------------------------------------------------------------------------------
# Assembling the catalogue.


def _draw_classes(d: _Draws, oddity_rate: float) -> tuple[np.ndarray, np.ndarray]:
    normal = d.choice("class", list(CLASS_MIX.values()))
    odd = d.choice("odd_class", list(ODDITY_MIX.values())) + len(CLASS_MIX)
    is_odd = d.u("oddity") < oddity_rate
    return np.where(is_odd, odd, normal), is_odd


def _class_params(d: _Draws, cls: str, ra, dec) -> tuple[dict, np.ndarray | str]:
    if cls in GALAXY_CLASSES:
        return _galaxy(d, cls), cls
    if cls in ("merger", "ring", "lens"):
        return {"merger": _merger, "ring": _ring, "lens": _lens}[cls](d), cls
    if cls.startswith("artefact"):
        return _artefact(d, cls)
    return _variable(d, cls, ra, dec)


def _new_columns(n: int) -> dict:
    cols = {name: np.full(n, np.nan, dtype=np.float32) for name in _FLOAT_COLUMNS}
    cols.update({name: np.full(n, fill, dtype=dtype) for name, (dtype, fill) in _INT_COLUMNS.items()})
    cols.update(
        ra=np.empty(n),
        dec=np.empty(n),
        class_code=np.empty(n, np.int8),
        subclass_code=np.empty(n, np.int8),
        is_oddity=np.empty(n, bool),
        has_image=np.empty(n, bool),
        has_lightcurve=np.empty(n, bool),
        p_key=np.empty(n, np.int64),
    )
    return cols


def _fill(cols: dict, at: int, d: _Draws, oddity_rate: float) -> None:
    """Draw the parameters of the objects in ``d`` into rows ``at .. at + len(d)`` of ``cols``."""
    m = len(d)
    rows_out = slice(at, at + m)
    code, is_odd = _draw_classes(d, oddity_rate)
    ra_lo, ra_hi, dec_lo, dec_hi = FOOTPRINT
    ra = d.uniform("ra", ra_lo, ra_hi)
    dec = np.degrees(np.arcsin(d.uniform("dec", np.sin(np.radians(dec_lo)), np.sin(np.radians(dec_hi)))))
    cols["ra"][rows_out], cols["dec"][rows_out] = ra, dec
    cols["class_code"][rows_out], cols["is_oddity"][rows_out] = code, is_odd
    cols["p_key"][rows_out] = d.key().view(np.int64)
    is_image_only = np.isin(code, [CLASSES.index(c) for c in (*GALAXY_CLASSES, *IMAGE_ODDITIES)])
    cols["has_image"][rows_out] = True
    cols["has_lightcurve"][rows_out] = ~is_image_only
    subclass_index = {name: i for i, name in enumerate(SUBCLASSES)}
    for k, cls in enumerate(CLASSES):
        rows = np.flatnonzero(code == k)
        if len(rows) == 0:
            continue
        sub = d.take(rows)
        values, subclass = _class_params(sub, cls, ra[rows], dec[rows])
        values.update(_observing(sub))
        target = at + rows
        for name, v in values.items():
            cols[name][target] = v
        names, inverse = np.unique(np.broadcast_to(subclass, len(rows)), return_inverse=True)
        cols["subclass_code"][target] = np.array([subclass_index[str(v)] for v in names], np.int8)[inverse]
    # Objects without an image keep NaN observing conditions, so nobody renders them by accident.
    no_image = ~cols["has_image"][rows_out]
    if np.any(no_image):
        for name in ("p_fwhm_g", "p_fwhm_r", "p_fwhm_i", "p_psf_wing", "p_sky_g", "p_sky_r", "p_sky_i"):
            cols[name][rows_out][no_image] = np.nan
        cols["p_n_nb"][rows_out][no_image] = 0


def _make_ids(first: int, n: int) -> pd.Series:
    """``SIM%010d`` ids built as one Arrow string buffer (no Python string per object)."""
    import pyarrow as pa

    digits = np.empty((n, 13), dtype=np.uint8)
    digits[:, :3] = np.frombuffer(b"SIM", dtype=np.uint8)
    value = np.arange(first, first + n, dtype=np.int64)
    for k in range(12, 2, -1):
        digits[:, k] = 48 + value % 10
        value //= 10
    offsets = np.arange(0, 13 * (n + 1), 13, dtype=np.int32 if 13 * n < 2**31 else np.int64)
    kind = pa.string() if offsets.dtype == np.int32 else pa.large_string()
    array = pa.Array.from_buffers(kind, n, [None, pa.py_buffer(offsets), pa.py_buffer(digits.ravel())])
    return pd.Series(array, dtype="str")


def simulate_parameters(n: int, seed: int = 0, start: int = 0, oddity_rate: float = 0.005) -> pd.DataFrame:
    """Draw the catalogue of a simulated survey: one row per object with its ground truth and parameters.

    Parameters
    ----------
    n : int
        Number of objects (rows).
    seed : int
        Survey seed; the same seed gives the same survey.
    start : int
        Global index of the first object: ``simulate_parameters(n, seed, start)`` equals rows
        ``start .. start + n - 1`` of any bigger call with the same seed, so a survey can be drawn in pieces.
    oddity_rate : float
        Probability that an object is an injected oddity (classes in :data:`ODDITY_MIX`).

    Returns
    -------
    pandas.DataFrame
        Columns ``id`` (``SIM0000000042``), ``ra``, ``dec`` (deg, uniform on the sphere in :data:`FOOTPRINT`),
        ``class`` and ``subclass`` (categorical ground truth), ``is_oddity``, ``has_image``, ``has_lightcurve``,
        ``source`` (``"simulated"``) and the rendering parameters ``p_*`` (float32 or small ints; see
        :data:`PARAMETER_DOCS`), enough to render any row alone with :func:`render_cutouts` and
        :func:`render_lightcurves`.
    """
    n, seed, start = _check_int(n, "n"), _check_int(seed, "seed"), _check_int(start, "start")
    if start + n > 10**10:
        raise DataError(
            f"start + n = {start + n} exceeds the 10-digit ids (SIM0000000000); use start + n <= 1e10"
        )
    if not 0.0 <= float(oddity_rate) <= 1.0:
        raise DataError(f"oddity_rate={oddity_rate!r} is not a probability; pass a value between 0 and 1")
    cols = _new_columns(n)
    for at in range(0, n, _CHUNK):
        m = min(_CHUNK, n - at)
        _fill(cols, at, _Draws(_object_words(seed, start + at, m)), float(oddity_rate))
    data = {
        "id": _make_ids(start, n),
        "ra": cols.pop("ra"),
        "dec": cols.pop("dec"),
        "class": pd.Categorical.from_codes(cols.pop("class_code"), categories=list(CLASSES)),
        "subclass": pd.Categorical.from_codes(cols.pop("subclass_code"), categories=list(SUBCLASSES)),
        "is_oddity": cols.pop("is_oddity"),
        "has_image": cols.pop("has_image"),
        "has_lightcurve": cols.pop("has_lightcurve"),
        "source": pd.Categorical.from_codes(np.zeros(n, np.int8), categories=["simulated"]),
        "p_key": cols.pop("p_key"),
    }
    data.update(cols)
    return pd.DataFrame(data, copy=False)


def _check_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise DataError(f"{name}={value!r} must be a non-negative integer")
    return int(value)


def render_cutouts(params: pd.DataFrame, seed: int = 0, size: int = 64) -> np.ndarray:
    """Render the ``(len(params), 3, size, size)`` float32 cutouts (g, r, i) of catalogue rows.

    See :func:`explorer.data.simulate_images.render_cutouts`.
    """
    from explorer.data.simulate_images import render_cutouts as render

    return render(params, seed=seed, size=size)


def render_lightcurves(params: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Render the long-form light curves (id, time, mag, err, band) of catalogue rows.

    See :func:`explorer.data.simulate_lightcurves.render_lightcurves`.
    """
    from explorer.data.simulate_lightcurves import render_lightcurves as render

    return render(params, seed=seed)
