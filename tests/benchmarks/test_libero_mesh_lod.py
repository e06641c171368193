"""The "lowpoly" LIBERO render mode: fewer visual triangles, same physics, nearly the same pixels."""

from __future__ import annotations

import numpy as np
import pytest

from AlphaBrain.benchmarks.libero import tasks as lt
from AlphaBrain.benchmarks.libero.mesh_lod import cluster_faces
from tests.benchmarks.test_libero_suites import needs_libero


def _grid_sphere(n: int) -> tuple[np.ndarray, np.ndarray]:
    """A UV sphere with n x n quads (2 n^2 triangles, shared vertices)."""
    theta, phi = np.meshgrid(np.linspace(0.01, np.pi - 0.01, n + 1), np.linspace(0, 2 * np.pi, n + 1), indexing="ij")
    verts = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], -1).reshape(-1, 3)
    idx = np.arange((n + 1) ** 2).reshape(n + 1, n + 1)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel(), idx[:-1, 1:].ravel()
    faces = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    return verts.astype(np.float32), faces


def test_clustering_reduces_faces_and_keeps_valid_ones():
    verts, faces = _grid_sphere(80)
    fine = cluster_faces(verts, faces, 256)
    coarse = cluster_faces(verts, faces, 16)
    assert len(coarse) < len(fine) <= len(faces)
    assert len(coarse) < len(faces) / 4
    for f in (fine, coarse):
        assert f.min() >= 0 and f.max() < len(verts)
        assert np.all((f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2]))  # no degenerate face
        rolled = np.stack([np.roll(r, -int(np.argmin(r))) for r in f])
        assert len(np.unique(rolled, axis=0)) == len(f)  # no face twice
    # the clustered sphere is still a sphere: every kept vertex is an original one, on the unit sphere
    assert np.allclose(np.linalg.norm(verts[np.unique(coarse)], axis=1), 1.0, atol=1e-5)


def test_texture_coordinates_keep_islands_apart():
    verts, faces = _grid_sphere(40)
    uv = np.zeros((len(verts), 2), dtype=np.float32)
    uv[len(verts) // 2:] = 0.9  # two texture islands: no face may end up with corners from both
    island = (np.arange(len(verts)) >= len(verts) // 2)
    merged = cluster_faces(verts, faces, 8, uv)
    kept = island[merged]
    crossing_before = (island[faces].any(1) & ~island[faces].all(1)).sum()
    crossing_after = (kept.any(1) & ~kept.all(1)).sum()
    assert crossing_after <= crossing_before  # clustering never joins the islands


@needs_libero
def test_lowpoly_changes_pixels_a_little_and_physics_not_at_all():
    from AlphaBrain.benchmarks.libero.env import LiberoEnv

    spec = lt.suite_task_specs("libero_goal_scripted")[0]
    envs = {mode: LiberoEnv(spec, image_size=(64, 64), render_mode=mode) for mode in ("fast", "lowpoly")}
    try:
        rng = np.random.default_rng(0)
        actions = [np.concatenate([rng.uniform(-0.5, 0.5, 6), [rng.choice([-1.0, 1.0])]]) for _ in range(12)]
        obs, faces = {}, {}
        for mode, env in envs.items():
            first = env.reset(3)
            for a in actions:
                last = env.step(a)[0]
            obs[mode] = (first, last)
            faces[mode] = int(env.raw_env.sim.model._model.mesh_facenum.sum())
        assert faces["lowpoly"] < faces["fast"] / 3  # ~253 k -> ~48 k on this scene
        for k in range(2):  # reset and after 12 steps: the same robot and object states
            np.testing.assert_array_equal(obs["fast"][k]["state"], obs["lowpoly"][k]["state"])
        np.testing.assert_array_equal(envs["fast"].raw_env.sim.data.qpos, envs["lowpoly"].raw_env.sim.data.qpos)
        for a, b in zip(obs["fast"][0]["images"], obs["lowpoly"][0]["images"]):
            diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
            assert diff.mean() < 8  # same scene, coarser meshes (measured ~2-3 on this scene)
        # a hard reset rebuilds the model: the new one is simplified too (from the per-process cache)
        env = envs["lowpoly"]
        env.reset(4)
        assert int(env.raw_env.sim.model._model.mesh_facenum.sum()) == faces["lowpoly"]
    finally:
        for env in envs.values():
            env.close()


def test_lowpoly_is_a_listed_render_mode(monkeypatch):
    from AlphaBrain.benchmarks.libero.render import render_settings, resolve_mode

    assert render_settings("lowpoly").max_mesh_faces and not render_settings("lowpoly").multisampling
    assert render_settings("fast").max_mesh_faces is None
    monkeypatch.setenv("ALPHABRAIN_LIBERO_RENDER", "lowpoly")
    assert resolve_mode("exact") == "lowpoly"
    assert lt.default_render_mode("libero_goal_scripted") == "lowpoly"
    with pytest.raises(Exception, match="lowpoly"):
        monkeypatch.setenv("ALPHABRAIN_LIBERO_RENDER", "nope")
        resolve_mode("exact")
