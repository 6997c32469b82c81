"""The pieces of one run, built in order: data and plan, model, Trainer, adapter."""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from carexpert.runs.paths import RunPaths
from carexpert.training.callbacks import (
    CheckpointCallback,
    EventsCallback,
    StallWatchdog,
    StopCallback,
    TimeLimitCallback,
)
from carexpert.training.data import TrainingData, load_training_data
from carexpert.training.model_setup import device_for_rank, load_for_training, load_tokenizer_for_training
from carexpert.training.plan import TrainPlan, make_plan
from carexpert.training.reporter import Reporter
from carexpert.training.signals import GracefulStop

log = logging.getLogger("carexpert.training")


class TrainingSession:
    def __init__(self, config: Any, run_paths: RunPaths, reporter: Reporter, ranks: Any, *, stop: GracefulStop,
                 extra_callbacks: Any = ()):
        self.config, self.run_paths, self.reporter, self.ranks = config, run_paths, reporter, ranks
        self.stop, self.extra_callbacks = stop, list(extra_callbacks)
        self.tokenizer: Any = None
        self.data: TrainingData | None = None  # type: ignore[assignment]
        self.plan: TrainPlan | None = None  # type: ignore[assignment]
        self.model: Any = None
        self.trainer: Any = None

    # 1. tokenizer, data, plan -------------------------------------------------------
    def prepare(self) -> None:
        self.tokenizer = load_tokenizer_for_training(self.config)
        self.data = load_training_data(self.config, self.tokenizer)
        self.plan = self._make_plan()

    def _make_plan(self) -> TrainPlan:
        return plan_for_machine(self.config, self.data, world_size=self.ranks.world_size,
                                local_rank=self.ranks.local_rank)

    # 2. model ------------------------------------------------------------------------
    def load_model(self) -> None:
        from carexpert.modeling import describe_model
        from carexpert.training.loss import resolve_head_loss

        device = device_for_rank(self.plan, self.ranks.local_rank)
        self.model = load_for_training(self.config, self.plan, device)
        self.head_loss, head_note = resolve_head_loss(self.config.train.head_loss, self.model)
        notices = list(self.plan.notices) + list(self.data.notes) + ([head_note] if head_note else [])
        summary = describe_model(self.model)
        self.reporter.emit("summary", **summary, device=device, optimizer=self.plan.optimizer,
                           precision=self.plan.precision, notices=notices, plan=self.plan_record(),
                           train_examples=len(self.data.train), validation_examples=len(self.data.validation))
        for notice in notices:
            if self.reporter.emit("notice", message=notice):
                log.warning("%s", notice)

    def plan_record(self) -> dict[str, Any]:
        record = asdict(self.plan)
        record.pop("notices")
        head_loss = getattr(self, "head_loss", None)
        record.update(padding_free=self.config.train.padding_free, head_loss=head_loss,
                      selective_logits=head_loss in ("chunked", "selective") if head_loss else None)
        return record

    # 3. train ------------------------------------------------------------------------
    def train(self, checkpoint: Path | None) -> int:
        from carexpert.training.arguments import training_arguments
        from carexpert.training.collate import make_collator
        from carexpert.training.trainer import CarexpertTrainer

        config, plan = self.config, self.plan
        has_eval = len(self.data.validation) > 0
        args = training_arguments(config, plan, self.run_paths, evaluate=has_eval)
        from carexpert.modeling.attention import VARLEN

        # Kernels that take packed boundaries as cu_seq_lens get them from the collator.
        flash = getattr(self.model.config, "_attn_implementation", "") in ("flash_attention_2", VARLEN)
        events = EventsCallback(self.reporter)
        watchdog = StallWatchdog(self.reporter, config.train.stall_factor)
        callbacks = [*self.extra_callbacks,  # first, so what they ask for at a step is honoured at that step
                     CheckpointCallback(self.reporter, config=config, fingerprint=self.data.fingerprint,
                                        plan=self.plan_record(), keep=config.train.save_total_limit),
                     StopCallback(self.stop, self.reporter), events, watchdog]
        if config.train.max_minutes > 0:
            callbacks.insert(len(self.extra_callbacks), TimeLimitCallback(config.train.max_minutes, self.reporter))
        if config.train.tensorboard and self.ranks.rank == 0:
            callbacks.append(_tensorboard_callback(self.run_paths.tensorboard))
        self.trainer = CarexpertTrainer(
            model=self.model, args=args, train_dataset=self.data.train,
            eval_dataset=self.data.validation if has_eval else None, processing_class=self.tokenizer,
            data_collator=make_collator(self.tokenizer, packed=config.train.padding_free, flash_attention=flash,
                                        constant_max_length=config.data.max_length if plan.compile else None),
            callbacks=callbacks, head_loss=self.head_loss)
        from transformers.trainer_callback import PrinterCallback

        self.trainer.remove_callback(PrinterCallback)  # our events and train.log replace its prints
        events.trainer = self.trainer
        try:
            self.trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        finally:
            watchdog.stop()
        state = self.trainer.state
        if has_eval and not self.stop.requested and _last_eval_step(state) != state.global_step:
            self.trainer.evaluate()  # the final validation loss, if the schedule did not just compute it
        return state.global_step

    # 4. adapter ----------------------------------------------------------------------
    def save_adapter(self) -> Path | None:
        """Write the LoRA adapter + tokenizer to ``adapter/`` (temp folder, then rename)."""
        if self.ranks.rank != 0:
            return None
        target = self.run_paths.adapter
        temporary = target.with_name(".adapter.tmp")
        shutil.rmtree(temporary, ignore_errors=True)
        self.trainer.accelerator.unwrap_model(self.trainer.model).save_pretrained(temporary, safe_serialization=True)
        self.tokenizer.save_pretrained(temporary)
        if target.exists():
            shutil.rmtree(target)
        temporary.rename(target)
        self.reporter.emit("notice", message=f"adapter saved to {target}")
        return target


def plan_for_machine(config: Any, data: TrainingData, *, world_size: int = 1, local_rank: int = 0) -> TrainPlan:
    """The plan for this machine's device (the timing probe uses the same one as the run)."""
    import torch

    cuda = torch.cuda.is_available()
    if not cuda:
        return make_plan(config, cuda=False, world_size=world_size)
    from carexpert.estimate import estimate, shape_for_model

    shape = shape_for_model(config.model.base_model, config.model.cache_dir)
    seq_len = min(data.longest(), config.data.max_length)
    train, model, lora = config.train, config.model, config.lora
    from carexpert.training.plan import resolve_optimizer

    optimizer, _ = resolve_optimizer(train.optimizer, cuda=True, base_params=shape.total_params if shape else None)

    def peak_bytes(micro_batch: int, checkpointing: bool) -> int:
        return estimate(shape, quantization=model.quantization, double_quant=model.double_quant, lora_r=lora.r,
                        lora_targets=list(lora.target_modules), micro_batch=micro_batch, seq_len=seq_len,
                        gradient_checkpointing=checkpointing, optimizer=optimizer,
                        answer_share=data.label_share(), head_loss=train.head_loss).peak_bytes

    props = torch.cuda.get_device_properties(local_rank)
    return make_plan(config, cuda=True, cuda_bf16=torch.cuda.is_bf16_supported(),
                     world_size=world_size, peak_bytes=peak_bytes if shape else None,
                     gpu_memory=props.total_memory, base_params=shape.total_params if shape else None)


def _last_eval_step(state: Any) -> int | None:
    steps = [entry.get("step") for entry in state.log_history if "eval_loss" in entry]
    return steps[-1] if steps else None


def _tensorboard_callback(folder: Path) -> Any:
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback

    return TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(folder)))
