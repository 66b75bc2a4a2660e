"""The real FIRST radio-galaxy sample shipped in the ``firstgalaxydata`` wheel (Griese et al. 2023), read without importing it.

The wheel's ``__init__`` imports torchvision and h5py, so we only locate its ``galaxy_data.zip`` and decode the
PNGs ourselves. The zip holds ``galaxy_data/{train,valid,test}/<class>/<ra>_<dec>_<label>_<catalogue>.png``
(``all/`` repeats the three splits and is skipped).
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from explorer.errors import DataError

CLASSES = ("FRI", "FRII", "Compact", "Bent")
SPLITS = ("train", "valid", "test")
INSTALL_HINT = "install it with: pip install --no-deps firstgalaxydata==0.2.1"
CITATION = (
    "Griese F. et al., Radio Galaxy Dataset (firstgalaxydata), doi:10.5281/zenodo.7120632 (MIT licence); "
    "images: FIRST survey, Becker, White & Helfand 1995, ApJ 450, 559 (scholarly, educational and private "
    "non-commercial use)"
)


@dataclass(frozen=True)
class FirstSample:
    """The FIRST sample: one catalogue row per image, and the images.

    Attributes
    ----------
    table : pandas.DataFrame
        Columns ``id`` (``FIRST_J<ra>_<dec>``), ``ra``, ``dec`` (deg), ``class`` (one of :data:`CLASSES`),
        ``split`` (train/valid/test), ``reference`` (the catalogue the label comes from).
    images : numpy.ndarray
        ``(N, 300, 300)`` uint8 grayscale cutouts in the order of ``table``.
    """

    table: pd.DataFrame
    images: np.ndarray


def first_zip_path() -> Path:
    """Where the installed ``firstgalaxydata`` wheel keeps ``galaxy_data.zip``."""
    try:
        dist = metadata.distribution("firstgalaxydata")
    except metadata.PackageNotFoundError as err:
        raise DataError(f"the FIRST sample is not installed; {INSTALL_HINT}") from err
    path = Path(dist.locate_file("firstgalaxydata/galaxy_data.zip"))
    if not path.exists():
        raise DataError(f"{path}: missing from the firstgalaxydata install; reinstall it ({INSTALL_HINT})")
    return path


def _parse_name(member: str) -> dict:
    _, split, label, fname = member.split("/")
    ra, dec, _code, reference = Path(fname).stem.split("_", 3)
    return {"ra": float(ra), "dec": float(dec), "class": label, "split": split, "reference": reference}


def load_first(splits: tuple[str, ...] = SPLITS, limit: int | None = None) -> FirstSample:
    """Read the FIRST sample from the installed wheel.

    Parameters
    ----------
    splits : tuple of str
        Which of the fixed splits to read (default all three: 2,158 images).
    limit : int, optional
        Read only the first ``limit`` images (in a stable order), for quick tests.
    """
    from PIL import Image

    path = first_zip_path()
    with zipfile.ZipFile(path) as zf:
        members = sorted(
            m for m in zf.namelist() if m.endswith(".png") and m.split("/")[1] in splits
        )
        if limit is not None:
            members = members[:limit]
        rows, images = [], []
        for member in members:
            row = _parse_name(member)
            with Image.open(io.BytesIO(zf.read(member))) as im:
                images.append(np.asarray(im.convert("L"), dtype=np.uint8))
            rows.append(row)
    table = pd.DataFrame(rows)
    table.insert(0, "id", [f"FIRST_J{r:.3f}{d:+.3f}" for r, d in zip(table.ra, table.dec, strict=True)])
    dup = table.id.duplicated(keep=False)
    if dup.any():  # a few sources share rounded positions: keep ids unique and stable
        table.loc[dup, "id"] = table.loc[dup, "id"] + "_" + table.loc[dup].groupby("id").cumcount().astype(str)
    return FirstSample(table=table.reset_index(drop=True), images=np.stack(images))
