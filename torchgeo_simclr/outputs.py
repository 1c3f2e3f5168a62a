"""Check, before any work, the paths a command is given to read and write."""

import contextlib
import glob
import hashlib
import os
import re
import socket
import stat
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout


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


@contextmanager
def replaced_when_complete(path: Path) -> Iterator[Path]:
    """A temporary name to write a new *path* to, renamed over it once complete.

    Yields:
        :func:`partial_path` of *path*. Leaving the block renames it to *path*;
        leaving it by an exception, or a rename that fails (*path* a folder,
        say), removes it, so *path* stays as it was and no temporary file is
        left behind.
    """
    temporary = partial_path(path)
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


#: Folder of the locks that :func:`exclusive_output` takes: in the machine's
#: temporary folder, so that none is left beside a user's files, and one per
#: user, so that no user's folder is in another's way. ``/tmp`` itself, not
#: ``$TMPDIR``: batch schedulers give each job its own ``TMPDIR``, and two jobs
#: would then never see each other's lock. Another user may have made it
#: first (its name is known), so :func:`lock_folder` checks it is private.
LOCK_FOLDER = (Path("/tmp") if os.name == "posix" else Path(tempfile.gettempdir())) / (
    f"torchgeo-simclr-locks-{os.getuid()}"
    if hasattr(os, "getuid")
    else "torchgeo-simclr-locks"
)

#: Folders where no lock could be made, each warned about once per process.
_UNLOCKED: set[Path] = set()


def lock_folders() -> list[Path]:
    """Where :func:`lock_folder` looks for a private folder, in order.

    Returns:
        :data:`LOCK_FOLDER`, then, on systems with user ids,
        ``$XDG_RUNTIME_DIR/torchgeo-simclr-locks`` (where set) and
        ``~/.cache/torchgeo-simclr/locks``.
    """
    folders = [LOCK_FOLDER]
    if hasattr(os, "getuid"):
        if runtime := os.environ.get("XDG_RUNTIME_DIR"):
            folders.append(Path(runtime) / "torchgeo-simclr-locks")
        with contextlib.suppress(RuntimeError):  # no home folder to be found
            folders.append(Path.home() / ".cache" / "torchgeo-simclr" / "locks")
    return folders


def _unsafe(folder: Path) -> str | None:
    """Why an existing lock folder is not private to this user, or None.

    Args:
        folder: the folder, as made or found by :func:`lock_folder`.

    Returns:
        A few words naming its owner and mode, e.g. ``"owned by uid 1001,
        mode 0o777"``, or None for a real folder of this user that no one
        else may write to.

    Raises:
        OSError: if *folder* cannot be examined.
    """
    found = os.lstat(folder)
    if stat.S_ISLNK(found.st_mode):
        return f"a symbolic link to {os.readlink(folder)!r}"
    if not stat.S_ISDIR(found.st_mode):
        return "not a folder"
    mode = stat.S_IMODE(found.st_mode)
    if found.st_uid != os.getuid() or mode & 0o022:
        return f"owned by uid {found.st_uid}, mode {mode:#o}"
    return None


def lock_folder() -> Path | None:
    """A folder for :func:`exclusive_output`'s locks that only this user can write.

    The first of :func:`lock_folders` that is, or is made (mode ``0o700``), a
    real folder (no symbolic link) owned by this user and writable by no
    other: in a folder someone else controls, they could plant links under
    the lock names (known from the outputs' paths), or hold the locks to
    block every run. Where user ids do not exist (Windows), the first is
    taken as it is: the temporary folder is the user's own there.

    Returns:
        The folder, or None where none of them can be made (a read-only
        disk): the run goes on without a lock.

    Raises:
        PermissionError: if no folder could be used and one of them is
            someone else's (or open to others).
    """
    folders = lock_folders()
    refused: list[tuple[Path, str]] = []
    for folder in folders:
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            why = _unsafe(folder) if hasattr(os, "getuid") else None
        except OSError:
            continue
        if why is None:
            return folder
        refused.append((folder, why))
    if not refused:
        return None
    folder, why = refused[0]
    others = " or ".join(repr(str(other)) for other in folders if other != folder)
    elsewhere = f", nor could one be used in {others}" if others else ""
    msg = (
        f"The lock folder {str(folder)!r} is not a private folder of yours "
        f"({why}), so another user could interfere with this run's outputs"
        f"{elsewhere}; remove it (or ask its owner to) and run the command again "
        "(nothing was written)."
    )
    raise PermissionError(msg)


@contextmanager
def exclusive_output(
    path: str | os.PathLike[str], option: str = "--out"
) -> Iterator[None]:
    """Hold the output *path* for one run at a time on this machine.

    Two runs writing the same output at once (two scheduled jobs given the
    same ``--out``) would each report the files as theirs while the last
    rename wins, file by file. The second run is refused instead, before it
    does any work. The lock is a file named by the hash of the resolved path
    in :func:`lock_folder` (:data:`LOCK_FOLDER` where it is private); the
    operating system releases it when the process ends, however it ends.
    Where no lock can be made (a read-only temporary folder), the run goes
    on without one, with a warning (once per folder).

    Args:
        path: the output, as given.
        option: the option that gave it, for the message.

    Yields:
        Nothing; the output is held until the block is left.

    Raises:
        FileExistsError: if another run on this machine holds *path*.
        PermissionError: if the lock folder is someone else's
            (:func:`lock_folder`).
    """
    key = hashlib.sha1(os.fsencode(Path(path).resolve())).hexdigest()[:20]
    folder = lock_folder()
    lock = None
    if folder is None:
        _warn_unlocked(LOCK_FOLDER, "no folder for locks could be made")
    else:
        lock = FileLock(folder / f"{key}.lock", timeout=0)
        try:
            lock.acquire()
        except Timeout:
            msg = (
                f"Another torchgeo-simclr run on this machine is writing {option} "
                f"{os.fspath(path)!r}; wait for it to finish or pass another "
                f"{option} (nothing was written)."
            )
            raise FileExistsError(msg) from None
        except OSError as error:
            _warn_unlocked(folder, error.strerror or str(error))
            lock = None
    try:
        yield
    finally:
        if lock is not None:
            lock.release()


def _warn_unlocked(folder: Path, why: str) -> None:
    """Warn, once per folder, that runs go on without a lock there.

    Args:
        folder: where the lock was to be made.
        why: why it could not be, a few words.
    """
    if folder in _UNLOCKED:
        return
    _UNLOCKED.add(folder)
    warnings.warn(
        f"No lock could be made in {str(folder)!r} ({why}), so a second "
        "torchgeo-simclr run given the same output at once would not be refused; "
        "make sure only one run at a time writes each output.",
        UserWarning,
        stacklevel=4,
    )


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


def refuse_unless_ours(
    path: Path, named: str, what: str, fault: Callable[[Path], str | None], fix: str
) -> None:
    """Refuse, even to overwrite, an existing output that no earlier run wrote.

    ``--overwrite`` replaces a command's own earlier output only: a file of
    the user's that merely has the right suffix is kept, whatever is asked.

    Args:
        path: the output file; nothing is checked where it does not exist.
        named: how the message names it, followed by ``is not``, e.g.
            ``"--out 'index.parquet'"``.
        what: what an earlier output is, e.g. ``"an embeddings index written
            by embed"``.
        fault: why an existing file is not an earlier output (a few words),
            or None where it is one.
        fix: what to do instead, e.g. ``"choose another --out"``.

    Raises:
        FileExistsError: if *path* exists and *fault* finds it is not ours.
    """
    if not path.exists():
        return
    try:
        why = fault(path)
    except OSError as error:
        why = f"unreadable: {error.strerror or error}"
    if why is not None:
        msg = (
            f"{named} is not {what} ({why}), so even --overwrite does not replace "
            f"it; {fix} or remove it yourself (nothing was written)."
        )
        raise FileExistsError(msg)


def check_out_replaceable(
    out: Path,
    what: str,
    fault: Callable[[Path], str | None],
    overwrite: bool,
    option: str = "--out",
) -> None:
    """Refuse an existing ``--out`` unless an earlier run wrote it and *overwrite*.

    Args:
        out: the output file.
        what: what an earlier output is (see :func:`refuse_unless_ours`).
        fault: why an existing file is not one, or None where it is.
        overwrite: allow replacing an earlier output.
        option: the option that gave *out*, for the messages.

    Raises:
        FileExistsError: if *out* exists and is not an earlier output, or is
            one and *overwrite* is False.
    """
    named = f"{option} {str(out)!r}"
    refuse_unless_ours(out, named, what, fault, f"choose another {option}")
    if out.exists() and not overwrite:
        msg = f"{named} already exists; pass --overwrite to replace it."
        raise FileExistsError(msg)


#: How the ``Software`` text of a PNG the package draws begins.
PNG_SOFTWARE = "torchgeo-simclr "


def png_marks(kind: str) -> dict[str, str]:
    """PNG text that marks a picture as a *kind* the package drew.

    Args:
        kind: what the picture is, e.g. ``"torchgeo-simclr search contact
            sheet"``; :func:`png_fault` looks for it.

    Returns:
        ``Software`` (``torchgeo-simclr VERSION``) and ``Description``
        (*kind*), for ``savefig(..., metadata=...)``.
    """
    from . import __version__

    return {"Software": f"{PNG_SOFTWARE}{__version__}", "Description": kind}


def png_fault(path: Path, kind: str) -> str | None:
    """Why an existing *path* is not a PNG of *kind* the package drew, or None.

    Args:
        path: the file.
        kind: the ``Description`` of :func:`png_marks` it should carry.

    Returns:
        A few words for a message, or None for a PNG marked as *kind*.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:  # reads the text before the pixels
            png, text = image.format == "PNG", dict(image.info)
    except (OSError, Image.DecompressionBombError):
        return "not an image"
    if not png:
        return "not a PNG"
    if not str(text.get("Software", "")).startswith(PNG_SOFTWARE):
        return "no 'Software' text of torchgeo-simclr"
    if text.get("Description") != kind:
        return f"its 'Description' is not {kind!r}"
    return None
