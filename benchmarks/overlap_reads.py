"""Reading patches where two products overlap, against reading one product.

Copies a per-band product (by default the real Major TOM cell in
``../shared/fixtures``) into four roots: the product alone; it and a copy ten
days older, both with their ``cloud_mask.tif``; the same pair without masks;
and the pair with a cloud painted over most of the newer product's mask, so
the older one must fill it. It reads the same random 48-px patches (all 12
bands, 10 m) from each, round by round, and prints milliseconds per patch and
the ratio to the product alone. A newer product with data everywhere should
cost about what one product costs: the older one is read only where the newer
one has no data.

    python benchmarks/overlap_reads.py
"""

import argparse
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import rasterio
from machine import describe

from torchgeo_simclr.constants import S2_BANDS
from torchgeo_simclr.datasets import CentralValleyS2
from torchgeo_simclr.datasets.cloud_masks import CLOUD_MASK_NAME

#: The real Major TOM cell beside the checkout.
FIXTURE = (
    Path(__file__).parents[2]
    / "shared"
    / "fixtures"
    / "sentinel2_l2a_majortom"
    / "S2B_MSIL2A_20200223T032739_N9999_R018_T48QUE_20230924T183543"
)

#: The sensing date of the copy made ten days older.
OLDER = ("20200223T032739", "20200213T032739")


def layouts(product: Path, folder: Path) -> dict[str, Path]:
    """Write the four roots the benchmark reads; return them by name."""
    older = product.name.replace(*OLDER)
    roots: dict[str, Path] = {}
    for name in ("one product", "two, masks", "two, no masks", "two, newer cloudy"):
        root = folder / name.replace(" ", "_").replace(",", "")
        shutil.copytree(product, root / product.name)
        if name != "one product":
            shutil.copytree(product, root / older)
        if name == "two, no masks":
            for mask in root.glob(f"*/{CLOUD_MASK_NAME}"):
                mask.unlink()
        if name == "two, newer cloudy":
            with rasterio.open(root / product.name / CLOUD_MASK_NAME, "r+") as dst:
                values = dst.read(1)
                values[: dst.height * 3 // 4] = 1  # thick cloud over 3/4
                dst.write(values, 1)
        roots[name] = root
    return roots


def queries(
    dataset: CentralValleyS2, count: int, size: int
) -> list[tuple[slice, slice]]:
    """*count* random *size*-px boxes on the dataset's 10 m grid."""
    rng = np.random.default_rng(0)
    x, y = dataset.bounds[0], dataset.bounds[1]
    res = dataset.res[0]
    columns = int((x.stop - x.start) / res) - size
    rows = int((y.stop - y.start) / res) - size
    boxes: list[tuple[slice, slice]] = []
    for _ in range(count):
        left = x.start + int(rng.integers(0, columns)) * res
        bottom = y.start + int(rng.integers(0, rows)) * res
        boxes.append(
            (
                slice(left, left + size * res, res),
                slice(bottom, bottom + size * res, res),
            )
        )
    return boxes


def seconds_per_patch(root: Path, boxes: list[tuple[slice, slice]]) -> float:
    """Open the root afresh and read every box; seconds per box."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = CentralValleyS2(root, bands=S2_BANDS)
        dataset[boxes[0]]  # open the files
        start = time.perf_counter()
        for box in boxes:
            dataset[box]
    return (time.perf_counter() - start) / len(boxes)


def main() -> None:
    """Parse arguments, read round by round, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--product", type=Path, default=FIXTURE)
    parser.add_argument("--patches", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if not args.product.is_dir():
        parser.error(
            f"--product {str(args.product)!r} is not a folder; pass a per-band "
            "Sentinel-2 L2A product with a cloud_mask.tif (the Major TOM cell "
            "in ../shared/fixtures is the default)."
        )
    print(describe())
    with tempfile.TemporaryDirectory() as tmp:
        roots = layouts(args.product, Path(tmp))
        boxes = queries(CentralValleyS2(roots["one product"]), args.patches, 48)
        times: dict[str, list[float]] = {name: [] for name in roots}
        for _ in range(args.rounds):
            for name, root in roots.items():
                times[name].append(seconds_per_patch(root, boxes))
    one = statistics.median(times["one product"])
    print(f"{args.patches} patches of 48 px, 12 bands; median of {args.rounds} rounds")
    print("| root | ms per patch | ratio to one product |")
    print("|---|---|---|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {1000 * median:.1f} | {median / one:.2f} |")


if __name__ == "__main__":
    main()
