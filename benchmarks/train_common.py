"""Pieces shared by the GPU training benchmarks: data, batches, timing, figures.

Kept apart from carexpert on purpose: the lever exploration must be able to switch each
lever alone, and the seed baseline must not borrow carexpert's speed-ups.
"""

from __future__ import annotations

import json
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

H100_BF16_DENSE_TFLOPS = 989.0  # H100 SXM datasheet, dense bf16 (the H200's is the same)
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]
SEQS_PER_STEP = 16  # the seed's effective batch: 4 x accumulation 4


def read_records(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def tokenize_record(tokenizer, record: dict, max_length: int = 512) -> dict[str, list[int]]:
    """Prompt + answer + EOS, loss on the answer only (the training contract of carexpert.prompt)."""
    from carexpert.prompt import render_prompt

    prompt = tokenizer(render_prompt(record["instruction"], record.get("input", "")))["input_ids"]
    answer = tokenizer(record["output"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = (prompt + answer)[:max_length]
    labels = ([-100] * len(prompt) + answer)[:max_length]
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}


def padded_batch(examples: list[dict], pad_id: int, device) -> dict:
    """Right-padded to the longest example (the seed's dynamic padding)."""
    import torch

    width = max(len(e["input_ids"]) for e in examples)
    ids = [e["input_ids"] + [pad_id] * (width - len(e["input_ids"])) for e in examples]
    mask = [[1] * len(e["input_ids"]) + [0] * (width - len(e["input_ids"])) for e in examples]
    labels = [e["labels"] + [-100] * (width - len(e["labels"])) for e in examples]
    return {"input_ids": torch.tensor(ids, device=device), "attention_mask": torch.tensor(mask, device=device),
            "labels": torch.tensor(labels, device=device)}


def packed_batch(examples: list[dict], device, varlen: bool = False) -> dict:
    """All examples in one row, positions restarting per example; no padding at all.

    The first label of every example is -100, so nothing is learned across a boundary.
    With ``varlen`` the cumulative lengths ride along for a variable-length attention kernel.
    """
    import torch

    ids, labels, positions, lengths = [], [], [], []
    for e in examples:
        ids += e["input_ids"]
        labels += [-100] + e["labels"][1:]
        positions += list(range(len(e["input_ids"])))
        lengths.append(len(e["input_ids"]))
    batch = {"input_ids": torch.tensor([ids], device=device), "labels": torch.tensor([labels], device=device),
             "position_ids": torch.tensor([positions], device=device)}
    if varlen:
        cumulative = [0]
        for length in lengths:
            cumulative.append(cumulative[-1] + length)
        cu = torch.tensor(cumulative, dtype=torch.int32, device=device)
        batch.update(cu_seq_lens_q=cu, cu_seq_lens_k=cu, max_length_q=max(lengths), max_length_k=max(lengths))
    return batch


def label_count(examples: list[dict]) -> int:
    """Tokens that carry a loss after the causal shift."""
    return sum(sum(1 for x in e["labels"][1:] if x != -100) for e in examples)


def mfu(tokens_per_s: float, params: int, peak_tflops: float = H100_BF16_DENSE_TFLOPS) -> float:
    """Model FLOPs utilization at 4N FLOPs a token (forward 2N + input-gradient 2N; frozen weights)."""
    return tokens_per_s * 4 * params / (peak_tflops * 1e12)


@dataclass
class StepClock:
    """Wall time per optimizer step; call ``tick`` right after the step's loss reached the host."""

    warmup: int
    start: float | None = None
    timed_steps: int = 0
    timed_tokens: int = 0
    timed_padded: int = 0
    steps_seen: int = 0

    def tick(self, real_tokens: int, padded_tokens: int) -> None:
        self.steps_seen += 1
        now = time.perf_counter()
        if self.steps_seen == self.warmup:
            self.start = now
        elif self.steps_seen > self.warmup:
            self.timed_steps += 1
            self.timed_tokens += real_tokens
            self.timed_padded += padded_tokens
            self.elapsed = now - (self.start or now)

    def figures(self, params: int) -> dict[str, float]:
        elapsed = getattr(self, "elapsed", 0.0)
        if not self.timed_steps or elapsed <= 0:
            return {}
        tps = self.timed_tokens / elapsed
        return {"timed_steps": self.timed_steps, "elapsed_s": elapsed, "tokens_per_s": tps,
                "computed_tokens_per_s": self.timed_padded / elapsed,
                "steps_per_min": 60 * self.timed_steps / elapsed, "mfu": mfu(tps, params),
                "padding_share": 1 - self.timed_tokens / self.timed_padded if self.timed_padded else 0.0}


def memory_figures() -> dict[str, float]:
    import torch

    gib = 1024**3
    return {"peak_allocated_gib": torch.cuda.max_memory_allocated() / gib,
            "peak_reserved_gib": torch.cuda.max_memory_reserved() / gib}


def environment() -> dict[str, Any]:
    """Card, driver and library versions, for the results file."""
    import importlib.metadata as md

    import torch

    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                            "cuda": torch.version.cuda, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    for name in ("transformers", "peft", "accelerate", "bitsandbytes", "liger-kernel", "triton"):
        try:
            info[name] = md.version(name)
        except md.PackageNotFoundError:
            info[name] = None
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        try:
            info["nvidia_smi"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,memory.total,driver_version,power.limit,clocks.max.sm",
                 "--format=csv,noheader"], capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError) as error:
            info["nvidia_smi"] = f"unavailable: {error}"
    return info


def write_json(path: str | Path, data: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
