"""What every cadsearch network shares: ``forward_features`` → ``forward_head`` → outputs, and ``embed``.

A network is a *body* (image (B, 3, S, S) normalised → feature map (B, C, h, w)) followed by a *neck* (map →
feature vector (B, F)) and :class:`~cadsearch.models.heads.ViewHeads` (embedding, cosine logits, pose). The
transfer model trains only neck and heads on cached maps of a frozen body, hence the split.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from cadsearch.models.heads import ViewHeads

__all__ = ["ViewNet"]


class ViewNet(nn.Module):
    """Base class. Subclasses set ``self.neck`` and ``self.heads`` and implement :meth:`forward_features`.

    Class attributes ``mean``/``std`` (RGB, for images scaled to [0, 1]) are the input normalisation; they are
    saved with the weights.
    """

    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    input_size: int = 64
    neck: nn.Module
    heads: ViewHeads

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) normalised images → feature map (B, C, h, w)."""
        raise NotImplementedError

    def forward_head(self, fmap: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Feature map → ``{"embedding", "logits", "pose"}`` (see :class:`ViewHeads`)."""
        return self.heads(self.neck(fmap), labels)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return self.forward_head(self.forward_features(x), labels)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) normalised images → L2-normalised embeddings (B, D)."""
        return self.embed_head(self.forward_features(x))

    def embed_head(self, fmap: torch.Tensor) -> torch.Tensor:
        """Feature map → L2-normalised embeddings (B, D): only what the index needs (no pose, no logits)."""
        return self.heads.embed(self.neck(fmap))

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights a checkpoint must store (all of them, unless a subclass has a frozen part)."""
        return self.state_dict()


def pooled_neck(channels: int, pool: int, out_dim: int, dropout: float = 0.2) -> nn.Sequential:
    """Map (B, C, h, w) → vector (B, out_dim): average-pool to ``pool × pool`` (keeps coarse layout, which pose
    needs), flatten, linear, BN, ReLU, dropout."""
    return nn.Sequential(
        nn.AdaptiveAvgPool2d(pool),
        nn.Flatten(),
        nn.Linear(channels * pool * pool, out_dim),
        nn.BatchNorm1d(out_dim),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
    )
