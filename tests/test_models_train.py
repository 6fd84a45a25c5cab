"""Training loop, checkpoints, resume, predictor and pictures, on a tiny workspace with a tiny network."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cadsearch.errors import InputError
from cadsearch.models import (
    checkpoint_path,
    list_models,
    load_predictor,
    train_model,
    write_feature_maps,
    write_filters,
)
from cadsearch.models.train import TrainConfig, apply_overrides, save_checkpoint
from conftest import TINY_TRAIN

TINY = TINY_TRAIN | {"num_threads": 2}


def test_registry_lists_both_models():
    assert {"scratch", "transfer"} <= set(list_models())


def test_train_writes_checkpoints_atomically_and_logs(tiny_views):
    s = train_model(tiny_views, "scratch", TINY, progress=False)
    folder = tiny_views / "checkpoints" / "scratch"
    assert s.checkpoint == checkpoint_path(tiny_views, "scratch") == folder / "best.pt"
    assert (folder / "best.pt").is_file() and (folder / "last.pt").is_file()
    assert not list(folder.glob(".*.tmp"))  # nothing half-written left behind
    assert s.epochs_run == 1 and s.best_epoch == 1 and not s.resumed
    assert {"top1", "pose_mean_deg", "pose_median_deg"} <= set(s.val_views)
    assert {"top1", "pose_mean_deg"} <= set(s.val_models)
    ckpt = torch.load(folder / "best.pt", weights_only=False)
    assert ckpt["config"]["width"] == 8 and ckpt["input_size"] == 32 and len(ckpt["model_ids"]) == 2
    assert ckpt["pose_head"] == "bins" and ckpt["mean"] and ckpt["std"] and ckpt["cadsearch_version"]
    assert list((tiny_views / "runs" / "scratch").glob("events.out.tfevents.*"))


def test_resume_continues_from_last(tiny_views):
    cfg = TINY | {"epochs": 2}
    train_model(tiny_views, "scratch", cfg, progress=False)
    last_path = tiny_views / "checkpoints" / "scratch" / "last.pt"
    last = torch.load(last_path, weights_only=False)
    # Pretend the run was interrupted after its first epoch.
    last["epoch"], last["history"] = 1, last["history"][:1]
    save_checkpoint(last_path, last)
    s = train_model(tiny_views, "scratch", cfg, progress=False)
    assert s.resumed and s.epochs_run == 1 and s.epochs_total == 2
    assert torch.load(last_path, weights_only=False)["epoch"] == 2
    # Finished: nothing left to do. A different config starts over, and says so.
    done = train_model(tiny_views, "scratch", cfg, progress=False)
    assert done.epochs_run == 0 and done.epochs_total == 2 and any("already trained" in n for n in done.notes)
    assert done.best_epoch >= 1 and "top1" in done.val_views  # the best checkpoint's metrics are returned
    # A longer run of the same config extends it.
    s = train_model(tiny_views, "scratch", cfg | {"epochs": 3}, progress=False)
    assert s.resumed and s.epochs_run == 1 and s.epochs_total == 3
    s = train_model(tiny_views, "scratch", TINY | {"seed": 1}, progress=False)
    assert not s.resumed and s.epochs_run == 1 and any("starting over" in n for n in s.notes)


def test_override_errors_name_the_key():
    with pytest.raises(InputError, match="nope"):
        apply_overrides(TrainConfig(), {"nope": 1})
    with pytest.raises(InputError, match="epochs"):
        apply_overrides(TrainConfig(), {"epochs": "many"})
    with pytest.raises(InputError, match="lr"):
        apply_overrides(TrainConfig(), {"lr": [1]})
    assert apply_overrides(TrainConfig(), {"lr": 1, "epochs": "3"}).lr == 1.0
    with pytest.raises(InputError, match="pose_head"):
        train_model("/nonexistent", "scratch", {"pose_head": "cone"}, progress=False)


def test_load_predictor_missing_or_corrupt(tmp_path):
    with pytest.raises(InputError, match="cadsearch train scratch"):
        load_predictor(checkpoint_path(tmp_path, "scratch"))
    bad = tmp_path / "checkpoints" / "transfer" / "best.pt"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cadsearch train transfer"):
        load_predictor(bad)


def test_predict_shapes_norms_ranges_and_pictures(tiny_views, tmp_path):
    train_model(tiny_views, "scratch", TINY | {"pose_head": "vector"}, progress=False)
    p = load_predictor(checkpoint_path(tiny_views, "scratch"))
    assert p.arch == "scratch" and p.input_size == 32 and len(p.model_ids) == 2
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (40, 70, 3), dtype=np.uint8), rng.integers(0, 256, (90, 50), dtype=np.uint8)]
    out = p.predict(images)
    assert out.embedding.shape == (2, 16) and out.embedding.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out.embedding, axis=1), 1.0, atol=1e-5)
    assert out.class_probs.shape == (2, 2)
    np.testing.assert_allclose(out.class_probs.sum(1), 1.0, atol=1e-5)
    assert np.all((out.polar_deg >= 0) & (out.polar_deg <= 180))
    assert np.all((out.azimuth_deg >= 0) & (out.azimuth_deg < 360))
    assert len(p.predict(images[0])) == 1  # a single image works too
    # The mirror image's embedding (for search's category vote) is that of the flipped photo, run alone.
    flipped = p.predict([np.ascontiguousarray(images[0][:, ::-1])], flip_pose=False).embedding[0]
    np.testing.assert_allclose(out.mirror_embedding[0], flipped, atol=1e-4)
    assert p.predict(images, flip_pose=False).mirror_embedding is None
    assert out.pose_modes is None  # a vector head has no distribution to list modes of
    assert out.view_map is None and p.view_maps(images).shape == (2, 0)  # its body is trained, not ImageNet's
    assert len(p.predict(np.stack([images[0]] * 3))) == 3

    photo = tmp_path / "photo.png"
    Image.fromarray(images[0]).save(photo)
    f = write_filters(checkpoint_path(tiny_views, "scratch"), tmp_path / "filters.png")
    m = write_feature_maps(checkpoint_path(tiny_views, "scratch"), photo, tmp_path / "maps.png", ["conv1", "conv3"])
    assert Image.open(f).size[0] > 0 and Image.open(m).size[1] > 0
    with pytest.raises(InputError, match="conv1"):
        write_feature_maps(checkpoint_path(tiny_views, "scratch"), photo, tmp_path / "x.png", ["nope"])


def test_category_loss_trains_a_category_head_only_when_asked_and_with_two_categories(tiny_views):
    import sqlite3

    from cadsearch.index import build_index
    from cadsearch.library import Library
    from cadsearch.search import Searcher
    from cadsearch.search.calibration import load_or_fit_calibration

    # One category: nothing to classify, so no head even when asked.
    train_model(tiny_views, "scratch", TINY | {"category_weight": 1.0}, progress=False)
    ckpt = torch.load(checkpoint_path(tiny_views, "scratch"), weights_only=False)
    assert ckpt["categories"] == [] and not any(k.startswith("heads.category") for k in ckpt["state_dict"])
    # Three models of three categories: whichever two are trained on, they differ.
    ids = [m.model_id for m in Library.open(tiny_views).list()]
    with sqlite3.connect(tiny_views / "catalog.sqlite") as db:
        for model_id, category in zip(ids, ("cup", "table"), strict=False):
            db.execute("UPDATE models SET category = ? WHERE model_id = ?", (category, model_id))
    s = train_model(tiny_views, "scratch", TINY | {"category_weight": 1.0, "seed": 1}, progress=False)
    ckpt = torch.load(checkpoint_path(tiny_views, "scratch"), weights_only=False)
    assert len(ckpt["categories"]) == 2 and ckpt["model_kwargs"]["num_categories"] == 2
    assert ckpt["state_dict"]["heads.category.weight"].shape == (2, 16)
    last = torch.load(tiny_views / "checkpoints" / "scratch" / "last.pt", weights_only=False)
    assert last["history"][-1]["train"]["category"] > 0 and s.epochs_run == 1
    p = load_predictor(checkpoint_path(tiny_views, "scratch"))  # the predictor rebuilds the head from the kwargs
    assert p.model.heads.category is not None
    with pytest.raises(InputError, match="category_weight"):
        train_model(tiny_views, "scratch", TINY | {"category_weight": -1.0}, progress=False)

    # The searcher of this library votes at the category temperature fitted beside the score temperature.
    build_index(tiny_views, "scratch", progress=False)
    searcher = Searcher.from_workspace(tiny_views, "scratch", refine_top=0)
    fit = load_or_fit_calibration(tiny_views, "scratch", searcher.index, searcher.predictor)["category"]
    assert fit is not None and searcher.vote_temperature == pytest.approx(fit["temperature"])


def test_metric_term_and_lookalike_batches_train_and_are_checked(tiny_views):
    # 2 training models × 4 views per batch: every view has positives, so the metric term is trained on.
    s = train_model(tiny_views, "scratch", TINY | {"metric_weight": 1.0, "batch_models": 2}, progress=False)
    last = torch.load(tiny_views / "checkpoints" / "scratch" / "last.pt", weights_only=False)
    assert last["history"][-1]["train"]["metric"] > 0 and s.epochs_run == 1
    assert last["config"]["batch_models"] == 2 and last["config"]["metric_weight"] == 1.0
    for bad in ({"metric_weight": -1.0}, {"metric_temperature": 0.0}, {"batch_models": 1}, {"batch_models": 5}):
        with pytest.raises(InputError, match=next(iter(bad))):
            train_model(tiny_views, "scratch", TINY | bad, progress=False)
