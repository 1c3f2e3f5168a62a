"""Tiled prediction: wall time against the pure forward pass, and peak memory.

1. Time ``predict_map`` over a region against the model's forward pass alone
   on the same windows (read beforehand, already in memory), interleaved round
   by round so both see the same machine load. The ratio is the cost of
   reading, blending, writing the COGs, polygons and summary (target <= 1.25).
2. Run ``predict_map`` in a fresh process for a small region and for one 16x
   larger (4x the side) and compare their peak resident memory (target <= 1.25),
   and, in a second run each, the peak of the memory Python and NumPy allocate
   (tracemalloc), which leaves out the fixed cost of torch and the model and so
   shows any growth.

    python benchmarks/prediction_throughput.py --checkpoint CKPT --root data/sample
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from machine import describe

from torchgeo_simclr.datamodules.prediction import MapDataModule
from torchgeo_simclr.datasets import CentralValleyS2
from torchgeo_simclr.inference import MapResult, predict_map
from torchgeo_simclr.inference.predict import default_window
from torchgeo_simclr.tasks.prediction import MapPredictionTask


def region(root: str, side: int) -> tuple[tuple[float, ...], str]:
    """A square of *side* pixels at the imagery's top-left corner, and its CRS."""
    imagery = CentralValleyS2(root)
    left, top = imagery.bounds[0].start, imagery.bounds[1].stop
    res = imagery.res[0]
    bbox = (left, top - side * res, left + side * res, top)
    return bbox, str(imagery.crs.to_string())


def forward_seconds(task: MapPredictionTask, datamodule: MapDataModule) -> float:
    """Seconds of the task's predict_step alone on windows already in memory."""
    datamodule.setup("predict")
    batches = list(datamodule.predict_dataloader())
    start = time.perf_counter()
    with torch.inference_mode():
        for i, batch in enumerate(batches):
            task.predict_step(batch, i)
    return time.perf_counter() - start


def map_region(
    args: argparse.Namespace, bbox: tuple[float, ...], crs: str, out: Path
) -> MapResult:
    """``predict_map`` over *bbox* with the benchmark's checkpoint and batch size."""
    return predict_map(
        args.checkpoint,
        args.root,
        out,
        bbox=bbox,
        bbox_crs=crs,
        batch_size=args.batch_size,
        overwrite=True,
        progress=False,
    )


def peak_rss_mib() -> float:
    """Peak resident memory of this process, MiB.

    Read from ``VmHWM`` in ``/proc/self/status``: unlike ``ru_maxrss``, which
    Linux carries over from the parent through fork and exec, it belongs to this
    process's own address space.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("/proc/self/status has no VmHWM line (not Linux?)")


def child(args: argparse.Namespace) -> None:
    """Predict one region in this process and print its peak RSS as JSON."""
    import tracemalloc

    bbox, crs = region(args.root, args.side)
    if args.trace:
        tracemalloc.start()
    with tempfile.TemporaryDirectory() as out:
        result = map_region(args, bbox, crs, Path(out) / "map.tif")
    traced_mib = tracemalloc.get_traced_memory()[1] / 2**20 if args.trace else 0.0
    peak_mib = peak_rss_mib()
    pixels = result.summary["width"] * result.summary["height"]
    print(
        json.dumps({"peak_mib": peak_mib, "traced_mib": traced_mib, "pixels": pixels})
    )


def main() -> None:
    """Print the time ratio, pixels per second and the peak-memory ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="fine-tuned .ckpt")
    parser.add_argument("--root", default="data/sample")
    parser.add_argument(
        "--side", type=int, default=2048, help="side of the timed region, px"
    )
    parser.add_argument(
        "--memory-side",
        type=int,
        default=512,
        help="side of the small memory region, px (the large one is 4x)",
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    task = MapPredictionTask(args.checkpoint).eval()

    print(describe())
    size, overlap = default_window(task.problem, task.data.patch_size)
    bbox, crs = region(args.root, args.side)
    datamodule = MapDataModule(
        args.root,
        bbox=bbox,
        bbox_crs=crs,
        bands=task.data.bands,
        patch_size=size,
        overlap=overlap,
        batch_size=args.batch_size,
    )
    walls, forwards = [], []
    with tempfile.TemporaryDirectory() as out:
        for _ in range(args.repeats):
            forwards.append(forward_seconds(task, datamodule))
            start = time.perf_counter()
            result = map_region(args, bbox, crs, Path(out) / "map.tif")
            walls.append(time.perf_counter() - start)
    wall, forward = statistics.median(walls), statistics.median(forwards)
    pixels = result.summary["width"] * result.summary["height"]
    print(
        f"{task.model.spec.model} {task.problem}, windows {size} px overlap "
        f"{overlap}, batch {args.batch_size}, region {args.side} x {args.side} px"
    )
    print(f"predict_map wall time  {wall:8.2f} s  (runs: {_fmt(walls)})")
    print(f"forward only           {forward:8.2f} s  (runs: {_fmt(forwards)})")
    print(f"ratio wall / forward   {wall / forward:8.2f}   (target <= 1.25)")
    print(f"pixels per second      {pixels / wall:10,.0f}")

    peaks: dict[int, dict[str, float]] = {}
    sides = (args.memory_side, 4 * args.memory_side)
    for side, trace in [(side, trace) for side in sides for trace in (False, True)]:
        command = [
            sys.executable,
            __file__,
            "--child",
            "--checkpoint",
            args.checkpoint,
            "--root",
            args.root,
            "--side",
            str(side),
            "--batch-size",
            str(args.batch_size),
            *(["--trace"] if trace else []),
        ]
        output = subprocess.run(command, capture_output=True, text=True, check=True)
        measured = json.loads(output.stdout.strip().splitlines()[-1])
        # RSS from the run without tracemalloc (which costs memory itself).
        key = "traced_mib" if trace else "peak_mib"
        peaks.setdefault(side, measured)[key] = measured[key]
    small, large = peaks[sides[0]], peaks[sides[1]]
    print(f"{'region':<22}{'pixels':>12}{'peak RSS MiB':>14}{'traced MiB':>12}")
    for side in sides:
        peak = peaks[side]
        print(
            f"{side} x {side} px{'':<{13 - 2 * len(str(side))}}{peak['pixels']:>12,}"
            f"{peak['peak_mib']:>14.0f}{peak['traced_mib']:>12.1f}"
        )
    ratio = large["peak_mib"] / small["peak_mib"]
    traced = large["traced_mib"] / small["traced_mib"]
    area = large["pixels"] / small["pixels"]
    print(
        f"ratio large / small    {ratio:8.2f}   peak RSS, {area:.0f}x area "
        "(target <= 1.25)"
    )
    print(f"ratio large / small    {traced:8.2f}   traced Python + NumPy memory")


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    main()
