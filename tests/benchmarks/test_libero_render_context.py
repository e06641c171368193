"""Hard resets reuse the render context when the rebuilt model uploads the same assets: same pixels."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

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
