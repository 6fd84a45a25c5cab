"""GPU against CPU on the same workspace: training images/s, the transfer body's images/s, embedding views/s.

For each device (``cpu``, and ``cuda`` when torch sees a GPU; a device that is not there is skipped with a note),
on private copies of one rendered workspace:

- ``train scratch``: ``train_model`` with the default network (64 px, width 32) and augmentation on (the default)
  and off; images/s = steps × batch / seconds spent in the steps (``last.pt``'s ``train_seconds``: augmentation on
  the CPU and the copy to the device included, validation excluded), after one untimed warm-up epoch on the device
  (its first steps pay one-time costs: CUDA context, cuDNN's kernel choice).
- ``transfer body``: the frozen EfficientNet-Lite0 body (160 px, batch 32) alone, best of 3 after a warm-up; on the
  CPU the faster of torch and onnxruntime (as training picks), on the GPU torch fp32.
- ``train transfer``: a whole short ``train_model`` run (feature cache + heads), seconds.
- ``embed``: ``Predictor.embed`` of every view of the workspace (decoded once; batch 64; best of 3), for the
  scratch and transfer checkpoints trained on the CPU; and the smallest cosine between CPU and GPU embeddings.

    PYTHONPATH=src python benchmarks/gpu_speed.py WORKSPACE [--devices cpu cuda] [--epochs 24] [--out FILE]

Prints a table and writes ``benchmarks/results/gpu_speed.json`` (or ``--out``). Timings on a shared machine are
noisy: compare the devices as ratios of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cadsearch.models import load_predictor, train_model
from cadsearch.models.device import describe_device, resolve_device
from cadsearch.render.job import read_view_table

RESULTS = Path(__file__).resolve().parent / "results" / "gpu_speed.json"
#: Scratch training settings besides the defaults: small batches so that a small workspace still makes many steps.
SCRATCH = {"batch_size": 32, "holdout_models": 1, "patience": 100, "seed": 0}
TRANSFER = {"batch_size": 32, "holdout_models": 1, "patience": 100, "seed": 0, "cache_copies": 2}


def _copy(master: Path, root: Path, name: str) -> Path:
    ws = root / name
    shutil.copytree(master, ws, ignore=shutil.ignore_patterns("checkpoints", "index", "runs", "reports"))
    return ws


def _train_images_per_s(ws: Path, arch: str, cfg: dict) -> tuple[float, float, dict]:
    """(images/s of the training steps, whole run seconds, best val metrics) of one ``train_model`` run."""
    t = time.perf_counter()
    summary = train_model(ws, arch, cfg, progress=False)
    seconds = time.perf_counter() - t
    last = torch.load(ws / "checkpoints" / arch / "last.pt", map_location="cpu", weights_only=False)
    return last["step"] * cfg["batch_size"] / last["train_seconds"], seconds, summary.val_views


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _body_images_per_s(device: torch.device, tmp: Path) -> tuple[float, str]:
    """Images/s of the frozen lite0 body at 160 px, batch 32 (best of 3) and the backend that ran it."""
    from cadsearch.models.onnx_runtime import OnnxBackbone, export_onnx
    from cadsearch.models.transfer import FrozenBackbone

    body = FrozenBackbone("lite0", "stride16", 160)
    x = torch.rand(32, 3, 160, 160) * 2 - 1
    candidates: dict[str, object] = {}
    if device.type == "cuda":
        body = body.to(device)
        candidates["torch"] = lambda: body(x.to(device, non_blocking=True)).float().cpu()
    else:
        candidates["torch"] = lambda: body(x)
        try:
            onnx = OnnxBackbone(export_onnx(body, 160, tmp / "body.onnx"))
            candidates["onnx"] = lambda: onnx(x)
        except Exception as exc:  # onnxruntime missing: torch alone
            print(f"note: onnx body unavailable ({exc})", file=sys.stderr)
    best: dict[str, float] = {}
    with torch.no_grad():
        for name, fn in candidates.items():
            for _ in range(2):
                fn()  # warm-up (cuDNN picks its algorithms, onnxruntime allocates)
            _sync(device)
            times = []
            for _ in range(3):
                t = time.perf_counter()
                fn()
                _sync(device)
                times.append(time.perf_counter() - t)
            best[name] = len(x) / min(times)
    name = max(best, key=best.get)
    return best[name], name


def _embed_views_per_s(predictor, images: list[np.ndarray]) -> tuple[float, np.ndarray]:
    predictor.embed(images[:64], batch_size=64)  # warm-up
    times, out = [], None
    for _ in range(3):
        t = time.perf_counter()
        out = predictor.embed(images, batch_size=64)
        times.append(time.perf_counter() - t)
    return len(images) / min(times), out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workspace", type=Path, help="a rendered workspace (views.csv); it is copied, never written")
    ap.add_argument("--devices", nargs="+", default=["cpu", "cuda"])
    ap.add_argument("--epochs", type=int, default=24, help="scratch training epochs per run")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    master = args.workspace.resolve()
    rows_table = read_view_table(master)
    if not rows_table:
        print(f"error: no views in {master}", file=sys.stderr)
        return 2
    devices, notes = [], []
    for name in args.devices:
        try:
            devices.append(resolve_device(name))
        except Exception as exc:
            notes.append(f"{name} skipped: {exc}")
            print(f"note: {name} skipped: {exc}", file=sys.stderr)
    images = [np.asarray(Image.open(master / r.path).convert("RGB")) for r in rows_table]
    results: list[dict] = []

    def record(what: str, device: torch.device, value: float, unit: str, **extra) -> None:
        results.append({"what": what, "device": str(device), "value": round(float(value), 2), "unit": unit} | extra)
        print(f"  {what:<34} {device!s:<8} {value:>10.1f} {unit}", flush=True)

    with tempfile.TemporaryDirectory(prefix="gpu_speed-") as tmp_name:
        tmp = Path(tmp_name)
        checkpoints: dict[str, Path] = {}
        for device in devices:
            print(f"device {describe_device(device)}", flush=True)
            dev = str(device)
            # One untimed epoch first: a device's first steps pay one-time costs (CUDA context, cuDNN's choice of
            # kernels, autocast) that a short timed run would count as training speed.
            _train_images_per_s(
                _copy(master, tmp, f"warmup-{device.type}"), "scratch", SCRATCH | {"epochs": 1, "device": dev}
            )
            for augment in (True, False):
                ws = _copy(master, tmp, f"scratch-{device.type}-{augment}")
                cfg = SCRATCH | {"epochs": args.epochs, "augment": augment, "device": dev}
                ips, secs, val = _train_images_per_s(ws, "scratch", cfg)
                record(f"train scratch ({'augmented' if augment else 'clean'})", device, ips, "img/s",
                       run_seconds=round(secs, 1), val_top1=val.get("top1"))  # fmt: skip
                if device.type == "cpu" and augment:
                    checkpoints["scratch"] = ws / "checkpoints" / "scratch" / "best.pt"
            ips, backend = _body_images_per_s(device, tmp)
            record("transfer body 160 px", device, ips, "img/s", backend=backend)
            ws = _copy(master, tmp, f"transfer-{device.type}")
            _, secs, val = _train_images_per_s(ws, "transfer", TRANSFER | {"epochs": 3, "device": dev})
            record("train transfer (cache + 3 epochs)", device, secs, "s", val_top1=val.get("top1"))
            if device.type == "cpu":
                checkpoints["transfer"] = ws / "checkpoints" / "transfer" / "best.pt"
        # Embedding: the CPU-trained checkpoints on every device (CPU first: the GPU's vectors are compared to them).
        reference: dict[str, np.ndarray] = {}
        for arch, ckpt in checkpoints.items():
            for device in devices:
                predictor = load_predictor(ckpt, device=str(device))
                vps, vectors = _embed_views_per_s(predictor, images)
                extra = {"backend": predictor.backend}
                if device.type == "cpu":
                    reference[arch] = vectors
                elif arch in reference:
                    extra["min_cosine_vs_cpu"] = round(float((reference[arch] * vectors).sum(1).min()), 6)
                record(f"embed {arch} ({len(images)} views)", device, vps, "views/s", **extra)
    ratios = {}
    for what in dict.fromkeys(r["what"] for r in results):
        by = {r["device"].split(":")[0]: r for r in results if r["what"] == what}
        if "cpu" in by and "cuda" in by and by["cpu"]["value"] and by["cuda"]["value"]:
            high = by["cuda"]["unit"] != "s"  # seconds: lower is better
            ratios[what] = round(by["cuda"]["value"] / by["cpu"]["value"] if high else
                                 by["cpu"]["value"] / by["cuda"]["value"], 2)  # fmt: skip
    print("\nGPU speed-up (cuda / cpu, same run):")
    for what, ratio in ratios.items():
        print(f"  {what:<34} {ratio:>6.2f}×")
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    payload = {
        "command": "PYTHONPATH=src python benchmarks/gpu_speed.py " + " ".join(argv or sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "gpu": gpu,
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
        },
        "workspace": {
            "views": len(rows_table),
            "models": len({r.model_id for r in rows_table}),
            "size_px": int(images[0].shape[0]),
        },
        "settings": {"scratch": SCRATCH | {"epochs": args.epochs}, "transfer": TRANSFER | {"epochs": 3}},
        "notes": notes,
        "results": results,
        "speedup_cuda_over_cpu": ratios,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp_out, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
