"""The reference's experiment as one table: from scratch vs transfer, on renders vs photos, recognition and pose.

``cadsearch evaluate --split graphics --split PHOTOS.csv`` evaluates every split (each with its own report) and
then puts them side by side: one row per (split, model), DESIGN.md's metrics plus the azimuth-only median and the
sector-balanced azimuth Acc@30 (the share within 30°, averaged over 8 azimuth sectors of the truth, so that the
many front three-quarter photos do not dominate). Written as ``experiment.md`` and ``experiment.json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cadsearch.workspace import atomic_write_json, atomic_write_text

__all__ = ["experiment_rows", "experiment_markdown", "write_experiment"]


def experiment_rows(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flatten :func:`~cadsearch.evaluate.run_evaluation` results into one dict per (split, model).

    Keys: ``split``, ``ranking`` (``index``: the product's search; ``classifier``: the ablation), ``model``,
    DESIGN.md's ``n, top1, top5, pose_mean_deg, pose_median_deg, acc15, acc30``, and
    ``azimuth_median_deg``, ``azimuth_acc30_sector_balanced`` (None where not computable).
    """
    design_keys = ("n", "top1", "top5", "pose_mean_deg", "pose_median_deg", "acc15", "acc30")  # without "unseen"
    rows = []
    for result in results:
        for arch, m in result["models"].items():
            extra = m.get("extra", {})
            rows.append(
                {
                    "split": result["split"],
                    "ranking": result.get("ranking", "index"),
                    "model": arch,
                    **{k: m.get(k) for k in design_keys},
                    "azimuth_median_deg": extra.get("azimuth", {}).get("median_deg"),
                    "azimuth_acc30_sector_balanced": extra.get("sector_balanced_acc30", {}).get("azimuth"),
                }
            )
    return rows


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f} %"


def _deg(v: float | None) -> str:
    return "–" if v is None else f"{v:.1f}°"


def experiment_markdown(results: Sequence[dict[str, Any]]) -> str:
    """The table as Markdown, rows grouped by split (renders first, as given)."""
    lines = [
        "| split | ranking | model | queries | top-1 | top-5 | pose mean | pose median | Acc@15 | Acc@30 "
        "| azimuth median | sector-balanced azimuth Acc@30 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in experiment_rows(results):
        lines.append(
            f"| {r['split']} | {r['ranking']} | {r['model']} | {r['n']} | {_pct(r['top1'])} | {_pct(r['top5'])} | "
            f"{_deg(r['pose_mean_deg'])} | {_deg(r['pose_median_deg'])} | {_pct(r['acc15'])} | {_pct(r['acc30'])} | "
            f"{_deg(r['azimuth_median_deg'])} | {_pct(r['azimuth_acc30_sector_balanced'])} |"
        )
    return "\n".join(lines)


def write_experiment(folder: str | Path, results: Sequence[dict[str, Any]]) -> Path:
    """Write ``experiment.md`` (title, the table, where each split's report is) and ``experiment.json`` into
    ``folder`` atomically; returns the Markdown file's path."""
    out = Path(folder)
    text = "\n".join(
        [
            "# From scratch vs transfer, on renders vs photos",
            "",
            "Recognition is over the library's models (photos of models outside it have no top-1); pose error is "
            "the angle between the true and the estimated camera direction.",
            "",
            experiment_markdown(results),
            "",
        ]
    )
    atomic_write_text(out / "experiment.md", text)
    atomic_write_json(out / "experiment.json", {"rows": experiment_rows(results)})
    return out / "experiment.md"
