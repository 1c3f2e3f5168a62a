"""Check, before any work, the paths a command is given to read and write."""

import contextlib
import glob
import os
import re
import socket
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
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


def make_folders(folder: Path) -> list[Path]:
    """Create an output folder and its missing parents.

    Args:
        folder: the folder the outputs go in.

    Returns:
        The folders created, deepest first, for :func:`remove_empty` if the
        run then fails.
    """
    missing = [path for path in (folder, *folder.parents) if not path.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    return missing


def remove_empty(folders: Iterable[Path]) -> None:
    """Remove folders a failed run created, deepest first, while they are empty.

    Args:
        folders: from :func:`make_folders`.
    """
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # something was put there meanwhile: keep it
            return


@contextmanager
def output_folder(folder: Path) -> Iterator[None]:
    """Create an output folder for a block that writes into it.

    Args:
        folder: the folder the outputs go in.

    Yields:
        Nothing; if the block fails, the folders it created are removed
        while empty (:func:`remove_empty`).
    """
    made = make_folders(folder)
    try:
        yield
    except BaseException:
        remove_empty(made)
        raise


def not_a_file(path: str | os.PathLike[str]) -> str:
    """Why an input that should be a file is not one, for a message.

    Args:
        path: the path given.

    Returns:
        ``"is a folder"`` or ``"does not exist"``.
    """
    return "is a folder" if os.path.isdir(path) else "does not exist"


#: Seconds a temporary file of a dead process must have been left untouched
#: before another run removes it: a container sharing this machine's name
#: (host networking) has its own process ids, and its run may write nothing
#: for minutes (an index gathers 8192 rows before its first write).
STALE_AFTER = 600.0

#: This machine's name as temporary names carry it (letters, digits and ``-``).
MACHINE = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"


def partial_path(path: Path) -> Path:
    """A hidden temporary name beside *path*, with the same suffix.

    The machine's name and the process id in the name keep runs writing the
    same output apart, also on a folder shared between machines. Temporary
    files of *path* left by a run that was killed outright (SIGKILL, a power
    cut: no chance to clean up) are removed here, so they do not pile up:
    those of this machine whose process is no longer running and that have
    not been written to for :data:`STALE_AFTER` seconds.

    Args:
        path: the file's final name.

    Returns:
        ``.STEM.partial-MACHINE-PID.SUFFIX`` in the same directory, renamed to
        *path* once the file is complete.
    """
    prefix = f".{path.stem}.partial-{MACHINE}-"
    name = re.compile(rf"{re.escape(prefix)}(\d{{1,10}}){re.escape(path.suffix)}")
    for leftover in path.parent.glob(f"{glob.escape(prefix)}*{path.suffix}"):
        match = name.fullmatch(leftover.name)
        if match and not _running(int(match.group(1))):
            with contextlib.suppress(OSError):  # gone, or not ours to remove
                if time.time() - leftover.stat().st_mtime > STALE_AFTER:
                    leftover.unlink()
    return path.with_name(f"{prefix}{os.getpid()}{path.suffix}")


def _running(pid: int) -> bool:
    """Whether a process with this id runs on this machine."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # none, or no such id at all
        return False
    except PermissionError:  # another user's process
        return True
    return True


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
