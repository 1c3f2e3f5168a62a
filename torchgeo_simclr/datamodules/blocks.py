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
) -> list[MultiPolygon]:
    """Cut a region into square blocks and deal them out to splits at random.

    Blocks of one split never overlap blocks of another, so patches sampled
    inside a split's blocks never overlap another split's patches.

    Args:
        roi: region of interest, in the data's CRS.
        block_size: side of a block, CRS units (metres for UTM).
        fractions: share of the blocks for each split, e.g. ``(0.7, 0.15, 0.15)``;
            a split with a non-zero share gets at least one block.
        min_side: blocks whose clipped extent is narrower than this (one patch
            side, CRS units) cannot hold a patch and are dropped.
        seed: seed of the random assignment.

    Returns:
        One MultiPolygon per split, in the order of *fractions*.

    Raises:
        ValueError: if the region holds too few usable blocks for the splits.
    """
    xmin, ymin, xmax, ymax = roi.bounds
    cells: list[Polygon] = []
    for y in np.arange(ymin, ymax, block_size):
        for x in np.arange(xmin, xmax, block_size):
            cell = shapely.box(
                x, y, min(x + block_size, xmax), min(y + block_size, ymax)
            )
            part = cell.intersection(roi)
            bx0, by0, bx1, by1 = part.bounds if not part.is_empty else (0, 0, 0, 0)
            if min(bx1 - bx0, by1 - by0) >= min_side and isinstance(part, Polygon):
                cells.append(part)
    wanted = [1 if f > 0 else 0 for f in fractions]
    if len(cells) < sum(wanted):
        msg = (
            f"The region holds {len(cells)} blocks of {block_size:g} CRS units that "
            f"can fit a patch, but {sum(wanted)} splits need at least one each; "
            "pass a smaller block_size or patch_size, or a larger bbox."
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
    return splits
