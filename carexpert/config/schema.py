"""The configuration schema: every setting, its type, default, allowed values and doc.

One dataclass per TOML section. Each field is declared with ``setting(...)``, which
stores the one-line doc and the allowed range or choices in the field's metadata:
validation, ``carexpert config explain`` and the app's config editor all read them
from here, so a setting is documented in exactly one place.

The defaults keep the seed recipe's shape (LoRA r=64/alpha=16/dropout=0.05, batch 4 x
accumulation 4, cosine with 3% warmup, 3 epochs, seed 42) on the embedded model, so that
everything runs offline, and change what measured better on it with retrieval-grounded
data (docs/evaluation.md, issue 13's sweep on an H200): bf16 base weights instead of NF4
(4-bit saves ~150 MB on 270M parameters and costs speed), LoRA on every linear layer
instead of q/k/v/o, lr 1e-3 instead of 2e-4 (0.849 against 0.742 overall), max length 1024
for the retrieved passages, and ``optimizer = "auto"`` (the seed's paged 8-bit AdamW for
3B+ models on a GPU, fused AdamW for smaller ones). For a 7B model set ``quantization =
"nf4"`` and ``learning_rate = 2e-4``: the seed's QLoRA recipe.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from carexpert.prompt import SYSTEM_PROMPT


def setting(default: Any, doc: str, *, min: float | None = None, max: float | None = None,
            choices: tuple | None = None, nonempty: bool = False) -> Any:
    """Declare one config field with its doc and limits (kept in dataclass metadata)."""
    meta = {"doc": doc, "min": min, "max": max, "choices": choices, "nonempty": nonempty}
    if isinstance(default, (list, dict)):
        return field(default_factory=partial(copy.copy, default), metadata=meta)  # each instance its own copy
    return field(default=default, metadata=meta)


@dataclass
class ModelConfig:
    base_model: str = setting(
        "embedded",
        "Base model: 'embedded' (Gemma 3 270M shipped on PyPI, works offline), a local model folder, "
        "a .gguf file, or a hub id such as 'mistralai/Mistral-7B-v0.1'.", nonempty=True)
    revision: str = setting("", "Hub revision (branch, tag or commit) when base_model is a hub id; empty = default branch.")
    trust_remote_code: bool = setting(
        False, "Run Python code shipped with a hub model. Off by default: only turn on for models you trust.")
    allow_pickle: bool = setting(
        False, "Allow loading weights or checkpoints stored as pickle (.bin/.pt), which can execute code. "
        "Off by default: carexpert loads safetensors only.")
    quantization: str = setting(
        "none", "How the frozen base weights are stored while training: 'nf4' (QLoRA 4-bit), 'fp4', "
        "'int8', or 'none' (bf16/fp32 weights, more memory). 'none' suits the embedded 270M model "
        "(4-bit saves ~150 MB there and costs speed); use 'nf4' for 7B models.",
        choices=("nf4", "fp4", "int8", "none"))
    double_quant: bool = setting(True, "Quantize the 4-bit quantization constants too (saves ~0.4 bit/param).")
    compute_dtype: str = setting(
        "bfloat16", "Data type for the 4-bit layers' matrix multiplies.",
        choices=("bfloat16", "float16", "float32"))
    attn_implementation: str = setting(
        "auto", "Attention kernel: 'auto' picks sdpa (or flash_attention_2 where installed on a GPU; "
        "packed training on a GPU uses PyTorch's varlen flash attention).",
        choices=("auto", "eager", "sdpa", "flash_attention_2"))
    cache_dir: str = setting(
        "", "Where converted models are cached; empty = ~/.cache/carexpert (or $CAREXPERT_CACHE).")


@dataclass
class LoraConfig:
    r: int = setting(64, "LoRA rank: capacity of the adapter. Higher learns more and costs more memory.",
                     min=1, max=1024)
    alpha: int = setting(16, "LoRA alpha: the adapter's output is scaled by alpha / r.", min=1, max=4096)
    dropout: float = setting(0.05, "Dropout on the LoRA input during training.", min=0.0, max=0.9)
    target_modules: list = setting(
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        "Names of the linear layers that get an adapter (every attention and MLP projection by default; "
        "the seed's q/k/v/o scored lower).", nonempty=True)
    bias: str = setting("none", "Which biases to train.", choices=("none", "lora_only", "all"))


@dataclass
class DataConfig:
    dataset: str = setting(
        "builtin", "Training data: 'builtin' (the curated automotive set) or a path to a JSONL, JSON or "
        "CSV file in Alpaca (instruction/input/output) or chat 'messages' form.", nonempty=True)
    num_examples: int = setting(1600, "How many question/answer pairs the builtin generator makes.",
                                min=100, max=100_000)
    validation_fraction: float = setting(0.1, "Share of the training pairs held for validation loss.",
                                         min=0.0, max=0.5)
    test_fraction: float = setting(0.1, "Share of pairs held out for evaluation (never trained on).",
                                   min=0.0, max=0.5)
    holdout_fact_fraction: float = setting(
        0.1, "Share of whole facts (e.g. a vehicle's specs) kept entirely out of training, so evaluation "
        "also asks about things the model never saw.", min=0.0, max=0.5)
    max_length: int = setting(1024, "Longest example in tokens (prompt with its retrieved passages + answer).",
                              min=32, max=32768)
    skip_bad_records: bool = setting(
        False, "Skip malformed records in a user dataset (and say how many) instead of refusing to start.")
    data_dir: str = setting("data", "Where 'carexpert data build' writes train/validation/test files.",
                            nonempty=True)


@dataclass
class TrainConfig:
    runs_dir: str = setting("runs", "Folder that holds one sub-folder per training run.", nonempty=True)
    epochs: float = setting(3.0, "Passes over the training set.", min=0.01, max=1000)
    max_steps: int = setting(0, "Stop after this many optimizer steps; 0 = use epochs.", min=0, max=10_000_000)
    batch_size: int = setting(4, "Sequences per micro-batch on each GPU.", min=1, max=4096)
    grad_accum: int = setting(4, "Micro-batches accumulated per optimizer step "
                                 "(effective batch = batch_size x grad_accum x GPUs).", min=1, max=4096)
    auto_micro_batch: bool = setting(
        True, "On a GPU with room to spare, fold accumulation into a bigger micro-batch (same effective "
        "batch, same learning; faster).")
    learning_rate: float = setting(
        1e-3, "Peak learning rate (1e-3 scored best on the embedded model; use 2e-4 for 7B).", min=1e-8, max=1.0)
    lr_scheduler: str = setting("cosine", "Learning-rate schedule after warmup.",
                                choices=("cosine", "linear", "constant", "constant_with_warmup"))
    warmup_ratio: float = setting(0.03, "Share of steps spent warming the learning rate up.", min=0.0, max=0.5)
    weight_decay: float = setting(0.0, "AdamW weight decay.", min=0.0, max=1.0)
    max_grad_norm: float = setting(0.3, "Gradient clipping norm (QLoRA recipe).", min=0.0, max=100.0)
    optimizer: str = setting(
        "auto", "Optimizer. 'auto': on a GPU, fused AdamW (one kernel per step) for base models under 3B "
        "parameters and paged 8-bit AdamW (least memory) for bigger ones; adamw_torch on the CPU. "
        "The 8-bit optimizers need CUDA; on the CPU carexpert falls back to adamw_torch and says so.",
        choices=("auto", "paged_adamw_8bit", "adamw_8bit", "paged_adamw_32bit", "adamw_torch", "adamw_torch_fused",
                 "sgd"))
    precision: str = setting(
        "bf16", "Training precision: 'bf16', 'fp16', 'fp32', or 'auto' (bf16 where supported).",
        choices=("auto", "bf16", "fp16", "fp32"))
    gradient_checkpointing: str = setting(
        "auto", "Recompute activations to save memory: 'on', 'off', or 'auto' (on only when the memory "
        "estimate says it is needed).", choices=("auto", "on", "off"))
    padding_free: bool = setting(
        True, "Pack each micro-batch into one padding-free row (position ids keep examples apart): "
        "no compute is spent on padding.")
    head_loss: str = setting(
        "chunked", "How the loss runs the output layer: 'chunked' (only where the next token is an answer "
        "token, a few hundred rows at a time with the gradient computed on the way: least memory), 'selective' "
        "(only there, all rows at once), or 'full' (every token: transformers' own loss). The loss is the same.",
        choices=("chunked", "selective", "full"))
    compile: str = setting(
        "auto", "torch.compile each decoder layer (fewer, fused GPU kernels; the first steps wait for the "
        "compiler): 'on', 'off', or 'auto' (on a GPU for 3B+ models, without gradient checkpointing).",
        choices=("auto", "on", "off"))
    upcast_frozen: bool = setting(
        False, "Upcast frozen non-quantized layers to fp32 like peft's prepare_model_for_kbit_training "
        "(more memory, no measured gain).")
    eval_steps: int = setting(50, "Compute validation loss every N optimizer steps; 0 = only at the end.",
                              min=0, max=10_000_000)
    save_steps: int = setting(50, "Save a checkpoint every N optimizer steps (a killed run loses at most this).",
                              min=1, max=10_000_000)
    save_total_limit: int = setting(3, "Checkpoints to keep (oldest deleted first).", min=1, max=1000)
    logging_steps: int = setting(1, "Write a step event every N optimizer steps.", min=1, max=100_000)
    seed: int = setting(42, "Random seed for data order, LoRA init and dropout.", min=0, max=2**32 - 1)
    tensorboard: bool = setting(True, "Write TensorBoard logs to the run's tensorboard/ folder.")
    stall_factor: float = setting(
        10.0, "Report a stall when no step has come for this many times the median step time.",
        min=2.0, max=1000.0)
    dist_timeout_s: int = setting(
        600, "With several GPUs: how long a rank waits for the others in one collective before the run "
        "fails (a hung or dead rank ends the run instead of stalling it forever).", min=1, max=86400)
    max_minutes: float = setting(
        0.0, "Stop training at the first step after this many minutes, then validate and save the adapter "
        "as usual; 0 = no limit. The quick profile sets it so a busier machine still finishes on time.",
        min=0.0, max=1_000_000.0)


@dataclass
class EvalConfig:
    max_new_tokens: int = setting(
        384, "Longest generated answer during evaluation. Keep it above the longest reference answer (the "
        "builtin test set's is 301 tokens, a two-car comparison): a right answer cut at the limit counts as "
        "not stopping cleanly.", min=1, max=8192)
    batch_size: int = setting(
        0, "Questions generated at once (left padded, sorted by length); 0 = auto: 512 on a GPU (the builtin "
        "held-out set in one batch; halved on out-of-memory), 16 on a CPU.", min=0, max=1024)
    limit: int = setting(0, "Evaluate only the first N held-out items; 0 = all.", min=0, max=10_000_000)
    numeric_tolerance: float = setting(
        0.03, "Relative tolerance when checking a number in an answer against the reference.",
        min=0.0, max=0.5)
    include_showcase: bool = setting(True, "Always add the seed's showcase questions to the evaluation.")
    compare_base: bool = setting(True, "Also answer every question with the base model (adapter off).")


@dataclass
class RetrievalConfig:
    enabled: bool = setting(
        True, "Ground answers in the knowledge store: retrieved passages go into every prompt (training, "
        "evaluation, chat, serving).")
    top_k: int = setting(3, "Passages put into each prompt, best first.", min=1, max=20)
    max_context_tokens: int = setting(
        512, "Most tokens of retrieved text in one prompt (about 4 characters a token); lower-ranked passages "
        "are dropped to fit.",
        min=32, max=8192)
    min_score: float = setting(
        0.0, "Drop full-text hits scoring below this (0 = keep every hit; entity matches always count).",
        min=0.0, max=1000.0)
    store: str = setting(
        "", "The knowledge store file; empty = knowledge.sqlite in data.data_dir.")
    guard: bool = setting(
        True, "Refuse before generating when a question names a make and model the store does not know.")


@dataclass
class ChatConfig:
    system_prompt: str = setting(SYSTEM_PROMPT, "System line put before every conversation.")
    temperature: float = setting(0.7, "Sampling temperature; 0 = greedy.", min=0.0, max=5.0)
    top_p: float = setting(0.9, "Nucleus sampling: keep the smallest set of tokens with this much probability.",
                           min=0.0, max=1.0)
    top_k: int = setting(50, "Sample only among the k most likely tokens; 0 = no limit.", min=0, max=100_000)
    repetition_penalty: float = setting(1.1, "Penalty for repeating tokens (1.0 = none).", min=0.5, max=5.0)
    max_new_tokens: int = setting(512, "Longest answer in tokens.", min=1, max=32768)
    fast_path: str = setting(
        "auto", "Decoding path on a GPU: 'merged' (adapter merged into bf16 weights, static cache, "
        "compiled), '4bit' (quantized base + adapter, least memory) or 'auto' (merged when it fits).",
        choices=("auto", "merged", "4bit"))


@dataclass
class UiConfig:
    theme: str = setting("carexpert-dark", "Colour theme: the name of a theme file in themes/.", nonempty=True)
    notifications: bool = setting(
        False, "Send desktop notifications (OSC 9 / OSC 777 escape codes, forwarded over SSH by most "
        "terminals) when a run finishes, fails or stalls.")
    bell: bool = setting(False, "Ring the terminal bell when a run finishes, fails or stalls.")
    refresh_seconds: float = setting(0.25, "How often live charts redraw.", min=0.05, max=10.0)
    keymap: dict = setting({}, "Rebind keys: binding id = key, e.g. 'start-training' = 'ctrl+s'.")


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    chat: ChatConfig = field(default_factory=ChatConfig)
    ui: UiConfig = field(default_factory=UiConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Plain nested dict (TOML-ready)."""
        return dataclasses.asdict(self)


SECTIONS: dict[str, type] = {f.name: f.default_factory for f in dataclasses.fields(Config)}  # type: ignore[misc]
SECTION_DOCS = {
    "model": "Which base model to fine-tune and how to load it.",
    "lora": "The LoRA adapter that is trained on top of the frozen base.",
    "data": "The training data and its splits.",
    "train": "The training run: schedule, batch, precision, checkpoints.",
    "eval": "Evaluation of base vs tuned model on the held-out set.",
    "retrieval": "Grounding in the knowledge store (passages put into the prompt).",
    "chat": "Chat sampling settings.",
    "ui": "The terminal app.",
}


@dataclass(frozen=True)
class FieldSpec:
    """Everything known about one setting, for validation, docs and the editor."""

    section: str
    name: str
    type: type
    default: Any
    doc: str
    min: float | None
    max: float | None
    choices: tuple | None
    nonempty: bool

    @property
    def key(self) -> str:
        return f"{self.section}.{self.name}"

    def allowed(self) -> str:
        """Human wording of what values are allowed."""
        kind = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
                list: "a list of strings", dict: "a table"}[self.type]
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.min is not None and self.max is not None:
            return f"{kind} from {_fmt(self.min)} to {_fmt(self.max)}"
        if self.min is not None:
            return f"{kind} of at least {_fmt(self.min)}"
        if self.nonempty:
            return f"a non-empty {kind.removeprefix('a ')}"
        return kind


def _fmt(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


_TYPES = {"bool": bool, "int": int, "float": float, "str": str, "list": list, "dict": dict}


def field_specs() -> list[FieldSpec]:
    """Every setting in schema order."""
    specs = []
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[operator]
            specs.append(FieldSpec(section, f.name, _TYPES[str(f.type)], default, f.metadata["doc"],
                                   f.metadata["min"], f.metadata["max"], f.metadata["choices"],
                                   f.metadata["nonempty"]))
    return specs


def field_spec(key: str) -> FieldSpec:
    """The spec for ``section.name``; KeyError when unknown."""
    for spec in field_specs():
        if spec.key == key:
            return spec
    raise KeyError(key)
