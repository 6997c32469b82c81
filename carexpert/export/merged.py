"""Export a run as one plain model folder: adapter merged into the base, verified, then published.

The folder holds safetensors weights (bf16 by default), the tokenizer, a generation
config carrying the chat settings, and ``carexpert_export.json`` (where it came from,
the prompt template to use, the verification result). It loads with nothing but
``AutoModelForCausalLM.from_pretrained(OUT)``.

Writing is atomic at the folder level: everything goes to ``OUT.tmp``, the export is
loaded back from there and its greedy answers compared with the adapter's, and only a
verified export is renamed to ``OUT``. A failed verification leaves ``OUT.tmp`` for
inspection and ``OUT`` untouched.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carexpert.config import Config
from carexpert.errors import UserError
from carexpert.export.verify import Generated, PromptCheck, compare, greedy_generate
from carexpert.fsutil import atomic_write_json
from carexpert.prompt import stop_strings
from carexpert.runs.artifacts import is_adapter_dir

Progress = Callable[[str], None]
EXPORT_DTYPES = ("bfloat16", "float16", "float32")
METADATA_FILE = "carexpert_export.json"


@dataclass
class ExportResult:
    out: Path                          # the published folder (or OUT.tmp when verification failed)
    checks: list[PromptCheck]
    reference: list[Generated] = field(repr=False, default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)


def staging_path(out: Path) -> Path:
    return out.with_name(out.name + ".tmp")


def check_target(out: Path, force: bool) -> None:
    """Refuse to replace an existing ``out`` unless forced; refuse odd targets always."""
    if out.exists() and not force:
        raise UserError("already exists", where=str(out), fix="pass --force to replace it, or pick another path")
    if out.exists() and not out.is_dir():
        raise UserError("exists and is not a folder", where=str(out), fix="pick another path")
    if not out.parent.exists():
        raise UserError("the parent folder does not exist", where=str(out.parent), fix="create it first")


def publish(staged: Path, out: Path) -> None:
    """Swap ``staged`` into ``out``: the old ``out`` (if any) is moved aside first and removed last."""
    old = None
    if out.exists():
        old = out.with_name(f"{out.name}.old-{os.getpid()}-{int(time.time())}")
        os.replace(out, old)
    try:
        os.replace(staged, out)
    except OSError:
        if old is not None:
            os.replace(old, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _free_memory() -> None:
    """Give memory back after dropping a model (the next one is about to load)."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def export_merged(config: Config, adapter_dir: str | Path, out: str | Path, *, force: bool = False,
                  dtype: str = "bfloat16", progress: Progress | None = None, source: dict | None = None) -> ExportResult:
    """Merge ``adapter_dir`` into the base model of ``config``, save to ``out``, verify, publish."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from carexpert.modeling import load_for_inference

    say = progress or (lambda message: None)
    out, adapter_dir = Path(out), Path(adapter_dir)
    if dtype not in EXPORT_DTYPES:
        raise UserError(f"unknown dtype {dtype!r}", fix="use one of " + ", ".join(EXPORT_DTYPES))
    if not is_adapter_dir(adapter_dir):
        raise UserError("no adapter here (adapter_config.json missing)", where=str(adapter_dir))
    check_target(out, force)
    staged = staging_path(out)
    if staged.exists():
        shutil.rmtree(staged)  # left by an interrupted or failed export

    # Merging needs real (unquantized) weights: a 4-bit base cannot absorb the adapter exactly.
    unquantized = dataclasses.replace(config, model=dataclasses.replace(config.model, quantization="none"))
    say(f"loading {config.model.base_model} with the adapter")
    model, tokenizer = load_for_inference(unquantized, adapter_dir, merge=False, progress=say)
    system = config.chat.system_prompt or None
    say("answering the check questions with the adapter (reference)")
    reference = greedy_generate(model, tokenizer, system)
    compute_dtype, device = next(model.parameters()).dtype, model.device

    say("merging the adapter into the weights")
    merged = model.merge_and_unload().to(getattr(torch, dtype))
    _describe_generation(merged.generation_config, config, tokenizer)
    say(f"writing {staged}")
    merged.save_pretrained(staged, safe_serialization=True)
    tokenizer.save_pretrained(staged)
    del model, merged
    _free_memory()

    say("loading the export back with plain transformers")
    exported = AutoModelForCausalLM.from_pretrained(staged, dtype=compute_dtype).to(device).eval()
    exported_tokenizer = AutoTokenizer.from_pretrained(staged)
    checks = compare(reference, greedy_generate(exported, exported_tokenizer, system), exported_tokenizer)
    del exported
    _free_memory()

    result = ExportResult(staged, checks, reference)
    atomic_write_json(staged / METADATA_FILE, {
        "format": "carexpert-merged-export", "version": 1, "dtype": dtype,
        "base_model": config.model.base_model, "adapter": str(adapter_dir), **(source or {}),
        "trained_quantization": config.model.quantization,
        "prompt_template": "carexpert.prompt.render_prompt (Alpaca sections: ### Instruction / ### Response)",
        "system_prompt": config.chat.system_prompt, "stop_strings": stop_strings(),
        "verification": [dataclasses.asdict(check) for check in checks], "verified": result.ok,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })
    if result.ok:
        publish(staged, out)
        result.out = out
    return result


def _describe_generation(generation: Any, config: Config, tokenizer: Any) -> None:
    """Make ``generate()`` on the export behave like ``carexpert chat`` out of the box."""
    chat = config.chat
    sampling = chat.temperature > 0
    generation.do_sample = sampling
    generation.temperature = chat.temperature if sampling else None
    generation.top_p = chat.top_p if sampling else None
    generation.top_k = (chat.top_k or None) if sampling else None
    generation.repetition_penalty = chat.repetition_penalty
    generation.max_new_tokens = chat.max_new_tokens
    if generation.eos_token_id is None:
        generation.eos_token_id = tokenizer.eos_token_id
    if generation.pad_token_id is None:
        generation.pad_token_id = tokenizer.pad_token_id
    for attribute in ("cache_implementation", "max_cache_len"):  # chat's fast path, not a property of the model
        if hasattr(generation, attribute):
            setattr(generation, attribute, None)
