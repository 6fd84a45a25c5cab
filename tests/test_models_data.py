"""Augmentations and splits of cadsearch.models.data: behaviour, not accuracy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cadsearch.errors import InputError
from cadsearch.models.data import (
    AugmentConfig,
    Augmenter,
    BackgroundPool,
    flip_azimuth,
    make_splits,
    preprocess_images,
)
from cadsearch.render.job import read_view_table


def _views(n: int = 4, s: int = 32, seed: int = 0):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (n, s, s, 3), dtype=np.uint8)
    mask = np.zeros((n, s, s), np.uint8)
    mask[:, 8:24, 10:20] = 255  # a hard-edged "object"
    az = np.array([0.0, 30.0, 90.0, 200.0])[:n]
    return rgb, mask, az


def test_flip_mirrors_image_and_relabels_azimuth():
    rgb, mask, az = _views()
    cfg = AugmentConfig.none()
    cfg.p_flip = 1.0
    x, az_out = Augmenter(32, cfg)(rgb, mask, az, seed=1)
    expected = torch.from_numpy(rgb[:, :, ::-1].copy()).permute(0, 3, 1, 2).float() / 255.0
    assert torch.allclose(x, expected, atol=1e-4)
    np.testing.assert_allclose(az_out, (360.0 - az) % 360.0)
    np.testing.assert_allclose(flip_azimuth([0.0, 90.0, 359.0]), [0.0, 270.0, 1.0])


def test_background_composite_changes_only_background_pixels():
    rgb, mask, az = _views()
    cfg = AugmentConfig.none()
    cfg.p_background = 1.0
    bg = np.full((3, 32, 32, 3), 7, np.uint8)
    x, _ = Augmenter(32, cfg, bg)(rgb, mask, az, seed=3)
    img = torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 255.0
    obj = torch.from_numpy(mask == 255).unsqueeze(1).expand_as(x)
    assert torch.allclose(x[obj], img[obj], atol=1e-5)
    assert torch.allclose(x[~obj], torch.full_like(x[~obj], 7 / 255.0), atol=1e-5)


def test_no_augmentation_is_identity():
    rgb, mask, az = _views()
    x, az_out = Augmenter(32, AugmentConfig.none())(rgb, mask, az, seed=0)
    assert torch.allclose(x, torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 255.0, atol=1e-5)
    np.testing.assert_array_equal(az_out, az)


def test_full_augmentation_shapes_and_determinism():
    rgb, mask, az = _views(s=48)
    pool = BackgroundPool("random", 32, pool_size=4)
    pool.refresh(0)
    aug = Augmenter(32, AugmentConfig(p_jpeg=1.0, p_blur=1.0, p_noise=1.0, p_occlude=1.0), pool.images)
    x1, a1 = aug(rgb, mask, az, seed=5)
    x2, a2 = aug(rgb, mask, az, seed=5)
    x3, _ = aug(rgb, mask, az, seed=6)
    assert x1.shape == (4, 3, 32, 32) and x1.dtype == torch.float32
    assert float(x1.min()) >= 0.0 and float(x1.max()) <= 1.0
    assert torch.equal(x1, x2) and np.array_equal(a1, a2)
    assert not torch.equal(x1, x3)
    assert set(np.round(a1, 6)) <= set(np.round(az, 6)) | set(np.round((360 - az) % 360, 6))


def test_clutter_puts_other_objects_behind_never_over_the_object():
    """Clutter behind: background pixels change (other objects of the batch appear) and the object's own pixels
    stay exactly the render's; labels are untouched."""
    rgb, mask, az = _views()
    rgb[:] = np.arange(4, dtype=np.uint8).reshape(4, 1, 1, 1) * 60 + 20  # each view one flat colour
    bg = np.full((3, 32, 32, 3), 7, np.uint8)
    cfg = AugmentConfig.none()
    cfg.p_background, cfg.p_clutter = 1.0, 1.0
    x, az_out = Augmenter(32, cfg, bg)(rgb, mask, az, seed=3)
    img = torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 255.0
    obj = torch.from_numpy(mask == 255).unsqueeze(1).expand_as(x)
    assert torch.allclose(x[obj], img[obj], atol=1e-5)
    behind = ~obj & (x - 7 / 255.0).abs().gt(1e-3)
    assert behind.any(dim=(1, 2, 3)).float().mean() >= 0.5  # most images show another object beside this one
    np.testing.assert_array_equal(az_out, az)


def test_clutter_in_front_covers_part_of_the_object():
    rgb, mask, az = _views(s=64)
    mask[:] = 0
    mask[:, 8:56, 8:56] = 255  # a big object, so that an object moved aside overlaps its edge
    cfg = AugmentConfig.none()
    cfg.p_clutter_front = 1.0
    x, _ = Augmenter(64, cfg)(rgb, mask, np.zeros(4), seed=0)
    img = torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 255.0
    changed = (x - img).abs().amax(1) > 1e-3  # (B, S, S)
    covered = (changed & torch.from_numpy(mask == 255)).float().mean(dim=(1, 2)) / (48 * 48 / 64**2)
    assert (covered > 0).any() and (covered < 0.6).all()  # part of the object, never most of it


def test_background_pool_is_deterministic_per_seed(tmp_path):
    pool = BackgroundPool("random", 16, pool_size=3)
    assert np.array_equal(pool.refresh(1), BackgroundPool("random", 16, pool_size=3).refresh(1))
    with pytest.raises(InputError):
        BackgroundPool(str(tmp_path / "missing"), 16)


def test_preprocess_accepts_any_size_and_grayscale():
    images = [np.zeros((30, 50, 3), np.uint8), np.full((70, 20), 255, np.uint8)]
    x = preprocess_images(images, 32, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert x.shape == (2, 3, 32, 32)
    assert torch.allclose(x[1], torch.ones_like(x[1]))
    with pytest.raises(InputError):
        preprocess_images([np.zeros((4, 4, 5), np.uint8)], 8, (0.5,) * 3, (0.5,) * 3)


def test_splits_are_disjoint_and_hold_out_whole_models(tiny_views):
    s = make_splits(tiny_views, holdout_models=1, val_fraction=0.25, seed=0)
    assert len(s.model_ids) == 2 and len(s.holdout_model_ids) == 1
    train, val, held = ({r.view_id for r in part} for part in (s.train, s.val_views, s.val_models))
    assert not (train & val) and not (train & held) and not (val & held)
    assert {r.model_id for r in s.val_models} == set(s.holdout_model_ids)
    assert s.holdout_model_ids[0] not in {r.model_id for r in s.train}
    assert len(make_splits(tiny_views, holdout_models=5).model_ids) == 2  # clamped: 2 models stay for training


def test_view_bank_carries_each_models_symmetry(tiny_views):
    """Training reads the catalog's symmetry per view (missing: none), which picks the pose targets."""
    from cadsearch.metrics import symmetric_target_azimuth
    from cadsearch.models.data import ViewBank
    from cadsearch.render.job import read_view_table

    rows = read_view_table(tiny_views)
    models = sorted({r.model_id for r in rows})
    bank = ViewBank.load(tiny_views, rows, models, size=32, progress=False, symmetry={models[0]: 0, models[1]: 4})
    expected = [{models[0]: 0, models[1]: 4}.get(r.model_id, 1) for r in rows]
    assert bank.symmetry.tolist() == expected
    targets = symmetric_target_azimuth(bank.azimuth_deg, bank.symmetry)
    first, second, third = (np.array([r.model_id == m for r in rows]) for m in models)
    assert np.all(targets[first] == 0.0) and np.all(targets[second] < 90.0)
    assert np.allclose(targets[third], bank.azimuth_deg[third] % 360.0)
    assert ViewBank.load(tiny_views, rows[:2], models, size=32, progress=False).symmetry.tolist() == [1, 1]


def test_roll_turns_the_object_within_its_range_and_keeps_the_labels():
    n, s = 8, 48
    rgb = np.zeros((n, s, s, 3), np.uint8)
    rgb[:, 8:40, 22:26] = 255  # a vertical bar
    mask = (rgb[..., 0] > 0).astype(np.uint8) * 255
    az = np.linspace(0.0, 315.0, n)
    cfg = AugmentConfig.none()
    cfg.roll_deg, cfg.p_roll = 30.0, 1.0
    x, az_out = Augmenter(s, cfg)(rgb, mask, az, seed=5)
    np.testing.assert_array_equal(az_out, az)  # a roll moves no camera direction
    angles = []
    for img in x[:, 0].numpy():
        ys, xs = np.nonzero(img > 0.5)
        cov = np.cov(np.stack([xs, ys]).astype(np.float64))
        vec = np.linalg.eigh(cov)[1][:, -1]  # the bar's long axis
        angles.append(np.degrees(np.arctan2(abs(vec[0]), abs(vec[1]))))  # 0 = vertical
    assert max(angles) <= 32.0 and max(angles) > 5.0 and len({round(a) for a in angles}) > 3
    cfg.p_roll = 0.0
    still, _ = Augmenter(s, cfg)(rgb, mask, az, seed=5)
    assert torch.allclose(still, torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 255.0, atol=1e-5)


def test_a_checkpoint_from_before_roll_was_a_default_is_another_run():
    from dataclasses import asdict

    from cadsearch.models.train import TrainConfig, _same_run

    new = asdict(TrainConfig(arch="transfer"))
    old = {k: v for k, v in new.items() if k != "roll"}  # written before the setting existed: trained without roll
    assert not _same_run(old, new)
    assert _same_run(old, new | {"roll": 0.0}) and _same_run(new, new)


def test_the_transfer_network_trains_with_the_category_loss_by_default_and_older_runs_stay_what_they_were():
    from dataclasses import asdict

    from cadsearch.models.train import TrainConfig, _same_run

    assert TrainConfig.defaults("transfer").category_weight == 1.0
    assert TrainConfig.defaults("scratch").category_weight == 0.0  # not measured with it yet
    new = asdict(TrainConfig.defaults("transfer"))
    old = {k: v for k, v in new.items() if k != "category_weight"}  # written before the setting existed: no loss
    assert not _same_run(old, new) and _same_run(old, new | {"category_weight": 0.0})
    assert not _same_run(new | {"category_weight": 0.0}, new)  # explicitly without it: another run


def test_the_transfer_network_estimates_pose_with_three_members_by_default_and_older_runs_stay_single():
    from dataclasses import asdict

    from cadsearch.models.train import TrainConfig, _same_run

    assert TrainConfig.defaults("transfer").pose_members == 3
    assert TrainConfig.defaults("scratch").pose_members == 1  # members share the frozen body: transfer only
    new = asdict(TrainConfig.defaults("transfer"))
    old = {k: v for k, v in new.items() if k != "pose_members"}  # written before the setting existed: one estimator
    assert not _same_run(old, new) and _same_run(old, new | {"pose_members": 1})


def test_the_transfer_network_trains_beside_100_extra_chairs_by_default_and_older_runs_stay_without():
    from dataclasses import asdict

    from cadsearch.models.train import TrainConfig, _same_run

    assert TrainConfig.defaults("transfer").extra_chairs == 100
    assert TrainConfig.defaults("scratch").extra_chairs == 0  # not measured with them; its training is long already
    new = asdict(TrainConfig.defaults("transfer"))
    old = {k: v for k, v in new.items() if k != "extra_chairs"}  # written before the setting existed: none
    assert not _same_run(old, new) and _same_run(old, new | {"extra_chairs": 0})
    assert not _same_run(new | {"extra_chairs": 0}, new)  # a run of the old default starts over, said so


def test_the_scratch_network_trains_40_epochs_by_default_and_a_finished_20_epoch_run_is_extended():
    from dataclasses import asdict

    from cadsearch.models.train import TrainConfig, _same_run

    assert TrainConfig.defaults("scratch").epochs == 40
    assert TrainConfig.defaults("transfer").epochs == 20  # unchanged: not measured with more
    new = asdict(TrainConfig.defaults("scratch"))
    assert _same_run(new | {"epochs": 20}, new)  # the run's length only: an older run resumes and goes on


def test_the_scratch_pose_loss_weighs_twice_by_default_and_a_run_weighted_once_starts_over():
    from dataclasses import asdict

    from cadsearch.models.train import TrainConfig, _same_run

    assert TrainConfig.defaults("scratch").pose_weight == 2.0
    assert TrainConfig.defaults("transfer").pose_weight == 1.0  # unchanged: not measured with 2
    new = asdict(TrainConfig.defaults("scratch"))
    assert not _same_run(new | {"pose_weight": 1.0}, new)  # another loss is another run, not a longer one


def test_the_scratch_network_rolls_10_degrees_within_a_40_minute_budget_by_default():
    from dataclasses import asdict

    from cadsearch.models.train import TrainConfig, _same_run

    scratch, transfer = TrainConfig.defaults("scratch"), TrainConfig.defaults("transfer")
    assert (scratch.roll, scratch.max_minutes) == (10.0, 40.0)
    assert (transfer.roll, transfer.max_minutes) == (25.0, 0.0)  # unchanged: not measured
    new = asdict(scratch)
    assert not _same_run(new | {"roll": 25.0}, new)  # other views are another run: it starts over
    assert _same_run(new | {"max_minutes": 0.0}, new)  # the budget is the run's length: a run without it resumes


def test_a_checkpoint_from_before_the_metric_term_existed_resumes_as_the_same_run():
    from dataclasses import asdict

    from cadsearch.models.train import TrainConfig, _same_run

    new = asdict(TrainConfig.defaults("transfer"))
    assert new["metric_weight"] == 0.0 and new["batch_models"] == 0  # measured, no gain: off by default
    old = {k: v for k, v in new.items() if k not in ("metric_weight", "metric_temperature", "batch_models")}
    assert _same_run(old, new)
    assert not _same_run(old, new | {"metric_weight": 1.0, "batch_models": 8})


def _view_table(ws, model_ids, views=4):
    """A view table (``views/views.csv``) naming ``views`` views of each model; no images (splits read only it)."""
    lines = ["view_id,model_id,polar_deg,azimuth_deg,distance,fov_deg,quality,background,path,mask_path,depth_path"]
    for m in model_ids:
        for v in range(views):
            p = f"views/{m}/{v:04d}"
            lines.append(f"{m}/{v:04d},{m},60.0,{30.0 * v},3.0,35.0,low,plain,{p}.png,{p}_mask.png,{p}_depth.png")
    (ws / "views").mkdir(parents=True, exist_ok=True)
    (ws / "views" / "views.csv").write_text("\n".join(lines) + "\n")
    return ws


def test_extra_rows_are_all_trained_on_and_leave_the_workspace_split_unchanged(tmp_path):
    """Views of training-only models (``extra_rows``) all go to training, their classes come after the
    workspace's, and the workspace's own split (held-out models, validation views, class indices) is the one the
    same seed draws without them: a fair comparison, and the calibration can redraw it without the extras."""
    library = [f"chair-s0-{i:03d}" for i in range(6)]
    extras = [f"chair-s9001-{i:03d}" for i in range(5)]
    ws = _view_table(tmp_path / "ws", library)
    extra_rows = read_view_table(_view_table(tmp_path / "extras", extras))
    for seed in range(4):
        alone = make_splits(ws, holdout_models=2, val_fraction=0.25, seed=seed)
        s = make_splits(ws, holdout_models=2, val_fraction=0.25, seed=seed, extra_rows=extra_rows)
        assert s.holdout_model_ids == alone.holdout_model_ids and s.val_views == alone.val_views
        assert s.model_ids == alone.model_ids + extras
        assert s.train == alone.train + extra_rows
    with pytest.raises(InputError, match="also the workspace"):
        make_splits(ws, extra_rows=read_view_table(_view_table(tmp_path / "clash", library[:1])))
