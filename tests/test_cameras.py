"""The camera convention of DESIGN.md: positions, angles, view matrices, pose error and view samplers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cadsearch.render.cameras import (
    DEFAULT_FOV_DEG,
    POLE_MARGIN_DEG,
    Camera,
    angles_from_position,
    camera_position,
    camera_seed,
    direction_from_elevation,
    fibonacci_directions,
    fibonacci_lattice,
    fit_distance,
    pose_error_deg,
    sample_cameras,
    sample_fibonacci,
    sample_grid,
    sample_random,
)

polar_away_from_poles = st.floats(min_value=1.0, max_value=179.0)
any_azimuth = st.floats(min_value=-720.0, max_value=720.0)
distance = st.floats(min_value=0.5, max_value=20.0)


def _azimuth_close(a: float, b: float, tol: float) -> bool:
    d = (a - b) % 360.0
    return min(d, 360.0 - d) <= tol


# --- positions and angles -----------------------------------------------------------------------------------


def test_named_positions_follow_design():
    r = 2.0
    np.testing.assert_allclose(camera_position(90, 0, r), [0, 0, r], atol=1e-12)  # front view: on +Z
    np.testing.assert_allclose(camera_position(90, 90, r), [r, 0, 0], atol=1e-12)  # φ=90: on +X
    np.testing.assert_allclose(camera_position(90, 180, r), [0, 0, -r], atol=1e-12)  # back
    np.testing.assert_allclose(camera_position(0, 0, r), [0, r, 0], atol=1e-12)  # straight above
    assert camera_position(30, 0, r)[1] > 0  # small polar = from above


@settings(max_examples=200, deadline=None)
@given(polar=polar_away_from_poles, azimuth=any_azimuth, r=distance)
def test_angles_position_round_trip(polar, azimuth, r):
    pos = camera_position(polar, azimuth, r)
    assert np.linalg.norm(pos) == pytest.approx(r, rel=1e-9)
    p2, a2, r2 = angles_from_position(pos)
    assert float(p2) == pytest.approx(polar, abs=1e-6)
    assert 0.0 <= float(a2) < 360.0  # wrapped
    assert _azimuth_close(float(a2), azimuth, 1e-6)
    assert float(r2) == pytest.approx(r, rel=1e-9)


def test_azimuth_wraps_into_range():
    _, az, _ = angles_from_position(camera_position(90, [-90.0, 360.0, 450.0, -1e-12]))
    np.testing.assert_allclose(az[:3], [270.0, 0.0, 90.0], atol=1e-9)
    assert np.all((az >= 0) & (az < 360))


def test_vectorised_shapes():
    pos = camera_position(np.array([10.0, 20.0, 30.0]), np.array([0.0, 90.0, 180.0]), 3.0)
    assert pos.shape == (3, 3)
    polar, az, r = angles_from_position(pos)
    assert polar.shape == az.shape == r.shape == (3,)


# --- view matrix --------------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(polar=polar_away_from_poles, azimuth=any_azimuth, r=distance)
def test_view_matrix_is_rigid_and_looks_at_origin(polar, azimuth, r):
    cam = Camera(polar, azimuth, r)
    m = cam.view_matrix()
    rot = m[:3, :3]
    np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-9)
    assert np.linalg.det(rot) == pytest.approx(1.0, abs=1e-9)
    np.testing.assert_allclose(m[3], [0, 0, 0, 1])
    # The camera centre maps to the camera-space origin, the world origin straight ahead at (0, 0, -r).
    np.testing.assert_allclose(m @ np.append(cam.position, 1.0), [0, 0, 0, 1], atol=1e-9)
    np.testing.assert_allclose(m @ np.array([0, 0, 0, 1.0]), [0, 0, -r, 1], atol=1e-9)
    # Roll 0: the camera's right axis is horizontal and world +Y points up in the image.
    assert abs(rot[0, 1]) < 1e-9
    assert rot[1, 1] > 0


@pytest.mark.parametrize(
    ("azimuth", "front_in_image"),
    [(0.0, "towards camera"), (90.0, "left"), (180.0, "away"), (270.0, "right")],
)
def test_front_direction_in_image(azimuth, front_in_image):
    """DESIGN.md: φ=90° shows the object's front (+Z) pointing to the image's left, φ=270° to the right."""
    rot = Camera(90.0, azimuth).view_matrix()[:3, :3]
    front_cam = rot @ np.array([0.0, 0.0, 1.0])  # camera space: +x right, +y up, +z towards the viewer
    expected = {
        "towards camera": [0, 0, 1],
        "left": [-1, 0, 0],
        "away": [0, 0, -1],
        "right": [1, 0, 0],
    }[front_in_image]
    np.testing.assert_allclose(front_cam, expected, atol=1e-9)


def test_view_matrix_finite_at_poles():
    for polar in (0.0, 180.0):
        m = Camera(polar, 0.0).view_matrix()
        assert np.all(np.isfinite(m))
        np.testing.assert_allclose(m[:3, :3] @ m[:3, :3].T, np.eye(3), atol=1e-9)


def test_projection_and_fit_distance():
    cam = Camera(90.0, 0.0)
    assert cam.distance == pytest.approx(fit_distance(DEFAULT_FOV_DEG))
    # The unit sphere's silhouette (tangent cone half-angle asin(1/d)) fits inside the vertical half fov.
    assert math.degrees(math.asin(1.0 / cam.distance)) < DEFAULT_FOV_DEG / 2
    p = cam.projection_matrix(1.0)
    # A point on the near and far planes maps to NDC z = -1 and +1.
    near, far = max(cam.distance - 1.5, 0.05), cam.distance + 1.5
    for z_cam, z_ndc in ((-near, -1.0), (-far, 1.0)):
        clip = p @ np.array([0.0, 0.0, z_cam, 1.0])
        assert clip[2] / clip[3] == pytest.approx(z_ndc, abs=1e-9)
    assert cam.focal_px(128) == pytest.approx(64 / math.tan(math.radians(DEFAULT_FOV_DEG) / 2))


# --- pose error ---------------------------------------------------------------------------------------------


def test_pose_error_basic_values():
    assert float(pose_error_deg(60, 30, 60, 30)) == pytest.approx(0.0, abs=1e-6)
    assert float(pose_error_deg(90, 0, 90, 180)) == pytest.approx(180.0)
    assert float(pose_error_deg(90, 0, 90, 90)) == pytest.approx(90.0)
    assert float(pose_error_deg(90, 0, 0, 0)) == pytest.approx(90.0)
    assert float(pose_error_deg(90, 350, 90, 10)) == pytest.approx(20.0)  # across the azimuth wrap
    assert float(pose_error_deg(10, 0, 10, 180)) == pytest.approx(20.0)  # near the pole, azimuth matters less


@settings(max_examples=100, deadline=None)
@given(p1=polar_away_from_poles, a1=any_azimuth, p2=polar_away_from_poles, a2=any_azimuth)
def test_pose_error_is_a_symmetric_angle(p1, a1, p2, a2):
    e = float(pose_error_deg(p1, a1, p2, a2))
    assert 0.0 <= e <= 180.0
    assert e == pytest.approx(float(pose_error_deg(p2, a2, p1, a1)), abs=1e-9)


# --- samplers -----------------------------------------------------------------------------------------------

ALL_SAMPLERS = [sample_random, sample_fibonacci, sample_grid]


@pytest.mark.parametrize("sampler", ALL_SAMPLERS)
@pytest.mark.parametrize("n", [1, 7, 50, 200])
def test_sampler_counts_and_full_range(sampler, n):
    polar, az = sampler(n, seed=3)
    assert polar.shape == az.shape == (n,)
    assert np.all(polar >= POLE_MARGIN_DEG) and np.all(polar <= 180.0 - POLE_MARGIN_DEG)
    assert np.all(polar > 0.0) and np.all(polar < 180.0)
    assert np.all((az >= 0.0) & (az < 360.0))


@pytest.mark.parametrize("sampler", ALL_SAMPLERS)
def test_sampler_respects_polar_range(sampler):
    polar, _ = sampler(300, seed=1, polar_range=(30.0, 100.0))
    assert polar.min() >= 30.0 and polar.max() <= 100.0
    polar, _ = sampler(300, seed=1, polar_range=(0.0, 45.0))
    assert polar.min() >= POLE_MARGIN_DEG and polar.max() <= 45.0


@pytest.mark.parametrize("sampler", ALL_SAMPLERS)
def test_sampler_is_deterministic(sampler):
    a = sampler(100, seed=11)
    b = sampler(100, seed=11)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_seeds_change_random_sampler():
    assert not np.array_equal(sample_random(50, seed=1)[1], sample_random(50, seed=2)[1])


def test_random_views_do_not_depend_on_the_count():
    """View i of the random sampler depends on (seed, i) only, so a render job can add views later."""
    few, many = (
        sample_random(5, seed=[7, 3], polar_range=(15, 105)),
        sample_random(40, seed=[7, 3], polar_range=(15, 105)),
    )
    np.testing.assert_array_equal(few[0], many[0][:5])
    np.testing.assert_array_equal(few[1], many[1][:5])
    # A plain int seed is the one-element sequence.
    np.testing.assert_array_equal(sample_random(4, seed=9)[1], sample_random(4, seed=[9])[1])


def test_random_sampler_is_uniform_on_the_sphere():
    polar, az = sample_random(20000, seed=0)
    cos_t = np.cos(np.radians(polar))
    assert abs(cos_t.mean()) < 0.02  # uniform in cos θ → mean 0 (uniform in θ would also give 0 ...)
    assert np.mean(np.abs(cos_t) < 0.5) == pytest.approx(0.5, abs=0.02)  # ... but not this: half the area
    assert az.mean() == pytest.approx(180.0, abs=5.0)


def test_fibonacci_covers_sphere_evenly():
    polar, az = sample_fibonacci(500)
    dirs = camera_position(polar, az)
    # Every direction on a coarse probe set has a sample within 15°.
    probe_p, probe_a = sample_random(200, seed=5)
    probes = camera_position(probe_p, probe_a)
    nearest = np.degrees(np.arccos(np.clip((probes @ dirs.T).max(axis=1), -1, 1)))
    assert nearest.max() < 15.0


def test_fibonacci_lattice_whole_sphere_and_zones():
    polar, az = fibonacci_lattice(400)
    cos_t = np.cos(np.radians(polar))
    np.testing.assert_allclose(np.diff(cos_t), -2.0 / 400, atol=1e-12)  # equal-area rings
    assert polar.min() > 0.0 and polar.max() < 180.0 and np.all((az >= 0) & (az < 360))
    np.testing.assert_allclose(np.diff(az) % 360.0, 180.0 * (3.0 - math.sqrt(5.0)), atol=1e-9)  # golden angle
    zone, _ = fibonacci_lattice(100, (30.0, 100.0))
    assert zone.min() > 30.0 and zone.max() < 100.0
    dirs = fibonacci_directions(200)
    np.testing.assert_allclose(np.linalg.norm(dirs, axis=1), 1.0, atol=1e-12)
    assert np.abs(dirs.mean(axis=0)).max() < 0.02
    np.testing.assert_allclose(dirs, camera_position(*fibonacci_lattice(200)))


def test_fibonacci_sampler_is_the_lattice():
    np.testing.assert_array_equal(sample_fibonacci(50, polar_range=(20, 110))[0], fibonacci_lattice(50, (20, 110))[0])
    # A seed only rotates it about +Y.
    p0, a0 = sample_fibonacci(50)
    p1, a1 = sample_fibonacci(50, seed=4)
    np.testing.assert_array_equal(p0, p1)
    assert len(np.unique(np.round((a1 - a0) % 360.0, 9))) == 1


@given(st.floats(min_value=-720.0, max_value=720.0), st.floats(min_value=-90.0, max_value=90.0))
@settings(max_examples=100, deadline=None)
def test_direction_from_elevation(azimuth, elevation):
    d = direction_from_elevation(azimuth, elevation)
    np.testing.assert_allclose(np.linalg.norm(d), 1.0, atol=1e-12)
    assert d[1] == pytest.approx(math.sin(math.radians(elevation)), abs=1e-12)
    if abs(elevation) < 89.0:  # the azimuth is the camera convention's: from +Z towards +X
        horizontal = math.cos(math.radians(elevation))
        assert d[0] == pytest.approx(horizontal * math.sin(math.radians(azimuth)), abs=1e-9)
        assert d[2] == pytest.approx(horizontal * math.cos(math.radians(azimuth)), abs=1e-9)


def test_camera_seed_is_stable_and_depends_on_the_camera():
    # Pinned: renders with light jitter and no seed of their own are lit from this value.
    assert camera_seed(Camera(60.0, 30.0)) == camera_seed(Camera(60.0, 30.0))
    assert camera_seed(Camera(60.0, 30.0)) != camera_seed(Camera(60.0, 31.0))
    assert camera_seed(Camera(60.0, 30.0, 3.0, 35.0)) == 2286595464  # zlib.crc32 of the four float64s


def test_sample_cameras_builds_cameras():
    cams = sample_cameras(12, "grid", seed=0, polar_range=(40, 120))
    assert len(cams) == 12
    assert all(isinstance(c, Camera) and 40 <= c.polar_deg <= 120 for c in cams)
    assert all(c.distance == pytest.approx(fit_distance(c.fov_deg)) for c in cams)
    with pytest.raises(ValueError):
        sample_cameras(3, "nope")
    with pytest.raises(ValueError):
        sample_random(3, polar_range=(100, 50))


@pytest.mark.parametrize("polar", [0.0, 180.0])
def test_view_matrix_is_continuous_at_the_poles(polar: float) -> None:
    """Exactly at a pole the view matches the limit from φ = 0 (no sudden 180° image rotation)."""
    near = 1e-4 if polar == 0.0 else 180.0 - 1e-4
    at_pole = Camera(polar, 0.0).view_matrix()
    just_off = Camera(near, 0.0).view_matrix()
    np.testing.assert_allclose(at_pole[:3, :3], just_off[:3, :3], atol=1e-3)
