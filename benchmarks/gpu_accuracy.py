"""Does a network trained on the GPU answer as well as one trained on the CPU? Same workspace, same seeds.

For each seed and device (``cpu``, and ``cuda`` when torch sees a GPU), ``train_model`` of the scratch network
(today's defaults: augmentation, bf16 autocast where the device has it) on a private copy of one rendered
workspace, then its best checkpoint's validation metrics: top-1 on the held-out views of the training models and
the mean pose error. Differences between devices come from their arithmetic (bf16 kernels, cuDNN's algorithms)
and from random draws made on the device; several seeds show which of them is larger.

    PYTHONPATH=src python benchmarks/gpu_accuracy.py WORKSPACE [--seeds 0 1 2] [--epochs 20] [--out FILE]

Prints a table and writes ``benchmarks/results/gpu_accuracy.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from gpu_speed import SCRATCH, _copy

from cadsearch.models import train_model
from cadsearch.models.device import describe_device, resolve_device

RESULTS = Path(__file__).resolve().parent / "results" / "gpu_accuracy.json"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workspace", type=Path, help="a rendered workspace (views.csv); it is copied, never written")
    ap.add_argument("--devices", nargs="+", default=["cpu", "cuda"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    devices = []
    for name in args.devices:
        try:
            devices.append(resolve_device(name))
        except Exception as exc:  # a device that is not there is skipped with a note
            print(f"note: {name} skipped: {exc}", file=sys.stderr)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="gpu_accuracy-") as tmp:
        for seed in args.seeds:
            for device in devices:
                ws = _copy(args.workspace.resolve(), Path(tmp), f"{device.type}-{seed}")
                t = time.perf_counter()
                cfg = SCRATCH | {"epochs": args.epochs, "seed": seed, "device": str(device)}
                val = train_model(ws, "scratch", cfg, progress=False).val_views
                seconds = round(time.perf_counter() - t, 1)
                row = {"seed": seed, "device": describe_device(device), "top1": val.get("top1"),
                       "pose_mean_deg": val.get("pose_mean_deg"), "seconds": seconds}  # fmt: skip
                rows.append(row)
                print(f"seed {seed}  {row['device']:<24} top-1 {row['top1']:.3f}  pose mean "
                      f"{row['pose_mean_deg']:6.1f}°  {row['seconds']:6.1f} s", flush=True)  # fmt: skip
    summary = {}
    for device in {r["device"] for r in rows}:
        mine = [r for r in rows if r["device"] == device]
        summary[device] = {k: float(np.mean([r[k] for r in mine])) for k in ("top1", "pose_mean_deg")}
        print(f"mean over {len(mine)} seeds  {device:<24} top-1 {summary[device]['top1']:.3f}  pose mean "
              f"{summary[device]['pose_mean_deg']:6.1f}°")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": " ".join(sys.argv), "date": time.strftime("%Y-%m-%d"),
                                    "settings": SCRATCH | {"epochs": args.epochs}, "runs": rows,
                                    "mean": summary}, indent=2))  # fmt: skip
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
