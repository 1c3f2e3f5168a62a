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
