"""Headless rendering of LIBERO scenes: settings presets, per-render GL context, skipped frames.

Three presets (`RENDER_MODES`):

* ``"exact"`` — MuJoCo/LIBERO defaults (4x multisampling, reflective floor/table): the
  pixels LIBERO's published datasets were rendered with. Default of the four LIBERO suites.
* ``"fast"`` — no multisampling (``model.vis.quality.offsamples = 0``), no reflections,
  shadows or skybox. About 2-3x cheaper per camera frame with CPU EGL (llvmpipe), but it
  changes pixels: object edges lose their anti-aliasing and the floor/table reflections
  disappear (docs/benchmarks/libero.md has the measured differences). Safe only when
  training data and evaluation are rendered alike: the default of ``libero_goal_mini``,
  whose dataset this package renders itself.
* ``"lowpoly"`` — "fast" plus visual meshes reduced to about 1000 faces each (mesh_lod.py):
  another ~4x per frame on a CPU renderer (the scene's ~240 k visual triangles are what a frame
  costs there). Physics unchanged (only meshes no colliding geom uses are touched). Default of
  ``libero_goal_scripted``, the stream meant for a CPU-only 10-task study.

``ALPHABRAIN_LIBERO_RENDER=exact|fast|lowpoly`` overrides a suite's default.

Why the settings need care: multisampling is a property of the MjrContext (read from
the model when the context is made), and robosuite makes a new MjSim, model and render
context on every hard reset. `patch_sim` is therefore called on every new sim (the env
wraps robosuite's ``_initialize_sim``), before robosuite makes that sim's render context;
`apply_to_context` re-applies the scene flags (and remakes a context made before the
patch) after every reset.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import numpy as np

from AlphaBrain.utils.errors import unknown_name


@dataclass(frozen=True)
class RenderSettings:
    multisampling: bool = True  # MSAA of the offscreen buffer (MuJoCo default: 4 samples)
    reflections: bool = True    # reflective planes (LIBERO floors and tables) drawn a second time, mirrored
    shadows: bool = True        # LIBERO lights cast no shadows: no pixel or time difference, off in fast anyway
    skybox: bool = True         # not visible from LIBERO's cameras: no pixel or time difference
    max_mesh_faces: Optional[int] = None  # visual meshes above this are simplified (mesh_lod.py); None = as loaded

    @property
    def is_default(self) -> bool:
        return self == RenderSettings()


RENDER_MODES: dict[str, RenderSettings] = {
    "exact": RenderSettings(),
    "fast": RenderSettings(multisampling=False, reflections=False, shadows=False, skybox=False),
    "lowpoly": RenderSettings(multisampling=False, reflections=False, shadows=False, skybox=False,
                              max_mesh_faces=1000),
}

RENDER_ENV_VAR = "ALPHABRAIN_LIBERO_RENDER"


def render_settings(mode: str) -> RenderSettings:
    if mode not in RENDER_MODES:
        raise unknown_name("LIBERO render mode", mode, RENDER_MODES)
    return RENDER_MODES[mode]


def resolve_mode(default: str) -> str:
    """The render mode to use: $ALPHABRAIN_LIBERO_RENDER when set, else `default`."""
    mode = os.environ.get(RENDER_ENV_VAR, "").strip() or default
    render_settings(mode)  # unknown -> the standard error listing the modes
    return mode


_MARK = "_alphabrain_render_settings"


def patch_sim(sim, settings: RenderSettings, state: "RenderState") -> None:
    """Prepare a freshly made robosuite MjSim: model settings + a render wrapper that
    makes the GL context current first and can skip frames nobody will look at."""
    model = sim.model._model
    if not settings.multisampling:
        model.vis.quality.offsamples = 0  # read when the MjrContext is made: before robosuite makes it
    if settings.max_mesh_faces:
        from AlphaBrain.benchmarks.libero.mesh_lod import simplify_visual_meshes

        simplify_visual_meshes(model, settings.max_mesh_faces)  # before the context uploads the meshes
    original = sim.render

    def render(*args, **kwargs):
        if state.skip_frames:
            # A frame robosuite samples during reset/settling and that is overwritten before
            # anyone reads it: same shape, no GL work. Observable timing is untouched.
            width = kwargs.get("width", args[0] if args else None)
            height = kwargs.get("height", args[1] if len(args) > 1 else None)
            rgb = np.zeros((height, width, 3), dtype=np.uint8)
            if kwargs.get("depth"):
                return rgb, np.zeros((height, width), dtype=np.float32)
            return rgb
        ctx = sim._render_context_offscreen
        if ctx is not None:
            # robosuite makes a context current only when creating it: with two envs alive in
            # one process, the other env's context would be drawn into (garbage frames, no error).
            ctx.gl_ctx.make_current()
        return original(*args, **kwargs)

    sim.render = render


def apply_to_context(sim, settings: RenderSettings) -> None:
    """Scene flags (and, for a context made before `patch_sim`, the multisampling) of sim's render context."""
    ctx = getattr(sim, "_render_context_offscreen", None)
    if ctx is None:
        return
    import mujoco

    if getattr(ctx, _MARK, None) == settings:
        return
    model = sim.model._model
    ctx.gl_ctx.make_current()
    remake = False
    if not settings.multisampling and ctx.con.offSamples != 0:
        model.vis.quality.offsamples = 0
        remake = True
    if settings.max_mesh_faces:
        from AlphaBrain.benchmarks.libero.mesh_lod import simplify_visual_meshes

        remake |= simplify_visual_meshes(model, settings.max_mesh_faces)["meshes"] > 0  # 0 when done before
    if remake:  # a context made before `patch_sim` holds the model's old settings and meshes
        ctx.con.free()
        ctx._set_mujoco_context_and_buffers()
    flags = mujoco.mjtRndFlag
    ctx.scn.flags[flags.mjRND_REFLECTION] = int(settings.reflections)
    ctx.scn.flags[flags.mjRND_SHADOW] = int(settings.shadows)
    ctx.scn.flags[flags.mjRND_SKYBOX] = int(settings.skybox)
    setattr(ctx, _MARK, settings)


def context_settings(sim) -> Optional[dict]:
    """What the current render context actually uses (for tests and the benchmark)."""
    ctx = getattr(sim, "_render_context_offscreen", None)
    if ctx is None:
        return None
    import mujoco

    flags = mujoco.mjtRndFlag
    return {
        "offsamples": int(ctx.con.offSamples),
        "reflections": bool(ctx.scn.flags[flags.mjRND_REFLECTION]),
        "shadows": bool(ctx.scn.flags[flags.mjRND_SHADOW]),
        "skybox": bool(ctx.scn.flags[flags.mjRND_SKYBOX]),
    }


@dataclass
class RenderState:
    skip_frames: bool = False


# ---------------------------------------------------------------------------- one context across hard resets


def _crc(array) -> int:
    import zlib

    return zlib.crc32(np.ascontiguousarray(array).view(np.uint8))


def context_signature(model) -> tuple:
    """What an MjrContext holds of `model` (mjr_makeContext uploads meshes, textures, height fields and skins,
    and sizes its buffers from the offscreen settings): two models with equal signatures can share one."""
    m = model
    return (m.nmesh, m.nmeshvert, m.nmeshface, m.ntex, m.ntexdata, m.nhfield, m.nhfielddata, m.nskin, m.nmat,
            int(m.vis.quality.offsamples), int(m.vis.quality.shadowsize), int(m.vis.global_.offwidth),
            int(m.vis.global_.offheight), _crc(m.mesh_vert), _crc(m.mesh_face), _crc(m.tex_height),
            _crc(m.tex_width), _crc(m.tex_adr), _crc(m.tex_data[::4099]), _crc(m.hfield_data), _crc(m.skin_vert))


def adopt_context(ctx, sim) -> bool:
    """Hand the render context `ctx` of a freed sim to the new `sim` when its model uploads the same assets.

    A hard reset rebuilds the model from XML that differs only in body placements; robosuite then makes a
    new EGL context and MjrContext, re-uploading every mesh and texture: about a second per reset on a CPU
    renderer, as much as a hundred 64 px steps. Reusing the old one draws the same pixels. False (and
    nothing changed) when the assets differ or `ctx` is unusable; robosuite then makes a new context.
    """
    old_model = getattr(ctx, "model", None)
    if ctx is None or old_model is None or getattr(sim, "_render_context_offscreen", None) is not None:
        return False
    if context_signature(old_model._model) != context_signature(sim.model._model):
        return False
    ctx.sim, ctx.model, ctx.data = sim, sim.model, sim.data
    sim.add_render_context(ctx)
    ctx.gl_ctx.make_current()
    return True
