"""Scratch script: train one model on the benchmark workspace (see benchmarks/accuracy.py for the setup).

Usage: python benchmarks/train_bench.py WORKSPACE ARCH [key=value ...]
"""

import json
import sys

from accuracy import parse_kv  # this folder is on sys.path when run as a script

from cadsearch.models.train import train_model

ws, arch, *kv = sys.argv[1:]
overrides = parse_kv(kv)
summary = train_model(ws, arch, overrides)
print(json.dumps({k: (str(v) if k == "checkpoint" else v) for k, v in summary.__dict__.items()}, indent=2))
