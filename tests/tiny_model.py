"""A tiny causal LM + tokenizer built at test time: no downloads, loads in well under a second.

Llama-shaped (q/k/v/o projections, like the default LoRA targets) with a byte-level
BPE tokenizer trained on a few automotive sentences, saved as safetensors in a folder
that ``base_model`` can point at.
"""

from __future__ import annotations

from pathlib import Path

CORPUS = [
    "The Toyota Camry makes 203 horsepower and 184 lb-ft of torque.",
    "A turbocharger uses exhaust gas; a supercharger is driven by the crankshaft.",
    "Change synthetic oil every 7,500 to 10,000 miles, or as the owner's manual says.",
    "Level 2 charging adds about 25 miles of range per hour; DC fast charging is quicker.",
    "### Instruction:\n### Input:\n### Response:\nYou are carexpert, a knowledgeable automotive expert.",
    "The Honda Accord compares well with the Camry on fuel economy, space and price.",
    "Adaptive cruise control, lane keeping assist and automatic emergency braking are ADAS features.",
    "0123456789 mph km/h kW N·m mpg L/100 km miles km $ , . ? ! ' \" ( ) - : ;",
]


def _save_tokenizer(folder: Path, vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>")
    fast.save_pretrained(folder)
    return fast


def build_tiny_model(folder: str | Path, *, vocab_size: int = 512, hidden: int = 64, layers: int = 2,
                     seed: int = 0) -> Path:
    """Write a tiny Llama model and its tokenizer to ``folder`` and return it."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fast = _save_tokenizer(folder, vocab_size)
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(fast), hidden_size=hidden, intermediate_size=hidden * 2,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=1024, bos_token_id=fast.bos_token_id,
                         eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id,
                         tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def build_tiny_gemma3(folder: str | Path, *, sliding_window: int = 8, vocab_size: int = 512, seed: int = 1) -> Path:
    """A tiny Gemma 3 (two sliding-window layers around a full one) with a short window, so answers cross it.

    Same tokenizer as ``build_tiny_model``; the architecture of the embedded model at toy size.
    """
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fast = _save_tokenizer(folder, vocab_size)
    torch.manual_seed(seed)
    config = Gemma3TextConfig(vocab_size=len(fast), hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                              num_attention_heads=4, num_key_value_heads=1, head_dim=16,
                              max_position_embeddings=1024, sliding_window=sliding_window,
                              layer_types=["sliding_attention", "full_attention", "sliding_attention"],
                              bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id,
                              pad_token_id=fast.pad_token_id, tie_word_embeddings=True)
    model = Gemma3ForCausalLM(config)
    with torch.no_grad():  # with this init and seed, greedy answers vary (not one token repeated)
        for parameter in model.parameters():
            if parameter.dim() == 2:
                parameter.normal_(0, 0.02)
    model.save_pretrained(folder, safe_serialization=True)
    return folder
