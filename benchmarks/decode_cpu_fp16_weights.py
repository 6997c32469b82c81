"""Could the embedded model's layers be read as exact half-size copies? Exactness, and the kernel's speed.

The lean CPU step is bound by reading 401 MB of fp32 layer weights a token. The
embedded model's weights are stored in bf16, so every one of them is also an fp16
number once each row is scaled by a power of two (checked here, weight by weight), and
fbgemm's fp16-weight kernel (``torch.fbgemm_linear_fp16_weight``) widens weights to fp32
and multiplies and sums in fp32: the same products as the fp32 step, from half the bytes.
This times that kernel against fp32 ``F.linear`` on the 72 matrix shapes of one token
(18 layers x q/k/v, o, gate/up, down), at 2 threads and 1, rounds interleaved.

    python benchmarks/decode_cpu_fp16_weights.py --out benchmarks/results/cpu-decode/fp16-weights.json
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

from cpu_rounds import median_ms, medians_over_rounds, print_round, write_result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=15, help="timed passes over the 72 matrices per round")
    args = parser.parse_args(argv)

    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM

    from carexpert.config.schema import Config
    from carexpert.modeling import model_source

    model = AutoModelForCausalLM.from_pretrained(model_source(Config())[0], dtype=torch.float32).eval()
    inexact = total = 0
    for name, parameter in model.named_parameters():
        if parameter.dim() != 2 or "embed" in name:
            continue
        weight = parameter.detach()
        exponent = torch.floor(torch.log2(weight.abs().amax(1).clamp_min(2.0**-100)))
        scaled = weight * torch.pow(2.0, 14 - exponent)[:, None]  # each row's largest into [2^14, 2^15)
        inexact += int((scaled.half().float() != scaled).sum())
        total += weight.numel()

    warnings.simplefilter("ignore")  # fbgemm's fp16 functions are deprecated in torch 2.x
    layers = []
    for layer in model.model.layers:
        attention, mlp = layer.self_attn, layer.mlp
        for weight in (torch.cat([attention.q_proj.weight, attention.k_proj.weight, attention.v_proj.weight]),
                       attention.o_proj.weight, torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]),
                       mlp.down_proj.weight):
            weight = weight.detach().contiguous()
            layers.append((weight, torch.fbgemm_pack_gemm_matrix_fp16(weight), torch.zeros(weight.shape[0]),
                           torch.randn(1, weight.shape[1])))

    def fp32() -> None:
        for weight, _, _, x in layers:
            F.linear(x, weight)

    def fp16() -> None:
        for _, packed, zeros, x in layers:
            torch.fbgemm_linear_fp16_weight(x, packed, zeros)

    default_threads = torch.get_num_threads()
    rounds = []
    with torch.inference_mode():
        for number in range(args.rounds):
            entry = {"load_average_1min": os.getloadavg()[0], "ms": {}}
            for threads in sorted({default_threads, 1}, reverse=True):
                torch.set_num_threads(threads)
                for label, call in (("fp32 F.linear", fp32), ("fbgemm fp16 weights", fp16)):
                    entry["ms"][f"{label}, {threads} thread(s)"] = median_ms(call, args.calls)
            torch.set_num_threads(default_threads)
            rounds.append(entry)
            print_round(number, entry)

    result = {"layer_weights": total, "not_exact_in_fp16_after_row_scale": inexact, "matrices": len(layers),
              "fp32_megabytes": sum(w.numel() for w, *_ in layers) * 4 / 1e6, "torch": torch.__version__,
              "median_ms_over_rounds": medians_over_rounds(rounds),
              "rounds": rounds, "load_average_1min_after": os.getloadavg()[0]}
    write_result(args.out, result, ("not_exact_in_fp16_after_row_scale", "layer_weights", "median_ms_over_rounds"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
