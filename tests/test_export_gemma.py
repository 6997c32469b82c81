"""GGUF round trip of the embedded Gemma 3 270M: our writer, transformers' reader, same model and tokenizer."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_embedded_gemma3_survives_a_gguf_round_trip(tmp_path):
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from carexpert.errors import UserError
    from carexpert.export.gguf_export import write_gguf
    from carexpert.modeling import ensure_embedded_model

    try:
        folder = ensure_embedded_model()
    except UserError as error:
        pytest.skip(f"embedded model unavailable: {error.message}")
    write_gguf(folder, tmp_path / "gemma.gguf")
    back = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="gemma.gguf", dtype=torch.bfloat16)
    original = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16)
    assert type(back).__name__ == type(original).__name__ == "Gemma3ForCausalLM"
    theirs, ours = back.state_dict(), original.state_dict()
    assert set(ours) <= set(theirs)
    assert [name for name in ours if not torch.equal(ours[name], theirs[name])] == []

    text = "You are carexpert.\n\n### Instruction:\nWhat does a  2.0L turbo's 350 N·m mean?\n\n### Response:\n"
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert AutoTokenizer.from_pretrained(tmp_path, gguf_file="gemma.gguf")(text)["input_ids"] == tokenizer(text)["input_ids"]
