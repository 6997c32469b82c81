"""Export a run: the adapter merged into a plain transformers model folder (and GGUF), verified."""

from carexpert.export.merged import ExportResult, export_merged
from carexpert.export.verify import PromptCheck

__all__ = ["ExportResult", "PromptCheck", "export_merged"]
