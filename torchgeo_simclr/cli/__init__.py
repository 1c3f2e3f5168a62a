"""The ``torchgeo-simclr`` command: sample data, training, maps, embeddings.

:mod:`.parser` says what each sub-command accepts; :mod:`.data`,
:mod:`.training`, :mod:`.maps` and :mod:`.embeddings` run them.
"""

import argparse
import re
import signal
import sys
import warnings
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import NoReturn, TextIO

from ..interrupts import global_rank, sigterm_as_interrupt, terminated
from .parser import build_parser
from .training import _fit

#: Directory of torchgeo_simclr: its warnings are printed as one line.
PACKAGE = Path(__file__).resolve().parents[1]

#: What an interrupted command leaves, by command.
INTERRUPTED: dict[str, str] = {
    **dict.fromkeys(
        ("predict", "embed", "search", "embedding-map"),
        " Outputs are written under temporary names and renamed only once "
        "complete, so no file was written or changed.",
    ),
    # Once training runs, the CLI names the checkpoint that resumes it.
    "fit": " It stopped before training began, so nothing was saved.",
}


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
    if argv == ["fit"]:
        # LightningCLI would print its own usage (with subcommands this tool
        # does not have) and "required: fit.data, fit.model".
        print(
            "torchgeo-simclr fit: error: pass a config, e.g. torchgeo-simclr fit "
            "--config conf/simclr_quickstart.yaml (the README names one per stage; "
            "torchgeo-simclr fit --help lists every option).",
            file=sys.stderr,
        )
        raise SystemExit(2)
    if argv[:1] == ["fit"]:
        # Everything after `fit`, --help included, goes to LightningCLI as is.
        args = argparse.Namespace(command="fit", func=_fit, arguments=argv[1:])
    else:
        args = build_parser().parse_args(argv)
    prefix = f"torchgeo-simclr {args.command}"
    try:
        with warnings.catch_warnings(), sigterm_as_interrupt():
            warnings.showwarning = partial(_show_warning, prefix, warnings.showwarning)
            args.func(args)
    except (
        FileNotFoundError,
        FileExistsError,
        NotADirectoryError,
        IsADirectoryError,
        PermissionError,
        ConnectionError,
        ValueError,
    ) as error:
        if terminated(error):  # raised while a SIGTERM was being handled
            _stopped(prefix, args.command, error)
        print(f"{prefix}: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except Exception as error:
        if terminated(error):  # e.g. a DataLoader worker ended by the same SIGTERM
            _stopped(prefix, args.command, error)
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
