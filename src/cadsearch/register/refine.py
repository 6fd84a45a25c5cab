"""Render-and-compare: a model's pose and placement refined until its silhouette lies on the photo's object mask.

The search knows *which* model and roughly from where (the pose head and the nearest views); the photo's object
mask (:meth:`cadsearch.detect.Localiser.segment`, or the backdrop for product shots) says where the object's
outline is. :func:`refine_pose` maximises the agreement (soft IoU) between the two over polar θ, azimuth φ, roll ρ,
scale and image position:

1. The mask is given on a square ``frame`` of the photo (the square the network looked at) and is resampled to a
   :attr:`RefineConfig.grid` × grid target. All 2D work is done there, batched with ``torch.grid_sample``.
2. **2D alignment** of one render (:func:`_align`): roll, scale and position move the render square in the frame
   (:mod:`cadsearch.register.placement`: a camera roll about the optical axis is exactly an in-plane turn of the
   render). It starts from the mask moments (centroids and areas matched) at several rolls (±:attr:`roll_range`),
   then a pattern search (each parameter ± its step, steps halved when nothing improves) polishes the best. Every
   2D score is soft IoU minus a **roll prior** (:attr:`RefineConfig.roll_weight`, flat within ±
   :attr:`~RefineConfig.roll_free`): real photos are rarely rolled further, and a mask of part of an object was seen
   fitted best by a model turned far over.
3. **Starts** (:meth:`RefineConfig.wide` only): the estimate's coarse fit is compared with a few alternatives
   (:data:`WIDE_STARTS`: the mirrored azimuth, the back, ±45° azimuth, ±20° polar; when all of them fit poorly,
   also a ring of 33 poses around the object); one wins only when it fits clearly better. On rolled composites
   (``benchmarks/registration.py``) they took the registered pose from 43.4° to 35.5° mean. But with the masks
   the detector gives on real photos a wrong pose often fits the wrong mask better: on the development photos
   they cost 16 points of azimuth Acc@30, so the default refines locally only (which left that accuracy
   unchanged; BENCHMARKS.md). The searcher tries most of them after registration instead, where the photo's
   appearance must agree too (:meth:`cadsearch.register.Registrar.check_other_starts`), and all of them for a first
   model it could not register or that fits poorly (:meth:`cadsearch.register.Registrar.check_far_starts`).
4. **The search's other hypotheses** (``alternatives`` of :func:`refine_pose`: the pose head's secondary modes
   with their probability mass, passed by the searcher only where the object mask can be trusted,
   :func:`cadsearch.register.masks.mask_is_trusted`): up to :attr:`RefineConfig.hypotheses` distinct starts, each
   2D-aligned and scored by soft IoU + :attr:`~RefineConfig.prior_log_weight` × ln(its mass / the estimate's), so
   that the outline alone does not overrule a confident search; the best :attr:`~RefineConfig.refine_hypotheses`
   (those within :attr:`~RefineConfig.refine_margin` of the best score) go through the pose search (the render
   budget shared) and the same score picks the answer.
5. **Pose search** (:func:`refine_pose`): only θ and φ need new renders (:class:`SilhouetteRenderer`: the
   rasteriser's coverage path, one sample per pixel, about 0.3–2.4 ms each at 96 px). From the estimate, the four
   neighbours at ± ``step`` degrees are rendered and 2D-aligned from the current best placement; the best neighbour
   is taken if it agrees better, else the step is halved, down to :attr:`RefineConfig.min_step_deg`. A weak prior
   (:attr:`prior_weight`) keeps the pose near the estimate when the silhouette cannot tell (symmetric objects: a
   flat IoU landscape).

Silhouettes cannot tell a pose from its mirror image about the viewing direction (front and back views of many
objects have the same outline), so the search moves locally: it refines the estimate, and replaces it only by
another pose the search itself found probable (4.), never by one the outline alone suggests. The object's
appearance can tell them apart: after registration the searcher compares renders of the registered pose and of its
outline twins with the photo (:meth:`cadsearch.register.Registrar.check_outline_twin`).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from cadsearch.framing import Frame
from cadsearch.register.placement import Placement
from cadsearch.render.cameras import Camera, pose_error_deg

__all__ = [
    "RefineConfig",
    "Registration",
    "SilhouetteRenderer",
    "refine_pose",
    "silhouette_extent",
    "silhouette_iou",
    "silhouette_mesh",
    "start_poses",
    "resample_mask",
    "WIDE_STARTS",
]


#: :meth:`RefineConfig.wide`'s alternative starts: the mirrored azimuth, the back, ±45° azimuth, ±20° polar.
WIDE_STARTS: tuple = ("mirror", (0.0, 180.0), (0.0, 45.0), (0.0, -45.0), (-20.0, 0.0), (20.0, 0.0))


@dataclass(frozen=True)
class RefineConfig:
    """Settings of :func:`refine_pose` (angles in degrees, sizes in pixels)."""

    grid: int = 80  # side of the target grid over the frame
    render_size: int = 96  # side of the silhouette renders
    start_step_deg: float = 8.0  # first pose step
    min_step_deg: float = 1.0  # the search stops below this step
    max_renders: int = 40  # cap on the local search's silhouette renders per model (the speed budget)
    roll_range: float = 30.0  # coarse roll candidates span ± this
    roll_step: float = 7.5
    prior_weight: float = 0.02  # IoU given up per (10°)² away from the start
    # Other starts tried before the local search (none by default; RefineConfig.wide() turns them on), as
    # (Δpolar, Δazimuth) from the estimate, and "mirror" (φ → −φ: the left-right confusion of mirror-symmetric
    # objects); one replaces the estimate only when its coarse fit is better by switch_margin (soft IoU), since
    # silhouettes alone cannot tell a front from a back.
    starts: tuple = ()
    switch_margin: float = 0.1
    # When even the best of those fits poorly (coarse soft IoU below global_below), the estimate is probably far
    # off: a ring of poses around the object is tried too (every global_step° of azimuth at 3 heights; 0 = never).
    global_below: float = 0.7
    global_step: float = 0.0
    # Other hypotheses of the search (refine_pose's `alternatives`: the pose head's secondary modes, each with its
    # probability mass): at most `hypotheses` starts in all (the estimate first), each further than
    # `hypothesis_separation` degrees from the earlier ones. Each start is 2D-aligned; the `refine_hypotheses`
    # best (soft IoU + `prior_log_weight` × ln(mass / the estimate's mass): the search's confidence in each) are
    # refined by the local search, with the same objective choosing among them at the end.
    hypotheses: int = 3
    hypothesis_separation: float = 20.0
    prior_log_weight: float = 0.1
    refine_hypotheses: int = 2
    refine_margin: float = 0.1  # ... of those, only the ones scoring within this of the best (soft IoU units)
    screen_levels: int = 2  # the starts' 2D alignment: pattern-search halvings (the estimate alone: 3)
    # A prior on the camera's roll: real photos are rarely rolled by more than ~25° (the training renders' and the
    # composites' range), while a mask of part of an object (a seat, a back) was seen fitted best by a model turned
    # far over (−40°, 66° on the development photos). The objective gives up roll_weight soft IoU per (10°)² of
    # |roll| beyond roll_free (0: no prior): 0.05 at 35°, 0.2 at 45°. Measured (BENCHMARKS.md): rolled composites'
    # pose 26.4° → 24.1° (every registration, product mask), development photos unchanged, no extra time.
    roll_free: float = 25.0
    roll_weight: float = 0.05

    @classmethod
    def wide(cls, **overrides: Any) -> RefineConfig:
        """Far starts too (:data:`WIDE_STARTS` and the ring): much better when the estimate is far off *and* the
        mask is right (composites of renders), worse with today's masks of real photos (BENCHMARKS.md), hence
        not the default (the searcher uses them only for a first model it could not register, where the photo's
        appearance must agree too: :meth:`cadsearch.register.Registrar.check_far_starts`)."""
        return cls().widened(**overrides)

    def widened(self, **overrides: Any) -> RefineConfig:
        """These settings with :meth:`wide`'s far starts (and ``overrides``)."""
        return replace(self, **({"starts": WIDE_STARTS, "global_step": 30.0} | overrides))

    polar_limits: tuple[float, float] = (2.0, 178.0)


@dataclass(frozen=True)
class Registration:
    """A refined pose and placement of one model in one photo.

    Attributes:
        polar_deg, azimuth_deg: refined camera angles (DESIGN.md), degrees.
        roll_deg: counter-clockwise in-plane rotation of the object in the image, degrees.
        placement: the render square in photo pixels (:class:`~cadsearch.register.placement.Placement`).
        iou: silhouette IoU (masks thresholded at 0.5) with the target mask after refinement, in [0, 1].
        iou_start: the same before refinement (the estimate, moment-aligned at roll 0).
        renders: silhouettes asked (some may have been kept from earlier: :class:`SilhouetteRenderer`); ms: wall
            time in milliseconds.
        extent: the longer side of the placed silhouette's axis-aligned box in the photo, pixels (roll included):
            how large the model looks, whatever share of its render square it fills at this pose.
    """

    polar_deg: float
    azimuth_deg: float
    roll_deg: float
    placement: Placement
    iou: float
    iou_start: float
    renders: int
    ms: float
    extent: float


#: Meshes with more faces than this are simplified for silhouettes (:func:`silhouette_mesh`).
SIMPLIFY_ABOVE = 8000
#: :class:`SilhouetteRenderer` keeps this many silhouettes of keyed meshes (96 px: 37 KB each, 19 MB in all). The
#: searches of 40 development photos asked 7,272 silhouettes, 5,261 of them distinct within their search; keeping
#: them left every answer the same and took the search's p50 to 0.93 of its time (BENCHMARKS.md, registration).
RENDERS_KEPT = 512


def silhouette_mesh(mesh: Any, cell: float = 0.006) -> Any:
    """A coarser copy of ``mesh`` with (nearly) the same outline: vertices snapped to a grid of ``cell`` canonical
    units and merged (vertex clustering), collapsed and repeated faces dropped.

    At the silhouette renders' size (96 px over the fit distance's field of view, about 0.023 units per pixel) a
    0.006 cell keeps the outline (IoU 0.93–1.0, mostly ≥ 0.97, with the full mesh's, measured once on the
    166-model library's densest wheelchairs, benches and rifles; a 0.02 cell dropped thin spokes and slats to
    0.87), while dense CAD meshes (30k–70k faces) shrink 3–5 fold: the rasteriser's cost follows the face count.
    """
    import trimesh

    v = np.asarray(mesh.vertices, np.float64)
    f = np.asarray(mesh.faces, np.int64)
    cells = np.floor(v / cell).astype(np.int64)
    _, first, inverse = np.unique(cells, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    faces = inverse[f]
    keep = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    faces = faces[keep]
    if len(faces) == 0:
        return mesh
    _, unique_rows = np.unique(np.sort(faces, axis=1), axis=0, return_index=True)
    faces = faces[np.sort(unique_rows)]
    return trimesh.Trimesh(vertices=v[first], faces=faces, process=False)


class SilhouetteRenderer:
    """Coverage masks of a mesh from (θ, φ) at roll 0, the camera at the standard fit distance: (R, R) float32.

    Wraps the rasteriser's coverage path (:class:`~cadsearch.render.raster.CoverageRenderer`, one sample per
    pixel, no shading); meshes
    above :data:`SIMPLIFY_ABOVE` faces are drawn from :func:`silhouette_mesh`. Meshes stay uploaded (and
    simplified) between calls, keyed by ``key`` (else by the mesh object), and so do the last ``renders_kept``
    silhouettes of keyed meshes (:data:`RENDERS_KEPT`): a search asks the same pose of the same model again and
    again (each check starts from the registered pose, the hypotheses meet). Not thread-safe: one per thread, or a
    lock around it.
    """

    def __init__(self, size: int = 96, cache_size: int = 8, renders_kept: int | None = None) -> None:
        from cadsearch.render.raster import CoverageRenderer

        self.size = int(size)
        self._renderer = CoverageRenderer(size=self.size, cache_size=cache_size)
        self._simple: dict[Any, Any] = {}
        self._cache_size = cache_size
        self._renders: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._renders_kept = RENDERS_KEPT if renders_kept is None else max(0, int(renders_kept))

    def _mesh_for(self, mesh: Any, key: Any) -> Any:
        if len(mesh.faces) <= SIMPLIFY_ABOVE:
            return mesh
        name = key if key is not None else id(mesh)
        if name not in self._simple:
            if len(self._simple) >= self._cache_size:
                self._simple.pop(next(iter(self._simple)))
            self._simple[name] = silhouette_mesh(mesh)
        return self._simple[name]

    def __call__(self, mesh: Any, polar_deg: float, azimuth_deg: float, key: Any = None) -> np.ndarray:
        camera = Camera(float(polar_deg), float(azimuth_deg) % 360.0)
        name = None if key is None else (key, camera.polar_deg, camera.azimuth_deg)
        kept = self._renders.get(name) if name is not None else None
        if kept is not None:
            self._renders.move_to_end(name)
            return kept.copy()  # a copy: the caller may write into it
        out = self._renderer.render(self._mesh_for(mesh, key), camera,
                                    key=None if key is None else ("silhouette", key))  # fmt: skip
        if name is not None and self._renders_kept:
            self._renders[name] = out.copy()
            if len(self._renders) > self._renders_kept:
                self._renders.popitem(last=False)
        return out

    def close(self) -> None:
        self._renderer.close()
        self._simple.clear()
        self._renders.clear()


def resample_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """(H, W) float mask in [0, 1] → (size, size) float32, area-averaged (bilinear when enlarging)."""
    im = Image.fromarray(np.asarray(mask, np.float32), mode="F")
    method = Image.Resampling.BOX if im.width >= size else Image.Resampling.BILINEAR
    return np.clip(np.asarray(im.resize((size, size), method)), 0.0, 1.0)


def silhouette_iou(a: np.ndarray, b: np.ndarray, threshold: float = 0.5) -> float:
    """IoU of two same-shaped masks thresholded at ``threshold`` (1.0 when both are empty)."""
    ma, mb = np.asarray(a) >= threshold, np.asarray(b) >= threshold
    union = np.logical_or(ma, mb).sum()
    return float(np.logical_and(ma, mb).sum() / union) if union else 1.0


# --- 2D alignment -------------------------------------------------------------------------------------------
# Parameters of a render square in the frame, in the frame's normalised coordinates ([-1, 1], y down):
# (u, v) its centre, log s its side / the frame's side, rho its roll in radians (counter-clockwise on screen).
# Arrays are numpy at the boundaries; warps run in torch on one thread (set by refine_pose): the batches are
# tiny (≤ 10 × grid²), and torch's thread pool costs ~50× the work on a busy 2-core machine.


_BASE_GRIDS: dict[int, torch.Tensor] = {}


def silhouette_extent(sil: np.ndarray, placement: Placement, threshold: float = 0.5) -> float:
    """How large a placed model looks in the photo: the longer side of the axis-aligned box, photo pixels, of the
    silhouette ``sil`` ((S, S) render of the model at its pose, ≥ ``threshold`` inside) placed by ``placement``
    (turned by its roll, as the photo shows it); 0 for an empty silhouette."""
    ys, xs = np.nonzero(np.asarray(sil) >= threshold)
    if not len(xs):
        return 0.0
    size = sil.shape[0]
    corners = placement.to_photo(np.stack([xs + 0.5, ys + 0.5], axis=1).astype(np.float64), size)
    pixel = placement.side / size  # a render pixel's side in the photo: the points are pixel centres
    return float(max(np.ptp(corners[:, 0]), np.ptp(corners[:, 1])) + pixel)


def _base_grid(g: int) -> torch.Tensor:
    """(g², 3) homogeneous pixel centres (x, y, 1) of a g × g grid in normalised coordinates ([-1, 1])."""
    if g not in _BASE_GRIDS:
        c = (torch.arange(g, dtype=torch.float32) + 0.5) / g * 2 - 1
        yy, xx = torch.meshgrid(c, c, indexing="ij")
        _BASE_GRIDS[g] = torch.stack([xx.reshape(-1), yy.reshape(-1), torch.ones(g * g)], 1)
    return _BASE_GRIDS[g]


def _warp(render: np.ndarray, params: np.ndarray, grid: int) -> torch.Tensor:
    """(R, R) float32 render coverage placed by each of (N, 4) params → (N, grid, grid), bilinear, 0 outside.

    Each frame point p samples the render at M(−ρ) (p − c) / s, M(ρ) = [[cos, sin], [−sin, cos]]."""
    prm = torch.from_numpy(np.asarray(params, np.float32))
    u, v, logs, rho = prm.unbind(1)
    inv_s, c, s = torch.exp(-logs), torch.cos(rho), torch.sin(rho)
    a00, a01, a10, a11 = c * inv_s, -s * inv_s, s * inv_s, c * inv_s  # M(−ρ) / s
    theta = torch.stack(
        [torch.stack([a00, a01, -(a00 * u + a01 * v)], 1), torch.stack([a10, a11, -(a10 * u + a11 * v)], 1)], 1
    )
    # the same sampling grid as F.affine_grid(align_corners=False), as one matmul (affine_grid is ~10× slower here)
    coords = (_base_grid(grid) @ theta.transpose(1, 2)).view(len(prm), grid, grid, 2)
    source = torch.from_numpy(render)[None, None].expand(len(prm), -1, -1, -1)
    return F.grid_sample(source, coords, align_corners=False)[:, 0]


def _roll_penalty(params: np.ndarray, cfg: RefineConfig) -> np.ndarray:
    """(N, 4) params → (N,) soft IoU given up for their roll (:attr:`RefineConfig.roll_weight` per (10°)² of
    |roll| beyond :attr:`RefineConfig.roll_free`; zeros without the prior)."""
    if cfg.roll_weight <= 0:
        return np.zeros(len(params))
    beyond = np.maximum(np.degrees(np.abs(np.asarray(params, np.float64)[:, 3])) - cfg.roll_free, 0.0)
    return cfg.roll_weight * (beyond / 10.0) ** 2


def _fit(render: np.ndarray, params: np.ndarray, target: np.ndarray, cfg: RefineConfig) -> np.ndarray:
    """The 2D objective of (N, 4) ``params``: soft IoU of the placed render with ``target`` − the roll prior."""
    return _soft_iou(_warp(render, params, cfg.grid), target) - _roll_penalty(params, cfg)


def _soft_iou(warped: torch.Tensor, target: np.ndarray) -> np.ndarray:
    """(N, g, g) and (g, g) in [0, 1] → (N,) soft IoU Σ a t / (Σ a + Σ t − Σ a t)."""
    flat = warped.reshape(len(warped), -1)
    t = torch.from_numpy(target).reshape(-1)
    inter = flat @ t
    return (inter / (flat.sum(1) + t.sum() - inter).clamp_min(1e-6)).numpy().astype(np.float64)


def _moments(m: np.ndarray) -> tuple[float, np.ndarray]:
    """Area (in normalised units²) and centroid (x, y) in normalised coordinates of a (g, g) mask."""
    g = m.shape[-1]
    coords = (np.arange(g, dtype=np.float64) + 0.5) / g * 2 - 1
    total = max(float(m.sum()), 1e-6)
    return total * (2.0 / g) ** 2, np.array([(m.sum(0) * coords).sum() / total, (m.sum(1) * coords).sum() / total])


def _moment_params(render: np.ndarray, target_moments, rolls: np.ndarray) -> np.ndarray:
    """Params (len(rolls), 4) that match the render's area and centroid to the target's at each roll (radians)."""
    area_t, cen_t = target_moments
    area_r, cen_r = _moments(render)
    logs = 0.5 * math.log(max(area_t, 1e-6) / max(area_r, 1e-6))
    s = math.exp(logs)
    c, sn = np.cos(rolls), np.sin(rolls)
    # the render's centroid lands at c + s M(ρ) cen_r; make that the target's centroid
    mx = c * cen_r[0] + sn * cen_r[1]
    my = -sn * cen_r[0] + c * cen_r[1]
    return np.stack([cen_t[0] - s * mx, cen_t[1] - s * my, np.full_like(c, logs), rolls], 1)


_STEPS0 = np.array([0.04, 0.04, 0.04, math.radians(3.0)])


def _polish(render, target, params, cfg: RefineConfig, steps, levels: int) -> tuple[np.ndarray, float]:
    """Pattern search from (4,) ``params``: try each parameter ± its step (8 candidates, one batch), move to the
    best while it improves, else halve the steps; ``levels`` halvings. Returns (params, objective: :func:`_fit`)."""
    best = params.copy()
    best_score = float(_fit(render, best[None], target, cfg)[0])
    eye = np.eye(4)
    level = 0
    for _ in range(6 * (levels + 1)):  # bounded: at most a few moves per level
        cand = np.concatenate([best[None] + eye * steps, best[None] - eye * steps])
        scores = _fit(render, cand, target, cfg)
        i = int(np.argmax(scores))
        if float(scores[i]) > best_score + 1e-5:
            best, best_score = cand[i], float(scores[i])
        else:
            level += 1
            if level > levels:
                break
            steps = steps / 2
    return best, best_score


def _align(
    render, target, target_moments, cfg: RefineConfig, start: np.ndarray | None, polish: bool = True, levels: int = 3
):
    """Best (params, soft IoU) of one render. Without ``start``: from the moments at the coarse rolls, then
    polished. With ``start`` (the current best placement, for a neighbouring pose): ``start`` itself and the
    moments at its roll, polished briefly only when ``polish`` (the pose search polishes the winner alone)."""
    if start is None:
        rolls = np.radians(np.arange(-cfg.roll_range, cfg.roll_range + 1e-6, cfg.roll_step))
        cand = _moment_params(render, target_moments, rolls)
    else:
        cand = np.concatenate([start[None], _moment_params(render, target_moments, start[3:4])])
    scores = _fit(render, cand, target, cfg)
    i = int(np.argmax(scores))
    if start is not None and not polish:
        return cand[i], float(scores[i])
    # a neighbour pose starts close to the current best placement: a short, fine polish is enough
    steps = _STEPS0 if start is None else _STEPS0 / 4
    return _polish(render, target, cand[i], cfg, steps, levels=levels if start is None else 1)


def _coarse_fit(render: np.ndarray, target: np.ndarray, target_moments, cfg: RefineConfig) -> float:
    """Soft IoU of a render at its best coarse roll, moment-aligned (one batch, no polish): to compare starts."""
    rolls = np.radians(np.arange(-cfg.roll_range, cfg.roll_range + 1e-6, cfg.roll_step))
    return float(_soft_iou(_warp(render, _moment_params(render, target_moments, rolls), cfg.grid), target).max())


def _pick_start(pose, sil, target, target_moments, cfg: RefineConfig, render) -> tuple[tuple[float, float], Any]:
    """The estimate, or one of :attr:`RefineConfig.starts` (and, when all fit poorly, of a ring of poses around
    the object) whose coarse fit beats the estimate's by :attr:`RefineConfig.switch_margin`. Returns
    ``(pose, its render)``."""
    if not cfg.starts:
        return pose, sil
    own = _coarse_fit(sil, target, target_moments, cfg)
    best = (own + cfg.switch_margin, pose, sil)
    cands = start_poses(*pose, cfg.starts, cfg.polar_limits)

    def consider(cands) -> float:
        nonlocal best
        top = own
        for cand in cands:
            s = render(*cand)
            fit = _coarse_fit(s, target, target_moments, cfg)
            top = max(top, fit)
            if fit > best[0]:
                best = (fit, cand, s)
        return top

    if consider(cands) < cfg.global_below and cfg.global_step > 0:
        ring = [(float(np.clip(p, *cfg.polar_limits)), (pose[1] + a) % 360.0)
                for p in (pose[0] - 25.0, pose[0], pose[0] + 25.0)
                for a in np.arange(cfg.global_step, 360.0, cfg.global_step)]  # fmt: skip
        consider(ring)
    return best[1], best[2]


def start_poses(
    polar_deg: float, azimuth_deg: float, starts: tuple, polar_limits: tuple[float, float] = (2.0, 178.0)
) -> list[tuple[float, float]]:
    """The poses ``starts`` name around (θ, φ) (degrees): "mirror" is (θ, 360° − φ), a pair (Δθ, Δφ) is
    (θ + Δθ clipped to ``polar_limits``, φ + Δφ); azimuths in [0, 360), in the order of ``starts``."""
    out = []
    for start in starts:
        if start == "mirror":
            out.append((float(polar_deg), (360.0 - float(azimuth_deg)) % 360.0))
        else:
            out.append((float(np.clip(polar_deg + start[0], *polar_limits)), (float(azimuth_deg) + start[1]) % 360.0))
    return out


def _params_to_placement(params: np.ndarray, frame: Frame) -> Placement:
    u, v, logs, rho = (float(x) for x in params)
    cx, cy = frame.centre
    half = frame.side / 2
    return Placement(cx + u * half, cy + v * half, math.exp(logs) * frame.side, math.degrees(rho))


def _hard_iou(render, params, target, grid) -> float:
    return silhouette_iou(_warp(render, params[None], grid)[0].numpy(), target)


def _distinct_starts(estimate: tuple[float, float], alternatives, cfg: RefineConfig) -> list[tuple[float, ...]]:
    """The estimate (prior 0) and up to ``cfg.hypotheses − 1`` of ``alternatives`` ((polar, azimuth, mass), most
    probable first) further than ``cfg.hypothesis_separation`` from every earlier start, each with its log prior
    ``prior_log_weight × ln(mass / the estimate's mass)`` (≤ 0 for a less probable pose). The estimate's mass is
    that of the most probable alternative within the separation of it (it usually *is* the head's first mode),
    else the largest mass given."""
    alts = [(float(np.clip(p, *cfg.polar_limits)), float(a) % 360.0, max(float(m), 1e-3))
            for p, a, m in alternatives if np.isfinite([p, a, m]).all() and m > 0]  # fmt: skip
    if not alts or cfg.hypotheses <= 1:
        return [(*estimate, 0.0)]
    near = [m for p, a, m in alts if float(pose_error_deg(p, a, *estimate)) < cfg.hypothesis_separation]
    own = max(near) if near else max(m for _, _, m in alts)
    starts = [(*estimate, 0.0)]
    for p, a, m in alts:
        if len(starts) >= cfg.hypotheses:
            break
        if all(float(pose_error_deg(p, a, q, b)) >= cfg.hypothesis_separation for q, b, _ in starts):
            starts.append((p, a, cfg.prior_log_weight * min(0.0, math.log(m / own))))
    return starts


def refine_pose(
    mesh: Any,
    target: np.ndarray,
    frame: Frame,
    polar_deg: float,
    azimuth_deg: float,
    renderer: SilhouetteRenderer | None = None,
    cfg: RefineConfig = RefineConfig(),
    key: Any = None,
    alternatives: Any = (),
) -> Registration:
    """Refine a model's pose and placement so that its silhouette covers the photo's object mask.

    Args:
        mesh: the model's canonical ``trimesh.Trimesh``.
        target: (S, S) float object probability (or 0/1 mask) over ``frame``.
        frame: the square of the photo ``target`` covers, photo pixels.
        polar_deg, azimuth_deg: the estimate to start from (the search's pose for this model).
        renderer: a :class:`SilhouetteRenderer` to reuse (one is made and closed otherwise).
        cfg: :class:`RefineConfig`.
        key: names ``mesh`` in the renderer's upload cache (e.g. its model id).
        alternatives: other poses the search found probable, ``(polar_deg, azimuth_deg, mass)`` with mass in
            (0, 1] (the pose head's modes, :attr:`cadsearch.models.Prediction.pose_modes`); tried as starts too
            (:attr:`RefineConfig.hypotheses`). Empty: the estimate alone (only a mask that can be trusted should
            be allowed to overrule the search's pose: the searcher decides).

    Returns:
        :class:`Registration`: refined angles, roll, placement in photo pixels, IoU before and after.
    """
    t0 = time.perf_counter()
    own = renderer is None
    renderer = renderer or SilhouetteRenderer(cfg.render_size)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        tgt = resample_mask(target, cfg.grid)
        moments = _moments(tgt)
        renders = 0

        def render(polar: float, azimuth: float) -> np.ndarray:
            nonlocal renders
            renders += 1
            return np.asarray(renderer(mesh, polar, azimuth, key), np.float32)

        pose = (float(np.clip(polar_deg, *cfg.polar_limits)), float(azimuth_deg) % 360.0)
        sil = render(*pose)
        start_params = _moment_params(sil, moments, np.zeros(1))[0]
        iou_start = _hard_iou(sil, start_params, tgt, cfg.grid)
        starts = _distinct_starts(pose, alternatives, cfg)
        if len(starts) == 1:
            pose, sil = _pick_start(pose, sil, tgt, moments, cfg, render)
            starts = [(*pose, 0.0)]
        # each start 2D-aligned (the estimate's render is already there), the best few refined locally
        aligned = []
        for j, (polar, azimuth, log_prior) in enumerate(starts):
            s = sil if j == 0 else render(polar, azimuth)
            params, score = _align(s, tgt, moments, cfg, None, levels=3 if len(starts) == 1 else cfg.screen_levels)
            aligned.append((score + log_prior, (polar, azimuth), s, params, score, log_prior))
        aligned.sort(key=lambda item: -item[0])
        kept = [a for a in aligned[: max(1, cfg.refine_hypotheses)] if a[0] >= aligned[0][0] - cfg.refine_margin]
        budget = cfg.max_renders if len(kept) == 1 else cfg.max_renders // len(kept)
        best = None
        for _, start_pose, s, params, score, log_prior in kept:
            found = _local_search(start_pose, s, params, score, tgt, moments, cfg, render, renders + budget,
                                  lambda: renders)  # fmt: skip
            objective = found[3] + log_prior
            if best is None or objective > best[0]:
                best = (objective, found)
        pose, params, best_sil, _ = best[1]
        params, _ = _polish(best_sil, tgt, params, cfg, _STEPS0 / 4, levels=2)
        iou = _hard_iou(best_sil, params, tgt, cfg.grid)
        placement = _params_to_placement(params, frame)
        extent = silhouette_extent(best_sil, placement)
        return Registration(pose[0], pose[1], placement.roll_deg, placement, iou, iou_start, renders,
                            1000 * (time.perf_counter() - t0), extent)  # fmt: skip
    finally:
        torch.set_num_threads(threads)
        if own:
            renderer.close()


def _local_search(pose, sil, params, score: float, tgt, moments, cfg: RefineConfig, render, budget: int, spent):
    """The pose search of :func:`refine_pose` from one aligned start: ``(pose, params, render, objective)``,
    objective = soft IoU − the prior towards ``pose`` (:attr:`RefineConfig.prior_weight`); ``score``: the soft
    IoU of ``params`` at ``pose``. ``budget``: stop when ``spent()`` renders would pass it."""
    start = pose

    def prior(polar: float, azimuth: float) -> float:
        return cfg.prior_weight * (float(pose_error_deg(polar, azimuth, *start)) / 10.0) ** 2

    best_sil, objective = sil, score
    step = cfg.start_step_deg
    while step >= cfg.min_step_deg and spent() + 4 <= budget:
        polar, azimuth = pose
        # an azimuth step of `step` degrees on the sphere, not on the angle (smaller near the poles)
        d_az = min(step / max(math.sin(math.radians(polar)), 0.2), 45.0)
        scored = []
        for cand in ((polar - step, azimuth), (polar + step, azimuth), (polar, azimuth - d_az),
                     (polar, azimuth + d_az)):  # fmt: skip
            cand = (float(np.clip(cand[0], *cfg.polar_limits)), cand[1] % 360.0)
            if cand != pose:
                s = render(*cand)
                p, sc = _align(s, tgt, moments, cfg, params, polish=False)
                scored.append((sc - prior(*cand), cand, s, p))
        moved = False
        if scored:
            # only the most promising neighbour is polished (a render's 2D fit is the costly part)
            _, cand, s, p = max(scored, key=lambda item: item[0])
            p, sc = _polish(s, tgt, p, cfg, _STEPS0 / 4, levels=1)
            if sc - prior(*cand) > objective + 1e-4:
                pose, params, best_sil, objective = cand, p, s, sc - prior(*cand)
                moved = True
        if not moved:
            step /= 2
    return pose, params, best_sil, objective
