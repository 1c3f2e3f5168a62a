"""Contact sheets: natural-colour thumbnails of patches on a titled grid."""

import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt
from pyproj import CRS

from ..datasets import CentralValleyS2
from ..datasets.display import natural_colour
from ..outputs import png_marks

#: Thumbnails per row of a sheet.
SHEET_COLUMNS: Final[int] = 6

#: Side of a thumbnail on the sheet, inches.
TILE_INCHES: Final[float] = 2.0

#: Height of the title above each thumbnail, inches: two lines of 9 points.
TITLE_INCHES: Final[float] = 0.45

#: Height of the sheet's heading, inches: two lines of 9 points.
HEADING_INCHES: Final[float] = 0.5

#: Resolution of the PNG, pixels per inch.
SHEET_DPI: Final[int] = 100

#: The ``Description`` text of a sheet's PNG: ``search --overwrite`` replaces
#: only a PNG that carries it (see :func:`~torchgeo_simclr.outputs.png_marks`).
SHEET_KIND: Final[str] = "torchgeo-simclr search contact sheet"


def read_thumbnails(
    root: str | Path,
    crs: CRS | str,
    res: float,
    footprints: npt.NDArray[np.float64],
) -> list[npt.NDArray[np.float32]]:
    """Read the natural-colour bands (B04, B03, B02) under each footprint.

    Args:
        root: Sentinel-2 directory.
        crs: CRS of the footprints.
        res: pixel size to read at, CRS units.
        footprints: ``[N, 4]`` ``(xmin, ymin, xmax, ymax)``.

    Returns:
        ``N`` float32 ``[3, h, w]`` arrays of reflectance x10000 (0 = nodata).

    Warns:
        UserWarning: if some footprints, not all, have no imagery under
            *root* (they come out black).
    """
    imagery = CentralValleyS2(
        root, crs=crs, res=res, bands=CentralValleyS2.rgb_bands, cache=False
    )
    tiles = []
    for xmin, ymin, xmax, ymax in footprints:
        try:
            image = imagery[xmin:xmax:res, ymin:ymax:res]["image"]
            tiles.append(image.float().numpy())
        except IndexError:
            # Off the imagery (a query from another index): a black tile.
            height, width = round((ymax - ymin) / res), round((xmax - xmin) / res)
            tiles.append(np.zeros((3, height, width), dtype=np.float32))
    blank = sum(not tile.any() for tile in tiles)
    if 0 < blank < len(tiles):
        warnings.warn(
            f"{blank} of {len(tiles)} thumbnails have no imagery under "
            f"{str(root)!r} and are drawn black; pass --root with the Sentinel-2 "
            "directory the index was made from to see them.",
            stacklevel=2,
        )
    return tiles


def sheet_shape(count: int) -> tuple[int, int]:
    """Rows and columns of a sheet of *count* thumbnails.

    Args:
        count: thumbnails.

    Returns:
        ``(rows, columns)``.
    """
    columns = max(1, min(SHEET_COLUMNS, count))
    return math.ceil(count / columns), columns


def contact_sheet(
    tiles: Sequence[npt.NDArray[np.floating[Any]]],
    titles: Sequence[str],
    out: Path,
    queries: int = 0,
    heading: str | None = None,
) -> Path:
    """Draw thumbnails in rows of :data:`SHEET_COLUMNS`, each under its title.

    The PNG is ``columns x TILE_INCHES`` wide and ``rows x (TILE_INCHES +
    TITLE_INCHES)`` high (plus :data:`HEADING_INCHES` with a heading) at
    :data:`SHEET_DPI`, its text marked :data:`SHEET_KIND`
    (:func:`~torchgeo_simclr.outputs.png_marks`).

    Args:
        tiles: ``[3, h, w]`` reflectance x10000 of B04, B03, B02.
        titles: one per tile, up to two lines.
        out: the PNG to write (any name: the format is fixed).
        queries: how many of the first tiles are the query, titled in red.
        heading: the sheet's title, up to two lines (what the tile titles
            mean), or None for none.

    Returns:
        *out*.
    """
    images = [natural_colour(tile) for tile in tiles]
    rows, columns = sheet_shape(len(images))
    top = HEADING_INCHES if heading is not None else 0.0
    height = rows * (TILE_INCHES + TITLE_INCHES) + top
    # Each thumbnail fills its cell; the title takes the strip above it.
    layout = {
        "left": 0.0,
        "right": 1.0,
        "bottom": 0.0,
        "top": 1 - (top + TITLE_INCHES) / height,
        "wspace": 0.05,
        "hspace": TITLE_INCHES / TILE_INCHES,
    }
    figure, axes = plt.subplots(
        rows,
        columns,
        figsize=(columns * TILE_INCHES, height),
        squeeze=False,
        gridspec_kw=layout,
    )
    try:
        if heading is not None:
            figure.suptitle(heading, y=1 - 0.05 / height, va="top", fontsize=9)
        for i, axis in enumerate(axes.ravel()):
            axis.axis("off")
            if i < len(images):
                axis.imshow(images[i], interpolation="nearest")
                colour = "tab:red" if i < queries else "black"
                axis.set_title(titles[i], fontsize=9, color=colour)
        figure.savefig(out, format="png", dpi=SHEET_DPI, metadata=png_marks(SHEET_KIND))
    finally:
        plt.close(figure)
    return out
