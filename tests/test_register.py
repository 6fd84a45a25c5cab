"""Registration (:mod:`cadsearch.register`): placement geometry, roll convention, render-and-compare refinement,
object masks, and the searcher filling ``roll_deg`` / ``placement`` / ``silhouette_iou``."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from cadsearch.detect.masks import frame_mask
from cadsearch.framing import Frame, frame_for
from cadsearch.library.procedural import generate_chair
from cadsearch.register import Placement, RefineConfig, object_mask, refine_pose, silhouette_iou, warp_render
from cadsearch.register.masks import restrict_to_box
from cadsearch.register.refine import SilhouetteRenderer, silhouette_extent, silhouette_mesh
from cadsearch.render.cameras import Camera, camera_rotation, pose_error_deg, rotation_error_deg
from cadsearch.render.raster import RasterRenderer


def _bar_render(size: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """A render with a vertical bar above the centre: (rgb, alpha)."""
    alpha = np.zeros((size, size), np.float32)
    alpha[10:40, 45:55] = 1.0
    return np.zeros((size, size, 3), np.uint8), alpha


def test_placement_turns_the_render_counter_clockwise() -> None:
    rgb, alpha = _bar_render()
    # roll 90°: the bar above the centre turns to the centre's left (counter-clockwise as seen on screen)
    _, warped = warp_render(Placement(200, 150, 100, 90.0), rgb, alpha, 300, 400)
    ys, xs = np.nonzero(warped > 0.5)
    assert xs.max() < 200 and abs(ys.mean() - 150) < 3
    # roll 0, side doubled: the bar stays above, twice as long
    _, warped = warp_render(Placement(200, 150, 200, 0.0), rgb, alpha, 300, 400)
    ys, xs = np.nonzero(warped > 0.5)
    assert ys.max() < 150 and 55 <= ys.max() - ys.min() + 1 <= 65
    p = Placement(200, 150, 100, 30.0)
    assert np.allclose(p.to_photo(np.array([[50.0, 50.0]]), 100), [[200, 150]])
    assert p.scaled(0.5) == Placement(100, 75, 50, 30.0)
    assert Placement.from_frame(Frame(10, 20, 100)) == Placement(60, 70, 100, 0.0)
    assert p.square() == Frame(150, 100, 100)  # unturned, whatever the roll
    assert Placement.from_frame(Frame(10, 20, 100), 30.0).square() == Frame(10, 20, 100)


def test_camera_roll_convention() -> None:
    # a front camera rolled +30°: the world's up leans to the image's left (object turned counter-clockwise)
    up_in_camera = camera_rotation(90, 0, 30) @ np.array([0.0, 1.0, 0.0])
    assert up_in_camera[0] < -0.4 and up_in_camera[1] > 0.8
    assert rotation_error_deg(60, 30, 5, 60, 30, -5) == pytest.approx(10.0, abs=1e-6)
    assert rotation_error_deg(60, 30, 0, 70, 30, 0) == pytest.approx(float(pose_error_deg(60, 30, 70, 30)), abs=1e-6)
    assert rotation_error_deg(60, 30, 0, 60, 30, 180) == pytest.approx(180.0, abs=1e-6)


@pytest.fixture(scope="module", name="chair")
def chair_fixture() -> trimesh.Trimesh:
    return generate_chair(0, "slat_back").mesh


def _photo_of(mesh: trimesh.Trimesh, polar: float, azimuth: float, placement: Placement, h: int = 240, w: int = 320):
    with RasterRenderer(size=192, samples=4) as r:
        out = r.render(mesh, Camera(polar, azimuth))
    rgb, alpha = warp_render(placement, out.rgb, out.alpha, h, w)
    photo = rgb + (1.0 - alpha[..., None]) * np.array([225.0, 228.0, 232.0])
    return np.clip(photo + 0.5, 0, 255).astype(np.uint8), alpha


def test_refine_recovers_roll_scale_position_and_pose(chair: trimesh.Trimesh) -> None:
    truth = (72.0, 40.0, 18.0)  # polar, azimuth, roll
    placement = Placement(170.0, 118.0, 230.0, truth[2])
    _, alpha = _photo_of(chair, truth[0], truth[1], placement)
    ys, xs = np.nonzero(alpha > 0.5)
    frame = frame_for(240, 320, (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1), 0.2)
    target = frame_mask(alpha, 192, frame)
    reg = refine_pose(chair, target, frame, truth[0] + 9.0, truth[1] - 10.0)  # the search's estimate: ~13° off
    assert rotation_error_deg(*truth, reg.polar_deg, reg.azimuth_deg, reg.roll_deg) < 5.0
    assert abs(reg.roll_deg - truth[2]) < 3.0
    assert reg.iou > 0.85 and reg.iou > reg.iou_start
    assert abs(reg.placement.side - placement.side) < 0.05 * placement.side
    assert np.hypot(reg.placement.cx - placement.cx, reg.placement.cy - placement.cy) < 6.0
    assert reg.renders <= 1 + RefineConfig().max_renders  # the estimate, then the local search's budget
    # the placed model is as large as the rolled chair looks in the photo
    ys, xs = np.nonzero(alpha > 0.5)
    size = max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
    assert abs(reg.extent - size) < 0.06 * size


def test_wide_refinement_recovers_from_a_mirrored_estimate(chair: trimesh.Trimesh) -> None:
    truth = (70.0, 50.0, -12.0)
    placement = Placement(160.0, 120.0, 220.0, truth[2])
    _, alpha = _photo_of(chair, truth[0], truth[1], placement)
    frame = frame_for(240, 320)
    target = frame_mask(alpha, 192, frame)
    local = refine_pose(chair, target, frame, truth[0], 360.0 - truth[1])  # the left-right confusion
    wide = refine_pose(chair, target, frame, truth[0], 360.0 - truth[1], cfg=RefineConfig.wide())
    assert rotation_error_deg(*truth, wide.polar_deg, wide.azimuth_deg, wide.roll_deg) < 5.0
    assert rotation_error_deg(*truth, local.polar_deg, local.azimuth_deg, local.roll_deg) > 30.0  # stays local


def test_refine_starts_from_a_probable_alternative_and_the_prior_keeps_a_confident_estimate(
    chair: trimesh.Trimesh,
) -> None:
    truth = (70.0, 50.0, -12.0)
    placement = Placement(160.0, 120.0, 220.0, truth[2])
    _, alpha = _photo_of(chair, truth[0], truth[1], placement)
    frame = frame_for(240, 320)
    target = frame_mask(alpha, 192, frame)
    wrong = (truth[0], 360.0 - truth[1])  # the left-right confusion: a local search stays there (test above)
    near_truth = (truth[0] + 8.0, truth[1] - 10.0)
    # the search's second mode lies near the truth and holds a fair share of its belief: it wins on the outline
    reg = refine_pose(chair, target, frame, *wrong, alternatives=[(*wrong, 0.6), (*near_truth, 0.3)])
    assert rotation_error_deg(*truth, reg.polar_deg, reg.azimuth_deg, reg.roll_deg) < 5.0
    # the same pose held as all but impossible (mass 0.001 against 0.6): the silhouette alone does not overrule
    # a confident search, the estimate stays
    reg = refine_pose(chair, target, frame, *wrong, alternatives=[(*wrong, 0.6), (*near_truth, 0.001)])
    assert pose_error_deg(*wrong, reg.polar_deg, reg.azimuth_deg) < 20.0
    # one hypothesis: alternatives ignored (the old local refinement)
    reg = refine_pose(chair, target, frame, *wrong, cfg=RefineConfig(hypotheses=1),
                      alternatives=[(*wrong, 0.6), (*near_truth, 0.3)])  # fmt: skip
    assert pose_error_deg(*wrong, reg.polar_deg, reg.azimuth_deg) < 20.0


def test_the_roll_prior_keeps_the_model_upright_unless_the_outline_needs_the_roll(chair: trimesh.Trimesh) -> None:
    truth = (72.0, 40.0, 55.0)  # a camera rolled far beyond the ±25° real photos rarely leave
    _, alpha = _photo_of(chair, truth[0], truth[1], Placement(160.0, 120.0, 220.0, truth[2]))
    frame = frame_for(240, 320)
    target = frame_mask(alpha, 192, frame)
    free = refine_pose(chair, target, frame, *truth[:2], cfg=RefineConfig(roll_weight=0.0))
    assert abs(free.roll_deg - truth[2]) < 3.0  # without the prior the outline alone decides
    held = refine_pose(chair, target, frame, *truth[:2], cfg=RefineConfig(roll_weight=0.05))
    assert held.roll_deg < truth[2] - 10.0 and held.iou < free.iou  # the prior gives up fit for a plausible roll
    # within roll_free the prior costs nothing, and just beyond it a clear outline still outweighs it
    for roll in (-20.0, 35.0):
        _, alpha = _photo_of(chair, truth[0], truth[1], Placement(160.0, 120.0, 220.0, roll))
        reg = refine_pose(chair, frame_mask(alpha, 192, frame), frame, *truth[:2], cfg=RefineConfig(roll_weight=0.05))
        assert abs(reg.roll_deg - roll) < 3.0
    assert RefineConfig().roll_weight > 0.0  # the prior is on by default


def test_only_a_mask_that_agrees_with_its_box_is_trusted() -> None:
    from cadsearch.register.masks import mask_is_trusted

    frame = Frame(0.0, 0.0, 200.0)
    box = (50.0, 40.0, 150.0, 180.0)  # photo pixels = mask pixels here (200 px frame, 200 px mask)
    whole = np.zeros((200, 200), np.float32)
    whole[45:175, 60:140] = 1.0  # a chair's outline filling most of its box
    part = np.zeros((200, 200), np.float32)
    part[110:135, 60:140] = 1.0  # the seat alone
    assert mask_is_trusted(whole, frame, "detector", box)
    assert not mask_is_trusted(part, frame, "detector", box)
    assert mask_is_trusted(part, frame, "backdrop", None)  # a plain backdrop's mask is exact
    assert not mask_is_trusted(whole, frame, "detector", None)  # no detection box to check it against
    assert not mask_is_trusted(np.zeros((200, 200), np.float32), frame, "detector", box)


def test_refine_stays_put_when_the_estimate_is_right(chair: trimesh.Trimesh) -> None:
    placement = Placement(160.0, 120.0, 220.0, 0.0)
    _, alpha = _photo_of(chair, 80.0, 300.0, placement)
    frame = frame_for(240, 320)
    reg = refine_pose(chair, frame_mask(alpha, 192, frame), frame, 80.0, 300.0)
    assert pose_error_deg(80.0, 300.0, reg.polar_deg, reg.azimuth_deg) < 3.0 and abs(reg.roll_deg) < 2.0
    # on the refinement's 80-cell grid over a 320 px frame the chair's 2–3 px legs are half-covered cells
    assert reg.iou > 0.8 and reg.iou >= reg.iou_start
    # the placed model's size is its outline's, not its render square's (which the chair fills only in part)
    ys, xs = np.nonzero(alpha > 0.5)
    size = max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
    assert abs(reg.extent - size) < 0.05 * size and reg.extent < 0.9 * reg.placement.side


def test_silhouette_extent_is_the_longer_side_of_its_box_in_the_photo() -> None:
    sil = np.zeros((100, 100), np.float32)
    sil[10:40, 45:55] = 1.0  # a 30 x 10 bar
    assert silhouette_extent(sil, Placement(50, 50, 100)) == pytest.approx(30.0)
    assert silhouette_extent(sil, Placement(50, 50, 200)) == pytest.approx(60.0)  # a render square twice as large
    assert silhouette_extent(sil, Placement(50, 50, 100, 90.0)) == pytest.approx(30.0)  # lying: as wide as it was tall
    # turned by 45°, its box in the photo is (30 + 10) / √2 on each side
    assert silhouette_extent(sil, Placement(50, 50, 100, 45.0)) == pytest.approx(40 / np.sqrt(2), abs=1.0)
    assert silhouette_extent(np.zeros((8, 8)), Placement(4, 4, 8)) == 0.0


def test_silhouette_mesh_keeps_the_outline_of_a_dense_mesh() -> None:
    dense = trimesh.creation.cylinder(radius=0.5, height=1.2, sections=6000)  # 24,000 faces, 0.5 mm apart
    simple = silhouette_mesh(dense)
    assert len(simple.faces) < len(dense.faces) / 2
    with RasterRenderer(size=96, samples=1) as r:
        for azimuth in (0.0, 70.0):
            a, b = r.render(dense, Camera(60, azimuth)).alpha, r.render(simple, Camera(60, azimuth)).alpha
            assert silhouette_iou(a, b) > 0.97
    sr = SilhouetteRenderer(64)
    try:
        assert sr(dense, 60, 0, key="ellipsoid").shape == (64, 64)
    finally:
        sr.close()


def test_silhouettes_of_keyed_meshes_are_kept(chair: trimesh.Trimesh) -> None:
    sr, off = SilhouetteRenderer(48, renders_kept=2), SilhouetteRenderer(48, renders_kept=0)
    drawn = []
    render = sr._renderer.render
    sr._renderer.render = lambda *a, **k: drawn.append(a[1]) or render(*a, **k)
    try:
        first = sr(chair, 60, 30, key="chair")
        first[:] = 0.0  # the caller's copy: writing into it must not reach the kept one
        again = sr(chair, 60, 390, key="chair")  # the same azimuth
        assert len(drawn) == 1 and again.sum() > 0
        np.testing.assert_array_equal(again, off(chair, 60, 30, key="chair"))
        assert not off._renders  # renders_kept=0 keeps none
        again[:] = 0.0
        assert sr(chair, 60, 30, key="chair").sum() > 0 and len(drawn) == 1
        sr(chair, 60, 30)  # no key: never kept
        sr(chair, 60, 30)
        assert len(drawn) == 3
        sr(chair, 70, 30, key="chair")
        sr(chair, 60, 30, key="chair")  # used again: (70, 30) is now the least recently used ...
        sr(chair, 80, 30, key="chair")  # ... and goes for a third pose
        sr(chair, 60, 30, key="chair")
        assert len(drawn) == 5
        sr(chair, 70, 30, key="chair")
        assert len(drawn) == 6
    finally:
        sr.close()
        off.close()


def test_object_mask_from_a_plain_backdrop(chair: trimesh.Trimesh) -> None:
    photo, alpha = _photo_of(chair, 75.0, 30.0, Placement(160.0, 120.0, 220.0))
    frame = frame_for(240, 320)
    found = object_mask(photo, frame)
    assert found is not None and found[1] == "backdrop"
    assert silhouette_iou(found[0], frame_mask(alpha, found[0].shape[0], frame)) > 0.85
    noise = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    assert object_mask(noise, frame_for(120, 160)) is None  # no backdrop, no detector: no mask


def test_restrict_to_box_keeps_only_the_box() -> None:
    target = np.ones((100, 100), np.float32)
    out = restrict_to_box(target, Frame(0.0, 0.0, 200.0), (50.0, 50.0, 100.0, 100.0))  # photo px; 2 px per cell
    ys, xs = np.nonzero(out)
    assert 22 <= xs.min() <= 25 and 50 <= xs.max() <= 53 and 22 <= ys.min() <= 25


def test_rotation_errors_are_symmetry_aware() -> None:
    from cadsearch.metrics import rotation_errors_deg

    truth, est = [[70.0, 10.0, 5.0]], [[70.0, 100.0, 5.0]]
    assert rotation_errors_deg(truth, est, 1)[0] == pytest.approx(90.0, abs=1e-6)
    assert rotation_errors_deg(truth, est, 4)[0] == pytest.approx(0.0, abs=1e-6)  # 4-fold: 90° apart is the same
    assert rotation_errors_deg(truth, [[70.0, 123.4, 5.0]], 0)[0] < 1.0  # continuous: any azimuth
    # roll still counts (level camera: turning the object about its up axis cannot stand for a roll)
    assert rotation_errors_deg([[90.0, 10.0, 5.0]], [[90.0, 10.0, 15.0]], 0)[0] == pytest.approx(10.0, abs=0.1)


def test_without_opengl_registration_is_off_and_says_so_once(chair: trimesh.Trimesh, monkeypatch, capsys) -> None:
    """A machine without an OpenGL context still searches: the registrar declines (None), once on stderr."""
    import cadsearch.render.raster as raster
    from cadsearch.errors import CadsearchError
    from cadsearch.register import Registrar

    def no_gl():
        raise CadsearchError("cannot create a headless OpenGL context (EGL): libGL.so not loaded")

    monkeypatch.setattr(raster, "gl_context", no_gl)
    library = type("Lib", (), {"mesh": staticmethod(lambda model_id: chair)})()
    registrar = Registrar(library)
    target = np.zeros((64, 64), np.float32)
    target[16:48, 20:44] = 1.0
    frame = frame_for(64, 64)
    assert registrar.refine("c", target, frame, 80.0, 30.0) is None
    assert registrar.refine("c", target, frame, 80.0, 30.0) is None
    assert registrar.check_look_alikes("c", np.zeros((64, 64, 3), np.uint8), frame, 80.0, 30.0) is None
    assert registrar.compare_models(np.zeros((64, 64, 3), np.uint8), frame, [("c", 80.0, 30.0)] * 2) is None
    placed = Placement(32.0, 32.0, 48.0)
    assert registrar.check_outline_twin("c", np.zeros((64, 64, 3), np.uint8), target, frame, 80.0, 30.0, placed,
                                        0.9) is None  # fmt: skip
    assert "libGL.so not loaded" in registrar.unavailable
    assert capsys.readouterr().err.count("registration is off") == 1


def test_look_alike_poses_are_the_back_and_the_mirror_sides() -> None:
    from cadsearch.register.appearance import look_alike_poses

    assert look_alike_poses(60.0, 30.0) == [(60.0, 30.0), (60.0, 210.0), (60.0, 330.0), (60.0, 150.0)]
    assert look_alike_poses(80.0, 200.0) == [(80.0, 200.0), (80.0, 20.0), (80.0, 160.0), (80.0, 340.0)]


def test_the_pose_check_judges_the_head_modes_and_their_look_alikes_once_each() -> None:
    from cadsearch.register.appearance import pose_candidates

    assert pose_candidates(60.0, 30.0) == [(60.0, 30.0), (60.0, 210.0), (60.0, 330.0), (60.0, 150.0)]
    # a mode near the estimate adds nothing; a distinct one adds itself and its look-alikes, in that order
    found = pose_candidates(60.0, 30.0, [(62.0, 35.0, 0.5), (80.0, 120.0, 0.3)])
    assert found == [(60.0, 30.0), (60.0, 210.0), (60.0, 330.0), (60.0, 150.0),
                     (80.0, 120.0), (80.0, 300.0), (80.0, 240.0), (80.0, 60.0)]  # fmt: skip
    # a side view's mirror side is its back: judged once
    assert pose_candidates(80.0, 90.0) == [(80.0, 90.0), (80.0, 270.0)]
    assert pose_candidates(80.0, 90.0, [(80.0, 95.0, 1.0)], separation_deg=1.0)[-1] == (80.0, 85.0)


def test_the_appearance_judge_on_onnx_agrees_with_torch(tmp_path) -> None:
    """The export is made on first use where it is missing, reused after, and gives torch's agreements; a folder that
    cannot hold it, or an export onnxruntime cannot load, leaves the judge on torch."""
    from cadsearch.register.appearance import AppearanceJudge

    rng = np.random.default_rng(0)
    query = rng.integers(0, 256, (160, 160, 3), np.uint8)
    renders = np.stack([query, rng.integers(0, 256, (160, 160, 3), np.uint8)])
    coverage = np.ones((2, 160, 160))
    eager = AppearanceJudge().agreement(query, renders, coverage)
    path = tmp_path / "judge.onnx"
    onnx = AppearanceJudge(onnx_path=path)
    assert np.allclose(onnx.agreement(query, renders, coverage), eager, atol=1e-4) and path.is_file()
    assert type(onnx._body).__name__ == "OnnxBackbone"
    made = path.stat().st_mtime_ns
    assert np.allclose(AppearanceJudge(onnx_path=path).agreement(query, renders, coverage), eager, atol=1e-4)
    assert path.stat().st_mtime_ns == made
    (tmp_path / "file").write_text("")
    unwritable = AppearanceJudge(onnx_path=tmp_path / "file" / "judge.onnx")  # its folder is a file
    assert np.allclose(unwritable.agreement(query, renders, coverage), eager, atol=1e-5)
    (tmp_path / "broken.onnx").write_bytes(b"not an onnx file")  # an interrupted copy, say
    broken = AppearanceJudge(onnx_path=tmp_path / "broken.onnx")
    assert np.allclose(broken.agreement(query, renders, coverage), eager, atol=1e-5)


def test_a_look_alike_must_agree_clearly_better_to_replace_the_estimate(monkeypatch) -> None:
    """A near-symmetric object's back agrees with the photo almost as well as its front: a few hundredths of cosine
    are no evidence, and the estimate stands."""
    from cadsearch.register.appearance import AppearanceJudge, LookAlikeConfig

    judge = AppearanceJudge()
    candidates = [(80.0, 0.0), (80.0, 180.0), (80.0, 0.0), (80.0, 180.0)]
    for agreement, chosen in (([0.50, 0.53, 0.40, 0.45], 0), ([0.50, 0.56, 0.40, 0.45], 1), ([0.50, 0.2, 0.3, 0.4], 0)):
        monkeypatch.setattr(judge, "agreement", lambda *_, a=agreement: np.asarray(a))
        choice = judge.choose(None, None, None, candidates)
        assert choice.chosen == chosen and (choice.polar_deg, choice.azimuth_deg) == candidates[chosen]
    # the margin is the config's: at 0.01, the first case's back would win
    loose = AppearanceJudge(LookAlikeConfig(margin=0.01))
    monkeypatch.setattr(loose, "agreement", lambda *_: np.asarray([0.50, 0.53, 0.40, 0.45]))
    assert loose.choose(None, None, None, candidates).chosen == 1
    # beyond the estimate's look-alikes (here the first two), the pose head's other viewpoints need mode_margin
    modes = AppearanceJudge(LookAlikeConfig(margin=0.05, mode_margin=0.1))
    for agreement, chosen in (
        ([0.50, 0.53, 0.58, 0.59], 0),
        ([0.50, 0.53, 0.58, 0.61], 3),
        ([0.5, 0.56, 0.59, 0.6], 1),
    ):
        monkeypatch.setattr(modes, "agreement", lambda *_, a=agreement: np.asarray(a))
        assert modes.choose(None, None, None, candidates, look_alikes=2).chosen == chosen


@pytest.mark.parametrize(("truth", "side"), [((70.0, 35.0), (70.0, 95.0)), ((55.0, 240.0), (55.0, 180.0))])
def test_the_look_alike_check_tells_the_front_from_the_back(chair: trimesh.Trimesh, truth, side) -> None:
    """Silhouettes cannot tell these poses apart (the registration above stays local); the model's appearance can."""
    from cadsearch.register import Registrar

    library = type("Lib", (), {"mesh": staticmethod(lambda model_id: chair)})()
    registrar = Registrar(library)
    photo, _ = _photo_of(chair, *truth, Placement(160.0, 120.0, 230.0, 0.0))
    frame = frame_for(240, 320)
    back = registrar.check_look_alikes("c", photo, frame, truth[0], truth[1] + 180.0)
    assert back.chosen != 0 and pose_error_deg(*truth, back.polar_deg, back.azimuth_deg) < 1e-6
    assert max(back.agreement) > back.agreement[0] + registrar.judge.config.margin
    right = registrar.check_look_alikes("c", photo, frame, *truth)
    assert right.chosen == 0 and (right.polar_deg, right.azimuth_deg) == truth
    # `side` (60° of azimuth off) is no look-alike of the truth: only the pose head's other viewpoints bring it back
    alone = registrar.check_look_alikes("c", photo, frame, *side)
    assert pose_error_deg(*truth, alone.polar_deg, alone.azimuth_deg) > 45.0
    found = registrar.check_look_alikes("c", photo, frame, *side, [(*side, 0.6), (truth[0] + 5.0, truth[1], 0.3)])
    assert pose_error_deg(*truth, found.polar_deg, found.azimuth_deg) < 6.0
    registrar.close()


def test_the_outline_twin_outlines_the_chair_almost_as_the_pose_does(chair: trimesh.Trimesh) -> None:
    """(θ, 180° − φ) outlines a left-right symmetric chair nearly as (θ, φ) does (here perspective and thin legs leave
    IoU ~0.6 unaligned), far more than its back does: the pose the outline-twin check compares."""
    from cadsearch.register.appearance import outline_twin

    assert outline_twin(60.0, 30.0) == (60.0, 150.0) and outline_twin(85.0, 200.0) == (85.0, 340.0)
    renderer = SilhouetteRenderer(96)
    pose = (80.0, 35.0)
    back = silhouette_iou(renderer(chair, 80.0, 215.0), renderer(chair, *pose))
    assert silhouette_iou(renderer(chair, *outline_twin(*pose)), renderer(chair, *pose)) > 2 * back
    renderer.close()


def test_the_outline_twin_check_turns_a_registration_seen_from_the_wrong_side(chair: trimesh.Trimesh) -> None:
    """Registered from the side of the chair that has (nearly) the same outline, the local search stays there; the
    appearance tells, and the twin's own registration replaces it. The truth itself stands."""
    from cadsearch.register import Registrar
    from cadsearch.register.appearance import LookAlikeConfig, outline_twin

    truth = (80.0, 35.0, 8.0)
    library = type("Lib", (), {"mesh": staticmethod(lambda model_id: chair)})()
    registrar = Registrar(library)
    photo, alpha = _photo_of(chair, truth[0], truth[1], Placement(160.0, 120.0, 230.0, truth[2]))
    ys, xs = np.nonzero(alpha > 0.5)
    frame = frame_for(240, 320, (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1), 0.2)
    target = frame_mask(alpha, 192, frame)
    wrong = registrar.refine("c", target, frame, *outline_twin(*truth[:2]))
    assert rotation_error_deg(*truth, wrong.polar_deg, wrong.azimuth_deg, wrong.roll_deg) > 60.0
    args = ("c", photo, target, frame, wrong.polar_deg, wrong.azimuth_deg, wrong.placement, wrong.iou)
    twin = registrar.check_outline_twin(*args)
    assert rotation_error_deg(*truth, twin.polar_deg, twin.azimuth_deg, twin.roll_deg) < 6.0
    assert twin.iou > wrong.iou - registrar.judge.config.twin_fit_margin
    right = registrar.refine("c", target, frame, *truth[:2])
    refine, registered = registrar.refine, []
    registrar.refine = lambda *a, **k: registered.append(a) or refine(*a, **k)
    assert registrar.check_outline_twin("c", photo, target, frame, right.polar_deg, right.azimuth_deg,
                                        right.placement, right.iou) is None  # fmt: skip
    assert registered == []  # no twin looked more alike drawn at the registered placement: none was registered
    # the twin's own registration must still look clearly more alike, drawn at its own placement, and at least
    # min_agreement alike
    for second, least, taken in (([0.5, 0.54], 0.0, False), ([0.5, 0.56], 0.0, True), ([0.5, 0.56], 0.57, False)):
        answers = iter([np.array([0.3, 0.5]), np.array(second)])
        registrar._placed_agreement = lambda *a, answers=answers: next(answers)
        assert (registrar.check_outline_twin(*args, least) is not None) == taken
    del registrar._placed_agreement
    registrar.refine = refine
    # a twin must fit about as well: asked to fit far better than the registration did, it is refused
    registrar.judge.config = LookAlikeConfig(twin_fit_margin=-0.5)
    assert registrar.check_outline_twin(*args) is None
    # ... and agree clearly better: at a margin no cosine can reach, it is refused too
    registrar.judge.config = LookAlikeConfig(margin=2.0)
    assert registrar.check_outline_twin(*args) is None
    registrar.close()


def _registrar_and_photo(chair: trimesh.Trimesh, truth: tuple[float, float, float]):
    """A registrar over a one-chair library, and a 320 × 240 photo of the chair at ``truth`` (polar, azimuth, roll):
    (registrar, photo, frame = the whole photo's square, target = the chair's mask over it at 192 px)."""
    from cadsearch.register import Registrar

    library = type("Lib", (), {"mesh": staticmethod(lambda model_id: chair)})()
    photo, alpha = _photo_of(chair, truth[0], truth[1], Placement(160.0, 120.0, 220.0, truth[2]))
    frame = frame_for(240, 320)
    return Registrar(library), photo, frame, frame_mask(alpha, 192, frame)


def test_other_starts_find_the_pose_a_local_registration_missed(chair: trimesh.Trimesh) -> None:
    """Registered from the mirrored azimuth, the local search stays there (the wide test above); the other-starts
    check registers from the mirror of that, fits better and looks alike, and takes it. From the right registration
    nothing fits better far from it. The appearance must agree at least as well, and at least min_agreement."""
    from cadsearch.register.registrar import OTHER_START_FIT_MARGIN

    truth = (70.0, 50.0, -12.0)
    registrar, photo, frame, target = _registrar_and_photo(chair, truth)
    wrong = registrar.refine("c", target, frame, truth[0], 360.0 - truth[1])
    assert rotation_error_deg(*truth, wrong.polar_deg, wrong.azimuth_deg, wrong.roll_deg) > 30.0
    args = ("c", photo, target, frame, wrong.polar_deg, wrong.azimuth_deg, wrong.placement, wrong.iou)
    other = registrar.check_other_starts(*args)
    assert rotation_error_deg(*truth, other.polar_deg, other.azimuth_deg, other.roll_deg) < 5.0
    assert other.iou > wrong.iou + OTHER_START_FIT_MARGIN
    right = registrar.refine("c", target, frame, *truth[:2])
    assert registrar.check_other_starts("c", photo, target, frame, right.polar_deg, right.azimuth_deg,
                                        right.placement, right.iou) is None  # fmt: skip
    for agreement, least, taken in (([0.5, 0.49], -np.inf, False), ([0.5, 0.5], -np.inf, True),
                                    ([0.5, 0.55], 0.6, False)):  # fmt: skip
        registrar._placed_agreement = lambda *a, agreement=agreement: np.array(agreement)
        assert (registrar.check_other_starts(*args, least) is not None) == taken
    del registrar._placed_agreement
    # a registration that already fitted as well as the other start's is left alone
    assert registrar.check_other_starts(*args[:-1], other.iou - OTHER_START_FIT_MARGIN) is None
    registrar.close()


def test_far_starts_find_the_pose_of_an_estimate_far_off(chair: trimesh.Trimesh) -> None:
    """From an estimate 120° of azimuth off, the local registration stays far off; the far-starts check registers
    from all around, finds the pose, and takes it when its render agrees better than the estimate's, both drawn at
    the answer's placement, by FAR_START_AGREEMENT_MARGIN and at least min_agreement. An answer under min_fit, or one
    that ``accept`` refuses, is no answer. Without the wide registration (``wide=False``) the ring of starts alone
    finds it, in one registration instead of two."""
    from cadsearch.register.registrar import FAR_START_AGREEMENT_MARGIN as MARGIN

    truth = (70.0, 50.0, -12.0)
    registrar, photo, frame, target = _registrar_and_photo(chair, truth)
    estimate = (truth[0], truth[1] + 120.0)
    local = registrar.refine("c", target, frame, *estimate)
    assert rotation_error_deg(*truth, local.polar_deg, local.azimuth_deg, local.roll_deg) > 30.0
    args = ("c", photo, target, frame, *estimate, 0.5)
    far = registrar.check_far_starts(*args)
    assert rotation_error_deg(*truth, far.polar_deg, far.azimuth_deg, far.roll_deg) < 5.0 and far.iou > local.iou
    assert registrar.check_far_starts(*args[:-1], far.iou + 0.01) is None
    assert registrar.check_far_starts(*args, accept=lambda reg: False) is None
    refine, registrations = registrar.refine, []
    registrar.refine = lambda *a, **k: registrations.append(a) or refine(*a, **k)
    for wide, n in ((True, 2), (False, 1)):
        registrations.clear()
        found = registrar.check_far_starts(*args, wide=wide)
        assert rotation_error_deg(*truth, found.polar_deg, found.azimuth_deg, found.roll_deg) < 5.0
        assert len(registrations) == n
    del registrar.refine
    judged = []
    for agreement, least, taken in (([0.5, 0.5 + MARGIN - 0.01], -np.inf, False),
                                    ([0.5, 0.5 + MARGIN + 0.01], -np.inf, True),
                                    ([0.5, 0.6], 0.65, False)):  # fmt: skip
        registrar._placed_agreement = lambda m, image, poses, square, a=agreement: judged.append(poses) or np.array(a)
        assert (registrar.check_far_starts(*args, least) is not None) == taken
    del registrar._placed_agreement
    # the estimate and the answer drawn at the answer's placement
    assert all(poses[0][:2] == estimate and poses[0][2] is poses[1][2] for poses in judged)
    registrar.close()


def test_the_look_alike_models_check_prefers_the_model_in_the_photo(chair: trimesh.Trimesh) -> None:
    """Two chairs of one family at the same pose: the photographed one's render agrees better with the photo."""
    from cadsearch.register import Registrar

    sibling = generate_chair(7, "slat_back").mesh
    meshes = {"photographed": chair, "sibling": sibling}
    library = type("Lib", (), {"mesh": staticmethod(lambda model_id: meshes[model_id])})()
    registrar = Registrar(library)
    truth = (70.0, 35.0)
    photo, _ = _photo_of(chair, *truth, Placement(160.0, 120.0, 230.0, 0.0))
    frame = frame_for(240, 320)
    agree = registrar.compare_models(photo, frame, [("sibling", *truth), ("photographed", *truth)])
    assert agree.shape == (2,) and agree[1] > agree[0] + 0.05
    # the same model at a pose 90° off agrees worse than at its own pose
    turned = registrar.compare_models(photo, frame, [("photographed", *truth), ("photographed", 70.0, 125.0)])
    assert turned[0] > turned[1]
    registrar.close()


def test_look_alike_models_are_compared_at_the_poses_their_own_checks_find_best() -> None:
    """``rank_at_best_pose``: each compared model is rendered at the best pose of its own pose check (here the second
    model's estimate is 90° off its best), and the first model's check is reused by the pose check after."""
    from cadsearch.register.appearance import LookAlikeChoice, LookAlikeConfig
    from cadsearch.search.searcher import FoundObject, ModelMatch, Searcher

    ranked = [ModelMatch(i + 1, f"m{i}", f"m{i}", "chair", s, 80.0, 10.0, "", 0.9) for i, s in enumerate((0.6, 0.3))]
    best = {"m0": (80.0, 10.0), "m1": (80.0, 100.0)}
    checks, compared = [], []

    def pose_check(image, obj, m):
        checks.append(m.model_id)
        candidates = ((m.polar_deg, m.azimuth_deg), (80.0, 100.0))
        agreement = (0.5, 0.3) if best[m.model_id] == candidates[0] else (0.2, 0.6)
        return LookAlikeChoice(*best[m.model_id], candidates, agreement, int(agreement[1] > agreement[0] + 0.05))

    def compare(image, frame, candidates):
        compared.append(candidates)
        return np.asarray([0.5, 0.6] if candidates[1][1:] == (80.0, 100.0) else [0.5, 0.2])

    for at_best in (True, False):
        checks.clear(), compared.clear()
        judge = type("Judge", (), {"config": LookAlikeConfig(rank_at_best_pose=at_best, sure_agreement=0.35)})()
        registrar = type("Reg", (), {"judge": judge, "compare_models": staticmethod(compare)})()
        searcher = type("S", (), {"registrar": registrar, "look_alikes": True, "look_alike_min_match": 0.7,
                                  "_pose_check": staticmethod(pose_check),
                                  "_least_agreement": Searcher._least_agreement})()  # fmt: skip
        obj = FoundObject((0, 0, 10, 10), None, list(ranked))
        checked = {}
        obj.results = Searcher._rank_look_alike_models(searcher, np.zeros((10, 10, 3), np.uint8), obj, checked)
        if at_best:
            assert compared == [[("m0", 80.0, 10.0), ("m1", 80.0, 100.0)]] and obj.results[0].model_id == "m1"
            assert checks == ["m0", "m1"] and set(checked) == {"m0", "m1"}
        else:
            assert compared == [[("m0", 80.0, 10.0), ("m1", 80.0, 10.0)]] and obj.results[0].model_id == "m0"
            assert checks == [] and checked == {}
        # the pose check then runs on the new first model once, reusing the ranking's check where it made one
        first = Searcher._check_look_alikes(searcher, np.zeros((10, 10, 3), np.uint8), obj, 1, checked)[0]
        assert (first.polar_deg, first.azimuth_deg) == best[first.model_id]
        assert checks == (["m0", "m1"] if at_best else ["m0"])


def test_a_look_alike_model_goes_first_only_when_its_render_agrees_clearly_better() -> None:
    """The searcher's reordering rule: the best-agreeing of the first ``rank_models`` models goes first when it beats
    the first model by ``rank_margin``, unless the ranking is sure of its first model (``rank_below``) or the model is
    of another category; ranks are renumbered and scores kept."""
    from cadsearch.register.appearance import LookAlikeConfig
    from cadsearch.search.searcher import FoundObject, ModelMatch, Searcher

    def results(first_score: float, second_category: str = "chair") -> list[ModelMatch]:
        ranked = ((first_score, "chair"), (0.3, second_category), (0.1, "chair"))
        return [ModelMatch(i + 1, f"m{i}", f"m{i}", c, s, 80.0, 10.0 * i, "", 0.5) for i, (s, c) in enumerate(ranked)]

    cases = (([0.50, 0.53], 0.6, "m0"), ([0.50, 0.56], 0.6, "m1"), ([0.70, 0.20], 0.6, "m0"),
             ([0.50, 0.9], 0.995, "m0"), ([0.50, 0.9], 0.6, "m0", "cup"))  # fmt: skip
    for agreement, first_score, first, *other in cases:
        asked = []

        def compare(image, frame, candidates, a=agreement, asked=asked):
            asked.append([c[0] for c in candidates])
            return np.asarray(a)

        judge = type("Judge", (), {"config": LookAlikeConfig()})()
        registrar = type("Reg", (), {"judge": judge, "compare_models": staticmethod(compare)})()
        searcher = type("S", (), {"registrar": registrar, "look_alikes": False})()  # compared at their estimates
        obj = FoundObject((0, 0, 10, 10), None, results(first_score, *other))
        ranked = Searcher._rank_look_alike_models(searcher, np.zeros((10, 10, 3), np.uint8), obj)
        # rank_models = 2: the third is not rendered; a first model scoring 0.995 is not second-guessed at all, nor
        # by a model of another category (the category vote chose the kind)
        assert asked == ([] if first_score >= 0.99 or other else [["m0", "m1"]])
        assert ranked[0].model_id == first and [m.rank for m in ranked] == [1, 2, 3]
        assert {m.model_id: m.score for m in ranked} == {"m0": first_score, "m1": 0.3, "m2": 0.1}
