"""What each DataLoader worker process does as it starts.

A batch system's time limit, ``timeout`` or a terminal's Ctrl-C signal the
whole process group, so the DataLoader workers get the main process's
SIGTERM too. By default SIGTERM ended them at once, and PyTorch's SIGCHLD
handler in the main process then raised "DataLoader worker (pid N) is killed
by signal: Terminated" over the run's own clean-up: plain ``torchgeo fit``
exited 1 without naming the checkpoint that resumes it, and
``torchgeo-simclr fit`` printed a traceback after its resume line. Workers
that ignore SIGTERM leave the main process to stop the run, which then shuts
them down as at the end of an epoch. Ctrl-C (SIGINT) is left as PyTorch sets
it: a worker exits quietly on it.
"""

import signal

from ..datasets.sentinel2 import fresh_file_handles


def ignore_sigterm(worker_id: int) -> None:
    """A DataLoader ``worker_init_fn``: the worker ignores SIGTERM.

    The main process stops the run on SIGTERM and shuts its workers down:
    each finishes the batch it is reading, then exits (PyTorch's fallback,
    SIGTERM to a worker that has not exited within 5 s, is ignored too; a
    worker also exits once the main process is gone). SIGKILL still ends it.

    Args:
        worker_id: index of the worker (unused).
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def raster_worker(worker_id: int) -> None:
    """A DataLoader ``worker_init_fn`` for raster datasets.

    The worker ignores SIGTERM (see :func:`ignore_sigterm`) and opens its own
    raster file handles (see
    :func:`~torchgeo_simclr.datasets.sentinel2.fresh_file_handles`).

    Args:
        worker_id: index of the worker.
    """
    ignore_sigterm(worker_id)
    fresh_file_handles(worker_id)
