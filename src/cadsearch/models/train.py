"""``cadsearch train {scratch|transfer}``: one top-to-bottom training loop for both networks (nanoGPT style).

Reads the view table of a workspace, splits it (held-out views of the training models; a few held-out models),
pre-loads the views into RAM, and trains with AdamW and a warm-up + cosine learning rate. After every epoch it
validates (held-out views: top-1, pose error; held-out models: nearest-view retrieval among themselves, pose),
writes ``checkpoints/<arch>/last.pt`` (for resume) and, on improvement, ``best.pt`` — both atomically — and logs
to TensorBoard under ``runs/<arch>/``. Early stopping after ``patience`` epochs without improvement.

Resume: re-running with the same config continues from ``last.pt`` (the epoch counter advances); changing only
the run's length (``epochs``, ``max_minutes``, ``patience``) extends it from there, the cosine schedule stretched to
the new length; any other change starts over, and says so.

The score that picks ``best.pt`` is ``pose_mean_deg + 100 · (1 − top1)`` on the held-out views (lower is better):
one point of top-1 weighs as much as a degree of pose error.

Scratch: the steps run channels-last and, where the CPU has native bf16 (AVX512-BF16 or AMX), in bf16 autocast
(``precision``; measured 2.4× the images/s of fp32 at 64 px on the 2-core development machine); validation and
checkpoints stay fp32.

Transfer: the body is frozen, so its feature maps are computed once — ``cache_copies`` augmented copies of every
training view (fp16, in RAM) plus the clean validation views — on torch or onnxruntime, whichever measures
faster; the adapter and heads then train on the cache for many cheap epochs.

GPU (``device``: auto | cpu | cuda | cuda:N; auto = cuda when torch sees one, :mod:`cadsearch.models.device`):
the network, batches and losses live on the GPU; augmentation stays on the CPU (numpy/torch on the host, seeded
per step, so the images are the same on either device) and each batch is copied over. Scratch's steps run in bf16
autocast on GPUs with bf16 (``precision`` auto), heads and losses fp32 as on the CPU. The transfer body runs in
torch on the GPU for the feature cache (fp32; the ONNX file is still exported, for CPU predictors), the adapter and
heads train in fp32. Checkpoints are written with every tensor on the CPU and record the ``device`` used, so a
GPU-trained network loads on a machine without one. On the CPU nothing differs from a run without this option.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from cadsearch import __version__
from cadsearch.errors import InputError
from cadsearch.library import Library
from cadsearch.metrics import (
    pose_errors_deg,
    rank_in_results,
    recall_at_k,
    summarize_pose,
    symmetric_target_azimuth,
    topk_accuracy,
)
from cadsearch.models.data import (
    AugmentConfig,
    Augmenter,
    BackgroundPool,
    ViewBank,
    make_splits,
    normalise,
)
from cadsearch.models.device import describe_device, resolve_device, state_to_cpu
from cadsearch.models.extras import extra_chairs, prepare_extra_chairs
from cadsearch.models.heads import POSE_HEADS, angles_from_directions, directions_from_angles
from cadsearch.models.registry import create_model, list_models
from cadsearch.models.sampling import lookalike_batches
from cadsearch.workspace import atomic_write_bytes

__all__ = ["TrainConfig", "TrainSummary", "train_model", "checkpoint_path", "apply_overrides", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "cadsearch-model/1"
#: The last transfer feature cache of this process, so that runs differing only in their heads (e.g. comparing
#: pose heads) do not recompute the frozen body's features.
_FEATURE_CACHE: dict[tuple, dict[str, Any]] = {}
DEFAULT_INPUT = {"scratch": 64, "transfer": 160}  # measured: see the package docs
#: Defaults that differ by architecture (:meth:`TrainConfig.defaults`). The category loss is on for the transfer
#: network: over three trainings it put a chair first for 94.12–96.08 % of the development photos (85.78–95.59 % in
#: four without it), 96.08–97.55 % with the search's crops; it named the kinds of left-out models' renders far better
#: (76.14–76.70 → 94.32–95.74 %, cached embeddings), cost 0.6–1.1 points of renders top-1, and the photos' viewpoint
#: stayed within the spread between trainings (BENCHMARKS.md, "Seeds of the category loss"). The scratch network has
#: not been trained with it.
#: Three pose members (``pose_members``), over three trainings against the same seeds without them (BENCHMARKS.md,
#: "Three pose estimators on one frozen body"): renders' pose mean 10.66/11.59/10.79° → 9.32/9.34/9.18°, photos'
#: median azimuth error 13.58/13.11/11.85° → 10.56/9.85/10.46°; photos' sector-balanced Acc@30 0.689/0.661/0.795 →
#: 0.775/0.738/0.686 (mixed); chair first 3 queries lower in two of them.
#: ~2.9x the time per training step (rates measured under unequal load).
#: 100 training-only chairs (``extra_chairs``, :mod:`cadsearch.models.extras`), against the same seeds without them
#: (BENCHMARKS.md, "`cadsearch train --extra-chairs 100` through today's product" and "on the 166-model library"):
#: on the open library (two trainings) models added after training found first 0.795/0.770 → 0.881/0.897 of the
#: time (chairs and other kinds alike), their pose 12.9 → 10.0° (seed 0), match AUC 0.759/0.789 → 0.862/0.868; on the
#: 166-model library (three trainings) the development photos' sector-balanced Acc@30 0.775/0.738/0.686 →
#: 0.825/0.757/0.720, chair first 0 / +2 / −7 of 204 queries, the library's own renders' top-1 −1.05/−1.21/+0.45
#: points. Cost: 1.7x the steps on the 166-model library (15.6–48.7 min wall with the extras' rendering, under
#: unequal loads) and the rendering of the extras (as many views each as the library's models). The scratch network
#: has not been measured with them, and its default training is long already (40 epochs, below).
#: 40 epochs for the scratch network (20 before): on the 166-model library its validation pose was still falling at
#: epoch 20; twice the epochs took the renders' pose mean through the search from 14.28 to 10.94° (top-1 0.868 →
#: 0.914) and the development photos' sector-balanced Acc@30 from 0.711 to 0.749, one training each, for twice the
#: steps (BENCHMARKS.md, "The scratch network's training length and input size"). An 80 px input instead lost on
#: the photos.
#: The scratch network's pose loss weighs twice its recognition loss (``pose_weight`` 2; 1 before). On the 166-model
#: library (40 epochs, seed 0, one training each; BENCHMARKS.md, "Where the scratch network's pose error lies"):
#: the development photos' viewpoint within 30° 138 → 157 of 204 queries (31 gained, 12 lost), sector-balanced
#: 0.749 → 0.826; the renders' pose mean 10.94 → 10.18° (186 queries better, 140 worse), their top-1 0.914 → 0.899;
#: the held-out views' validation pose better at every epoch from the third. A second training of the default (seed 1):
#: renders 10.57°, photos sector-balanced 0.831 (BENCHMARKS.md, "A second seed of the scratch default").
#: The scratch network's camera roll is ±10° (±25° before, still the transfer network's) and its training steps have a
#: 40-minute budget (the cosine schedule follows it; here 40 epochs took 45.39 min of steps in one run, 39.26 in
#: another). On the 166-model library
#: (seed 0, one training each; BENCHMARKS.md, "Camera roll ±10° for the scratch network, and its training time"):
#: ±10° took the renders' pose mean through the search from 10.18° (10.57° for seed 1) to 9.15°, top-1 0.899 → 0.920,
#: chairs 4.97° / 0.942 → 3.94° / 0.964; the photos' sector-balanced Acc@30 0.826 → 0.805 (median 11.47 → 8.87°).
#: The 40 epochs took 50.2 min alone on our 2-core machine, over issue #11's 45; with the budget 35 epochs (early
#: stopping) in 40.5 min: renders 9.06°, top-1 0.903, chairs 3.85° / 0.948, photos 0.810.
#: A second training of it (seed 1): all 40 epochs within the budget, 43.5 min; renders 9.68°, top-1 0.920, chairs
#: 4.17° / 0.955, photos 0.811 (BENCHMARKS.md, "A second seed of the new scratch default").
ARCH_DEFAULTS: dict[str, dict[str, Any]] = {
    "scratch": {"epochs": 40, "pose_weight": 2.0, "roll": 10.0, "max_minutes": 40.0},
    "transfer": {"category_weight": 1.0, "pose_members": 3, "extra_chairs": 100},
}


@dataclass
class TrainConfig:
    """Every setting of a training run; stored in the checkpoint. ``0`` means "the architecture's default"."""

    arch: str = "scratch"  # scratch | transfer
    epochs: int = 20
    batch_size: int = 64
    lr: float = 2e-3  # peak learning rate of AdamW
    weight_decay: float = 5e-4
    warmup_epochs: float = 0.5  # linear warm-up, then cosine decay to 0
    seed: int = 0
    patience: int = 5  # early stopping: epochs without a better validation score
    max_minutes: float = 0.0  # budget for the training steps; the LR schedule follows it (0 = none; scratch: 40)
    num_threads: int = 0  # torch threads (0 = all cores)
    precision: str = "auto"  # auto | fp32 | bf16: the scratch body's training steps (auto: bf16 where the CPU has it)
    # data
    input_size: int = 0  # pixels (0 = 64 for scratch, 160 for transfer)
    holdout_models: int = 3  # models never trained on, for the embedding's generalisation
    # procedural chairs trained on beside the library, never indexed (models.extras): more chair shapes, an embedding
    # that finds chairs added after training; 0 = none (the transfer network's default is 100: ARCH_DEFAULTS).
    # Rendered like the library, in <workspace>/training-extras
    extra_chairs: int = 0
    val_fraction: float = 0.1  # share of each training model's views held out
    backgrounds: str = "scenes"  # scenes (procedural rooms, textures...) | random | rooms | ... | a folder of photos
    background_pool: int = 512  # backgrounds drawn per epoch
    augment: bool = True
    clutter: bool = True  # other library objects beside, behind and in front of the object (with augment)
    # max camera roll of the augmented views, degrees (half of them turned; with augment; 0 = none; scratch: 10)
    roll: float = 25.0
    # network and heads
    width: int = 32  # scratch: channels of the first stage
    feat_dim: int = 512
    embed_dim: int = 128
    pose_head: str = "bins"  # bins | vector
    n_pose_bins: int = 320
    pose_sigma_deg: float = 8.0
    pose_weight: float = 1.0  # the pose loss against the recognition loss (the scratch network's default is 2)
    symmetric_pose: bool = True  # symmetric models (catalog): one pose target per class of identical views
    cos_scale: float = 16.0
    # CosFace margin. Measured on the open library (transfer, one seed each; BENCHMARKS.md "Today's training defaults,
    # two seeds, and three levers for look-alikes"): 0.35 lost 0.062 of the unseen models' top-1 against seed 0 of
    # the defaults (within the spread between seeds), 0.1 changed nothing
    cos_margin: float = 0.2
    # weight of the auxiliary category loss: a cosine classifier over the library's categories (catalog) on the
    # embedding (ViewHeads.category); 0 = none, and none when the training models are of one category; the transfer
    # network's default is 1 (ARCH_DEFAULTS)
    category_weight: float = 0.0
    # weight of a metric-learning term between the views of a batch (heads.supervised_contrastive at
    # metric_temperature: views of one model pulled together, of other models pushed apart); 0 = none
    metric_weight: float = 0.0
    metric_temperature: float = 0.1
    # look-alike batches (models.sampling): batch_models models x batch_size / batch_models views each, a model and
    # those nearest it by the classifier's class directions; 0 = random views (the metric term then finds few pairs).
    # Measured together (metric_weight=1, batch_models=8) on the open library: no gain on models unseen in training
    # (top-1 0.768 vs 0.8 and 0.770 for two seeds of the defaults; BENCHMARKS.md), so both stay off by default
    batch_models: int = 0
    # transfer
    backbone: str = "lite0"  # lite0 | lite1 | lite2
    feature_block: str = "stride16"  # stride8 | stride16 | stride32 | final | a block index
    cache_copies: int = 2  # augmented copies of each training view in the feature cache
    # pose estimators on the frozen body whose bin distributions are averaged (TransferNet.pose_members; 1 = one);
    # each is a small adapter + neck + pose head, so the body still runs once per image
    pose_members: int = 1
    backend: str = "auto"  # auto | torch | onnx: runs the frozen body while caching (CPU; on a GPU: torch)
    # where the steps run: auto (cuda when torch sees a GPU) | cpu | cuda | cuda:N; not part of what a run is, so a
    # run resumes on another device
    device: str = "auto"

    def validate(self) -> None:
        if self.arch not in list_models():
            raise InputError(f"arch must be one of {', '.join(list_models())}, got {self.arch!r}")
        if self.pose_head not in POSE_HEADS:
            raise InputError(f"pose_head must be one of {', '.join(POSE_HEADS)}, got {self.pose_head!r}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise InputError(f"precision must be auto, fp32 or bf16, got {self.precision!r}")
        if self.backend not in ("auto", "torch", "onnx"):
            raise InputError(f"backend must be auto, torch or onnx, got {self.backend!r}")
        for name in ("epochs", "batch_size", "cache_copies", "background_pool", "embed_dim", "feat_dim", "width",
                     "pose_members"):  # fmt: skip
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.pose_members > 1 and (self.arch != "transfer" or self.pose_head != "bins"):
            raise InputError("pose_members > 1 needs the transfer network and the bins pose head")
        if self.lr <= 0:
            raise InputError(f"lr must be positive, got {self.lr}")
        if self.category_weight < 0:
            raise InputError(f"category_weight must be 0 or more, got {self.category_weight}")
        if self.metric_weight < 0:
            raise InputError(f"metric_weight must be 0 or more, got {self.metric_weight}")
        if self.metric_temperature <= 0:
            raise InputError(f"metric_temperature must be positive, got {self.metric_temperature}")
        if self.batch_models < 0 or self.batch_models == 1 or self.batch_models > self.batch_size // 2:
            raise InputError(
                f"batch_models must be 0 (random batches) or 2 to batch_size / 2 ({self.batch_size // 2}), "
                f"got {self.batch_models}"
            )
        if self.input_size and (self.input_size < 32 or self.input_size % 16):
            raise InputError(f"input_size must be a multiple of 16, at least 32, got {self.input_size}")
        if self.extra_chairs < 0:
            raise InputError(f"extra_chairs must be 0 or more, got {self.extra_chairs}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise InputError(f"val_fraction must be in [0, 1), got {self.val_fraction}")

    @property
    def size(self) -> int:
        return self.input_size or DEFAULT_INPUT[self.arch]

    @classmethod
    def defaults(cls, arch: str) -> TrainConfig:
        """The default run of ``arch``: the field defaults with :data:`ARCH_DEFAULTS` applied."""
        return cls(arch=arch, **ARCH_DEFAULTS.get(arch, {}))


def apply_overrides(config: TrainConfig, overrides: dict[str, Any] | None) -> TrainConfig:
    """A copy of ``config`` with ``overrides`` applied; unknown keys or wrong types raise :class:`InputError`.

    Ints are accepted for float fields, and strings are parsed for numeric fields (CLI ``--key=value``).
    """
    if not overrides:
        return config
    fields = {f.name: f for f in dataclasses.fields(config)}
    changes = {}
    for key, value in overrides.items():
        if key not in fields:
            raise InputError(f"unknown training option {key!r}; known options: {', '.join(sorted(fields))}")
        want = type(getattr(config, key))
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, str) and want is bool and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            value = value.lower() in ("true", "1", "yes")
        if isinstance(value, str) and want in (int, float):
            try:
                value = want(value)
            except ValueError:
                raise InputError(f"training option {key!r} must be {want.__name__}, got {value!r}") from None
        if key == "feature_block" and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if key == "backgrounds" and isinstance(value, Path):
            value = str(value)
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise InputError(f"training option {key!r} must be {want.__name__}, got {type(value).__name__}")
        changes[key] = value
    return dataclasses.replace(config, **changes)


@dataclass
class TrainSummary:
    """What a run did. Metrics are of the best epoch; angles in degrees, shares in [0, 1]."""

    checkpoint: Path
    epochs_run: int  # epochs trained by this call
    epochs_total: int  # epochs in the checkpoint (including resumed ones)
    best_epoch: int
    val_views: dict[str, float] = field(default_factory=dict)  # top1, pose_mean_deg, pose_median_deg, acc15, acc30
    val_models: dict[str, float] = field(default_factory=dict)  # top1 (retrieval), pose_mean_deg, nn_pose_mean_deg
    seconds: float = 0.0
    resumed: bool = False
    notes: list[str] = field(default_factory=list)


def checkpoint_path(workspace: str | Path, arch: str) -> Path:
    """``<workspace>/checkpoints/<arch>/best.pt``."""
    return Path(workspace) / "checkpoints" / arch / "best.pt"


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """``torch.save`` to memory, then an atomic write: an interrupted save never leaves a corrupt file."""
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())


def model_kwargs(cfg: TrainConfig) -> dict[str, Any]:
    """Arguments of ``create_model`` for a config (stored in the checkpoint, so a predictor can rebuild it)."""
    kw: dict[str, Any] = dict(
        input_size=cfg.size,
        feat_dim=cfg.feat_dim,
        embed_dim=cfg.embed_dim,
        pose_head=cfg.pose_head,
        n_pose_bins=cfg.n_pose_bins,
        pose_sigma_deg=cfg.pose_sigma_deg,
        cos_scale=cfg.cos_scale,
        cos_margin=cfg.cos_margin,
    )
    if cfg.arch == "scratch":
        kw["width"] = cfg.width
    else:
        fb = cfg.feature_block
        kw.update(backbone=cfg.backbone, feature_block=int(fb) if fb.isdigit() else fb)
        if cfg.pose_members > 1:  # absent otherwise: checkpoints stay loadable by code that predates the option
            kw["pose_members"] = cfg.pose_members
    return kw


def _seed(*parts: Any) -> int:
    """A stable 63-bit seed from any values (run seed, epoch, step, purpose)."""
    return zlib.crc32(repr(parts).encode()) * 2654435761 % (2**63)


def pose_stats(err: np.ndarray) -> dict[str, float]:
    """Mean, median, and shares under 15° and 30° of pose errors in degrees (:func:`cadsearch.metrics.summarize_pose`
    with the validation log's key names); {} without errors."""
    summary = summarize_pose(err)
    if not summary["n"]:
        return {}
    return {
        "pose_mean_deg": summary["mean"],
        "pose_median_deg": summary["median"],
        "acc15": summary["acc15"],
        "acc30": summary["acc30"],
    }


def train_model(
    workspace: str | Path,
    arch: str,
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
) -> TrainSummary:
    """Train ``arch`` (``scratch`` | ``transfer``) on the views of ``workspace``; see the module docstring."""
    t_start = time.perf_counter()
    if arch not in list_models():
        raise InputError(f"unknown model {arch!r}; choose {' or '.join(list_models())}")
    cfg = apply_overrides(TrainConfig.defaults(arch), overrides)
    if cfg.arch != arch:
        raise InputError(f"overrides set arch={cfg.arch!r} but the command trains {arch!r}")
    cfg.validate()
    device = resolve_device(cfg.device)  # before any work: `device=cuda` without a GPU is one line, exit 2
    on_gpu = device.type == "cuda"
    torch.set_num_threads(cfg.num_threads or os.cpu_count() or 1)
    torch.manual_seed(cfg.seed)
    if on_gpu:
        torch.backends.cudnn.benchmark = True  # fixed input sizes: cuDNN picks its fastest convolutions once
    ws = Path(workspace)
    ckpt_dir = ws / "checkpoints" / arch
    best_path, last_path = ckpt_dir / "best.pt", ckpt_dir / "last.pt"
    notes: list[str] = []

    def say(msg: str) -> None:
        notes.append(msg)
        if progress:
            tqdm.write(msg)

    # ---- data: splits and views in RAM ------------------------------------------------------------------------
    # Training-only chairs beside the library (extra_chairs): generated and rendered first (resumable, kept).
    extra_rows, extra_catalog = [], []
    if cfg.extra_chairs:
        prepare_extra_chairs(ws, cfg.extra_chairs, progress=progress)
        extra_rows, extra_catalog = extra_chairs(ws, cfg.extra_chairs)
    splits = make_splits(ws, cfg.holdout_models, cfg.val_fraction, cfg.seed, extra_rows)
    model_ids, size = splits.model_ids, cfg.size
    native = _image_size(ws, splits.train[0])
    # Scratch trains at a fraction of the render size: keep a little more than the input (zoom-ins stay sharp).
    bank_size = min(native, math.ceil(size * 1.25 / 8) * 8) if size < native else native
    # Rotational symmetry of each model (catalog): symmetric models' pose targets and errors use one
    # representative of each class of identical views.
    catalog = Library.open(ws).list() + extra_catalog
    symmetry = {m.model_id: m.symmetry_order for m in catalog}
    # The category of each training class, for the auxiliary category loss (only when there are two or more).
    category_names, category_of_class = _class_categories(model_ids, {m.model_id: m.category for m in catalog})
    use_categories = cfg.category_weight > 0 and len(category_names) > 1
    train_bank = ViewBank.load(ws, splits.train, model_ids, size=bank_size, progress=progress, symmetry=symmetry)
    # Validation images are preprocessed exactly like a predictor's input: square, resized to the input size.
    val_bank = ViewBank.load(ws, splits.val_views, model_ids, size=size, progress=False, symmetry=symmetry)
    held_bank = ViewBank.load(ws, splits.val_models, model_ids, size=size, progress=False, symmetry=symmetry)
    pool = BackgroundPool(cfg.backgrounds, size, cfg.background_pool)
    aug_cfg = AugmentConfig() if cfg.augment else AugmentConfig.none()
    if not cfg.clutter:
        aug_cfg = dataclasses.replace(aug_cfg, p_clutter=0.0, p_clutter_front=0.0)
    if cfg.augment and cfg.roll > 0:
        aug_cfg = dataclasses.replace(aug_cfg, roll_deg=cfg.roll)

    # ---- model, optimiser, schedule, resume -------------------------------------------------------------------
    kwargs = model_kwargs(cfg)
    if use_categories:
        kwargs["num_categories"] = len(category_names)
    class_category = torch.from_numpy(category_of_class).to(device) if use_categories else None
    model = create_model(arch, num_classes=len(model_ids), **kwargs).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr
    )
    steps_per_epoch = max(1, len(train_bank) // cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    warmup = max(1, int(cfg.warmup_epochs * steps_per_epoch))

    budget_s = cfg.max_minutes * 60.0
    train_seconds = 0.0  # time spent in training steps, over all calls (resume included)
    t_steps = 0.0  # start of the current epoch's steps (perf_counter), 0 outside of them

    def progress_at(step: int) -> float:
        """Fraction of the run done: by steps, or by the time budget if that is further along. The cosine
        schedule follows it, so a run cut short by ``max_minutes`` still ends with a decayed learning rate."""
        by_steps = (step - warmup) / max(1, total_steps - warmup)
        spent = train_seconds + (time.perf_counter() - t_steps if t_steps else 0.0)  # live, within the epoch too
        return min(1.0, max(by_steps, spent / budget_s if budget_s else 0.0))

    def lr_at(step: int) -> float:
        if step < warmup:
            return cfg.lr * (step + 1) / warmup
        return 0.5 * cfg.lr * (1 + math.cos(math.pi * progress_at(step)))

    start_epoch, step, best_score, bad_epochs, history = 0, 0, float("inf"), 0, []
    best_metrics: dict[str, Any] = {}
    resumed = False
    if last_path.exists():
        try:
            last = torch.load(last_path, map_location="cpu", weights_only=False)
        except Exception:
            last = None
            say(f"{last_path} is unreadable: starting over")
        same = last is not None and _same_run(last.get("config", {}), asdict(cfg))
        if same and last.get("model_ids") == model_ids:
            model.load_state_dict(last["state_dict"], strict=False)
            optimizer.load_state_dict(last["optimizer"])
            start_epoch, step = last["epoch"], last["step"]
            best_score, bad_epochs = last["best_score"], last["bad_epochs"]
            history, best_metrics = last["history"], last.get("best_metrics", {})
            train_seconds = last.get("train_seconds", 0.0)
            resumed = True
            extended = _strip_runtime(last.get("config", {})) != _strip_runtime(asdict(cfg))
            say(f"{'extending' if extended else 'resuming'} {arch} from {last_path} after epoch {start_epoch}")
        elif last is not None:
            say(f"{last_path} was made with a different config or model list: starting over")

    def summary(epochs_run: int) -> TrainSummary:
        """What this call did, with the best checkpoint's metrics (the run's state as it stands)."""
        return TrainSummary(
            checkpoint=best_path,
            epochs_run=epochs_run,
            epochs_total=history[-1]["epoch"] if history else start_epoch,
            best_epoch=best_metrics.get("epoch", 0),
            val_views=best_metrics.get("val_views", {}),
            val_models=best_metrics.get("val_models", {}),
            seconds=time.perf_counter() - t_start,
            resumed=resumed,
            notes=notes,
        )

    finished = start_epoch >= cfg.epochs or bad_epochs >= cfg.patience or (budget_s and train_seconds >= budget_s)
    if resumed and finished and best_path.exists():
        # Nothing left to train: return before the feature cache (minutes on a large library) is built for nothing.
        say(f"{arch} is already trained ({start_epoch} epochs): {best_path}")
        return summary(epochs_run=0)

    writer = _summary_writer(ws / "runs" / arch)
    if on_gpu:
        say(f"training on {describe_device(device)}")
    if writer is not None:
        writer.add_text("device", describe_device(device), start_epoch)

    # ---- the body's inputs: augmented images (scratch) or cached frozen features (transfer) -------------------
    mean, std = model.mean, model.std
    onnx_path = ckpt_dir / f"body-{cfg.backbone}-{cfg.feature_block}-{size}.onnx"
    backend = "torch"
    if arch == "transfer":
        body_fn, backend, speeds = _transfer_body(model, cfg, onnx_path, device)
        if on_gpu:
            say(f"frozen body: torch on {device} (predictors on a CPU: {backend})")
        else:
            say(f"frozen body: {backend} ({', '.join(f'{k} {v:.0f} img/s' for k, v in speeds.items())} at batch 32)")
        key = (str(ws.resolve()), cfg.size, cfg.backbone, cfg.feature_block, cfg.cache_copies, cfg.backgrounds,
               cfg.background_pool, cfg.augment, cfg.clutter, cfg.roll, cfg.seed, cfg.holdout_models, cfg.val_fraction,
               tuple(r.view_id for r in splits.train[:50]), len(splits.train), tuple(splits.holdout_model_ids),
               device.type)  # fmt: skip
        cache = _FEATURE_CACHE.get(key)
        if cache is None:
            cache = _build_cache(model, body_fn, train_bank, val_bank, held_bank, pool, aug_cfg, cfg, progress)
            _FEATURE_CACHE.clear()  # one cache at a time: they are large
            _FEATURE_CACHE[key] = cache
    else:  # scratch: the clean validation images, once
        val_x, held_x = _clean_images(val_bank, mean, std), _clean_images(held_bank, mean, std)
        # NHWC is oneDNN's native layout: measured 1.2× (fp32) to 1.3× (bf16) faster steps at 64 px on 2 cores.
        model = model.to(memory_format=torch.channels_last)
    use_bf16 = arch == "scratch" and _use_bf16(cfg.precision, device)
    if use_bf16:
        say(f"training steps in bfloat16 autocast (the {'GPU' if on_gpu else 'CPU'} has native bf16)")

    def encode(which: str) -> dict[str, np.ndarray]:
        """Clean validation views → embeddings, class probabilities, pose directions."""
        model.eval()
        x = cache[which] if arch == "transfer" else (val_x if which == "val" else held_x)
        embs, probs, dirs = [], [], []
        with torch.no_grad():
            for i in range(0, len(x), 256):
                xb = x[i : i + 256].to(device, non_blocking=True)
                out = model.forward_head(xb) if arch == "transfer" else model(xb)
                embs.append(out["embedding"])
                probs.append(model.heads.class_probs(out["embedding"]))
                dirs.append(model.heads.decode_pose(out["pose"]))
        cat = lambda t: torch.cat(t).cpu().numpy() if t else np.zeros((0, 1), np.float32)  # noqa: E731
        return {"embedding": cat(embs), "probs": cat(probs), "dirs": cat(dirs)}

    # ---- epochs ------------------------------------------------------------------------------------------------
    epochs_run = 0
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        t_epoch = time.perf_counter()
        rng = np.random.default_rng(_seed(cfg.seed, epoch, "order"))
        order = rng.permutation(len(train_bank))
        if arch == "scratch":
            backgrounds = pool.refresh(_seed(cfg.seed, epoch, "backgrounds")) if cfg.augment else None
            augmenter = Augmenter(size, aug_cfg, backgrounds)
        else:
            copy_of = rng.integers(0, cache["train"].shape[0], len(train_bank))
        batches = None
        if cfg.batch_models:
            # Look-alike groups by the class directions learnt so far (random groups in the first epoch).
            dirs_now = model.heads.classifier.weight.detach().cpu().numpy() if epoch > 0 else None
            batch_rng = np.random.default_rng(_seed(cfg.seed, epoch, "batches"))
            batches = lookalike_batches(
                train_bank.labels, dirs_now, cfg.batch_models, cfg.batch_size, steps_per_epoch, batch_rng
            )
        bar = tqdm(range(steps_per_epoch), desc=f"{arch} epoch {epoch + 1}/{cfg.epochs}", disable=not progress)
        sums = {"loss": 0.0, "cls": 0.0, "pose": 0.0, "category": 0.0, "metric": 0.0}
        t_steps = time.perf_counter()
        for b in bar:
            if budget_s and train_seconds + time.perf_counter() - t_steps >= budget_s:
                break  # the time budget is spent: validate and save what we have
            idx = batches[b] if batches else np.sort(order[b * cfg.batch_size : (b + 1) * cfg.batch_size])
            labels = torch.from_numpy(train_bank.labels[idx]).to(device, non_blocking=True)
            if arch == "scratch":
                x, az = augmenter(train_bank.rgb[idx], train_bank.mask[idx], train_bank.azimuth_deg[idx],
                                  _seed(cfg.seed, epoch, b, "augment"))  # fmt: skip
                x = normalise(x, mean, std).contiguous(memory_format=torch.channels_last)
                x = x.to(device, non_blocking=True)  # augmented on the CPU, stepped on the device
                # The convolutions run in bf16 where the CPU supports it (2× the steps/s of fp32 here); the
                # heads and losses stay fp32, so cosine logits and soft pose targets keep their precision.
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                    fmap = model.forward_features(x)
                out = model.forward_head(fmap.float(), labels)
            else:
                feats = torch.from_numpy(cache["train"][copy_of[idx], idx]).to(device, non_blocking=True)
                az = cache["train_az"][copy_of[idx], idx]
                out = model.forward_head(feats, labels)
            if cfg.symmetric_pose:
                # After augmentation: a flipped view of a symmetric model is relabelled, then mapped to its class.
                az = symmetric_target_azimuth(az, train_bank.symmetry[idx])
            dirs = directions_from_angles(train_bank.polar_deg[idx], az).to(device, non_blocking=True)
            categories = class_category[labels] if class_category is not None else None
            loss, parts = model.heads.loss(out, labels, dirs, cfg.pose_weight, categories, cfg.category_weight,
                                           cfg.metric_weight, cfg.metric_temperature)  # fmt: skip
            for g in optimizer.param_groups:
                g["lr"] = lr_at(step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            optimizer.step()
            step += 1
            sums["loss"] += float(loss.detach())
            sums["cls"] += parts["cls"]
            sums["pose"] += parts["pose"]
            sums["category"] += parts.get("category", 0.0)
            sums["metric"] += parts.get("metric", 0.0)
            if b % 10 == 0:
                bar.set_postfix(loss=f"{float(loss.detach()):.3f}", lr=f"{lr_at(step):.1e}")
            if writer is not None and step % 20 == 0:
                writer.add_scalar("train/loss", float(loss.detach()), step)
                writer.add_scalar("train/loss_cls", parts["cls"], step)
                writer.add_scalar("train/loss_pose", parts["pose"], step)
                if "category" in parts:
                    writer.add_scalar("train/loss_category", parts["category"], step)
                if "metric" in parts:
                    writer.add_scalar("train/loss_metric", parts["metric"], step)
                writer.add_scalar("train/lr", lr_at(step), step)
        bar.close()
        train_seconds += time.perf_counter() - t_steps
        t_steps = 0.0
        epochs_run += 1

        # ---- validation ----------------------------------------------------------------------------------------
        val = encode("val")
        metrics_v = _view_metrics(val, val_bank)
        metrics_m = _heldout_metrics(encode("held"), held_bank) if len(held_bank) else {}
        score = metrics_v.get("pose_mean_deg", 0.0) + 100.0 * (1.0 - metrics_v.get("top1", 1.0))
        record = {
            "epoch": epoch + 1,
            "seconds": time.perf_counter() - t_epoch,
            "train": {k: v / steps_per_epoch for k, v in sums.items()},
            "val_views": metrics_v,
            "val_models": metrics_m,
            "score": score,
        }
        history.append(record)
        if writer is not None:
            for group in ("val_views", "val_models"):
                for k, v in record[group].items():
                    writer.add_scalar(f"{group}/{k}", v, epoch + 1)
            _log_examples(writer, val_bank, val, epoch + 1, model_ids)
            writer.flush()
        improved = score < best_score
        if improved:
            best_score, bad_epochs, best_metrics = score, 0, record
        else:
            bad_epochs += 1
        if progress:
            tqdm.write(
                f"epoch {epoch + 1}: val top1 {metrics_v.get('top1', float('nan')):.3f} pose mean "
                f"{metrics_v.get('pose_mean_deg', float('nan')):.1f}° median "
                f"{metrics_v.get('pose_median_deg', float('nan')):.1f}°"
                + (f" | held-out models top1 {metrics_m['top1']:.3f}" if metrics_m else "")
                + (" *" if improved else "")
            )

        # ---- checkpoints: best.pt (on improvement) before last.pt, so last never points past a missing best ----
        payload = {
            "format": CHECKPOINT_FORMAT,
            "arch": arch,
            "config": asdict(cfg),
            "model_kwargs": kwargs,
            "model_ids": model_ids,
            "categories": category_names if use_categories else [],
            # the category of each class, with or without the category loss: which kinds of object the pose head
            # has learnt (the search trusts it less for the others, search.pose)
            "class_categories": [category_names[i] for i in category_of_class],
            "holdout_model_ids": splits.holdout_model_ids,
            "input_size": size,
            "mean": list(mean),
            "std": list(std),
            "pose_head": cfg.pose_head,
            "backend": backend,
            "onnx": onnx_path.name if backend == "onnx" else None,
            "state_dict": _host(model.trainable_state_dict()),
            "device": describe_device(device),
            "epoch": epoch + 1,
            "metrics": record,
            "cadsearch_version": __version__,
            "torch_version": torch.__version__,
        }
        if improved:
            save_checkpoint(best_path, payload)
        save_checkpoint(
            last_path,
            payload
            | {
                "optimizer": _host(optimizer.state_dict()),
                "step": step,
                "best_score": best_score,
                "bad_epochs": bad_epochs,
                "history": history,
                "best_metrics": best_metrics,
                "train_seconds": train_seconds,
            },
        )
        if bad_epochs >= cfg.patience:
            say(f"early stop: no better validation score for {cfg.patience} epochs")
            break
        if budget_s and train_seconds >= budget_s:
            say(f"stopping: the {cfg.max_minutes:g} min budget is spent")
            break

    if writer is not None:
        writer.close()
    return summary(epochs_run)


#: Settings that may change between a run and its resumption: they extend or shorten it, not change it.
BUDGET_FIELDS = ("epochs", "max_minutes", "patience")
#: Settings of where a run executes, not of what it computes: a run started on a GPU resumes on the CPU.
RUNTIME_FIELDS = ("device",)
#: Settings whose default changed after checkpoints were written without them: what those runs did.
LEGACY_DEFAULTS: dict[str, Any] = {"roll": 0.0, "category_weight": 0.0, "pose_members": 1, "extra_chairs": 0}


def _same_run(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two configs describe the same run, up to its length (:data:`BUDGET_FIELDS`)."""
    strip = lambda c: {k: v for k, v in _strip_runtime(c).items() if k not in BUDGET_FIELDS}  # noqa: E731
    # A setting added since a checkpoint was written takes its default, which is what that run did (or, for
    # LEGACY_DEFAULTS, the value those runs had before the default changed).
    defaults = asdict(TrainConfig.defaults(a.get("arch", "scratch"))) | LEGACY_DEFAULTS
    return strip(defaults | a) == strip(defaults | b)


def _strip_runtime(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` without :data:`RUNTIME_FIELDS`."""
    return {k: v for k, v in config.items() if k not in RUNTIME_FIELDS}


def _host(state: Any) -> Any:
    """A state dict as checkpoints store it: on the CPU (a GPU run's tensors are copied; a CPU run's are as is)."""
    return state_to_cpu(state) if _tensors_off_cpu(state) else state


def _tensors_off_cpu(state: Any) -> bool:
    if isinstance(state, torch.Tensor):
        return state.device.type != "cpu"
    if isinstance(state, dict):
        return any(_tensors_off_cpu(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return any(_tensors_off_cpu(v) for v in state)
    return False


def _use_bf16(precision: str, device: torch.device | None = None) -> bool:
    """Whether to train in bf16 autocast: ``bf16`` always, ``auto`` only where the device has native bf16 (a
    CUDA GPU that reports it; on the CPU, oneDNN's AVX512-BF16 or AMX kernels: emulated bf16 is slower than fp32),
    never for ``fp32``."""
    if precision != "auto":
        return precision == "bf16"
    if device is not None and device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # a private op: if it moves, fall back to the safe choice
        return False


def _class_categories(model_ids: list[str], category: dict[str, str]) -> tuple[list[str], np.ndarray]:
    """The sorted category names of the training classes and each class's index into them, (C,) int64 (a model
    missing from the catalog counts as category ``unknown``)."""
    of_class = [category.get(m, "unknown") for m in model_ids]
    names = sorted(set(of_class))
    return names, np.array([names.index(c) for c in of_class], np.int64)


def _image_size(ws: Path, row) -> int:
    """Side in pixels of a rendered view."""
    from PIL import Image

    with Image.open(ws / row.path) as im:
        return im.size[0]


def _clean_images(bank: ViewBank, mean, std) -> torch.Tensor:
    """Bank (already at the input size) → normalised (N, 3, S, S) float32."""
    x = torch.from_numpy(bank.rgb).permute(0, 3, 1, 2).float() / 255.0
    return normalise(x, mean, std)


def _view_metrics(enc: dict[str, np.ndarray], bank: ViewBank) -> dict[str, float]:
    """Top-1 of the classifier and pose-head error (symmetry-aware) on held-out views of training models."""
    if len(bank) == 0:
        return {}
    polar, azimuth = angles_from_directions(enc["dirs"])
    err = pose_errors_deg(bank.polar_deg, bank.azimuth_deg, polar, azimuth, bank.symmetry)
    return {"top1": topk_accuracy(enc["probs"], bank.labels, 1)} | pose_stats(err)


def _heldout_metrics(enc: dict[str, np.ndarray], bank: ViewBank) -> dict[str, float]:
    """Held-out models: even views are the gallery, odd views the queries; nearest gallery view by cosine gives
    the model (retrieval top-1) and a pose (``nn_pose_mean_deg``); the pose head is scored on all views."""
    polar, azimuth = angles_from_directions(enc["dirs"])
    err = pose_errors_deg(bank.polar_deg, bank.azimuth_deg, polar, azimuth, bank.symmetry)
    models = np.array(bank.model_of)
    gal, qry = np.arange(0, len(bank), 2), np.arange(1, len(bank), 2)
    out = {"pose_mean_deg": float(np.mean(err)), "pose_median_deg": float(np.median(err))}
    if len(qry):
        nn_idx = gal[(enc["embedding"][qry] @ enc["embedding"][gal].T).argmax(1)]
        out["top1"] = recall_at_k(rank_in_results(models[qry], models[nn_idx, None]), 1)
        nn_err = pose_errors_deg(bank.polar_deg[qry], bank.azimuth_deg[qry], bank.polar_deg[nn_idx],
                                 bank.azimuth_deg[nn_idx], bank.symmetry[qry])  # fmt: skip
        out["nn_pose_mean_deg"] = float(np.mean(nn_err))
    return out


def _summary_writer(folder: Path):
    """A TensorBoard ``SummaryWriter``, or None if tensorboard is not installed (logging is optional)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:
        return None
    return SummaryWriter(str(folder))


def _log_examples(writer, bank: ViewBank, enc: dict[str, np.ndarray], epoch: int, model_ids: list[str]) -> None:
    """Eight validation views with true and predicted pose and class, as one image in TensorBoard."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception:
        return
    n = min(8, len(bank))
    if n == 0:
        return
    polar, azimuth = angles_from_directions(enc["dirs"][:n])
    fig, axes = plt.subplots(1, n, figsize=(2 * n, 2.4))
    for i, ax in enumerate(np.atleast_1d(axes)):
        ax.imshow(bank.rgb[i])
        ax.axis("off")
        ok = enc["probs"][i].argmax() == bank.labels[i]
        ax.set_title(
            f"true {bank.polar_deg[i]:.0f},{bank.azimuth_deg[i]:.0f}\npred {polar[i]:.0f},{azimuth[i]:.0f}"
            f" {'✓' if ok else '✗'}",
            fontsize=7,
        )
    writer.add_figure("val/examples", fig, epoch)
    plt.close(fig)


def _transfer_body(model, cfg: TrainConfig, onnx_path: Path, device: torch.device | None = None):
    """The callable that runs the frozen body, the backend a CPU predictor should use, and measured speeds.

    CPU: torch or onnxruntime, measured at batch 32 when ``auto``. GPU: the torch body on the GPU (inputs copied
    over, maps copied back to host RAM, where the cache lives); the ONNX body is still exported (once, from a CPU
    copy) so that a CPU predictor of this checkpoint runs on onnxruntime as a CPU-trained one does.
    """
    from cadsearch.models.onnx_runtime import OnnxBackbone, export_onnx, measure_backends

    body = model.body
    if device is not None and device.type == "cuda":
        backend = "torch"
        if cfg.backend != "torch":
            try:
                if not onnx_path.exists():
                    import copy

                    export_onnx(copy.deepcopy(body).cpu(), cfg.size, onnx_path)
                backend = "onnx"
            except Exception as exc:  # the CPU predictor then runs torch: slower, never wrong
                tqdm.write(f"onnx export failed ({exc}); CPU predictors will run the torch body")

        def on_gpu(x: torch.Tensor) -> torch.Tensor:
            return body(x.to(device, non_blocking=True)).float().cpu()

        return on_gpu, backend, {}
    if cfg.backend == "torch":
        return body, "torch", {}
    try:
        if not onnx_path.exists():
            export_onnx(body, cfg.size, onnx_path)
        speeds = measure_backends(body, onnx_path, cfg.size) if cfg.backend == "auto" else {}
    except Exception as exc:  # an exporter or runtime problem must not stop training: torch always works
        tqdm.write(f"onnx backend unavailable ({exc}); using torch")
        return body, "torch", {}
    if cfg.backend == "onnx" or speeds["onnx"] > speeds["torch"]:
        return OnnxBackbone(onnx_path), "onnx", speeds
    return body, "torch", speeds


def _build_cache(model, body_fn, train_bank, val_bank, held_bank, pool, aug_cfg, cfg, progress) -> dict[str, Any]:
    """Frozen-body features: ``train`` (copies, N, C, h, w) fp16 of augmented views with their azimuths
    ``train_az`` (copies, N) (flips relabel them), and clean ``val``/``held`` maps (float32 tensors)."""
    size, mean, std, bs = cfg.size, model.mean, model.std, 32
    c, (h, w) = model.body.out_channels, model.body.out_hw
    n = len(train_bank)
    feats = np.zeros((cfg.cache_copies, n, c, h, w), np.float16)
    azs = np.zeros((cfg.cache_copies, n), np.float64)
    total = cfg.cache_copies * n + len(val_bank) + len(held_bank)
    bar = tqdm(total=total, desc="transfer features", unit="img", disable=not progress)
    with torch.no_grad():
        for k in range(cfg.cache_copies):
            backgrounds = pool.refresh(_seed(cfg.seed, k, "cache backgrounds")) if cfg.augment else None
            augmenter = Augmenter(size, aug_cfg, backgrounds)
            for i in range(0, n, bs):
                sl = slice(i, min(n, i + bs))
                x, az = augmenter(train_bank.rgb[sl], train_bank.mask[sl], train_bank.azimuth_deg[sl],
                                  _seed(cfg.seed, k, i, "cache augment"))  # fmt: skip
                feats[k, sl] = body_fn(normalise(x, mean, std)).numpy().astype(np.float16)
                azs[k, sl] = az
                bar.update(sl.stop - sl.start)
        out = {"train": feats, "train_az": azs}
        for name, bank in (("val", val_bank), ("held", held_bank)):
            x = _clean_images(bank, mean, std)
            maps = [body_fn(x[i : i + bs]) for i in range(0, len(x), bs)]
            bar.update(len(x))
            out[name] = torch.cat(maps) if maps else torch.zeros(0, c, h, w)
    bar.close()
    return out
