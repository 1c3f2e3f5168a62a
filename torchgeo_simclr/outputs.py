"""Check, before any work, the paths a command is given to read and write."""

import os
from pathlib import Path


def check_output_folder(folder: Path, option: str = "--out") -> None:
    """Refuse an output folder that cannot be made or written, creating nothing.

    The nearest part of *folder* that exists must be a writable directory: a
    file there (``--out notes.txt/map.tif``) or a read-only directory would
    only fail once the work is done.

    Args:
        folder: the folder the output goes in (made later if missing).
        option: the command-line option that named it, for the message.

    Raises:
        PermissionError: if *folder* cannot be created or written.
    """
    folder = Path(folder)
    nearest = next(path for path in (folder, *folder.parents) if path.exists())
    if not nearest.is_dir() or not os.access(nearest, os.W_OK | os.X_OK):
        why = "is a file" if not nearest.is_dir() else "is not writable"
        msg = (
            f"The output directory {str(folder)!r} cannot be written to "
            f"({str(nearest)!r} {why}); pass {option} in a directory you can "
            "write to."
        )
        raise PermissionError(msg)


def not_a_file(path: str | os.PathLike[str]) -> str:
    """Why an input that should be a file is not one, for a message.

    Args:
        path: the path given.

    Returns:
        ``"is a folder"`` or ``"does not exist"``.
    """
    return "is a folder" if os.path.isdir(path) else "does not exist"
