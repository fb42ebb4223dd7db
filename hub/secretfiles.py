"""Generated secrets kept as files of mode 0600 under the data directory."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def load_or_create_secret(path: Path, *, nbytes: int = 32) -> str:
    """Read the secret at ``path``, creating it (mode 0600, exclusively) if missing."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        value = path.read_text(encoding="utf-8").strip()
        if not value:
            raise ValueError(f"secret file {path} is empty") from None
        return value
    value = secrets.token_urlsafe(nbytes)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(value + "\n")
    return value
