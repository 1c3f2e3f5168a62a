"""Spatially disjoint train / val / test blocks over a region of interest."""

from collections.abc import Sequence

import numpy as np
import shapely
from shapely import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry


def spatial_blocks(
    roi: BaseGeometry,
    block_size: float,
    fractions: Sequence[float],
    min_side: float,
    seed: int = 0,
    res: float | None = None,
    buffer: float = 0.0,
) -> list[MultiPolygon]:
    """Cut a region into square blocks and deal them out to splits at random.

    Blocks of one split never overlap blocks of another, so patches sampled
    inside a split's blocks never overlap another split's patches. Neighbouring
    blocks touch, though, so a field crossing a block edge can be trained on
    and scored; a *buffer* cuts a gap of that width out of the training
    blocks around every other split's blocks.

    Args:
        roi: region of interest, in the data's CRS.
        block_size: side of a block, CRS units (metres for UTM).
        fractions: share of the blocks for each split, e.g. ``(0.7, 0.15, 0.15)``;
            a split with a non-zero share gets at least one block.
        min_side: blocks whose clipped extent is narrower than this (one patch
            side, CRS units) cannot hold a patch and are dropped.
        seed: seed of the random assignment.
        res: pixel side, CRS units, to state sizes in pixels in errors.
        buffer: least distance from the first split's (training) blocks to
            any other split's blocks, CRS units; training blocks cut below
            *min_side* by it are dropped.

    Returns:
        One MultiPolygon per split, in the order of *fractions*.

    Raises:
        ValueError: if *block_size* is not positive, *buffer* is negative, or
            the region holds too few usable blocks for the splits.
    """

    def size(value: float) -> str:
        return f"{value:g} CRS units" if res is None else f"{value / res:g} px"

    if block_size <= 0:
        msg = (
            "--data.init_args.block_size must be positive but got "
            f"{size(block_size)}; pass the blocks' side in pixels, e.g. "
            "--data.init_args.block_size 512 (the default)."
        )
        raise ValueError(msg)
    if buffer < 0:
        msg = (
            "--data.init_args.split_buffer must be 0 or more but got "
            f"{size(buffer)}; pass the gap around the held-out blocks in pixels, "
            "e.g. --data.init_args.split_buffer 0 (the default, no gap)."
        )
        raise ValueError(msg)
    xmin, ymin, xmax, ymax = roi.bounds
    cells: list[Polygon] = []
    for y in np.arange(ymin, ymax, block_size):
        for x in np.arange(xmin, xmax, block_size):
            cell = shapely.box(
                x, y, min(x + block_size, xmax), min(y + block_size, ymax)
            )
            part = cell.intersection(roi)
            if _fits(part, min_side) and isinstance(part, Polygon):
                cells.append(part)
    wanted = [1 if f > 0 else 0 for f in fractions]
    if len(cells) < sum(wanted):
        fix = (
            f"pass a block_size of at least the patch side ({size(min_side)})"
            if block_size < min_side
            else "pass a smaller block_size (at least the patch side, "
            f"{size(min_side)}) or patch_size, or a larger region"
        )
        msg = (
            f"The region holds {len(cells)} blocks of {size(block_size)} that "
            f"can fit a patch of {size(min_side)}, but {sum(wanted)} splits need "
            f"at least one each; {fix}."
        )
        raise ValueError(msg)
    order = np.random.default_rng(seed).permutation(len(cells))
    total = sum(fractions)
    counts = [
        max(w, round(f / total * len(cells)))
        for f, w in zip(fractions, wanted, strict=True)
    ]
    counts[0] = len(cells) - sum(counts[1:])
    splits: list[MultiPolygon] = []
    start = 0
    for count in counts:
        chosen = [cells[i] for i in order[start : start + count]]
        splits.append(MultiPolygon(chosen))
        start += count
    if buffer > 0:
        splits[0] = _keep_away(splits[0], splits[1:], buffer, min_side)
        if splits[0].is_empty:
            msg = (
                f"A split_buffer of {size(buffer)} leaves no training block that "
                f"can fit a patch of {size(min_side)}; pass a smaller split_buffer "
                "or a larger block_size."
            )
            raise ValueError(msg)
    return splits


def _fits(part: BaseGeometry, min_side: float) -> bool:
    """Whether *part*'s extent is at least *min_side* wide and high."""
    if part.is_empty:
        return False
    x0, y0, x1, y1 = part.bounds
    return bool(min(x1 - x0, y1 - y0) >= min_side)


def _keep_away(
    train: MultiPolygon,
    others: Sequence[MultiPolygon],
    buffer: float,
    min_side: float,
) -> MultiPolygon:
    """Cut a gap of *buffer* around the *others*' blocks out of *train*.

    Returns:
        The remaining training parts that can still fit a patch.
    """
    # A square (mitre) gap: at least *buffer* everywhere, and straight edges
    # that stay on the pixel grid.
    held_out = shapely.unary_union([*others]).buffer(buffer, join_style="mitre")
    parts = shapely.get_parts(train.difference(held_out))
    return MultiPolygon(
        [p for p in parts if isinstance(p, Polygon) and _fits(p, min_side)]
    )
