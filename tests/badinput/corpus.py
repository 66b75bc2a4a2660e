"""The catalogue of broken and hostile inputs: what each case writes, the command it runs, and what the user must see.

Every case runs against a copy of a good workspace (:data:`IMAGE_IDS` with cutouts, :data:`LC_IDS` with light
curves, checkpoints ``image-blobs`` and ``lightcurve``, embeddings, a PCA map, scores, the saved selection
``everything`` and two labels). A case's ``write(inputs, ws)`` puts its bad files into the empty folder ``inputs``
(or damages the copied workspace ``ws``) and returns the command line after ``explorer``.

Most cases expect exit code 2 and one ``error:`` line matching ``match`` (which names the file, object or
column), with every file under the test's folder left as it was. A few inputs are not errors but documented
behaviour (``code=0``): ``check(inputs, ws, stderr)`` then asserts what happened. A case with ``xfail`` documents a
bug in the code under test: the string says what goes wrong and where.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

IMAGE_IDS = [f"src{i:03d}" for i in range(16)]
LC_IDS = [f"lc{i}" for i in range(8)]
LABELLED = {"src000": "anomaly", "lc1": "anomaly"}
SELECTION = "everything"
NEW_IDS = ["new0", "new1", "new2"]
HOSTILE_IDS = ["a/b", "../../escaped", "<script>alert(1)</script>", "C:\\x\\y"]


@dataclass(frozen=True)
class Case:
    """One bad input.

    Attributes
    ----------
    name : str
        Test id.
    area : str
        Which loader or command it exercises (the first column of docs/bad-input.md).
    what : str
        The input, in words.
    write : callable
        ``write(inputs, ws) -> argv`` (without the leading ``explorer``).
    match : str
        Regex the ``error:`` line must match (``re.search``); for ``code=0``, the regex stderr must match.
    code : int
        Expected exit code.
    xfail : str or None
        Why the current code fails this case (file:function, what happens); the test is ``xfail(strict=True)``.
    subprocess : bool
        Run as a real subprocess (``python -m explorer.cli``) rather than ``explorer.cli.main`` in process.
    check : callable or None
        For accepted inputs: ``check(inputs, ws, stderr)`` asserts the documented behaviour.
    command : str
        The ``explorer`` sub-command it runs (default: from ``area``).
    """

    name: str
    area: str
    what: str
    write: Callable[[Path, Path], list[str]]
    match: str = ""
    code: int = 2
    xfail: str | None = None
    subprocess: bool = False
    check: Callable[[Path, Path, str], None] | None = None
    command: str = ""


CASES: list[Case] = []


_COMMAND_OF_AREA = {
    "catalogue": "ingest",
    "images": "ingest",
    "light curves": "ingest",
    "checkpoint": "embed",
    "workspace": "info",
}


def case(
    name: str,
    area: str,
    what: str,
    match: str = "",
    *,
    code: int = 2,
    xfail: str | None = None,
    subprocess: bool = False,
    check: Callable[[Path, Path, str], None] | None = None,
    command: str = "",
):
    """Register the decorated ``write(inputs, ws) -> argv`` function as a case."""
    prefix = area.split(":")[0].strip()
    command = command or _COMMAND_OF_AREA.get(prefix, prefix)

    def decorate(write: Callable[[Path, Path], list[str]]):
        CASES.append(Case(name, area, what, write, match, code, xfail, subprocess, check, command))
        return write

    return decorate


# ----------------------------------------------------------------------------------------------- helpers
def blob(size: int = 16, sigma: float = 2.0) -> np.ndarray:
    y, x = np.mgrid[:size, :size]
    return np.exp(-((x - size / 2) ** 2 + (y - size / 2) ** 2) / (2 * sigma**2)).astype(np.float32)


def catalog_frame(ids=NEW_IDS, **columns) -> pd.DataFrame:
    n = len(ids)
    base = {"id": list(ids), "ra": np.linspace(10, 20, n), "dec": np.linspace(-5, 5, n)}
    return pd.DataFrame({**base, **columns})


def catalog_csv(inputs: Path, ids=NEW_IDS, name: str = "catalog.csv", **columns) -> Path:
    path = inputs / name
    catalog_frame(ids, **columns).to_csv(path, index=False)
    return path


def fits_folder(inputs: Path, ids=NEW_IDS, size: int = 16, name: str = "img") -> Path:
    from astropy.io import fits

    folder = inputs / name
    folder.mkdir(exist_ok=True)
    for i, oid in enumerate(ids):
        fits.PrimaryHDU(blob(size, 1.5 + i)).writeto(folder / f"{oid}.fits", overwrite=True)
    return folder


def fits_header_bytes(**cards) -> bytes:
    """A primary header (2880 bytes) with the given cards, written by hand so any value is possible."""
    lines = ["SIMPLE  =                    T"]
    for key, value in cards.items():
        lines.append(f"{key:<8}= {value:>20}")
    lines.append("END")
    text = "".join(line.ljust(80) for line in lines)
    return text.ljust(2880).encode("ascii")


def lc_frame(ids=NEW_IDS, n: int = 12, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for oid in ids:
        t = np.sort(rng.uniform(59000, 59050, n))
        for band in ("g", "r"):
            rows.append(
                pd.DataFrame({"id": oid, "time": t, "mag": 18 + 0.2 * np.sin(t), "err": 0.03, "band": band})
            )
    return pd.concat(rows, ignore_index=True)


def ingest(ws: Path, catalog: Path, *more) -> list[str]:
    return ["ingest", str(ws), "--catalog", str(catalog), *map(str, more)]


def ingest_images(ws: Path, inputs: Path, images: Path, *more, ids=NEW_IDS) -> list[str]:
    return ingest(ws, catalog_csv(inputs, ids), "--images", images, *more)


def ingest_lc(ws: Path, inputs: Path, lc: pd.DataFrame | Path, *more, ids=NEW_IDS) -> list[str]:
    if isinstance(lc, pd.DataFrame):
        path = inputs / "lc.csv"
        lc.to_csv(path, index=False)
        lc = path
    return ingest(ws, catalog_csv(inputs, ids), "--lightcurves", lc, *more)


def copy_checkpoint(ws: Path, inputs: Path, name: str = "image-blobs") -> Path:
    out = inputs / "ckpt"
    shutil.copytree(ws / "checkpoints" / name, out)
    return out


def edit_config(folder: Path, **changes) -> None:
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(changes)
    (folder / "config.json").write_text(json.dumps(cfg))


def workspace_ids(ws: Path) -> list[str]:
    from explorer.workspace import Workspace

    return [str(i) for i in Workspace.open(ws).catalog.ids]


def run_main(argv: list[str]) -> int:
    """Run a follow-up command in process (used by checks); returns its exit code."""
    from explorer.cli import main

    return main([str(a) for a in argv])


# ================================================================================ catalogues (ingest)
@case("catalog-csv-zero-bytes", "catalogue: CSV", "a zero-byte catalog.csv", r"catalog\.csv: cannot read")
def _(inputs, ws):
    (inputs / "catalog.csv").touch()
    return ingest(ws, inputs / "catalog.csv", "--images", fits_folder(inputs))


@case(
    "catalog-csv-header-only",
    "catalogue: CSV",
    "a CSV with a header and no rows",
    r"catalog\.csv: the catalogue has no rows",
)
def _(inputs, ws):
    (inputs / "catalog.csv").write_text("id,ra,dec\n")
    return ingest(ws, inputs / "catalog.csv", "--images", fits_folder(inputs))


@case(
    "catalog-parquet-zero-bytes",
    "catalogue: Parquet",
    "a zero-byte catalog.parquet",
    r"catalog\.parquet: cannot read",
)
def _(inputs, ws):
    (inputs / "catalog.parquet").touch()
    return ingest(ws, inputs / "catalog.parquet", "--images", fits_folder(inputs))


@case(
    "catalog-parquet-truncated",
    "catalogue: Parquet",
    "a Parquet file cut in half",
    r"catalog\.parquet: cannot read",
)
def _(inputs, ws):
    path = inputs / "catalog.parquet"
    catalog_frame().to_parquet(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return ingest(ws, path, "--images", fits_folder(inputs))


@case(
    "catalog-fits-truncated",
    "catalogue: FITS table",
    "a FITS binary table truncated inside its data",
    r"catalog\.fits: cannot read as fits",
)
def _(inputs, ws):
    from astropy.table import Table

    path = inputs / "catalog.fits"
    Table({"id": [f"x{i}" for i in range(500)], "ra": np.ones(500), "dec": np.ones(500)}).write(path)
    path.write_bytes(path.read_bytes()[:4000])
    return ingest(ws, path, "--images", fits_folder(inputs))


@case(
    "catalog-votable-garbage",
    "catalogue: VOTable",
    "an XML file that is not a VOTable",
    r"catalog\.vot: cannot read as votable",
)
def _(inputs, ws):
    (inputs / "catalog.vot").write_text("<?xml version='1.0'?><VOTABLE><RESOURCE><TABLE><FIELD name=")
    return ingest(ws, inputs / "catalog.vot", "--images", fits_folder(inputs))


@case(
    "catalog-ecsv-bad-header",
    "catalogue: ECSV",
    "an .ecsv whose YAML header is broken",
    r"catalog\.ecsv: cannot read as ascii\.ecsv",
)
def _(inputs, ws):
    (inputs / "catalog.ecsv").write_text("# %ECSV 1.0\n# ---\n# datatype: [ {name: id\nid ra dec\nnew0 1 2\n")
    return ingest(ws, inputs / "catalog.ecsv", "--images", fits_folder(inputs))


@case(
    "catalog-unknown-format",
    "catalogue",
    "--catalog-format xlsx",
    r"no catalog reader for format 'xlsx'; available: .*csv",
)
def _(inputs, ws):
    return ingest(ws, catalog_csv(inputs), "--catalog-format", "xlsx", "--images", fits_folder(inputs))


@case(
    "catalog-missing-file", "catalogue", "a catalogue path that does not exist", r"nowhere\.csv: no such file"
)
def _(inputs, ws):
    return ingest(ws, inputs / "nowhere.csv", "--images", fits_folder(inputs))


@case(
    "catalog-no-id-column",
    "catalogue",
    "a catalogue without any id-like column",
    r"catalog\.csv: no id column",
)
def _(inputs, ws):
    pd.DataFrame({"label": ["a", "b"], "ra": [1.0, 2.0]}).to_csv(inputs / "catalog.csv", index=False)
    return ingest(ws, inputs / "catalog.csv", "--images", fits_folder(inputs))


@case(
    "catalog-duplicate-ids",
    "catalogue",
    "two rows with the same id",
    r"catalog\.csv: duplicate id 'new1'",
)
def _(inputs, ws):
    return ingest_images(ws, inputs, fits_folder(inputs), ids=["new0", "new1", "new1"])


@case(
    "catalog-blank-id",
    "catalogue",
    "a row whose id is blank",
    r"catalog\.csv: row 1 has no id in column 'id'",
)
def _(inputs, ws):
    (inputs / "catalog.csv").write_text("id,ra,dec\nnew0,1,2\n   ,3,4\nnew2,5,6\n")
    return ingest(ws, inputs / "catalog.csv", "--images", fits_folder(inputs))


@case(
    "catalog-id-control-characters",
    "catalogue",
    "an id with a tab and a newline inside",
    r"catalog\.csv: id .*has control characters",
)
def _(inputs, ws):
    catalog_csv(inputs, ["new0", "bad\tid\nx", "new2"])
    return ingest(ws, inputs / "catalog.csv", "--images", fits_folder(inputs))


@case(
    "catalog-id-too-long", "catalogue", "an id of 300 characters", r"catalog\.csv: id 'xxxx.*longer than 256"
)
def _(inputs, ws):
    catalog_csv(inputs, ["new0", "x" * 300, "new2"])
    return ingest(ws, inputs / "catalog.csv", "--images", fits_folder(inputs))


def _hostile_ids_kept(inputs: Path, ws: Path, stderr: str) -> None:
    assert set(HOSTILE_IDS) <= set(workspace_ids(ws)), "hostile ids must be stored verbatim"
    assert not (inputs.parent / "escaped").exists() and not list(inputs.parent.rglob("*escaped*"))
    out = inputs / "train"
    assert run_main(["export", ws, "-o", out, "--training-set", "--ids", *HOSTILE_IDS]) == 0
    written = [
        p
        for p in inputs.parent.rglob("*")
        if p.is_file() and out not in p.parents and p.parent != inputs and ws not in p.parents
    ]
    assert not written, f"export wrote outside its folder: {written}"
    assert all(out in p.parents for p in out.rglob("*"))


@case(
    "catalog-hostile-ids",
    "catalogue",
    "ids with '/', '../', HTML <script> and backslashes (HDF5 cutouts)",
    code=0,
    check=_hostile_ids_kept,
)
def _(inputs, ws):
    import h5py

    with h5py.File(inputs / "cut.h5", "w") as f:
        f["images"] = np.stack([blob(16, 1 + i) for i in range(len(HOSTILE_IDS))])
        f["ids"] = np.array([s.encode() for s in HOSTILE_IDS])
    return ingest_images(ws, inputs, inputs / "cut.h5", ids=HOSTILE_IDS)


@case(
    "catalog-id-clash",
    "catalogue",
    "a new catalogue with an id already in the workspace",
    r"catalog: object 'src000' is already in the workspace",
)
def _(inputs, ws):
    return ingest_images(ws, inputs, fits_folder(inputs, ["src000", "new1"]), ids=["src000", "new1"])


@case(
    "catalog-ra-out-of-range", "catalogue", "ra = 400 degrees", r"catalog\.csv: object 'new1' has ra outside"
)
def _(inputs, ws):
    catalog_csv(inputs, ra=[10.0, 400.0, 20.0])
    return ingest(ws, inputs / "catalog.csv", "--images", fits_folder(inputs))


@case(
    "catalog-dec-not-numeric", "catalogue", "dec = 'north'", r"catalog\.csv: column 'dec' has a non-numeric"
)
def _(inputs, ws):
    catalog_csv(inputs, dec=["1.0", "north", "3.0"])
    return ingest(ws, inputs / "catalog.csv", "--images", fits_folder(inputs))


@case(
    "catalog-non-utf8-body",
    "catalogue: CSV",
    "a Latin-1 encoded CSV (byte 0xE9 in an id)",
    r"catalog\.csv: .*(not UTF-8|encoding)",
)
def _(inputs, ws):
    (inputs / "catalog.csv").write_bytes("id,ra,dec\nnew0,1,2\nM\xe9lanie,3,4\n".encode("latin-1"))
    return ingest(ws, inputs / "catalog.csv", "--images", fits_folder(inputs, ["new0", "M\xe9lanie"]))


_NON_UTF8_NAME = os.fsdecode(b"cat\xe9log.csv")


def _non_utf8_name_ingested(inputs: Path, ws: Path, stderr: str) -> None:
    """The image set is named after the catalogue with the undecodable byte replaced, so the user sees it."""
    assert set(NEW_IDS) <= set(workspace_ids(ws))
    manifest = json.loads((ws / "manifest.json").read_text())
    assert "cat_log" in manifest["image_sets"], manifest["image_sets"]


@case(
    "catalog-non-utf8-file-name",
    "catalogue",
    "a catalogue whose file name holds the byte 0xE9 (not UTF-8): ingested, image set named 'cat_log'",
    code=0,
    subprocess=True,
    check=_non_utf8_name_ingested,
)
def _(inputs, ws):
    path = inputs / _NON_UTF8_NAME
    catalog_frame().to_csv(path, index=False)
    return ingest(ws, path, "--images", fits_folder(inputs))


def _spaced_name_ingested(inputs: Path, ws: Path, stderr: str) -> None:
    assert set(NEW_IDS) <= set(workspace_ids(ws))


@case(
    "catalog-file-name-with-space",
    "catalogue",
    "a good catalogue named 'my catalog.csv' (not bad input)",
    code=0,
    check=_spaced_name_ingested,
)
def _(inputs, ws):
    path = inputs / "my catalog.csv"
    catalog_frame().to_csv(path, index=False)
    return ingest(ws, path, "--images", fits_folder(inputs))


@case(
    "catalog-rows-without-data",
    "catalogue",
    "a catalogue row with neither a cutout nor a light curve",
    r"catalog: object 'new9' has neither a cutout nor a light curve",
)
def _(inputs, ws):
    return ingest_images(ws, inputs, fits_folder(inputs), ids=[*NEW_IDS, "new9"])


@case(
    "catalog-galaxy-datasets-missing-file",
    "catalogue: galaxy-datasets",
    "a galaxy-datasets table whose file_loc names a missing image",
    r"missing\.png: image file listed in the catalogue does not exist",
)
def _(inputs, ws):
    from PIL import Image

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(inputs / "ok.png")
    pd.DataFrame({"id_str": ["new0", "new1"], "file_loc": ["ok.png", "missing.png"]}).to_csv(
        inputs / "gz.csv", index=False
    )
    return ingest(ws, inputs / "gz.csv")


@case(
    "catalog-no-data-given",
    "ingest",
    "a catalogue with neither --images nor --lightcurves",
    r"catalog\.csv: no cutouts or light curves given",
)
def _(inputs, ws):
    return ingest(ws, catalog_csv(inputs))


# ================================================================================ images (ingest)
@case(
    "fits-truncated",
    "images: FITS per object",
    "a FITS cutout cut off inside its data",
    r"new1\.fits: .*(unreadable|truncated)",
    subprocess=True,
)
def _(inputs, ws):
    folder = fits_folder(inputs)
    path = folder / "new1.fits"
    path.write_bytes(path.read_bytes()[:3000])
    return ingest_images(ws, inputs, folder)


@case(
    "fits-garbage-after-header",
    "images: FITS per object",
    "a valid header followed by 300 bytes of text",
    r"new1\.fits: .*(unreadable|truncated)",
)
def _(inputs, ws):
    folder = fits_folder(inputs)
    (folder / "new1.fits").write_bytes(
        fits_header_bytes(BITPIX=-32, NAXIS=2, NAXIS1=16, NAXIS2=16) + b"oops " * 60
    )
    return ingest_images(ws, inputs, folder)


@case(
    "fits-bitpix-17",
    "images: FITS per object",
    "BITPIX = 17 (not a FITS data type)",
    r"new1\.fits: .*BITPIX",
)
def _(inputs, ws):
    folder = fits_folder(inputs)
    (folder / "new1.fits").write_bytes(
        fits_header_bytes(BITPIX=17, NAXIS=2, NAXIS1=16, NAXIS2=16) + bytes(2880)
    )
    return ingest_images(ws, inputs, folder)


@case(
    "fits-huge-naxis",
    "images: FITS per object",
    "a header claiming NAXIS1 = NAXIS2 = 10^6 with no data",
    r"new1\.fits: .*(not a cutout|unreadable)",
)
def _(inputs, ws):
    folder = fits_folder(inputs)
    (folder / "new1.fits").write_bytes(
        fits_header_bytes(BITPIX=-32, NAXIS=2, NAXIS1=10**6, NAXIS2=10**6) + bytes(2880)
    )
    return ingest_images(ws, inputs, folder)


@case("fits-zero-bytes", "images: FITS per object", "a zero-byte .fits file", r"new1\.fits: unreadable FITS")
def _(inputs, ws):
    folder = fits_folder(inputs)
    (folder / "new1.fits").write_bytes(b"")
    return ingest_images(ws, inputs, folder)


@case(
    "fits-all-nan",
    "images: FITS per object",
    "a cutout whose every pixel is NaN",
    r"cutout of 'new1' has no finite pixel",
)
def _(inputs, ws):
    from astropy.io import fits

    folder = fits_folder(inputs)
    fits.PrimaryHDU(np.full((16, 16), np.nan, np.float32)).writeto(folder / "new1.fits", overwrite=True)
    return ingest_images(ws, inputs, folder)


@case(
    "fits-all-inf",
    "images: FITS per object",
    "a cutout whose every pixel is +inf",
    r"cutout of 'new1' (is all|has no) .*(inf|finite)",
)
def _(inputs, ws):
    from astropy.io import fits

    folder = fits_folder(inputs)
    fits.PrimaryHDU(np.full((16, 16), np.inf, np.float32)).writeto(folder / "new1.fits", overwrite=True)
    return ingest_images(ws, inputs, folder)


@case(
    "fits-mixed-shapes",
    "images: FITS per object",
    "one 16x16 cutout among 20x20 ones",
    r"new\d\.fits: image shape .* differs",
)
def _(inputs, ws):
    folder = fits_folder(inputs, size=20)
    fits_folder(inputs, ["new1"], size=16)
    return ingest_images(ws, inputs, folder)


@case(
    "fits-stray-image",
    "images: FITS per object",
    "a cutout file for an id not in the catalogue",
    r"cutout 'ghost' has no catalogue row",
)
def _(inputs, ws):
    folder = fits_folder(inputs, [*NEW_IDS, "ghost"])
    return ingest_images(ws, inputs, folder)


@case(
    "images-folder-empty", "images", "an --images folder with no image files", r"empty: no image files found"
)
def _(inputs, ws):
    (inputs / "empty").mkdir()
    (inputs / "empty" / "notes.txt").write_text("nothing here")
    return ingest_images(ws, inputs, inputs / "empty", "--image-format", "fits")


@case(
    "images-path-missing",
    "images",
    "an --images path that does not exist",
    r"nowhere: no such file or folder",
)
def _(inputs, ws):
    return ingest_images(ws, inputs, inputs / "nowhere", "--image-format", "fits")


@case("png-zero-bytes", "images: PNG per object", "a zero-byte .png", r"new1\.png: unreadable image")
def _(inputs, ws):
    from PIL import Image

    folder = inputs / "png"
    folder.mkdir()
    for oid in NEW_IDS:
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / f"{oid}.png")
    (folder / "new1.png").write_bytes(b"")
    return ingest_images(ws, inputs, folder)


@case(
    "png-really-text", "images: PNG per object", "a .png file that holds text", r"new0\.png: unreadable image"
)
def _(inputs, ws):
    from PIL import Image

    folder = inputs / "png"
    folder.mkdir()
    for oid in NEW_IDS:
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / f"{oid}.png")
    (folder / "new0.png").write_text("<html>this is not a PNG</html>")
    return ingest_images(ws, inputs, folder)


@case("hdf5-not-hdf5", "images: HDF5", "a .h5 file that is plain text", r"cut\.h5: unreadable HDF5")
def _(inputs, ws):
    (inputs / "cut.h5").write_text("not an HDF5 file")
    return ingest_images(ws, inputs, inputs / "cut.h5")


@case(
    "hdf5-id-count-mismatch",
    "images: HDF5",
    "an HDF5 file with 3 cutouts and 2 ids",
    r"cut\.h5: 2 ids but 3 cutouts",
)
def _(inputs, ws):
    import h5py

    with h5py.File(inputs / "cut.h5", "w") as f:
        f["images"] = np.zeros((3, 8, 8), np.float32)
        f["ids"] = np.array([b"new0", b"new1"])
    return ingest_images(ws, inputs, inputs / "cut.h5")


@case(
    "hdf5-no-cube",
    "images: HDF5",
    "an HDF5 file whose only dataset is 1-D",
    r"cut\.h5: (?!.*--image-dataset).*(3-D|N×H×W)",
)
def _(inputs, ws):
    import h5py

    with h5py.File(inputs / "cut.h5", "w") as f:
        f["values"] = np.zeros(10)
    return ingest_images(ws, inputs, inputs / "cut.h5")


@case(
    "fits-cube-2d",
    "images: FITS cube",
    "a 'cube' that holds one 2-D image",
    r"cube\.fits: cube has shape \(16, 16\)",
)
def _(inputs, ws):
    from astropy.io import fits

    fits.PrimaryHDU(blob()).writeto(inputs / "cube.fits")
    return ingest_images(ws, inputs, inputs / "cube.fits", "--image-format", "fits-cube")


@case(
    "fits-cube-id-table-length",
    "images: FITS cube",
    "a cube of 3 cutouts whose ID table has 2 rows",
    r"cube\.fits: 2 ids in table HDU but 3 cutouts",
)
def _(inputs, ws):
    from astropy.io import fits
    from astropy.table import Table

    cube = np.stack([blob() for _ in range(3)])
    fits.HDUList([fits.PrimaryHDU(cube), fits.BinTableHDU(Table({"id": ["new0", "new1"]}))]).writeto(
        inputs / "cube.fits"
    )
    return ingest_images(ws, inputs, inputs / "cube.fits", "--image-format", "fits-cube")


@case(
    "fits-cube-count-mismatch",
    "images: FITS cube",
    "a cube of 2 cutouts, no ids, for 3 catalogue rows",
    r"cube\.fits: 2 cutouts but 3 catalogue rows",
)
def _(inputs, ws):
    from astropy.io import fits

    fits.PrimaryHDU(np.stack([blob(), blob()])).writeto(inputs / "cube.fits")
    return ingest_images(ws, inputs, inputs / "cube.fits", "--image-format", "fits-cube")


@case(
    "fits-cube-truncated",
    "images: FITS cube",
    "a FITS cube cut off inside its data",
    r"cube\.fits: .*(unreadable|truncated)",
)
def _(inputs, ws):
    from astropy.io import fits

    fits.PrimaryHDU(np.stack([blob(32)] * 3)).writeto(inputs / "cube.fits")
    data = (inputs / "cube.fits").read_bytes()
    (inputs / "cube.fits").write_bytes(data[:4000])
    return ingest_images(ws, inputs, inputs / "cube.fits", "--image-format", "fits-cube")


@case("images-unknown-format", "images", "--image-format tiff", r"no images reader for format 'tiff'")
def _(inputs, ws):
    return ingest_images(ws, inputs, fits_folder(inputs), "--image-format", "tiff")


# ================================================================================ light curves (ingest)
def _one_point_embeds(inputs: Path, ws: Path, stderr: str) -> None:
    from explorer.workspace import Workspace

    lc = Workspace.open(ws).catalog.lightcurve("new0")
    assert len(lc) == 1
    assert run_main(["embed", ws]) == 0, "a one-point light curve must not break `explorer embed`"
    emb = Workspace.open(ws).embeddings(space="lightcurve")
    assert "new0" in set(emb.ids)


@case(
    "lc-one-point",
    "light curves: long table",
    "an object whose light curve has a single point",
    code=0,
    check=_one_point_embeds,
)
def _(inputs, ws):
    lc = lc_frame()
    lc = pd.concat(
        [
            lc[lc["id"] != "new0"],
            pd.DataFrame({"id": ["new0"], "time": [59001.0], "mag": [18.0], "err": [0.05], "band": ["g"]}),
        ]
    )
    return ingest_lc(ws, inputs, lc)


def _unsorted_sorted(inputs: Path, ws: Path, stderr: str) -> None:
    from explorer.workspace import Workspace

    lc = Workspace.open(ws).catalog.lightcurve("new1")
    assert lc["time"].is_monotonic_increasing and len(lc) == 24


@case(
    "lc-unsorted-times",
    "light curves: long table",
    "points in random time order",
    code=0,
    check=_unsorted_sorted,
)
def _(inputs, ws):
    return ingest_lc(ws, inputs, lc_frame().sample(frac=1.0, random_state=1))


def _duplicates_dropped(inputs: Path, ws: Path, stderr: str) -> None:
    from explorer.workspace import Workspace

    assert len(Workspace.open(ws).catalog.lightcurve("new0")) == 24


@case(
    "lc-duplicate-rows",
    "light curves: long table",
    "every row of one object written twice",
    r"warning: .*lc\.csv: dropped 24 duplicate rows",
    code=0,
    check=_duplicates_dropped,
)
def _(inputs, ws):
    lc = lc_frame()
    return ingest_lc(ws, inputs, pd.concat([lc, lc[lc["id"] == "new0"]]))


@case(
    "lc-non-numeric-time",
    "light curves: long table",
    "a time value 'yesterday'",
    r"lc\.csv: column 'time' has non-numeric value 'yesterday'",
)
def _(inputs, ws):
    lc = lc_frame().astype({"time": object})
    lc.loc[5, "time"] = "yesterday"
    return ingest_lc(ws, inputs, lc)


@case(
    "lc-no-band-column",
    "light curves: long table",
    "a table with no band/filter column",
    r"lc\.csv: light-curve table has no band column",
)
def _(inputs, ws):
    return ingest_lc(ws, inputs, lc_frame().drop(columns="band"))


@case(
    "lc-no-mag-column",
    "light curves: long table",
    "a table with neither mag nor flux",
    r"lc\.csv: light-curve table lacks column\(s\) mag or flux",
)
def _(inputs, ws):
    return ingest_lc(ws, inputs, lc_frame().drop(columns="mag"))


@case(
    "lc-all-nan", "light curves: long table", "every magnitude NaN", r"lc\.csv: no usable light-curve points"
)
def _(inputs, ws):
    return ingest_lc(ws, inputs, lc_frame().assign(mag=np.nan))


@case(
    "lc-unknown-id",
    "light curves: long table",
    "a light curve for an id not in the catalogue",
    r"light curve of 'ghost' has no catalogue row",
)
def _(inputs, ws):
    return ingest_lc(ws, inputs, pd.concat([lc_frame(), lc_frame(["ghost"])]))


@case("lc-zero-bytes", "light curves: long table", "a zero-byte lc.csv", r"lc\.csv: cannot read")
def _(inputs, ws):
    (inputs / "lc.csv").touch()
    return ingest_lc(ws, inputs, inputs / "lc.csv")


@case(
    "lc-folder-empty-file",
    "light curves: folder",
    "a zero-byte file in a one-file-per-object folder",
    r"new1\.csv: cannot read",
)
def _(inputs, ws):
    folder = inputs / "lcs"
    folder.mkdir()
    for oid, g in lc_frame().groupby("id"):
        g.drop(columns="id").to_csv(folder / f"{oid}.csv", index=False)
    (folder / "new1.csv").write_bytes(b"")
    return ingest_lc(ws, inputs, folder)


@case(
    "lc-folder-header-only",
    "light curves: folder",
    "a file with a header and no points",
    r"new2\.csv: empty light curve",
)
def _(inputs, ws):
    folder = inputs / "lcs"
    folder.mkdir()
    for oid, g in lc_frame().groupby("id"):
        g.drop(columns="id").to_csv(folder / f"{oid}.csv", index=False)
    (folder / "new2.csv").write_text("time,mag,err,band\n")
    return ingest_lc(ws, inputs, folder)


@case(
    "lc-folder-no-files",
    "light curves: folder",
    "a folder with no light-curve files",
    r"lcs: no light-curve files",
)
def _(inputs, ws):
    (inputs / "lcs").mkdir()
    (inputs / "lcs" / "readme.md").write_text("empty")
    return ingest_lc(ws, inputs, inputs / "lcs")


# ================================================================================ checkpoints (embed)
@case(
    "ckpt-truncated",
    "checkpoint",
    "model.safetensors truncated to half its size",
    r"ckpt/model\.safetensors: sha256 does not match",
)
def _(inputs, ws):
    ckpt = copy_checkpoint(ws, inputs)
    w = ckpt / "model.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    return ["embed", ws, "--model", ckpt]


@case(
    "ckpt-workspace-own-truncated",
    "checkpoint",
    "the workspace's own image checkpoint truncated",
    r"image-blobs/model\.safetensors: sha256 does not match",
)
def _(inputs, ws):
    w = ws / "checkpoints" / "image-blobs" / "model.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    return ["embed", ws]


@case(
    "ckpt-pickle-disguised",
    "checkpoint",
    "a pickle written as model.safetensors (never loaded)",
    r"ckpt/model\.safetensors: is a pickle",
    subprocess=True,
)
def _(inputs, ws):
    ckpt = copy_checkpoint(ws, inputs)
    (ckpt / "model.safetensors").write_bytes(pickle.dumps({"weights": [1.0, 2.0, 3.0]}))
    return ["embed", ws, "--model", ckpt]


@case(
    "ckpt-torch-save-disguised",
    "checkpoint",
    "a torch.save zip archive written as model.safetensors",
    r"ckpt/model\.safetensors: is a pickle",
)
def _(inputs, ws):
    import torch

    ckpt = copy_checkpoint(ws, inputs)
    torch.save({"w": torch.zeros(3)}, ckpt / "model.safetensors")
    return ["embed", ws, "--model", ckpt]


@case(
    "ckpt-other-architecture",
    "checkpoint",
    "config.json naming another (unregistered) architecture",
    r"ckpt/config\.json: architecture is 'zoobot-convnext', expected 'explorer-image-cnn'",
)
def _(inputs, ws):
    ckpt = copy_checkpoint(ws, inputs)
    edit_config(ckpt, architecture="zoobot-convnext")
    return ["embed", ws, "--model", ckpt]


@case(
    "ckpt-lightcurve-config-for-images",
    "checkpoint",
    "an image checkpoint folder holding the light-curve model's config.json",
    r"ckpt'?:? (is|holds) a (lightcurve|light-curve)",
)
def _(inputs, ws):
    ckpt = copy_checkpoint(ws, inputs)
    shutil.copy(ws / "checkpoints" / "lightcurve" / "config.json", ckpt / "config.json")
    return ["embed", ws, "--model", ckpt]


@case(
    "ckpt-weights-do-not-fit",
    "checkpoint",
    "config.json of a wider network than the weights",
    r"ckpt/model\.safetensors: weights do not fit architecture",
)
def _(inputs, ws):
    ckpt = copy_checkpoint(ws, inputs)
    cfg = json.loads((ckpt / "config.json").read_text())
    edit_config(ckpt, widths=[w * 2 for w in cfg["widths"]])
    return ["embed", ws, "--model", ckpt]


@case(
    "ckpt-config-not-json",
    "checkpoint",
    "config.json that is not JSON",
    r"ckpt/config\.json: unreadable config",
)
def _(inputs, ws):
    ckpt = copy_checkpoint(ws, inputs)
    (ckpt / "config.json").write_text("{architecture: explorer-image-cnn")
    return ["embed", ws, "--model", ckpt]


@case(
    "ckpt-config-no-sha",
    "checkpoint",
    "config.json without weights_sha256",
    r"ckpt/config\.json: lacks \['weights_sha256'\]",
)
def _(inputs, ws):
    ckpt = copy_checkpoint(ws, inputs)
    cfg = json.loads((ckpt / "config.json").read_text())
    del cfg["weights_sha256"]
    (ckpt / "config.json").write_text(json.dumps(cfg))
    return ["embed", ws, "--model", ckpt]


@case("embed-model-nonexistent", "embed", "--model nonexistent", r"no image checkpoint 'nonexistent'")
def _(inputs, ws):
    return ["embed", ws, "--model", "nonexistent"]


@case(
    "embed-lightcurve-model-nonexistent",
    "embed",
    "--lightcurve-model nonexistent",
    r"no lightcurve checkpoint 'nonexistent'",
)
def _(inputs, ws):
    return ["embed", ws, "--lightcurve-model", "nonexistent"]


@case(
    "embed-no-checkpoints",
    "embed",
    "a workspace whose own checkpoints were removed: a shipped encoder with the same bands is used, with a warning",
    r"image set 'blobs' has no encoder of its own; using image_encoder_first",
    code=0,
    check=lambda inputs, ws, stderr: None,  # the warning (matched above) is the behaviour; embeddings follow
)
def _(inputs, ws):
    shutil.rmtree(ws / "checkpoints")
    return ["embed", ws]


# ================================================================================ import-vectors
def _vectors(ids, dim: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"id": list(ids), **{f"emb_{j}": rng.normal(size=len(ids)) for j in range(dim)}})


@case(
    "vectors-nan",
    "import-vectors",
    "a Parquet of vectors, one of them NaN",
    r"vectors\.parquet: 1 vectors contain NaN/inf \(first: \['src003'\]\)",
    subprocess=True,
)
def _(inputs, ws):
    df = _vectors(IMAGE_IDS + LC_IDS)
    df.loc[3, "emb_2"] = np.nan
    df.to_parquet(inputs / "vectors.parquet")
    return ["import-vectors", ws, inputs / "vectors.parquet"]


@case(
    "vectors-unknown-ids",
    "import-vectors",
    "vectors for ids not in the workspace",
    r"vectors\.parquet: vector for unknown object 'stranger'",
)
def _(inputs, ws):
    _vectors([*IMAGE_IDS, "stranger"]).to_parquet(inputs / "vectors.parquet")
    return ["import-vectors", ws, inputs / "vectors.parquet"]


@case(
    "vectors-duplicate-ids",
    "import-vectors",
    "two vectors for one id",
    r"vectors\.parquet: duplicate ids among the vectors",
)
def _(inputs, ws):
    _vectors([*IMAGE_IDS, "src000"]).to_parquet(inputs / "vectors.parquet")
    return ["import-vectors", ws, inputs / "vectors.parquet"]


@case(
    "vectors-no-numeric-columns",
    "import-vectors",
    "a CSV with ids and text only",
    r"vectors\.csv: expected one vector per id",
)
def _(inputs, ws):
    pd.DataFrame({"id": IMAGE_IDS, "note": ["x"] * 16}).to_csv(inputs / "vectors.csv", index=False)
    return ["import-vectors", ws, inputs / "vectors.csv"]


@case(
    "vectors-npz-missing-arrays",
    "import-vectors",
    "an .npz without 'ids'/'vectors'",
    r"vectors\.npz: an \.npz of vectors needs arrays 'ids' and 'vectors'",
)
def _(inputs, ws):
    np.savez(inputs / "vectors.npz", X=np.zeros((3, 4)))
    return ["import-vectors", ws, inputs / "vectors.npz"]


@case(
    "vectors-npz-pickled-objects",
    "import-vectors",
    "an .npz whose ids are a pickled object array",
    r"vectors\.npz: .*(pickle|object)",
)
def _(inputs, ws):
    np.savez(inputs / "vectors.npz", ids=np.array(IMAGE_IDS, dtype=object), vectors=np.zeros((16, 4)))
    return ["import-vectors", ws, inputs / "vectors.npz"]


@case(
    "vectors-npz-corrupt",
    "import-vectors",
    "an .npz that is not a zip archive",
    r"vectors\.npz: .*(unreadable|not|cannot)",
)
def _(inputs, ws):
    (inputs / "vectors.npz").write_bytes(b"PK\x03\x04 this is no zip")
    return ["import-vectors", ws, inputs / "vectors.npz"]


@case(
    "vectors-hdf5-not-hdf5",
    "import-vectors",
    "a .h5 of vectors that is plain text",
    r"vectors\.h5: .*(unreadable|HDF5)",
)
def _(inputs, ws):
    (inputs / "vectors.h5").write_text("not hdf5")
    return ["import-vectors", ws, inputs / "vectors.h5"]


@case(
    "vectors-missing-file",
    "import-vectors",
    "a vectors path that does not exist",
    r"nothing\.parquet: no such file",
)
def _(inputs, ws):
    return ["import-vectors", ws, inputs / "nothing.parquet"]


@case(
    "vectors-wrong-id-column",
    "import-vectors",
    "--id-column that is not in the table",
    r"vectors\.parquet: no id column 'objid'",
)
def _(inputs, ws):
    _vectors(IMAGE_IDS).to_parquet(inputs / "vectors.parquet")
    return ["import-vectors", ws, inputs / "vectors.parquet", "--id-column", "objid"]


# ================================================================================ map / score
@case("map-unknown-space", "map", "--space nonsense", r"embeddings emb-0001 have no space 'nonsense'")
def _(inputs, ws):
    return ["map", ws, "--method", "pca", "--space", "nonsense"]


@case(
    "map-embeddings-file-truncated",
    "map",
    "the current joint.npy truncated",
    r"joint\.npy",
)
def _(inputs, ws):
    f = ws / "embeddings" / "emb-0001" / "joint.npy"
    f.write_bytes(f.read_bytes()[:200])
    return ["map", ws, "--method", "pca"]


@case("score-unknown-space", "score", "--space nonsense", r"embeddings emb-0001 have no space 'nonsense'")
def _(inputs, ws):
    return ["score", ws, "--method", "knn", "--space", "nonsense"]


# ================================================================================ select
@case(
    "select-two-vertices",
    "select",
    "a polygon of 2 vertices",
    r"lasso needs at least 3 distinct vertices, got 2",
)
def _(inputs, ws):
    return ["select", ws, "--polygon", "0,0 1,1"]


@case("select-nan-vertex", "select", "a vertex 'nan,0'", r"lasso vertex 0 is not finite \(\[nan, 0\.0\]\)")
def _(inputs, ws):
    return ["select", ws, "--polygon", "nan,0 1,0 1,1 0,1"]


@case("select-inf-vertex", "select", "a vertex 'inf,0'", r"lasso vertex 1 is not finite \(\[inf, 0\.0\]\)")
def _(inputs, ws):
    return ["select", ws, "--polygon", "0,0 inf,0 inf,inf 0,1"]


@case(
    "select-text",
    "select",
    "a polygon written as words",
    r"polygon 'left top right': write vertices as",
    subprocess=True,
)
def _(inputs, ws):
    return ["select", ws, "--polygon", "left top right"]


@case(
    "select-three-numbers", "select", "a vertex with three numbers", r"every vertex needs exactly two numbers"
)
def _(inputs, ws):
    return ["select", ws, "--polygon", "0,0 1,0,5 1,1"]


@case(
    "select-save-path-traversal",
    "select",
    "--save ../../escaped",
    r"selection name '\.\./\.\./escaped' is not allowed",
)
def _(inputs, ws):
    return ["select", ws, "--polygon", "-10,-10 10,-10 10,10 -10,10", "--save", "../../escaped"]


# ================================================================================ similar
_NP_STR = (
    "explorer/analysis/neighbours.py:SimilarityIndex.rows_of formats the id with !r of a numpy string: "
    "the user reads \"unknown object id np.str_('nobody')\"; format str(id) instead"
)


@case(
    "similar-unknown-id",
    "similar",
    "an id that is not in the workspace",
    r"unknown object id 'nobody'",
    subprocess=True,
)
def _(inputs, ws):
    return ["similar", ws, "nobody"]


@case(
    "similar-unknown-negative",
    "similar",
    "--not with an unknown id",
    r"unknown object id 'nobody'",
)
def _(inputs, ws):
    return ["similar", ws, "src000", "--not", "nobody"]


@case("similar-k-zero", "similar", "-k 0", r"\bk\b.*(positive|>= ?1|at least)|-k")
def _(inputs, ws):
    return ["similar", ws, "src000", "-k", "0"]


@case("similar-k-negative", "similar", "-k -3", r"\bk\b.*(positive|>= ?1|at least)|-k")
def _(inputs, ws):
    return ["similar", ws, "src000", "-k", "-3"]


@case("similar-unknown-space", "similar", "--space nonsense", r"no space 'nonsense'")
def _(inputs, ws):
    return ["similar", ws, "src000", "--space", "nonsense"]


@case("index-unknown-space", "index", "--space nonsense", r"no space 'nonsense'")
def _(inputs, ws):
    return ["index", ws, "--space", "nonsense"]


# ================================================================================ label / labels
@case(
    "label-unknown-id",
    "label",
    "an id that is not in the workspace",
    r"unknown object id 'nobody' \(1 unknown\); nothing was labelled",
)
def _(inputs, ws):
    return ["label", ws, "src001", "nobody", "--as", "anomaly", "--user", "test"]


@case("label-empty", "label", "--as ''", r"label|--as")
def _(inputs, ws):
    return ["label", ws, "src001", "--as", "", "--user", "test"]


@case("label-blank", "label", "--as '   ' (only spaces)", r"label '   ' has 0 characters")
def _(inputs, ws):
    return ["label", ws, "src001", "--as", "   ", "--user", "test"]


@case(
    "label-10kB",
    "label",
    "a label of 10,000 characters (the message must stay short)",
    r"label 'x{5,60}.*has 10000 characters",
    subprocess=True,
)
def _(inputs, ws):
    return ["label", ws, "src001", "--as", "x" * 10_000, "--user", "test"]


@case(
    "label-control-characters",
    "label",
    "a label with a newline and an escape character",
    r"contains control or non-printable characters",
)
def _(inputs, ws):
    return ["label", ws, "src001", "--as", "bad\nlabel\x1b[31m", "--user", "test"]


@case("label-no-ids", "label", "--as anomaly with no ids", r"no objects to label")
def _(inputs, ws):
    return ["label", ws, "--as", "anomaly", "--user", "test"]


@case("label-unknown-selection", "label", "--selection that was never saved", r"no saved selection 'ghost'")
def _(inputs, ws):
    return ["label", ws, "--selection", "ghost", "--as", "anomaly", "--user", "test"]


@case(
    "labels-random-binary",
    "labels",
    "labels.sqlite replaced by random bytes",
    r"labels\.sqlite: not a label database",
    subprocess=True,
)
def _(inputs, ws):
    (ws / "labels.sqlite").write_bytes(np.random.default_rng(0).bytes(4096))
    return ["labels", ws]


@case(
    "labels-other-sqlite",
    "labels",
    "labels.sqlite that is some other program's SQLite database",
    r"labels\.sqlite: .*(not a|label database)",
)
def _(inputs, ws):
    import sqlite3

    (ws / "labels.sqlite").unlink()
    with sqlite3.connect(ws / "labels.sqlite") as conn:
        conn.execute("CREATE TABLE photos (path TEXT, taken TEXT)")
        conn.execute("INSERT INTO photos VALUES ('a.jpg', '2020')")
    conn.close()
    return ["labels", ws]


@case(
    "labels-truncated-sqlite",
    "labels",
    "labels.sqlite cut to its first 1000 bytes",
    r"labels\.sqlite: cannot open the label database \(database disk image is malformed\)",
)
def _(inputs, ws):
    f = ws / "labels.sqlite"
    f.write_bytes(f.read_bytes()[:1000])
    return ["labels", ws]


# ================================================================================ export
@case(
    "export-existing-output",
    "export",
    "an output file that exists, without --overwrite",
    r"out\.csv: exists already; pass --overwrite",
    subprocess=True,
)
def _(inputs, ws):
    (inputs / "out.csv").write_text("precious\n")
    return ["export", ws, "-o", inputs / "out.csv", "--all"]


@case(
    "export-missing-folder",
    "export",
    "an output in a folder that does not exist",
    r"out\.csv: .*(does not exist|no such folder|missing)",
)
def _(inputs, ws):
    return ["export", ws, "-o", inputs / "no" / "such" / "out.csv", "--all"]


@case("export-unknown-format", "export", "--format xlsx", r"no export format 'xlsx'; available: .*csv")
def _(inputs, ws):
    return ["export", ws, "-o", inputs / "out.xlsx", "--format", "xlsx", "--all"]


@case("export-unknown-label", "export", "--label that nobody used", r"unknown label 'merger'")
def _(inputs, ws):
    return ["export", ws, "-o", inputs / "out.csv", "--label", "merger"]


@case("export-unknown-id", "export", "--ids with an unknown id", r"unknown object id 'nobody'")
def _(inputs, ws):
    return ["export", ws, "-o", inputs / "out.csv", "--ids", "src000", "nobody"]


@case("export-no-criteria", "export", "no --label/--selection/--ids/--all", r"choose what to export")
def _(inputs, ws):
    return ["export", ws, "-o", inputs / "out.csv"]


@case("export-output-is-folder", "export", "-o naming an existing folder", r"out: is a folder")
def _(inputs, ws):
    (inputs / "out").mkdir()
    return ["export", ws, "-o", inputs / "out", "--format", "csv", "--all"]


@case("export-training-unknown-format", "export", "--training-set --format zip", r"'zip'")
def _(inputs, ws):
    return ["export", ws, "-o", inputs / "train", "--training-set", "--format", "zip", "--all"]


@case("export-unknown-selection", "export", "--selection that was never saved", r"'ghost'")
def _(inputs, ws):
    return ["export", ws, "-o", inputs / "out.csv", "--selection", "ghost"]


# ================================================================================ workspace, info, serve, others
@case(
    "info-not-a-workspace",
    "info",
    "a folder with no manifest.json",
    r"plain: not a workspace \(no manifest\.json\)",
)
def _(inputs, ws):
    (inputs / "plain").mkdir()
    (inputs / "plain" / "notes.txt").write_text("hello")
    return ["info", inputs / "plain"]


@case(
    "serve-not-a-workspace",
    "serve",
    "a folder with no manifest.json",
    r"plain: not a workspace \(no manifest\.json\)",
    subprocess=True,
)
def _(inputs, ws):
    (inputs / "plain").mkdir()
    return ["serve", inputs / "plain", "--port", "0"]


@case(
    "manifest-corrupt",
    "workspace",
    "manifest.json cut in the middle",
    r"manifest\.json: unreadable manifest",
    subprocess=True,
)
def _(inputs, ws):
    m = ws / "manifest.json"
    m.write_bytes(m.read_bytes()[:120])
    return ["info", ws]


@case(
    "manifest-not-an-object",
    "workspace",
    "manifest.json holding a JSON list",
    r"manifest\.json: not an astro-embedding-explorer manifest",
)
def _(inputs, ws):
    (ws / "manifest.json").write_text("[1, 2, 3]")
    return ["info", ws]


@case(
    "manifest-future-version",
    "workspace",
    "manifest.json from a newer format version",
    r"manifest\.json: written by a newer explorer",
)
def _(inputs, ws):
    m = json.loads((ws / "manifest.json").read_text())
    m["format_version"] = 99
    (ws / "manifest.json").write_text(json.dumps(m))
    return ["info", ws]


@case(
    "manifest-catalog-missing",
    "workspace",
    "the catalogue file the manifest names was deleted",
    r"catalog-\d+\.parquet: catalogue unreadable",
)
def _(inputs, ws):
    m = json.loads((ws / "manifest.json").read_text())
    (ws / m["catalog"]).unlink()
    return ["info", ws]


@case(
    "workspace-catalog-corrupt",
    "workspace",
    "the workspace's catalogue Parquet overwritten with text",
    r"catalog-\d+\.parquet: catalogue unreadable",
    command="export",
)
def _(inputs, ws):
    m = json.loads((ws / "manifest.json").read_text())
    (ws / m["catalog"]).write_text("not parquet")
    return ["export", ws, "-o", inputs / "out.csv", "--all"]


@case(
    "ingest-new-folder-bad-catalog",
    "ingest",
    "ingest into a new folder with a broken catalogue",
    r"catalog\.csv: cannot read",
)
def _(inputs, ws):
    (inputs / "catalog.csv").touch()
    return ingest(inputs / "fresh-ws", inputs / "catalog.csv", "--images", fits_folder(inputs))


@case(
    "ingest-into-non-workspace-folder",
    "ingest",
    "a target folder that holds other files",
    r"other: folder is not empty and not a workspace",
)
def _(inputs, ws):
    (inputs / "other").mkdir()
    (inputs / "other" / "thesis.tex").write_text("\\documentclass{article}")
    return ingest(inputs / "other", catalog_csv(inputs), "--images", fits_folder(inputs))


@case(
    "demo-into-non-workspace-folder",
    "demo",
    "--workspace naming a folder that holds other files",
    r"other: folder is not empty and not a workspace",
)
def _(inputs, ws):
    (inputs / "other").mkdir()
    (inputs / "other" / "thesis.tex").write_text("\\documentclass{article}")
    return ["demo", "--workspace", inputs / "other", "--simulated", "10", "--no-serve"]


@case("simulate-negative-n", "simulate", "--n -5", r"(--n|\bn\b).*(positive|>= ?1|at least|negative)")
def _(inputs, ws):
    return ["simulate", ws, "--n", "-5"]


@case("pretrain-unknown-image-set", "pretrain", "--image-set that does not exist", r"no image set 'ghost'")
def _(inputs, ws):
    return ["pretrain", ws, "--modality", "image", "--image-set", "ghost", "--epochs", "1"]


@case(
    "pretrain-bad-checkpoint-name",
    "pretrain",
    "--name ../escaped",
    r"checkpoint name '\.\./escaped' is not allowed",
)
def _(inputs, ws):
    return ["pretrain", ws, "--modality", "image", "--name", "../escaped", "--epochs", "1"]


@case(
    "samp-send-unknown-id",
    "samp",
    "samp send --ids with an unknown id (no hub needed to refuse it)",
    r"unknown object id 'nobody'",
)
def _(inputs, ws):
    return ["samp", "send", ws, "--ids", "nobody"]


@case(
    "samp-listen-bad-name",
    "samp",
    "samp listen --save ../escaped",
    r"selection name '\.\./escaped' is not allowed",
)
def _(inputs, ws):
    return ["samp", "listen", ws, "--save", "../escaped", "--timeout", "1"]
