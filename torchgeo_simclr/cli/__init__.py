"""The ``torchgeo-simclr`` command: sample data, training, maps, embeddings.

:mod:`.parser` says what each sub-command accepts; :mod:`.data`,
:mod:`.training`, :mod:`.maps` and :mod:`.embeddings` run them.
"""

import argparse
import errno
import os
import re
import shutil
import signal
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path
from typing import NoReturn, TextIO

from ..interrupts import global_rank, sigterm_as_interrupt, terminated
from ..outputs import exclusive_output
from .parser import build_parser
from .training import _fit

#: Directory of torchgeo_simclr: its warnings are printed as one line.
PACKAGE = Path(__file__).resolve().parents[1]

#: What an interrupted command leaves, by command.
INTERRUPTED: dict[str, str] = {
    **dict.fromkeys(
        ("predict", "embed", "search", "embedding-map", "change"),
        " Outputs are written under temporary names and renamed only once "
        "complete, so no file was written or changed.",
    ),
    # Once training runs, the CLI names the checkpoint that resumes it.
    "fit": " It stopped before training began, so nothing was saved.",
    **dict.fromkeys(
        ("validate", "test"),
        " It writes no checkpoint; run it again for the scores.",
    ),
}

#: LightningCLI's subcommands that ``torchgeo-simclr`` runs (``predict`` only
#: with ``--config``: without, it is this tool's own map command).
LIGHTNING = ("fit", "validate", "test", "predict")


#: Errors that are bad input, each printed as one line.
ONE_LINE: tuple[type[Exception], ...] = (
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
    ConnectionError,
    ValueError,
)

#: Options naming what each command writes, and whether each names a folder
#: (else a file in the folder written).
OUTPUTS: dict[str, tuple[tuple[str, bool], ...]] = {
    "sample-data": (("--root", True),),
    "demo": (("--root", True),),
    "experiment": (("--out", True),),
    "download": (("--out", True),),
    "predict": (("--out", False),),
    "evaluate": (("--scores", False), ("--fields", False)),
    "field-stats": (("--out", False), ("--summary", False)),
    "embed": (("--out", False),),
    "search": (("--out", False), ("--sheet", False)),
    "embedding-map": (("--out", False),),
    "change": (("--out", False),),
}

#: How a full disk reads where no errno says so (SQLite's, GDAL's).
FULL_DISK_MESSAGES = ("No space left on device", "database or disk is full")

#: Libraries whose write errors may hide a full disk: GDAL prints the cause
#: and raises e.g. "Failed to commit transaction" or "Failed to read directory".
GDAL_MODULES = frozenset({"rasterio", "pyogrio", "fiona"})


def _chain(error: BaseException) -> Iterator[BaseException]:
    """*error* and the errors it was raised from or while handling."""
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        link = link.__cause__ or link.__context__


def _says_disk_full(error: BaseException) -> bool:
    """Whether *error* itself says the disk is full."""
    return (isinstance(error, OSError) and error.errno == errno.ENOSPC) or any(
        text in str(error) for text in FULL_DISK_MESSAGES
    )


def _may_be_disk_full(error: BaseException) -> bool:
    """Whether *error* is a write error that a full disk may be behind."""
    if type(error).__module__.partition(".")[0] in GDAL_MODULES:
        return True
    return type(error) is OSError and error.errno in (None, errno.EIO)


def _nearly_full(folder: Path) -> bool:
    """Whether *folder*'s file system has under 1 MiB or 0.1% free."""
    usage = shutil.disk_usage(folder)
    return usage.free < max(2**20, usage.total // 1000)


def _existing(path: Path) -> Path:
    """*path*, or its nearest parent that exists (a folder not made yet)."""
    return next((folder for folder in (path, *path.parents) if folder.exists()), Path())


def _full_disk(args: argparse.Namespace, error: Exception) -> str | None:
    """Say in one sentence that the disk ran full, if that is what *error* is.

    A full disk is an ENOSPC error anywhere in the chain of errors; or,
    while a folder written to has almost no room left, an error that says so
    in words, or (no refusal of bad input) a GDAL, OGR or plain I/O error.
    Where no file is named as refused, the sentence keeps the error's own
    first line, as it may be another fault.

    Args:
        args: the parsed command line, naming what it writes.
        error: what stopped the command.

    Returns:
        The sentence (naming the folder, the room left in it and what to do),
        or None if *error* is something else.
    """
    chain = list(_chain(error))
    said = any(_says_disk_full(link) for link in chain)
    if not said and (
        isinstance(error, ONE_LINE) or not any(map(_may_be_disk_full, chain))
    ):
        return None
    outputs: list[tuple[str | None, Path]] = [
        (name, path if is_folder else path.parent)
        for name, path, is_folder in _given_outputs(args)
    ]
    outputs.append((None, Path()))  # e.g. fit's checkpoints, under the current one
    refused = [
        Path(os.fsdecode(link.filename)).parent
        for link in chain
        if isinstance(link, OSError) and link.filename and _says_disk_full(link)
    ]
    if refused:
        where = _existing(refused[0]).resolve()
        option, folder = next(
            ((o, f) for o, f in outputs if o and _existing(f).resolve() == where),
            (None, refused[0]),
        )
    else:
        # No file named as refused: a folder written to that is nearly full.
        # Without one, only an ENOSPC errno still counts (the partial files are
        # gone by now, and their room with them), not a message that merely
        # says so, such as torch's for its shared memory (/dev/shm).
        full = [(o, f) for o, f in outputs if _nearly_full(_existing(f))]
        errno_said = any(
            isinstance(link, OSError) and link.errno == errno.ENOSPC for link in chain
        )
        if not full and not errno_said:
            return None
        option, folder = (full or outputs)[0]
    free = shutil.disk_usage(_existing(folder)).free
    remedy = f"choose another {option}" if option else "run it again"
    # Where no file was named, the error itself is kept: it may be another fault.
    cause = "" if refused else f"; the write failed with {_first_line(error)}"
    return (
        f"No space left on device writing under "
        f"'{str(folder).rstrip(os.sep)}{os.sep}' ({free / 1e6:,.1f} MB free{cause}); "
        f"free space there or {remedy}."
    )


def _first_line(error: BaseException) -> str:
    """``Type: first line of the message`` of *error*."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


@contextmanager
def _held_outputs(args: argparse.Namespace) -> Iterator[None]:
    """Hold each output of the command for this run (see :func:`exclusive_output`).

    A second run given the same output at once (two scheduled jobs with one
    ``--out``) is refused in one line before it does any work.

    Args:
        args: the parsed command line, naming what it writes (:data:`OUTPUTS`).

    Yields:
        With the outputs held.
    """
    with ExitStack() as stack:
        for name, path, _ in _given_outputs(args):
            stack.enter_context(exclusive_output(path, name))
        yield


def _given_outputs(args: argparse.Namespace) -> list[tuple[str, Path, bool]]:
    """The outputs a command line names (:data:`OUTPUTS`), as given.

    Returns:
        ``(option, path, whether a folder)`` of each output option given.
    """
    given = []
    for name, is_folder in OUTPUTS.get(args.command, ()):
        value = getattr(args, name[2:].replace("-", "_"), None)
        if value is not None:
            given.append((name, Path(value), is_folder))
    return given


@contextmanager
def _gdal_logged() -> Iterator[None]:
    """Send GDAL's messages to the ``rasterio`` logger rather than stderr.

    GDAL prints errors it only acts on later itself, e.g. ``ERROR 1:
    TIFFAppendToStrip:Write error`` once per strip on a full disk, before the
    command's own one-line error says what failed. (libtiff's own
    ``_tiffWriteProc: No space left on device.`` lines still come through.)

    Yields:
        Within a :class:`rasterio.Env`, for the whole command.
    """
    import rasterio

    with rasterio.Env():
        yield


def _show_warning(
    prefix: str,
    default: Callable[..., None],
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """Print this package's warnings as one line, others as Python does."""
    if Path(filename).resolve().is_relative_to(PACKAGE):
        print(f"{prefix}: warning: {message}", file=sys.stderr)
    else:
        default(message, category, filename, lineno, file, line)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the ``torchgeo-simclr`` command.

    Args:
        argv: arguments (default: ``sys.argv[1:]``).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv in (["fit"], ["validate"], ["test"]):
        # LightningCLI would print its own usage (with subcommands this tool
        # does not have) and "required: fit.data, fit.model".
        example = (
            "--config conf/simclr_quickstart.yaml"
            if argv[0] == "fit"
            else "--config conf/finetune_quickstart.yaml --ckpt_path "
            "runs/finetune_quickstart/checkpoints/last.ckpt"
        )
        print(
            f"torchgeo-simclr {argv[0]}: error: pass a config, e.g. torchgeo-simclr "
            f"{argv[0]} {example} (the README names one per stage; "
            f"torchgeo-simclr {argv[0]} --help lists every option).",
            file=sys.stderr,
        )
        raise SystemExit(2)
    if _lightning_command(argv):
        # Everything after the subcommand, --help included, goes to
        # LightningCLI as is.
        args = argparse.Namespace(command=argv[0], func=_fit, arguments=argv[1:])
    else:
        args = build_parser().parse_args(argv)
    prefix = f"torchgeo-simclr {args.command}"
    try:
        with (
            warnings.catch_warnings(),
            sigterm_as_interrupt(),
            _gdal_logged(),
            _held_outputs(args),
        ):
            warnings.showwarning = partial(_show_warning, prefix, warnings.showwarning)
            args.func(args)
    except Exception as error:
        # Raised while a SIGTERM was being handled, e.g. by a DataLoader
        # worker ended by the same SIGTERM.
        if terminated(error):
            _stopped(prefix, args.command, error)
        full = _full_disk(args, error)
        if full is not None:  # else a log that watches for "error:" misses it
            print(f"{prefix}: error: {full}", file=sys.stderr)
            raise SystemExit(2) from None
        if isinstance(error, ONE_LINE):
            print(f"{prefix}: error: {error}", file=sys.stderr)
            raise SystemExit(2) from None
        # Lightning's refusal of trainer settings, e.g. "No supported gpu
        # backend found!" for --trainer.accelerator gpu on a CPU-only machine.
        if type(error).__name__ != "MisconfigurationException":
            raise
        import torch

        hint = ""
        if re.search(r"gpu|cuda|accelerator|device", str(error), re.IGNORECASE):
            hint = (
                f" (torch sees {torch.cuda.device_count()} GPU(s); check "
                "--trainer.accelerator and --trainer.devices, or use auto)"
            )
        print(f"{prefix}: error: {error}{hint}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt as error:
        _stopped(prefix, args.command, error)


def _lightning_command(argv: Sequence[str]) -> bool:
    """Whether a command line is one of LightningCLI's subcommands.

    Args:
        argv: ``torchgeo-simclr``'s arguments, e.g. ``["test", "--config",
            "conf/finetune_quickstart.yaml"]``.

    Returns:
        True for ``fit``, ``validate`` and ``test``, and for ``predict`` with
        a ``--config`` (the map command takes none).
    """
    if not argv or argv[0] not in LIGHTNING:
        return False
    if argv[0] != "predict":
        return True
    return any(
        token in ("--config", "-c") or token.startswith("--config=")
        for token in argv[1:]
    )


def _stopped(prefix: str, command: str, error: BaseException) -> NoReturn:
    """Say what Ctrl-C or SIGTERM left, and exit with the shell's status for it.

    In a distributed run (DDP) every rank gets the signal; only rank 0 says
    what was left, the others exit with the same status silently.

    Args:
        prefix: ``torchgeo-simclr COMMAND``.
        command: the sub-command.
        error: what stopped it; an :class:`~torchgeo_simclr.interrupts.Interrupted`
            says what was written, other interrupts get the command's usual note.

    Raises:
        SystemExit: 143 for SIGTERM (``kill``, a batch system's time limit),
            130 for Ctrl-C.
    """
    kept = getattr(error, "kept", None)
    note = f" {kept}" if kept else INTERRUPTED.get(command, "")
    speaks = global_rank() == 0
    if terminated(error):
        if speaks:
            print(f"\n{prefix}: terminated (SIGTERM).{note}", file=sys.stderr)
        raise SystemExit(128 + signal.SIGTERM) from None
    if speaks:
        print(f"\n{prefix}: interrupted.{note}", file=sys.stderr)
    raise SystemExit(130) from None
