"""Tiled prediction: wall time against the pure forward pass, and peak memory.

1. Time ``predict_map`` over a region against the model's forward pass alone
   on the same windows (read beforehand, already in memory), interleaved round
   by round so both see the same machine load. The ratio is the cost of
   reading, blending, writing the COGs, polygons and summary (target <= 1.25).
2. Run ``predict_map`` in a fresh process for the region and for one 16x
   larger (4x the side) and compare their peak resident memory (target <= 1.25).

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
from torchgeo_simclr.inference import predict_map
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


def child(args: argparse.Namespace) -> None:
    """Predict one region in this process and print its peak RSS as JSON."""
    import resource

    bbox, crs = region(args.root, args.side)
    with tempfile.TemporaryDirectory() as out:
        result = predict_map(
            args.checkpoint,
            args.root,
            Path(out) / "map.tif",
            bbox=bbox,
            bbox_crs=crs,
            batch_size=args.batch_size,
            progress=False,
        )
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    pixels = result.summary["width"] * result.summary["height"]
    print(json.dumps({"peak_mib": peak_mib, "pixels": pixels}))


def main() -> None:
    """Print the time ratio, pixels per second and the peak-memory ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="fine-tuned .ckpt")
    parser.add_argument("--root", default="data/sample")
    parser.add_argument("--side", type=int, default=512, help="region side, px")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
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
            result = predict_map(
                args.checkpoint,
                args.root,
                Path(out) / "map.tif",
                bbox=bbox,
                bbox_crs=crs,
                batch_size=args.batch_size,
                overwrite=True,
                progress=False,
            )
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

    peaks = {}
    for side in (args.side, 4 * args.side):
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
        ]
        output = subprocess.run(command, capture_output=True, text=True, check=True)
        peaks[side] = json.loads(output.stdout.strip().splitlines()[-1])
    small, large = peaks[args.side], peaks[4 * args.side]
    print(
        f"peak memory {args.side} px region  {small['peak_mib']:8.0f} MiB "
        f"({small['pixels']:,} px)"
    )
    print(
        f"peak memory {4 * args.side} px region {large['peak_mib']:8.0f} MiB "
        f"({large['pixels']:,} px, {large['pixels'] / small['pixels']:.0f}x)"
    )
    ratio = large["peak_mib"] / small["peak_mib"]
    print(f"ratio large / small    {ratio:8.2f}   (target <= 1.25)")


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    main()
