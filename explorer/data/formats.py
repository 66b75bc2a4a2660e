"""One registry of readers per kind of input (catalogue, images, light curves) and format, astropy-style.

A reader is registered with :func:`register_reader` under a kind and a format name, with the file endings that
identify it. :func:`read` picks the reader by ``format=`` or by the path's ending, and lists the formats that
exist when asked for one that does not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from explorer.errors import DataError

KINDS = ("catalog", "images", "lightcurves")


@dataclass(frozen=True)
class ReaderSpec:
    """A registered reader: kind, format name, function, file endings, identifier (optional), description."""
    kind: str
    name: str
    func: Callable
    extensions: tuple[str, ...]
    identifier: Callable[[Path], bool] | None
    description: str


_READERS: dict[tuple[str, str], ReaderSpec] = {}


def register_reader(kind: str, name: str, *, extensions: tuple[str, ...] = (),
                    identifier: Callable[[Path], bool] | None = None, description: str = ""):
    """Decorator registering ``func(path, **options)`` as the reader of ``kind`` in format ``name``."""
    if kind not in KINDS:
        raise ValueError(f"unknown reader kind {kind!r}; one of {KINDS}")

    def decorate(func):
        _READERS[(kind, name)] = ReaderSpec(kind, name, func, tuple(e.lower() for e in extensions), identifier,
                                           description or (func.__doc__ or "").strip().splitlines()[0])
        return func

    return decorate


def formats(kind: str) -> dict[str, str]:
    """Registered format names of ``kind`` with a one-line description each."""
    _load_builtin_readers()
    return {spec.name: spec.description for (k, _), spec in sorted(_READERS.items()) if k == kind}


def identify(kind: str, path: Path) -> str:
    """The format of ``path`` for ``kind``, from identifiers first and then the file ending."""
    _load_builtin_readers()
    candidates = [s for (k, _), s in _READERS.items() if k == kind]
    for spec in candidates:
        if spec.identifier is not None and spec.identifier(path):
            return spec.name
    name = path.name.lower()
    for spec in candidates:
        if any(name.endswith(ext) for ext in spec.extensions):
            return spec.name
    raise DataError(f"{path}: cannot tell the {kind} format from the name; pass a format, one of: "
                    f"{', '.join(formats(kind))}")


def read(kind: str, path: str | Path, format: str | None = None, **options):
    """Read ``path`` as ``kind`` with the reader registered for ``format`` (guessed when ``None``)."""
    _load_builtin_readers()
    path_obj = Path(path)
    name = format or identify(kind, path_obj)
    spec = _READERS.get((kind, name))
    if spec is None:
        raise DataError(f"no {kind} reader for format {name!r}; available: {', '.join(formats(kind))}")
    return spec.func(path, **options)


def _load_builtin_readers() -> None:
    from explorer.data import readers_catalog, readers_images, readers_lightcurves  # noqa: F401
