"""Inference throughput of models measured side by side on the same batch."""

import time

import torch
from torch import Tensor, nn


@torch.no_grad()
def inference_throughput(
    models: dict[str, nn.Module], batch: Tensor, repeats: int = 5, warmup: int = 1
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
