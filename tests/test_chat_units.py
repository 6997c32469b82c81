"""Chat building blocks without a loaded session: sanitizing, stop strings, decoding, the decode plan."""

from __future__ import annotations

import pytest

from carexpert.chat import choose_decode_plan, sanitize_output
from carexpert.chat.fast import GIB, config_for_plan, safetensors_parameter_count
from carexpert.chat.streaming import IncrementalDecoder, StopStringFilter
from carexpert.config import Config
from carexpert.prompt import stop_strings


@pytest.mark.parametrize("raw, clean", [
    ("plain text\nwith\ttab", "plain text\nwith\ttab"),
    ("\x1b[31mred\x1b[0m and \x1b[1;32;40mbold\x1b[m", "red and bold"),
    ("cursor\x1b[2J\x1b[H home", "cursor home"),
    ("\x1b]0;pwned title\x07after", "after"),                         # OSC ended by BEL
    ("\x1b]52;c;ZXZpbA==\x1b\\clip", "clip"),                         # OSC 52 clipboard write, ST
    ("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "link"),              # hyperlink
    ("\x1bPq#0;2;0;0;0\x1b\\dcs", "dcs"),                              # DCS (sixel)
    ("\x9b31mc1 csi", "c1 csi"),                                       # 8-bit CSI
    ("\x9d0;title\x9cosc8", "osc8"),                                   # 8-bit OSC + ST
    ("a lone escape at the end\x1b", "a lone escape at the end"),
    ("unterminated OSC \x1b]0;title", "unterminated OSC 0;title"),     # opener gone: harmless text
    ("\x1b(Bcharset", "charset"),
    ("bell\x07 back\x08space del\x7f nul\x00", "bell backspace del nul"),
    ("overwrite\rhidden", "overwritehidden"),
    ("windows\r\nline", "windows\nline"),
    ("N·m, 0–60 mph, ümlaut, 日本", "N·m, 0–60 mph, ümlaut, 日本"),
])
def test_sanitize_output_removes_terminal_controls(raw, clean):
    assert sanitize_output(raw) == clean


def test_sanitize_output_is_safe_on_a_sequence_split_across_chunks():
    chunks = ["red: \x1b[3", "1mtext\x1b", "]0;title", "\x07 end"]
    joined = "".join(sanitize_output(c) for c in chunks)
    assert not any(ord(ch) < 32 and ch not in "\n\t" for ch in joined)
    assert "text" in joined and "end" in joined


def test_stop_string_filter_cuts_at_the_stop_and_never_shows_part_of_it():
    stops = StopStringFilter(stop_strings())
    shown = []
    for piece in ["The Camry has", " 203 hp.\n", "##", "# Instr", "uction:\nmore"]:
        text, hit = stops.feed(piece)
        shown.append(text)
        if hit:
            break
    assert hit and "".join(shown) == "The Camry has 203 hp."


def test_stop_string_filter_releases_text_that_turned_out_not_to_be_a_stop():
    stops = StopStringFilter(stop_strings())
    assert stops.feed("Line one\n") == ("Line one", False)
    assert stops.feed("## Heading") == ("\n## Heading", False)
    assert stops.feed("\n") == ("", False)
    assert stops.flush() == "\n"


def test_incremental_decoding_matches_a_full_decode(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = "The Camry makes 203 N·m — 0–60 in 7.5 s, café 日本 ünd\nnew line"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    decoder = IncrementalDecoder(tok)
    pieces = [decoder.push(i) for i in ids] + [decoder.flush()]
    assert "".join(pieces) == tok.decode(ids)
    assert sum(1 for p in pieces if p) > 5


def test_decode_plan_on_cpu_falls_back_without_compile():
    plan = choose_decode_plan("auto", device="cpu", quantization="nf4", weight_bytes_bf16=10**9, free_bytes=None)
    assert (plan.weights, plan.static_cache, plan.compile) == ("full", False, False)
    forced = choose_decode_plan("4bit", device="cpu", quantization="nf4", weight_bytes_bf16=None, free_bytes=None)
    assert forced.weights == "4bit"


@pytest.mark.parametrize("fast_path, weights, free, expected", [
    ("auto", 1 * GIB, 40 * GIB, "merged"),      # a small model on an H100: merged, static cache, compiled
    ("auto", 14 * GIB, 16 * GIB, "4bit"),       # 7B in bf16 does not fit in 16 GiB with headroom
    ("auto", None, 40 * GIB, "4bit"),           # unknown size: the safe path
    ("merged", 14 * GIB, 16 * GIB, "merged"),   # the user asked for it
    ("4bit", 1 * GIB, 40 * GIB, "4bit"),
])
def test_decode_plan_on_gpu(fast_path, weights, free, expected):
    plan = choose_decode_plan(fast_path, device="cuda", quantization="nf4", weight_bytes_bf16=weights, free_bytes=free)
    assert plan.weights == expected
    assert plan.compile and plan.static_cache  # both GPU paths decode compiled (4-bit: see fast.py)
    assert plan.reason


def test_merged_and_cpu_plans_load_unquantized_weights():
    nf4 = Config()
    nf4.model.quantization = "nf4"  # a QLoRA-trained run (the 7B recipe)
    plan = choose_decode_plan("merged", device="cuda", quantization="nf4", weight_bytes_bf16=None, free_bytes=None)
    assert config_for_plan(nf4, plan).model.quantization == "none"
    cpu = choose_decode_plan("auto", device="cpu", quantization="nf4", weight_bytes_bf16=None, free_bytes=None)
    assert config_for_plan(nf4, cpu).model.quantization == "none"
    low = choose_decode_plan("4bit", device="cuda", quantization="nf4", weight_bytes_bf16=None, free_bytes=None)
    assert config_for_plan(nf4, low).model.quantization == "nf4"


def test_parameter_count_read_from_safetensors_headers(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert safetensors_parameter_count(tiny_model_dir) == model.num_parameters()
    assert safetensors_parameter_count(tiny_model_dir / "missing") is None


def test_local_weights_dir_finds_folders_and_never_reaches_the_network(tiny_model_dir):
    from carexpert.chat.fast import local_weights_dir

    assert local_weights_dir(str(tiny_model_dir)) == tiny_model_dir
    assert local_weights_dir("carexpert-tests/no-such-model-anywhere") is None
