"""Check, before any work, the paths a command is given to read and write."""

import os
from collections.abc import Iterable, Mapping
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


def partial_path(path: Path) -> Path:
    """A hidden temporary name beside *path*, with the same suffix.

    Args:
        path: the file's final name.

    Returns:
        ``.STEM.partial-PID.SUFFIX`` in the same directory, renamed to *path*
        once the file is complete.
    """
    return path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")


def same_file[Key](
    outputs: Iterable[Path], inputs: Mapping[Key, str | os.PathLike[str] | None]
) -> tuple[Path, Key] | None:
    """The first input that is one of the outputs on disk, and which output.

    The same file on disk is the same path, a symbolic or a hard link to it;
    outputs not written yet, and inputs that are None or missing, are none.

    Args:
        outputs: the files a command would write.
        inputs: what names each input (e.g. its option) -> its path.

    Returns:
        ``(output, key of the input)`` for the first input, in order, that is
        an output, or None.
    """
    existing: dict[tuple[int, int], Path] = {}
    for path in outputs:
        try:
            stat = path.stat()
        except OSError:
            continue  # not written yet: no input can be it
        existing.setdefault((stat.st_dev, stat.st_ino), path)
    for key, given in inputs.items() if existing else ():
        if given is None:
            continue
        try:
            stat = os.stat(given)
        except OSError:
            continue
        if (output := existing.get((stat.st_dev, stat.st_ino))) is not None:
            return output, key
    return None
