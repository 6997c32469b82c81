"""The output head on the CPU: an int8 screen with an error bound, then fp32 for the few tokens that can win.

Why: at batch 1 on a CPU the embedded model's output head (262,144 x 640 fp32, 671 MB)
is half of every token's time, and it is read from memory once per token. Greedy
decoding needs only the largest penalized logit, and top-k sampling only the k
largest; every other logit is read and thrown away.

So the head is read once more compactly: int8 rows with one fp32 scale each (168 MB),
multiplied by int8 activations in oneDNN's int8 matrix multiply
(``torch.ops.onednn.qlinear_pointwise``: exact int32 dot products, fp32 output). One
int8 copy of the activation would be too coarse (the final hidden state has outliers
of ~60 beside a typical ~5), so the activation goes in as two rows: ``h`` and its
rounding remainder scaled up by a power of two ``c``; ``row 0 + row 1 / c`` is then
the product with an activation ``x~`` within ~1/256 of a quantization step of ``h``,
for the price of one pass over the weights. With ``w~_j`` the dequantized row and
``d_j = w_j - w~_j`` its residual (both measured at load), every screened logit
``a_j`` is within

    e_j = |h| |d_j| + (|h - x~| + 2^-20 |h| + 2^-16 (|x~_0| + |x~_1| / c)) |w~_j| + 1e-5

of the fp32 logit ``h . w_j`` (Cauchy-Schwarz for the two residuals; a wide allowance
for fp32 rounding of the scales). The repetition penalty is monotone, so
``[a - e, a + e]`` maps to an interval around each penalized logit. Every token whose
upper end reaches the k-th largest lower end is a candidate, and only those rows are
multiplied in fp32: the true top k are always among them (a token left out is below k
tokens for certain). The answer is the fp32 head's, token for token, except that the
candidates' fp32 logits come from a smaller matrix product than the full head's and
can differ from it in the last bit.

On the embedded model the screen leaves a handful to a few hundred candidates a token
(docs/benchmarks.md). Sampling without top-k needs every logit and takes the fp32 head.
At construction the kernel is checked on extreme int8 values against exact integer
arithmetic (a CPU whose int8 path saturates is refused: ``ScreenUnavailable``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from carexpert.chat.decode_step import penalized

RELATIVE_SCALES = 2.0**-16   # >> the fp32 roundings of s * scale_j * (int32 dot) and of row 0 + row 1 / c
RELATIVE_ACTIVATION = 2.0**-20  # >> the fp32 rounding in computing x~ and h - x~
ABSOLUTE = 1e-5
SLICE_ROWS = 16384
ZERO_POINT = 128  # activations as uint8 around 128: -127..127 in use


class ScreenUnavailable(RuntimeError):
    """This machine's int8 kernel is missing or not exact; the message says why."""


def unsupported_reason(model: Any) -> str | None:
    """Why ``model``'s output head cannot be screened (None when it can)."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None or type(head) is not torch.nn.Linear:
        return f"output head is {type(head).__name__}, not a plain Linear"
    if head.bias is not None:
        return "output head has a bias"
    if head.weight.dtype != torch.float32 or head.weight.device.type != "cpu":
        return f"output head is {head.weight.dtype} on {head.weight.device.type}, not float32 on the CPU"
    text = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    if getattr(text, "final_logit_softcapping", None):
        return "final logit soft-capping"
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.onednn, "qlinear_pointwise")):
        return "no oneDNN int8 matrix multiply in this torch"
    return None


def _int8_product(quantized_x: torch.Tensor, scale: float, packed: torch.Tensor, row_scales: torch.Tensor,
                  zero_points: torch.Tensor) -> torch.Tensor:
    """fp32 ``scale * row_scales[j] * sum_i (quantized_x[:, i] - ZERO_POINT) * w[j, i]`` for every packed row j."""
    return torch.ops.onednn.qlinear_pointwise(quantized_x, scale, ZERO_POINT, packed, row_scales, zero_points, None,
                                              1.0, 0, torch.float32, "none", [], "")


def check_int8_kernel() -> None:
    """Raise ``ScreenUnavailable`` unless the int8 kernel sums extreme values exactly (no int16 saturation)."""
    generator = torch.Generator().manual_seed(0)
    weights = torch.randint(-127, 128, (64, 640), dtype=torch.int8, generator=generator)
    weights[0], weights[1] = 127, -127
    x = torch.randint(1, 256, (2, 640), dtype=torch.uint8, generator=generator)
    x[0] = 255
    ones = torch.ones(64)
    try:
        got = _int8_product(x, 1.0, torch.ops.onednn.qlinear_prepack(weights, [2, 640]), ones,
                            torch.zeros(64, dtype=torch.long))
    except Exception as error:  # any refusal means: no screen on this machine
        raise ScreenUnavailable(f"oneDNN int8 matrix multiply failed ({type(error).__name__}: {error})") from error
    exact = (x.long() - ZERO_POINT) @ weights.long().T  # at most 640 * 127 * 127 < 2^24: exact in fp32 too
    if not torch.equal(got, exact.float()):
        raise ScreenUnavailable("oneDNN's int8 matrix multiply is not exact on this CPU (saturating int16 sums)")


class ScreenedHead:
    """Logits of the tokens that can be chosen, exact in fp32; -inf for every other token."""

    def __init__(self, weight: torch.Tensor):
        check_int8_kernel()
        with torch.inference_mode():
            self.weight = weight.detach()  # the fp32 head itself, shared with the model (no copy)
            rows_total, width = self.weight.shape
            self.scale = torch.empty(rows_total)
            quantized = torch.empty(self.weight.shape, dtype=torch.int8)
            self.residual_norm = torch.empty(rows_total)
            self.row_norm = torch.empty(rows_total)
            for start in range(0, rows_total, SLICE_ROWS):  # in slices: no full-size fp32 temporaries
                rows = slice(start, start + SLICE_ROWS)
                block = self.weight[rows]
                scale = (block.abs().amax(1) / 127).clamp_min(torch.finfo(torch.float32).tiny)
                rounded = (block / scale[:, None]).round().clamp(-127, 127)
                dequantized = rounded * scale[:, None]
                self.scale[rows], quantized[rows] = scale, rounded.to(torch.int8)
                self.row_norm[rows] = dequantized.norm(dim=1)
                self.residual_norm[rows] = (block - dequantized).norm(dim=1)
            self.packed = torch.ops.onednn.qlinear_prepack(quantized, [2, width])
            self.zero_points = torch.zeros(rows_total, dtype=torch.long)
        self.candidate_count = 0  # candidates in the last call (benchmarks report them)

    def screen(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Approximate logits (1, vocab) of ``hidden`` (1, hidden) and each one's error bound."""
        top = float(hidden.abs().max())
        if top == 0.0:  # every logit is exactly 0
            zeros = hidden.new_zeros(1, self.weight.shape[0])
            return zeros, zeros + ABSOLUTE
        step = top / 127
        first = (hidden / step).round().clamp(-127, 127)
        remainder = hidden - first * step
        spread = float(remainder.abs().max())
        factor = 2.0 ** math.floor(math.log2(top / spread)) if spread > 0 else 1.0  # row 1 within row 0's range
        second = (remainder * factor / step).round().clamp(-127, 127)
        activation = (first + second / factor) * step  # what the screen multiplies the weights by
        rows = _int8_product(torch.cat([first, second]).add_(ZERO_POINT).to(torch.uint8), step, self.packed,
                             self.scale, self.zero_points)
        approximate = rows[:1] + rows[1:] / factor
        size = hidden.norm()
        # |row 0| + |row 1| / c <= |x~| |w~_j| (Cauchy-Schwarz), so the scales' rounding joins the |w~_j| term
        slack = (hidden - activation).norm() + RELATIVE_ACTIVATION * size + RELATIVE_SCALES * (
            (first * step).norm() + (second * step).norm() / factor)
        error = torch.addcmul(self.row_norm * slack, self.residual_norm, size).add_(ABSOLUTE)
        return approximate, error[None]

    def candidates(self, hidden: torch.Tensor, seen: torch.Tensor, banned: torch.Tensor, penalty: torch.Tensor,
                   keep: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The tokens that can be among the top ``keep`` penalized logits, and their fp32 logits.

        Returns ``(rows, logits)``: token ids (C,) in increasing order, C >= ``keep``, and
        their float32 logits (1, C), exact like the full head's (the penalty and
        ``banned`` not applied: the caller applies them to the candidates, as to a full
        row of logits). ``hidden`` is the final hidden state (1, hidden); ``seen``/``banned``
        and ``penalty`` are the decoder's repetition-penalty mask, suppressed tokens and
        penalty (a 0-d or 1-element tensor).
        """
        hidden = hidden.reshape(1, -1).float()
        approximate, error = self.screen(hidden)
        low, high = approximate - error, approximate + error
        seen_rows = seen[0].nonzero()[:, 0]  # the penalty is monotone: penalize the interval's ends
        low[0, seen_rows] = penalized(low[0, seen_rows], penalty)
        high[0, seen_rows] = penalized(high[0, seen_rows], penalty)
        banned_rows = banned[0].nonzero()[:, 0]
        low[0, banned_rows] = float("-inf")
        threshold = low.max() if keep == 1 else low.topk(keep, dim=-1).values[0, -1]
        rows = (high[0] >= threshold).nonzero()[:, 0]
        self.candidate_count = rows.numel()
        return rows, F.linear(hidden, self.weight.index_select(0, rows))

    def logits(self, hidden: torch.Tensor, seen: torch.Tensor, banned: torch.Tensor, penalty: torch.Tensor,
               keep: int) -> torch.Tensor:
        """A full (1, vocab) row: ``candidates``' fp32 logits in place, -inf for every other token."""
        rows, exact = self.candidates(hidden, seen, banned, penalty, keep)
        return torch.full((1, self.weight.shape[0]), float("-inf")).index_copy_(1, rows, exact)
