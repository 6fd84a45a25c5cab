"""Detect: find every object of the library's kinds in a whole photo (the localiser), trained on the library's renders.

Between ``models`` (it reuses the transfer model's frozen EfficientNet-Lite body) and ``search`` (which frames and
searches each found object):

- :mod:`cadsearch.detect.composites`: training photos made of rendered objects pasted into room photos (rolled
  half the time), exact boxes and visible masks;
- :mod:`cadsearch.detect.model`: the frozen body's stride-4/8/16/32 maps + a CenterNet-style box head and a
  stride-4 object-mask head, ONNX export;
- :mod:`cadsearch.detect.train`: ``cadsearch train detector`` (cached body features, resume, ``best.pt``);
- :mod:`cadsearch.detect.quantize`: the graph's 8-bit copy that the localiser runs where it passes its check;
- :mod:`cadsearch.detect.localiser`: :class:`Localiser` (ONNX inference, peak decoding, NMS) → :class:`Detection`;
  :meth:`Localiser.segment`: the objects' foreground probability over any square of the photo;
- :mod:`cadsearch.detect.masks`: masks framed like the photo and mapped back, IoU, tinting;
- :mod:`cadsearch.detect.pictures`: numbered boxes and tinted masks over photos, the training's report pictures.

Boxes are ``(x0, y0, x1, y1)`` in photo pixels, x right, y down, exclusive ends.
"""

from cadsearch.detect.localiser import DEFAULT_THRESHOLD, Detection, Localiser, box_iou, detector_dir, has_detector, nms

__all__ = [
    "Detection",
    "Localiser",
    "detector_dir",
    "has_detector",
    "box_iou",
    "nms",
    "DEFAULT_THRESHOLD",
    "train_detector",
]


def train_detector(*args, **kwargs):
    """:func:`cadsearch.detect.train.train_detector` (imported on use: it pulls in torch)."""
    from cadsearch.detect.train import train_detector as run

    return run(*args, **kwargs)
