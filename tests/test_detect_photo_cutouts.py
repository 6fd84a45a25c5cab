"""Product photos as the localiser's cutouts: keying an object off its backdrop, which photos are refused, the list
of photos, and their share of the pasted objects in a training run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from cadsearch.detect.composites import Cutout
from cadsearch.detect.photo_cutouts import load_photo_cutouts, mix_cutouts, object_photo_files, photo_cutout
from cadsearch.errors import InputError


def _product_photo(w: int = 200, h: int = 240, shift_y: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A dark stool (seat and two legs) on a light grey-to-white gradient backdrop, and its true mask (h, w)."""
    ramp = np.linspace(215, 250, h, dtype=np.float32)[:, None, None]
    photo = np.broadcast_to(ramp, (h, w, 3)).copy()
    shape = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(shape)
    draw.rectangle((60, 80 + shift_y, 140, 110 + shift_y), fill=255)  # seat
    draw.rectangle((62, 110 + shift_y, 81, 190 + shift_y), fill=255)  # legs, 20 px wide
    draw.rectangle((119, 110 + shift_y, 138, 190 + shift_y), fill=255)
    mask = np.asarray(shape) > 0
    photo[mask] = (90, 50, 30)
    return photo.astype(np.uint8), mask


def test_a_product_photo_is_keyed_to_its_object() -> None:
    photo, truth = _product_photo()
    cut = photo_cutout(photo, "stool.jpg")
    assert cut is not None and cut.view_id == "stool.jpg" and cut.polar_deg is None
    # cropped to the object's box (x 60-140, y 80-190 inclusive) with one pixel of margin
    assert cut.rgb.shape == (113, 83, 3) and cut.mask.shape == (113, 83)
    placed = np.zeros(truth.shape, bool)
    placed[79:192, 59:142] = cut.mask >= 0.5
    assert (placed & truth).sum() / (placed | truth).sum() > 0.97
    assert cut.mask.min() == 0.0 and cut.mask.max() > 0.99  # coverage, soft only at the edge
    assert np.abs(cut.rgb[10, 40].astype(int) - (90, 50, 30)).max() <= 2  # the seat's colour, untouched


def test_photos_without_a_clean_key_are_refused() -> None:
    rng = np.random.default_rng(0)
    cluttered = rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)
    assert photo_cutout(cluttered) is None
    cut_off, _ = _product_photo(shift_y=60)  # the legs run off the bottom edge: 40 of the border's 880 pixels
    assert photo_cutout(cut_off) is None
    blank = np.full((200, 200, 3), 240, np.uint8)
    assert photo_cutout(blank) is None


def test_object_photos_come_from_a_folder_or_a_list(tmp_path: Path) -> None:
    folder = tmp_path / "shots"
    (folder / "sub").mkdir(parents=True)
    photo, _ = _product_photo()
    Image.fromarray(photo).save(folder / "a.jpg")
    Image.fromarray(photo).save(folder / "sub" / "b.png")
    (folder / "notes.txt").write_text("not a photo")
    assert object_photo_files(folder) == [folder / "a.jpg", folder / "sub" / "b.png"]

    listing = tmp_path / "list.txt"
    listing.write_text(f"# product shots\nshots/a.jpg\n\n{folder / 'sub' / 'b.png'}\n")
    assert object_photo_files(listing) == [tmp_path / "shots" / "a.jpg", folder / "sub" / "b.png"]

    listing.write_text("shots/a.jpg\nshots/missing.jpg\n")
    with pytest.raises(InputError, match="no such file 'shots/missing.jpg'"):
        object_photo_files(listing)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images"):
        object_photo_files(tmp_path / "empty")
    with pytest.raises(InputError, match="neither a folder nor a list"):
        object_photo_files(tmp_path / "nowhere")


def test_unreadable_and_cluttered_photos_are_skipped(tmp_path: Path) -> None:
    photo, _ = _product_photo()
    Image.fromarray(photo).save(tmp_path / "good.jpg", quality=95)
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (120, 160, 3), dtype=np.uint8)).save(
        tmp_path / "cluttered.png"
    )
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    cuts = load_photo_cutouts(sorted(tmp_path.iterdir()))
    assert [Path(c.view_id).name for c in cuts] == ["good.jpg"]


def test_photos_make_up_the_asked_share_of_the_pool() -> None:
    renders = [Cutout(np.zeros((4, 4, 3), np.uint8), np.ones((4, 4), np.float32), model_id=f"r{i}") for i in range(12)]
    photos = [Cutout(np.zeros((4, 4, 3), np.uint8), np.ones((4, 4), np.float32), view_id=f"p{i}") for i in range(2)]
    pool = mix_cutouts(renders, photos, 0.25)
    assert len(pool) == 16 and all(a is b for a, b in zip(pool, renders, strict=False))
    assert [c.view_id for c in pool[12:]] == ["p0", "p0", "p1", "p1"]
    assert len(mix_cutouts(renders, photos, 0.0)) == 12 and len(mix_cutouts(renders, [], 0.5)) == 12
    assert len(mix_cutouts(renders[:1], photos, 0.1)) == 3  # every photo at least once


def test_a_detector_trains_with_object_photos_and_says_how_many_keyed(tmp_path: Path) -> None:
    from cadsearch.detect.train import train_detector
    from conftest import render_tiny_workspace

    ws = render_tiny_workspace(tmp_path / "ws", chairs=1, views=4, size=48)
    shots = tmp_path / "shots"
    shots.mkdir()
    photo, _ = _product_photo()
    Image.fromarray(photo).save(shots / "stool.png")
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (80, 80, 3), dtype=np.uint8)).save(shots / "room.png")
    settings = {"input_size": 64, "composites": 8, "val_composites": 4, "cutouts": 4, "epochs": 1, "batch_size": 4,
                "backgrounds": "procedural", "width": 8, "object_photos": str(shots)}  # fmt: skip
    with pytest.raises(InputError, match="photo_share must be in"):
        train_detector(ws, settings | {"photo_share": 1.0}, progress=False)
    import torch

    def trained_head(options: dict) -> dict:
        summary = train_detector(ws, options, progress=False)
        assert summary.epochs_total == 1
        return summary, torch.load(summary.checkpoint, map_location="cpu", weights_only=False)["head"]

    with_photos, head = trained_head(settings)
    assert any(n.startswith("object photos: 1 of 2 keyed") for n in with_photos.notes), with_photos.notes
    # the same run without the photos (same seed: same renders, backgrounds and draws) learns something else
    without, head_renders_only = trained_head(settings | {"object_photos": ""})
    assert not any(n.startswith("object photos") for n in without.notes)
    assert any(not torch.equal(head[k], head_renders_only[k]) for k in head)


def test_the_command_line_takes_object_photos_for_the_detector_only(tmp_path: Path, capsys) -> None:
    from test_cli import run

    ws = str(tmp_path / "ws")
    code, _, err = run(capsys, "--workspace", ws, "train", "scratch", "--object-photos", str(tmp_path))
    assert code == 2 and err.strip() == (
        "error: --object-photos trains the detector only: cadsearch train detector --object-photos PATH"
    )
    code, _, err = run(capsys, "--workspace", ws, "train", "detector", "--object-photos", str(tmp_path / "none"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "neither a folder nor a list" in err
