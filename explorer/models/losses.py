"""Self-supervised losses: NT-Xent (SimCLR) and VICReg, on batches of paired embeddings ``(n, d)``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["nt_xent", "vicreg"]


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
