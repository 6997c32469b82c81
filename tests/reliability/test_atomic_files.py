"""Every file write is atomic and a user's file keeps a backup; a failing write loses nothing."""

from __future__ import annotations

import errno
import os

import pytest

from carexpert.config import save_user_text, update_user_file
from carexpert.config.validate import ConfigError
from carexpert.fsutil import atomic_write_text, write_user_file


def test_failed_write_leaves_the_old_file_and_no_temp_files(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    target.write_text("old")

    def full_disk(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", lambda fd: full_disk(fd, b""))
    with pytest.raises(OSError):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_user_file_backup_holds_the_previous_version(tmp_path):
    target = tmp_path / "carexpert.toml"
    assert write_user_file(target, "one") is None
    backup = write_user_file(target, "two")
    assert target.read_text() == "two" and backup.read_text() == "one"


def test_editor_save_refuses_invalid_text_and_keeps_the_file(tmp_path):
    target = tmp_path / "carexpert.toml"
    target.write_text("[train]\nepochs = 1.0\n")
    with pytest.raises(ConfigError):
        save_user_text(target, "[train]\nepochs = -1\n")
    assert target.read_text() == "[train]\nepochs = 1.0\n"
    save_user_text(target, "# mine\n[train]\nepochs = 2.0\n")
    assert target.read_text().startswith("# mine")
    assert (tmp_path / "carexpert.toml.bak").read_text() == "[train]\nepochs = 1.0\n"


def test_set_on_a_missing_file_creates_it(tmp_path):
    target = tmp_path / "new.toml"
    assert update_user_file(target, {"lora.r": 8}) is None
    assert "r = 8" in target.read_text()


def test_atomic_writes_keep_permissions(tmp_path):
    fresh = atomic_write_text(tmp_path / "new.txt", "x")
    assert fresh.stat().st_mode & 0o777 == 0o666 & ~_umask()
    private = tmp_path / "private.txt"
    private.write_text("a")
    private.chmod(0o600)
    atomic_write_text(private, "b")
    assert private.stat().st_mode & 0o777 == 0o600


def _umask() -> int:
    value = os.umask(0)
    os.umask(value)
    return value
