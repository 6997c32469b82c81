"""Fingerprints: has the data changed in a way that matters for training?

``dataset_fingerprint`` hashes exactly what tokenization sees (the rendered prompt, the
answer, and the length limit), so a run can refuse to resume on different data while a
cosmetic change (a manifest field, key order in a JSON line) does not trip it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any


def dataset_fingerprint(records: Iterable[Mapping[str, Any]], max_length: int | None = None, *,
                        extra: str = "") -> str:
    """sha256 over (prompt, answer) of every record, in order, plus max_length and ``extra``."""
    from carexpert.dataset.tokenization import prompt_for

    digest = hashlib.sha256()
    digest.update(f"carexpert-dataset-v1|max_length={max_length}|{extra}\x1e".encode())
    count = 0
    for record in records:
        digest.update(prompt_for(record).encode("utf-8"))
        digest.update(b"\x1f")
        digest.update(str(record["output"]).encode("utf-8"))
        digest.update(b"\x1e")
        count += 1
    digest.update(f"count={count}".encode())
    return digest.hexdigest()


def bytes_fingerprint(chunks: Iterable[bytes]) -> str:
    """sha256 over file contents, in order (the manifest's fingerprint)."""
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(hashlib.sha256(chunk).digest())
    return digest.hexdigest()
