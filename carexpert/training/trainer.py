"""The transformers Trainer, changed only where carexpert needs it.

- ``compute_loss``: the output layer only where there is a label, chunked
  (``loss.chunked_lm_loss``) or all at once (``loss.selective_lm_loss``), same loss;
  the standard path for ``head_loss = "full"`` (``loss.resolve_head_loss`` decides).
- ``training_step``: counts real (non-padding) tokens and examples as device
  tensors, so counting never waits for the GPU.
- ``floating_point_ops``: transformers' own estimate (6 x tokens x non-embedding
  parameters), with the parameter count read once instead of per micro-batch.
- ``log``: once per logging step, gathers those counts and each rank's GPU memory
  (one small collective on every rank) into ``log_extras`` for the event callback.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import Trainer

from carexpert.training.collate import real_token_count, sequence_count
from carexpert.training.loss import chunked_lm_loss, selective_lm_loss

LABELLED_LOSSES = {"chunked": chunked_lm_loss, "selective": selective_lm_loss}


class CarexpertTrainer(Trainer):
    def __init__(self, *args: Any, head_loss: str = "selective", **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.labelled_loss = LABELLED_LOSSES.get(head_loss)
        if self.labelled_loss is not None:
            # Make the Trainer count label tokens over the whole accumulated batch
            # (num_items_in_batch), which selective_lm_loss divides by.
            self.model_accepts_loss_kwargs = True
        self._flops_per_token: int | None = None
        self._window_tokens: torch.Tensor | int = 0
        self._window_samples: torch.Tensor | int = 0
        self.log_extras: dict[str, Any] = {}

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.labelled_loss is None:
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
        loss, outputs = self.labelled_loss(model, inputs, num_items_in_batch)
        if num_items_in_batch is not None and self.args.average_tokens_across_devices \
                and self.accelerator.num_processes > 1:
            # num_items_in_batch counts every rank's tokens and DDP averages gradients over ranks.
            loss = loss * self.accelerator.num_processes
        return (loss, outputs) if return_outputs else loss

    def floating_point_ops(self, inputs: dict[str, Any]) -> int:
        if self._flops_per_token is None:
            count = getattr(self.model, "num_parameters", None)
            self._flops_per_token = 6 * count(exclude_embeddings=True) if count else 0
        ids = inputs.get("input_ids")
        return self._flops_per_token * (ids.numel() if ids is not None else 0)

    def training_step(self, model, inputs, num_items_in_batch=None):
        self._window_tokens = self._window_tokens + real_token_count(inputs)
        self._window_samples = self._window_samples + sequence_count(inputs)
        return super().training_step(model, inputs, num_items_in_batch)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and not any(key.startswith("eval_") for key in logs):
            self.log_extras = self._gather_window()
        super().log(logs, start_time)

    def _gather_window(self) -> dict[str, Any]:
        """Tokens and examples since the last log, summed over ranks, and every rank's GPU memory."""
        device = self.args.device
        memory = [0, 0, 0, -1]
        if device.type == "cuda":
            index = device.index if device.index is not None else torch.cuda.current_device()
            memory = [torch.cuda.memory_allocated(index), torch.cuda.memory_reserved(index),
                      torch.cuda.max_memory_allocated(index), index]
        row = torch.tensor([int(self._window_tokens), int(self._window_samples), *memory],
                           dtype=torch.int64, device=device)
        table = self.accelerator.gather(row).reshape(-1, 6).tolist()
        self._window_tokens, self._window_samples = 0, 0
        gpus = [{"rank": rank, "index": int(r[5]), "allocated": r[2], "reserved": r[3], "peak": r[4]}
                for rank, r in enumerate(table) if r[5] >= 0]  # the gather is in rank order
        return {"tokens": sum(r[0] for r in table), "samples": sum(r[1] for r in table), "gpus": gpus}
