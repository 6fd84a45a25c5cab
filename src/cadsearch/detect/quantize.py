"""An 8-bit copy of the detector's ONNX graph: the localiser runs it on the CPU in about 0.7 of the time.

``cadsearch train detector`` ends by writing, beside ``detector.onnx``:

- ``detector-int8.onnx``: the same graph statically quantised by onnxruntime (QDQ: 8-bit weights per output
  channel, 8-bit activations with ranges calibrated on :data:`CALIBRATION_COMPOSITES` training composites). The
  stem and the body's blocks up to the end of its stride-4 stage stay in 32-bit floats: on the 65 room photos
  quantising them too moved the heat map twice as much (mean change at cells of heat > 0.2: 0.020 against 0.011)
  and cost three of the 17 large room chairs the 32-bit graph found at the default threshold (``BENCHMARKS.md``, "An
  8-bit localiser"), while keeping them costs only a little of the speed;
- ``detector-int8-check.npz``: one calibration square, the 32-bit graph's heat and mask probabilities on it, and the
  SHA-256 of the ``detector.onnx`` it was made from.

:func:`load_int8_session` (what :class:`~cadsearch.detect.localiser.Localiser` calls) opens the 8-bit graph only
when it was made from today's ``detector.onnx`` and, run on the stored square, still agrees with the 32-bit outputs
(:data:`CHECK_MAX_HEAT_CHANGE`, :data:`CHECK_MEAN_MASK_CHANGE`). The check runs on the machine that searches: 8-bit
kernels differ between CPUs (onnxruntime's unsigned-by-signed products may saturate on x86 CPUs without VNNI), so a
graph that is right here may not be right there; the localiser then runs the 32-bit graph, as before this module.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cadsearch.detect.localiser import input_tensor, letterbox
from cadsearch.models.onnx_runtime import cpu_session
from cadsearch.workspace import atomic_open, file_fingerprint

__all__ = [
    "INT8_ONNX",
    "INT8_CHECK",
    "CALIBRATION_COMPOSITES",
    "quantize_detector",
    "load_int8_session",
    "calibration_squares",
    "full_precision_nodes",
]

#: The 8-bit graph's file name, beside ``detector.onnx``.
INT8_ONNX = "detector-int8.onnx"
#: The file that lets a machine check the 8-bit graph against the 32-bit one (see the module doc).
INT8_CHECK = "detector-int8-check.npz"
#: Training composites whose activations set the 8-bit ranges. 64 and 256 gave the same heat maps on the room
#: photos (mean change at hot cells 0.0203 and 0.0197, all layers quantised).
CALIBRATION_COMPOSITES = 64
#: Largest change of the heat map's probability, at any cell of the check square, that the 8-bit graph may make.
#: On this machine the largest change over all cells of the 65 room photos was 0.049-0.050 (two detectors).
CHECK_MAX_HEAT_CHANGE = 0.1
#: Largest mean change of the mask probability over the check square (0.0031-0.0038 over the room photos here).
CHECK_MEAN_MASK_CHANGE = 0.02


def full_precision_nodes(node_names: Sequence[str], last_block: int) -> list[str]:
    """The nodes of the body's stem and of its blocks ``0 … last_block`` (the stride-4 stage), by ONNX node name
    (``/body/stem/...``, ``/body/blocks.N/...``, as the exporter names the modules): these stay in 32-bit floats.

    Raises:
        ValueError: no stem node among ``node_names`` (the graph is not the detector this module knows).
    """
    keep = []
    for name in node_names:
        if not name.startswith("/body/"):
            continue
        block = re.search(r"/blocks\.(\d+)/", name)
        if "/stem/" in name or (block is not None and int(block.group(1)) <= last_block):
            keep.append(name)
    if not any("/stem/" in name for name in keep):
        raise ValueError("the detector's graph has no /body/stem/ nodes: not the exported DetectorNet")
    return keep


def calibration_squares(cutouts: Sequence[Any], photos: Any, input_size: int, n: int = CALIBRATION_COMPOSITES,
                        seed: int = 0, comp: Any = None) -> np.ndarray:  # fmt: skip
    """``n`` training composites (:func:`~cadsearch.detect.composites.make_composite` of ``cutouts`` over the
    :class:`~cadsearch.detect.composites.BackgroundPhotos` ``photos``, seeded), letterboxed as the localiser sees a
    photo → (n, S, S, 3) uint8."""
    from cadsearch.detect.composites import CompositeConfig, make_composite

    rng = np.random.default_rng([seed, 8])
    squares = []
    for _ in range(n):
        image, _boxes = make_composite(rng, cutouts, photos, comp or CompositeConfig())
        squares.append(letterbox(image, input_size)[0])
    return np.stack(squares)


def _probabilities(session, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(heat, mask) sigmoid probabilities of one run of a detector session on the (B, 3, S, S) input ``x``."""
    names = [o.name for o in session.get_outputs()]
    outs = dict(zip(names, session.run(None, {"image": x}), strict=True))
    sigmoid = lambda a: 1.0 / (1.0 + np.exp(-a.astype(np.float64)))  # noqa: E731
    return sigmoid(outs["heat"]), (sigmoid(outs["mask"]) if "mask" in outs else None)


def changes(reference: tuple[np.ndarray, np.ndarray | None], other: tuple[np.ndarray, np.ndarray | None]
            ) -> tuple[float, float]:  # fmt: skip
    """(largest heat change, mean mask change) between two :func:`_probabilities` results (mask change 0 when
    there is no mask head)."""
    heat = float(np.abs(other[0] - reference[0]).max())
    mask = 0.0 if reference[1] is None else float(np.abs(other[1] - reference[1]).mean())
    return heat, mask


def quantize_detector(folder: str | Path, squares: np.ndarray, last_full_precision_block: int) -> Path:
    """Write :data:`INT8_ONNX` and :data:`INT8_CHECK` beside ``folder/detector.onnx`` (atomically; any earlier pair
    is removed first, so a failure leaves none).

    Args:
        folder: the detector's folder (``checkpoints/detector``).
        squares: (n, S, S, 3) uint8 calibration squares (:func:`calibration_squares`); the first is also the check
            square.
        last_full_precision_block: the body's last block kept in 32-bit floats (the end of its stride-4 stage,
            :attr:`cadsearch.detect.model.MultiScaleBody.taps` ``[0]``).

    Returns:
        The 8-bit graph's path.
    """
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    folder = Path(folder)
    source = folder / "detector.onnx"
    for name in (INT8_ONNX, INT8_CHECK):
        (folder / name).unlink(missing_ok=True)
    inputs = [input_tensor(s[None]) for s in squares]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.rows = iter(inputs)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self.rows, None)
            return None if x is None else {"image": x}

    with tempfile.TemporaryDirectory(dir=folder, prefix=".int8-") as tmp:
        prepared, quantised = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        quant_pre_process(str(source), str(prepared))
        names = [node.name for node in onnx.load(str(prepared)).graph.node]
        quantize_static(str(prepared), str(quantised), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=full_precision_nodes(names, last_full_precision_block))  # fmt: skip
        reference = _probabilities(cpu_session(source, 1), inputs[0])
        check: dict[str, Any] = {"square": squares[0], "heat": reference[0].astype(np.float32),
                                 "fp32_sha256": np.array(file_fingerprint(source))}  # fmt: skip
        if reference[1] is not None:
            check["mask"] = reference[1].astype(np.float32)
        with atomic_open(folder / INT8_CHECK) as f:
            np.savez_compressed(f, **check)
        os.replace(quantised, folder / INT8_ONNX)
    return folder / INT8_ONNX


def load_int8_session(folder: str | Path, threads: int = 1):
    """The 8-bit graph of ``folder`` as an onnxruntime session, or None when there is none, it was made from another
    ``detector.onnx``, it cannot be read, or on this CPU it does not agree with the 32-bit outputs stored beside it
    (module doc)."""
    folder = Path(folder)
    path, check_path, source = folder / INT8_ONNX, folder / INT8_CHECK, folder / "detector.onnx"
    if not (path.is_file() and check_path.is_file() and source.is_file()):
        return None
    try:
        with np.load(check_path) as check:
            if str(check["fp32_sha256"]) != file_fingerprint(source):
                return None
            reference = (check["heat"].astype(np.float64),
                         check["mask"].astype(np.float64) if "mask" in check else None)  # fmt: skip
            square = check["square"]
        session = cpu_session(path, threads)
        heat, mask = changes(reference, _probabilities(session, input_tensor(square[None])))
    except Exception:  # noqa: BLE001 - a broken 8-bit copy means the 32-bit graph, never a failed search
        return None
    if heat > CHECK_MAX_HEAT_CHANGE or mask > CHECK_MEAN_MASK_CHANGE:
        return None
    return session
