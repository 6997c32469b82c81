"""The seed's training stack, exactly as the seed configures it, timed.

transformers Trainer + peft + bitsandbytes: NF4 with double quantization and bf16
compute, ``prepare_model_for_kbit_training`` (frozen weights upcast to fp32, gradient
checkpointing), LoRA r=64 / alpha=16 / dropout=0.05 on q/k/v/o, batch 4 x accumulation 4
padded to the longest sequence of each batch, paged 8-bit AdamW, lr 2e-4 cosine with 3%
warmup, max length 512, grad clipping 0.3, seed 42.

The data are carexpert's: the same user file split by ``carexpert.dataset.build_from_file``
and tokenized with ``tokenize_records`` (loss on the answer only), so the loss of every
step can be compared with carexpert's own run on the same sequences in the same order.

    python benchmarks/seed_baseline.py --model /dev/shm/bench/model --data /dev/shm/bench/data.jsonl \
        --steps 30 --out benchmarks/results/seed_baseline.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import train_common as tc

SEED = 42
LR = 2e-4
MAX_LENGTH = 512


def training_rows(data: str, tokenizer) -> list[dict]:
    """carexpert's train split of the user file, tokenized the carexpert way."""
    from carexpert.config.schema import DataConfig
    from carexpert.dataset import build_from_file, tokenize_records

    defaults = DataConfig()
    built = build_from_file(data, validation_fraction=defaults.validation_fraction,
                            test_fraction=defaults.test_fraction, seed=SEED, tokenizer=tokenizer,
                            max_length=MAX_LENGTH)
    rows, _ = tokenize_records(tokenizer, built.splits["train"], MAX_LENGTH)
    return rows


def load_seed_model(model_dir: str, quantize: bool):
    """The seed's model_loader: 4-bit load, k-bit preparation, LoRA."""
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig, set_seed

    kwargs = {}
    if quantize:
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16)
        kwargs["device_map"] = {"": 0}
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16, **kwargs)
    model.config.use_cache = False
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    set_seed(SEED)
    lora = LoraConfig(r=64, lora_alpha=16, lora_dropout=0.05, target_modules=tc.LORA_TARGETS, bias="none",
                      task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def make_recorder():
    """A Trainer callback that records each logged step, and a hook that counts real tokens."""
    from transformers import TrainerCallback

    class Recorder(TrainerCallback):
        def __init__(self) -> None:
            self.real = None  # a device tensor: summing on the device avoids a sync per micro-batch
            self.padded = 0
            self.steps: list[dict] = []
            self.started = time.perf_counter()

        def hook(self, module, args, kwargs):
            if module.training and kwargs.get("attention_mask") is not None:
                mask = kwargs["attention_mask"]
                count = mask.sum()
                self.real = count if self.real is None else self.real + count
                self.padded += mask.numel()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:  # the loss reached the host: this step is done on the device
                self.steps.append({"step": state.global_step, "time": time.perf_counter() - self.started,
                                   "loss": logs["loss"], "grad_norm": logs.get("grad_norm"),
                                   "lr": logs.get("learning_rate"),
                                   "real_tokens": int(self.real.item()) if self.real is not None else 0,
                                   "padded_tokens": self.padded})

    return Recorder()


def run(model_dir: str, data: str, steps: int, warmup: int, output_dir: str, quantize: bool = True) -> dict:
    import torch
    from transformers import AutoTokenizer, DataCollatorForSeq2Seq, Trainer, TrainingArguments

    cuda = torch.cuda.is_available()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token  # the seed's choice
    tokenizer.padding_side = "right"
    rows = training_rows(data, tokenizer)
    started = time.perf_counter()
    model = load_seed_model(model_dir, quantize and cuda)
    if cuda:
        torch.cuda.synchronize()
    load_s = time.perf_counter() - started
    after_load = torch.cuda.memory_allocated() / 2**30 if cuda else 0.0
    args = TrainingArguments(
        output_dir=output_dir, per_device_train_batch_size=4, gradient_accumulation_steps=4,
        learning_rate=LR, lr_scheduler_type="cosine", warmup_steps=0.03, max_steps=steps,
        optim="paged_adamw_8bit" if cuda else "adamw_torch", bf16=cuda, gradient_checkpointing=True,
        max_grad_norm=0.3, weight_decay=0.0, logging_steps=1, save_strategy="no", eval_strategy="no",
        report_to="none", seed=SEED, disable_tqdm=True, dataloader_num_workers=0, use_cpu=not cuda)
    recorder = make_recorder()
    trainer = Trainer(model=model, args=args, train_dataset=rows, callbacks=[recorder],
                      data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100))
    model.register_forward_pre_hook(recorder.hook, with_kwargs=True)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    figures = window_figures(recorder.steps, warmup)
    from carexpert.estimate import load_shape

    params = load_shape(model_dir).total_params
    if "tokens_per_s" in figures:
        figures["mfu"] = tc.mfu(figures["tokens_per_s"], params)
    memory = tc.memory_figures() if cuda else {}
    return {"stack": "seed", "load_s": load_s, "after_load_allocated_gib": after_load, "base_params": params,
            "train_rows": len(rows), **figures, **memory, "steps": recorder.steps,
            "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad)}


def window_figures(steps: list[dict], warmup: int) -> dict:
    """Throughput between the end of step ``warmup`` and the last step (real tokens only)."""
    if len(steps) <= warmup or warmup < 1:
        return {}
    first, last = steps[warmup - 1], steps[-1]
    elapsed = last["time"] - first["time"]
    real = last["real_tokens"] - first["real_tokens"]
    padded = last["padded_tokens"] - first["padded_tokens"]
    count = len(steps) - warmup
    return {"timed_steps": count, "elapsed_s": elapsed, "tokens_per_s": real / elapsed,
            "computed_tokens_per_s": padded / elapsed, "steps_per_min": 60 * count / elapsed,
            "padding_share": 1 - real / padded if padded else 0.0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5, help="steps left out of the throughput window")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", default="/tmp/seed-baseline")
    args = parser.parse_args(argv)
    result = {"environment": tc.environment(), **run(args.model, args.data, args.steps, args.warmup, args.work)}
    tc.write_json(args.out, result)
    keys = ("load_s", "tokens_per_s", "steps_per_min", "mfu", "padding_share", "peak_allocated_gib",
            "peak_reserved_gib")
    print("seed baseline:", ", ".join(f"{k}={result[k]:.4g}" for k in keys if k in result))
    print("losses:", [round(s["loss"], 4) for s in result["steps"]][:20])
    return 0


if __name__ == "__main__":
    sys.exit(main())
