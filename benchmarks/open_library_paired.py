"""Paired comparison of two ``benchmarks/open_library.py`` workspaces measured on the same queries.

Two networks trained in the same library recipe answer the very same fresh renders (the graphics split is
rendered from fixed seeds), so they can be compared query by query instead of through their means: per group,
how many queries only A gets right (top-1) and how many only B, with an exact two-sided sign test (McNemar) on
those; and for the pose, the mean difference B − A and how many queries B answers more than 1° better or worse,
with the same sign test. On one seed and 100 to 470 queries a group, a difference of a few points of top-1 is
often a handful of queries that flip both ways; this says whether it is more than that.

Usage:
    python benchmarks/open_library_paired.py WS_A WS_B [--arch transfer] [--json OUT]

Reads ``WS/reports/graphics/raw_<arch>.csv`` of both (written by ``open_library.py``'s measure stage) and the
groups of ``WS_A/open_library_state.json``; prints a table; writes ``--json`` when given.
"""

from __future__ import annotations

import argparse
import csv
import json
import sqlite3
from math import comb
from pathlib import Path
from typing import Any

#: A pose difference counts as better or worse beyond this many degrees (below it: a tie).
POSE_TIE_DEG = 1.0


def read_rows(ws: Path, arch: str) -> dict[str, dict[str, str]]:
    """The raw evaluation rows of a workspace's graphics split, by query id."""
    with open(ws / "reports" / "graphics" / f"raw_{arch}.csv", newline="") as f:
        return {r["query_id"]: r for r in csv.DictReader(f)}


def sign_test(x: int, y: int) -> float:
    """Exact two-sided sign test p-value of ``x`` against ``y`` discordant pairs (1 when there are none)."""
    n = x + y
    if n == 0:
        return 1.0
    return min(1.0, 2 * sum(comb(n, i) for i in range(min(x, y) + 1)) / 2**n)


def groups_of(row: dict[str, str], added: set[str], category: dict[str, str]) -> list[str]:
    """The groups of ``open_library.py``'s table a query belongs to."""
    out = ["all", "seen" if row["seen"] == "1" else "unseen"]
    if row["true_model_id"] in added:
        out.append("added chairs" if category[row["true_model_id"]] == "chair" else "added, other categories")
    return out


def compare(ws_a: Path, ws_b: Path, arch: str = "transfer") -> dict[str, dict[str, Any]]:
    """Per group: n, right_only_a, right_only_b, top1_p, pose_b_minus_a_deg, pose_b_worse, pose_b_better, pose_p."""
    a, b = read_rows(ws_a, arch), read_rows(ws_b, arch)
    if set(a) != set(b):
        raise SystemExit(f"{ws_a} and {ws_b} were not measured on the same queries")
    added = set(json.loads((ws_a / "open_library_state.json").read_text())["added_ids"])
    with sqlite3.connect(ws_a / "library" / "catalog.sqlite") as db:
        category = dict(db.execute("SELECT model_id, category FROM models"))
    acc: dict[str, dict[str, Any]] = {}
    for q, ra in a.items():
        rb = b[q]
        right_a, right_b = ra["true_rank"] == "1", rb["true_rank"] == "1"
        for g in groups_of(ra, added, category):
            d = acc.setdefault(g, {"n": 0, "right_only_a": 0, "right_only_b": 0, "dpose": []})
            d["n"] += 1
            d["right_only_a"] += right_a and not right_b
            d["right_only_b"] += right_b and not right_a
            if ra["pose_error_deg"] and rb["pose_error_deg"]:
                d["dpose"].append(float(rb["pose_error_deg"]) - float(ra["pose_error_deg"]))
    out = {}
    for g, d in acc.items():
        dp = d.pop("dpose")
        worse, better = sum(x > POSE_TIE_DEG for x in dp), sum(x < -POSE_TIE_DEG for x in dp)
        out[g] = d | {
            "top1_p": sign_test(d["right_only_a"], d["right_only_b"]),
            "pose_b_minus_a_deg": sum(dp) / len(dp) if dp else None,
            "pose_b_worse": worse,
            "pose_b_better": better,
            "pose_p": sign_test(worse, better),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ws_a", type=Path)
    ap.add_argument("ws_b", type=Path)
    ap.add_argument("--arch", default="transfer")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    res = compare(args.ws_a, args.ws_b, args.arch)
    print(f"A = {args.ws_a}, B = {args.ws_b} ({args.arch})")
    print(f"{'group':<25} {'n':>4}  right only A  only B  p      pose B−A  B worse/better  p")
    for g, r in res.items():
        top1 = f"{r['right_only_a']:>12}  {r['right_only_b']:>6}  {r['top1_p']:.3f}"
        pose = f"{r['pose_b_minus_a_deg']:+7.2f}°  {r['pose_b_worse']:>6}/{r['pose_b_better']:<6}  {r['pose_p']:.2g}"
        print(f"{g:<25} {r['n']:>4}  {top1}  {pose}")
    if args.json:
        args.json.write_text(json.dumps({"a": str(args.ws_a), "b": str(args.ws_b), "arch": args.arch} | res, indent=2))


if __name__ == "__main__":
    main()
