"""Checkpoints on disk: safetensors weights + a JSON config, an architecture registry, and safe loading.

A checkpoint is a folder::

    model.safetensors   the module's state_dict (contiguous tensors, never pickle)
    config.json         architecture, modality, embedding_dim, created, explorer_version, weights_sha256, ...
    extra.safetensors   optional tensors beside the weights (e.g. optimizer state for resuming training)

Writing is atomic (a temporary sibling folder renamed into place), and loading verifies the sha256 recorded
in ``config.json`` so a truncated or swapped weights file is refused with a message naming the file.
Modules are rebuilt by name: ``@register_architecture("first-cnn")`` registers a factory ``config -> nn.Module``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from explorer.errors import ModelError
from explorer.models.base import MODALITIES, Encoder, TorchEncoder

__all__ = [
    "ARCHITECTURES",
    "Encoder",
    "TorchEncoder",
    "build_from_checkpoint",
    "load_checkpoint",
    "load_extra_tensors",
    "register_architecture",
    "save_checkpoint",
]

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
EXTRA = "extra.safetensors"
REQUIRED_KEYS = ("architecture", "modality", "embedding_dim")

#: name -> factory building an untrained module from a checkpoint's config.
ARCHITECTURES: dict[str, Callable[[dict], torch.nn.Module]] = {}

# Modules that register architectures when imported; build_from_checkpoint imports them on demand.
_BUILTIN_MODULES = ("explorer.models.image_encoder", "explorer.models.lightcurve_encoder")


def register_architecture(name: str) -> Callable[[Callable[[dict], torch.nn.Module]], Callable]:
    """Decorator registering ``factory(config) -> nn.Module`` under ``name`` in :data:`ARCHITECTURES`."""

    def decorate(factory: Callable[[dict], torch.nn.Module]) -> Callable[[dict], torch.nn.Module]:
        ARCHITECTURES[name] = factory
        return factory

    return decorate


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _explorer_version() -> str:
    from explorer import __version__

    return __version__


def _plain_tensors(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """Detached, contiguous CPU copies (safetensors refuses shared or strided storage)."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}


def save_checkpoint(
    directory: Path,
    module: torch.nn.Module,
    config: dict,
    *,
    extra_tensors: dict[str, Tensor] | None = None,
    overwrite: bool = False,
    keep: tuple[str, ...] = (),
) -> Path:
    """Write ``module``'s weights and ``config`` to ``directory``, atomically.

    Parameters
    ----------
    directory : Path
        The checkpoint folder to create.
    module : torch.nn.Module
        Its ``state_dict()`` is written to ``model.safetensors``.
    config : dict
        JSON-serialisable; must hold ``architecture``, ``modality`` and ``embedding_dim``. ``created``,
        ``explorer_version`` and ``weights_sha256`` are added.
    extra_tensors : dict of str to Tensor, optional
        Written to ``extra.safetensors`` (e.g. flattened optimizer state); read back with
        :func:`load_extra_tensors`.
    overwrite : bool
        Replace an existing checkpoint folder; otherwise an existing folder raises :class:`ModelError`.
    keep : tuple of str
        Entries of an existing folder (e.g. a training-state subfolder) carried over into the new one.

    Returns
    -------
    Path
        ``directory``.
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    missing = [k for k in REQUIRED_KEYS if k not in config]
    if missing:
        raise ModelError(f"checkpoint config for {directory} lacks {missing}; add them before saving")
    if config["modality"] not in MODALITIES:
        raise ModelError(f"checkpoint config modality {config['modality']!r} must be one of {MODALITIES}")
    if directory.exists() and not overwrite:
        raise ModelError(f"{directory} already exists; pass overwrite=True or choose another folder")
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    try:
        save_file(_plain_tensors(module.state_dict()), tmp / WEIGHTS)
        meta = dict(config)
        meta.update(
            created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            explorer_version=_explorer_version(),
            weights_sha256=_sha256(tmp / WEIGHTS),
        )
        if extra_tensors:
            save_file(_plain_tensors(extra_tensors), tmp / EXTRA)
            meta["extra_sha256"] = _sha256(tmp / EXTRA)
        (tmp / CONFIG).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")
        tmp.chmod(0o755)  # mkdtemp makes 0700/0600: a checkpoint is meant to be shared and shipped
        for f in tmp.iterdir():
            f.chmod(0o644)
        _swap_into_place(tmp, directory, keep)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def _swap_into_place(tmp: Path, directory: Path, keep: tuple[str, ...] = ()) -> None:
    """Rename ``tmp`` to ``directory``; an existing ``directory`` is moved aside first, then deleted.

    Entries named in ``keep`` move from the old folder into ``tmp`` first (renames on one file system).
    """
    old = None
    if directory.exists():
        for name in keep:
            if (directory / name).exists() and name not in (WEIGHTS, CONFIG, EXTRA):
                os.replace(directory / name, tmp / name)
        old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(directory, old)
    os.replace(tmp, directory)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _read_config(directory: Path) -> dict:
    path = directory / CONFIG
    if not directory.is_dir():
        raise ModelError(f"{directory}: no such checkpoint folder; check the path or run `explorer pretrain`")
    if not path.is_file():
        raise ModelError(f"{path}: missing; a checkpoint folder needs {CONFIG} beside {WEIGHTS} (re-save it)")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelError(f"{path}: not valid JSON ({err}); re-save the checkpoint") from err
    if not isinstance(config, dict):
        raise ModelError(f"{path}: expected a JSON object; re-save the checkpoint")
    missing = [k for k in (*REQUIRED_KEYS, "weights_sha256") if k not in config]
    if missing:
        raise ModelError(f"{path}: lacks {missing}; re-save the checkpoint with save_checkpoint()")
    return config


def _looks_like_pickle(path: Path) -> bool:
    """True for a ``torch.save`` zip archive or a raw pickle, False for anything with a safetensors header.

    A safetensors file starts with an 8-byte little-endian header length followed by a JSON object.
    """
    with open(path, "rb") as f:
        head = f.read(9)
    size = path.stat().st_size
    if len(head) == 9 and head[8:9] == b"{" and 8 + int.from_bytes(head[:8], "little") <= size:
        return False
    return head[:2] == b"PK" or head[:1] == b"\x80"


def _load_safetensors(path: Path, expected_sha: str | None) -> dict[str, Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise ModelError(f"{path}: missing; the checkpoint is incomplete, re-save or re-download it")
    if _looks_like_pickle(path):
        raise ModelError(
            f"{path}: is a pickle (torch.save) file, not safetensors; it is not loaded for safety. Convert it: "
            "sd = torch.load(p, weights_only=True); safetensors.torch.save_file(sd, 'model.safetensors')"
        )
    if expected_sha is not None and _sha256(path) != expected_sha:
        raise ModelError(
            f"{path}: sha256 does not match {CONFIG} (file changed, truncated or swapped); "
            "re-save the checkpoint or restore the original file"
        )
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise ModelError(f"{path}: not a readable safetensors file ({err}); re-save the checkpoint") from err


def load_checkpoint(directory: Path, *, architecture: str | None = None) -> tuple[dict[str, Tensor], dict]:
    """Read and verify a checkpoint: ``(state_dict, config)``.

    Parameters
    ----------
    directory : Path
        A folder written by :func:`save_checkpoint`.
    architecture : str, optional
        When given, a checkpoint of another architecture raises :class:`ModelError`.

    Raises
    ------
    ModelError
        Missing/corrupt/truncated weights, a pickle disguised as ``.safetensors``, a ``config.json`` whose
        sha256 does not match the weights, or a checkpoint of another architecture.
    """
    directory = Path(directory)
    config = _read_config(directory)
    if architecture is not None and config["architecture"] != architecture:
        raise ModelError(
            f"{directory / CONFIG}: architecture is {config['architecture']!r}, expected {architecture!r}; "
            "point to a checkpoint of the right model"
        )
    state = _load_safetensors(directory / WEIGHTS, config["weights_sha256"])
    return state, config


def load_extra_tensors(directory: Path) -> dict[str, Tensor]:
    """The ``extra_tensors`` saved with a checkpoint (``{}`` when none), verified against ``config.json``."""
    directory = Path(directory)
    config = _read_config(directory)
    if "extra_sha256" not in config:
        return {}
    return _load_safetensors(directory / EXTRA, config["extra_sha256"])


def _factory_for(name: str, directory: Path) -> Callable[[dict], torch.nn.Module]:
    if name not in ARCHITECTURES:
        for mod in _BUILTIN_MODULES:
            try:
                importlib.import_module(mod)
            except ImportError:
                continue
    if name not in ARCHITECTURES:
        raise ModelError(
            f"{directory / CONFIG}: architecture {name!r} is not registered (known: {sorted(ARCHITECTURES)}); "
            "import the module that defines it or register it with @register_architecture"
        )
    return ARCHITECTURES[name]


def build_from_checkpoint(directory: Path, *, architecture: str | None = None) -> torch.nn.Module:
    """Rebuild the module a checkpoint holds (factory from :data:`ARCHITECTURES`, weights loaded, eval mode).

    Raises
    ------
    ModelError
        As :func:`load_checkpoint`, plus an unknown architecture or weights that do not fit the module.
    """
    directory = Path(directory)
    state, config = load_checkpoint(directory, architecture=architecture)
    module = _factory_for(config["architecture"], directory)(config)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise ModelError(
            f"{directory / WEIGHTS}: weights do not fit architecture {config['architecture']!r} ({first}); "
            "the config and weights come from different models, re-save the checkpoint"
        ) from err
    return module.eval()
