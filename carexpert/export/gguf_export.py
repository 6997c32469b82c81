"""Convert a merged export (safetensors) to one GGUF file with the ``gguf`` package's writer.

The ``gguf`` package ships the file format (writer, tensor-name map, key names) but not
llama.cpp's ``convert_hf_to_gguf.py``, so the per-architecture rules live here, for the
two architectures carexpert uses:

- Llama (``LlamaForCausalLM``): q/k projection rows are permuted into llama.cpp's
  rotary layout; a byte-level BPE tokenizer is written as ``gpt2`` with its merges.
- Gemma 3 text (``Gemma3ForCausalLM``, e.g. the embedded 270M): RMSNorm weights are
  stored as ``w + 1``; the sentencepiece vocabulary is written as ``llama`` with tokens
  in merge order.

Anything else (other architectures, RoPE scaling, other tokenizer kinds) is refused
with a message that points to llama.cpp's converter. Weights are written unquantized
(2-D tensors in BF16, F16 or F32 like the export, 1-D tensors in F32); quantize later
with llama.cpp's ``llama-quantize`` if wanted. The file is staged as ``NAME.tmp.gguf``,
loaded back with transformers (``from_pretrained(dir, gguf_file=...)``), its greedy
answers compared with the adapter's, and renamed to its final name only if they match.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from carexpert.errors import UserError
from carexpert.export.verify import Generated, PromptCheck, compare, greedy_generate

SUPPORTED = {"LlamaForCausalLM": "llama", "Gemma3ForCausalLM": "gemma3"}
ELSEWHERE = ("convert the merged folder with llama.cpp's convert_hf_to_gguf.py "
             "(https://github.com/ggml-org/llama.cpp), which knows every architecture")
# llama.cpp token types
NORMAL, CONTROL, USER_DEFINED, BYTE = 1, 3, 4, 6


def _unsupported(message: str, where: Path) -> UserError:
    return UserError(f"cannot write GGUF: {message}", where=str(where), fix=ELSEWHERE)


def _rope_theta(config: Any, arch: str, where: Path) -> float:  # a transformers model config
    """The base frequency, refusing RoPE scaling, which this converter does not carry over."""
    params = getattr(config, "rope_parameters", None) or {}
    if arch == "gemma3":
        full, local = params.get("full_attention", {}), params.get("sliding_attention", {})
        if full.get("rope_type", "default") != "default" or local.get("rope_type", "default") != "default":
            raise _unsupported("RoPE scaling is not supported here", where)
        if local.get("rope_theta", 10_000.0) != 10_000.0:
            raise _unsupported("a local RoPE base other than 10000 cannot be stored for transformers", where)
        return float(full.get("rope_theta", 1_000_000.0))
    if params.get("rope_type", "default") != "default":
        raise _unsupported(f"RoPE scaling {params.get('rope_type')!r} is not supported here", where)
    return float(params.get("rope_theta", getattr(config, "rope_theta", 10_000.0)))


def _write_hparams(writer: Any, config: Any, arch: str, where: Path) -> None:  # a transformers model config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(_rope_theta(config, arch, where))
    writer.add_vocab_size(config.vocab_size)
    if arch == "llama":
        writer.add_rope_dimension_count(head_dim)
    else:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
        writer.add_sliding_window(config.sliding_window)


def _tokenizer_metadata(writer: Any, model_dir: Path, arch: str, vocab_size: int) -> None:
    """Vocabulary, merges, token types and special ids, as llama.cpp names them."""
    from transformers import AutoTokenizer
    from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_PRE_TOKENIZER_SPLITS

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    model = spec["model"]
    vocab = tokenizer.get_vocab()
    if len(vocab) > vocab_size:
        raise _unsupported(f"the tokenizer has {len(vocab)} tokens, the model {vocab_size}", model_dir)
    by_id = {index: token for token, index in vocab.items()}
    tokens = [by_id.get(index, f"[PAD{index}]") for index in range(vocab_size)]
    added = {token.content: token.special for token in tokenizer.added_tokens_decoder.values()}
    types = [CONTROL if added.get(t) else USER_DEFINED if t in added else
             BYTE if len(t) == 6 and t.startswith("<0x") and t.endswith(">") else NORMAL for t in tokens]

    pre_spec = json.dumps(spec.get("pre_tokenizer") or {})
    if arch == "gemma3":
        if model.get("type") != "BPE" or not model.get("byte_fallback"):
            raise _unsupported("expected Gemma's sentencepiece-style BPE tokenizer", model_dir)
        writer.add_tokenizer_model("llama")
        writer.add_tokenizer_pre("default")
        # Gemma merges follow token order; llama.cpp ranks sentencepiece merges by score.
        writer.add_token_scores([-1000.0 if ty == CONTROL else -float(i) for i, ty in enumerate(types)])
    elif model.get("type") == "BPE" and "ByteLevel" in pre_spec:
        pre = "default"
        for name, regex in GGUF_PRE_TOKENIZER_SPLITS.items():
            if json.dumps(regex)[1:-1] in pre_spec:
                pre = name
                break
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(pre)
        writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])])
    else:
        raise _unsupported(f"tokenizer kind {model.get('type')!r} is not supported here (byte-level BPE is)",
                           model_dir)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    for name, setter in (("bos", writer.add_bos_token_id), ("eos", writer.add_eos_token_id),
                         ("unk", writer.add_unk_token_id), ("pad", writer.add_pad_token_id)):
        token_id = getattr(tokenizer, f"{name}_token_id", None)
        if isinstance(token_id, int):
            setter(token_id)
    probe = tokenizer("a")["input_ids"]
    writer.add_add_bos_token(bool(probe) and probe[0] == tokenizer.bos_token_id)
    writer.add_add_eos_token(bool(probe) and probe[-1] == tokenizer.eos_token_id and len(probe) > 1)


def _permute_rotary(weight: Any, heads: int) -> Any:
    """HF's rotate-half q/k rows into llama.cpp's interleaved order (its ``LlamaModel.permute``)."""
    return weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(
        weight.shape)


def _tensor_array(tensor: Any, dtype: str) -> tuple[Any, Any]:
    """(numpy array, ggml type): 1-D in F32, 2-D in the export's dtype (BF16 bits kept exactly)."""
    import numpy as np
    import torch
    from gguf import GGMLQuantizationType

    if tensor.ndim < 2 or dtype == "float32":
        return tensor.to(torch.float32).numpy(), GGMLQuantizationType.F32
    if dtype == "float16":
        return tensor.to(torch.float16).numpy(), GGMLQuantizationType.F16
    bits = tensor.to(torch.bfloat16).contiguous().view(torch.int16).numpy()
    return bits.view(np.uint8), GGMLQuantizationType.BF16


def write_gguf(model_dir: str | Path, out_file: str | Path) -> Path:
    """Write ``out_file`` from the merged model folder ``model_dir`` (the caller stages and publishes)."""
    import torch
    from gguf import MODEL_ARCH, MODEL_ARCH_NAMES, GGUFWriter, LlamaFileType, get_tensor_name_map
    from safetensors import safe_open
    from transformers import AutoConfig

    model_dir, out_file = Path(model_dir), Path(out_file)
    config = AutoConfig.from_pretrained(model_dir)
    architecture = (config.architectures or ["?"])[0]
    arch = SUPPORTED.get(architecture)
    if arch is None:
        raise _unsupported(f"architecture {architecture} (supported: {', '.join(SUPPORTED)})", model_dir)
    enum = next(key for key, name in MODEL_ARCH_NAMES.items() if name == arch)
    names = get_tensor_name_map(MODEL_ARCH(enum), config.num_hidden_layers)
    dtype = str(getattr(config, "dtype", None) or "bfloat16").replace("torch.", "")
    writer = GGUFWriter(out_file, arch)
    try:
        writer.add_name(model_dir.name.replace("mistral", "model"))  # transformers reads "mistral" in the name
        writer.add_file_type({"bfloat16": LlamaFileType.MOSTLY_BF16, "float16": LlamaFileType.MOSTLY_F16}.get(
            dtype, LlamaFileType.ALL_F32))
        _write_hparams(writer, config, arch, model_dir)
        _tokenizer_metadata(writer, model_dir, arch, config.vocab_size)
        for file in sorted(model_dir.glob("*.safetensors")):
            with safe_open(file, framework="pt") as weights:
                for name in weights.keys():  # noqa: SIM118 - safetensors' safe_open has keys(), not __iter__
                    gguf_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
                    if gguf_name is None:
                        raise _unsupported(f"no GGUF name for tensor {name}", model_dir)
                    tensor = weights.get_tensor(name)
                    if arch == "llama" and name.endswith(("q_proj.weight", "k_proj.weight")):
                        heads = config.num_attention_heads if "q_proj" in name else config.num_key_value_heads
                        tensor = _permute_rotary(tensor, heads)
                    if arch == "gemma3" and name.endswith("norm.weight"):
                        tensor = tensor.to(torch.float32) + 1
                    array, ggml_type = _tensor_array(tensor, dtype)
                    writer.add_tensor(gguf_name, array, raw_dtype=ggml_type)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    return out_file


def export_gguf(model_dir: str | Path, out_file: str | Path, reference: list[Generated], system_prompt: str | None,
                *, force: bool = False, progress: Callable[[str], None] | None = None) -> list[PromptCheck]:
    """Write the GGUF next to its final name, verify it against ``reference``, publish it only if it matches."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    say = progress or (lambda message: None)
    out_file = Path(out_file)
    if out_file.exists() and not force:
        raise UserError("already exists", where=str(out_file), fix="pass --force to replace it, or pick another path")
    if not out_file.parent.is_dir():
        raise UserError("the parent folder does not exist", where=str(out_file.parent), fix="create it first")
    staged = out_file.with_name(out_file.stem + ".tmp.gguf")
    say(f"writing {staged}")
    try:
        write_gguf(model_dir, staged)
        say("loading the GGUF back with transformers")
        dtype = torch.float32 if not torch.cuda.is_available() else torch.bfloat16
        model = AutoModelForCausalLM.from_pretrained(staged.parent, gguf_file=staged.name, dtype=dtype)
        model = model.to("cuda" if torch.cuda.is_available() else "cpu").eval()  # type: ignore[arg-type]  # transformers types .to oddly
        tokenizer = AutoTokenizer.from_pretrained(staged.parent, gguf_file=staged.name)
        checks = compare(reference, greedy_generate(model, tokenizer, system_prompt), tokenizer)
        del model
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    if all(check.ok for check in checks):
        os.replace(staged, out_file)
    return checks
