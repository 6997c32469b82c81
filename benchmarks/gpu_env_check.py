"""First thing on the GPU machine: versions, the card, and whether each piece we rely on runs.

Checks bitsandbytes 4-bit matmul (forward and backward through a LoRA-like path), the
paged 8-bit optimizer, PyTorch's variable-length flash attention with its backward, and
the packages carexpert imports. Prints one line per check and writes JSON.
"""

from __future__ import annotations

import importlib
import json
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import train_common as tc


def check(name: str, results: dict, fn) -> None:
    try:
        results[name] = {"ok": True, "detail": fn()}
    except Exception as error:  # noqa: BLE001 - a check reports, it never stops the others
        results[name] = {"ok": False, "detail": f"{type(error).__name__}: {error}",
                         "traceback": traceback.format_exc(limit=5)}
    print(f"{name}: {'ok' if results[name]['ok'] else 'FAILED'} {results[name]['detail']}", flush=True)


def bnb_matmul():
    import bitsandbytes as bnb
    import torch

    layer = bnb.nn.Linear4bit(1024, 1024, bias=False, compute_dtype=torch.bfloat16, quant_type="nf4").cuda()
    x = torch.randn(8, 1024, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    y = layer(x)
    y.float().sum().backward()
    return f"bnb {bnb.__version__}: out {tuple(y.shape)}, input grad norm {x.grad.float().norm().item():.3f}"


def paged_optimizer():
    import bitsandbytes as bnb
    import torch

    param = torch.nn.Parameter(torch.randn(4096, 64, device="cuda"))
    opt = bnb.optim.PagedAdamW8bit([param], lr=1e-3)
    param.grad = torch.randn_like(param)
    opt.step()
    return "PagedAdamW8bit step ok"


def varlen(window: int | None = None):
    import torch

    from carexpert.modeling.attention import varlen_attention_forward

    lengths = [100, 250, 37]
    cu = torch.tensor([0, 100, 350, 387], dtype=torch.int32, device="cuda")
    q = torch.randn(387, 32, 128, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    k = torch.randn(387, 8, 128, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    v = torch.randn(387, 8, 128, device="cuda", dtype=torch.bfloat16, requires_grad=True)

    class Module:
        pass

    out, _ = varlen_attention_forward(
        Module(), q.transpose(0, 1).unsqueeze(0), k.transpose(0, 1).unsqueeze(0), v.transpose(0, 1).unsqueeze(0),
        None, scaling=128**-0.5, cu_seq_lens_q=cu, max_length_q=max(lengths), sliding_window=window,
        position_ids=torch.cat([torch.arange(n, device="cuda") for n in lengths])[None])
    out.float().sum().backward()
    # Reference: SDPA per sequence, causal, GQA expanded.
    errors = []
    start = 0
    for length in lengths:
        qs = q[start:start + length].transpose(0, 1).float()
        ks = k[start:start + length].transpose(0, 1).float().repeat_interleave(4, 0)
        vs = v[start:start + length].transpose(0, 1).float().repeat_interleave(4, 0)
        allowed = torch.ones(length, length, dtype=torch.bool, device="cuda").tril()
        if window:  # a key at most window - 1 tokens back, as transformers' sliding-window mask
            allowed = allowed.triu(1 - window)
        ref = torch.nn.functional.scaled_dot_product_attention(qs, ks, vs, attn_mask=allowed).transpose(0, 1)
        got = out[0, start:start + length].float()
        errors.append(((got - ref).norm() / ref.norm()).item())
        start += length
    from carexpert.modeling.attention import varlen_parameters

    where = (f" (sliding window {window}; this kernel " + ("takes window_size" if "window_size" in varlen_parameters()
             else "has no window_size: sliding layers with longer examples run SDPA") + ")") if window else ""
    return f"varlen_attn{where} forward rel. error per sequence {[round(e, 5) for e in errors]}, backward ok"


def packages():
    found = {}
    for name in ("datasets", "pyarrow", "fsspec", "tomlkit", "tomli_w", "liger_kernel", "tensorboard", "psutil",
                 "pynvml", "rich"):
        try:
            module = importlib.import_module(name)
            found[name] = getattr(module, "__version__", "present")
        except Exception as error:  # noqa: BLE001
            found[name] = f"MISSING ({type(error).__name__}: {error})"
    return found


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("env.json")
    results: dict = {"environment": tc.environment()}
    print(json.dumps(results["environment"], indent=1), flush=True)
    check("bitsandbytes_4bit", results, bnb_matmul)
    check("paged_adamw_8bit", results, paged_optimizer)
    check("varlen_attention", results, varlen)
    check("varlen_attention_sliding_window", results, lambda: varlen(window=64))
    check("packages", results, packages)
    tc.write_json(out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
