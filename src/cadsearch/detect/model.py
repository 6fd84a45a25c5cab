"""The localiser network: the transfer model's frozen EfficientNet-Lite body + a small CenterNet-style head.

One forward pass of the frozen body per photo (letterboxed to an ``input_size`` square, as
:func:`cadsearch.framing.frame_image` frames the whole photo) gives two maps: the end of the stride-16 stage
(112 × S/16 × S/16 for lite0) and of the stride-32 stage (320 × S/32 × S/32). The head (:class:`CenterHead`, the
only trained part) upsamples the stride-32 map, adds it to the stride-16 one (FPN-style) and predicts on the
stride-16 grid, per cell (Zhou et al., "Objects as Points", 2019, class-agnostic):

- ``heat`` (B, 1, h, w): logit that an object's box centre falls in the cell;
- ``size`` (B, 2, h, w): the box's (log width, log height) as fractions of the input side;
- ``offset`` (B, 2, h, w): the centre's sub-cell position (x, y) in [0, 1) cells.

:class:`DetectorNet` = body + head; it is what is exported to ONNX (:func:`export_detector_onnx`) and run at
inference, so the body is never evaluated in torch eager mode there (slow: see :mod:`cadsearch.models`).
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

__all__ = ["MultiScaleBody", "CenterHead", "DetectorNet", "export_detector_onnx", "STRIDE", "MEAN", "STD"]

#: Output grid stride of the head, input pixels per cell.
STRIDE = 16
#: EfficientNet-Lite's input normalisation ([-1, 1]), as the transfer model's.
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)


class MultiScaleBody(nn.Module):
    """The frozen body up to the stride-32 stage, returning the stride-16 and stride-32 maps.

    Input (B, 3, S, S) normalised with :data:`MEAN`/:data:`STD`; output ``(c16 (B, C16, S/16, S/16),
    c32 (B, C32, S/32, S/32))``. S is fixed at construction (static "same" padding, as for ONNX export).
    """

    def __init__(self, backbone: str = "lite0", input_size: int = 256) -> None:
        super().__init__()
        self.body = FrozenBackbone(backbone, "stride32", input_size)
        outs = [b._bn2.num_features for b in self.body.blocks]
        stage_ends = [i for i in range(len(outs)) if i == len(outs) - 1 or outs[i + 1] != outs[i]]
        self.tap = stage_ends[4]  # end of the stride-16 (112-channel) stage, as FrozenBackbone's "stride16"
        self.channels = (outs[self.tap], outs[-1])
        self.input_size = input_size

    def train(self, mode: bool = True):
        return super().train(False)  # frozen: BN statistics never move

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.body.stem(x)
        c16 = x
        for i, block in enumerate(self.body.blocks):
            x = block(x)
            if i == self.tap:
                c16 = x
        return c16, x


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

    def forward(self, c16: torch.Tensor, c32: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        top = F.interpolate(self.lateral32(c32.float()), size=c16.shape[-2:], mode="nearest")
        x = self.trunk(self.lateral16(c16.float()) + top)
        return self.heat(x), self.size(x), torch.sigmoid(self.offset(x))


class DetectorNet(nn.Module):
    """Body + head: (B, 3, S, S) normalised image → ``(heat logits, size, offset)`` as :class:`CenterHead`."""

    def __init__(self, backbone: str = "lite0", input_size: int = 256, width: int = 64) -> None:
        super().__init__()
        self.body = MultiScaleBody(backbone, input_size)
        self.head = CenterHead(self.body.channels, width)
        self.input_size = input_size

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            c16, c32 = self.body(x)
        return self.head(c16, c32)

    def head_state_dict(self) -> dict[str, torch.Tensor]:
        """Only the trained weights (the body is rebuilt from its package)."""
        return {k: v for k, v in self.state_dict().items() if k.startswith("head.")}


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
    """Export body + head ((B, 3, S, S) → ``heat``, ``size``, ``offset``) to ONNX at ``path``, atomically."""
    return _export(net, net.input_size, Path(path), ["heat", "size", "offset"])


def export_body_onnx(body: MultiScaleBody, path: str | Path) -> Path:
    """Export the frozen body alone ((B, 3, S, S) → ``c16``, ``c32``), for caching training features."""
    return _export(body, body.input_size, Path(path), ["c16", "c32"])
