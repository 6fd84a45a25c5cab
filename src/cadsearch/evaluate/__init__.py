"""Evaluation: splits, pure metric functions, and reports (BOP-style stages).

- :mod:`~cadsearch.evaluate.splits` — the queries: a ``graphics`` split of fresh renders, or a photo-split CSV
  (``photo,model_id,polar_deg,azimuth_deg``), optionally mirrored.
- :mod:`~cadsearch.metrics` — pure functions: top-k, pose error, azimuth error, summaries, sectors.
- :mod:`~cadsearch.evaluate.run` — :func:`run_evaluation`: raw predictions → metrics → report.
- :mod:`~cadsearch.evaluate.report` — ``report.md``, ``metrics.json`` and PNG plots.
"""

from cadsearch.evaluate.run import DESIGN_KEYS, default_report_dir, design_json, model_metrics, run_evaluation
from cadsearch.evaluate.splits import GRAPHICS, Query, Split, graphics_split, photo_split, read_image
from cadsearch.metrics import (
    SectorAccuracy,
    azimuth_errors_deg,
    azimuth_sector,
    mirror_labels,
    pose_errors_deg,
    sector_balanced_accuracy,
    summarize_pose,
    topk_accuracy,
)

__all__ = [
    "DESIGN_KEYS",
    "GRAPHICS",
    "Query",
    "SectorAccuracy",
    "Split",
    "azimuth_errors_deg",
    "azimuth_sector",
    "default_report_dir",
    "design_json",
    "graphics_split",
    "mirror_labels",
    "model_metrics",
    "photo_split",
    "pose_errors_deg",
    "read_image",
    "run_evaluation",
    "sector_balanced_accuracy",
    "summarize_pose",
    "topk_accuracy",
]
