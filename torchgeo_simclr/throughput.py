"""Inference throughput of models measured side by side on the same batch."""

import multiprocessing
import signal
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from types import TracebackType

import torch
from torch import Tensor, nn

from .models.checkpoint import load_model

#: Patches per batch when timing checkpoints.
CHECKPOINT_BATCH = 64

#: Timed rounds per model when timing checkpoints; each model's figure is its
#: best round.
CHECKPOINT_REPEATS = 15


@torch.no_grad()
def inference_throughput(
    models: Mapping[str, nn.Module], batch: Tensor, repeats: int = 5, warmup: int = 1
) -> dict[str, float]:
    """Images per second of each model's forward pass, measured interleaved.

    The models take turns on the same batch (model A, model B, A, B, ...), so
    a slow moment of a shared machine hits all of them alike and their ratio
    is steadier than separate timings. Each model's figure is its best round.

    Args:
        models: name → model (put in eval mode here).
        batch: input ``[B, C, H, W]`` on the models' device.
        repeats: timed rounds per model.
        warmup: untimed rounds per model first.

    Returns:
        name → images per second.
    """
    for model in models.values():
        model.eval()
    best = dict.fromkeys(models, float("inf"))
    for round_ in range(warmup + repeats):
        for name, model in models.items():
            if batch.is_cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            model(batch)
            if batch.is_cuda:
                torch.cuda.synchronize()
            if round_ >= warmup:
                best[name] = min(best[name], time.perf_counter() - start)
    return {name: batch.shape[0] / seconds for name, seconds in best.items()}


def checkpoint_throughput(
    checkpoints: dict[str, str], patch_size: int, threads: int
) -> dict[str, float]:
    """Images per second of fine-tuned or distilled checkpoints, side by side.

    Each network is rebuilt from its file as ``predict`` rebuilds it (memory
    order included) and timed by :func:`inference_throughput` on one random
    batch of :data:`CHECKPOINT_BATCH` patches, on the CPU.

    Args:
        checkpoints: name → ``.ckpt`` path.
        patch_size: patch side, pixels.
        threads: torch threads.

    Returns:
        name → images per second.
    """
    torch.set_num_threads(threads)
    models = {name: load_model(path).model for name, path in checkpoints.items()}
    bands = next(iter(models.values())).spec.in_channels
    generator = torch.Generator().manual_seed(0)
    batch = torch.randn(
        CHECKPOINT_BATCH, bands, patch_size, patch_size, generator=generator
    )
    return inference_throughput(models, batch, repeats=CHECKPOINT_REPEATS)


class FreshProcessTimer:
    """Times checkpoints in a separate process that does nothing else.

    A process that has trained for a while runs small networks slower than a
    fresh one: on a 2-core Intel CPU, a RegNetX-200MF student timed against
    its ResNet-18 teacher in the process that had just distilled it ran
    2.6-3.1x the teacher's speed, and 3.5x when the same two checkpoints were
    timed in a new process. Maps are made in a new process (``predict``), so
    this timer keeps one worker process for all timings, started at the first
    (it imports torch once, a few seconds).
    """

    def __init__(self) -> None:
        """Initialise a new FreshProcessTimer; no process starts yet."""
        #: The worker, once started.
        self.pool: ProcessPoolExecutor | None = None

    def __call__(
        self, checkpoints: Mapping[str, str | Path], patch_size: int
    ) -> dict[str, float]:
        """Time *checkpoints* in the worker; see :func:`checkpoint_throughput`.

        Args:
            checkpoints: name → ``.ckpt`` path.
            patch_size: patch side, pixels.

        Returns:
            name → images per second.
        """
        paths = {name: str(path) for name, path in checkpoints.items()}
        task = partial(
            checkpoint_throughput, paths, patch_size, torch.get_num_threads()
        )
        if self.pool is not None:
            return self.pool.submit(task).result()
        self.pool = ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn")
        )
        # The first submit starts the worker. A spawned Python keeps Ctrl-C
        # ignored if it starts that way, from its first import on: the parent
        # stops it, without a traceback of the worker's.
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        try:
            future = self.pool.submit(task)
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)
        return future.result()

    def __enter__(self) -> "FreshProcessTimer":
        """Return self.

        Returns:
            This timer.
        """
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the worker process, if it was started."""
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
