"""Compiled LIBERO models kept per process: a hard reset compiles the same XML again.

robosuite's hard reset rebuilds the task's MJCF and compiles it (`MjSim.from_xml_string`): ~1.3 s
for a LIBERO-Goal scene on a CPU, most of a reset. The XML is the same string on every reset of a
task (the fixtures' few-millimetre jitter is applied to the compiled model afterwards), so the
compiled model is kept and every sim gets its own copy (`copy.copy` = mj_copyModel: every array,
bit for bit; ~0.2 s, most of it the scene's ~140 MB of textures). The kept model is never handed
out: LIBERO's jitter and `render.patch_sim`'s changes land on the copy.

`install()` patches robosuite's `MjSim.from_xml_string` once per process; `ENABLED = False` (or
$ALPHABRAIN_LIBERO_MODEL_CACHE=0) compiles every time, as robosuite does.
"""

from __future__ import annotations

import copy
import hashlib
import os
from collections import OrderedDict

ENABLED = os.environ.get("ALPHABRAIN_LIBERO_MODEL_CACHE", "1").strip() != "0"
MAX_MODELS = 2  # a LIBERO scene with its textures is ~150 MB: two scenes per process at most
_MODELS: "OrderedDict[bytes, object]" = OrderedDict()
_INSTALLED = False
stats = {"compiled": 0, "copied": 0}


def compile_xml(xml: str):
    """A fresh MjModel of `xml`: a copy of the kept compile when there is one."""
    import mujoco

    if not ENABLED:
        stats["compiled"] += 1
        return mujoco.MjModel.from_xml_string(xml)
    key = hashlib.sha1(xml.encode()).digest()
    kept = _MODELS.get(key)
    if kept is None:
        kept = mujoco.MjModel.from_xml_string(xml)
        stats["compiled"] += 1
        _MODELS[key] = kept
        while len(_MODELS) > MAX_MODELS:
            _MODELS.popitem(last=False)
    else:
        _MODELS.move_to_end(key)
        stats["copied"] += 1
    return copy.copy(kept)


def install() -> None:
    """Route robosuite's model compilation through `compile_xml` (idempotent)."""
    global _INSTALLED
    if _INSTALLED:
        return
    from robosuite.utils.binding_utils import MjSim

    MjSim.from_xml_string = classmethod(lambda cls, xml: cls(compile_xml(xml)))
    _INSTALLED = True


def clear() -> None:
    _MODELS.clear()
