"""Parameter counts of the model overlays, built on the meta device (no memory, no weights, no GPU).

    python -m AlphaBrain.model.param_count                      # every large model, full-size, with LoRA counts
    python -m AlphaBrain.model.param_count --model qwengr00t_tiny neurovla

Each model is built exactly as `configs/continual_learning/models/<model>.yaml`
describes it, except that its backbone block gets `init: random` (the
architecture without the weights files). The table splits the total by
top-level module (the learning-rate keys), without LoRA matrices, and shows
the LoRA matrices and what trains with the overlay's LoRA settings (or with
`--full` / `--lora`). `reference` is the size the project's README quotes.
"""

from __future__ import annotations

import sys
from typing import Optional

from AlphaBrain.utils.cli import ArgumentParser, run_main

LARGE_MODELS = ("qwengr00t", "neurovla", "llamaoft", "paligemma")
#: sizes quoted in the README's architecture table (billions of parameters).
REFERENCE_B = {"qwengr00t": 3.8, "neurovla": 3.0, "llamaoft": 11.0, "paligemma": 3.0}


def count_model(model: str, lora: Optional[bool] = None) -> dict:
    """{"total", "by_module": {child: n}, "trainable", "lora"} for one overlay, built on the meta device."""
    import torch

    from AlphaBrain.config.loader import BASE_CONFIG, load_run_config, model_overlay_path
    from AlphaBrain.dataloader.spec import DataSpec
    from AlphaBrain.model import build_framework
    from AlphaBrain.model.registry import get_framework_class

    cfg = load_run_config([BASE_CONFIG, model_overlay_path(model)])
    cls = get_framework_class(str(cfg.framework.name))
    backbone = getattr(cls, "backbone_cls", None)
    if backbone is not None:
        cfg.framework[backbone.block_key]["init"] = "random"
    horizon = int((cfg.framework.get("action_model") or {}).get("action_horizon") or 16)
    # LIBERO's shapes: two cameras, 8-D state, 7-D action.
    spec = DataSpec(state_dim=8, action_dim=7, action_horizon=horizon, num_cameras=2, image_size=(224, 224))
    with torch.device("meta"):
        policy = build_framework(cfg, spec)
        by_module = {name: sum(p.numel() for p in child.parameters()) for name, child in policy.named_children()}
        total = sum(p.numel() for p in policy.parameters())
        use_lora = bool(cfg.lora.enabled) if lora is None else lora
        if use_lora:
            from AlphaBrain.model.lora import apply_lora

            apply_lora(policy, cfg.lora)
    return {
        "model": model,
        "framework": type(policy).__name__,
        "total": total,  # the model itself, without LoRA matrices
        "by_module": by_module,
        "trainable": sum(p.numel() for p in policy.parameters() if p.requires_grad),
        "lora": use_lora,
        "lora_params": sum(p.numel() for n, p in policy.named_parameters() if "lora_" in n),
    }


def format_table(rows: list[dict]) -> str:
    lines = ["| model | framework | parameters | by module | LoRA matrices | trainable | reference | vs reference |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ref = REFERENCE_B.get(r["model"])
        modules = ", ".join(f"{k} {_human(v)}" for k, v in r["by_module"].items())
        delta = f"{100 * (r['total'] / (ref * 1e9) - 1):+.1f} %" if ref else "-"
        lines.append(f"| {r['model']} | {r['framework']} | {_human(r['total'])} ({r['total']:,}) | {modules} | "
                     f"{_human(r['lora_params']) if r['lora'] else 'off'} | {_human(r['trainable'])} | "
                     f"{f'{ref} B' if ref else '-'} | {delta} |")
    return "\n".join(lines)


def _human(n: int) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.1f} M" if n >= 1e6 else f"{n / 1e3:.1f} K"


def main(argv: Optional[list[str]] = None) -> int:
    parser = ArgumentParser(prog="python -m AlphaBrain.model.param_count", description=__doc__.split("\n\n")[0],
                            epilog="Counts need no weights: the models are built on torch's meta device.")
    parser.add_argument("--model", nargs="+", default=list(LARGE_MODELS),
                        help=f"model overlays to count (default: {' '.join(LARGE_MODELS)})")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--lora", dest="lora", action="store_true", default=None, help="count with LoRA on")
    group.add_argument("--full", dest="lora", action="store_false", help="count with LoRA off (full-parameter training)")
    args = parser.parse_args(argv)
    return run_main(lambda: print(format_table([count_model(m, args.lora) for m in args.model])))


if __name__ == "__main__":
    sys.exit(main())
