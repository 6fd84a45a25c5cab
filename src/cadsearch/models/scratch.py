"""The from-scratch CNN: a compact network in the classic spirit (conv → BN → ReLU, pooling, channels growing as
resolution shrinks, global-ish pooling), trained only on rendered views.

At 64 px input: 64 → 32 → 16 → 8 → 4 through four stages of ``width·(1, 2, 4, 8)`` channels; the neck
average-pools the 4×4 map to 2×2 (left/right/top/bottom layout matters for pose) before the heads.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from cadsearch.models.base import ViewNet, pooled_neck
from cadsearch.models.heads import ViewHeads
from cadsearch.models.registry import register_model

__all__ = ["ScratchCNN", "scratch"]


def _conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class ScratchCNN(ViewNet):
    """VGG-style CNN. Input (B, 3, S, S) normalised with ImageNet mean/std; S divisible by 16.

    Args:
        num_classes: training models (classes of the cosine classifier).
        width: channels of the first stage; stages have width × (1, 2, 4, 8).
        depth: convolutions per stage (the first stage always has one: it is the costliest).
        input_size: S in pixels.
        feat_dim: size of the neck's feature vector.
        **head_kwargs: passed to :class:`ViewHeads` (embed_dim, pose_head, cos_scale, ...).
    """

    def __init__(
        self,
        num_classes: int,
        width: int = 32,
        depth: int = 2,
        input_size: int = 64,
        feat_dim: int = 512,
        **head_kwargs,
    ) -> None:
        super().__init__()
        self.input_size = input_size
        layers: list[nn.Module] = []
        cin = 3
        for stage, mult in enumerate((1, 2, 4, 8)):
            cout = width * mult
            for i in range(1 if stage == 0 else depth):
                layers += _conv_bn_relu(cin if i == 0 else cout, cout)
            layers.append(nn.MaxPool2d(2))
            cin = cout
        self.features = nn.Sequential(*layers)
        self.out_channels = cin
        self.neck = pooled_neck(cin, 2, feat_dim)
        self.heads = ViewHeads(feat_dim, num_classes, **head_kwargs)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def first_conv(self) -> nn.Conv2d:
        """The first convolution (its filters are the ones worth looking at)."""
        return self.features[0]

    def feature_layers(self) -> dict[str, nn.Module]:
        """Named layers whose outputs :func:`~cadsearch.models.inspect.write_feature_maps` can show: the ReLU
        outputs, ``conv1`` … ``convN``."""
        relus = [m for m in self.features if isinstance(m, nn.ReLU)]
        return {f"conv{i + 1}": m for i, m in enumerate(relus)}


@register_model
def scratch(num_classes: int, width: int = 32, depth: int = 2, input_size: int = 64, **kwargs) -> ScratchCNN:
    """The default from-scratch CNN (64 px, width 32)."""
    return ScratchCNN(num_classes, width=width, depth=depth, input_size=input_size, **kwargs)
