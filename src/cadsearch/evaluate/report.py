"""Stage 3 of evaluation: the report a person reads (Markdown + JSON + PNG plots), from metrics and raw rows.

Files written to the report folder (each atomically):

- ``report.md``            tables: both models side by side; azimuth-only and per-sector tables; per-model
  breakdown for the graphics split; links to the plots and raw files
- ``metrics.json``         the result of :func:`~cadsearch.evaluate.run.run_evaluation` plus how it was made
- ``pose_error_hist.png``  error histograms, models overlaid (pose error; azimuth error too when labelled)
- ``error_vs_azimuth.png`` error against the true azimuth, with the median per sector
- ``sector_acc30.png``     Acc@30 per azimuth sector and model
- ``worst_<arch>.png``     the worst queries beside the predicted model drawn at the estimated pose
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cadsearch import __version__
from cadsearch import metrics as mt
from cadsearch.evaluate.splits import Split, read_image
from cadsearch.workspace import atomic_write_bytes, atomic_write_json, atomic_write_text

__all__ = [
    "write_report",
    "render_markdown",
    "plot_error_histogram",
    "plot_error_vs_azimuth",
    "plot_sector_accuracy",
    "worst_cases_sheet",
]

#: Fixed colours per model so that every plot agrees.
MODEL_COLOURS = {"scratch": "#d95f02", "transfer": "#1b9e77"}
WORST_K = 8
WORST_CELL = 176


def write_report(
    report_dir: str | Path,
    result: dict[str, Any],
    raw: dict[str, list[dict[str, Any]]],
    split: Split,
    workspace: str | Path | None = None,
    notes: Sequence[str] = (),
    render_predicted: bool = True,
) -> dict[str, Path]:
    """Write ``report.md``, ``metrics.json`` and the plots into ``report_dir``; returns ``{name: path}``.

    ``result`` is :func:`~cadsearch.evaluate.run.run_evaluation`'s dict, ``raw`` its stage-1 rows per arch.
    With ``workspace`` and ``render_predicted`` the worst-case sheets show the predicted model rendered at
    the estimated pose (skipped with a note if rendering is unavailable).
    """
    out = Path(report_dir)
    notes = list(notes)
    files: dict[str, Path] = {}
    has_pose = any(m["extra"]["n_pose"] for m in result["models"].values())
    has_azimuth = any(m["extra"]["azimuth"]["n"] for m in result["models"].values())
    if has_pose or has_azimuth:
        for name, png in (
            ("pose_error_hist.png", plot_error_histogram(raw, split.name, split.kind)),
            ("error_vs_azimuth.png", plot_error_vs_azimuth(raw, split.name, split.kind)),
            ("sector_acc30.png", plot_sector_accuracy(result, split.kind)),
        ):
            atomic_write_bytes(out / name, png)
            files[name] = out / name
    for arch, rows in raw.items():
        sheet, sheet_notes = worst_cases_sheet(rows, arch, split.name, workspace if render_predicted else None)
        notes.extend(n for n in sheet_notes if n not in notes)
        if sheet is not None:
            buf = io.BytesIO()
            sheet.save(buf, format="PNG")
            atomic_write_bytes(out / f"worst_{arch}.png", buf.getvalue())
            files[f"worst_{arch}.png"] = out / f"worst_{arch}.png"
    raws = {arch: f"raw_{arch}.csv" for arch in raw if (out / f"raw_{arch}.csv").exists()}
    meta = {
        "cadsearch_version": __version__,
        "split_kind": split.kind,
        "split_info": split.info,
        "queries": len(split.queries),
        "skipped": list(split.skipped),
        "notes": notes,
        "raw_files": raws,
    }
    atomic_write_json(out / "metrics.json", result | {"meta": meta})
    files["metrics.json"] = out / "metrics.json"
    atomic_write_text(out / "report.md", render_markdown(result, split, files, notes, raws))
    files["report.md"] = out / "report.md"
    return files


# --- Markdown ---------------------------------------------------------------------------------------------------


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100.0 * x:.1f} %"


def _deg(x: float | None) -> str:
    return "–" if x is None else f"{x:.1f}°"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def metrics_table(result: dict[str, Any]) -> str:
    """A plain-text table of DESIGN.md's metrics, one row per model (``cadsearch evaluate``, the demo)."""

    def pct(v: float | None) -> str:
        return "    -" if v is None else f"{100 * v:4.1f}%"

    def deg(v: float | None) -> str:
        return "     -" if v is None else f"{v:5.1f}°"

    lines = [
        f"split: {result['split']}  (ranking: {result.get('ranking', 'index')})",
        "model      n      top-1   top-5   pose mean  median   <15°    <30°",
    ]
    for arch, m in result["models"].items():
        for label, mm in ((arch, m), ("  unseen", m.get("unseen"))):
            if mm:
                lines.append(
                    f"{label:<9} {mm['n']:>5}   {pct(mm['top1'])}  {pct(mm['top5'])}  {deg(mm['pose_mean_deg'])}   "
                    f"{deg(mm['pose_median_deg'])}  {pct(mm['acc15'])}  {pct(mm['acc30'])}"
                )
    return "\n".join(lines)


def _ranking_sentence(ranking: str) -> str:
    if ranking == "classifier":
        return (
            "Ranking: **classifier** (ablation): the network's softmax over the models it was trained on, pose from "
            "the pose head; models added after training cannot be found. `cadsearch search` ranks by the index."
        )
    return (
        "Ranking: **index**, exactly as `cadsearch search` answers (framing and automatic crop, embedding, the view "
        "index, calibrated scores, pose). Recognition is over every model in the index; *unseen* rows are models "
        "the network was not trained on."
    )


def _crop_sentence(crop: str | None) -> str:
    if crop == "detect":
        return (
            "Framing: `--crop detect`: the trained localiser finds the objects and the most confident one's answer "
            "is scored (the whole photo when none is found), as `cadsearch search` answers."
        )
    return f"Framing: `--crop {crop or 'auto'}`, as `cadsearch search --crop {crop or 'auto'}`."


def render_markdown(
    result: dict[str, Any],
    split: Split,
    files: dict[str, Path],
    notes: Sequence[str] = (),
    raw_files: dict[str, str] | None = None,
) -> str:
    """The report as Markdown text (pure: no I/O). Models are side by side, one column each."""
    models = result["models"]
    archs = list(models)
    parts = [f"# Evaluation on split `{result['split']}`", ""]
    if split.kind == "graphics":
        r = split.info.get("render", {})
        parts.append(
            f"Graphics split: {len(split.queries)} fresh renders of {split.info.get('models', '?')} models "
            f"({r.get('views_per_model', '?')} per model, random cameras with seed {r.get('seed', '?')}, "
            f"polar {r.get('polar_range', '?')}°, {r.get('size', '?')} px, {r.get('backgrounds', '?')} backgrounds)."
        )
    else:
        mirror = " plus their left-right mirror images (φ → 360° − φ)" if split.info.get("mirror") else ""
        parts.append(f"Photo split `{split.info.get('csv', '')}`: {split.info.get('photos', '?')} photos{mirror}.")
    if split.skipped:
        parts.append(f"{len(split.skipped)} queries skipped (unreadable or missing; see `metrics.json`).")
    parts += [
        "",
        "Pose error E = angle between the true and the estimated camera direction. Acc@15/30 = share of queries "
        "with E below 15°/30°. For a model that looks the same after a rotation about its up axis (recorded in "
        "the catalog as n-fold or continuous symmetry) E is the smallest error over the equivalent true poses.",
        "",
        _ranking_sentence(result.get("ranking", "index")),
        "",
        _crop_sentence(split.info.get("crop")),
        "",
        "## Summary",
        "",
    ]
    rows = [
        ["queries (n)"] + [str(models[a]["n"]) for a in archs],
        ["with a true model"] + [str(models[a]["extra"]["n_recognition"]) for a in archs],
        ["top-1"] + [_pct(models[a]["top1"]) for a in archs],
        ["top-5"] + [_pct(models[a]["top5"]) for a in archs],
        ["with a true pose"] + [str(models[a]["extra"]["n_pose"]) for a in archs],
        ["pose error, mean"] + [_deg(models[a]["pose_mean_deg"]) for a in archs],
        ["pose error, median"] + [_deg(models[a]["pose_median_deg"]) for a in archs],
        ["Acc@15"] + [_pct(models[a]["acc15"]) for a in archs],
        ["Acc@30"] + [_pct(models[a]["acc30"]) for a in archs],
        ["Acc@30, sector-balanced"] + [_pct(models[a]["extra"]["sector_balanced_acc30"]["pose"]) for a in archs],
    ]
    if any(models[a].get("unseen") for a in archs):
        unseen = {a: models[a].get("unseen") or {} for a in archs}
        rows += [
            ["unseen models: queries"] + [str(unseen[a].get("n", 0)) for a in archs],
            ["unseen models: top-1"] + [_pct(unseen[a].get("top1")) for a in archs],
            ["unseen models: pose error, mean"] + [_deg(unseen[a].get("pose_mean_deg")) for a in archs],
        ]
    parts += [_table(["metric", *archs], rows), ""]
    by_symmetry = {a: models[a]["extra"].get("by_symmetry", {}) for a in archs}
    classes = list(dict.fromkeys(c for a in archs for c in by_symmetry[a]))
    if len(classes) > 1:
        sym_rows = [
            [c, a, str(by_symmetry[a][c]["n"]), _deg(by_symmetry[a][c]["pose_mean_deg"]),
             _deg(by_symmetry[a][c]["pose_median_deg"]), _pct(by_symmetry[a][c]["acc30"])]
            for c in classes
            for a in archs
            if c in by_symmetry[a]
        ]  # fmt: skip
        parts += [
            "## By symmetry of the true model",
            "",
            _table(["symmetry", "model", "n", "mean E", "median E", "Acc@30"], sym_rows),
            "",
        ]
    by_category = {a: models[a]["extra"].get("by_category", {}) for a in archs}
    kinds = list(dict.fromkeys(c for a in archs for c in by_category[a]))
    if len(kinds) > 1:
        cat_rows = [
            [c, a, str(g["n"]), _pct(g["top1"]), _deg(g["pose_mean_deg"]), _deg(g["pose_median_deg"]),
             _pct(g["acc30"]), _pct(g["pose_error_share"])]
            for c in kinds
            for a in archs
            if (g := by_category[a].get(c))
        ]  # fmt: skip
        parts += [
            "## By category of the true model",
            "",
            "Most pose error first. *Share of E* = the category's part of the summed pose error: a kind whose views "
            "flip between look-alikes (front and back) shows a large share and a mean far above its median.",
            "",
            _table(["category", "model", "n", "top-1", "mean E", "median E", "Acc@30", "share of E"], cat_rows),
            "",
        ]

    if split.kind == "photos":
        az = {a: models[a]["extra"]["azimuth"] for a in archs}
        parts += [
            "## Azimuth alone",
            "",
            "Labels made by eye are rougher in elevation, so the azimuth error |Δφ| (in [0°, 180°]) is reported "
            "alone too. *Sector-balanced* averages Acc@30 over the 8 azimuth sectors of the truth, so a model "
            "that always answers the most common view (front three-quarter) does not look better than it is; a "
            "constant answer scores about 17 %.",
            "",
            _table(
                ["metric", *archs],
                [
                    ["with a true azimuth"] + [str(az[a]["n"]) for a in archs],
                    ["azimuth error, mean"] + [_deg(az[a]["mean_deg"]) for a in archs],
                    ["azimuth error, median"] + [_deg(az[a]["median_deg"]) for a in archs],
                    ["Acc@15 (azimuth)"] + [_pct(az[a]["acc15"]) for a in archs],
                    ["Acc@30 (azimuth)"] + [_pct(az[a]["acc30"]) for a in archs],
                    ["Acc@30 (azimuth), sector-balanced"]
                    + [_pct(models[a]["extra"]["sector_balanced_acc30"]["azimuth"]) for a in archs],
                    ["front/back flips (Δφ over 150°)"] + [_pct(models[a]["extra"]["flip_share"]) for a in archs],
                ],
            ),
            "",
        ]

    if any(models[a]["extra"]["azimuth"]["n"] for a in archs):
        key = "azimuth_acc30" if split.kind == "photos" else "pose_acc30"
        what = "azimuth error < 30°" if split.kind == "photos" else "pose error < 30°"
        sectors = models[archs[0]]["extra"]["sectors"]
        rows = []
        for k, s in enumerate(sectors):
            rows.append(
                [s["sector"], str(s["n"])]
                + [_pct(models[a]["extra"]["sectors"][k][key]) for a in archs]
                + [_deg(models[a]["extra"]["sectors"][k]["azimuth_median_deg"]) for a in archs]
            )
        parts += [
            "## Per azimuth sector",
            "",
            f"Sector of the true azimuth (45° wide, centred on the named view; 90° sees the object's left side). "
            f"Acc@30 = share with {what}.",
            "",
            _table(
                ["sector", "n"] + [f"{a} Acc@30" for a in archs] + [f"{a} median Δφ" for a in archs],
                rows,
            ),
            "",
        ]

    levels = sorted({lv for a in archs for lv in models[a]["extra"].get("by_confidence", {})})
    if levels:
        rows = []
        for level in levels:
            for a in archs:
                c = models[a]["extra"].get("by_confidence", {}).get(level)
                if c:
                    rows.append(
                        [level, a, str(c["n"]), _deg(c["pose_median_deg"]), _pct(c["pose_acc30"])]
                        + [_deg(c["azimuth_median_deg"]), _pct(c["azimuth_acc30"])]
                    )
        parts += [
            "## By label confidence",
            "",
            _table(["confidence", "model", "n", "median E", "Acc@30", "median Δφ", "Acc@30 (azimuth)"], rows),
            "",
        ]

    if split.kind == "graphics":
        ids = sorted({m for a in archs for m in models[a]["extra"].get("per_model", {})})
        rows = []
        for model_id in ids:
            cells = [f"`{model_id}`"]
            for a in archs:
                pm = models[a]["extra"].get("per_model", {}).get(model_id)
                cells += [_pct(pm["top1"]), _deg(pm["pose_median_deg"])] if pm else ["–", "–"]
            rows.append(cells)
        header = ["model"] + [h for a in archs for h in (f"{a} top-1", f"{a} median E")]
        parts += ["## Per model", "", _table(header, rows), ""]

    pictures = [
        ("pose_error_hist.png", "Error histograms"),
        ("error_vs_azimuth.png", "Error against the true azimuth"),
        ("sector_acc30.png", "Acc@30 per azimuth sector"),
    ] + [(f"worst_{a}.png", f"Worst cases, {a} (query | predicted model at the estimated pose)") for a in archs]
    shown = [(name, title) for name, title in pictures if name in files]
    if shown:
        parts += ["## Plots", ""]
        for name, title in shown:
            parts += [f"### {title}", "", f"![{title}]({name})", ""]
    if raw_files:
        parts += ["## Raw predictions", ""]
        parts += [
            f"- {a}: [`{f}`]({f}) (one row per query: truth, top-5, estimated pose, errors)"
            for a, f in raw_files.items()
        ]
        parts.append("")
    if notes:
        parts += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(parts)


# --- plots ------------------------------------------------------------------------------------------------------


def _figure(n_panels: int, height: float = 4.0):
    # Figure + Agg canvas directly: no global pyplot state, no GUI backend, safe in threads and servers.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5 * n_panels, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, n_panels, i + 1) for i in range(n_panels)]
    return fig, axes


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _values(rows: list[dict[str, Any]], name: str) -> np.ndarray:
    return np.array([np.nan if r.get(name) is None else float(r[name]) for r in rows], dtype=np.float64)


def _panels(raw: dict[str, list[dict[str, Any]]], kind: str) -> list[tuple[str, str]]:
    """(raw column, axis label) of each error panel: pose error when labelled, azimuth too on photos."""
    panels = []
    if any(np.isfinite(_values(rows, "pose_error_deg")).any() for rows in raw.values()):
        panels.append(("pose_error_deg", "pose error E (degrees)"))
    if kind == "photos" or not panels:
        panels.append(("azimuth_error_deg", "azimuth error |Δφ| (degrees)"))
    return panels


def _what(column: str) -> str:
    return "Pose error E" if column == "pose_error_deg" else "Azimuth error |Δφ|"


def plot_error_histogram(raw: dict[str, list[dict[str, Any]]], split_name: str, kind: str) -> bytes:
    """PNG: histograms of the pose (and, on photos, azimuth) error, one outline per model, thresholds marked."""
    panels = _panels(raw, kind)
    fig, axes = _figure(len(panels))
    bins = np.arange(0.0, 180.0 + 7.5, 7.5)
    for ax, (column, label) in zip(axes, panels, strict=True):
        for arch, rows in raw.items():
            e = _values(rows, column)
            e = e[np.isfinite(e)]
            if e.size == 0:
                continue
            ax.hist(
                e,
                bins=bins,
                histtype="step",
                linewidth=2,
                color=MODEL_COLOURS.get(arch),
                label=f"{arch} (n={e.size}, median {np.median(e):.1f}°)",
            )
        for t in mt.POSE_THRESHOLDS_DEG:
            ax.axvline(t, color="grey", linestyle="--", linewidth=1)
            ax.text(t + 1, 0.98, f"{t:g}°", transform=ax.get_xaxis_transform(), va="top", color="grey", fontsize=8)
        ax.set_xlim(0, 180)
        ax.set_xticks(np.arange(0, 181, 30))
        ax.set_xlabel(label)
        ax.set_ylabel("queries")
        ax.set_title(f"{_what(column)} on split '{split_name}'")
        ax.legend(loc="upper right", fontsize=8)
    return _png(fig)


def _azimuth_axis(ax) -> None:
    ticks = np.arange(0, 361, 45)
    names = ["front", "f-left", "left", "b-left", "back", "b-right", "right", "f-right", "front"]
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t}°\n{n}" for t, n in zip(ticks, names, strict=True)], fontsize=8)
    ax.set_xlim(0, 360)
    ax.set_xlabel("true azimuth φ (degrees; 90° sees the object's left side)")


def plot_error_vs_azimuth(raw: dict[str, list[dict[str, Any]]], split_name: str, kind: str) -> bytes:
    """PNG: error against the true azimuth, a dot per query per model and a line for the median per sector."""
    panels = _panels(raw, kind)
    fig, axes = _figure(len(panels), height=4.2)
    centres = np.arange(8) * 45.0
    for ax, (column, label) in zip(axes, panels, strict=True):
        for arch, rows in raw.items():
            e, az = _values(rows, column), _values(rows, "true_azimuth_deg")
            ok = np.isfinite(e) & np.isfinite(az)
            if not ok.any():
                continue
            colour = MODEL_COLOURS.get(arch)
            ax.scatter(az[ok], e[ok], s=12, alpha=0.45, color=colour, edgecolors="none", label=f"{arch} (per query)")
            sector = mt.azimuth_sector(az[ok])
            med = [np.median(e[ok][sector == k]) if np.any(sector == k) else np.nan for k in range(8)]
            # Sector 0 straddles 0°/360°: repeat it at 360° so the line closes the circle.
            ax.plot(
                np.append(centres, 360.0),
                np.append(med, med[0]),
                "-o",
                color=colour,
                linewidth=2,
                markersize=4,
                label=f"{arch} (sector median)",
            )
        for t in mt.POSE_THRESHOLDS_DEG:
            ax.axhline(t, color="grey", linestyle="--", linewidth=1)
        _azimuth_axis(ax)
        ax.set_ylim(0, 180)
        ax.set_yticks(np.arange(0, 181, 30))
        ax.set_ylabel(label)
        ax.set_title(f"{_what(column)} by true azimuth, split '{split_name}'")
        ax.legend(loc="upper right", fontsize=7)
    return _png(fig)


def plot_sector_accuracy(result: dict[str, Any], kind: str) -> bytes:
    """PNG: Acc@30 per true-azimuth sector, bars per model, the sector-balanced mean as a dashed line."""
    models = result["models"]
    key, which = ("azimuth_acc30", "azimuth") if kind == "photos" else ("pose_acc30", "pose")
    fig, (ax,) = _figure(1, height=4.0)
    fig.set_size_inches(8.0, 4.0)
    archs = list(models)
    width = 0.8 / max(1, len(archs))
    sectors = models[archs[0]]["extra"]["sectors"]
    x = np.arange(len(sectors))
    for i, arch in enumerate(archs):
        vals = [s[key] for s in models[arch]["extra"]["sectors"]]
        heights = [100.0 * v if v is not None else 0.0 for v in vals]
        colour = MODEL_COLOURS.get(arch)
        ax.bar(x + (i - (len(archs) - 1) / 2) * width, heights, width, color=colour, label=arch)
        balanced = models[arch]["extra"]["sector_balanced_acc30"][which]
        if balanced is not None:
            ax.axhline(
                100.0 * balanced,
                color=colour,
                linestyle="--",
                linewidth=1.5,
                label=f"{arch} sector-balanced: {100 * balanced:.0f} %",
            )
    ax.set_xticks(x)
    ax.set_xticklabels([f"{s['sector'].replace(' ', chr(10))}\nn={s['n']}" for s in sectors], fontsize=8)
    ax.set_ylim(0, 130)  # headroom above 100 % keeps the legend off the bars
    ax.set_yticks(np.arange(0, 101, 20))
    ax.set_ylabel(f"Acc@30: share with {which} error < 30° (%)")
    ax.set_xlabel("sector of the true azimuth")
    ax.set_title(f"{which.capitalize()} Acc@30 per azimuth sector, split '{result['split']}'")
    ax.legend(loc="upper center", fontsize=7, ncol=2)
    return _png(fig)


# --- worst cases ------------------------------------------------------------------------------------------------


def _font(size: int):
    """DejaVu Sans from matplotlib (it has θ, φ, Δ); Pillow's default font otherwise."""
    try:
        import matplotlib

        return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"), size)
    except (ImportError, OSError):
        try:
            return ImageFont.load_default(size=size)
        except TypeError:  # Pillow < 10.1
            return ImageFont.load_default()


def _worst(rows: list[dict[str, Any]], k: int) -> tuple[list[dict[str, Any]], str]:
    """The k worst rows and what "worst" means: largest pose error, else azimuth error, else recognition misses."""
    for column, what in (("pose_error_deg", "pose errors"), ("azimuth_error_deg", "azimuth errors")):
        labelled = [r for r in rows if r.get(column) is not None]
        if labelled:
            return sorted(labelled, key=lambda r: -r[column])[:k], what
    missed = [r for r in rows if r.get("true_rank") not in (None, 1)]
    return sorted(missed, key=lambda r: -(r["true_rank"] or 10**9))[:k], "recognition misses"


def _predicted_renders(rows, workspace, size) -> tuple[list[np.ndarray | None], list[str]]:
    """The top-1 model of each row rendered at its estimated pose over white, or None where impossible."""
    if workspace is None:
        return [None] * len(rows), []
    try:
        from cadsearch.library import Library
        from cadsearch.render import Camera, create_renderer

        library = Library.open(workspace)
        renderer = create_renderer("low", size=size, light_jitter=False)
    except Exception as err:  # noqa: BLE001 - a report without renders beats no report
        return [None] * len(rows), [f"predicted models not drawn in worst-case sheets: {type(err).__name__}: {err}"]
    out: list[np.ndarray | None] = []
    notes: list[str] = []
    try:
        for r in rows:
            try:
                mesh = library.mesh(r["top1_model_id"])
                o = renderer.render(mesh, Camera(float(r["pred_polar_deg"]), float(r["pred_azimuth_deg"])))
                alpha = o.alpha[:, :, None]
                out.append(np.clip(o.rgb + (1.0 - alpha) * 255.0, 0, 255).astype(np.uint8))
            except Exception as err:  # noqa: BLE001 - one bad model must not cost the whole sheet
                out.append(None)
                notes.append(f"could not draw model {r.get('top1_model_id')}: {type(err).__name__}: {err}")
    finally:
        renderer.close()
    return out, notes


def _placeholder(size: int, text: str) -> np.ndarray:
    im = Image.new("RGB", (size, size), (235, 235, 235))
    ImageDraw.Draw(im).text((8, size // 2 - 6), text, fill=(120, 120, 120), font=_font(12))
    return np.asarray(im)


def _angle(x: float | None) -> str:
    return "?" if x is None else f"{x:.0f}"


def _short_id(query_id: str) -> str:
    # Graphics ids read "<model>/<view>" (keep both); photo ids are paths (the file name is what people know).
    return query_id if query_id.count("/") <= 1 else Path(query_id).name


def _fit(image: np.ndarray, cell: int) -> Image.Image:
    """``image`` scaled to fit a ``cell`` × ``cell`` white square, centred."""
    tile = Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB")
    tile.thumbnail((cell, cell), Image.LANCZOS)
    square = Image.new("RGB", (cell, cell), (255, 255, 255))
    square.paste(tile, ((cell - tile.width) // 2, (cell - tile.height) // 2))
    return square


def worst_cases_sheet(
    rows: list[dict[str, Any]],
    arch: str,
    split_name: str,
    workspace: str | Path | None = None,
    k: int = WORST_K,
    cell: int = WORST_CELL,
    columns: int = 4,
) -> tuple[Image.Image | None, list[str]]:
    """A sheet of the ``k`` worst queries of one model, as cards: the query image beside the predicted top-1
    model rendered at the estimated pose, captioned with the true pose, the estimate and the error.

    Returns ``(image or None when there is nothing to show, notes)``.
    """
    worst, what = _worst(rows, k)
    if not worst:
        return None, []
    renders, notes = _predicted_renders(worst, workspace, cell)
    font, title_font = _font(13), _font(15)
    pad, line, title_h = 8, 18, 30
    card_w, card_h = 2 * cell + pad, cell + 3 * line
    columns = max(1, min(columns, len(worst)))
    n_rows = -(-len(worst) // columns)
    sheet = Image.new(
        "RGB", (pad + columns * (card_w + 2 * pad), title_h + n_rows * (card_h + 2 * pad)), (255, 255, 255)
    )
    draw = ImageDraw.Draw(sheet)
    draw.text(
        (pad, 7),
        f"{arch} on '{split_name}': the {len(worst)} worst {what}. "
        "Left: query (true pose); right: predicted model drawn at the estimated pose.",
        fill=(0, 0, 0),
        font=title_font,
    )
    for i, (r, render) in enumerate(zip(worst, renders, strict=True)):
        try:
            q = read_image(r["image"])
            q = np.ascontiguousarray(q[:, ::-1]) if r.get("mirrored") else q
        except Exception:  # noqa: BLE001 - the file may have gone since stage 1
            q = _placeholder(cell, "image unreadable")
        gy, gx = divmod(i, columns)
        x, y = pad + gx * (card_w + 2 * pad), title_h + gy * (card_h + 2 * pad)
        draw.rectangle((x - 3, y - 3, x + card_w + 3, y + card_h), outline=(200, 200, 200))
        sheet.paste(_fit(q, cell), (x, y))
        sheet.paste(_fit(render if render is not None else _placeholder(cell, "no render"), cell), (x + cell + pad, y))
        err = r["pose_error_deg"] if r.get("pose_error_deg") is not None else r.get("azimuth_error_deg")
        mirror = " (mirrored)" if r.get("mirrored") else ""
        model = "" if r.get("true_rank") in (None, 1) else "  wrong model"
        texts = [
            f"#{i + 1}  true θ {_angle(r['true_polar_deg'])}°  φ {_angle(r['true_azimuth_deg'])}°{mirror}",
            f"est  θ {_angle(r['pred_polar_deg'])}°  φ {_angle(r['pred_azimuth_deg'])}°   error {_angle(err)}°{model}",
            f"predicted {r.get('top1_model_id')}  ·  query {_short_id(str(r['query_id']))}",
        ]
        for j, text in enumerate(texts):
            while draw.textlength(text, font=font) > card_w and len(text) > 4:
                text = text[:-2] + "…"  # keep the start: the numbers and the model come first
            draw.text((x, y + cell + 2 + j * line), text, fill=(40, 40, 40) if j < 2 else (110, 110, 110), font=font)
    return sheet, notes
