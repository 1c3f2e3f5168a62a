"""Ctrl-C and SIGTERM stop a run cleanly, as ``KeyboardInterrupt``, Lightning too."""

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a batch system's time limit), raised like Ctrl-C.

    A ``KeyboardInterrupt``, so everything that cleans up after Ctrl-C (the
    temporary files of a map, an index, a run's state) does so here too.
    """


def raise_terminated(signum: int, frame: FrameType | None) -> None:
    """SIGTERM handler: raise :class:`Terminated` where the program is.

    Once terminating, a second SIGTERM (``timeout`` and ``docker stop`` may
    send more than one) is ignored so the clean-up runs to its end.

    Args:
        signum: the signal number.
        frame: the interrupted frame.

    Raises:
        Terminated: always.
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Make SIGTERM stop the block as Ctrl-C does, cleaning up.

    Python's default for SIGTERM ends the process at once, leaving
    temporary files behind; Lightning's own handler, during a run, only
    notes the signal, and prediction then runs on to the end. With this
    handler (kept by Lightning, which calls it after its own) SIGTERM
    raises :class:`Terminated`. Outside the main thread (where Python
    delivers signals) the block runs as it is.

    Yields:
        Nothing; the previous handler is back once the block ends.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    replaced: list[Any] = []

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        # DataLoader workers ended by the same signal (sent to the whole
        # process group) would raise PyTorch's "worker killed" error over
        # the clean-up: its SIGCHLD handler is set aside.
        replaced.append(signal.signal(signal.SIGCHLD, signal.SIG_DFL))
        raise_terminated(signum, frame)

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
        if replaced:
            signal.signal(signal.SIGCHLD, replaced[0] or signal.SIG_DFL)


@contextmanager
def keyboard_interrupts() -> Iterator[None]:
    """Raise ``KeyboardInterrupt`` where Lightning ends an interrupted run.

    Lightning 2.x catches Ctrl-C in ``fit``, ``test`` and ``predict``, shuts
    the run down and calls ``sys.exit(1)`` while handling it, so a caller
    cannot tell an interrupt from a failure. Inside this context, such an
    exit (code 1, raised while handling ``KeyboardInterrupt``) becomes the
    ``KeyboardInterrupt`` again, so commands can say what was kept and exit
    with status 130; the Ctrl-C handler is put back if it was left ignored.

    Yields:
        Nothing; run the Lightning call inside.

    Raises:
        KeyboardInterrupt: if Lightning ended the run because of Ctrl-C (a
            :class:`Terminated` for SIGTERM, as it was raised).
    """
    main = threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGINT) if main else None
    try:
        yield
    except SystemExit as error:
        interrupt = error.__context__
        if error.code != 1 or not isinstance(interrupt, KeyboardInterrupt):
            raise
        if main and signal.getsignal(signal.SIGINT) != handler:
            signal.signal(signal.SIGINT, handler)
        raise interrupt.with_traceback(None) from None


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM after a command had finished some of its outputs.

    Commands say what an interrupt left behind; this one carries the
    sentence, for when it differs from the command's usual one.
    """

    def __init__(self, kept: str, by: KeyboardInterrupt | None = None) -> None:
        """Initialise a new Interrupted.

        Args:
            kept: what was written or kept, one sentence for the user.
            by: the interrupt it replaces (a :class:`Terminated` for SIGTERM).
        """
        super().__init__(kept)
        #: What was written or kept.
        self.kept = kept
        #: Whether SIGTERM, not Ctrl-C, stopped the command.
        self.terminated = by is not None and terminated(by)


def terminated(error: BaseException) -> bool:
    """Whether SIGTERM stopped the command that raised *error*.

    Args:
        error: as a command caught it.

    Returns:
        True for a :class:`Terminated`, an :class:`Interrupted` that
        replaced one, or an error raised while one was being handled (say, a
        DataLoader worker ended by the same signal).
    """
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        if isinstance(link, Terminated) or getattr(link, "terminated", False):
            return True
        seen.add(id(link))
        link = link.__cause__ or link.__context__
    return False


def global_rank() -> int:
    """This process's rank among the processes of a distributed run.

    Ctrl-C in a terminal, or a batch system's SIGTERM, reaches every rank of
    a DDP run, and each would say what was kept; rank 0 alone speaks.

    Returns:
        The rank Lightning set (``rank_zero_only.rank``) once it is imported,
        else the first of ``RANK``, ``LOCAL_RANK``, ``SLURM_PROCID`` and
        ``JSM_NAMESPACE_RANK`` in the environment (as Lightning reads them);
        0 outside a distributed run.
    """
    # Looked up, not imported: an interrupt should not wait for Lightning.
    module = sys.modules.get("lightning_utilities.core.rank_zero")
    rank = getattr(getattr(module, "rank_zero_only", None), "rank", None)
    if rank is not None:
        return int(rank)
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        value = os.environ.get(key, "")
        if value.strip().isdigit():
            return int(value)
    return 0


@contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM until the block is done, so it runs all or nothing.

    For a few quick steps that must not stop halfway, such as renaming the
    finished files of a map into place. Outside the main thread (where
    Python delivers signals) the block runs as it is.

    Yields:
        Nothing; run the steps inside.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {
        signum: signal.signal(signum, lambda signum, frame: held.append(signum))
        for signum in signals
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
    for held_signal in held:
        # Delivered now, to whatever handled the signal before.
        signal.raise_signal(held_signal)
