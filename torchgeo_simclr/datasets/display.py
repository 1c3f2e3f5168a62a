"""Drawing imagery and class layers: natural colour, and classes in the map colours."""

from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

from ..constants import IGNORE_INDEX, MAP_CLASSES, REFLECTANCE_SCALE

#: Colours of class layers (:func:`show_classes`): not irrigated (0) and
#: irrigated (1); ignored pixels (255) stay transparent.
MASK_CMAP = ListedColormap([colour for _, colour in MAP_CLASSES.values()])

#: Reflectance (0-1) drawn at full brightness in natural colour (0 is black).
NATURAL_COLOUR_MAX = 0.2


def show_classes(ax: Axes, classes: npt.NDArray[Any]) -> None:
    """Draw a class layer in the map colours, with a legend under it.

    Args:
        ax: the matplotlib axes.
        classes: ``[H, W]`` of 0 (not irrigated), 1 (irrigated) and 255
            (ignored or nodata, left transparent).
    """
    ax.imshow(
        np.ma.masked_equal(classes, IGNORE_INDEX),
        cmap=MASK_CMAP,
        vmin=0,
        vmax=1,
        interpolation="none",
    )
    ax.legend(
        handles=[
            Patch(color=colour, label=name) for name, colour in MAP_CLASSES.values()
        ],
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=len(MAP_CLASSES),
        frameon=False,
        fontsize="small",
    )


def natural_colour(image: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float32]:
    """Scale a B04/B03/B02 image to [0, 1] for display, all bands alike.

    Reflectance 0 is black and :data:`NATURAL_COLOUR_MAX` full brightness in
    every band, so vegetation shows green and bare soil tan, and a bright field
    looks bright beside a dark one. (A separate stretch per band, e.g. between
    each band's 2nd and 98th percentile, tints the whole picture and draws
    vegetation near-black.)

    Args:
        image: reflectance x10000, ``[3, H, W]`` in B04, B03, B02 order.

    Returns:
        ``[H, W, 3]`` float32 in [0, 1].
    """
    scale = REFLECTANCE_SCALE * NATURAL_COLOUR_MAX
    return (
        np.clip(np.asarray(image) / scale, 0, 1).transpose(1, 2, 0).astype(np.float32)
    )
