"""Scratch script: train one model on the benchmark workspace (see benchmarks/accuracy.py for the setup).

Usage: python benchmarks/train_bench.py WORKSPACE ARCH [key=value ...]
"""

import json
import sys

from cadsearch.models.train import train_model

ws, arch, *kv = sys.argv[1:]
overrides = {}
for item in kv:
    key, value = item.split("=", 1)
    try:
        overrides[key] = json.loads(value)
    except json.JSONDecodeError:
        overrides[key] = value
summary = train_model(ws, arch, overrides)
print(json.dumps({k: (str(v) if k == "checkpoint" else v) for k, v in summary.__dict__.items()}, indent=2))
