"""A PNG quick look of a class map beside the imagery, read from overviews."""

import math
import os
from datetime import date
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import rasterio
import torch
from rasterio.enums import Resampling

from ..datasets import CentralValleyS2
from ..datasets.display import show_classes
from ..outputs import partial_path


def quicklook(
    classes: str | Path,
    out: str | Path,
    root: str | Path | None = None,
    max_side: int = 1024,
    overwrite: bool = False,
    mask_clouds: bool = True,
    cloud_buffer: float = 0.0,
    start: date | str | None = None,
    end: date | str | None = None,
) -> Path:
    """Draw a class map, next to natural colour imagery when *root* is given.

    Both are read at a reduced resolution (the COG's overviews serve the
    class map), so memory stays at about *max_side* squared pixels whatever
    the map's size.

    Args:
        classes: a class map written by ``predict`` (``PATH.tif``).
        out: the PNG to write.
        root: the Sentinel-2 directory the map was made from (optional).
        max_side: longest side of the drawn map, pixels.
        overwrite: replace an existing *out*.
        mask_clouds: show the pixels cloud masks call cloudy as nodata, as the
            map read them (``predict --no-cloud-mask``: False).
        cloud_buffer: metres by which masked clouds grow, as for the map.
        start: first sensing day read, inclusive, as for the map (``YYYY-MM-DD``;
            default: no limit).
        end: last sensing day read, inclusive, as for the map.

    Returns:
        The PNG's path.

    Raises:
        FileExistsError: if *out* exists and *overwrite* is False.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        msg = f"{str(out)!r} already exists; pass --overwrite to replace it."
        raise FileExistsError(msg)
    with rasterio.open(classes) as src:
        step = max(1, math.ceil(max(src.width, src.height) / max_side))
        shape = (math.ceil(src.height / step), math.ceil(src.width / step))
        bounds, res = src.bounds, src.res[0] * step
        imagery = None
        if root is not None:
            imagery = CentralValleyS2(
                root,
                crs=src.crs.to_wkt(),
                res=res,
                bands=CentralValleyS2.rgb_bands,
                mask_clouds=mask_clouds,
                cloud_buffer=cloud_buffer,
                start=start,
                end=end,
            )
            sample = imagery[bounds.left : bounds.right, bounds.bottom : bounds.top]
            shape = (int(sample["image"].shape[-2]), int(sample["image"].shape[-1]))
        data = src.read(1, out_shape=shape, resampling=Resampling.nearest)
    name = Path(classes).name
    if imagery is None:
        figure, axis = plt.subplots(figsize=(6, 6))
        show_classes(axis, data)
        axis.set_title(name)
        axis.axis("off")
    else:
        sample["prediction"] = torch.from_numpy(data.astype(np.int64))
        figure = imagery.plot(sample, suptitle=name)
    partial = partial_path(out)
    try:
        figure.savefig(partial, format="png", dpi=150, bbox_inches="tight")
        os.replace(partial, out)
    finally:
        plt.close(figure)
        partial.unlink(missing_ok=True)
    return out
