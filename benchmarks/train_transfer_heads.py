"""Scratch script: train the transfer model with both pose heads on one feature cache and compare them.

Usage: python benchmarks/train_transfer_heads.py WORKSPACE [key=value ...]
The vector-head checkpoint is kept as ``checkpoints/transfer/best_vector.pt``; the bins head (the default) ends
up in ``best.pt``.
"""

import json
import shutil
import sys

from accuracy import parse_kv  # this folder is on sys.path when run as a script

from cadsearch.models.train import checkpoint_path, train_model

ws, *kv = sys.argv[1:]
overrides = parse_kv(kv)
results = {}
for head in ("vector", "bins"):
    s = train_model(ws, "transfer", overrides | {"pose_head": head})
    results[head] = {"val_views": s.val_views, "epochs": s.epochs_total, "seconds": s.seconds, "notes": s.notes}
    print(head, json.dumps(results[head], indent=2), flush=True)
    if head == "vector":
        shutil.copy(checkpoint_path(ws, "transfer"), checkpoint_path(ws, "transfer").with_name("best_vector.pt"))
print(json.dumps(results, indent=2))
