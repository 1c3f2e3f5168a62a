"""Download Sentinel-2 L2A imagery of a bbox from a STAC API, resumably."""

import functools
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import rasterio
from pystac import Item
from tqdm import tqdm

from ..constants import S2_BANDS, SCL
from ..outputs import check_output_folder
from .assets import find_asset
from .manifest import MANIFEST_NAME, Manifest
from .request import DownloadRequest
from .scene import (
    GDAL_HTTP_OPTIONS,
    SceneFile,
    with_retries,
    write_scene,
    write_style,
)
from .stac import (
    DEFAULT_COLLECTION,
    DEFAULT_STAC_URL,
    cloud_cover,
    open_catalog,
    pick_scenes,
    product_name,
    search_scenes,
    tile_of,
)

#: Sub-directory of the download root holding the scenes (as in the sample).
IMAGERY_DIR: Final[str] = "sentinel2"

#: The sensing day in a scene file's product name.
SENSING_DAY: Final[re.Pattern[str]] = re.compile(
    r"^S2[A-Z]_MSIL2A_(?P<day>\d{8})T\d{6}_"
)


@dataclass
class DownloadResult:
    """What :func:`download` did."""

    #: The manifest.
    manifest: Path
    #: Scene files written by this run.
    written: list[Path] = field(default_factory=list)
    #: Scene files already there from an earlier run (not fetched again).
    kept: list[Path] = field(default_factory=list)
    #: Scene files under ``OUT/sentinel2`` sensed outside the request's dates
    #: (from earlier downloads), which the new scenes are mosaicked with.
    other_dates: list[Path] = field(default_factory=list)


def download(
    request: DownloadRequest,
    out: Path,
    stac_url: str = DEFAULT_STAC_URL,
    collection: str = DEFAULT_COLLECTION,
    per_tile: int = 1,
    mask_clouds: bool = True,
    cloud_buffer: float = 0.0,
    retries: int = 3,
    progress: bool = True,
) -> DownloadResult:
    """Fetch the least cloudy scenes over a bbox as files CentralValleyS2 reads.

    Searches *collection* of the STAC API at *stac_url*, keeps the *per_tile*
    least cloudy scenes of each MGRS tile, and writes the bbox window of each
    as ``OUT/sentinel2/<product>.tif`` (12 bands, 10 m, reflectance x10000,
    see :func:`~torchgeo_simclr.download.scene.write_scene`) with its QGIS
    style ``<product>.qml`` (natural colour), recording it in
    ``OUT/manifest.json``. Only the needed blocks of each band's COG are read.
    Scenes already in the manifest with the same bbox are not fetched again,
    so an interrupted download resumes where it stopped.

    Args:
        request: bbox, dates and cloud limit.
        out: download root.
        stac_url: STAC API landing page.
        collection: Sentinel-2 L2A collection id.
        per_tile: scenes per MGRS tile, least cloudy first. Where several
            scenes overlap, CentralValleyS2 fills one scene's masked clouds
            from the next.
        mask_clouds: set cloudy pixels (by the SCL layer) to nodata.
        cloud_buffer: metres by which masked clouds grow beyond the 60 m
            bands' reach.
        retries: retries of a failed request or scene, with back-off.
        progress: show a progress bar over the bands being read.

    Returns:
        The files written and kept, the manifest, and the scene files of
        other dates already there (see :func:`scenes_outside`).

    Raises:
        ConnectionError: if the API or a file cannot be reached.
        ValueError: if no scene matches the request.
        FileExistsError: if a scene file is there but not from this request.
    """
    check_output_folder(out / IMAGERY_DIR)
    client = open_catalog(stac_url, retries)
    items, too_cloudy = search_scenes(client, collection, request)
    if not items:
        clouds = (
            f" ({too_cloudy} more above --max-cloud {request.max_cloud:g}%)"
            if too_cloudy
            else ""
        )
        msg = (
            f"No scenes of collection {collection!r} at {stac_url} cover bbox "
            f"{list(request.bbox)} between {request.start} and {request.end} with "
            f"cloud cover <= {request.max_cloud:g}%{clouds}; widen the dates, raise "
            "--max-cloud or check the bbox (MIN_LON MIN_LAT MAX_LON MAX_LAT)."
        )
        raise ValueError(msg)
    chosen = pick_scenes(items, per_tile)
    folder = out / IMAGERY_DIR
    # Every name is checked before any scene is fetched.
    names = [scene_file_name(item, out) for item in chosen]
    folder.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(out / MANIFEST_NAME)
    result = DownloadResult(manifest.path)
    steps = len(S2_BANDS) + int(mask_clouds)
    bar = tqdm(
        total=len(chosen) * steps, desc="download", unit="band", disable=not progress
    )
    for item, name in zip(chosen, names, strict=True):
        path = folder / name
        key = f"{IMAGERY_DIR}/{name}"
        bar.set_postfix_str(name)
        if path.exists():
            wanted = {
                "id": item.id,
                "bbox": list(request.bbox),
                "mask_clouds": mask_clouds,
                "cloud_buffer": cloud_buffer if mask_clouds else 0.0,
            }
            # Manifests from before --cloud-buffer grew clouds by nothing more.
            entry = {"cloud_buffer": 0.0, **manifest.scenes.get(key, {})}
            if found := [
                f"{field}={entry.get(field)}"
                for field, value in wanted.items()
                if entry.get(field) != value
            ]:
                msg = (
                    f"{path} exists but {manifest.path} does not list it as scene "
                    f"{item.id} over bbox {list(request.bbox)} with mask_clouds="
                    f"{mask_clouds} and cloud_buffer={wanted['cloud_buffer']:g} "
                    f"(it has {', '.join(found)}); move it away or choose "
                    "another --out."
                )
                raise FileExistsError(msg)
            result.kept.append(path)
            write_style(path)  # scenes downloaded before styles were written
            bar.update(steps)
            continue
        # GDAL remembers failed URLs for the life of the process; a retry must
        # ask the server again.
        uncached = ":".join(f"/vsicurl/{a.href}" for a in item.assets.values())
        with rasterio.Env(**GDAL_HTTP_OPTIONS, CPL_VSIL_CURL_NON_CACHED=uncached):
            written = with_retries(
                functools.partial(
                    write_scene,
                    item,
                    request.bbox,
                    path,
                    mask_clouds,
                    lambda _band: bar.update(),
                    cloud_buffer,
                ),
                f"scene {item.id}",
                retries,
            )
        if written is None:
            bar.update(steps)
            continue
        manifest.add(
            _entry(
                key,
                item,
                request,
                written,
                (mask_clouds, cloud_buffer),
                (stac_url, collection),
            )
        )
        result.written.append(path)
    bar.close()
    result.other_dates = scenes_outside(folder, request)
    return result


#: A scene file's name: letters, digits, ``_`` and ``-``, then ``.tif``.
SAFE_NAME: Final[re.Pattern[str]] = re.compile(r"[A-Za-z0-9_-]+\.tif")


def scene_file_name(item: Item, out: Path) -> str:
    """The name of a scene's file in ``OUT/sentinel2``, checked to stay there.

    The name is made of the remote catalog's fields (:func:`product_name`
    checks each); here it must be one plain name (no path separator, no
    ``..``) that, joined to the folder, stays under *out*. The check is on
    the text, not on links: a user's own scene linked in from elsewhere is
    still found there.

    Args:
        item: the scene.
        out: the download root (``--out``).

    Returns:
        ``<product name>.tif``.

    Raises:
        ValueError: if the item gives no such name.
    """
    name = f"{product_name(item)}.tif"
    root = Path(os.path.abspath(out))
    path = Path(os.path.abspath(root / IMAGERY_DIR / name))
    if not SAFE_NAME.fullmatch(name) or path.parent != root / IMAGERY_DIR:
        shown = repr(name) if len(name) <= 80 else f"{name[:77]!r}..."
        msg = (
            f"STAC item {item.id!r} gives the scene file name {shown}, which is "
            f"not a plain file name in {str(root / IMAGERY_DIR)!r}; the catalog "
            "at --stac-url does not describe Sentinel-2 L2A scenes as expected: "
            "check --stac-url and --collection (nothing was written)."
        )
        raise ValueError(msg)
    return name


def scenes_outside(folder: Path, request: DownloadRequest) -> list[Path]:
    """The scene files in a folder sensed outside a request's dates.

    An earlier download into the same ``--out`` may have left scenes of other
    dates; CentralValleyS2 mosaics them with the new ones (the newest with
    data wins each pixel), so they fill the new scenes' nodata and clouds.

    Args:
        folder: ``OUT/sentinel2``.
        request: the request just downloaded.

    Returns:
        Files named like products (``S2B_MSIL2A_20230705T184919_...tif``)
        whose sensing day is before ``request.start`` or after
        ``request.end``, sorted; files without such a name are left out.
    """
    outside = []
    for path in sorted(folder.glob("S2*_MSIL2A_*.tif")):
        match = SENSING_DAY.match(path.name)
        try:
            day = datetime.strptime(match["day"], "%Y%m%d").date() if match else None
        except ValueError:  # no calendar day, e.g. 20231399
            day = None
        if day is not None and not request.start <= day <= request.end:
            outside.append(path)
    return outside


def _entry(
    key: str,
    item: Item,
    request: DownloadRequest,
    written: SceneFile,
    clouds: tuple[bool, float],
    source: tuple[str, str],
) -> dict[str, Any]:
    """The manifest record of a finished scene."""
    mask_clouds, cloud_buffer = clouds
    bands = [*S2_BANDS, SCL] if mask_clouds else list(S2_BANDS)
    return {
        "file": key,
        "id": item.id,
        "datetime": str(item.datetime),
        "cloud_cover": cloud_cover(item),
        "tile": tile_of(item),
        "stac_url": source[0],
        "collection": source[1],
        "bbox": list(request.bbox),
        "mask_clouds": mask_clouds,
        "cloud_buffer": cloud_buffer if mask_clouds else 0.0,
        "crs": written.grid.crs.to_string(),
        "bounds": list(written.grid.bounds),
        "width": written.grid.width,
        "height": written.grid.height,
        "clear_fraction": round(written.valid_fraction, 4),
        "harmonisation": {b: list(v) for b, v in written.harmonisation.items()},
        "assets": {band: find_asset(item, band).href for band in bands},
    }
