"""Heads that sit on an encoder's embedding: the SSL projection MLP and a classification head."""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["ClassificationHead", "ProjectionHead"]


class ProjectionHead(nn.Module):
    """MLP mapping embeddings to the space the contrastive loss compares (SimCLR's ``g``, Chen et al. 2020).

    ``(n, in_dim) -> (n, out_dim)``; ``layers`` linear layers with BatchNorm + ReLU between them. The loss is
    computed on its output while the embedding *before* it is kept: that one holds more information
    (Chen et al. 2020, §4.2).
    """

    def __init__(self, in_dim: int = 128, hidden_dim: int = 512, out_dim: int = 128, layers: int = 2) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        d = in_dim
        for _ in range(layers - 1):
            mods += [nn.Linear(d, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True)]
            d = hidden_dim
        mods.append(nn.Linear(d, out_dim))
        self.net = nn.Sequential(*mods)

    def forward(self, x: Tensor) -> Tensor:
        """``(n, in_dim) -> (n, out_dim)``."""
        return self.net(x)


class ClassificationHead(nn.Module):
    """Linear (or one-hidden-layer) classifier on embeddings, for fine-tuning on user labels.

    ``(n, in_dim) -> (n, n_classes)`` logits. ``hidden_dim=0`` gives a plain linear probe.
    """

    def __init__(self, in_dim: int, n_classes: int, hidden_dim: int = 0, dropout: float = 0.1) -> None:
        super().__init__()
        if hidden_dim:
            self.net = nn.Sequential(
                nn.Dropout(dropout),
                nn.Linear(in_dim, hidden_dim),
                nn.ReLU(inplace=True),
                nn.Dropout(dropout),
                nn.Linear(hidden_dim, n_classes),
            )
        else:
            self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, n_classes))

    def forward(self, x: Tensor) -> Tensor:
        """``(n, in_dim) -> (n, n_classes)`` logits."""
        return self.net(x)
