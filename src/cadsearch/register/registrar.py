"""``Registrar``: registers library models in photos, for a long-lived searcher (meshes and renderers kept warm).

:func:`~cadsearch.register.refine.refine_pose` needs the model's mesh and a silhouette renderer; loading a mesh from
the workspace and uploading it costs more than a refinement, so the registrar keeps the last few meshes (LRU), one
:class:`~cadsearch.register.refine.SilhouetteRenderer` and, for the look-alike check
(:mod:`cadsearch.register.appearance`), one colour renderer. One lock serialises them: the OpenGL context is one
per process anyway.
"""

from __future__ import annotations

import math
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from cadsearch.errors import CadsearchError
from cadsearch.framing import MARGIN, Frame, frame_for, frame_image
from cadsearch.register.appearance import (
    AppearanceJudge,
    LookAlikeChoice,
    LookAlikeConfig,
    outline_twin,
    pose_candidates,
)
from cadsearch.register.placement import Placement, warp_render
from cadsearch.register.refine import RefineConfig, Registration, SilhouetteRenderer, refine_pose, start_poses
from cadsearch.render.cameras import Camera

#: Backdrop of the look-alike renders (mid grey: the body's input normalisation centres it at zero).
_BACKDROP = 128.0

#: :meth:`Registrar.check_other_starts`' starts around a registered pose (:func:`~cadsearch.register.refine.
#: start_poses`): the mirrored azimuth, ±45° azimuth, ±20° polar. Not the back (φ + 180°): on the development photos
#: the only answer it changed went from 40.6° to 153.4° of azimuth error, and a front seen as a back is the outline
#: twin's to judge (:meth:`Registrar.check_outline_twin`).
OTHER_STARTS: tuple = ("mirror", (0.0, 45.0), (0.0, -45.0), (-20.0, 0.0), (20.0, 0.0))
#: A registration from one of them replaces the registered pose only when its silhouette fits the mask better by
#: more than this (IoU).
OTHER_START_FIT_MARGIN = 0.02
#: The starts' least separation from the registered pose and from each other (pose error, degrees): under
#: :attr:`~cadsearch.register.refine.RefineConfig.hypothesis_separation` (20°), so that ±20° polar count as starts.
OTHER_START_SEPARATION = 15.0

#: :meth:`Registrar.check_far_starts`' ring of starts around a pose that could not be registered, or fits poorly: every
#: 45° of azimuth (a registration beside the wide one, :meth:`~cadsearch.register.refine.RefineConfig.wide`, or alone).
FAR_STARTS: tuple = tuple((0.0, float(d)) for d in range(45, 360, 45))
#: ... and their answer is taken only when its render agrees with the photo better than the pose's, drawn at the same
#: placement, by at least this (cosine): on the development photos, whose chairs are none of the library's, a far pose
#: that fitted their mask also agreed a little better with one of them (BENCHMARKS.md, "Far starts").
FAR_START_AGREEMENT_MARGIN = 0.05

__all__ = ["FAR_STARTS", "OTHER_STARTS", "Registrar"]


class Registrar:
    """Refines (model, photo mask, estimate) → :class:`~cadsearch.register.refine.Registration`. Thread-safe.

    Args:
        library: the :class:`~cadsearch.library.Library` the models come from (``mesh(model_id)``).
        config: :class:`~cadsearch.register.refine.RefineConfig`.
        cache_size: meshes kept loaded.
        look_alikes: :class:`~cadsearch.register.appearance.LookAlikeConfig` of :meth:`check_look_alikes`.
        appearance_onnx: the appearance judge's ONNX export (:class:`~cadsearch.register.appearance.AppearanceJudge`'s
            ``onnx_path``); None: torch eager.
    """

    def __init__(
        self,
        library: Any,
        config: RefineConfig = RefineConfig(),
        cache_size: int = 16,
        look_alikes: LookAlikeConfig = LookAlikeConfig(),
        appearance_onnx: str | Path | None = None,
    ) -> None:
        self.library = library
        self.config = config
        self.cache_size = int(cache_size)
        self._meshes: OrderedDict[str, Any] = OrderedDict()
        self._renderer: SilhouetteRenderer | None = None
        self._colour: Any = None  # RasterRenderer of the look-alike check, made on first use
        self.judge = AppearanceJudge(look_alikes, appearance_onnx)
        self._lock = threading.Lock()
        #: Why registration cannot run in this process (no OpenGL context), or None. Searches then keep their
        #: poses rather than fail: registration refines an answer, it is not needed to give one.
        self.unavailable: str | None = None

    def _mesh(self, model_id: str) -> Any:
        if model_id in self._meshes:
            self._meshes.move_to_end(model_id)
            return self._meshes[model_id]
        mesh = self.library.mesh(model_id)
        self._meshes[model_id] = mesh
        while len(self._meshes) > self.cache_size:
            self._meshes.popitem(last=False)
        return mesh

    def _has_gl(self) -> bool:
        """Whether this process can render; on the first failure, says why once on stderr (:attr:`unavailable`).
        Call with the lock held."""
        if self.unavailable is not None:
            return False
        from cadsearch.render.raster import gl_context

        try:
            gl_context()  # created here, once, so that a machine without OpenGL is told, not crashed
        except CadsearchError as err:
            self.unavailable = str(err)
            print(f"warning: registration is off ({err})", file=sys.stderr)
            return False
        return True

    def _drawable(self, model_id: str) -> Any:
        """``model_id``'s mesh, or None when it cannot be loaded (the result keeps the search's pose) or this
        process cannot render (:meth:`_has_gl`). Call with the lock held."""
        try:
            mesh = self._mesh(model_id)
        except Exception:  # noqa: BLE001 - a missing or broken mesh: the result keeps the search's pose
            return None
        return mesh if self._has_gl() else None

    def refine(
        self,
        model_id: str,
        target: np.ndarray,
        frame: Frame,
        polar_deg: float,
        azimuth_deg: float,
        alternatives: Any = (),
        config: RefineConfig | None = None,
    ) -> Registration | None:
        """Refine ``model_id``'s pose and placement against ``target`` (the object mask over ``frame``), starting
        from (``polar_deg``, ``azimuth_deg``) and from ``alternatives`` ((polar, azimuth, mass) the search also
        found probable; :func:`~cadsearch.register.refine.refine_pose`), with ``config`` (None: :attr:`config`; its
        ``render_size`` must be :attr:`config`'s). None when the model's mesh cannot be loaded (it stays
        unregistered), or when this process has no OpenGL context (:attr:`unavailable`; said once on stderr)."""
        with self._lock:
            mesh = self._drawable(model_id)
            if mesh is None:
                return None
            if self._renderer is None:
                self._renderer = SilhouetteRenderer(self.config.render_size, cache_size=self.cache_size)
            return refine_pose(mesh, target, frame, polar_deg, azimuth_deg, self._renderer, config or self.config,
                               model_id, alternatives)  # fmt: skip

    def _colour_render(self, mesh: Any, model_id: str, polar_deg: float, azimuth_deg: float) -> Any:
        """``mesh`` rendered in colour at (polar, azimuth), roll 0, by the look-alike renderer (made on first use, at
        the judge's ``render_size``): a :class:`~cadsearch.render.types.RenderOutput`. Call with the lock held."""
        if self._colour is None:
            from cadsearch.render.raster import RasterRenderer

            self._colour = RasterRenderer(self.judge.config.render_size, cache_size=self.cache_size)
        return self._colour.render(mesh, Camera(polar_deg, azimuth_deg), key=model_id)

    def _framed_render(
        self, mesh: Any, model_id: str, polar_deg: float, azimuth_deg: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """``mesh`` rendered in colour at (polar, azimuth) and framed as a query of that render would be (its object
        box plus the framing margin): ((S, S, 3) uint8 over a grey backdrop, (S, S) coverage in [0, 1]),
        S = the judge's ``input_size``. Call with the lock held."""
        cfg = self.judge.config
        out = self._colour_render(mesh, model_id, polar_deg, azimuth_deg)
        rgb = (out.rgb + _BACKDROP * (1.0 - out.alpha[..., None])).astype(np.uint8)  # rgb is premultiplied
        ys, xs = np.nonzero(out.alpha > 0.5)
        box = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) if len(xs) else None
        square = frame_for(cfg.render_size, cfg.render_size, box, MARGIN)
        grey = (np.clip(out.alpha, 0.0, 1.0) * 255).astype(np.uint8)
        return frame_image(rgb, cfg.input_size, square), frame_image(grey, cfg.input_size, square)[..., 0] / 255.0

    def _placed_render(
        self, mesh: Any, model_id: str, polar_deg: float, azimuth_deg: float, placement: Placement, square: Frame
    ) -> tuple[np.ndarray, np.ndarray]:
        """``mesh`` rendered in colour at (polar, azimuth) and drawn at ``placement`` (photo pixels, roll included),
        cut to the photo's ``square`` at the judge's ``input_size`` S: ((S, S, 3) uint8 over a grey backdrop, (S, S)
        coverage in [0, 1]). Call with the lock held."""
        cfg = self.judge.config
        out = self._colour_render(mesh, model_id, polar_deg, azimuth_deg)
        k = cfg.input_size / square.side  # photo pixels → square pixels: the placement in the square's pixels
        at = Placement((placement.cx - square.x0) * k, (placement.cy - square.y0) * k, placement.side * k,
                       placement.roll_deg)  # fmt: skip
        rgb, alpha = warp_render(at, out.rgb, out.alpha, cfg.input_size, cfg.input_size)  # rgb premultiplied
        return np.clip(rgb + _BACKDROP * (1.0 - alpha[..., None]), 0, 255).astype(np.uint8), alpha

    def _placed_agreement(self, model_id: str, image: np.ndarray, poses: list[tuple[float, float, Placement]],
                          square: Frame) -> np.ndarray | None:  # fmt: skip
        """Each (polar, azimuth, placement) of ``model_id`` drawn into ``image`` and judged on its ``square``
        (:meth:`~cadsearch.register.appearance.AppearanceJudge.agreement`) → (len(poses),) cosine units; None when
        the mesh cannot be loaded or there is no OpenGL context."""
        with self._lock:
            mesh = self._drawable(model_id)
            if mesh is None:
                return None
            renders, cover = zip(*(self._placed_render(mesh, model_id, p, a, at, square) for p, a, at in poses),
                                 strict=True)  # fmt: skip
        query = frame_image(image, self.judge.config.input_size, square)
        return self.judge.agreement(query, np.stack(renders), np.stack(cover))

    def check_outline_twin(
        self,
        model_id: str,
        image: np.ndarray,
        target: np.ndarray,
        frame: Frame,
        polar_deg: float,
        azimuth_deg: float,
        placement: Placement,
        fit: float,
        min_agreement: float = -math.inf,
    ) -> Registration | None:
        """The registration of the outline twin of ``model_id``'s registered pose when the photo's appearance says
        the object was seen from there, else None.

        A silhouette cannot tell a pose from its outline twin (:func:`~cadsearch.register.appearance.outline_twin`:
        the front seen as the back), so registration can lock onto the wrong one; the object's appearance can tell.
        The twin is drawn at the registered ``placement`` (it has the same outline) and judged with the registered
        pose on the placement's square of ``image``; if it agrees better by the judge's ``margin``, it is registered
        from its pose against ``target`` (the object mask over ``frame``), and taken if it fits about as well
        (``twin_fit_margin`` below ``fit`` at most) and, drawn at its own placement, still agrees better by
        ``margin`` and at least ``min_agreement``. Two colour renders and a judge pass, plus a registration and a
        second pass only where the twin wins the first.

        Args:
            model_id, image, target, frame: as :meth:`refine` ((H, W, 3) uint8 photo; (S, S) mask over ``frame``).
            polar_deg, azimuth_deg, placement, fit: the registered pose (degrees), placement (photo pixels) and
                silhouette IoU.
            min_agreement: the least agreement (cosine) the twin's render must reach: a photo of another object
                than the model agrees with none of its renders closely, and then they are no evidence of the pose
                (the searcher asks the judge's ``sure_agreement`` unless the model surely is the object).
        """
        cfg = self.judge.config
        twin_pose = outline_twin(polar_deg, azimuth_deg)
        square = placement.square()
        first = self._placed_agreement(
            model_id, image, [(polar_deg, azimuth_deg, placement), (*twin_pose, placement)], square
        )
        if first is None or first[1] < first[0] + cfg.margin:
            return None
        twin = self.refine(model_id, target, frame, *twin_pose)
        if twin is None or twin.iou < fit - cfg.twin_fit_margin:
            return None
        both = [(polar_deg, azimuth_deg, placement), (twin.polar_deg, twin.azimuth_deg, twin.placement)]
        again = self._placed_agreement(model_id, image, both, square)
        return twin if again is not None and again[1] >= max(again[0] + cfg.margin, min_agreement) else None

    def _refine_from_starts(
        self, model_id: str, target: np.ndarray, frame: Frame, polar_deg: float, azimuth_deg: float, starts: tuple
    ) -> Registration | None:
        """One :meth:`refine` whose hypotheses are (``polar_deg``, ``azimuth_deg``) and the poses ``starts`` name
        around it (:func:`~cadsearch.register.refine.start_poses`), all equally probable and at least
        :data:`OTHER_START_SEPARATION` apart: the best aligned few refined, the best fit kept."""
        cfg = self.config
        poses = [(p, a, 1.0) for p, a in start_poses(polar_deg, azimuth_deg, starts, cfg.polar_limits)]
        hypotheses = replace(cfg, hypotheses=len(poses) + 1,
                             hypothesis_separation=min(cfg.hypothesis_separation, OTHER_START_SEPARATION))  # fmt: skip
        return self.refine(model_id, target, frame, polar_deg, azimuth_deg, poses, hypotheses)

    def check_other_starts(
        self,
        model_id: str,
        image: np.ndarray,
        target: np.ndarray,
        frame: Frame,
        polar_deg: float,
        azimuth_deg: float,
        placement: Placement,
        fit: float,
        min_agreement: float = -math.inf,
    ) -> Registration | None:
        """The registration of ``model_id`` from other starts around its registered pose (:data:`OTHER_STARTS`)
        when it fits the mask better and the photo's appearance agrees, else None.

        Registration refines locally, so a pose estimate 20–45° off (or mirrored) ends in the nearest local optimum;
        a start on the other side of the hill ends higher. On rolled room composites a registration started at the
        true pose fitted the product's own mask better than the registered answer for every one of the largest pose
        errors (``BENCHMARKS.md``, "Other starts"). But the outline alone is no evidence on real photos, whose masks
        are coarser and whose objects are often not the model: there a better-fitting far pose is as often wrong.
        So the photo's appearance must agree too. The starts and the registered pose are refined as one registration's
        hypotheses (:attr:`~cadsearch.register.refine.RefineConfig.hypotheses`, no prior between them: the best
        aligned few refined, the best fit kept); when that fits better by more than :data:`OTHER_START_FIT_MARGIN`,
        both are drawn at their placements and judged on the registered placement's square, and it is taken when its
        render agrees with the photo at least as well as the registered pose's and at least ``min_agreement``.

        Args:
            model_id, image, target, frame: as :meth:`refine` ((H, W, 3) uint8 photo; (S, S) mask over ``frame``).
            polar_deg, azimuth_deg, placement, fit: the registered pose (degrees), placement (photo pixels) and
                silhouette IoU.
            min_agreement: as :meth:`check_outline_twin`'s.
        """
        other = self._refine_from_starts(model_id, target, frame, polar_deg, azimuth_deg, OTHER_STARTS)
        if other is None or other.iou <= fit + OTHER_START_FIT_MARGIN:
            return None
        square = placement.square()
        both = [(polar_deg, azimuth_deg, placement), (other.polar_deg, other.azimuth_deg, other.placement)]
        agree = self._placed_agreement(model_id, image, both, square)
        return other if agree is not None and agree[1] >= max(agree[0], min_agreement) else None

    def check_far_starts(
        self,
        model_id: str,
        image: np.ndarray,
        target: np.ndarray,
        frame: Frame,
        polar_deg: float,
        azimuth_deg: float,
        min_fit: float,
        min_agreement: float = -math.inf,
        accept: Callable[[Registration], bool] | None = None,
        wide: bool = True,
    ) -> Registration | None:
        """``model_id`` registered from starts all around a pose that could not be registered (or fits poorly): the
        registration, when it fits and the photo's appearance agrees better, else None.

        A pose estimate 90° or more off (the side of a chair taken for its front) leaves the local registration on a
        poor fit, and the search's pose stands. Two registrations look further (the second alone with ``wide=False``):
        the wide one (:meth:`~cadsearch.register.refine.RefineConfig.widened`: the mirror, the back, ±45° azimuth,
        ±20° polar, then a ring of 33 poses when all of them fit poorly) and one whose hypotheses are the pose and
        :data:`FAR_STARTS` (every 45° of azimuth). The better fit of those that fit at least ``min_fit`` and pass
        ``accept`` (the searcher's size check) is drawn at its placement beside the pose drawn at the same placement,
        and taken when its render agrees with the photo better by :data:`FAR_START_AGREEMENT_MARGIN` and at least
        ``min_agreement``: a far pose that fits a mask is no evidence alone. Two registrations and a judge pass
        (about 0.3 s on this machine; the ring alone about 0.15 s).

        Args:
            model_id, image, target, frame: as :meth:`check_other_starts`.
            polar_deg, azimuth_deg: the pose (the search's), degrees.
            min_fit: the least silhouette IoU of an answer.
            min_agreement: as :meth:`check_outline_twin`'s.
            accept: a further test of a registration (None: every one).
            wide: whether the wide registration is tried too (False: the ring's alone).
        """
        found = []
        if wide:
            found.append(self.refine(model_id, target, frame, polar_deg, azimuth_deg, (), self.config.widened()))
        found.append(self._refine_from_starts(model_id, target, frame, polar_deg, azimuth_deg, FAR_STARTS))
        fits = [r for r in found if r is not None and r.iou >= min_fit and (accept is None or accept(r))]
        if not fits:
            return None
        best = max(fits, key=lambda r: r.iou)
        both = [(polar_deg, azimuth_deg, best.placement), (best.polar_deg, best.azimuth_deg, best.placement)]
        agree = self._placed_agreement(model_id, image, both, best.placement.square())
        if agree is None or agree[1] < max(agree[0] + FAR_START_AGREEMENT_MARGIN, min_agreement):
            return None
        return best

    def check_look_alikes(
        self,
        model_id: str,
        image: np.ndarray,
        frame: Frame | None,
        polar_deg: float,
        azimuth_deg: float,
        modes: Sequence[Sequence[float]] = (),
    ) -> LookAlikeChoice | None:
        """Which of the estimate's look-alike poses, and of ``modes``' (the pose head's other probable viewpoints,
        (polar_deg, azimuth_deg, ...), most probable first; the first ``pose_modes`` of the judge's config are used)
        with theirs (:func:`~cadsearch.register.appearance.pose_candidates`), ``model_id``'s rendered appearance
        supports in ``image``'s ``frame`` (the square the network saw; None: the whole image padded to a square).
        None when the mesh cannot be loaded or there is no OpenGL context."""
        cfg = self.judge.config
        with self._lock:
            mesh = self._drawable(model_id)
            if mesh is None:
                return None
            candidates = pose_candidates(polar_deg, azimuth_deg, list(modes)[: cfg.pose_modes], cfg.separation_deg)
            look_alikes = len(pose_candidates(polar_deg, azimuth_deg, (), cfg.separation_deg))
            renders, cover = zip(*(self._framed_render(mesh, model_id, p, a) for p, a in candidates), strict=True)
        query = frame_image(image, self.judge.config.input_size, frame)
        return self.judge.choose(query, np.stack(renders), np.stack(cover), candidates, look_alikes)

    def compare_models(
        self, image: np.ndarray, frame: Frame | None, candidates: list[tuple[str, float, float]]
    ) -> np.ndarray | None:
        """How well each candidate ``(model_id, polar_deg, azimuth_deg)``, rendered at its pose, agrees with
        ``image``'s ``frame`` (:meth:`~cadsearch.register.appearance.AppearanceJudge.agreement`: every candidate
        judged on the union of their silhouettes) → (len(candidates),) cosine units; None when a mesh cannot be
        loaded or there is no OpenGL context."""
        with self._lock:
            renders, cover = [], []
            for model_id, polar, azimuth in candidates:
                mesh = self._drawable(model_id)
                if mesh is None:
                    return None
                rgb, alpha = self._framed_render(mesh, model_id, polar, azimuth)
                renders.append(rgb), cover.append(alpha)
        query = frame_image(image, self.judge.config.input_size, frame)
        return self.judge.agreement(query, np.stack(renders), np.stack(cover))

    def close(self) -> None:
        """Release the renderer and the cached meshes."""
        with self._lock:
            if self._renderer is not None:
                self._renderer.close()
                self._renderer = None
            if self._colour is not None:
                self._colour.close()
                self._colour = None
            self._meshes.clear()
