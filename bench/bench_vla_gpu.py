"""Training throughput of the four VLA architectures at their real size: step time, samples/s, peak memory, MFU.

Each architecture is built from its model overlay with random weights (`init: random`, no download) in
bf16, on LIBERO-shaped synthetic batches (two 224x224 cameras, 8-D state, 7-D action chunks), and
trained with AdamW under bf16 autocast for --steps timed steps after --warmup steps, with LoRA (the
overlay's settings) and full-parameter. A configuration that does not fit in memory is reported as OOM
and the next one runs.

    python bench/bench_vla_gpu.py                              # every model, LoRA and full, batch 8
    python bench/bench_vla_gpu.py --models qwengr00t --modes lora --batch 16
    python bench/bench_vla_gpu.py --device cpu --size tiny     # the script itself on the tiny configs (CPU)

Without a CUDA device (and without --device cpu) it prints why and exits 0.

Model FLOPs utilization (MFU) = achieved model FLOPs / the device's peak dense bf16 FLOPs. Model FLOPs per
sample = 2 N_fwd T (forward) + 4 N_fwd T (backward, full) or 2 N_fwd T (backward with LoRA, which
computes input gradients but no weight gradients for the frozen base), with N_fwd the parameters used
in the forward pass (all but the token embedding and an unused LM head) and T the prompt length in
tokens (image tokens included) — the usual 6NT rule.
It ignores attention's quadratic term and the action head's extra passes (flow-matching repeats), so it
slightly understates the work done. Peak: --peak-tflops, or a known device (H100/H200 989 TFLOPS).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODELS = ("qwengr00t", "neurovla", "llamaoft", "paligemma")
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "A800": 312.0, "L40S": 362.0, "4090": 165.0}


def build(model: str, size: str, device, lora: bool, checkpointing: bool):
    import torch

    from AlphaBrain.config.loader import BASE_CONFIG, load_run_config, model_overlay_path
    from AlphaBrain.dataloader.spec import DataSpec
    from AlphaBrain.model import build_framework
    from AlphaBrain.model.registry import get_framework_class

    name = model if size == "full" else f"{model}_tiny"
    cfg = load_run_config([BASE_CONFIG, model_overlay_path(name)])
    block = cfg.framework[get_framework_class(str(cfg.framework.name)).backbone_cls.block_key]
    block["init"] = "random"
    block["dtype"] = "bfloat16" if device.type == "cuda" else "float32"
    block["gradient_checkpointing"] = checkpointing
    horizon = int(cfg.framework.action_model.action_horizon)
    spec = DataSpec(state_dim=8, action_dim=7, action_horizon=horizon, num_cameras=2, image_size=(224, 224))
    with torch.device(device):
        policy = build_framework(cfg, spec)
    if lora:
        from AlphaBrain.training.trainer_utils.peft import apply_lora

        apply_lora(policy, cfg.lora)
    return policy.to(device).train(), spec, cfg


def batch_of(spec, n: int, seed: int):
    from AlphaBrain.model.synthetic import synthetic_examples

    return synthetic_examples(spec, n, seed=seed)


def prompt_tokens(policy, examples) -> float:
    """Mean prompt length in tokens (image tokens included), as the backbone sees it."""
    import torch

    batch = policy.collate(examples, require_action=False, image_size=policy.vlm.image_size)
    with torch.no_grad():
        feats = policy.vlm(batch.images, batch.lang)
    return float(feats.mask.sum(dim=1).float().mean())


def forward_params(policy) -> int:
    """Parameters that do matmul work per token: all but the token embedding and an unused (untied) LM head."""
    hf = policy.vlm.hf_model
    total = sum(p.numel() for p in policy.parameters())
    embedding = hf.get_input_embeddings().weight
    total -= embedding.numel()
    head = hf.get_output_embeddings()
    if head is not None and head.weight is not embedding:
        total -= head.weight.numel()
    return total


def measure(model: str, mode: str, args, device) -> dict:
    import torch

    row = {"model": model, "mode": mode}
    try:
        policy, spec, cfg = build(model, args.size, device, mode == "lora", args.gradient_checkpointing)
        params = sum(p.numel() for p in policy.parameters())
        trainable = [p for p in policy.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(trainable, lr=1e-5)
        examples = [batch_of(spec, args.batch, seed=i) for i in range(4)]
        autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
        tokens = prompt_tokens(policy, examples[0])

        def step(i: int) -> None:
            with autocast:
                loss = policy(examples[i % len(examples)])["action_loss"]
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        for i in range(args.warmup):
            step(i)
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        sync()
        start = time.perf_counter()
        for i in range(args.steps):
            step(i)
        sync()
        step_s = (time.perf_counter() - start) / args.steps
        flops_per_sample = (6.0 if mode == "full" else 4.0) * forward_params(policy) * tokens
        row.update(
            params=params,
            trainable=sum(p.numel() for p in trainable),
            tokens=tokens,
            step_ms=1000 * step_s,
            samples_s=args.batch / step_s,
            peak_gib=torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
            tflops=flops_per_sample * args.batch / step_s / 1e12,
        )
    except torch.OutOfMemoryError:
        row["error"] = "OOM"
    finally:
        policy = opt = None  # noqa: F841 - free the model before the next configuration
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return row


def peak_tflops(args, device) -> float | None:
    import torch

    if args.peak_tflops:
        return args.peak_tflops
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def format_rows(rows: list[dict], peak: float | None) -> str:
    lines = ["| model | mode | params | trainable | tokens/sample | step ms | samples/s | peak GiB | TFLOPS | MFU |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['mode']} | {r['error']} | | | | | | | |")
            continue
        mfu = f"{100 * r['tflops'] / peak:.1f} %" if peak else "-"
        gib = f"{r['peak_gib']:.1f}" if r["peak_gib"] is not None else "-"
        lines.append(f"| {r['model']} | {r['mode']} | {r['params'] / 1e9:.3f} B | {r['trainable'] / 1e6:.1f} M | "
                     f"{r['tokens']:.0f} | {r['step_ms']:.0f} | {r['samples_s']:.1f} | {gib} | {r['tflops']:.1f} | {mfu} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--modes", nargs="+", default=["lora", "full"], choices=["lora", "full"])
    parser.add_argument("--batch", type=int, default=8, help="samples per step (default 8)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (default 10)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    parser.add_argument("--size", choices=["full", "tiny"], default="full", help="real size (default) or the tiny configs")
    parser.add_argument("--device", default=None, help="cuda (default when present) or cpu")
    parser.add_argument("--gradient-checkpointing", action="store_true", help="recompute the VLM's activations")
    parser.add_argument("--peak-tflops", type=float, default=None, help="device peak dense bf16 TFLOPS for MFU")
    args = parser.parse_args(argv)

    import torch

    if args.device is None and not torch.cuda.is_available():
        print("bench_vla_gpu: no CUDA device; nothing measured (pass --device cpu --size tiny to check the script).")
        return 0
    device = torch.device(args.device or "cuda")
    torch.manual_seed(0)
    label = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"# {label}, batch {args.batch}, {args.steps} timed steps after {args.warmup}, bf16 autocast, "
          f"size {args.size}{', gradient checkpointing' if args.gradient_checkpointing else ''}", flush=True)
    rows = []
    for model in args.models:
        for mode in args.modes:
            row = measure(model, mode, args, device)
            rows.append(row)
            done = row.get("error") or f"{row['step_ms']:.0f} ms/step"
            print(f"  {model} {mode}: {done}", flush=True)
    print(format_rows(rows, peak_tflops(args, device)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
