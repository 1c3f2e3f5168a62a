"""Throughput of batched SimCLR views against a per-sample loop, in one run.

(a) ``SimCLRViews`` makes two views of a ``[B, C, H, W]`` batch: every op runs once
    on the sub-batch of samples that drew it.
(b) A per-sample loop does the same work with the same op classes: each sample
    alone, as a batch of 1, draws its ops per view and applies them in the same
    canonical order; the views are concatenated back into batches.

Both are timed alternately (a, b, b, a, a, b, ...) so that load from other
processes on a shared machine hits both alike. Throughput counts input images
per second (each image yields two views). Prints the ratio batched / per-sample.

Example::

    python benchmarks/augmentation_throughput.py --batch-size 256 --size 120 \
        --channels 12 --repeats 5 --device cpu
"""

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from machine import describe
from torch import Tensor

from torchgeo_simclr.transforms import SimCLRViews


def per_sample_views(views: SimCLRViews, image: Tensor) -> list[Tensor]:
    """Make ``views.num_views`` views, one sample at a time (batch of 1)."""
    outputs: list[list[Tensor]] = [[] for _ in range(views.num_views)]
    for index in range(image.shape[0]):
        sample = image[index : index + 1]
        for view in outputs:
            selection = views.sample_ops(1)[0]
            result = sample
            for column, name in enumerate(views.op_names):
                if selection[column]:
                    result = views.augmentations[name](result)
            view.append(result)
    return [torch.cat(view) for view in outputs]


def batched_views(views: SimCLRViews, image: Tensor) -> list[Tensor]:
    """Make ``views.num_views`` views of the whole batch at once."""
    return [view for view, _ in views(image)]


def timed(fn: Callable[[], list[Tensor]], device: torch.device) -> float:
    """Run ``fn`` once and return its wall time in seconds (device synced)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--size", type=int, default=120, help="H = W in pixels")
    parser.add_argument("--channels", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs each")
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    image = torch.randn(
        args.batch_size, args.channels, args.size, args.size, device=device
    )
    views = SimCLRViews(num_views=2).to(device)
    batch = args.batch_size

    print(describe())
    if device.type == "cuda":
        print(f"GPU: {torch.cuda.get_device_name(device)}")
    print(
        f"device {device}, batch [{batch}, {args.channels}, {args.size}, "
        f"{args.size}] float32, {views.num_views} views, "
        f"{views.ops_per_view} of {len(views.op_names)} ops per view, "
        f"{args.repeats} timed runs each"
    )

    runs: dict[str, Callable[[], list[Tensor]]] = {
        "batched": lambda: batched_views(views, image),
        "per-sample": lambda: per_sample_views(views, image),
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    with torch.no_grad():
        for fn in runs.values():
            timed(fn, device)  # warm-up
        order = list(runs)
        for _ in range(args.repeats):
            for name in order:
                times[name].append(timed(runs[name], device))
            order.reverse()

    throughput = {}
    for name, values in times.items():
        median = statistics.median(values)
        throughput[name] = batch / median
        print(
            f"{name:>10}: {throughput[name]:8.1f} images/s "
            f"(median {median:.3f} s per batch, min {min(values):.3f} s, "
            f"max {max(values):.3f} s)"
        )
    ratio = throughput["batched"] / throughput["per-sample"]
    print(f"ratio batched / per-sample: {ratio:.2f}x (target >= 3x)")


if __name__ == "__main__":
    main()
