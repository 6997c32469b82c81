"""Base model resolution, loading (quantized, on the right device), LoRA and model summaries.

``base_model`` may be ``embedded`` (Gemma 3 270M from PyPI, converted once into a
safetensors cache), a local folder, a ``.gguf`` file or a hub id. Importing this
package is cheap: torch, transformers and peft are imported inside the functions.
"""

from carexpert.modeling.embedded import (
    cache_root,
    embedded_model_dir,
    embedded_package_available,
    ensure_converted_gguf,
    ensure_embedded_model,
    is_complete,
)
from carexpert.modeling.load import (
    load_base_model,
    load_for_inference,
    load_tokenizer,
    model_source,
    pick_device,
    quantization_config,
)
from carexpert.modeling.lora import apply_lora, linear_module_names
from carexpert.modeling.resolve import (
    ResolvedModel,
    hub_cached,
    hub_reachable,
    resolve_model,
)
from carexpert.modeling.summary import describe_model

__all__ = [
    "ResolvedModel", "apply_lora", "cache_root", "describe_model", "embedded_model_dir",
    "embedded_package_available", "ensure_converted_gguf", "ensure_embedded_model", "hub_cached",
    "hub_reachable", "is_complete", "linear_module_names", "load_base_model", "load_for_inference",
    "load_tokenizer", "model_source", "pick_device", "quantization_config", "resolve_model",
]
