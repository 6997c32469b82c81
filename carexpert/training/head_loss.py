"""Output layer + cross-entropy over the labelled positions only, a chunk of rows at a time.

The embedded Gemma 3 270M has a 262,144-token vocabulary: its output layer (168M
weights, tied to the embeddings) is bigger than all 18 decoder layers' linear layers
together, and the standard loss materialises ``tokens x vocab`` logits in 16-bit, an
fp32 copy, the log-softmax and its gradient (about 4 GB for 1,000 labelled tokens).

``labelled_head_loss`` takes the final hidden states already gathered at the labelled
positions and, for ``chunk_rows`` rows at a time, computes the logits, the summed
cross-entropy and, at once, the gradient with respect to the hidden states
(``(softmax - onehot) @ W``, through the softcapping's derivative where the model caps
its logits). Only one chunk's logits exist at any moment, and the backward pass is a
multiplication by the saved gradient: no logits are recomputed or kept. The output
layer must be frozen (it is in LoRA: carexpert never trains it); the matrix multiplies
run in whatever dtype autocast (or the weight) gives, as ``lm_head`` would.
"""

from __future__ import annotations

from typing import Any

LOGIT_ELEMENTS_PER_CHUNK = 2**26  # 256 MiB of fp32 logits per chunk: big enough for full-speed GEMMs


def default_chunk_rows(vocab_size: int) -> int:
    """Rows per chunk so one chunk's fp32 logits stay near ``LOGIT_ELEMENTS_PER_CHUNK``."""
    return max(16, LOGIT_ELEMENTS_PER_CHUNK // max(int(vocab_size), 1))


def labelled_head_loss(hidden: Any, weight: Any, targets: Any, *, chunk_rows: int,
                       softcap: float | None = None) -> Any:
    """Summed cross-entropy of ``hidden @ weight.T`` (optionally softcapped) against ``targets``.

    ``hidden``: [rows, hidden] (the positions whose next token is labelled), ``weight``:
    [vocab, hidden], frozen; ``targets``: [rows] token ids. Returns a 0-d fp32 tensor
    whose gradient flows to ``hidden`` only.
    """

    if weight.requires_grad:
        raise ValueError("labelled_head_loss needs a frozen output layer (its weight has requires_grad=True)")
    return _LabelledHeadCE.apply(hidden, weight, targets, int(chunk_rows), softcap)


def _chunk_loss_and_grad(h, weight, targets, softcap, want_grad: bool):
    """(summed loss, d loss / d h or None) for one chunk of rows.

    One fused log-softmax, then its exponential in place is the softmax the gradient
    needs: three passes over the chunk's logits besides the two matrix multiplies.
    """
    import torch
    import torch.nn.functional as F

    logits = F.linear(h, weight)  # the dtype lm_head would compute in (autocast or the weight's)
    compute = logits.dtype
    logits = logits.to(torch.promote_types(compute, torch.float32))  # at least fp32, as the standard loss
    capped = None
    if softcap:
        capped = torch.tanh(logits / softcap)
        logits = capped * softcap
    logp = torch.log_softmax(logits, dim=-1)
    del logits
    rows = torch.arange(targets.shape[0], device=targets.device)
    loss = -logp[rows, targets].sum()
    if not want_grad:
        return loss, None
    probs = logp.exp_()  # softmax, in place of the log-probabilities
    probs[rows, targets] -= 1.0
    if capped is not None:
        probs.mul_(1.0 - capped * capped)  # d(cap * tanh(x / cap)) / dx
    grad = torch.matmul(probs.to(compute), weight)  # autocast casts the weight as it did for the logits
    return loss, grad.to(h.dtype)


def _make_function():
    import torch

    class LabelledHeadCE(torch.autograd.Function):
        @staticmethod
        def forward(ctx, hidden, weight, targets, chunk_rows, softcap):
            want_grad = hidden.requires_grad
            total = torch.zeros((), dtype=torch.promote_types(hidden.dtype, torch.float32), device=hidden.device)
            grad = torch.empty_like(hidden) if want_grad else None
            with torch.no_grad():
                for start in range(0, hidden.shape[0], chunk_rows):
                    end = min(start + chunk_rows, hidden.shape[0])
                    loss, chunk_grad = _chunk_loss_and_grad(hidden[start:end], weight, targets[start:end], softcap,
                                                            want_grad)
                    total += loss
                    if want_grad:
                        grad[start:end] = chunk_grad
            ctx.save_for_backward(grad if want_grad else hidden.new_empty(0))
            return total

        @staticmethod
        def backward(ctx, grad_output):
            (grad,) = ctx.saved_tensors
            return grad * grad_output.to(grad.dtype), None, None, None, None

    return LabelledHeadCE


class _Lazy:
    """Build the autograd Function on first use, so importing this module never imports torch."""

    _function = None

    @classmethod
    def apply(cls, *args):
        if cls._function is None:
            cls._function = _make_function()
        return cls._function.apply(*args)


_LabelledHeadCE = _Lazy
