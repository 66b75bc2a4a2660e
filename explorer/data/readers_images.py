"""Image readers: a FITS file per object, a FITS cube, PNG/JPEG per object, HDF5 arrays.

Each reader returns an :class:`ImageInput`: the ids it found (file stems, an id table, or ``None`` meaning
"in catalogue order"), the cutout shape, and a function that reads rows ``[a, b)`` as float32
``(n, bands, H, W)``, so that a million cutouts stream through without being held in memory.
"""

from __future__ import annotations

import glob as globlib
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from explorer.data.formats import register_reader
from explorer.errors import DataError

MAX_CUTOUT_PIXELS = 4096 * 4096
FITS_ENDINGS = (".fits", ".fit", ".fts", ".fits.gz", ".fits.fz")
PNG_ENDINGS = (".png", ".jpg", ".jpeg")


@dataclass
class ImageInput:
    """Cutouts waiting to be ingested."""

    ids: list[str] | None
    shape: tuple[int, int, int]
    bands: tuple[str, ...]
    read: Callable[[int, int], np.ndarray]
    source: str
    n: int

    def with_ids(self, ids: Sequence[str]) -> ImageInput:
        """A copy of this input with ``ids`` as its object ids (everything else unchanged)."""
        return ImageInput(list(ids), self.shape, self.bands, self.read, self.source, self.n)


def expand_files(path: str | Path, endings: Sequence[str]) -> list[Path]:
    """Files named by a folder, a glob pattern or a single file, sorted."""
    text = str(path)
    if any(ch in text for ch in "*?["):
        files = [Path(p) for p in globlib.glob(text)]
    elif Path(text).is_dir():
        files = [p for p in Path(text).iterdir() if p.name.lower().endswith(tuple(endings))]
    elif Path(text).is_file():
        files = [Path(text)]
    else:
        raise DataError(f"{text}: no such file or folder")
    files = sorted(p for p in files if p.is_file())
    if not files:
        raise DataError(f"{text}: no image files found (looked for {', '.join(endings)})")
    return files


def file_id(path: Path) -> str:
    """The object id a per-object file stands for: its name without the format ending."""
    name = path.name
    for ending in sorted(FITS_ENDINGS + PNG_ENDINGS + (".h5", ".hdf5", ".npy"), key=len, reverse=True):
        if name.lower().endswith(ending):
            return name[: -len(ending)]
    return path.stem


def _as_bands(array: np.ndarray, source: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise DataError(f"{source}: image has {array.ndim} dimensions {array.shape}; expected (H, W) or (bands, H, W)")
    if array.shape[1] * array.shape[2] > MAX_CUTOUT_PIXELS or 0 in array.shape:
        raise DataError(f"{source}: image shape {array.shape} is empty or too large for a cutout "
                        f"(> {MAX_CUTOUT_PIXELS} pixels per band); cut it into postage stamps first")
    with np.errstate(invalid="ignore", over="ignore"):
        out = array.astype(np.float32)
    out[~np.isfinite(out)] = np.nan  # inf is not a measurement either
    return out


def _fits_data(path: Path, memmap: bool = False):
    from astropy.io import fits

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hdul = fits.open(path, memmap=memmap, lazy_load_hdus=False)
            for hdu in hdul:
                header = hdu.header
                if hdu.is_image and header.get("NAXIS", 0) >= 2:
                    naxes = [header.get(f"NAXIS{i}", 0) for i in range(1, header["NAXIS"] + 1)]
                    if int(np.prod(naxes, dtype=np.float64)) > MAX_CUTOUT_PIXELS * 4096:
                        raise DataError(f"{path}: header claims an image of {naxes} pixels; "
                                        "this is not a cutout (or the header is corrupt)")
                    data = hdu.data
                    if data is not None:
                        return hdul, data
            hdul.close()
    except DataError:
        raise
    except KeyError as err:  # astropy's lookup of an invalid BITPIX code
        raise DataError(f"{path}: invalid FITS header (BITPIX/keyword {err}); valid BITPIX values are "
                        "8, 16, 32, 64, -32, -64; re-write the file") from err
    except Exception as err:  # astropy raises OSError, ValueError, TypeError, IndexError... for damaged files
        raise DataError(f"{path}: unreadable FITS ({type(err).__name__}: {err}); "
                        "re-download or re-write the file") from err
    raise DataError(f"{path}: no image HDU with data; expected a 2-D (or bands×H×W) image")


def _read_fits_image(path: Path) -> np.ndarray:
    hdul, data = _fits_data(path)
    try:
        return _as_bands(data, str(path))
    except (TypeError, ValueError, OSError) as err:
        raise DataError(f"{path}: image data unreadable ({err}); the file is probably truncated") from err
    finally:
        hdul.close()


def _per_file_input(files: list[Path], loader: Callable[[Path], np.ndarray], bands_for: Callable[[int], tuple],
                    source: str) -> ImageInput:
    first = loader(files[0])

    def read(a: int, b: int) -> np.ndarray:
        out = np.empty((b - a, *first.shape), dtype=np.float32)
        for i, f in enumerate(files[a:b]):
            img = loader(f)
            if img.shape != first.shape:
                raise DataError(f"{f}: image shape {img.shape} differs from {first.shape} of {files[0].name}; "
                                "cutouts of one image set share a shape: resample them, or ingest each size separately")
            out[i] = img
        return out

    return ImageInput([file_id(f) for f in files], first.shape, bands_for(first.shape[0]), read, source, len(files))


def _default_bands(n: int) -> tuple[str, ...]:
    return ("img",) if n == 1 else tuple(f"band{i}" for i in range(n))


#: Header keywords that name a cutout's band (first found wins); ``KEY1``..``KEYn`` for a bands×H×W image.
BAND_KEYWORDS = ("FILTER", "BAND", "FILTNAM", "FILTNAME")


def _header_bands(header, n: int) -> tuple[str, ...] | None:
    """Band names from a FITS header: ``FILTER`` (or BAND/FILTNAM) for one band, ``FILTER1``..``FILTERn`` for n."""
    for key in BAND_KEYWORDS:
        names = [header.get(key)] if n == 1 else [header.get(f"{key}{i}") for i in range(1, n + 1)]
        if all(isinstance(v, str) and v.strip() for v in names):
            names = [v.strip() for v in names]
            if len(set(names)) == n:
                return tuple(names)
    return None


def _fits_bands(path: Path, n: int) -> tuple[str, ...]:
    """Band names of a FITS cutout file from its image header, else ``img`` / ``band0``..``bandN``."""
    hdul, _ = _fits_data(path)
    try:
        for hdu in hdul:
            if hdu.is_image and hdu.header.get("NAXIS", 0) >= 2:
                return _header_bands(hdu.header, n) or _default_bands(n)
    finally:
        hdul.close()
    return _default_bands(n)


@register_reader("images", "fits", extensions=FITS_ENDINGS,
                 description="one FITS image per object (folder, glob or file list); id = file name")
def read_fits_files(path, bands: Sequence[str] | None = None, files: Sequence[Path] | None = None) -> ImageInput:
    """One FITS image per object (folder, glob or file list); id = file name."""
    files = list(files) if files is not None else expand_files(path, FITS_ENDINGS)
    return _per_file_input(files, _read_fits_image, lambda n: tuple(bands) if bands else _fits_bands(files[0], n),
                           str(path))


@register_reader("images", "fits-cube", description="one FITS file holding N×H×W or N×B×H×W cutouts")
def read_fits_cube(path, bands: Sequence[str] | None = None) -> ImageInput:
    """One FITS file holding ``N×H×W`` or ``N×B×H×W`` cutouts; ids from an ``ID`` table HDU or catalogue order."""
    path = Path(path)
    hdul, data = _fits_data(path, memmap=True)
    if data.ndim == 3:
        n, shape = data.shape[0], (1, *data.shape[1:])
    elif data.ndim == 4:
        n, shape = data.shape[0], tuple(data.shape[1:])
    else:
        hdul.close()
        raise DataError(f"{path}: cube has shape {data.shape}; expected N×H×W or N×B×H×W")
    ids = None
    for hdu in hdul[1:]:
        if hasattr(hdu, "columns") and hdu.data is not None:
            names = {c.lower(): c for c in hdu.columns.names}
            col = names.get("id") or names.get("object_id") or names.get("id_str")
            if col:
                ids = [str(v.decode() if isinstance(v, bytes) else v).strip() for v in hdu.data[col]]
                if len(ids) != n:
                    raise DataError(f"{path}: {len(ids)} ids in table HDU but {n} cutouts in the cube")

    def read(a: int, b: int) -> np.ndarray:
        block = np.asarray(data[a:b], dtype=np.float32).reshape(b - a, *shape)
        block[~np.isfinite(block)] = np.nan
        return block

    if not bands:
        found = next((h.header for h in hdul if h.is_image and h.header.get("NAXIS", 0) >= 3), None)
        bands = (_header_bands(found, shape[0]) if found is not None else None) or _default_bands(shape[0])
    return ImageInput(ids, shape, tuple(bands), read, str(path), n)


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            mode = "L" if im.mode in ("L", "LA", "I", "I;16", "F", "1", "P") and im.mode != "P" else "RGB"
            if im.mode == "P":
                mode = "RGB"
            arr = np.asarray(im.convert(mode) if im.mode not in ("I", "I;16", "F") else im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{path}: unreadable image ({err}); re-export it as PNG/JPEG/FITS") from err
    return _as_bands(arr if arr.ndim == 2 else np.moveaxis(arr, -1, 0), str(path))


@register_reader("images", "png", extensions=PNG_ENDINGS,
                 description="one PNG or JPEG per object (greyscale: 1 band; colour: R,G,B); id = file name")
def read_png_files(path, bands: Sequence[str] | None = None, files: Sequence[Path] | None = None) -> ImageInput:
    """One PNG or JPEG per object (greyscale: 1 band; colour: R,G,B); id = file name."""
    files = list(files) if files is not None else expand_files(path, PNG_ENDINGS)
    return _per_file_input(files, _read_png,
                           lambda n: tuple(bands) if bands else (("img",) if n == 1 else ("R", "G", "B", "A")[:n]),
                           str(path))


@register_reader("images", "hdf5", extensions=(".h5", ".hdf5", ".hdf"),
                 description="HDF5 file with an N×H×W or N×B×H×W dataset (and optionally an 'ids' dataset)")
def read_hdf5(path, dataset: str | None = None, bands: Sequence[str] | None = None) -> ImageInput:
    """HDF5 file with an ``N×H×W`` or ``N×B×H×W`` dataset (``images``/``cutouts``/the only one) and optional ``ids``."""
    import h5py

    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: unreadable HDF5 ({err})") from err
    arrays = {k: v for k, v in f.items() if isinstance(v, h5py.Dataset) and v.ndim in (3, 4)}
    if not arrays:
        found = {k: getattr(v, "shape", "group") for k, v in f.items()}
        raise DataError(f"{path}: no 3-D (N×H×W) or 4-D (N×B×H×W) dataset of cutouts; found {found}")
    name = dataset or next((k for k in ("images", "cutouts", "data", "x") if k in arrays), None)
    if name is None:
        if len(arrays) != 1:
            raise DataError(f"{path}: cannot tell which dataset holds the cutouts (found {sorted(arrays)}); "
                            "name it 'images' (and the ids 'ids')")
        name = next(iter(arrays))
    if name not in arrays:
        raise DataError(f"{path}: no 3-D/4-D dataset {name!r}; found {sorted(arrays)}")
    data = arrays[name]
    shape = (1, *data.shape[1:]) if data.ndim == 3 else tuple(data.shape[1:])
    ids = None
    for key in ("ids", "id", "id_str", "object_id"):
        if key in f and isinstance(f[key], h5py.Dataset) and f[key].ndim == 1:
            ids = [v.decode() if isinstance(v, bytes) else str(v) for v in f[key][()]]
            if len(ids) != data.shape[0]:
                raise DataError(f"{path}: {len(ids)} ids but {data.shape[0]} cutouts")
            break

    def read(a: int, b: int) -> np.ndarray:
        block = np.asarray(data[a:b], dtype=np.float32).reshape(b - a, *shape)
        block[~np.isfinite(block)] = np.nan
        return block

    return ImageInput(ids, shape, tuple(bands) if bands else _default_bands(shape[0]), read, str(path), data.shape[0])


def read_files_by_catalog(paths: Sequence[str], ids: Sequence[str], bands: Sequence[str] | None = None) -> ImageInput:
    """Cutouts named file by file in a catalogue column (e.g. galaxy-datasets' ``file_loc``); format by ending."""
    files = [Path(p) for p in paths]
    missing = [f for f in files if not f.exists()]
    if missing:
        raise DataError(f"{missing[0]}: image file listed in the catalogue does not exist "
                        f"({len(missing)} missing); fix the file column or the paths")
    is_fits = files[0].name.lower().endswith(FITS_ENDINGS)
    loader, named = (_read_fits_image, lambda n: _fits_bands(files[0], n)) if is_fits else (_read_png, _default_bands)
    inp = _per_file_input(files, loader, lambda n: tuple(bands) if bands else named(n), "catalogue file column")
    return inp.with_ids(ids)
