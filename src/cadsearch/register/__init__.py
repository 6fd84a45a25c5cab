"""Registration: a library model's pose and placement refined so that its outline lies on the photo's object.

- :mod:`cadsearch.register.placement`: :class:`Placement` (where the render square lands in the photo: centre, side,
  roll) and :func:`warp_render` (draw a render there);
- :mod:`cadsearch.register.refine`: :func:`refine_pose`, render-and-compare over polar, azimuth, roll, scale and
  position against the photo's object mask;
- :mod:`cadsearch.register.masks`: :func:`object_mask`, that mask (the localiser's mask head, or a plain backdrop);
- :mod:`cadsearch.register.registrar`: :class:`Registrar`, refinement with meshes and renderer kept warm.
"""

from cadsearch.register.masks import object_mask
from cadsearch.register.placement import Placement, warp_render
from cadsearch.register.refine import RefineConfig, Registration, SilhouetteRenderer, refine_pose, silhouette_iou
from cadsearch.register.registrar import Registrar

__all__ = [
    "Placement",
    "warp_render",
    "RefineConfig",
    "Registration",
    "SilhouetteRenderer",
    "refine_pose",
    "silhouette_iou",
    "object_mask",
    "Registrar",
]
