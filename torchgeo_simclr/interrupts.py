"""Ctrl-C and SIGTERM stop a run cleanly, as ``KeyboardInterrupt``, Lightning too."""

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a batch system's time limit), raised like Ctrl-C.

    A ``KeyboardInterrupt``, so everything that cleans up after Ctrl-C (the
    temporary files of a map, an index, a run's state) does so here too.
    """


def raise_terminated(signum: int, frame: FrameType | None) -> None:
    """SIGTERM handler: raise :class:`Terminated` where the program is.

    Args:
        signum: the signal number.
        frame: the interrupted frame.

    Raises:
        Terminated: always.
    """
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
    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


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
    """Ctrl-C after a command had finished some of its outputs.

    Commands say what an interrupt left behind; this one carries the
    sentence, for when it differs from the command's usual one.
    """

    def __init__(self, kept: str) -> None:
        """Initialise a new Interrupted.

        Args:
            kept: what was written or kept, one sentence for the user.
        """
        super().__init__(kept)
        #: What was written or kept.
        self.kept = kept


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
