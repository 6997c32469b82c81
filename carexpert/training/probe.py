"""Measure how fast this machine trains the configured model: the timing probe.

A formula cannot say how fast a shared 2-core CPU or an unknown GPU trains, so the
probe asks the machine: it builds the run's real tokenized data and the same plan
and model the run would use (``session.plan_for_machine``, ``load_for_training``),
then times a few real micro-batches of forward + backward + optimizer update, and
one forward-only pass for validation. The result is cached per machine and config
(``probes/<key>.json`` under the cache dir), so only the first estimate for a
config pays the model load; ``reprobe`` measures again (after a hardware change, or
when the shared machine's load changed a lot: the probe records the load average).
"""

from __future__ import annotations

import datetime as dt
import gc
import hashlib
import json
import os
import platform
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from carexpert.training.timing import DataSize, Probe, RunTime, run_time

TIMED_MICRO_BATCHES = 2  # after one untimed warm-up micro-batch
TIMED_SECONDS = 30.0  # stop timing after this long (at least one micro-batch): a slow CPU is slow enough
PROBE_VERSION = 1


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_identity() -> dict[str, Any]:
    """What makes one machine train at another speed: host, CPU, threads, GPUs, torch."""
    import torch

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {"host": platform.node(), "cpu": cpu_model(), "cpus": os.cpu_count(), "threads": torch.get_num_threads(),
            "gpus": gpus, "torch": torch.__version__}


def speed_settings(config: Any) -> dict[str, Any]:
    """The config keys that change the speed of a training step."""
    train = config.train
    return {"model": vars(config.model), "lora": vars(config.lora), "max_length": config.data.max_length,
            "train": {key: getattr(train, key) for key in ("batch_size", "grad_accum", "auto_micro_batch", "precision",
                                                           "optimizer", "gradient_checkpointing", "padding_free",
                                                           "upcast_frozen", "head_loss")}}


def probe_key(config: Any, data_fingerprint: str) -> str:
    blob = json.dumps({"version": PROBE_VERSION, "machine": machine_identity(), "config": speed_settings(config),
                       "data": data_fingerprint}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def probe_cache_path(config: Any, key: str) -> Path:
    from carexpert.modeling.embedded import cache_root

    return cache_root(config.model.cache_dir or None) / "probes" / f"{key}.json"


def load_cached(path: Path) -> Probe | None:
    try:
        return Probe.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None  # absent or unreadable: measure again


def measure(config: Any, tokenizer: Any, data: Any, *, timed: int = TIMED_MICRO_BATCHES) -> Probe:
    """Load the run's model as its plan says and time ``timed`` real micro-batches."""
    import torch

    from carexpert.training.collate import make_collator, real_token_count
    from carexpert.training.loss import resolve_head_loss
    from carexpert.training.model_setup import device_for_rank, load_for_training
    from carexpert.training.session import plan_for_machine

    plan = plan_for_machine(config, data)
    device = device_for_rank(plan, 0)
    started = time.perf_counter()
    model = load_for_training(config, plan, device)
    load_seconds = time.perf_counter() - started
    from carexpert.training.trainer import LABELLED_LOSSES

    labelled_loss = LABELLED_LOSSES.get(resolve_head_loss(config.train.head_loss, model)[0])  # the run's own loss
    from carexpert.modeling.attention import VARLEN

    flash = getattr(model.config, "_attn_implementation", "") in ("flash_attention_2", VARLEN)
    collator = make_collator(tokenizer, packed=config.train.padding_free, flash_attention=flash)
    # On a CPU a packed row of a few hundred tokens already fills the cores, so the probe times
    # single examples there (its tokens/s is what the run's step time is computed from) and a
    # probe of retrieval-length prompts on a loaded 2-core machine stays around a minute. A GPU's
    # speed depends on the micro-batch, so it is timed at the plan's.
    per_batch = plan.micro_batch if plan.device == "cuda" else 1
    rng = random.Random(config.train.seed)
    wanted = per_batch * (timed + 1)
    indices = [rng.randrange(len(data.train)) for _ in range(wanted)]
    batches = [collator([data.train[i] for i in indices[k:k + per_batch]]) for k in range(0, wanted, per_batch)]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.train.learning_rate)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(plan.precision)
    autocast = (lambda: torch.autocast(plan.device, dtype=dtype)) if dtype else (lambda: torch.autocast(
        plan.device, enabled=False))

    def sync() -> None:
        if plan.device == "cuda":
            torch.cuda.synchronize()

    def step(model: Any, optimizer: torch.optim.Optimizer, batch: dict[str, Any]) -> None:
        # model and optimizer come in as arguments, not from the closure: they are deleted below to free memory
        batch = on_device(batch, device)
        with autocast():
            loss = labelled_loss(model, batch)[0] if labelled_loss else model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    model.train()
    step(model, optimizer, batches[0])  # warm-up: first-call allocations and kernel choices
    sync()
    tokens, started, seconds = 0, time.perf_counter(), 0.0
    for batch in batches[1:]:
        step(model, optimizer, batch)
        sync()
        tokens += int(real_token_count(batch))
        seconds = time.perf_counter() - started
        if seconds > TIMED_SECONDS:
            break
    model.eval()
    forward_batch = {key: value.to(device) for key, value in batches[1].items() if hasattr(value, "to")}
    started = time.perf_counter()
    with torch.no_grad(), autocast():
        model(**forward_batch)
    sync()
    forward_seconds = time.perf_counter() - started
    name = (torch.cuda.get_device_name(0) if plan.device == "cuda"
            else f"{torch.get_num_threads()} CPU threads ({cpu_model()})")
    del model, optimizer
    gc.collect()
    if plan.device == "cuda":
        torch.cuda.empty_cache()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return Probe(plan.device, name, plan.precision, per_batch, tokens, seconds,
                 int(real_token_count(batches[1])), forward_seconds, load_seconds,
                 dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), load)


def prepare_data(config: Any) -> tuple[Any, Any, DataSize]:
    """The run's tokenizer, tokenized data, and its size (timed: it is part of a run's start-up)."""
    from carexpert.training.data import load_training_data
    from carexpert.training.model_setup import load_tokenizer_for_training

    started = time.perf_counter()
    tokenizer = load_tokenizer_for_training(config)
    data = load_training_data(config, tokenizer)
    size = DataSize(len(data.train), sum(len(ids) for ids in data.train["input_ids"]), len(data.validation),
                    sum(len(row["input_ids"]) for row in data.validation), time.perf_counter() - started)
    return tokenizer, data, size


def age_seconds(probe: Probe) -> float:
    try:
        measured = dt.datetime.fromisoformat(probe.measured_at)
    except ValueError:
        return float("inf")
    return (dt.datetime.now(dt.UTC) - measured).total_seconds()


def probe_for(config: Any, *, reprobe: bool = False, max_age_seconds: float | None = None,
              progress: Callable[[str], None] | None = None) -> tuple[Probe, DataSize, bool]:
    """(probe, data size, whether the probe came from the cache) for ``config`` on this machine.

    ``max_age_seconds``: measure again when the cached probe is older (the load of a shared
    machine changes; the quick profile's promise depends on the speed now).
    """
    say = progress or (lambda message: None)
    say("building the tokenized data")
    tokenizer, data, size = prepare_data(config)
    path = probe_cache_path(config, probe_key(config, data.fingerprint))
    cached = None if reprobe else load_cached(path)
    if cached is not None and max_age_seconds is not None and age_seconds(cached) > max_age_seconds:
        cached = None
    if cached is not None:
        return cached, size, True
    say("timing a few training steps of the real model (cached afterwards)")
    probe = measure(config, tokenizer, data)
    from carexpert.fsutil import atomic_write_json

    try:
        atomic_write_json(path, probe.to_dict())
    except OSError:
        pass  # an unwritable cache only costs the next estimate a new measurement
    return probe, size, False


def estimate_run_time(config: Any, *, reprobe: bool = False, world_size: int = 1,
                      progress: Callable[[str], None] | None = None) -> RunTime:
    """How long ``config`` trains on this machine (probe cached per machine and config)."""
    probe, size, _cached = probe_for(config, reprobe=reprobe, progress=progress)
    return run_time(config.train, size, probe, world_size)


def on_device(batch: dict[str, Any], device: Any) -> dict[str, Any]:
    """The batch's tensors moved to ``device``; other values (the packed flash kernel's ``max_length_q``,
    a Python int) kept as they are: the attention needs them beside ``cu_seq_lens_q``."""
    return {key: value.to(device) if hasattr(value, "to") else value for key, value in batch.items()}
