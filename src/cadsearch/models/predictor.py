"""``Predictor``: loads a checkpoint once; ``predict(images)`` → embeddings, class probabilities and pose.

SamPredictor-style: construction does the costly work (rebuild the network, load weights, open the ONNX body of
a transfer model), ``predict`` is numpy in, numpy out. Preprocessing comes from the checkpoint: the
object-centred square (:mod:`cadsearch.framing`: the photo padded to a square, or a given square around
the object), resized to the input size, and the mean/std.

Device: a predictor runs on the CPU unless given another ``device`` (``auto`` | ``cuda`` | ``cuda:N``,
:func:`~cadsearch.models.device.resolve_device`). Query-time search keeps the CPU on purpose: one photo is a batch of
one or two images, too little work to pay for a GPU (its context costs seconds and hundreds of MB per process, the
copies to and from it a large share of each call), and the search's latency was measured on the CPU. Batch jobs ask
for ``auto``: ``cadsearch index`` embeds every view on the GPU when there is one. Preprocessing always runs on the
CPU; on a GPU the network runs in fp32 (embeddings match the CPU's to a cosine above 0.999, so an index built on
a GPU answers CPU queries as one built on the CPU), and the transfer body runs in torch there (ONNX is CPU-only).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cadsearch.errors import InputError
from cadsearch.framing import Frame
from cadsearch.models.data import preprocess_images
from cadsearch.models.device import resolve_device
from cadsearch.models.heads import angles_from_directions
from cadsearch.models.registry import create_model, list_models
from cadsearch.models.view_maps import view_maps

__all__ = ["Prediction", "Predictor", "load_predictor", "read_checkpoint", "trained_categories", "POSE_MODES"]

#: How many distinct viewpoints of the pose head's distribution a prediction lists (:attr:`Prediction.pose_modes`).
POSE_MODES = 3


@dataclass
class Prediction:
    """Outputs for N images.

    Attributes:
        embedding: (N, D) float32, L2-normalised (cosine = inner product; for a vector index of views).
        class_probs: (N, C) float32, softmax over the predictor's ``model_ids``.
        polar_deg: (N,) float64, θ from +Y in [0, 180].
        azimuth_deg: (N,) float64, φ from +Z towards +X in [0, 360).
        mirror_embedding: (N, D) float32, L2-normalised embedding of each image's mirror image (left-right), or
            None when the mirror images were not run (``flip_pose`` off). Search uses it for the category vote.
        pose_modes: (N, k, 3) float64, each image's :data:`POSE_MODES` most probable distinct viewpoints as
            (polar_deg, azimuth_deg, mass), the first being (``polar_deg``, ``azimuth_deg``)
            (:meth:`~cadsearch.models.heads.PoseBinsHead.modes`); None for a pose head without a distribution.
            Registration tries them as starting poses.
        view_map: (N, M) float32 view maps of the images as given (:mod:`cadsearch.models.view_maps`), or None for a
            network without a frozen ImageNet body (scratch). Search reads the viewpoint of models of kinds the
            network never trained on from them.
    """

    embedding: np.ndarray
    class_probs: np.ndarray
    polar_deg: np.ndarray
    azimuth_deg: np.ndarray
    mirror_embedding: np.ndarray | None = None
    pose_modes: np.ndarray | None = None
    view_map: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.embedding)


def read_checkpoint(checkpoint: str | Path) -> dict[str, Any]:
    """The checkpoint's dict; :class:`InputError` with a how-to-fix message if it is missing or corrupt."""
    path = Path(checkpoint)
    arch = path.parent.name if path.parent.name in list_models() else "scratch"
    if not path.is_file():
        raise InputError(f"no trained model at {path}; train it first with `cadsearch train {arch}`")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise InputError(
            f"checkpoint {path} is unreadable ({type(exc).__name__}); delete it and train again with "
            f"`cadsearch train {arch}`"
        ) from None
    needed = ("arch", "model_kwargs", "model_ids", "state_dict", "input_size", "mean", "std")
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in needed):
        raise InputError(f"{path} is not a cadsearch model checkpoint; train one with `cadsearch train {arch}`")
    return ckpt


class Predictor:
    """A trained network, ready to predict.

    Attributes:
        arch: ``scratch`` or ``transfer``.
        model_ids: the training classes; index = class id of ``class_probs``.
        class_categories: the category of each training class (catalog), or None for checkpoints older than it.
        input_size: network input in pixels (images are framed as squares and resized to it).
        backend: ``torch`` or ``onnx`` (the transfer body, when its ONNX file was exported and measured faster; only
            on the CPU).
        device: the torch device the network runs on (``cpu`` unless asked otherwise; see the module docstring).
        flip_pose: average the pose of each image with that of its mirror image (test-time flip; twice the network
            work per image; measured on the benchmark's fresh renders: 5.8° → 4.9° mean pose error (transfer),
            dev photos' sector-balanced azimuth Acc@30 0.711 → 0.753; ``benchmarks/accuracy.py``).
        metrics: the validation metrics stored with the checkpoint.
    """

    def __init__(
        self, ckpt: dict[str, Any], folder: Path | None = None, backend: str | None = None, device: str = "cpu"
    ) -> None:
        self.device = resolve_device(device)
        self.arch: str = ckpt["arch"]
        self.model_ids: list[str] = list(ckpt["model_ids"])
        self.class_categories: list[str] | None = ckpt.get("class_categories")
        self.input_size: int = int(ckpt["input_size"])
        self.mean, self.std = tuple(ckpt["mean"]), tuple(ckpt["std"])
        self.pose_head: str = ckpt.get("pose_head", "bins")
        self.metrics: dict[str, Any] = ckpt.get("metrics", {})
        self.config: dict[str, Any] = ckpt.get("config", {})
        self.model = create_model(self.arch, num_classes=len(self.model_ids), **ckpt["model_kwargs"])
        missing, unexpected = self.model.load_state_dict(ckpt["state_dict"], strict=False)
        missing = [k for k in missing if not k.startswith("body.")]  # a transfer body comes from its package
        if missing or unexpected:
            raise InputError(f"checkpoint does not fit the {self.arch} network ({len(missing)} missing weights)")
        self.model.eval().to(self.device)
        self.flip_pose = True
        self.backend = "torch"
        self._body = None
        want = backend or ckpt.get("backend", "torch")
        onnx_name = ckpt.get("onnx")
        onnx_file = folder / onnx_name if onnx_name and folder else None
        # onnxruntime here is CPU-only: on a GPU the torch body runs there instead.
        on_cpu = self.device.type == "cpu"
        if on_cpu and self.arch == "transfer" and want == "onnx" and onnx_file is not None and onnx_file.is_file():
            try:
                from cadsearch.models.onnx_runtime import OnnxBackbone

                self._body = OnnxBackbone(onnx_file)
                self.backend = "onnx"
            except Exception:
                self._body = None  # torch always works

    @property
    def has_view_maps(self) -> bool:
        """Whether this network gives view maps (:mod:`cadsearch.models.view_maps`): the transfer network, whose
        body is a frozen ImageNet network; the scratch body is trained for the library and is not used for them."""
        return self.arch == "transfer"

    def _body_map(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)  # a no-op on the CPU
        return self._body(x) if self._body is not None else self.model.forward_features(x)

    def view_maps(self, images: Sequence[np.ndarray] | np.ndarray, batch_size: int = 64) -> np.ndarray:
        """(N, M) float32 view maps of images framed as in :meth:`embed` (the body only, no heads); (N, 0) for a
        network without them (:attr:`has_view_maps`)."""
        images = _image_list(images)
        if not self.has_view_maps or not images:
            return np.zeros((len(images), 0), np.float32)
        maps = []
        with torch.no_grad():
            for i in range(0, len(images), batch_size):
                x = preprocess_images(images[i : i + batch_size], self.input_size, self.mean, self.std, None)
                maps.append(view_maps(self._body_map(x)))
        return np.concatenate(maps)

    def embed(self, images: Sequence[np.ndarray] | np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Only the L2-normalised embeddings (N, D) float32 of images as in :meth:`predict` (for indexing views): no
        flipped copies, and no pose or class heads (a transfer network's pose members would double the heads' work)."""
        images = _image_list(images)
        if not images:
            return np.zeros((0, self.model.heads.embed_fc.out_features), np.float32)
        embs = []
        with torch.no_grad():
            for i in range(0, len(images), batch_size):
                x = preprocess_images(images[i : i + batch_size], self.input_size, self.mean, self.std, None)
                embs.append(self.model.embed_head(self._body_map(x)))
        return torch.cat(embs).cpu().numpy().astype(np.float32)

    def predict(
        self,
        images: Sequence[np.ndarray] | np.ndarray,
        batch_size: int = 64,
        frames: Sequence[Frame | None] | None = None,
        flip_pose: bool | None = None,
    ) -> Prediction:
        """Predict for RGB uint8 HWC images of any size (grayscale HW accepted; a single image or (N, H, W, 3)).

        ``frames`` optionally gives, per image, the square to look at (default: the whole image padded to a
        square); ``flip_pose`` overrides the attribute of the same name. Returns a :class:`Prediction` with N rows.
        """
        images = _image_list(images)
        frames = list(frames) if frames is not None else [None] * len(images)
        flip = self.flip_pose if flip_pose is None else flip_pose
        embs, mirror_embs, probs, dirs, modes, maps = [], [], [], [], [], []
        with torch.no_grad():
            for i in range(0, len(images), batch_size):
                x = preprocess_images(
                    images[i : i + batch_size], self.input_size, self.mean, self.std, frames[i : i + batch_size]
                )
                n = len(x)
                # The flipped copies ride in the same batch; their pose output is averaged in, their embedding is
                # kept apart (a mirrored view is another view, so retrieval ranks by the image as given; search
                # uses the mirror's ranking only to check the category).
                fmap = self._body_map(torch.cat([x, x.flip(-1)]) if flip else x)
                out = self.model.forward_head(fmap)
                if self.has_view_maps:
                    maps.append(view_maps(fmap[:n]))
                embs.append(out["embedding"][:n])
                if flip:
                    mirror_embs.append(out["embedding"][n:])
                probs.append(self.model.heads.class_probs(out["embedding"][:n]))
                mirrored = out["pose"][n:] if flip else None
                dirs.append(self.model.heads.decode_pose(out["pose"][:n], mirrored))
                found = self.model.heads.pose_modes(out["pose"][:n], mirrored, POSE_MODES)
                if found is not None:
                    polar_k, azimuth_k = angles_from_directions(found[0].reshape(-1, 3))
                    modes.append(np.stack([polar_k, azimuth_k, found[1].reshape(-1).double().cpu().numpy()], 1)
                                 .reshape(n, POSE_MODES, 3))  # fmt: skip
        if not embs:
            d, c = self.model.heads.embed_fc.out_features, len(self.model_ids)
            return Prediction(np.zeros((0, d), np.float32), np.zeros((0, c), np.float32), np.zeros(0), np.zeros(0))
        polar, azimuth = angles_from_directions(torch.cat(dirs))
        return Prediction(
            embedding=torch.cat(embs).cpu().numpy().astype(np.float32),
            class_probs=torch.cat(probs).cpu().numpy().astype(np.float32),
            polar_deg=polar,
            azimuth_deg=azimuth,
            mirror_embedding=torch.cat(mirror_embs).cpu().numpy().astype(np.float32) if mirror_embs else None,
            pose_modes=np.concatenate(modes) if modes else None,
            view_map=np.concatenate(maps) if maps else None,
        )

    def __repr__(self) -> str:
        return (
            f"Predictor(arch={self.arch!r}, classes={len(self.model_ids)}, input={self.input_size}, {self.backend}, "
            f"{self.device})"
        )


def _image_list(images: Sequence[np.ndarray] | np.ndarray) -> list[np.ndarray]:
    """A list of images from one image (HW or HWC) or a batch (a sequence, or (N, H, W, 3))."""
    if isinstance(images, np.ndarray) and (images.ndim == 2 or (images.ndim == 3 and images.shape[-1] in (3, 4))):
        return [images]  # one image, not a batch
    return list(images)


def trained_categories(predictor: Any, category_of: Mapping[str, str]) -> set[str]:
    """The categories of the objects ``predictor``'s network trained on: its checkpoint's ``class_categories``, or
    (checkpoints written before they were stored) the catalog categories (``category_of``: model id → category) of
    its training models. Empty when none is known: then every model counts as one of its kinds."""
    known = getattr(predictor, "class_categories", None)
    if known is None:
        known = [category_of[m] for m in getattr(predictor, "model_ids", []) if m in category_of]
    return set(known)


def load_predictor(checkpoint: str | Path, backend: str | None = None, device: str = "cpu") -> Predictor:
    """Load ``checkpoint`` (e.g. :func:`~cadsearch.models.train.checkpoint_path`) into a :class:`Predictor`.

    ``backend`` (``torch`` | ``onnx``) overrides the one the training run measured faster (CPU only); ``device``
    (``cpu`` | ``auto`` | ``cuda`` | ``cuda:N``) is where the network runs. Raises :class:`InputError` if the file
    is missing or corrupt, or the device is not there. Checkpoints load on the CPU first, whichever device wrote
    them.
    """
    path = Path(checkpoint)
    device_ = resolve_device(device)  # before the costly load: a missing GPU is one line at once
    return Predictor(read_checkpoint(path), folder=path.parent, backend=backend, device=str(device_))
