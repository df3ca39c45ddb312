"""File identity: particle ids made from file names, and file checksums (provenance)."""

from __future__ import annotations

import hashlib
import re

__all__ = ["sanitize_id", "sha256_file"]

_MAX_ID = 60


def sanitize_id(name: str, suffix: str = "") -> str:
    """A particle id safe as an HDF5 group name and a file name: [A-Za-z0-9_.-], not starting
    with '.', at most 60 characters including ``suffix`` (kept whole, so that disambiguating
    suffixes survive the truncation of long names)."""
    s = re.sub(r"[^A-Za-z0-9_.\-]+", "_", name).strip("_")
    s = s.lstrip(".") or "particle"
    return s[: _MAX_ID - len(suffix)] + suffix


def sha256_file(path) -> str:
    """Hex SHA-256 of a file (provenance)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()
