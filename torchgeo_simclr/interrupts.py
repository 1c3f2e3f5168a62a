"""Ctrl-C during a Lightning run, raised again as ``KeyboardInterrupt``."""

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


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
        KeyboardInterrupt: if Lightning ended the run because of Ctrl-C.
    """
    main = threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGINT) if main else None
    try:
        yield
    except SystemExit as error:
        if error.code != 1 or not isinstance(error.__context__, KeyboardInterrupt):
            raise
        if main and signal.getsignal(signal.SIGINT) != handler:
            signal.signal(signal.SIGINT, handler)
        raise KeyboardInterrupt from None


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
    """Hold Ctrl-C until the block is done, so it runs all or nothing.

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
    previous = signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)
    if held:
        # Delivered now, to whatever handled Ctrl-C before.
        signal.raise_signal(signal.SIGINT)
