"""The one camera convention of cadsearch, and view samplers.

Convention (DESIGN.md): the camera sits on a sphere around the origin of the canonical object frame (+Y up,
the object's front facing +Z), looks at the origin, and has roll 0 (its up vector is in the plane of +Y):

    c(θ, φ, r) = r · (sin θ sin φ, cos θ, sin θ cos φ)

- **polar** θ ∈ [0°, 180°], measured from +Y: 90° is level with the object, smaller is from above.
- **azimuth** φ ∈ [0°, 360°), from +Z towards +X: 0° is a front view, 90° shows the object's left side (its
  front points to the image's *left*), 180° the back, 270° the front pointing *right*.
- Angles are degrees everywhere in the API; distances are in canonical units (the object fits the unit ball).

Matrices follow OpenGL: the view matrix maps world to camera coordinates, where the camera looks down −Z with
+Y up and +X to the image's right; the projection maps to clip space with a symmetric vertical field of view.
All renderers (rasteriser and ray tracer) take a :class:`Camera` and must agree on what it sees.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Camera",
    "DEFAULT_FOV_DEG",
    "fit_distance",
    "camera_position",
    "angles_from_position",
    "direction_from_elevation",
    "camera_seed",
    "look_at",
    "perspective",
    "pose_error_deg",
    "camera_rotation",
    "rotation_error_deg",
    "GOLDEN_ANGLE_DEG",
    "fibonacci_lattice",
    "fibonacci_directions",
    "sample_random",
    "sample_fibonacci",
    "sample_grid",
    "sample_cameras",
    "SAMPLERS",
]

#: Vertical field of view used unless a caller picks another, in degrees.
DEFAULT_FOV_DEG = 35.0
#: Polar angles closer than this to the poles are never sampled: roll is undefined there.
POLE_MARGIN_DEG = 1.0
#: The golden angle, 360° · (2 − φ) = 180° · (3 − √5) ≈ 137.5°: the azimuth step of the Fibonacci lattice.
GOLDEN_ANGLE_DEG = 180.0 * (3.0 - math.sqrt(5.0))


def fit_distance(fov_deg: float = DEFAULT_FOV_DEG, margin: float = 1.05) -> float:
    """Camera distance at which the unit sphere (any canonical object) fills the vertical field of view.

    ``margin`` > 1 leaves a little border. Returns canonical units.
    """
    return margin / math.sin(math.radians(fov_deg) / 2.0)


@dataclass(frozen=True)
class Camera:
    """A camera on the viewing sphere.

    Attributes:
        polar_deg: θ in [0, 180], degrees from +Y.
        azimuth_deg: φ in [0, 360), degrees from +Z towards +X.
        distance: r, distance from the origin in canonical units.
        fov_deg: vertical field of view in degrees (images are square unless a renderer says otherwise).
    """

    polar_deg: float
    azimuth_deg: float
    distance: float = fit_distance(DEFAULT_FOV_DEG)
    fov_deg: float = DEFAULT_FOV_DEG

    @property
    def position(self) -> np.ndarray:
        """Camera centre in world coordinates, shape (3,), float64."""
        return camera_position(self.polar_deg, self.azimuth_deg, self.distance)

    def view_matrix(self) -> np.ndarray:
        """World → camera (OpenGL) 4×4 float64 matrix."""
        return look_at(self.position)

    def projection_matrix(self, aspect: float = 1.0, near: float | None = None, far: float | None = None):
        """Camera → clip 4×4 float64 matrix; near/far default to bracket the unit sphere."""
        near = near if near is not None else max(self.distance - 1.5, 0.05)
        far = far if far is not None else self.distance + 1.5
        return perspective(self.fov_deg, aspect, near, far)

    def focal_px(self, height_px: int) -> float:
        """Focal length in pixels for an image ``height_px`` tall (pinhole, square pixels)."""
        return 0.5 * height_px / math.tan(math.radians(self.fov_deg) / 2.0)


def camera_position(polar_deg, azimuth_deg, distance=1.0) -> np.ndarray:
    """``c(θ, φ, r)`` of DESIGN.md. Accepts scalars or arrays (broadcast); returns shape (..., 3) float64."""
    t = np.radians(np.asarray(polar_deg, dtype=np.float64))
    p = np.radians(np.asarray(azimuth_deg, dtype=np.float64))
    r = np.asarray(distance, dtype=np.float64)
    return np.stack(np.broadcast_arrays(r * np.sin(t) * np.sin(p), r * np.cos(t), r * np.sin(t) * np.cos(p)), -1)


def angles_from_position(position) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of :func:`camera_position`: ``(polar_deg, azimuth_deg, distance)`` for points of shape (..., 3).

    Azimuth is wrapped into [0, 360); at the poles (where it is undefined) it is 0.
    """
    c = np.asarray(position, dtype=np.float64)
    x, y, z = c[..., 0], c[..., 1], c[..., 2]
    r = np.sqrt(x * x + y * y + z * z)
    polar = np.degrees(np.arccos(np.clip(y / np.where(r > 0, r, 1.0), -1.0, 1.0)))
    azimuth = np.degrees(np.arctan2(x, z)) % 360.0
    # arctan2 can return -0.0 → 360.0 after the modulo for tiny negative x; fold it back.
    azimuth = np.where(azimuth >= 360.0, 0.0, azimuth)
    return polar, azimuth, r


def direction_from_elevation(azimuth_deg, elevation_deg) -> np.ndarray:
    """Unit vector at ``azimuth_deg`` (φ, from +Z towards +X) and ``elevation_deg`` above the horizon (the XZ plane).

    The same sphere as :func:`camera_position`, with elevation = 90° − polar: lights and sky features are
    placed by their height above the horizon. Scalars or broadcastable arrays; returns shape (..., 3) float64.
    """
    return camera_position(90.0 - np.asarray(elevation_deg, dtype=np.float64), azimuth_deg)


def camera_seed(camera: Camera) -> int:
    """A deterministic 32-bit seed from a camera's parameters (polar, azimuth, distance, fov as float64).

    Renderers use it for random lighting when a view has no seed of its own, so one camera is always lit
    alike, whichever renderer draws it.
    """
    key = np.array([camera.polar_deg, camera.azimuth_deg, camera.distance, camera.fov_deg], dtype=np.float64)
    return zlib.crc32(key.tobytes())


def look_at(eye, target=(0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0)) -> np.ndarray:
    """OpenGL world → camera matrix for a camera at ``eye`` looking at ``target`` with roll 0.

    Returns a 4×4 float64 matrix whose rows 0..2 are the camera's right, up and backward axes. When the view
    direction is parallel to ``up`` (a pole) the image is oriented as at φ = 0 just off the pole.
    """
    eye = np.asarray(eye, dtype=np.float64)
    forward = np.asarray(target, dtype=np.float64) - eye
    forward /= np.linalg.norm(forward)
    up = np.asarray(up, dtype=np.float64)
    right = np.cross(forward, up)
    if np.linalg.norm(right) < 1e-9:
        # At a pole, pick the up vector that the limit θ → 0 (or 180) at φ = 0 has, so the image does not flip.
        right = np.cross(forward, np.array([0.0, 0.0, forward[1]]))
    right /= np.linalg.norm(right)
    true_up = np.cross(right, forward)
    m = np.eye(4)
    m[0, :3], m[1, :3], m[2, :3] = right, true_up, -forward
    m[:3, 3] = -m[:3, :3] @ eye
    return m


def perspective(fov_deg: float, aspect: float, near: float, far: float) -> np.ndarray:
    """OpenGL perspective projection (camera → clip), vertical field of view in degrees, 4×4 float64."""
    f = 1.0 / math.tan(math.radians(fov_deg) / 2.0)
    m = np.zeros((4, 4))
    m[0, 0] = f / aspect
    m[1, 1] = f
    m[2, 2] = (far + near) / (near - far)
    m[2, 3] = 2.0 * far * near / (near - far)
    m[3, 2] = -1.0
    return m


def pose_error_deg(polar_a, azimuth_a, polar_b, azimuth_b) -> np.ndarray:
    """DESIGN.md's pose error: the angle in degrees between two camera directions (distances ignored).

    Accepts scalars or broadcastable arrays; returns float64 degrees in [0, 180].
    """
    a = camera_position(polar_a, azimuth_a)
    b = camera_position(polar_b, azimuth_b)
    cos = np.sum(a * b, axis=-1)  # both are unit vectors
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def camera_rotation(polar_deg: float, azimuth_deg: float, roll_deg: float = 0.0) -> np.ndarray:
    """World → camera rotation (3×3 float64, rows = the camera's right, up and backward axes) of a camera at
    (θ, φ) with ``roll_deg``: the image turned so the object appears rotated **counter-clockwise** by ``roll_deg``
    (DESIGN.md's ``roll_deg``; 0 = the object's up is the image's up, as :func:`look_at`)."""
    base = look_at(camera_position(polar_deg, azimuth_deg))[:3, :3]
    r = math.radians(roll_deg)
    c, s = math.cos(r), math.sin(r)
    # Turning the image content counter-clockwise = rotating camera coordinates about their viewing axis (+Z).
    spin = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return spin @ base


def rotation_error_deg(
    polar_a: float, azimuth_a: float, roll_a: float, polar_b: float, azimuth_b: float, roll_b: float
) -> float:
    """The geodesic angle in degrees between two camera orientations (polar, azimuth *and* roll), in [0, 180].

    With equal rolls of 0 it is at least :func:`pose_error_deg` (which ignores the in-plane rotation)."""
    ra, rb = camera_rotation(polar_a, azimuth_a, roll_a), camera_rotation(polar_b, azimuth_b, roll_b)
    cos = (np.trace(ra @ rb.T) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


# --- samplers -----------------------------------------------------------------------------------------------
# Each returns (polar_deg, azimuth_deg) arrays of shape (n,). A polar range (min, max) in degrees limits the
# views, e.g. (30, 100) for "from above to slightly below"; the poles themselves are always excluded.


def _clamp_range(polar_range: tuple[float, float]) -> tuple[float, float]:
    lo, hi = float(polar_range[0]), float(polar_range[1])
    if not 0.0 <= lo < hi <= 180.0:
        raise ValueError(f"polar range must satisfy 0 <= min < max <= 180, got {polar_range}")
    return max(lo, POLE_MARGIN_DEG), min(hi, 180.0 - POLE_MARGIN_DEG)


def fibonacci_lattice(
    n: int, polar_range: tuple[float, float] = (0.0, 180.0), offset_deg: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """The Fibonacci lattice: ``n`` near-evenly spread directions over the zone ``polar_range`` (degrees).

    Point ``i`` (``i + 0.5`` in 0.5 … n − 0.5) has ``cos θ`` stepping evenly from ``cos(min)`` to ``cos(max)``
    (equal areas) and azimuth ``i · golden angle + offset_deg``. No pole margin is applied here: the whole
    sphere (the default) never reaches the poles exactly anyway (|cos θ| ≤ 1 − 1/n).
    Returns ``(polar_deg, azimuth_deg)`` float64 arrays of shape (n,), azimuth wrapped into [0, 360).
    """
    lo, hi = float(polar_range[0]), float(polar_range[1])
    i = np.arange(n) + 0.5
    c_hi, c_lo = math.cos(math.radians(lo)), math.cos(math.radians(hi))
    cos_t = c_hi - (c_hi - c_lo) * i / n
    return np.degrees(np.arccos(cos_t)), (i * GOLDEN_ANGLE_DEG + offset_deg) % 360.0


def fibonacci_directions(n: int) -> np.ndarray:
    """Unit vectors ``c(θ, φ, 1)`` of the whole-sphere :func:`fibonacci_lattice`, shape (n, 3) float64.

    These are the pose head's bin centres (``models/heads.py``): saved checkpoints hold them, so this function
    must keep giving the same numbers.
    """
    return camera_position(*fibonacci_lattice(n))


def sample_random(n: int, seed: int | Sequence[int] = 0, polar_range: tuple[float, float] = (0.0, 180.0)):
    """Monte Carlo: ``n`` directions uniform on the sphere's zone ``polar_range`` (uniform in cos θ).

    View ``i`` is drawn from its own generator, seeded by ``(seed, i)`` (``seed`` may itself be a sequence of
    ints), so the first views of ``sample_random(n, seed)`` do not depend on ``n``: the render job relies on
    this to add views to a model later without changing the ones it has.
    """
    lo, hi = _clamp_range(polar_range)
    cos_lo, cos_hi = math.cos(math.radians(hi)), math.cos(math.radians(lo))
    prefix = [int(s) for s in seed] if isinstance(seed, Sequence) else [int(seed)]
    draws = np.array([np.random.default_rng([*prefix, i]).random(2) for i in range(n)]).reshape(n, 2)
    cos_t = cos_lo + (cos_hi - cos_lo) * draws[:, 0]
    return np.degrees(np.arccos(cos_t)), 360.0 * draws[:, 1]


def sample_fibonacci(n: int, seed: int = 0, polar_range: tuple[float, float] = (0.0, 180.0)):
    """Near-uniform: the :func:`fibonacci_lattice` over the zone ``polar_range`` (poles excluded); a non-zero
    ``seed`` rotates it about +Y by a random angle."""
    offset = np.random.default_rng(seed).uniform(0.0, 360.0) if seed else 0.0
    return fibonacci_lattice(n, _clamp_range(polar_range), offset)


def sample_grid(n: int, seed: int = 0, polar_range: tuple[float, float] = (0.0, 180.0)):
    """Azimuth × polar grid with about ``n`` views: ``n_az = round(sqrt(2n))`` azimuths (twice as many as
    polar rings, as the azimuth spans twice the angle), ``ceil(n / n_az)`` rings, truncated to exactly ``n``.
    ``seed`` is unused (the grid is fixed) but accepted so that all samplers share one signature.
    """
    lo, hi = _clamp_range(polar_range)
    n_az = max(1, round(math.sqrt(2 * n)))
    n_polar = max(1, math.ceil(n / n_az))
    polar = lo + (hi - lo) * (np.arange(n_polar) + 0.5) / n_polar
    azimuth = np.arange(n_az) * 360.0 / n_az
    pp, aa = np.meshgrid(polar, azimuth, indexing="ij")
    return pp.ravel()[:n], aa.ravel()[:n]


SAMPLERS = {"random": sample_random, "fibonacci": sample_fibonacci, "grid": sample_grid}


def sample_cameras(
    n: int,
    sampling: str = "random",
    seed: int = 0,
    polar_range: tuple[float, float] = (0.0, 180.0),
    fov_deg: float = DEFAULT_FOV_DEG,
    distance: float | None = None,
) -> list[Camera]:
    """``n`` cameras from the sampler named ``sampling`` (``random``, ``fibonacci`` or ``grid``)."""
    if sampling not in SAMPLERS:
        raise ValueError(f"unknown sampling {sampling!r}; choose one of {', '.join(SAMPLERS)}")
    polar, azimuth = SAMPLERS[sampling](n, seed=seed, polar_range=polar_range)
    d = fit_distance(fov_deg) if distance is None else distance
    return [Camera(float(t), float(p), d, fov_deg) for t, p in zip(polar, azimuth, strict=True)]
