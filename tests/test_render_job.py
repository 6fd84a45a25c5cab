"""The render job: files and view table, resume, determinism, config changes, bad input."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import trimesh

from cadsearch.errors import InputError
from cadsearch.library import Library
from cadsearch.render.cameras import SAMPLERS
from cadsearch.render.job import RenderConfig, _model_seed, load_view, plan_cameras, read_view_table, render_views

SMALL = dict(size=32, light_jitter=False)


@pytest.fixture()
def workspace(tmp_path: Path) -> Path:
    """A workspace with two small coloured models."""
    box = trimesh.creation.box(extents=(1.0, 0.6, 0.4))
    box.visual.face_colors = [200, 60, 40, 255]
    cone = trimesh.creation.cone(radius=0.5, height=1.2)
    cone.visual.vertex_colors = [40, 90, 200, 255]
    for name, mesh in (("box", box), ("cone", cone)):
        mesh.export(tmp_path / f"{name}.ply")
    ws = tmp_path / "ws"
    report = Library.open(ws).add_paths([tmp_path / "box.ply", tmp_path / "cone.ply"], category="thing")
    assert not report.failed
    return ws


def test_writes_views_masks_depths_and_table(workspace: Path) -> None:
    summary = render_views(workspace, RenderConfig(views=3, **SMALL), progress=False)
    assert summary.rendered == 6 and summary.reused == 0 and summary.models == 2
    with (workspace / "views" / "views.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6
    assert list(rows[0]) == [
        "view_id",
        "model_id",
        "polar_deg",
        "azimuth_deg",
        "distance",
        "fov_deg",
        "quality",
        "background",
        "path",
        "mask_path",
        "depth_path",
    ]
    for row in read_view_table(workspace):
        rgb, mask, depth = load_view(workspace, row)
        assert rgb.shape == (32, 32, 3) and rgb.dtype == np.uint8
        assert mask.shape == (32, 32) and 0 < mask.mean() < 1
        # Depth is present exactly on the object (up to anti-aliased edge pixels).
        assert np.all(depth[mask > 0.99] > 0) and np.all(depth[mask == 0] == 0)
        assert 15.0 <= row.polar_deg <= 105.0 and 0.0 <= row.azimuth_deg < 360.0
    assert not list(workspace.rglob("*.tmp")), "temporary files left behind"


def test_deterministic_across_workspaces(tmp_path: Path, workspace: Path) -> None:
    config = RenderConfig(views=2, backgrounds="texture", **SMALL)
    render_views(workspace, config, progress=False)
    other = tmp_path / "ws2"
    Library.open(other).add_paths([tmp_path / "box.ply", tmp_path / "cone.ply"])
    render_views(other, config, progress=False)
    for a, b in zip(read_view_table(workspace), read_view_table(other), strict=True):
        assert (workspace / a.path).read_bytes() == (other / b.path).read_bytes()


def test_resume_renders_only_what_is_missing(workspace: Path) -> None:
    config = RenderConfig(views=4, **SMALL)
    render_views(workspace, config, progress=False)
    row = read_view_table(workspace)[5]
    (workspace / row.path).unlink()  # as if interrupted before this view's colour image was renamed in
    (workspace / "views" / row.model_id / "views.json").unlink()
    summary = render_views(workspace, config, progress=False)
    assert (summary.rendered, summary.reused) == (1, 7)
    assert (workspace / row.path).exists()
    again = render_views(workspace, config, progress=False)
    assert (again.rendered, again.reused) == (0, 8)


def test_more_random_views_keep_the_existing_ones(workspace: Path) -> None:
    render_views(workspace, RenderConfig(views=2, **SMALL), progress=False)
    before = {r.view_id: (r.polar_deg, r.azimuth_deg) for r in read_view_table(workspace)}
    summary = render_views(workspace, RenderConfig(views=3, **SMALL), progress=False)
    assert (summary.rendered, summary.reused) == (2, 4)
    after = {r.view_id: (r.polar_deg, r.azimuth_deg) for r in read_view_table(workspace)}
    assert all(after[k] == v for k, v in before.items())
    assert plan_cameras(RenderConfig(views=2), "m")[1][0] == plan_cameras(RenderConfig(views=5), "m")[1][0]


def test_random_cameras_come_from_the_shared_sampler_and_are_pinned() -> None:
    """The job draws its cameras with render/cameras.py's samplers (no sampler of its own), within its polar
    range; the values are pinned so that a seed keeps giving the views it gave before."""
    config = RenderConfig(views=3)
    cams = [c for c, _ in plan_cameras(config, "m")]
    polar, azimuth = SAMPLERS["random"](3, seed=_model_seed(0, "m"), polar_range=config.polar_range)
    assert [(c.polar_deg, c.azimuth_deg) for c in cams] == list(zip(polar.tolist(), azimuth.tolist(), strict=True))
    expected = [
        (80.96144362741478, 211.70296426096937),
        (82.67919218075501, 267.26470899672313),
        (76.27216754651398, 57.89493058340735),
    ]
    np.testing.assert_allclose([(c.polar_deg, c.azimuth_deg) for c in cams], expected, rtol=0, atol=1e-9)
    wide = plan_cameras(RenderConfig(views=200, polar_range=(40.0, 80.0)), "m")
    assert all(40.0 <= c.polar_deg <= 80.0 for c, _ in wide)


def test_changed_settings_rerender(workspace: Path) -> None:
    render_views(workspace, RenderConfig(views=2, **SMALL), progress=False)
    summary = render_views(workspace, RenderConfig(views=2, size=48, light_jitter=False), progress=False)
    assert summary.rendered == 4
    rgb, _, _ = load_view(workspace, read_view_table(workspace)[0])
    assert rgb.shape == (48, 48, 3)


def test_subset_of_models_keeps_other_rows(workspace: Path) -> None:
    render_views(workspace, RenderConfig(views=2, **SMALL), progress=False)
    render_views(workspace, RenderConfig(views=3, **SMALL), model_ids=["box"], progress=False)
    counts = {}
    for r in read_view_table(workspace):
        counts[r.model_id] = counts.get(r.model_id, 0) + 1
    assert counts == {"box": 3, "cone": 2}


def test_two_workers_match_one(tmp_path: Path, workspace: Path) -> None:
    config = RenderConfig(views=30, **SMALL)  # > one chunk per model, so both workers get work
    render_views(workspace, config, workers=2, progress=False)
    other = tmp_path / "ws1"
    Library.open(other).add_paths([tmp_path / "box.ply", tmp_path / "cone.ply"])
    render_views(other, config, workers=1, progress=False)
    a, b = read_view_table(workspace), read_view_table(other)
    assert a == b
    assert all((workspace / r.path).read_bytes() == (other / r.path).read_bytes() for r in a[::7])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(views=0), "--views"),
        (dict(quality="ultra"), "--quality"),
        (dict(sampling="spiral"), "--sampling"),
        (dict(backgrounds="/no/such/folder"), "--backgrounds"),
        (dict(polar_range=(100.0, 20.0)), "polar range"),
    ],
)
def test_bad_settings_are_input_errors(workspace: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        render_views(workspace, RenderConfig(**kwargs), progress=False)


def test_unknown_model_and_empty_library(tmp_path: Path, workspace: Path) -> None:
    with pytest.raises(InputError, match="unknown model id"):
        render_views(workspace, RenderConfig(views=1, **SMALL), model_ids=["nope"], progress=False)
    with pytest.raises(InputError, match="empty"):
        render_views(tmp_path / "empty", RenderConfig(views=1, **SMALL), progress=False)
    with pytest.raises(InputError, match="cadsearch render"):
        read_view_table(tmp_path / "empty")


def test_mixed_quality_renders_both_and_skybox_views_keep_the_sky(workspace: Path) -> None:
    config = RenderConfig(views=4, size=32, quality="mixed", high_fraction=0.5, spp=4, environment="daylight")
    render_views(workspace, config, progress=False)
    rows = read_view_table(workspace)
    assert {r.quality for r in rows} == {"low", "high"}
    for r in rows:
        # High views show the sky the ray tracer drew; low ones are composited over the plain backgrounds.
        assert r.background == ("skybox:daylight" if r.quality == "high" else "plain")
        rgb, mask, _ = load_view(workspace, r)
        assert 0 < mask.mean() < 1
        background = rgb[mask == 0].astype(float)
        if r.quality == "high":  # a sky varies across the picture
            assert background.std(axis=0).max() > 1.0
        else:  # a plain colour does not
            assert background.std(axis=0).max() < 1e-6


def test_ray_tracer_settings_need_the_ray_tracer(workspace: Path) -> None:
    with pytest.raises(InputError, match="--quality high"):
        render_views(workspace, RenderConfig(views=1, ground_plane=True), progress=False)
    with pytest.raises(InputError, match="built-in sky"):
        render_views(workspace, RenderConfig(views=1, quality="high", environment="mars"), progress=False)
