"""Inference throughput of distillation students against their teacher.

Builds the irrigation model (backbone + classifier, as the tasks do) for the
teacher and for each candidate student, each in PyTorch's default (NCHW) and in
channels-last memory order (``channels_last`` of the tasks), and times their
forward passes on the same random batch, interleaved round by round (see
:func:`torchgeo_simclr.throughput.inference_throughput`), so the printed
speed-ups are ratios taken under the same machine load. Every speed-up is over
the teacher in NCHW order.

    python benchmarks/student_throughput.py --patch-size 48 --batch-size 64
"""

import argparse

import torch
from machine import describe
from torch import nn

from torchgeo_simclr.models.classifier import IrrigationModel, ModelSpec
from torchgeo_simclr.throughput import inference_throughput

#: Name suffix of each memory order and whether it is channels-last.
ORDERS = {"": False, " (channels-last)": True}


def main() -> None:
    """Print images/s and speed-up over the teacher for every student."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="resnet18")
    parser.add_argument(
        "--students",
        nargs="+",
        default=["resnet10t", "regnetx_002", "mobilenetv3_small_075", "lcnet_100"],
    )
    parser.add_argument("--patch-size", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    print(describe())
    names = [args.teacher, *args.students]
    models: dict[str, nn.Module] = {
        f"{name}{suffix}": IrrigationModel(
            ModelSpec(name, 12, channels_last=channels_last)
        )
        for name in names
        for suffix, channels_last in ORDERS.items()
    }
    batch = torch.randn(
        args.batch_size,
        12,
        args.patch_size,
        args.patch_size,
        generator=torch.Generator().manual_seed(0),
    )
    speed = inference_throughput(models, batch, repeats=args.repeats)
    print(f"batch {args.batch_size} x 12 x {args.patch_size} x {args.patch_size}")
    print(
        f"{'model':<24}{'params':>10}{'NCHW img/s':>12}{'vs teacher':>12}"
        f"{'NHWC img/s':>12}{'vs teacher':>12}"
    )
    teacher = speed[args.teacher]
    for name in names:
        params = sum(p.numel() for p in models[name].parameters()) / 1e6
        columns = "".join(
            f"{speed[name + suffix]:>12.0f}{speed[name + suffix] / teacher:>11.2f}x"
            for suffix in ORDERS
        )
        print(f"{name:<24}{params:>9.1f}M{columns}")


if __name__ == "__main__":
    main()
