"""Self-supervised losses: NT-Xent (SimCLR), NNCLR and VICReg, on batches of paired embeddings ``(n, d)``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["SupportSet", "nnclr", "nt_xent", "vicreg"]


def nt_xent(z1: Tensor, z2: Tensor, temperature: float = 0.2) -> Tensor:
    """Normalised-temperature cross entropy (SimCLR; Chen et al. 2020, ICML, arXiv:2002.05709).

    Each of the ``2n`` views must pick out its partner among the other ``2n - 1`` by cosine similarity.

    Parameters
    ----------
    z1, z2 : Tensor
        ``(n, d)`` projections of two views of the same ``n`` images (row i of each is a positive pair).
    temperature : float
        Softmax temperature; 0.1–0.5 is usual, small batches on small data sets like 0.1–0.2.

    Returns
    -------
    Tensor
        Scalar loss (mean over the ``2n`` anchors); ``log(2n - 1)`` for uninformative embeddings.
    """
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


def nnclr(z1: Tensor, z2: Tensor, nn1: Tensor, nn2: Tensor, temperature: float = 0.1) -> Tensor:
    """Nearest-neighbour contrastive loss (NNCLR; Dwibedi et al. 2021, ICCV, arXiv:2104.14548).

    Each view's positive is not its own partner but the partner's nearest neighbour among earlier
    projections (:class:`SupportSet`): objects are pulled towards *other* objects that look like them, which
    groups a class more than telling single images apart does, and on a small data set that grouping is what
    instance discrimination alone runs out of.

    Parameters
    ----------
    z1, z2 : Tensor
        ``(n, d)`` projections of two views of the same ``n`` images.
    nn1, nn2 : Tensor
        ``(n, d)`` nearest neighbours of ``z1`` and ``z2`` in the support set (no gradient flows into them).
    temperature : float

    Returns
    -------
    Tensor
        Scalar: the mean of ``nn1[i]`` picking ``z2[i]`` among ``z2`` and ``nn2[i]`` picking ``z1[i]`` among ``z1``.
    """
    z1, z2 = F.normalize(z1.float(), dim=1), F.normalize(z2.float(), dim=1)
    nn1, nn2 = F.normalize(nn1.float(), dim=1), F.normalize(nn2.float(), dim=1)
    target = torch.arange(z1.shape[0], device=z1.device)
    return 0.5 * (
        F.cross_entropy(nn1 @ z2.T / temperature, target) + F.cross_entropy(nn2 @ z1.T / temperature, target)
    )


class SupportSet:
    """First-in-first-out store of recent projections and the images they came from (NNCLR's support set).

    :meth:`nearest` skips entries of the same image: with a support set as large as a small data set, an
    image's own projection from the last epoch would otherwise be its nearest neighbour and NNCLR would
    reduce to plain NT-Xent.

    Parameters
    ----------
    size : int
        Entries kept.
    dim : int
        Projection length.
    device : str
    """

    def __init__(self, size: int, dim: int, device: str | torch.device = "cpu") -> None:
        if size < 1:
            raise ValueError(f"support set size {size}; use at least 1")
        self.z = torch.zeros(size, dim, device=device)
        self.ids = torch.full((size,), -1, dtype=torch.long, device=device)
        self.filled = 0
        self.head = 0

    def __len__(self) -> int:
        return self.filled

    def add(self, z: Tensor, ids: Tensor) -> None:
        """Store ``(n, d)`` projections (normalised, detached) of images ``ids`` ``(n,)``, oldest out first."""
        z = F.normalize(z.detach().float(), dim=1)[-len(self.z) :]
        ids = ids[-len(self.z) :]
        at = (self.head + torch.arange(len(z), device=z.device)) % len(self.z)
        self.z[at], self.ids[at] = z, ids.to(self.ids)
        self.head = int((self.head + len(z)) % len(self.z))
        self.filled = min(len(self.z), self.filled + len(z))

    def nearest(self, z: Tensor, ids: Tensor) -> Tensor:
        """``(n, d)`` → the nearest stored projection (cosine) of another image, for each row."""
        if self.filled == 0:
            raise ValueError("the support set is empty; add projections first")
        bank, bank_ids = self.z[: self.filled], self.ids[: self.filled]
        sim = F.normalize(z.detach().float(), dim=1) @ bank.T
        sim = sim.masked_fill(bank_ids[None, :] == ids.to(bank_ids)[:, None], float("-inf"))
        return bank[sim.argmax(1)]

    def state(self) -> dict[str, Tensor]:
        """Tensors that restore it exactly (for resumable training)."""
        return {
            "support.z": self.z,
            "support.ids": self.ids,
            "support.pos": torch.tensor([self.filled, self.head]),
        }

    def load(self, tensors: dict[str, Tensor]) -> None:
        """Inverse of :meth:`state`."""
        self.z.copy_(tensors["support.z"])
        self.ids.copy_(tensors["support.ids"])
        self.filled, self.head = (int(v) for v in tensors["support.pos"])


def vicreg(
    z1: Tensor, z2: Tensor, sim_weight: float = 25.0, var_weight: float = 25.0, cov_weight: float = 1.0
) -> Tensor:
    """Variance-invariance-covariance regularisation (VICReg; Bardes, Ponce & LeCun 2022, arXiv:2105.04906).

    ``(n, d), (n, d) -> ()``: mean squared distance between the views, a hinge keeping each dimension's
    standard deviation above 1, and a penalty on off-diagonal covariance. No negatives, no momentum encoder.
    """
    z1, z2 = z1.float(), z2.float()
    n, d = z1.shape
    inv = F.mse_loss(z1, z2)
    var = 0.0
    cov = 0.0
    for z in (z1, z2):
        z = z - z.mean(0)
        std = torch.sqrt(z.var(0) + 1e-4)
        var = var + F.relu(1 - std).mean() / 2
        c = (z.T @ z) / max(n - 1, 1)
        off = c - torch.diag(torch.diag(c))
        cov = cov + off.pow(2).sum() / d / 2
    return sim_weight * inv + var_weight * var + cov_weight * cov
