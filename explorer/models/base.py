"""The encoder interface the embedding pipeline calls, and a generic wrapper for any torch module.

An :class:`Encoder` turns a batch of raw objects of one modality into L2-normalised float32 vectors. The
pipeline never needs to know what is inside: our own CNN, a light-curve transformer, or weights a user
brings (Zoobot, AstroPT, ASTROMER, any ``torch.nn.Module``) wrapped by :class:`TorchEncoder`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from explorer.errors import ModelError

MODALITIES = ("image", "lightcurve")


@runtime_checkable
class Encoder(Protocol):
    """What the embedding pipeline calls.

    Attributes
    ----------
    modality : str
        ``"image"`` or ``"lightcurve"``.
    embedding_dim : int
        Length of each embedding vector.
    name : str
        A version-ish identifier recorded with the embeddings (e.g. ``"first-cnn@3f2a9c1e"``).

    Methods
    -------
    embed(batch) -> numpy.ndarray
        ``(n, embedding_dim)`` float32, each row L2-normalised. For images ``batch`` is float32
        ``(n, B, H, W)`` raw cutouts (NaNs allowed).
    """

    modality: str
    embedding_dim: int
    name: str

    def embed(self, batch: Any) -> np.ndarray:
        """Embed a batch of objects.

        Parameters
        ----------
        batch : Any
            For images, float32 ``(n, B, H, W)`` raw cutouts (NaNs allowed).

        Returns
        -------
        numpy.ndarray
            ``(n, embedding_dim)`` float32, each row L2-normalised.
        """


def l2_normalise(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Divide each row by its L2 norm; rows of zeros stay zero. ``(n, d) -> (n, d)`` float32."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norm, eps)).astype(np.float32, copy=False)


class EmbeddingDimUnknown(ModelError, AttributeError):
    """An encoder's ``embedding_dim`` is asked before its first batch told it.

    Also an ``AttributeError``, so that ``isinstance(encoder, Encoder)`` answers instead of raising (on Python
    3.11 the protocol check calls ``hasattr`` on every member); :class:`TorchEncoder` is registered as an
    :class:`Encoder`, so it still counts as one.
    """


class TorchEncoder:
    """Any ``torch.nn.Module`` plus a preprocessing callable, seen as an :class:`Encoder`.

    Parameters
    ----------
    module : torch.nn.Module
        Maps the preprocessed tensor to ``(n, d)`` features (extra trailing dims are flattened).
    preprocess : callable
        Maps the raw batch to the module's input tensor (on CPU; it is moved to ``device``).
    name : str
        Identifier recorded with the embeddings.
    modality : str
        ``"image"`` or ``"lightcurve"``.
    embedding_dim : int, optional
        Length of the output; found by a dry run on the first call when not given.
    device : str
        Torch device for inference.
    """

    def __init__(
        self,
        module: torch.nn.Module,
        preprocess: Callable[[Any], torch.Tensor],
        name: str,
        modality: str = "image",
        embedding_dim: int | None = None,
        device: str = "cpu",
    ) -> None:
        if modality not in MODALITIES:
            raise ModelError(f"modality {modality!r} is not known; use one of {MODALITIES}")
        self.module = module.eval().to(device)
        self.preprocess = preprocess
        self.name = name
        self.modality = modality
        self.device = device
        self._embedding_dim = embedding_dim

    @property
    def embedding_dim(self) -> int:
        """Length of each embedding vector (found by the first :meth:`embed` when not given)."""
        if self._embedding_dim is None:
            raise EmbeddingDimUnknown(
                f"encoder {self.name!r}: embedding_dim is unknown until the first embed(); "
                "pass embedding_dim= when wrapping the module"
            )
        return self._embedding_dim

    @torch.inference_mode()
    def embed(self, batch: Any) -> np.ndarray:
        """Embed one batch: ``(n, ...) -> (n, embedding_dim)`` float32, L2-normalised."""
        x = self.preprocess(batch)
        out = self.module(x.to(self.device)).float().flatten(1).cpu().numpy()
        if not np.isfinite(out).all():
            raise ModelError(f"encoder {self.name!r} produced NaN/inf embeddings; check the preprocessing")
        if self._embedding_dim is None:
            self._embedding_dim = out.shape[1]
        elif out.shape[1] != self._embedding_dim:
            raise ModelError(
                f"encoder {self.name!r} returned {out.shape[1]} features, expected {self._embedding_dim}"
            )
        return l2_normalise(out)


Encoder.register(TorchEncoder)  # an encoder before its first batch too (its embedding_dim is then unknown)
