"""Model resolution, loading (4-bit on the CPU), LoRA, adapters and model summaries, on the tiny model."""

from __future__ import annotations

import json
import shutil

import pytest

from carexpert.config import Config
from carexpert.errors import UserError
from carexpert.modeling import (
    apply_lora,
    describe_model,
    load_base_model,
    load_for_inference,
    load_tokenizer,
    model_source,
    pick_device,
    resolve_model,
)
from carexpert.modeling import load as load_module
from carexpert.modeling import resolve as resolve_module


def config_for(base_model: str, **model) -> Config:
    config = Config()
    config.model.base_model = str(base_model)
    for key, value in model.items():
        setattr(config.model, key, value)
    return config


# --- resolution ---------------------------------------------------------------------------

def test_embedded_resolves_into_the_cache_dir(tmp_path):
    resolved = resolve_model(config_for("embedded", cache_dir=str(tmp_path)).model)
    assert resolved.kind == "embedded"
    assert resolved.location.startswith(str(tmp_path / "models" / "gemma-3-270m-"))


def test_embedded_cache_follows_env_when_config_is_empty(tmp_path, monkeypatch):
    monkeypatch.setenv("CAREXPERT_CACHE", str(tmp_path / "env-cache"))
    assert resolve_model(config_for("embedded").model).location.startswith(str(tmp_path / "env-cache"))


def test_local_folder_resolves(tiny_model_dir):
    resolved = resolve_model(config_for(tiny_model_dir).model)
    assert (resolved.kind, resolved.location) == ("folder", str(tiny_model_dir.resolve()))


def test_gguf_file_resolves_and_missing_gguf_is_named(tmp_path):
    gguf = tmp_path / "my-model.Q4_K_M.gguf"
    gguf.write_bytes(b"GGUF")
    resolved = resolve_model(config_for(gguf).model)
    assert (resolved.kind, resolved.location, resolved.gguf_file) == ("gguf", str(tmp_path), gguf.name)
    with pytest.raises(UserError) as caught:
        resolve_model(config_for(tmp_path / "absent.gguf").model)
    assert str(tmp_path / "absent.gguf") in caught.value.render()


@pytest.mark.parametrize("name", ["/no/such/model-folder", "./models/missing", "~/missing-model-xyz"])
def test_missing_local_path_is_named(name):
    with pytest.raises(UserError) as caught:
        resolve_model(config_for(name).model)
    assert "does not exist" in caught.value.message
    assert name.lstrip("./~").split("/")[-1] in caught.value.render()
    assert caught.value.where.startswith("model.base_model")


def test_folder_without_config_json_is_refused(tmp_path):
    with pytest.raises(UserError, match="no config.json"):
        resolve_model(config_for(tmp_path).model)


def test_pickle_only_folder_is_refused_unless_allowed(tmp_path, tiny_model_dir):
    folder = tmp_path / "pickled"
    folder.mkdir()
    shutil.copy(tiny_model_dir / "config.json", folder / "config.json")
    (folder / "pytorch_model.bin").write_bytes(b"not really a pickle")
    with pytest.raises(UserError) as caught:
        resolve_model(config_for(folder).model)
    text = caught.value.render()
    assert "pickle" in text and "pytorch_model.bin" in text and "allow_pickle = true" in text
    assert resolve_model(config_for(folder, allow_pickle=True).model).kind == "folder"


def test_folder_without_any_weights_is_refused(tmp_path, tiny_model_dir):
    shutil.copy(tiny_model_dir / "config.json", tmp_path / "config.json")
    with pytest.raises(UserError, match="no model weights"):
        resolve_model(config_for(tmp_path).model)


def test_hub_id_offline_gives_the_plain_message(monkeypatch):
    monkeypatch.setattr(resolve_module, "hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setattr(resolve_module, "hub_cached", lambda repo, revision=None: False)
    with pytest.raises(UserError) as caught:
        resolve_model(config_for("mistralai/Mistral-7B-v0.1").model)
    assert caught.value.message == ('cannot reach the Hugging Face hub to download mistralai/Mistral-7B-v0.1; '
                                    'give a local path (base_model = "/path/to/model") or \'embedded\'')


def test_hub_id_in_local_cache_loads_offline(monkeypatch):
    monkeypatch.setattr(resolve_module, "hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setattr(resolve_module, "hub_cached", lambda repo, revision=None: True)
    resolved = resolve_model(config_for("mistralai/Mistral-7B-v0.1", revision="v1").model)
    assert (resolved.kind, resolved.local_only, resolved.revision) == ("hub", True, "v1")
    monkeypatch.setattr(load_module, "resolve_model", lambda cfg: resolved)
    _, kwargs, _ = model_source(config_for("mistralai/Mistral-7B-v0.1"))
    assert kwargs == {"revision": "v1", "local_files_only": True}


def test_hf_hub_offline_env_means_unreachable(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_module.hub_reachable() is False


def test_trust_remote_code_only_when_turned_on(tiny_model_dir):
    _, kwargs, _ = model_source(config_for(tiny_model_dir))
    assert "trust_remote_code" not in kwargs
    _, kwargs, _ = model_source(config_for(tiny_model_dir, trust_remote_code=True))
    assert kwargs["trust_remote_code"] is True


class Recorded(Exception):
    pass


def test_safetensors_enforced_unless_pickle_allowed(tiny_model_dir, monkeypatch):
    import transformers

    seen = []

    def record(name, **kwargs):
        seen.append(kwargs)
        raise Recorded

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", record)
    for allow in (False, True):
        with pytest.raises(Recorded):
            load_base_model(config_for(tiny_model_dir, quantization="none", allow_pickle=allow), for_training=True)
    assert seen[0]["use_safetensors"] is True and "use_safetensors" not in seen[1]
    assert seen[0]["attn_implementation"] == "sdpa" and seen[0]["device_map"] == {"": pick_device()}
    assert "trust_remote_code" not in seen[0]


def test_out_of_memory_while_loading_becomes_advice(tiny_model_dir, monkeypatch):
    import torch
    import transformers

    def oom(name, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", oom)
    with pytest.raises(UserError) as caught:
        load_base_model(config_for(tiny_model_dir), for_training=True)
    assert "not enough memory" in caught.value.message and "nf4" in caught.value.fix


# --- loading, LoRA and summaries ----------------------------------------------------------

def expected_param_count(model_dir) -> int:
    """Parameters of the tiny Llama, counted from its config.json alone."""
    cfg = json.loads((model_dir / "config.json").read_text())
    hidden, inter, layers, vocab = (cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"],
                                    cfg["vocab_size"])
    kv = cfg["num_key_value_heads"] * (hidden // cfg["num_attention_heads"])
    per_layer = 2 * hidden * hidden + 2 * hidden * kv + 3 * hidden * inter + 2 * hidden
    return vocab * hidden + layers * per_layer + hidden  # tied embeddings count once


def lora_param_count(model_dir, r: int) -> int:
    cfg = json.loads((model_dir / "config.json").read_text())
    hidden = cfg["hidden_size"]
    kv = cfg["num_key_value_heads"] * (hidden // cfg["num_attention_heads"])
    per_layer = r * (hidden + hidden) * 2 + r * (hidden + kv) * 2  # q, o: hidden->hidden; k, v: hidden->kv
    return cfg["num_hidden_layers"] * per_layer


def test_tokenizer_padding_side_and_pad_token(tiny_model_dir):
    config = config_for(tiny_model_dir)
    assert load_tokenizer(config).padding_side == "right"
    left = load_tokenizer(config, padding_side="left")
    assert left.padding_side == "left" and left.pad_token is not None
    with pytest.raises(ValueError):
        load_tokenizer(config, padding_side="middle")


def test_unquantized_counts_match_an_independent_count(tiny_model_dir):
    model = load_base_model(config_for(tiny_model_dir, quantization="none"), for_training=True)
    summary = describe_model(model)
    expected = expected_param_count(tiny_model_dir)
    assert summary["total_params"] == expected
    assert summary["trainable_params"] == expected and summary["trainable_percent"] == 100.0
    assert summary["quantized_layers"] == 0
    assert summary["footprint_bytes"] == model.get_memory_footprint()


def test_nf4_on_cpu_has_4bit_layers_and_lora_trains(tiny_model_dir):
    import bitsandbytes as bnb
    import torch

    config = config_for(tiny_model_dir, quantization="nf4")
    config.lora.r = 8
    config.lora.target_modules = ["q_proj", "k_proj", "v_proj", "o_proj"]  # the seed's targets (lora_param_count)
    model = load_base_model(config, for_training=True)
    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    cfg = json.loads((tiny_model_dir / "config.json").read_text())
    assert len(layers) == 7 * cfg["num_hidden_layers"]  # q k v o gate up down per layer
    assert all(layer.weight.dtype == torch.uint8 and layer.weight.quant_state.quant_type == "nf4"
               for layer in layers)
    assert layers[0].weight.quant_state.nested  # double quantization is on by default

    before = describe_model(model)
    assert before["total_params"] == expected_param_count(tiny_model_dir)  # packed weights counted in full
    assert before["quantized_layers"] == len(layers)
    unquantized = load_base_model(config_for(tiny_model_dir, quantization="none"), for_training=True)
    assert before["footprint_bytes"] < describe_model(unquantized)["footprint_bytes"]

    peft_model = apply_lora(model, config)
    after = describe_model(peft_model)
    lora = lora_param_count(tiny_model_dir, r=8)
    assert after["trainable_params"] == lora
    assert after["total_params"] == expected_param_count(tiny_model_dir) + lora
    assert after["quantized_layers"] == len(layers)  # peft's wrappers are not counted again
    assert after["trainable_percent"] == pytest.approx(100 * lora / after["total_params"])

    tokenizer = load_tokenizer(config)
    batch = tokenizer(["The Camry makes 203 horsepower."], return_tensors="pt")
    loss = peft_model(**batch, labels=batch["input_ids"]).loss
    loss.backward()
    grads = {name: p.grad for name, p in peft_model.named_parameters() if p.requires_grad}
    assert torch.isfinite(loss)
    assert all("lora_" in name for name in grads)
    assert any(g is not None and g.abs().sum() > 0 for name, g in grads.items() if "lora_B" in name)


def test_frozen_layers_keep_their_dtype_unless_upcast_is_asked(tiny_model_dir):
    import torch

    config = config_for(tiny_model_dir, quantization="nf4")
    config.lora.r = 4
    norm_dtypes = {p.dtype for n, p in apply_lora(load_base_model(config, True), config).named_parameters()
                   if "norm" in n}
    assert norm_dtypes == {torch.bfloat16}
    config.train.upcast_frozen = True
    norm_dtypes = {p.dtype for n, p in apply_lora(load_base_model(config, True), config).named_parameters()
                   if "norm" in n}
    assert norm_dtypes == {torch.float32}


def test_unknown_lora_target_is_a_user_error(tiny_model_dir):
    config = config_for(tiny_model_dir, quantization="none")
    config.lora.target_modules = ["q_proj", "query_key_value"]
    with pytest.raises(UserError) as caught:
        apply_lora(load_base_model(config, True), config)
    assert caught.value.where == "lora.target_modules"
    assert "query_key_value" in caught.value.message and "v_proj" in caught.value.fix


@pytest.fixture
def adapter_dir(tiny_model_dir, tmp_path):
    """A LoRA adapter with non-zero weights (a fresh one would be a no-op) saved as safetensors."""
    import torch

    config = config_for(tiny_model_dir, quantization="none")
    config.lora.r = 4
    torch.manual_seed(1)  # lora_A's initialisation too: the adapter must not depend on what ran before
    model = apply_lora(load_base_model(config, True), config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    folder = tmp_path / "adapter"
    model.save_pretrained(folder)
    return folder


def test_adapter_changes_outputs_and_merging_keeps_them(tiny_model_dir, adapter_dir):
    import torch

    config = config_for(tiny_model_dir, quantization="none")
    base, tokenizer = load_for_inference(config)
    tuned, _ = load_for_inference(config, adapter_dir)
    merged, _ = load_for_inference(config, adapter_dir, merge=True)
    assert tokenizer.padding_side == "left"
    assert type(tuned).__name__ == "PeftModelForCausalLM"
    assert not any("lora" in name for name, _ in merged.named_parameters())
    ids = tokenizer(["A turbocharger uses exhaust gas"], return_tensors="pt")
    with torch.no_grad():
        logits = [m(**ids).logits.float() for m in (base, tuned, merged)]
    assert (logits[0] - logits[1]).abs().max() > 0.05
    assert torch.allclose(logits[1], logits[2], atol=0.1, rtol=0.05)  # merged is bf16, tuned fp32 on the CPU


def test_merge_reloads_a_4bit_base_unquantized(tiny_model_dir, adapter_dir):
    config = config_for(tiny_model_dir, quantization="nf4")
    tuned, _ = load_for_inference(config, adapter_dir)
    assert describe_model(tuned)["quantized_layers"] > 0
    merged, _ = load_for_inference(config, adapter_dir, merge=True)
    assert describe_model(merged)["quantized_layers"] == 0
    assert {p.dtype for p in merged.parameters()} == {__import__("torch").bfloat16}


def test_bad_adapter_folders_are_user_errors(tiny_model_dir, adapter_dir, tmp_path):
    config = config_for(tiny_model_dir, quantization="none")
    with pytest.raises(UserError, match="adapter_config.json missing"):
        load_for_inference(config, tmp_path / "nowhere")
    pickled = tmp_path / "pickled-adapter"
    pickled.mkdir()
    shutil.copy(adapter_dir / "adapter_config.json", pickled)
    (pickled / "adapter_model.bin").write_bytes(b"pickle")
    with pytest.raises(UserError, match="pickle"):
        load_for_inference(config, pickled)
