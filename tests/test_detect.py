"""The localiser: training composites, CenterNet targets ↔ decoding, NMS, a tiny training run (resume, ONNX,
pictures), bad photos, and the searcher searching every detected object."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from cadsearch.detect import Detection, Localiser, box_iou, detector_dir, nms
from cadsearch.detect.composites import BackgroundPhotos, CompositeConfig, Cutout, make_composite, split_backgrounds
from cadsearch.detect.localiser import decode
from cadsearch.detect.train import targets_for
from cadsearch.errors import InputError


def _cutouts(n: int = 3) -> list[Cutout]:
    """Flat-coloured discs: a known object with an exact mask."""
    yy, xx = np.mgrid[0:40, 0:30]
    mask = (((xx - 15) / 14.0) ** 2 + ((yy - 20) / 19.0) ** 2 <= 1).astype(np.float32)
    return [Cutout(np.full((40, 30, 3), 60 * (i + 1), np.uint8), mask) for i in range(n)]


def test_composites_are_seeded_and_boxes_frame_the_visible_object() -> None:
    photos = BackgroundPhotos([])  # no room photos: procedural backgrounds
    cfg = CompositeConfig(photo_side=160, occluder_p=0.0, blur_p=0.0, noise_p=0.0, jpeg_p=0.0)
    a, boxes = make_composite(np.random.default_rng(3), _cutouts(), photos, cfg, n_objects=1)
    b, boxes_b = make_composite(np.random.default_rng(3), _cutouts(), photos, cfg, n_objects=1)
    assert np.array_equal(a, b) and np.array_equal(boxes, boxes_b)
    assert max(a.shape[:2]) == 160 and a.dtype == np.uint8 and boxes.shape == (1, 4)
    x0, y0, x1, y1 = boxes[0]
    h, w = a.shape[:2]
    assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
    area = (x1 - x0) * (y1 - y0) / (w * h)
    assert 0.004 < area <= 0.95  # 2-90 % of the photo, less where it runs past an edge
    empty, none = make_composite(np.random.default_rng(4), _cutouts(), photos, cfg, n_objects=0)
    assert none.shape == (0, 4)
    many = [make_composite(np.random.default_rng(i), _cutouts(), photos, CompositeConfig(photo_side=96))[1]
            for i in range(30)]  # fmt: skip
    assert max(len(m) for m in many) <= 5 and any(len(m) >= 2 for m in many)


def test_background_split_is_stable_and_holds_out_about_a_tenth() -> None:
    files = [Path(f"photo_{i:04d}.jpg") for i in range(1000)]
    train, held = split_backgrounds(files)
    assert 60 < len(held) < 140 and len(train) + len(held) == 1000 and not set(train) & set(held)
    assert split_backgrounds(list(reversed(files)))[1] == list(reversed(held))


def test_decoding_the_targets_gives_back_the_boxes() -> None:
    size = 256
    boxes = np.array([[20, 30, 100, 200], [150, 40, 230, 120], [60, 180, 90, 240]], np.float32)
    t = targets_for(boxes, size)
    assert t["heat"].shape == (16, 16) and t["mask"].sum() == 3 and t["heat"].max() == 1.0
    logit = t["size"]
    found, scores = decode(t["heat"], logit, t["offset"], 16, size, threshold=0.99, max_objects=5)
    assert len(found) == 3 and np.all(scores == 1.0)
    iou = box_iou(found, boxes)
    assert np.all(iou.max(axis=1) > 0.99)


def test_box_voting_moves_an_off_centre_peak_box_onto_the_object() -> None:
    # A 128 px object centred at (128, 128) of a 256 px square, grid stride 16: the heat peaks near its top (a
    # chair's backrest), and every cell predicts the object's size centred on itself (offset 0.5, as a CenterNet
    # head does away from the true centre). A lone small object elsewhere has only its own cell.
    size, stride, g = 256, 16, 16
    heat = np.zeros((g, g), np.float32)
    heat[4:9, 7] = [0.8, 0.5, 0.5, 0.45, 0.4]
    heat[13, 13] = 0.6
    logsize = np.zeros((2, g, g), np.float32)
    logsize[:, 4:9, 7] = np.log(128 / size)
    logsize[:, 13, 13] = np.log(32 / size)
    offset = np.full((2, g, g), 0.5, np.float32)
    truth = np.array([[64, 64, 192, 192], [200, 200, 232, 232]], np.float64)
    own, own_scores = decode(heat, logsize, offset, stride, size, threshold=0.3, vote_iou=None)
    voted, voted_scores = decode(heat, logsize, offset, stride, size, threshold=0.3, vote_iou=0.4)
    np.testing.assert_array_equal(own_scores, voted_scores)  # voting moves boxes, never scores
    assert len(own) == 2
    np.testing.assert_allclose(own[0], [56, 8, 184, 136])  # the peak's own box: centred on the backrest
    assert box_iou(own[:1], truth[:1])[0, 0] < 0.4
    # the heat-weighted mean of the cells whose boxes overlap the peak's by ≥ 0.4 (rows 4–7, centres y 72–120)
    y = np.average([72, 88, 104, 120], weights=[0.8, 0.5, 0.5, 0.45])
    np.testing.assert_allclose(voted[0], [56, y - 64, 184, y + 64], atol=1e-4)
    assert box_iou(voted[:1], truth[:1])[0, 0] > 0.5
    np.testing.assert_allclose(voted[1], own[1])  # a lone peak keeps its own box
    np.testing.assert_allclose(own[1], truth[1])


def test_nms_and_iou() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], np.float32)
    assert box_iou(boxes[:1], boxes[1:2])[0, 0] == pytest.approx(81 / 119)
    assert nms(boxes, np.array([0.5, 0.9, 0.7])) == [1, 2]
    assert nms(np.zeros((0, 4)), np.zeros(0)) == []


@pytest.fixture(scope="module", name="trained")
def trained_fixture(tmp_path_factory) -> Path:
    """A detector trained for one epoch on 24 composites of a tiny workspace at 64 px (fast, not accurate)."""
    from cadsearch.detect.train import train_detector
    from conftest import render_tiny_workspace

    ws = render_tiny_workspace(tmp_path_factory.mktemp("detect_ws"), chairs=2, views=6, size=48)
    settings = {"input_size": 64, "composites": 24, "val_composites": 8, "cutouts": 12, "epochs": 1,
                "batch_size": 8, "backgrounds": "procedural", "width": 16}  # fmt: skip
    summary = train_detector(ws, settings, progress=False)
    assert summary.epochs_total == 1 and summary.checkpoint.is_file() and summary.onnx.is_file()
    names = {p.name for p in summary.pictures}  # object masks only where something was found
    assert "detector_composites.png" in names <= {"detector_composites.png", "detector_object_masks.png"}
    assert 0.0 <= summary.metrics["mask_iou"] <= 1.0 and 0.0 <= summary.metrics["mask_iou_object"] <= 1.0
    assert summary.best_epoch == 1 and summary.best_mask_epoch == 1
    assert summary.int8_onnx == summary.onnx.parent / "detector-int8.onnx" and summary.int8_onnx.is_file()
    assert Image.open(summary.pictures[0]).size[0] > 100
    # resume: the same settings with one more epoch continue from the first
    again = train_detector(ws, settings | {"epochs": 2}, progress=False)
    assert again.epochs_total == 2 and any("resumed from epoch 1" in n for n in again.notes)
    return ws


def test_a_trained_localiser_answers_every_kind_of_photo_boundedly(trained: Path) -> None:
    loc = Localiser(detector_dir(trained), threshold=0.0, max_objects=4)  # threshold 0: boxes even untrained
    assert loc.backend == "onnx" and loc.input_size == 64
    rng = np.random.default_rng(0)
    photos = {
        "no object": np.full((120, 160, 3), 128, np.uint8),
        "tiny": rng.integers(0, 255, (32, 32, 3), dtype=np.uint8),
        "panorama": rng.integers(0, 255, (90, 2000, 3), dtype=np.uint8),
        "grey": rng.integers(0, 255, (50, 70), dtype=np.uint8),
    }
    for name, im in photos.items():
        found = loc.detect(im)
        assert 1 <= len(found) <= 4, name
        h, w = im.shape[:2]
        for d in found:
            x0, y0, x1, y1 = d.box
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h and 0.0 <= d.score <= 1.0, name
        assert [d.score for d in found] == sorted((d.score for d in found), reverse=True)
    assert Localiser(detector_dir(trained), threshold=1.01).detect(photos["no object"]) == []
    with pytest.raises(InputError):
        loc.detect(np.zeros((4, 4, 4, 4), np.uint8))


def test_a_trained_localiser_segments_any_square_of_the_photo(trained: Path) -> None:
    import onnxruntime as ort

    from cadsearch.framing import Frame, frame_image

    folder = detector_dir(trained)
    outputs = {o.name: o.shape for o in ort.InferenceSession(str(folder / "detector.onnx")).get_outputs()}
    assert list(outputs) == ["heat", "size", "offset", "mask"] and outputs["mask"][1:] == [1, 16, 16]
    loc = Localiser(folder, precision="fp32")  # the 32-bit graph, which the torch fallback must reproduce
    assert loc.has_mask and loc.backend == "onnx"
    photo = np.random.default_rng(1).integers(0, 255, (90, 150, 3), dtype=np.uint8)
    whole = loc.segment(photo)
    assert whole.shape == (64, 64) and whole.dtype == np.float32 and 0.0 <= whole.min() <= whole.max() <= 1.0
    frame = Frame(40.0, -10.0, 70.0)  # an object's square, reaching past the top edge
    square = loc.segment(photo, frame)
    assert square.shape == (64, 64) and not np.allclose(square, whole)
    # the square is cut exactly as frame_image cuts it: segmenting that cut-out whole gives the same mask
    assert np.allclose(square, loc.segment(frame_image(photo, 64, frame)), atol=1e-5)
    both = loc.segment_many([photo, photo], [None, frame])
    assert both.shape == (2, 64, 64) and np.allclose(both[1], square, atol=1e-5)
    # the torch fallback (no ONNX graph) computes the same masks
    import shutil

    torch_dir = trained / "torch_only"
    torch_dir.mkdir(exist_ok=True)
    shutil.copy(folder / "best.pt", torch_dir / "best.pt")
    fallback = Localiser(torch_dir)
    assert fallback.backend == "torch" and fallback.has_mask
    assert np.allclose(fallback.segment(photo, frame), square, atol=1e-3)


def test_a_detector_from_before_masks_still_detects_and_says_it_has_no_mask(trained: Path, tmp_path: Path) -> None:
    import onnx
    import torch

    folder = detector_dir(trained)
    ckpt = torch.load(folder / "best.pt", map_location="cpu", weights_only=False)
    old = {k: v for k, v in ckpt.items() if not k.startswith("mask_")}
    torch.save(old, tmp_path / "best.pt")
    graph = onnx.load(str(folder / "detector.onnx"))  # the old export: heat, size, offset only
    graph.graph.output.remove(next(o for o in graph.graph.output if o.name == "mask"))
    onnx.save(graph, str(tmp_path / "detector.onnx"))
    photo = np.full((80, 120, 3), 128, np.uint8)
    new = Localiser(folder, threshold=0.0, precision="fp32").detect(photo)
    for backend in ("onnx", "torch"):
        if backend == "torch":
            (tmp_path / "detector.onnx").unlink()
        loc = Localiser(tmp_path, threshold=0.0)
        assert loc.backend == backend and not loc.has_mask
        found = loc.detect(photo)
        assert len(found) == len(new) and np.allclose([d.box for d in found], [d.box for d in new], atol=1e-2)
        with pytest.raises(InputError, match="no mask head"):
            loc.segment(photo)


def test_flip_test_answers_a_mirrored_photo_with_mirrored_maps(trained: Path) -> None:
    loc = Localiser(detector_dir(trained), flip_test=True)
    square = np.random.default_rng(2).integers(0, 255, (1, loc.input_size, loc.input_size, 3), dtype=np.uint8)
    heat, size, offset = loc.maps(square)
    heat_m, size_m, offset_m = loc.maps(np.ascontiguousarray(square[:, :, ::-1]))
    assert np.allclose(heat, heat_m[..., ::-1], atol=1e-5) and np.allclose(size, size_m[..., ::-1], atol=1e-5)
    assert np.allclose(offset[:, 1], offset_m[:, 1, :, ::-1], atol=1e-5)
    # x counts the other way in the mirror
    assert np.allclose(offset[:, 0], np.clip(1 - offset_m[:, 0, :, ::-1], 0, 0.999), atol=1e-3)
    plain = Localiser(detector_dir(trained))
    assert not plain.flip_test and not np.allclose(plain.maps(square)[0], heat)  # it does change the answer


def test_a_missing_or_broken_detector_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cadsearch train detector"):
        Localiser(tmp_path)
    (tmp_path / "best.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="unreadable"):
        Localiser(tmp_path)


def _copy_detector(trained: Path, to: Path) -> Path:
    import shutil

    from cadsearch.detect.quantize import INT8_CHECK, INT8_ONNX

    to.mkdir(exist_ok=True)
    for name in ("best.pt", "detector.onnx", INT8_ONNX, INT8_CHECK):
        shutil.copy(detector_dir(trained) / name, to / name)
    return to


def test_training_writes_an_8bit_copy_that_the_localiser_runs_and_that_agrees_with_the_32bit_graph(
    trained: Path,
) -> None:
    import onnx

    from cadsearch.detect.composites import BackgroundPhotos, load_cutouts
    from cadsearch.detect.quantize import calibration_squares

    folder = detector_dir(trained)
    fast, full = Localiser(folder), Localiser(folder, precision="fp32")
    assert (fast.precision, full.precision) == ("int8", "fp32") and "onnx int8" in repr(fast)
    squares = calibration_squares(load_cutouts(trained, 4, seed=5), BackgroundPhotos([]), 64, n=3, seed=9)
    heat8, size8, _ = fast.maps(squares)
    heat, size, _ = full.maps(squares)
    assert 0 < np.abs(heat8 - heat).max() < 0.1 and np.abs(size8 - size).mean() < 0.1  # close, not the same graph
    # the stem and the stride-4 blocks stay 32-bit: no quantised tensor feeds them; later blocks are quantised
    graph = onnx.load(str(folder / "detector-int8.onnx")).graph
    dequantised = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    convs = {n.name: n for n in graph.node if n.op_type == "Conv"}
    stem = [n for name, n in convs.items() if "/body/stem/" in name]
    late = [n for name, n in convs.items() if "/body/blocks.10/" in name]
    assert stem and late
    assert not any(i in dequantised for n in stem for i in n.input)
    assert all(n.input[0] in dequantised and n.input[1] in dequantised for n in late)


def test_an_8bit_copy_that_is_stale_broken_or_wrong_on_this_cpu_is_not_used(trained: Path, tmp_path: Path) -> None:
    import onnx

    from cadsearch.detect.quantize import INT8_CHECK, INT8_ONNX

    photo = np.random.default_rng(3).integers(0, 255, (80, 120, 3), dtype=np.uint8)
    expected = Localiser(detector_dir(trained), threshold=0.0, precision="fp32").detect(photo)
    # retrained since the copy was made (another detector.onnx)
    stale = _copy_detector(trained, tmp_path / "stale")
    graph = onnx.load(str(stale / "detector.onnx"))
    graph.doc_string = "another training"
    onnx.save(graph, str(stale / "detector.onnx"))
    # the copy's outputs disagree with the 32-bit ones stored beside it (as where 8-bit products saturate)
    wrong = _copy_detector(trained, tmp_path / "wrong")
    with np.load(wrong / INT8_CHECK) as check:
        doctored = {k: check[k] for k in check.files}
    doctored["heat"] = np.clip(doctored["heat"] + 0.2, 0.0, 1.0)
    np.savez_compressed(wrong / INT8_CHECK, **doctored)
    broken = _copy_detector(trained, tmp_path / "broken")
    (broken / INT8_ONNX).write_bytes(b"not a graph")
    missing = _copy_detector(trained, tmp_path / "missing")
    (missing / INT8_CHECK).unlink()
    for folder in (stale, wrong, broken, missing):
        loc = Localiser(folder, threshold=0.0)
        assert (loc.backend, loc.precision) == ("onnx", "fp32"), folder.name
        if folder.name != "stale":
            assert [d.box for d in loc.detect(photo)] == [d.box for d in expected], folder.name
    assert Localiser(_copy_detector(trained, tmp_path / "good")).precision == "int8"  # the copying is not the cause
    with pytest.raises(InputError, match="precision"):
        Localiser(detector_dir(trained), precision="int4")


def test_the_full_precision_nodes_are_the_stem_and_the_stride4_blocks() -> None:
    from cadsearch.detect.quantize import full_precision_nodes

    names = ["/body/stem/stem.0/Conv", "/body/blocks.0/_depthwise_conv/Conv", "/body/blocks.2/_project_conv/Conv",
             "/body/blocks.3/_expand_conv/Conv", "/body/blocks.12/_expand_conv/Conv", "/head/blocks.1/Conv",
             "/mask_head/up/Conv"]  # fmt: skip
    assert full_precision_nodes(names, 2) == names[:3]
    with pytest.raises(ValueError, match="stem"):
        full_precision_nodes(names[1:], 2)


class FakeLocaliser:
    """Answers fixed detections (most confident first, as :class:`Localiser`)."""

    def __init__(self, found: list[Detection]) -> None:
        self.found = found

    def detect(self, image: np.ndarray) -> list[Detection]:
        return list(self.found)


class FramedFake:
    """The fake predictor, but it sees the square it is given (the fake alone hashes the whole image)."""

    def __init__(self, fake) -> None:
        self.fake = fake

    def predict(self, images, batch_size: int = 64, frames=None):
        from cadsearch.framing import frame_image

        frames = frames or [None] * len(images)
        seen = [im if f is None else frame_image(im, 16, f) for im, f in zip(images, frames, strict=True)]
        return self.fake.predict(seen, batch_size)


def _searcher(search_ws: Path, found: list[Detection], verify: bool = False):
    from cadsearch.index import build_index, load_index
    from cadsearch.library import Library
    from cadsearch.search import Searcher
    from fakes import fake_for

    fake = fake_for(search_ws)
    build_index(search_ws, "scratch", progress=False, predictor=fake, fingerprint="A")
    return Searcher(fake, load_index(search_ws, "scratch"), Library.open(search_ws), crop="detect",
                    localiser=FakeLocaliser(found), detect_verify=verify)  # fmt: skip


def test_search_searches_every_detected_object(search_ws: Path) -> None:
    from cadsearch.render.job import read_view_table

    rows = read_view_table(search_ws)
    a = np.asarray(Image.open(search_ws / rows[0].path).convert("RGB"))
    b = np.asarray(Image.open(search_ws / rows[-1].path).convert("RGB"))
    photo = np.full((100, 200, 3), 255, np.uint8)
    photo[10:58, 10:58], photo[40:88, 140:188] = a, b
    boxes = [(10.0, 10.0, 58.0, 58.0), (140.0, 40.0, 188.0, 88.0)]
    searcher = _searcher(search_ws, [Detection(boxes[0], 0.9), Detection(boxes[1], 0.6)])
    res = searcher.search(photo, k=2)
    assert [o.box for o in res.objects] == boxes and [o.detection_score for o in res.objects] == [0.9, 0.6]
    assert res.results == res.objects[0].results and res.frame == res.objects[0].frame
    # each object was framed around its own box: the networks saw two different squares
    assert res.objects[0].frame.centre == pytest.approx((34.0, 34.0))
    assert res.objects[1].frame.centre == pytest.approx((164.0, 64.0))
    assert {"detect", "embed", "search", "pose", "total"} <= set(res.timing_ms)
    out = res.to_json("room.jpg")
    assert list(out) == ["query", "results", "exact_match", "objects", "timing_ms"]
    assert [o["box"] for o in out["objects"]] == [list(b) for b in boxes]
    assert out["exact_match"] == out["objects"][0]["exact_match"]
    assert out["objects"][0]["results"] == out["results"] and out["objects"][1]["detection_score"] == 0.6


def test_no_detection_searches_the_whole_photo_and_many_are_bounded(search_ws: Path) -> None:
    photo = np.full((60, 80, 3), 200, np.uint8)
    res = _searcher(search_ws, []).search(photo, k=1)
    assert len(res.objects) == 1 and res.objects[0].detection_score is None
    assert res.objects[0].box == (0.0, 0.0, 80.0, 60.0) and res.results
    twenty = [Detection((float(i), 0.0, float(i) + 20, 20.0), 1.0 - i / 100) for i in range(20)]
    res = _searcher(search_ws, twenty).search(photo, k=1)
    assert len(res.objects) == 20 and all(len(o.results) == 1 for o in res.objects)


def test_detect_without_a_detector_is_refused(search_ws: Path) -> None:
    from cadsearch.index import build_index, load_index
    from cadsearch.search import Searcher
    from fakes import fake_for

    fake = fake_for(search_ws)
    build_index(search_ws, "scratch", progress=False, predictor=fake, fingerprint="A")
    with pytest.raises(InputError, match="train detector"):
        Searcher(fake, load_index(search_ws, "scratch"), crop="detect")


def test_a_partial_box_loses_to_the_whole_photo_when_that_answer_is_surer(search_ws: Path) -> None:
    from cadsearch.render.job import read_view_table

    row = read_view_table(search_ws)[4]
    view = np.asarray(Image.open(search_ws / row.path).convert("RGB"))  # a whole view: the fake's exact match
    part = [Detection((0.0, 0.0, 20.0, 20.0), 0.7)]  # a corner of it
    plain, checked = _searcher(search_ws, part), _searcher(search_ws, part, verify=True)
    for searcher in (plain, checked):
        searcher.predictor = FramedFake(searcher.predictor)
    plain, checked = plain.search(view, k=1), checked.search(view, k=1)
    assert plain.objects[0].frame is not None and plain.results[0].best_view_id != row.view_id
    assert checked.objects[0].frame is None and checked.results[0].best_view_id == row.view_id
    # the whole photo's answer is the whole photo's object, not the box's
    h, w = view.shape[:2]
    assert checked.objects[0].box == (0.0, 0.0, float(w), float(h)) and checked.objects[0].detection_score is None


def _zoom(h: int, w: int, box) -> float:
    """How much the square a detected ``box`` is searched in zooms into an (h, w) photo (as the searcher frames it)."""
    from cadsearch.framing import MARGIN, frame_for

    return max(h, w) / frame_for(h, w, box, MARGIN).side


def _band_box(h: int, w: int) -> tuple[float, float, float, float]:
    """A square box at the photo's corner whose square zooms in a little more than the gate
    (:data:`~cadsearch.search.searcher.DETECT_MIN_ZOOM`), less than ``DETECT_VERIFY_ZOOM``."""
    from cadsearch.search.searcher import DETECT_MIN_ZOOM

    return next((0.0, 0.0, float(b), float(b)) for b in range(w, 0, -1)
                if _zoom(h, w, (0, 0, b, b)) > DETECT_MIN_ZOOM + 0.05)  # fmt: skip


def test_a_large_partial_box_loses_to_the_whole_photo_by_default(search_ws: Path) -> None:
    from cadsearch.render.job import read_view_table
    from cadsearch.search.searcher import DETECT_VERIFY_ZOOM

    row = read_view_table(search_ws)[4]
    view = np.asarray(Image.open(search_ws / row.path).convert("RGB"))  # a whole view: the fake's exact match
    h, w = view.shape[:2]
    # a box whose square zooms in between the gate and DETECT_VERIFY_ZOOM (a chair's seat in a product shot), and a
    # smaller one (an object in a room photo)
    large = _band_box(h, w)
    small = (0.0, 0.0, 0.4 * w, 0.4 * h)
    assert _zoom(h, w, large) < DETECT_VERIFY_ZOOM < _zoom(h, w, small)
    for box, whole_wins in ((large, True), (small, False)):
        searcher = _searcher(search_ws, [Detection(box, 0.7)])
        searcher.predictor = FramedFake(searcher.predictor)
        assert not searcher.detect_verify and searcher.detect_verify_zoom == DETECT_VERIFY_ZOOM
        res = searcher.search(view, k=1)
        assert (res.objects[0].frame is None) == whole_wins, box
        assert (res.results[0].best_view_id == row.view_id) == whole_wins, box
        assert res.objects[0].box == ((0.0, 0.0, float(w), float(h)) if whole_wins else box)
        assert res.objects[0].detection_score == (None if whole_wins else 0.7)
        # without the check, the crop's answer stands
        crop_only = searcher.with_options(detect_verify_zoom=0.0).search(view, k=1)
        assert crop_only.objects[0].frame is not None and crop_only.results[0].best_view_id != row.view_id


def test_a_whole_photo_first_object_beside_found_ones_is_listed_and_numbered(search_ws: Path, monkeypatch) -> None:
    """The whole photo's answer won for the first object, a second object keeps its box: the table names both,
    the overlay numbers the second box 2."""
    import cadsearch.detect.pictures as pictures
    from cadsearch.cli import _results_table
    from cadsearch.render.job import read_view_table
    from cadsearch.search.overlay import render_objects_overlay

    row = read_view_table(search_ws)[4]
    view = np.asarray(Image.open(search_ws / row.path).convert("RGB"))
    h, w = view.shape[:2]
    part, other = _band_box(h, w), (0.6 * w, 0.6 * h, float(w), float(h))
    searcher = _searcher(search_ws, [Detection(part, 0.7), Detection(other, 0.4)])
    searcher.predictor = FramedFake(searcher.predictor)
    res = searcher.search(view, k=1)
    assert [o.detection_score for o in res.objects] == [None, 0.4]
    table = _results_table("photo.png", res)
    assert f"object 1: the whole photo [0, 0, {w}, {h}]" in table and "object 2: box" in table
    drawn = []
    real = pictures.draw_boxes
    monkeypatch.setattr(pictures, "draw_boxes", lambda *a, **kw: drawn.append(kw.get("numbers")) or real(*a, **kw))
    picture = render_objects_overlay(searcher.library, view, res.objects)
    assert drawn == [[2]] and picture.ndim == 3


class ColourPredictor:
    """Two 'models', red and blue: the classifier's probabilities are the mean red and blue of the square the
    network is shown (the frame it is given), so the answer tells which part of the photo was framed."""

    model_ids = ["red", "blue"]

    def predict(self, images, batch_size: int = 64, frames=None):
        from cadsearch.framing import frame_image

        frames = frames or [None] * len(images)
        seen = [frame_image(im, 32, f).astype(np.float64) for im, f in zip(images, frames, strict=True)]
        probs = np.array([[s[..., 0].mean(), s[..., 2].mean()] for s in seen]) + 1e-6
        probs /= probs.sum(axis=1, keepdims=True)
        n = len(seen)
        return SimpleNamespace(class_probs=probs, polar_deg=np.full(n, 90.0), azimuth_deg=np.zeros(n))


def test_the_classifier_ablation_frames_the_detected_object_as_search_does() -> None:
    from cadsearch.evaluate.run import ClassifierAnswerer

    photo = np.zeros((120, 240, 3), np.uint8)
    photo[10:100, 10:100, 0] = 255  # a large red object
    photo[40:70, 180:210, 2] = 255  # a small blue one, the only detection
    found = [Detection((180.0, 40.0, 210.0, 70.0), 0.8)]
    assert ClassifierAnswerer(ColourPredictor(), "none").answer(photo).model_ids[0] == "red"
    assert ClassifierAnswerer(ColourPredictor(), "detect", FakeLocaliser(found)).answer(photo).model_ids[0] == "blue"
    # nothing detected: the whole photo, as search answers
    assert ClassifierAnswerer(ColourPredictor(), "detect", FakeLocaliser([])).answer(photo).model_ids[0] == "red"
    with pytest.raises(InputError, match="train detector"):
        ClassifierAnswerer(ColourPredictor(), "detect")


def test_evaluate_crops_as_search_by_default(tmp_path: Path) -> None:
    """Without --crop, evaluate frames the queries as `cadsearch search` does: detect once a detector exists."""
    from cadsearch.evaluate.run import default_crop

    assert default_crop(tmp_path) == "auto"
    detector_dir(tmp_path).mkdir(parents=True)
    (detector_dir(tmp_path) / "best.pt").write_bytes(b"")
    assert default_crop(tmp_path) == "detect"


def test_composite_settings_are_checked_before_any_work(tmp_path: Path) -> None:
    from cadsearch.detect.train import train_detector

    with pytest.raises(InputError, match="unknown composite setting 'composite.nope'"):
        train_detector(tmp_path, {"composite.nope": 1}, progress=False)
    with pytest.raises(InputError, match="composite setting table_p must be a float"):
        train_detector(tmp_path, {"composite.table_p": "many"}, progress=False)


def test_cached_features_keep_every_composite_in_order_across_batches() -> None:
    """The feature cache is written in place batch by batch (32 per batch): every row must hold its own
    composite's features, the last, partial batch included."""
    from cadsearch.detect.train import DetectorConfig, _make_set

    seen: list[np.ndarray] = []

    def body_fn(x: np.ndarray) -> tuple[np.ndarray, ...]:
        # one value per photo and channel, distinct for every composite: its mean pixel and its position
        start = sum(len(s) for s in seen)
        v = x.mean(axis=(1, 2, 3)) + 1000 * np.arange(start, start + len(x))
        seen.append(v)
        return tuple(np.broadcast_to(v[:, None, None, None], (len(x), 2, 64 // s, 64 // s)).copy()
                     for s in (4, 8, 16, 32))  # fmt: skip

    cfg = DetectorConfig(input_size=64, composites=37, val_composites=8, cutouts=3)
    data = _make_set(37, 5, _cutouts(), BackgroundPhotos([]), cfg, body_fn, False, "test")
    expected = np.concatenate(seen)
    assert len(expected) == 37 and [len(s) for s in seen] == [32, 5]
    for key, stride in (("c4", 4), ("c8", 8), ("c16", 16), ("c32", 32)):
        assert data[key].shape == (37, 2, 64 // stride, 64 // stride) and data[key].dtype == np.float16
        assert np.allclose(data[key][:, 0, 0, 0], expected.astype(np.float16))
    assert data["targets"]["heat"].shape[0] == 37
