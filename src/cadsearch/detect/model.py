"""The localiser network: the transfer model's frozen EfficientNet-Lite body + a small CenterNet-style head and an
object-mask head.

One forward pass of the frozen body per photo (letterboxed to an ``input_size`` square, as
:func:`cadsearch.framing.frame_image` frames the whole photo) gives four maps (:class:`MultiScaleBody`; channels
for lite0): the ends of the stride-4 (24 × S/4 × S/4), stride-8 (40 × S/8), stride-16 (112 × S/16) and stride-32
(320 × S/32) stages. The box head (:class:`CenterHead`) upsamples the stride-32 map, adds it to the stride-16 one
(FPN-style) and predicts on the stride-16 grid, per cell (Zhou et al., "Objects as Points", 2019, class-agnostic):

- ``heat`` (B, 1, h, w): logit that an object's box centre falls in the cell;
- ``size`` (B, 2, h, w): the box's (log width, log height) as fractions of the input side;
- ``offset`` (B, 2, h, w): the centre's sub-cell position (x, y) in [0, 1) cells.

The mask head (:class:`MaskHead`) has a trunk like the box head's (stride 32 upsampled onto stride 16, two 3 × 3
convolutions), decodes it back up to stride 4 (FPN-style: upsample, add the body's stride-8 then stride-4 maps) and
predicts

- ``mask`` (B, 1, S/4, S/4): logit that the pixel belongs to an object of the library's kinds (class-agnostic
  foreground; stride 4 so that a chair's thin legs survive).

Only the heads are trained, together but independently (no shared weights), so that training can keep each head's
best epoch (the box head overfits the cached composites earlier than the mask head). :class:`DetectorNet` = body +
heads; it is what is exported to ONNX (:func:`export_detector_onnx`) and run at inference, so the body is never
evaluated in torch eager mode there (slow: see :mod:`cadsearch.models`). A net without a mask head (checkpoints from
before it existed) returns three maps.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from cadsearch.models.transfer import FrozenBackbone
from cadsearch.workspace import atomic_write_bytes

__all__ = ["MultiScaleBody", "CenterHead", "MaskHead", "DetectorNet", "export_detector_onnx", "STRIDE",
           "MASK_STRIDE", "MEAN", "STD"]  # fmt: skip

#: Output grid stride of the box head, input pixels per cell.
STRIDE = 16
#: Output grid stride of the mask head.
MASK_STRIDE = 4
#: EfficientNet-Lite's input normalisation ([-1, 1]), as the transfer model's.
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)


class MultiScaleBody(nn.Module):
    """The frozen body up to the stride-32 stage, returning the stride-4, 8, 16 and 32 maps.

    Input (B, 3, S, S) normalised with :data:`MEAN`/:data:`STD`; output ``(c4 (B, C4, S/4, S/4), c8 (B, C8, S/8,
    S/8), c16 (B, C16, S/16, S/16), c32 (B, C32, S/32, S/32))``, :attr:`channels` = (C4, C8, C16, C32). S is fixed
    at construction (static "same" padding, as for ONNX export).
    """

    def __init__(self, backbone: str = "lite0", input_size: int = 256) -> None:
        super().__init__()
        self.body = FrozenBackbone(backbone, "stride32", input_size)
        outs = [b._bn2.num_features for b in self.body.blocks]
        stage_ends = [i for i in range(len(outs)) if i == len(outs) - 1 or outs[i + 1] != outs[i]]
        # ends of the stride-4, stride-8 and stride-16 stages (the last as FrozenBackbone's "stride16")
        self.taps = (stage_ends[1], stage_ends[2], stage_ends[4])
        self.channels = tuple(outs[i] for i in self.taps) + (outs[-1],)
        self.input_size = input_size

    def train(self, mode: bool = True):
        return super().train(False)  # frozen: BN statistics never move

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.body.stem(x)
        taps = []
        for i, block in enumerate(self.body.blocks):
            x = block(x)
            if i in self.taps:
                taps.append(x)
        c4, c8, c16 = taps
        return c4, c8, c16, x


class CenterHead(nn.Module):
    """Trainable head: (c16, c32) maps → ``heat``, ``size``, ``offset`` on the stride-16 grid (see module doc)."""

    def __init__(self, channels: tuple[int, int] = (112, 320), width: int = 64) -> None:
        super().__init__()
        c16, c32 = channels
        self.lateral16 = nn.Sequential(nn.Conv2d(c16, width, 1, bias=False), nn.BatchNorm2d(width))
        self.lateral32 = nn.Sequential(nn.Conv2d(c32, width, 1, bias=False), nn.BatchNorm2d(width))
        self.trunk = nn.Sequential(
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=2, dilation=2, bias=False),  # a wider view for large objects
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        self.heat = nn.Conv2d(width, 1, 1)
        self.size = nn.Conv2d(width, 2, 1)
        self.offset = nn.Conv2d(width, 2, 1)
        # CenterNet's prior: start with a low object probability so the focal loss is not swamped at first
        nn.init.constant_(self.heat.bias, -2.19)

    def features(self, c16: torch.Tensor, c32: torch.Tensor) -> torch.Tensor:
        """The trunk's features (B, width, S/16, S/16), which the mask head decodes too."""
        top = F.interpolate(self.lateral32(c32.float()), size=c16.shape[-2:], mode="nearest")
        return self.trunk(self.lateral16(c16.float()) + top)

    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Trunk features → ``(heat logits, size, offset)``."""
        return self.heat(x), self.size(x), torch.sigmoid(self.offset(x))

    def forward(self, c16: torch.Tensor, c32: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.predict(self.features(c16, c32))


def _conv_bn(cin: int, cout: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout))


class MaskHead(nn.Module):
    """Trainable object-mask head: the body's (c4, c8, c16, c32) → foreground logits (B, 1, S/4, S/4).

    Its own trunk on the stride-16 grid (as :class:`CenterHead`'s: stride 32 upsampled + stride 16, 3 × 3 and dilated
    3 × 3 convolutions, ``width`` channels), then FPN-style, two steps: → 1 × 1 to ``width8`` channels, bilinear
    × 2, + the stride-8 map (1 × 1 lateral), 3 × 3 conv; then → 1 × 1 to ``width4``, × 2, + the stride-4 map,
    3 × 3 conv; 1 × 1 → one logit. Narrow at the fine grids (the 64 × 64 grid of a 256 input dominates the cost).
    """

    def __init__(
        self,
        channels: tuple[int, int, int, int] = (24, 40, 112, 320),
        width: int = 64,
        width8: int = 32,
        width4: int = 16,
    ) -> None:
        super().__init__()
        c4, c8, c16, c32 = channels
        self.context = CenterHead((c16, c32), width)
        # only the trunk of this CenterHead is used: its box outputs are dropped (no gradient, never exported)
        del self.context.heat, self.context.size, self.context.offset
        self.reduce16 = _conv_bn(width, width8, 1)
        self.lateral8 = _conv_bn(c8, width8, 1)
        self.smooth8 = nn.Sequential(nn.ReLU(inplace=True), _conv_bn(width8, width8, 3), nn.ReLU(inplace=True))
        self.reduce8 = _conv_bn(width8, width4, 1)
        self.lateral4 = _conv_bn(c4, width4, 1)
        self.smooth4 = nn.Sequential(nn.ReLU(inplace=True), _conv_bn(width4, width4, 3), nn.ReLU(inplace=True))
        self.logit = nn.Conv2d(width4, 1, 1)
        nn.init.constant_(self.logit.bias, -1.5)  # most pixels are background: start at p ≈ 0.18

    def forward(self, c4: torch.Tensor, c8: torch.Tensor, c16: torch.Tensor, c32: torch.Tensor) -> torch.Tensor:
        trunk = self.context.features(c16, c32)
        x = F.interpolate(self.reduce16(trunk), size=c8.shape[-2:], mode="bilinear", align_corners=False)
        x = self.smooth8(x + self.lateral8(c8.float()))
        x = F.interpolate(self.reduce8(x), size=c4.shape[-2:], mode="bilinear", align_corners=False)
        x = self.smooth4(x + self.lateral4(c4.float()))
        return self.logit(x)


class DetectorNet(nn.Module):
    """Body + heads: (B, 3, S, S) normalised image → ``(heat logits, size, offset, mask logits)`` (see the module
    doc); without the mask head (``mask=False``: old checkpoints) only the first three."""

    def __init__(self, backbone: str = "lite0", input_size: int = 256, width: int = 64, mask: bool = True) -> None:
        super().__init__()
        self.body = MultiScaleBody(backbone, input_size)
        self.head = CenterHead(self.body.channels[2:], width)
        self.mask_head = MaskHead(self.body.channels, width) if mask else None
        self.input_size = input_size

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with torch.no_grad():
            c4, c8, c16, c32 = self.body(x)
        out = self.head(c16, c32)
        if self.mask_head is None:
            return out
        return (*out, self.mask_head(c4, c8, c16, c32))

    def head_state_dict(self) -> dict[str, torch.Tensor]:
        """Only the trained weights (the body is rebuilt from its package)."""
        return {k: v for k, v in self.state_dict().items() if k.startswith(("head.", "mask_head."))}


def _export(module: nn.Module, input_size: int, path: Path, outputs: list[str]) -> Path:
    buf = io.BytesIO()
    module.eval()
    # The legacy TorchScript exporter handles the static-padding convolutions (as models.onnx_runtime does).
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (torch.zeros(1, 3, input_size, input_size),),
            buf,
            input_names=["image"],
            output_names=outputs,
            dynamic_axes={"image": {0: "batch"}} | {name: {0: "batch"} for name in outputs},
            opset_version=17,
            dynamo=False,
        )
    atomic_write_bytes(path, buf.getvalue())
    return path


def export_detector_onnx(net: DetectorNet, path: str | Path) -> Path:
    """Export body + heads ((B, 3, S, S) → ``heat``, ``size``, ``offset`` and, with a mask head, ``mask``) to ONNX
    at ``path``, atomically."""
    outputs = ["heat", "size", "offset"] + (["mask"] if net.mask_head is not None else [])
    return _export(net, net.input_size, Path(path), outputs)


def export_body_onnx(body: MultiScaleBody, path: str | Path) -> Path:
    """Export the frozen body alone ((B, 3, S, S) → ``c4``, ``c8``, ``c16``, ``c32``), for caching training
    features."""
    return _export(body, body.input_size, Path(path), ["c4", "c8", "c16", "c32"])
