"""Finding encoders: checkpoints in a workspace, the shipped ones in ``assets/``, or a path; loading any of them."""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from explorer.errors import ModelError
from explorer.workspace import Workspace

TRAINED_ON = "trained_on.json"
ASSETS = Path(os.environ.get("EXPLORER_ASSETS", Path(__file__).resolve().parents[2] / "assets"))


@dataclass(frozen=True)
class CheckpointRef:
    """A checkpoint folder and what its config says about it."""

    path: Path
    config: dict

    @property
    def modality(self) -> str:
        """``"image"`` or ``"lightcurve"``, as the config says (``"image"`` when it does not say)."""
        return self.config.get("modality", "image")

    @property
    def name(self) -> str:
        """The checkpoint folder's name."""
        return self.path.name


def read_ref(path: Path) -> CheckpointRef:
    """Read the checkpoint folder ``path``.

    Parameters
    ----------
    path : Path
        A folder holding ``config.json`` (as written by ``explorer pretrain``).

    Returns
    -------
    CheckpointRef
        The folder and its config, merged with the training-data note beside it (``trained_on.json``) if any.

    Raises
    ------
    ModelError
        If the folder has no ``config.json`` or a JSON file there is unreadable.
    """
    cfg = Path(path) / "config.json"
    if not cfg.exists():
        raise ModelError(f"{path}: not a checkpoint (no config.json); give a folder made by `explorer pretrain`")
    try:
        config = json.loads(cfg.read_text())
        side = Path(path) / TRAINED_ON
        if side.exists():  # what the pipeline recorded about the data it was trained on
            config = {**config, **json.loads(side.read_text())}
        return CheckpointRef(Path(path), config)
    except ValueError as err:
        raise ModelError(f"{cfg}: unreadable config ({err})") from err


def record_training_data(directory: Path, **facts) -> None:
    """Note beside a checkpoint what it was trained on (e.g. ``image_set``, ``workspace``), for encoder choice."""
    (Path(directory) / TRAINED_ON).write_text(json.dumps(facts, indent=2, default=str))


def available_checkpoints(ws: Workspace | None = None) -> list[CheckpointRef]:
    """Every checkpoint a workspace can use: its own (newest first), then the shipped ones."""
    refs = []
    if ws is not None and (ws.path / "checkpoints").exists():
        own = sorted((p for p in (ws.path / "checkpoints").iterdir() if (p / "config.json").exists()),
                     key=lambda p: (p / "config.json").stat().st_mtime, reverse=True)
        refs += [read_ref(p) for p in own]
    if ASSETS.exists():
        refs += [read_ref(p) for p in sorted(ASSETS.iterdir()) if (p / "config.json").exists()]
    return refs


def _bands_of(ref: CheckpointRef) -> int | None:
    model = ref.config.get("model", ref.config)
    return model.get("bands") if isinstance(model, dict) else None


def choose_image_checkpoint(ws: Workspace, image_set: str, n_bands: int, model: str | None = None) -> CheckpointRef:
    """The checkpoint to embed ``image_set`` with: ``model`` if named, else the best match by training set and bands."""
    refs = [r for r in available_checkpoints(ws) if r.modality == "image"]
    if model is not None:
        return resolve_named(ws, model, "image")
    fits = [r for r in refs if _bands_of(r) in (None, n_bands)]
    same_set = [r for r in fits if r.config.get("image_set") == image_set]
    pick = (same_set or fits or [None])[0]
    if pick is None:
        raise ModelError(f"no image encoder for image set {image_set!r} ({n_bands} bands); train one with "
                         f"`explorer pretrain WS --modality image --image-set {image_set}`")
    if not same_set:
        warnings.warn(f"image set {image_set!r} has no encoder of its own; using {pick.name} (trained on "
                      f"{pick.config.get('image_set', 'other data')}). For better embeddings run `explorer "
                      f"pretrain WS --modality image --image-set {image_set}`", stacklevel=2)
    return pick


def choose_lightcurve_checkpoint(ws: Workspace, model: str | None = None) -> CheckpointRef:
    """The light-curve checkpoint to embed with.

    Parameters
    ----------
    ws : Workspace
        Whose own checkpoints are searched first.
    model : str, optional
        A checkpoint path, workspace checkpoint name or shipped asset name (see :func:`resolve_named`).

    Returns
    -------
    CheckpointRef
        ``model`` if named, else the workspace's newest light-curve checkpoint, else the first shipped one.

    Raises
    ------
    ModelError
        If ``model`` is not found or not a light-curve encoder, or no light-curve checkpoint exists.
    """
    if model is not None:
        return resolve_named(ws, model, "lightcurve")
    refs = [r for r in available_checkpoints(ws) if r.modality == "lightcurve"]
    if not refs:
        raise ModelError("no light-curve encoder; train one with `explorer pretrain WS --modality lightcurve`")
    return refs[0]


def resolve_named(ws: Workspace, name: str, modality: str) -> CheckpointRef:
    """A checkpoint named by path, by workspace checkpoint name, or by shipped asset name."""
    for candidate in (Path(name), ws.path / "checkpoints" / name, ASSETS / name):
        if (candidate / "config.json").exists():
            ref = read_ref(candidate)
            if ref.modality != modality:
                raise ModelError(f"{candidate}: holds a {ref.modality} encoder, not a {modality} one; pass it with "
                                 f"{'--lightcurve-model' if ref.modality == 'lightcurve' else '--model'}")
            return ref
    names = [r.name for r in available_checkpoints(ws) if r.modality == modality]
    raise ModelError(f"no {modality} checkpoint {name!r}; available: {', '.join(names) or 'none'}")


def load_encoder(ref: CheckpointRef, device: str = "cpu"):
    """Load a checkpoint as an :class:`~explorer.models.base.Encoder`."""
    if ref.modality == "image":
        from explorer.models.image_encoder import load_image_encoder

        return load_image_encoder(ref.path, device=device)
    if ref.modality == "lightcurve":
        from explorer.models.lightcurve_encoder import load_lightcurve_encoder

        return load_lightcurve_encoder(ref.path, device=device)
    raise ModelError(f"{ref.path}: unknown modality {ref.modality!r}")
