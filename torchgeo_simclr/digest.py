"""SHA-256 of a file, as provenance records and indexes name checkpoints."""

import hashlib
from pathlib import Path
from typing import Final

#: Hex digits of a checkpoint's SHA-256 kept as its id: in an embedding index
#: and on a map's polygons (the same id for the same file).
CHECKPOINT_ID_LENGTH: Final[int] = 16


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file.

    :func:`hashlib.file_digest` releases the GIL while it hashes, so a
    thread can hash a checkpoint while the main thread loads it.

    Args:
        path: the file.

    Returns:
        The hex digest, 64 characters.
    """
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
