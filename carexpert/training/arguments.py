"""The ``TrainingArguments`` of a run: the config's schedule and the plan's choices."""

from __future__ import annotations

from typing import Any

from carexpert.config import Config
from carexpert.runs.paths import RunPaths
from carexpert.training.plan import TrainPlan


def training_arguments(config: Config, plan: TrainPlan, run_paths: RunPaths, *, evaluate: bool) -> Any:
    from transformers import TrainingArguments

    train = config.train
    if plan.device == "cpu" and plan.world_size > 1:
        _start_gloo_group(train.dist_timeout_s)
    eval_every = train.eval_steps if evaluate and train.eval_steps > 0 else None
    return TrainingArguments(
        output_dir=str(run_paths.checkpoints),
        num_train_epochs=train.epochs,
        max_steps=train.max_steps or -1,
        per_device_train_batch_size=plan.micro_batch,
        per_device_eval_batch_size=plan.micro_batch,
        gradient_accumulation_steps=plan.grad_accum,
        learning_rate=train.learning_rate,
        lr_scheduler_type=train.lr_scheduler,
        warmup_steps=float(train.warmup_ratio),  # transformers 5: a float below 1 is a share of the steps
        weight_decay=train.weight_decay,
        max_grad_norm=train.max_grad_norm,
        optim=plan.optimizer,
        bf16=plan.precision == "bf16",
        fp16=plan.precision == "fp16",
        activation_checkpointing=plan.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if plan.gradient_checkpointing else None,
        eval_strategy="steps" if eval_every else "no",
        eval_steps=eval_every,
        save_strategy="steps",
        save_steps=train.save_steps,
        save_total_limit=None,  # carexpert rotates after marking a checkpoint complete (carexpert.runs.checkpoints.rotate)
        logging_strategy="steps",
        logging_steps=train.logging_steps,
        logging_first_step=True,
        # The filter reads every micro-batch's loss on the host (a GPU sync per micro-batch) to
        # replace a NaN by the running mean; without it a NaN loss is logged as what it is.
        logging_nan_inf_filter=False,
        seed=train.seed,
        data_seed=train.seed,
        use_cpu=plan.device == "cpu",
        ddp_backend="gloo" if plan.device == "cpu" and plan.world_size > 1 else None,
        ddp_find_unused_parameters=False,
        ddp_timeout=train.dist_timeout_s,  # a dead or hung rank fails the run after this, never hangs it
        dataloader_num_workers=0,
        dataloader_pin_memory=plan.device == "cuda",
        remove_unused_columns=False,
        label_names=["labels"],
        prediction_loss_only=True,
        report_to="none",
        disable_tqdm=True,
        save_only_model=False,
    )


def _start_gloo_group(timeout_s: int) -> None:
    """Start the CPU (gloo) process group with the run's collective timeout.

    transformers hands ``ddp_timeout`` to accelerate only on GPUs; on the CPU the group
    would get gloo's default of 30 minutes, so a hung rank would stall the run that long.
    accelerate uses a group that already exists.
    """
    from datetime import timedelta

    import torch.distributed as dist

    if dist.is_available() and not dist.is_initialized():
        dist.init_process_group("gloo", timeout=timedelta(seconds=timeout_s))
