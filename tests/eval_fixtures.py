"""Helpers for the evaluation tests: a run folder with a LoRA adapter on the tiny model."""

from __future__ import annotations

from pathlib import Path

from carexpert.config import Config, write_frozen_config
from carexpert.evaluation.cases import EvalCase
from carexpert.prompt import render_prompt
from carexpert.retrieval import Hit, Passage, Retrieval, UnknownVehicle
from carexpert.runs import RunPaths

CASES = [
    EvalCase(id="s1", category="specs", question="How much horsepower does the Toyota Camry make?",
             reference_text="The Camry makes 203 hp and 184 lb-ft.", reference={"hp": 203, "torque_lb_ft": 184}),
    EvalCase(id="e1", category="engines", question="Turbocharger or supercharger?",
             reference_text="A turbo uses exhaust gas; a supercharger is driven by the crankshaft.",
             key_terms=["exhaust", "crankshaft"]),
    EvalCase(id="r1", category="specs", question="What is the 0-60 time of the Toyota Zephyrion GT?",
             expect_refusal=True),
]
CAMRY = Passage("toyota-camry-2024-le", "vehicle", "2024 Toyota Camry LE",
                "2024 Toyota Camry LE: midsize sedan, 2.5-liter inline-four, 203 hp (151 kW), 184 lb-ft (249 N·m), "
                "32 mpg combined (7.4 L/100 km), $26,420.")
ACCORD = Passage("honda-accord-2023-lx", "vehicle", "2023 Honda Accord LX",
                 "2023 Honda Accord LX: midsize sedan, 1.5-liter turbocharged inline-four, 192 hp (143 kW), "
                 "192 lb-ft (260 N·m), 32 mpg combined, $27,295.")
TURBO = Passage("concept:turbocharger", "concept", "Turbocharger",
                "Turbocharger: a turbine spun by exhaust gas drives a compressor that forces more air into the "
                "engine; a supercharger is driven by the crankshaft through a belt.")


class FakeRetriever:
    """What carexpert.retrieval's retriever does, for three known questions: passages for the Camry and
    the turbo, and an unknown make and model for the Zephyrion (the guard's case)."""

    def __init__(self):
        self.questions: list[str] = []

    def retrieve(self, question: str) -> Retrieval:
        self.questions.append(question)
        if "Zephyrion" in question:
            return Retrieval(question, (Hit(CAMRY, 1.5, "text"),),
                             UnknownVehicle("Toyota Zephyrion GT", (CAMRY, ACCORD)))
        if "Camry" in question:
            return Retrieval(question, (Hit(CAMRY, 9.0, "entity"), Hit(ACCORD, 2.1, "text")))
        return Retrieval(question, (Hit(TURBO, 4.2, "text"),))


VALIDATION = [
    {"id": "v1", "instruction": "How much torque does the Camry make?", "input": "",
     "output": "The Camry makes 184 lb-ft of torque."},
    {"id": "v2", "instruction": "When should I change synthetic oil?", "input": "",
     "output": "Every 7,500 to 10,000 miles, or as the owner's manual says."},
]


def tokenize(tokenizer, record, max_length):
    """Training-style tokenization: labels only on the answer and EOS."""
    prompt = tokenizer(render_prompt(record["instruction"], record.get("input", "")))["input_ids"]
    answer = tokenizer(record["output"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = (prompt + answer)[:max_length]
    labels = ([-100] * len(prompt) + answer)[:max_length]
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}


def tiny_config(tiny_model_dir: Path, runs_dir: Path) -> Config:
    config = Config()
    config.model.base_model = str(tiny_model_dir)
    config.model.quantization = "none"
    config.train.runs_dir = str(runs_dir)
    config.eval.max_new_tokens = 12
    config.eval.batch_size = 2
    return config


def make_adapter_run(tiny_model_dir: Path, runs_dir: Path, run_id: str = "run-test") -> tuple[RunPaths, Config]:
    """A run folder whose adapter visibly changes the tiny model (lora_B set non-zero)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = RunPaths.of(runs_dir, run_id)
    run.root.mkdir(parents=True, exist_ok=True)
    config = tiny_config(tiny_model_dir, runs_dir)
    write_frozen_config(run.config, config)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    torch.manual_seed(1)  # lora_A's init draws from the global generator: fix it, whatever ran before
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=16,
                                                  target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 1.0)
    peft_model.save_pretrained(run.adapter)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(run.adapter)
    return run, config


def load_tiny_with_adapter(config: Config, adapter: Path):
    """What modeling.load_for_inference does, for the tiny model in full precision."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(config.model.base_model)
    model = AutoModelForCausalLM.from_pretrained(config.model.base_model)
    return PeftModel.from_pretrained(model, adapter), tokenizer
