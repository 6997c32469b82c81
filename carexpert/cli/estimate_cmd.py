"""``carexpert estimate [--quick] [--run RUN]``: VRAM and run time before training; VRAM error after it.

The time comes from a short probe of real training steps on this machine (cached per
machine and config, ``carexpert.training.probe``); ``--no-probe`` leaves it out.
"""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table

from carexpert.cli.main import add_config_option
from carexpert.cli.timing_cmd import add_timing_options, print_time, timed_config
from carexpert.config import load_or_default
from carexpert.errors import UserError

GIB = 1024**3


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("estimate", help="estimate training VRAM and step time from the config")
    add_config_option(parser)
    parser.add_argument("--gpu-name", help="card to estimate for (default: this machine's first GPU)")
    parser.add_argument("--gpu-memory", type=float, metavar="GIB", help="card memory in GiB (default: detected)")
    parser.add_argument("--run", metavar="RUN", help="compare with the measured peak of this run")
    add_timing_options(parser)
    parser.add_argument("--no-probe", action="store_true",
                        help="memory only: skip timing training steps of the real model")
    parser.add_argument("--json", action="store_true", help="print the estimate as one JSON line (for the app)")
    parser.set_defaults(func=run_estimate)


def detected_gpu() -> tuple[str | None, float | None]:
    """First GPU's name and memory in GiB through NVML (no torch import), or (None, None)."""
    try:
        from carexpert.system import gpu_snapshot
    except ImportError:
        return None, None
    gpus = gpu_snapshot()
    if not gpus:
        return None, None
    return gpus[0].get("name"), (gpus[0].get("mem_total") or 0) / GIB or None


def measured_peak(config, run_id: str) -> int:
    from carexpert.runs import RunPaths, read_events

    paths = RunPaths.of(config.train.runs_dir, run_id)
    if not paths.exists():
        raise UserError(f"no run {run_id!r} in {config.train.runs_dir}", fix="see 'carexpert runs list'")
    peaks = [gpu.get("peak") or 0 for event in read_events(paths.events) if event["type"] == "step"
             for gpu in event.get("gpus") or []]
    if not peaks:
        raise UserError(f"run {run_id!r} has no GPU memory readings", where=str(paths.events),
                        fix="compare with a run that trained on a GPU")
    return max(peaks)


def run_estimate(args: argparse.Namespace) -> int:
    from carexpert.estimate import compare_with_run, estimate_for_config

    config = load_or_default(args.config)
    if args.quick and args.no_probe:
        raise UserError("--quick is sized from the probe", fix="drop --no-probe")
    changes: list[str] = []
    runtime, unmeasured = None, None
    if not args.no_probe:
        try:
            config, runtime, changes = timed_config(config, args, quiet=args.json)
        except UserError as error:
            if args.quick or args.json:
                raise
            unmeasured = error  # the memory estimate needs no model load: still show it
    gpu_name, gpu_memory = detected_gpu()
    gpu_name = args.gpu_name or gpu_name
    gpu_memory = args.gpu_memory or gpu_memory
    result = estimate_for_config(config, gpu_name=gpu_name, on_gpu=bool(gpu_name or gpu_memory))
    if args.json:
        print(json.dumps({"memory": result.to_dict() if result else None,
                          "time": runtime.to_dict() if runtime else None, "quick_changes": changes}))
        return 0
    if result is None:
        raise UserError(f"cannot read the shape of {config.model.base_model!r} offline",
                        where="model.base_model", fix="point base_model at a local folder with a config.json")
    console = Console()
    table = Table(title=f"Estimate for {config.model.base_model} ({config.model.quantization}, "
                        f"batch {config.train.batch_size} x {config.data.max_length} tokens)")
    table.add_column("component")
    table.add_column("GiB", justify="right")
    for label, value in [("frozen weights", result.weights_bytes), ("LoRA + grads + optimizer", result.adapter_bytes),
                         ("activations", result.activation_bytes), ("logits", result.logits_bytes),
                         ("runtime overhead", result.overhead_bytes)]:
        table.add_row(label, f"{value / GIB:.2f}")
    table.add_row("[bold]peak[/bold]", f"[bold]{result.peak_bytes / GIB:.2f}[/bold]")
    console.print(table)
    console.print(f"parameters {result.total_params / 1e6:,.1f} M, LoRA {result.lora_params / 1e6:,.2f} M "
                  f"({100 * result.lora_params / result.total_params:.2f}%)")
    if result.step_seconds:
        console.print(f"optimizer step ≈ {result.step_seconds:.2f} s on {gpu_name} "
                      f"(assumes {result.tokens_per_step} tokens/step at 35% of {result.peak_tflops:g} TFLOP/s)")
    if runtime is not None:
        print_time(console, runtime, changes)
    if unmeasured is not None:
        console.print(f"[yellow]time: not measured: {unmeasured.render()}[/yellow]", highlight=False)
    if gpu_memory:
        fits = result.peak_bytes / GIB <= gpu_memory * 0.95
        console.print(f"[{'green' if fits else 'red'}]{'fits' if fits else 'does not fit'}[/] "
                      f"in {gpu_memory:.1f} GiB")
    if args.run:
        comparison = compare_with_run(result.peak_bytes, measured_peak(config, args.run))
        console.print(f"measured peak {comparison['measured_bytes'] / GIB:.2f} GiB; estimate error "
                      f"{100 * comparison['relative_error']:+.1f}%")
    return 0
