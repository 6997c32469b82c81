"""Pure decisions: precision/optimizer fallbacks, checkpointing, micro-batch folding, OOM advice, the guard."""

from __future__ import annotations

from pathlib import Path

import pytest

from carexpert.config import Config
from carexpert.runs import checkpoints
from carexpert.training import guard
from carexpert.training.advice import config_set_command, oom_advice
from carexpert.training.plan import cpu_has_native_bf16, fold_accumulation, make_plan, resolve_precision

GIB = 1024**3


def test_cpu_bf16_is_detected_from_the_cpu_flags():
    assert cpu_has_native_bf16("flags : fpu avx2 avx512f avx512_bf16")
    assert cpu_has_native_bf16("flags : fpu amx_bf16 amx_tile")
    assert not cpu_has_native_bf16("flags : fpu avx avx2 fma")


def test_precision_falls_back_honestly():
    assert resolve_precision("bf16", cuda=True, cuda_bf16=True, cpu_bf16=False) == ("bf16", None)
    precision, note = resolve_precision("bf16", cuda=True, cuda_bf16=False, cpu_bf16=False)
    assert precision == "fp16" and "no bf16" in note
    precision, note = resolve_precision("bf16", cuda=False, cuda_bf16=False, cpu_bf16=False)
    assert precision == "fp32" and "emulated" in note
    assert resolve_precision("auto", cuda=False, cuda_bf16=False, cpu_bf16=True) == ("bf16", None)
    assert resolve_precision("fp32", cuda=False, cuda_bf16=False, cpu_bf16=False) == ("fp32", None)


def test_cpu_plan_uses_adamw_fp32_compute_and_never_folds_or_checkpoints():
    config = Config()
    config.train.optimizer = "paged_adamw_8bit"
    plan = make_plan(config, cuda=False, cpu_bf16=False, peak_bytes=lambda m, c: 10 * GIB, gpu_memory=80 * GIB)
    assert (plan.device, plan.precision, plan.compute_dtype, plan.optimizer) == ("cpu", "fp32", "float32",
                                                                                "adamw_torch")
    assert not plan.gradient_checkpointing and (plan.micro_batch, plan.grad_accum) == (4, 4)
    assert any("adamw_torch" in n for n in plan.notices) and any("fp32" in n for n in plan.notices)


def test_fold_accumulation_keeps_the_effective_batch():
    assert fold_accumulation(4, 4, lambda m: m <= 16) == (16, 1)
    assert fold_accumulation(4, 4, lambda m: m <= 8) == (8, 2)
    assert fold_accumulation(4, 4, lambda m: False) == (4, 4)
    assert fold_accumulation(2, 6, lambda m: m <= 6) == (6, 2)  # only divisors of grad_accum


def test_gpu_plan_checkpoints_only_when_needed_and_folds_while_it_fits():
    config = Config()
    # activations ~1 GiB per sequence on top of 10 GiB; checkpointing divides them by 10
    def peak(micro: int, checkpointing: bool) -> int:
        return 10 * GIB + micro * (GIB // 10 if checkpointing else GIB)

    roomy = make_plan(config, cuda=True, cuda_bf16=True, peak_bytes=peak, gpu_memory=80 * GIB)
    assert not roomy.gradient_checkpointing and (roomy.micro_batch, roomy.grad_accum) == (16, 1)
    assert roomy.optimizer == "paged_adamw_8bit" and roomy.precision == "bf16"
    tight = make_plan(config, cuda=True, cuda_bf16=True, peak_bytes=peak, gpu_memory=12 * GIB)
    assert tight.gradient_checkpointing and (tight.micro_batch, tight.grad_accum) == (8, 2)
    config.train.auto_micro_batch = False
    config.train.gradient_checkpointing = "off"
    fixed = make_plan(config, cuda=True, cuda_bf16=True, peak_bytes=peak, gpu_memory=12 * GIB)
    assert not fixed.gradient_checkpointing and (fixed.micro_batch, fixed.grad_accum) == (4, 4)


def test_oom_advice_follows_the_runs_own_settings():
    config = Config()
    advice = oom_advice(config)
    assert advice[0]["text"].startswith("batch_size 4 → 2 with grad_accum 4 → 8 keeps the effective batch of 16")
    assert config_set_command(advice[0]) == "carexpert config set train.batch_size=2 train.grad_accum=8"
    assert {"train.gradient_checkpointing": "on"} in [a["changes"] for a in advice]
    assert {"data.max_length": 768} in [a["changes"] for a in advice]
    assert {"lora.r": 32} in [a["changes"] for a in advice]
    folded = oom_advice(config, micro_batch=16, grad_accum=1, gradient_checkpointing=True)
    assert folded[0]["changes"] == {"train.auto_micro_batch": False}
    assert not [a for a in folded if "gradient_checkpointing" in str(a["changes"])]
    config.train.batch_size, config.lora.r, config.data.max_length = 1, 8, 64
    assert {"model.quantization": "nf4"} in [a["changes"] for a in oom_advice(config)]  # bf16 weights: 4-bit helps
    config.model.quantization = "nf4"
    assert [a["changes"] for a in oom_advice(config)] == [{"train.gradient_checkpointing": "on"}]


def test_guard_ignores_harmless_keys_and_names_what_changed(tmp_path: Path):
    config = Config()
    checkpoint = tmp_path / "checkpoint-10"
    checkpoint.mkdir()
    (checkpoint / "trainer_state.json").write_text("{}")
    guard.write_marker(checkpoint, config=config, fingerprint="abc", step=10, plan={"optimizer": "adamw_torch"})
    assert checkpoints.is_complete(checkpoint)
    config.ui.theme, config.eval.limit, config.train.save_steps = "light", 3, 7
    assert guard.check_resume(checkpoint, config, "abc", force=False) == []
    config.lora.r = 16
    with pytest.raises(Exception) as refused:
        guard.check_resume(checkpoint, config, "xyz", force=False, optimizer="paged_adamw_8bit")
    details = refused.value.details
    assert "lora.r: 64 at the checkpoint, 16 now" in details
    assert any("dataset fingerprint" in d for d in details) and any("optimizer in use" in d for d in details)
    assert len(guard.check_resume(checkpoint, config, "xyz", force=True)) == 2


def test_rotation_keeps_the_newest_complete_checkpoints(tmp_path: Path):
    for step in (2, 4, 6, 8):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        (folder / "trainer_state.json").write_text("{}")
        if step != 4:
            guard.write_marker(folder, config=Config(), fingerprint="f", step=step, plan={})
    (tmp_path / "checkpoint-10").mkdir()  # being written now: left alone
    removed = checkpoints.rotate(tmp_path, keep=2)
    assert sorted(p.name for p in removed) == ["checkpoint-2", "checkpoint-4"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-10", "checkpoint-6", "checkpoint-8"]
    assert checkpoints.last_complete_checkpoint(tmp_path) == (tmp_path / "checkpoint-8", [tmp_path / "checkpoint-10"])


def test_auto_optimizer_is_fused_for_small_models_on_a_gpu_and_the_seeds_for_big_ones():
    from carexpert.training.plan import resolve_optimizer

    assert resolve_optimizer("auto", cuda=True, base_params=270_000_000) == ("adamw_torch_fused", None)
    assert resolve_optimizer("auto", cuda=True, base_params=7_241_732_096) == ("paged_adamw_8bit", None)
    assert resolve_optimizer("auto", cuda=True, base_params=None) == ("paged_adamw_8bit", None)  # unknown = big
    assert resolve_optimizer("auto", cuda=False, base_params=270_000_000) == ("adamw_torch", None)  # no notice
    config = Config()
    small = make_plan(config, cuda=True, cuda_bf16=True, peak_bytes=lambda m, c: GIB, gpu_memory=80 * GIB,
                      base_params=268_098_176)
    assert small.optimizer == "adamw_torch_fused" and not [n for n in small.notices if "optimizer" in n]
    assert make_plan(config, cuda=False, cpu_bf16=False).optimizer == "adamw_torch"
    config.train.optimizer = "paged_adamw_8bit"
    assert make_plan(config, cuda=True, cuda_bf16=True, base_params=268_098_176).optimizer == "paged_adamw_8bit"


def test_compile_is_planned_on_a_gpu_for_big_models_without_checkpointing_and_never_on_the_cpu():
    config = Config()
    big = 7_241_732_096
    roomy = make_plan(config, cuda=True, cuda_bf16=True, peak_bytes=lambda m, c: GIB, gpu_memory=80 * GIB,
                      base_params=big)
    assert roomy.compile and not roomy.gradient_checkpointing
    small = make_plan(config, cuda=True, cuda_bf16=True, peak_bytes=lambda m, c: GIB, gpu_memory=80 * GIB,
                      base_params=268_098_176)
    assert not small.compile and not [n for n in small.notices if "compile" in n]
    config.train.compile = "on"
    assert make_plan(config, cuda=True, cuda_bf16=True, base_params=268_098_176).compile
    config.train.compile = "auto"
    tight = make_plan(config, cuda=True, cuda_bf16=True, peak_bytes=lambda m, c: (70 if not c else 5) * GIB,
                      gpu_memory=24 * GIB, base_params=big)
    assert tight.gradient_checkpointing and not tight.compile
    assert not [n for n in tight.notices if "compile" in n]  # 'auto' off with checkpointing: nothing to say
    cpu = make_plan(config, cuda=False, cpu_bf16=False)
    assert not cpu.compile
    config.train.compile = "on"
    cpu = make_plan(config, cuda=False, cpu_bf16=False)
    assert not cpu.compile and any("only uses on a GPU" in n for n in cpu.notices)
    config.train.gradient_checkpointing = "on"
    checkpointed = make_plan(config, cuda=True, cuda_bf16=True)
    assert not checkpointed.compile and any("never measured together" in n for n in checkpointed.notices)
    config.train.compile, config.train.gradient_checkpointing = "off", "off"
    assert not make_plan(config, cuda=True, cuda_bf16=True).compile


def test_the_chunked_head_loss_lets_a_smaller_gpu_fold_more():
    from carexpert.estimate import ModelShape, estimate

    gemma = ModelShape(hidden=640, intermediate=2048, layers=18, heads=4, kv_heads=1, head_dim=256, vocab=262_144,
                       tied_embeddings=True)
    kwargs = dict(micro_batch=16, seq_len=400, gradient_checkpointing=False, answer_share=0.2)
    chunked, selective = estimate(gemma, head_loss="chunked", **kwargs), estimate(gemma, head_loss="selective", **kwargs)
    full = estimate(gemma, head_loss="full", **kwargs)
    assert chunked.logits_bytes < selective.logits_bytes / 4 < full.logits_bytes / 4
    config = Config()
    config.model.base_model = "unused"

    def plan_for(head_loss: str):
        def peak(micro: int, checkpointing: bool) -> int:
            return estimate(gemma, head_loss=head_loss, micro_batch=micro, seq_len=400, answer_share=0.2,
                            gradient_checkpointing=checkpointing).peak_bytes
        return make_plan(config, cuda=True, cuda_bf16=True, peak_bytes=peak, gpu_memory=12 * GIB)

    assert plan_for("chunked").micro_batch > plan_for("full").micro_batch
