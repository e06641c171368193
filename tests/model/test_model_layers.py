"""The import order inside `AlphaBrain.model`: core < backbones, modules < policies < registry and the rest.

Every import counts, also the ones inside functions. Backbones and modules share a level
and do not import each other; a policy folder may use `policies/common` but no other policy.
"""

from __future__ import annotations

import ast
from pathlib import Path

MODEL = Path(__file__).resolve().parents[2] / "AlphaBrain" / "model"
LEVELS = {"core": 0, "backbones": 1, "modules": 1, "policies": 2}
TOP = 3  # registry.py, param_count.py, lora.py, synthetic.py, __init__.py


def part_of(module: str) -> tuple[str, int]:
    """(part, level) of a module under AlphaBrain.model: the sub-package (policies.<folder> for a policy)."""
    parts = module.split(".")[2:]
    if not parts or parts[0] not in LEVELS:
        return "top", TOP
    if parts[0] == "policies" and len(parts) > 1:
        return f"policies.{parts[1]}", LEVELS["policies"]
    return parts[0], LEVELS[parts[0]]


def model_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {name for name in found if name.startswith("AlphaBrain.model.") or name == "AlphaBrain.model"}


def test_imports_follow_the_levels():
    bad = []
    for path in sorted(MODEL.rglob("*.py")):
        rel = path.relative_to(MODEL.parents[1]).with_suffix("")
        module = ".".join(p for p in rel.parts if p != "__init__")
        src, src_level = part_of(module)
        for target in model_imports(path):
            dst, dst_level = part_of(target)
            allowed = (
                dst == src
                or dst_level < src_level
                or (src.startswith("policies.") and dst == "policies.common")
                or (src == "policies" and dst.startswith("policies."))
                or src == "top"
            )
            if not allowed or (src != "top" and dst == "top"):
                bad.append(f"{module} -> {target}")
    assert bad == [], "imports against the order core < backbones, modules < policies < registry:\n" + "\n".join(bad)
