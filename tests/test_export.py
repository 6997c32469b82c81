"""Merged export and GGUF on the tiny model: round trip, verification that can fail, atomic publishing."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from carexpert.chat import ChatSession
from carexpert.config import Config
from carexpert.errors import UserError
from carexpert.export import export_merged
from carexpert.export.gguf_export import export_gguf
from carexpert.export.verify import compare, greedy_generate


def make_adapter(base_dir, out_dir, scale: float = 0.5):
    """A LoRA adapter on q/k/v/o with random non-zero B, so it really changes the model."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)  # LoRA A comes from the global RNG: make it independent of earlier tests
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    lora = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                                            target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, weight in lora.named_parameters():
            if "lora_B" in name:
                weight.copy_(torch.randn(weight.shape, generator=generator) * scale)
    lora.save_pretrained(out_dir)
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir, tmp_path_factory):
    return make_adapter(tiny_model_dir, tmp_path_factory.mktemp("adapter"))


@pytest.fixture(scope="module")
def config(tiny_model_dir):
    base = Config()
    return dataclasses.replace(base, model=dataclasses.replace(base.model, base_model=str(tiny_model_dir),
                                                                quantization="none"))


@pytest.fixture(scope="module")
def exported(config, adapter_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("exports") / "merged"
    return export_merged(config, adapter_dir, out)


def test_export_round_trip_gives_the_adapters_greedy_output(exported, config, tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert exported.ok and exported.out.name == "merged"
    assert not any(c.status == "mismatch" for c in exported.checks)
    assert sum(c.status == "match" for c in exported.checks) >= 3
    assert not exported.out.with_name("merged.tmp").exists()
    for name in ("model.safetensors", "config.json", "generation_config.json", "tokenizer.json",
                 "carexpert_export.json"):
        assert (exported.out / name).is_file(), name
    model = AutoModelForCausalLM.from_pretrained(exported.out)  # plain transformers, nothing else
    assert next(model.parameters()).dtype == torch.bfloat16
    meta = json.loads((exported.out / "carexpert_export.json").read_text())
    assert meta["verified"] and meta["base_model"] == str(tiny_model_dir)
    assert model.generation_config.repetition_penalty == config.chat.repetition_penalty

    # The check can fail: the base model alone answers differently from the adapter.
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    against_base = compare(exported.reference, greedy_generate(base, tokenizer, config.chat.system_prompt), tokenizer)
    assert any(c.status == "mismatch" for c in against_base)


def test_chat_with_the_adapter_matches_chat_with_the_export(exported, config, adapter_dir):
    answers = []
    for kwargs in ({"adapter_dir": adapter_dir}, {"merged_dir": exported.out}):
        session = ChatSession(config, **kwargs).load()
        session.sampling.temperature = 0
        session.sampling.max_new_tokens = 6
        session.sampling.repetition_penalty = 1.0
        answers.append(session.ask("How often should I rotate my tires?"))
    assert answers[0] == answers[1]


def test_export_refuses_to_overwrite_without_force(exported, config, adapter_dir):
    with pytest.raises(UserError, match="already exists"):
        export_merged(config, adapter_dir, exported.out)


def test_a_wrong_export_is_caught_and_not_published(config, adapter_dir, tmp_path, monkeypatch):
    """If merging lost the adapter, the answers differ: exit path 'mismatch', OUT untouched, OUT.tmp kept."""
    from peft.tuners.tuners_utils import BaseTuner

    monkeypatch.setattr(BaseTuner, "merge_and_unload", lambda self, *a, **k: self.unload())
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("old export")
    result = export_merged(config, adapter_dir, tmp_path / "out", force=True)
    assert not result.ok and any(c.status == "mismatch" for c in result.checks)
    assert (tmp_path / "out" / "keep.txt").read_text() == "old export"
    assert result.out == tmp_path / "out.tmp" and (result.out / "model.safetensors").is_file()


def test_force_replaces_an_existing_export(config, adapter_dir, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "stale.txt").write_text("old")
    result = export_merged(config, adapter_dir, tmp_path / "out", force=True)
    assert result.ok and not (tmp_path / "out" / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_gguf_export_round_trip_through_transformers(exported, config, tmp_path):
    target = tmp_path / "model.gguf"
    checks = export_gguf(exported.out, target, exported.reference, config.chat.system_prompt)
    assert all(c.ok for c in checks) and sum(c.status == "match" for c in checks) >= 3
    assert target.is_file() and not (tmp_path / "model.tmp.gguf").exists()
    with pytest.raises(UserError, match="already exists"):
        export_gguf(exported.out, target, exported.reference, config.chat.system_prompt)


def test_gguf_refuses_an_unsupported_architecture_with_a_pointer_to_llama_cpp(exported, config, tmp_path):
    import shutil

    folder = tmp_path / "other"
    shutil.copytree(exported.out, folder)
    spec = json.loads((folder / "config.json").read_text())
    spec["architectures"] = ["LlamaForSequenceClassification"]
    (folder / "config.json").write_text(json.dumps(spec))
    with pytest.raises(UserError) as caught:
        export_gguf(folder, tmp_path / "x.gguf", exported.reference, None)
    assert "convert_hf_to_gguf.py" in caught.value.render() and not list(tmp_path.glob("*.gguf"))
