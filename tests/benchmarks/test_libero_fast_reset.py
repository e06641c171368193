"""Cheaper LIBERO hard resets change nothing: the kept compiled model and the kept render context."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from AlphaBrain.benchmarks.libero import model_cache
from AlphaBrain.benchmarks.libero import tasks as lt
from AlphaBrain.benchmarks.libero.render import adopt_context
from tests.benchmarks.test_libero_suites import needs_libero

_XML = """<mujoco><asset><mesh name="m" vertex="0 0 0  1 0 0  0 1 0  0 0 {h}"/></asset>
<worldbody><body pos="{x} 0 0"><geom type="mesh" mesh="m"/></body></worldbody></mujoco>"""


class _Sim(SimpleNamespace):
    def add_render_context(self, ctx):
        self._render_context_offscreen = ctx


def _sim(height: float, x: float) -> _Sim:
    import mujoco

    model = mujoco.MjModel.from_xml_string(_XML.format(h=height, x=x))
    return _Sim(model=SimpleNamespace(_model=model), data="data", _render_context_offscreen=None)


def test_a_context_moves_only_to_a_model_with_the_same_assets():
    made_current = []
    old = _sim(1.0, 0.0)
    ctx = SimpleNamespace(model=old.model, sim=old, data=old.data,
                          gl_ctx=SimpleNamespace(make_current=lambda: made_current.append(1)))
    other_mesh = _sim(2.0, 0.0)
    assert not adopt_context(ctx, other_mesh)
    assert ctx.sim is old and other_mesh._render_context_offscreen is None
    moved_body = _sim(1.0, 0.3)  # what a hard reset changes: placements, not assets
    assert adopt_context(ctx, moved_body)
    assert ctx.sim is moved_body and ctx.model is moved_body.model and moved_body._render_context_offscreen is ctx
    assert made_current
    assert not adopt_context(ctx, moved_body)  # that sim has a context already
    assert not adopt_context(None, _sim(1.0, 0.0))


@needs_libero
def test_hard_resets_with_a_reused_context_render_the_same_frames():
    from AlphaBrain.benchmarks.libero.env import LiberoEnv

    spec = lt.suite_task_specs("libero_goal_scripted")[0]
    reused, fresh = (LiberoEnv(spec, image_size=(64, 64), render_mode="fast") for _ in range(2))
    fresh.reuse_render_context = False
    try:
        rng = np.random.default_rng(1)
        actions = [np.concatenate([rng.uniform(-0.5, 0.5, 6), [rng.choice([-1.0, 1.0])]]) for _ in range(5)]
        first_context = None
        for seed in (0, 1, 2):  # each reset rebuilds the model from XML
            frames = {}
            for name, env in (("reused", reused), ("fresh", fresh)):
                obs = [env.reset(seed)] + [env.step(a)[0] for a in actions]
                frames[name] = [img for o in obs for img in o["images"]]
            for a, b in zip(frames["reused"], frames["fresh"], strict=True):
                np.testing.assert_array_equal(a, b)
            ctx = reused.raw_env.sim._render_context_offscreen
            first_context = first_context or ctx
            assert ctx is first_context and ctx.sim is reused.raw_env.sim
        assert fresh.raw_env.sim._render_context_offscreen is not first_context
    finally:
        reused.close()
        fresh.close()


def test_a_kept_compile_hands_out_independent_copies_equal_to_a_fresh_one(monkeypatch):
    import mujoco

    monkeypatch.setattr(model_cache, "ENABLED", True)
    model_cache.clear()
    xml = _XML.format(h=1.0, x=0.0)
    first, second = model_cache.compile_xml(xml), model_cache.compile_xml(xml)
    fresh = mujoco.MjModel.from_xml_string(xml)
    assert first is not second
    for name in ("body_pos", "mesh_vert", "mesh_face", "geom_size", "body_mass", "qpos0"):
        np.testing.assert_array_equal(getattr(first, name), getattr(fresh, name))
    first.body_pos[1] += 0.5  # what LIBERO's fixture jitter does to a sim's model
    np.testing.assert_array_equal(model_cache.compile_xml(xml).body_pos, fresh.body_pos)
    for k in range(model_cache.MAX_MODELS + 1):  # bounded: the oldest scene is dropped
        model_cache.compile_xml(_XML.format(h=2.0 + k, x=0.0))
    assert len(model_cache._MODELS) == model_cache.MAX_MODELS
    model_cache.clear()


@needs_libero
def test_hard_resets_from_the_kept_compile_step_and_render_the_same(monkeypatch):
    from AlphaBrain.benchmarks.libero.env import LiberoEnv

    spec = lt.suite_task_specs("libero_goal_scripted")[3]
    rng = np.random.default_rng(2)
    actions = [np.concatenate([rng.uniform(-0.5, 0.5, 6), [rng.choice([-1.0, 1.0])]]) for _ in range(5)]
    runs = {}
    for enabled in (False, True):
        monkeypatch.setattr(model_cache, "ENABLED", enabled)
        model_cache.clear()
        before = dict(model_cache.stats)
        env = LiberoEnv(spec, image_size=(64, 64), render_mode="lowpoly")
        try:
            out = []
            for seed in (5, 6):  # each reset rebuilds the sim: compiled, or copied from the kept compile
                obs = [env.reset(seed)] + [env.step(a)[0] for a in actions]
                out += [img for o in obs for img in o["images"]] + [o["state"] for o in obs]
                out.append(env.raw_env.sim.data.qpos.copy())
                out.append(env.raw_env.sim.model._model.body_pos.copy())  # the fixtures' jitter included
        finally:
            env.close()
        runs[enabled] = out
        copied = model_cache.stats["copied"] - before["copied"]
        assert copied == (2 if enabled else 0)
    for a, b in zip(runs[False], runs[True], strict=True):
        np.testing.assert_array_equal(a, b)
    model_cache.clear()
