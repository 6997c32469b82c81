"""Reading and writing config files.

Reading uses the standard library's ``tomllib``. Two writers, for two kinds of file:

- files carexpert owns (a run's frozen ``config.toml``) are written whole with
  ``tomli_w``;
- a user's own ``carexpert.toml`` is updated in place with ``tomlkit``, so their
  comments and key order survive, and the replaced file is kept as ``.bak``.

Every write is atomic. A config is read only from a regular file of at most
``MAX_CONFIG_BYTES`` (a FIFO, a device or ``/dev/zero`` is refused before a byte is
read); a read-only file is refused rather than replaced, and the ``.bak`` is only
replaced once its new copy is complete.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from pathlib import Path
from typing import Any

import tomli_w
import tomlkit

from carexpert.config.schema import Config, field_spec
from carexpert.config.validate import ConfigError, Problem, build_config, coerce
from carexpert.errors import UserError
from carexpert.fsutil import atomic_write_text, read_limited, write_user_file

DEFAULT_CONFIG_NAME = "carexpert.toml"
# carexpert.toml with every key documented is ~10 KB; a megabyte is not a config.
MAX_CONFIG_BYTES = 1024 * 1024
BOM = b"\xef\xbb\xbf"


def default_config_path() -> Path:
    """``$CAREXPERT_CONFIG`` if set, else ``carexpert.toml`` in the current folder."""
    return Path(os.environ.get("CAREXPERT_CONFIG", DEFAULT_CONFIG_NAME))


def read_toml_text(path: Path) -> str:
    """The file's text, or a UserError that says what is wrong with the file itself."""
    if not path.exists() and not path.is_symlink():
        raise UserError("config file not found", where=str(path),
                        fix="create it with 'carexpert config show --defaults > carexpert.toml' or pass --config")
    raw = read_limited(path, MAX_CONFIG_BYTES, "the config file",
                       fix="pass the path of a .toml file (carexpert.toml is a few KB)")
    if raw.startswith(BOM):
        raise UserError("starts with a byte-order mark (BOM), which TOML does not allow", where=str(path),
                        fix="save the file as UTF-8 without BOM (in most editors: encoding 'UTF-8', not "
                            "'UTF-8 with BOM')")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"not UTF-8 text (byte {exc.start})", where=str(path),
                        fix="save the file as UTF-8") from None


def parse_config_text(text: str, source: str = "<config>") -> Config:
    """Parse and validate TOML text; raises ConfigError listing every problem."""
    try:
        data = tomllib.loads(text)
    except RecursionError:
        raise ConfigError(source, [Problem("", "malformed TOML: arrays or tables nested too deeply "
                                               "(thousands of levels); a config needs at most two")]) from None
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        line = int(found.group(1)) if found else None
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        if found:
            message += f" (column {found.group(2)})"
        raise ConfigError(source, [Problem("", f"malformed TOML: {message}", line)]) from None
    config, problems = build_config(data, text)
    if problems:
        raise ConfigError(source, problems)
    return config


def load_config(path: str | os.PathLike | None = None) -> Config:
    """Load and validate a config file (default: ``carexpert.toml``)."""
    target = Path(path) if path is not None else default_config_path()
    return parse_config_text(read_toml_text(target), str(target))


def load_or_default(path: str | os.PathLike | None = None) -> Config:
    """Like ``load_config`` but a missing default file means the built-in defaults."""
    target = Path(path) if path is not None else default_config_path()
    if path is None and not target.exists():
        return Config()
    return load_config(target)


def config_to_toml(config: Config) -> str:
    """The whole config as TOML (for files carexpert owns)."""
    return tomli_w.dumps(config.to_dict())


def write_frozen_config(path: str | os.PathLike, config: Config) -> Path:
    """Write a run's frozen copy of the config (atomic, no comments to keep)."""
    return atomic_write_text(path, config_to_toml(config))


def parse_value(key: str, raw: str) -> Any:
    """Read ``raw`` as a TOML value for ``key`` (bare words count as strings)."""
    spec = field_spec(key)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    if spec.type is str and not isinstance(value, str):
        value = raw
    if spec.type is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    return value


def update_user_file(path: str | os.PathLike, changes: dict[str, Any]) -> Path | None:
    """Set ``section.name`` keys in a user's TOML file, keeping comments and order.

    Every change is validated first (all problems reported at once); the file is then
    replaced atomically with the old one kept as ``.bak``. Returns the backup path.
    """
    target = Path(path)
    refuse_read_only(target)
    text = read_toml_text(target) if target.exists() else ""
    problems = []
    for key, value in changes.items():
        try:
            spec = field_spec(key)
        except KeyError:
            problems.append(Problem(key, "unknown key"))
            continue
        _, message = coerce(spec, value)
        if message:
            problems.append(Problem(key, message))
    if problems:
        raise ConfigError(str(target), problems)
    document = tomlkit.parse(text) if text else tomlkit.document()
    for key, value in changes.items():
        section, name = key.split(".", 1)
        if section not in document:
            document[section] = tomlkit.table()
        document[section][name] = value
    new_text = tomlkit.dumps(document)
    _refuse_oversized(new_text, target)
    parse_config_text(new_text, str(target))  # never write a file that would not load
    return write_user_file(target, new_text)


def save_user_text(path: str | os.PathLike, text: str) -> Path | None:
    """Replace a user's config with ``text`` (e.g. from the editor) after validating it."""
    refuse_read_only(Path(path))
    _refuse_oversized(text, Path(path))
    parse_config_text(text, str(path))
    return write_user_file(path, text)


def _refuse_oversized(text: str, path: Path) -> None:
    """Never write a config that carexpert would then refuse to read (``MAX_CONFIG_BYTES``)."""
    size = len(text.encode("utf-8"))
    if size > MAX_CONFIG_BYTES:
        raise UserError(f"the new config would be {size:,} bytes; a config file is at most {MAX_CONFIG_BYTES:,}",
                        where=str(path), fix="shorten the value (a long system prompt belongs in a few paragraphs)")


def refuse_read_only(path: Path) -> None:
    """A UserError when the user made ``path`` read-only: carexpert never replaces such a file.

    Checked on the permission bits rather than ``os.access``, which says yes to root.
    """
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if stat.S_ISREG(mode) and not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        raise UserError("is read-only, so carexpert does not change it", where=str(path),
                        fix=f"make it writable first (chmod u+w {path}) or pass another file with --config")


def diff_from_defaults(config: Config) -> dict[str, Any]:
    """``section.name -> value`` for every setting that differs from the default."""
    default = Config().to_dict()
    changed = {}
    for section, body in config.to_dict().items():
        for name, value in body.items():
            if default[section][name] != value:
                changed[f"{section}.{name}"] = value
    return changed
