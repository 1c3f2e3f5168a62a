"""Sentinel-2 L2A scenes of California's Central Valley, 12 bands on a 10 m grid."""

import functools
import os
import re
import warnings
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from typing import Any, ClassVar

import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt
import pandas as pd
import rasterio
import torch
from geopandas import GeoDataFrame
from matplotlib.figure import Figure
from pyproj import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.io import DatasetReader
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window
from torch import Tensor
from torchgeo.datasets import RasterDataset
from torchgeo.datasets.errors import DatasetNotFoundError, RGBBandsMissingError
from torchgeo.datasets.utils import (
    GeoSlice,
    Path,
    Sample,
    disambiguate_timestamp,
    find_files,
)

from ..constants import (
    S2_BAND_RESOLUTION,
    S2_BANDS,
    S2_NODATA,
    SCL,
    SCL_CLOUDS,
    SCL_RESOLUTION,
    SCL_UNUSABLE,
)
from ..days import dates_text, parse_days, range_text
from .cloud_masks import (
    CLOUD_MASK_NAME,
    CloudMask,
    cloudy_pixels,
    open_mask,
    readable,
)
from .combine import CheckedCombinations
from .dates import sensing_date, sensing_start
from .display import natural_colour, show_classes
from .files import (
    as_path_list,
    check_band_order,
    check_same_area,
    check_value_scale,
    warn_copies,
)
from .mosaic import NO_SOURCE, PixelSources, first_valid
from .products import boa_offset, level_1c_files, remove_offset
from .unreadable import UnreadableFileError, gdal_reason, reading

#: Files named, with GDAL's reason, in the refusal of files that cannot be
#: opened (see :meth:`CentralValleyS2._check_opened`); the others are counted.
UNOPENED_NAMED = 3

#: Cloud masks kept open per dataset; the least recently used one is closed
#: to open another.
MASKS_KEPT_OPEN = 128

#: Each dataset's open cloud masks, by mask path and query CRS (see
#: :meth:`CentralValleyS2._cached_open_mask`). Kept beside the datasets, as
#: torchgeo keeps its band files: an entry goes, and its masks close, with its
#: dataset, and a dataset pickled for a DataLoader worker takes none along.
_OPEN_MASKS: weakref.WeakKeyDictionary[
    RasterDataset, OrderedDict[tuple[str, CRS], DatasetReader | WarpedVRT]
] = weakref.WeakKeyDictionary()


def _whole(pixels: float) -> bool:
    """Whether a distance in pixels is a whole number (to within 1e-6 px)."""
    return abs(pixels - round(pixels)) < 1e-6


def check_bands(
    bands: Sequence[str] | None, all_bands: Sequence[str] = S2_BANDS
) -> list[str]:
    """Validate requested band names.

    Args:
        bands: requested band names, or None for all bands.
        all_bands: the bands there are, in their order.

    Returns:
        The requested bands as a list.

    Raises:
        ValueError: If *bands* is empty, repeats a band or names an unknown one.
    """
    if bands is None:
        return list(all_bands)
    if isinstance(bands, str):
        bands = [bands]
    unknown = [band for band in bands if band not in all_bands]
    if unknown:
        msg = (
            f"Unknown Sentinel-2 band(s) {unknown} in bands={list(bands)}; valid "
            f"bands are {list(all_bands)}, so pick from those."
        )
        raise ValueError(msg)
    if not bands or len(set(bands)) != len(bands):
        msg = (
            f"bands={list(bands)} must name each band once and at least one "
            f"band; pick from {list(all_bands)}."
        )
        raise ValueError(msg)
    return list(bands)


def check_res(
    crs: CRS,
    res: float | tuple[float, float],
    footprints: GeoDataFrame | None = None,
    *,
    from_files: bool = False,
) -> None:
    """Refuse a pixel size of 1 or more in a geographic CRS: metres were meant.

    *res* is in the CRS's units, degrees for EPSG:4326. A degree is about
    111 km, as wide as a whole Sentinel-2 tile, so such a res is a size in
    metres (the default 10) that would give 10-degree pixels: a scene then
    reads as ``[C, 0, 0]`` and samplers yield nothing.

    Args:
        crs: the dataset CRS.
        res: pixel size as given, ``(x, y)`` or one number for both.
        footprints: the data's footprints, whose UTM zone the refusal names
            (default: an example zone).
        from_files: whether *crs* is the imagery's own, not one asked for: the
            command line has no CRS or res option, so the refusal then says to
            reproject the imagery into its UTM zone with ``gdalwarp``.

    Raises:
        ValueError: If *crs* is geographic and a side of *res* is 1 or more.
    """
    size = max(abs(side) for side in (res if isinstance(res, tuple) else (res,)))
    if not crs.is_geographic or size < 1:
        return
    if from_files:
        utm = (
            "EPSG:32610"
            if footprints is None
            else footprints.estimate_utm_crs().to_string()
        )
        msg = (
            f"The Sentinel-2 imagery is in crs {crs.to_string()!r} (lon/lat "
            f"degrees), so its {size:g} m pixels (res={res!r}) would be "
            f"{size:g} degrees (about {size * 111:,.0f} km) wide; expected "
            "imagery in a projected CRS in metres, as ESA's products are, so "
            "reproject every file into the "
            f"data's UTM zone, keeping its name, e.g. `gdalwarp -t_srs {utm} "
            f"-tr {size:g} {size:g} in.tif out.tif` (in Python, pass "
            f"crs={utm!r} instead, or res in degrees, e.g. res={size * 1e-5:g})."
        )
        raise ValueError(msg)
    zone = (
        "the data's UTM zone (e.g. crs='EPSG:32610', zone 10N)"
        if footprints is None
        else f"the data's UTM zone, crs={footprints.estimate_utm_crs().to_string()!r},"
    )
    msg = (
        f"res={res!r} is in the units of crs {crs.to_string()!r}, degrees, so it "
        f"asks for {size:g}-degree pixels (about {size * 111:,.0f} km wide); "
        "expected less than 1 degree in a geographic CRS, so pass res in degrees, "
        f"e.g. res={size * 1e-5:g} (about {size * 1.1132:.0f} m), or a projected "
        f"CRS such as {zone} with res in metres."
    )
    raise ValueError(msg)


class CentralValleyS2(CheckedCombinations, RasterDataset):
    """Sentinel-2 L2A surface reflectance, 12 bands resampled onto one 10 m grid.

    Two on-disk layouts are read (one layout per dataset; combine datasets in
    different layouts with ``|``):

    1. **Multi-band scenes**: one GeoTIFF per scene holding the 12 bands in
       :data:`~torchgeo_simclr.constants.S2_BANDS` order, named like the
       product, e.g.
       ``S2B_MSIL2A_20230715T184919_N0509_R070_T10SFG_20230715T223344.tif``.
    2. **One file per band** at native 10/20/60 m, either

       * in a product directory whose name carries the date:
         ``S2B_MSIL2A_20200223T032739_N9999_R018_T48QUE_20230924T183543/B04.tif``
         (``B01.tif`` ... ``B12.tif``, ``B8A.tif``), or
       * with SAFE-style names carrying tile and date:
         ``T10SFG_20230715T184919_B04_10m.tif`` (or ``.jp2``; files in ``R10m``,
         ``R20m``, ``R60m`` folders are found by their band's resolution).

       One reference band file is indexed per product (the first requested
       band with the finest native resolution) and the others are derived from
       its path; every requested band must exist for every product. Any band
       file of a product, given as a path, stands for its product (its
       reference band file is indexed).

       With *mask_clouds*, a cloud mask beside the band files blanks the
       pixels it calls cloudy in every band of its product (they become
       nodata, so an overlapping product fills them): ESA's scene
       classification (``SCL.tif``, or ``T10SFG_20230715T184919_SCL_20m.jp2``
       in ``R20m``, else ``..._SCL_60m`` in ``R60m``) masks no data and
       saturated pixels (:data:`~torchgeo_simclr.constants.SCL_UNUSABLE`)
       and clouds, their shadows and cirrus
       (:data:`~torchgeo_simclr.constants.SCL_CLOUDS`), and a
       ``cloud_mask.tif`` masks every value but 0 as cloud (Major TOM's
       layout). Clouds grow by the reach of the coarsest band's resampling
       (see :meth:`_cloudy`), and by *cloud_buffer* more. A ``.SAFE``
       without an SCL, or a product without a mask where others have one, is
       warned about.

    Products are mosaicked newest first: where they overlap, each pixel comes
    from the most recent product with data there (undated ones last). With
    *time_series*, they are stacked instead, in time order: oldest first, by
    sensing start, then by path, undated ones last. *start* and *end* keep only
    the products sensed on or between those UTC days.

    Samples are dicts with ``image``: float32 ``[C, H, W]`` (``[T, C, H, W]``
    with *time_series*), surface reflectance x10000 as stored, less ESA's +1000
    offset in per-band products of processing baseline 04.00 and later (bands
    in the requested order, bilinear resampling onto the query grid, 0 =
    nodata) and torchgeo's ``bounds`` and ``transform``; with *pixel_dates*, a
    mosaic's ``date`` ``[H, W]`` says which day each pixel was sensed (see
    :meth:`__getitem__`). A file whose name, and
    whose folder's, carries no sensing date is indexed without one (a warning
    says so).
    """

    #: All bands in the order of a multi-band file and of the default output.
    all_bands: tuple[str, ...] = S2_BANDS

    #: Bands shown as red, green and blue by :meth:`plot`.
    rgb_bands: tuple[str, ...] = ("B04", "B03", "B02")

    #: Glob of multi-band scene files (layout 1).
    filename_glob = "S2*_MSIL2A_*.tif"

    #: Regular expression of multi-band scene files (layout 1); ``date`` is the
    #: sensing start time, ``tile`` the MGRS tile.
    filename_regex = (
        r"^S2[ABC]_MSIL2A_(?P<date>\d{8}T\d{6})_N\d{4}_R\d{3}"
        r"_T(?P<tile>\d{2}[A-Z]{3})_\d{8}T\d{6}\.tif$"
    )

    #: Glob of per-band files (layout 2), formatted with the reference band.
    band_filename_glob = "*{band}*"

    #: Regular expression of per-band files (layout 2), formatted with the
    #: reference band and its native resolution. ``date`` and ``tile`` are
    #: optional (absent from ``B04.tif``); ``resolution`` is the optional
    #: SAFE suffix (``10m``, ``20m``, ``60m``).
    band_filename_regex = (
        r"^(?:T(?P<tile>\d{{2}}[A-Z]{{3}})_(?P<date>\d{{8}}T\d{{6}})_)?"
        r"(?P<band>{band})(?:_(?P<resolution>{resolution}))?\.(?:tiff?|jp2)$"
    )

    #: Regular expressions that find the sensing date in a product directory
    #: name when the file name has none, each with its date format, tried in
    #: order (the first match of the first that matches wins): ESA's
    #: ``YYYYMMDDTHHMMSS``, then a day as ``YYYY-MM-DD`` or ``YYYYMMDD`` (Earth
    #: Search item ids such as ``S2B_10SFG_20230715_0_L2A``).
    directory_date_patterns: ClassVar[tuple[tuple[str, str], ...]] = (
        (r"(?<![\d-])(?P<date>\d{8}T\d{6})(?!\d)", "%Y%m%dT%H%M%S"),
        (r"(?<![\d-])(?P<date>20\d\d-[01]\d-[0-3]\d)(?![\d-])", "%Y-%m-%d"),
        (r"(?<![\d-])(?P<date>20\d\d[01]\d[0-3]\d)(?![\d-])", "%Y%m%d"),
    )

    #: Date format of the ``date`` groups.
    date_format = "%Y%m%dT%H%M%S"

    #: Native resolution suffix of each band in SAFE-style names.
    resolutions: ClassVar[dict[str, str]] = {
        band: f"{metres}m"
        for band, metres in {**S2_BAND_RESOLUTION, SCL: SCL_RESOLUTION}.items()
    }

    #: Names of the SAFE resolution folders, swapped to the band's own folder.
    resolution_dirs: ClassVar[tuple[str, ...]] = ("R10m", "R20m", "R60m")

    #: Stored value of pixels without data (L2A uses 0); they do not overwrite
    #: valid pixels where scenes overlap.
    nodata: float | None = S2_NODATA

    # The files under the current query and which one each pixel came from.
    _sources: tuple[list[str], PixelSources] | None = None

    # The index the sensing days of :meth:`_sensing_days` are of, and the days.
    _days: tuple[GeoDataFrame, dict[str, str]] | None = None

    # While the files are indexed: the WKT of each file's own CRS, by path,
    # in the order opened (None once indexed).
    _native_crs: dict[str, str] | None = None

    def __init__(
        self,
        paths: Path | Iterable[Path] = "data",
        crs: CRS | str | None = None,
        res: float | tuple[float, float] = 10.0,
        bands: Sequence[str] | None = None,
        transforms: Callable[[Sample], Sample] | None = None,
        cache: bool = True,
        mask_clouds: bool = True,
        cloud_buffer: float = 0.0,
        time_series: bool = False,
        start: date | str | None = None,
        end: date | str | None = None,
        pixel_dates: bool = False,
    ) -> None:
        """Initialise a new CentralValleyS2 dataset.

        Args:
            paths: one or more root directories searched recursively, or files;
                a band file of a per-band product (e.g. ``.../B04.tif``) stands
                for its product.
            crs: coordinate reference system to warp to, a pyproj CRS or a
                string such as ``"EPSG:32610"`` (default: the CRS of the first
                file found by path; where the files read are in several CRSs,
                a warning names it and how many files are in each).
            res: pixel size of the output grid in units of the CRS (metres for
                UTM, degrees for a geographic CRS such as EPSG:4326, where 1
                or more is refused as metres meant; see :func:`check_res`),
                ``(x, y)`` or one number for both.
            bands: band names to return, in this order (default: all 12 in
                :data:`~torchgeo_simclr.constants.S2_BANDS` order).
            transforms: a function that takes a sample and returns a
                transformed version.
            cache: if True, keep file handles open between samples.
            mask_clouds: blank the pixels that a cloud mask beside per-band
                files calls cloudy (SCL, ``cloud_mask.tif``; see above).
            cloud_buffer: metres by which masked clouds grow beyond the
                coarsest band's reach, for cloud edges and haze the mask
                misses (rounded up to whole pixels of *res*).
            time_series: if True, stack data along the time series dimension
                (``[T, C, H, W]``, the products under a query in time order:
                oldest first by sensing start, then by path, undated ones
                last). If False, merge data into a mosaic (``[C, H, W]``,
                newest product first).
            start: first sensing day kept, inclusive (UTC, as in product
                names): a date or ``YYYY-MM-DD`` (default: no limit). With
                *start* or *end*, products whose names carry no date are left
                out, with a warning.
            end: last sensing day kept, inclusive (default: no limit).
            pixel_dates: if True, mosaicked samples also carry ``date``, the
                sensing day of the product each pixel comes from (see
                :meth:`__getitem__`).

        Raises:
            ValueError: If a band name is unknown, a multi-band file does not
                hold 12 bands, both layouts are found under *paths*,
                *cloud_buffer* is negative, *res* is 1 or more in a
                geographic CRS, *start* or *end* is not a date, *start* is
                after *end*, or no product was sensed between them.
            FileNotFoundError: If a path does not exist, nothing matches the
                expected file names, or a product lacks a requested band.
            UnreadableFileError: If rasterio cannot open a file whose name
                matches (e.g. one truncated by an interrupted download).
        """
        #: Root directories searched recursively for Sentinel-2 files, or files.
        self.paths = paths
        #: Names of the bands returned, in the order of ``image``'s channels.
        self.bands = check_bands(bands, self.all_bands)
        #: First and last sensing day kept, inclusive (two attributes; None:
        #: no limit).
        self.start, self.end = parse_days(start, end, ("start", "end"))
        if not cloud_buffer >= 0:
            msg = (
                f"cloud_buffer must be 0 or more metres, got {cloud_buffer}; pass "
                "the distance by which masked clouds should grow, e.g. 50."
            )
            raise ValueError(msg)
        roots = as_path_list(paths)
        for root in roots:
            if not str(root).startswith("/vsi") and not os.path.exists(root):
                msg = (
                    f"Sentinel-2 path {str(root)!r} does not exist; pass a "
                    "directory holding Sentinel-2 L2A files (or create one with "
                    "`torchgeo-simclr sample-data --root DIR`)."
                )
                raise FileNotFoundError(msg)

        reference = min(self.bands, key=lambda band: S2_BAND_RESOLUTION[band])
        product_roots = [self._reference_file(root, reference) for root in roots]
        if product_roots != roots:
            paths = roots = product_roots
            self.paths = paths
        band_glob = self.band_filename_glob.format(band=reference)
        band_regex = self.band_filename_regex.format(
            band=reference, resolution=self.resolutions[reference]
        )
        multiband_files = self._matching_files(roots, self.filename_glob)
        band_files = self._matching_files(roots, band_glob, band_regex)
        if multiband_files and band_files:
            msg = (
                f"Found both multi-band scenes (e.g. {multiband_files[0]!r}) and "
                f"per-band files (e.g. {band_files[0]!r}) under {self._roots_str()}; "
                "expected one layout per root, so put the multi-band scenes and "
                "the per-band product folders under separate roots (one --root "
                "or --data.init_args.root each; in Python, combine the two "
                "datasets with `|`)."
            )
            raise ValueError(msg)
        if not multiband_files and not band_files:
            msg = (
                f"No Sentinel-2 L2A files found under {self._roots_str()}; expected "
                "multi-band scenes named like S2B_MSIL2A_20230715T184919_N0509_"
                "R070_T10SFG_20230715T223344.tif or one file per band (B04.tif in "
                "a product directory, or T10SFG_20230715T184919_B04_10m.tif/.jp2), "
                "so point --root (--data.init_args.root) at such files or create "
                "a sample with `torchgeo-simclr sample-data --root DIR`."
            )
            raise FileNotFoundError(msg)
        if band_files:
            #: True for one file per band (layout 2), False for multi-band
            #: scenes (layout 1).
            self.separate_files = True
            #: Layout 2: the reference band's glob from :attr:`band_filename_glob`,
            #: e.g. ``*B02*`` (layout 1: multi-band scene files).
            self.filename_glob = band_glob
            #: Layout 2: :attr:`band_filename_regex` for the reference band and
            #: its resolution (layout 1: multi-band scene files).
            self.filename_regex = band_regex
        level_1c = level_1c_files(band_files)
        if band_files and len(level_1c) == len(band_files):
            msg = (
                f"Sentinel-2 files under {self._roots_str()} lie in Level-1C "
                f"products only (e.g. {os.path.dirname(level_1c[0])!r}: "
                "top-of-atmosphere reflectance); expected Level-2A surface "
                "reflectance (S2?_MSIL2A_...), so process them with Sen2Cor or "
                "fetch L2A scenes with `torchgeo-simclr download`."
            )
            raise ValueError(msg)
        warn_copies(multiband_files)

        target_crs = None if crs is None else CRS.from_user_input(crs)
        # The files torchgeo opens to index them, less the Level-1C ones that
        # are left out below.
        expected = sorted(set(multiband_files or band_files) - set(level_1c))
        self._native_crs = {}
        try:
            super().__init__(
                paths, target_crs, res, self.bands, transforms, cache, time_series
            )
        except DatasetNotFoundError:
            indexed: set[str] = set()
        else:
            indexed = set(self.index.filepath)
        finally:
            native_crs, self._native_crs = self._native_crs, None
        self._check_opened(expected, indexed)
        check_res(self.crs, res, self.index, from_files=target_crs is None)

        if self.separate_files:
            self._check_band_files()
        else:
            self._check_band_counts()
        if level_1c:
            #: Footprint, time span and path of each indexed file (one per
            #: product), Level-1C products left out.
            self.index = self.index[~self.index.filepath.isin(level_1c)]
            msg = (
                f"{len(level_1c)} Level-1C product(s) under {self._roots_str()} "
                f"(e.g. {os.path.dirname(level_1c[0])!r}) are left out; only "
                "Level-2A products are read, so move them out of the root to "
                "silence this."
            )
            warnings.warn(msg, UserWarning, stacklevel=2)
        self._select_dates()
        if target_crs is None:
            self._warn_mixed_crs(native_crs)
        self._warn_undated()
        self._order_by_time()
        #: Whether cloud masks beside per-band files are applied.
        self.mask_clouds = mask_clouds
        #: Whether mosaicked samples also carry ``date``, the sensing day of
        #: each pixel's product (see :meth:`__getitem__`).
        self.pixel_dates = pixel_dates
        #: Metres by which masked clouds grow beyond the bands' reach.
        self.cloud_buffer = float(cloud_buffer)
        #: The cloud masks of each band file (of every requested band) whose
        #: product has any, when applied.
        self.cloud_masks: dict[str, tuple[CloudMask, ...]] = (
            self._find_cloud_masks() if mask_clouds and self.separate_files else {}
        )
        # The last query's cloudy flags, per product, for its other bands.
        self._flags_query: tuple[object, ...] | None = None
        self._flags: dict[tuple[CloudMask, ...], Tensor] = {}

    def _roots_str(self) -> str:
        """Return the searched paths as text for error messages."""
        return ", ".join(repr(str(root)) for root in as_path_list(self.paths))

    def _matching_files(
        self, roots: Sequence[Path], glob: str, regex: str | None = None
    ) -> list[str]:
        """Find files under *roots* whose name matches *glob* and *regex*.

        Args:
            roots: directories searched recursively, or files.
            glob: glob the file name must match.
            regex: regular expression the file name must match (default:
                :attr:`filename_regex`).

        Returns:
            Sorted matching file paths.
        """
        pattern = re.compile(regex or self.filename_regex, re.VERBOSE)
        files = {
            path
            for root in roots
            for path in find_files(root, glob)
            if pattern.match(os.path.basename(path))
        }
        return sorted(files)

    def _reference_file(self, path: Path, reference: str) -> Path:
        """The file of *reference* in the per-band product of a band file.

        Args:
            path: a path as given: a directory, or a file.
            reference: the band indexed per product.

        Returns:
            *reference*'s file in the same product when *path* is a band file
            of a per-band product (``.../B02.tif`` for ``.../B04.tif``, with
            the ``R10m`` folder and ``_10m`` suffix in SAFE-style names), else
            *path* itself.

        Raises:
            FileNotFoundError: If the product has no file for *reference*.
        """
        name = os.fspath(path)
        any_band = self.band_filename_regex.format(
            band="|".join(self.all_bands),
            resolution="|".join(sorted(set(self.resolutions.values()))),
        )
        basename = os.path.basename(name)
        if not os.path.isfile(name) or not re.match(any_band, basename, re.VERBOSE):
            return path
        found = self._band_file(reference, name, any_band)
        if found == name:
            return path
        if not os.path.exists(found):
            msg = (
                f"Band file {name!r} stands for its Sentinel-2 product, which "
                f"lacks {reference} (expected {found!r}), the band indexed per "
                "product (the first requested band with the finest native "
                "resolution); add the missing file, or pass `bands` without "
                f"{reference}."
            )
            raise FileNotFoundError(msg)
        return found

    def _check_opened(self, expected: Sequence[str], indexed: set[str]) -> None:
        """Refuse the files that torchgeo could not open, and so left out.

        torchgeo skips a file that rasterio cannot open (e.g. one truncated by
        an interrupted download) without a word while indexing, and a map or
        embedding index then lacks its area. Only the files left out are
        opened again, for GDAL's reason.

        Args:
            expected: the files torchgeo tried to index (their names match),
                Level-1C products left out, sorted.
            indexed: the files it indexed.

        Raises:
            UnreadableFileError: If a file of *expected* is not in *indexed*.
        """
        unopened = [path for path in expected if path not in indexed]
        if not unopened:
            return
        named = ", ".join(
            f"{path!r} ({self._open_error(path)})" for path in unopened[:UNOPENED_NAMED]
        )
        more = len(unopened) - UNOPENED_NAMED
        msg = (
            f"{len(unopened)} of {len(expected)} Sentinel-2 files under "
            f"{self._roots_str()} could not be opened by rasterio: {named}"
            f"{f' and {more} more' if more > 0 else ''}; expected readable "
            "GeoTIFF (or JPEG2000) rasters, and a map or embedding index would "
            "lack their area, so download them again, or move them out of the "
            "folder."
        )
        raise UnreadableFileError(msg)

    @staticmethod
    def _open_error(path: str) -> str:
        """GDAL's reason why rasterio cannot open a file.

        Args:
            path: a file that could not be opened while indexing.

        Returns:
            The reason (see :func:`~.unreadable.gdal_reason`), or that the
            file opens now.
        """
        try:
            with rasterio.open(path):
                pass
        except RasterioIOError as error:
            return gdal_reason(error, path)
        return "rasterio opens it now, so it may have been written meanwhile"

    def _check_band_counts(self) -> None:
        """Check that every multi-band scene holds the 12 bands, in order.

        Where a scene's band descriptions all name Sentinel-2 bands, they must
        name the 12 in :attr:`all_bands` order (see
        :func:`~torchgeo_simclr.datasets.files.check_band_order`); and a
        floating-point scene on disk (not ``/vsi...``) must not hold
        reflectance 0 to 1 (see
        :func:`~torchgeo_simclr.datasets.files.check_value_scale`). Each
        scene is opened once for these checks, and an integer one is not read.

        Raises:
            ValueError: If a file has another number of bands, descriptions
                naming another order, or reflectance 0 to 1.
        """
        expected = len(self.all_bands)
        for filepath in self.index.filepath:
            # One open per scene for all three checks.
            with rasterio.open(filepath) as src:
                if src.count != expected:
                    msg = (
                        f"Sentinel-2 scene {filepath!r} has {src.count} band(s), "
                        f"expected {expected} ({' '.join(self.all_bands)}); write "
                        "all 12 L2A bands in that order, or store one file per "
                        "band (B01.tif ... B12.tif, B8A.tif) in a product directory."
                    )
                    raise ValueError(msg)
                check_band_order(filepath, src.descriptions, self.all_bands)
                # A remote float scene would cost 9 reads over the network each
                # time a dataset is built; remote band files are not checked
                # either (see _check_band_files).
                if not str(filepath).startswith("/vsi"):
                    check_value_scale(src)

    def _check_band_files(self) -> None:
        """Check that every indexed product has a file for every requested band.

        Each band file must also lie in the CRS of the product's indexed band
        and cover its extent to within one of its own pixels: a band cropped,
        reprojected or replaced by hand would otherwise be read as nodata or
        shifted without a word.

        The indexed band file of each product must not hold floating-point
        reflectance 0 to 1 (see
        :func:`~torchgeo_simclr.datasets.files.check_value_scale`).

        Raises:
            FileNotFoundError: If a product lacks a band file.
            ValueError: If a band file covers another area than the product,
                or the indexed one holds reflectance 0 to 1.
            UnreadableFileError: If rasterio cannot open a band file.
        """
        for filepath in self.index.filepath:
            if str(filepath).startswith("/vsi"):
                continue
            paths = {band: self._update_filepath(band, filepath) for band in self.bands}
            missing = {b: p for b, p in paths.items() if not os.path.exists(p)}
            if missing:
                msg = (
                    f"Sentinel-2 product {os.path.dirname(filepath)!r} lacks "
                    f"band(s) {list(missing)} (expected e.g. "
                    f"{next(iter(missing.values()))!r}); add the missing files, or "
                    "pass `bands` without them where the command takes bands (a "
                    "trained model needs every band it was trained on)."
                )
                raise FileNotFoundError(msg)
            others = sorted(set(paths.values()) - {filepath})
            try:
                # One open of the indexed band file for both checks.
                with rasterio.open(filepath) as src:
                    check_value_scale(src)
                    check_same_area(src, others)
            except RasterioIOError:
                # Open each again on its own, to name the one that fails.
                for path in others:
                    with reading(path), rasterio.open(path):
                        pass
                raise

    def _order_by_time(self) -> None:
        """Order the index by sensing time, then by path, undated products last.

        torchgeo indexes products by path, so a 2021 ``S2A_...`` product came
        before a 2023 ``S2B_...`` one. A mosaic takes each pixel from the
        first product with data there (:meth:`_merge_or_stack`), so it goes
        newest first; a time series stacks the products under a query in the
        index's order, so it goes oldest first. Undated products are indexed
        from ``pd.Timestamp.min``.
        """
        starts = [sensing_start(entry) for entry in self.index.index]
        paths = list(self.index.filepath)
        order = sorted(range(len(paths)), key=paths.__getitem__)
        if self.time_series:
            order.sort(key=lambda i: (starts[i] == pd.Timestamp.min, starts[i]))
        else:
            order.sort(key=starts.__getitem__, reverse=True)
        self.index = self.index.iloc[order]

    def _select_dates(self) -> None:
        """Keep the products sensed from :attr:`start` to :attr:`end`, inclusive.

        Days are the UTC sensing days of the product names (see
        :func:`~torchgeo_simclr.datasets.dates.sensing_date`). Undated
        products cannot be placed in the range: they are left out, with a
        warning.

        Raises:
            ValueError: If no product was sensed in the range, naming the
                days there are.
        """
        if self.start is None and self.end is None:
            return
        days = [sensing_date(entry) for entry in self.index.index]
        keep = np.array(
            [
                day is not None
                and (self.start is None or self.start <= day)
                and (self.end is None or day <= self.end)
                for day in days
            ],
            dtype=bool,
        )
        span = range_text(self.start, self.end)
        undated = [
            path
            for path, day in zip(self.index.filepath, days, strict=True)
            if day is None
        ]
        if not keep.any():
            there = sorted({day.isoformat() for day in days if day is not None})
            if not there:
                msg = (
                    f"The {len(days)} Sentinel-2 product(s) under "
                    f"{self._roots_str()} carry no sensing date in their names "
                    f"(e.g. {undated[0]!r}), so none can be placed {span}; rename "
                    "the product folders to carry their date (YYYYMMDDTHHMMSS, "
                    "YYYY-MM-DD or YYYYMMDD), "
                    "or leave out --start/--end."
                )
                raise ValueError(msg)
            others = f" and {len(undated)} undated one(s)" if undated else ""
            msg = (
                f"The Sentinel-2 imagery under {self._roots_str()} has products of "
                f"{dates_text(there)}{others}; none was sensed {span} (UTC days), "
                "so pass --start/--end (--data.init_args.start/end to fit) around "
                "one of them."
            )
            raise ValueError(msg)
        if undated:
            msg = (
                f"{len(undated)} of {len(self.index)} Sentinel-2 file(s) under "
                f"{self._roots_str()} carry no sensing date in their name or their "
                f"folder's (e.g. {undated[0]!r}), so they cannot be placed {span} "
                "and are left out; rename the product folder to carry its date "
                "(YYYYMMDDTHHMMSS, YYYY-MM-DD or YYYYMMDD) to read them."
            )
            warnings.warn(msg, UserWarning, stacklevel=3)
        #: Footprint, time span and path of each indexed file (one per
        #: product), those sensed outside :attr:`start` to :attr:`end` left out.
        self.index = self.index[keep]

    def _warn_mixed_crs(self, native_crs: dict[str, str]) -> None:
        """Say which CRS the files are read in, where they are in several.

        torchgeo reads every file on a grid in the CRS of the first file it
        indexes (by path), resampling the others onto it: with scenes of two
        UTM zones under the root, which zone that is depends on the names.

        Args:
            native_crs: the WKT of each indexed file's own CRS, by path, in
                the order indexed (the first gave the dataset's CRS).

        Warns:
            UserWarning: if a file read is in another CRS than the dataset's,
                naming the CRS chosen, how many files are in each CRS, and how
                to choose.
        """
        if not native_crs:
            return
        first_path, first_wkt = next(iter(native_crs.items()))
        chosen = _crs_name(first_wkt)
        counts: dict[str, int] = {}
        for path in self.index.filepath:
            if path in native_crs:
                name = _crs_name(native_crs[path])
                counts[name] = counts.get(name, 0) + 1
        if set(counts) <= {chosen}:
            return
        listed = ", ".join(
            f"{name}: {count} file{'s' if count > 1 else ''}"
            for name, count in sorted(counts.items())
        )
        other = max(
            (name for name in counts if name != chosen), key=lambda n: counts[n]
        )
        msg = (
            f"The Sentinel-2 files read under {self._roots_str()} are in "
            f"{len(counts)} CRS(s) ({listed}); they are read on a grid in "
            f"{chosen}, the CRS of the first file by path ({first_path!r}), and "
            "files in another CRS are resampled onto it; to choose the CRS, keep "
            "only one zone's files under --root (--data.init_args.root), or in "
            f"Python pass crs, e.g. CentralValleyS2(root, crs={other!r})."
        )
        warnings.warn(msg, UserWarning, stacklevel=3)

    def _find_cloud_masks(self) -> dict[str, tuple[CloudMask, ...]]:
        """Find each indexed product's cloud masks (see the class docstring).

        A ``.SAFE`` without ``..._SCL_20m`` uses its ``R60m`` ``..._SCL_60m``.
        Warns when only some products have a mask.

        Returns:
            The masks of every requested band's file, for products with any.
        """
        found: dict[str, tuple[CloudMask, ...]] = {}
        unmasked: list[str] = []
        for filepath in self.index.filepath:
            masks = tuple(
                mask
                for mask in (
                    self._scl_of(filepath),
                    CloudMask(os.path.join(os.path.dirname(filepath), CLOUD_MASK_NAME)),
                )
                if mask is not None and os.path.exists(mask.path)
            )
            if masks:
                for band in self.bands:
                    found[self._update_filepath(band, filepath)] = masks
            else:
                unmasked.append(filepath)
        safe = [path for path in unmasked if ".SAFE" in path]
        if (found and unmasked) or safe:
            example = (safe or unmasked)[0]
            msg = (
                f"{len(unmasked)} of {len(self.index)} Sentinel-2 products under "
                f"{self._roots_str()} have no cloud mask beside their bands (e.g. "
                f"{os.path.dirname(example)!r}; expected an SCL, which every .SAFE "
                f"holds, or a {CLOUD_MASK_NAME}), so their cloudy pixels are read "
                "as reflectance; add the masks, or set cloudy pixels to 0 first."
            )
            warnings.warn(msg, UserWarning, stacklevel=3)
        return found

    def _scl_of(self, filepath: str) -> CloudMask | None:
        """The scene classification of a product, if it has one.

        Args:
            filepath: the product's indexed reference band file.

        Returns:
            Its ``SCL`` file (in a ``.SAFE``: ``..._SCL_20m``, else
            ``R60m``'s ``..._SCL_60m``) as a mask, or None.
        """
        scl = self._update_filepath(SCL, filepath)
        if scl == filepath:
            return None
        folder, name = os.path.split(scl)
        if os.path.basename(folder) == "R20m" and not os.path.exists(scl):
            name = name.replace("_SCL_20m.", "_SCL_60m.")
            scl = os.path.join(os.path.dirname(folder), "R60m", name)
        return CloudMask(scl, SCL_CLOUDS, SCL_UNUSABLE)

    @property
    def cloud_mask_files(self) -> list[str]:
        """The cloud mask files applied, sorted.

        Returns:
            Paths of the SCL and ``cloud_mask.tif`` files in use.
        """
        return sorted({m.path for masks in self.cloud_masks.values() for m in masks})

    def _warn_undated(self) -> None:
        """Warn when files carry no sensing date in their or their folder's name."""
        undated = [
            path
            for path, interval in zip(
                self.index.filepath, self.index.index, strict=True
            )
            if sensing_date(interval) is None
        ]
        if undated:
            msg = (
                f"{len(undated)} of {len(self.index)} Sentinel-2 file(s) under "
                f"{self._roots_str()} carry no sensing date in their name or their "
                f"folder's (e.g. {undated[0]!r}); expected YYYYMMDDTHHMMSS as in "
                "S2B_MSIL2A_20230715T184919_..., or a day as YYYY-MM-DD or "
                "YYYYMMDD, so their date is recorded as "
                "unknown and they come after every dated product: a mosaic reads "
                "them only where dated products leave nodata (a time series "
                "stacks them last); rename the product folder to carry its date."
            )
            warnings.warn(msg, UserWarning, stacklevel=3)

    def _filepath_to_timestamp(self, filepath: Path) -> tuple[datetime, datetime]:
        """Sensing time of a file, from its name or else its directory name.

        Args:
            filepath: path of an indexed file.

        Returns:
            ``(mint, maxt)``: the second the sensing started (the whole day
            for a folder dated by day), or the class's :attr:`mint`/:attr:`maxt`
            when no date is found.
        """
        match = re.match(self.filename_regex, os.path.basename(filepath), re.VERBOSE)
        stamp = match.groupdict().get("date") if match else None
        if stamp is not None:
            mint, maxt = disambiguate_timestamp(stamp, self.date_format)
            return mint, maxt
        directory = os.path.basename(os.path.dirname(os.fspath(filepath)))
        for regex, date_format in self.directory_date_patterns:
            for found in re.finditer(regex, directory):
                try:
                    mint, maxt = disambiguate_timestamp(found["date"], date_format)
                except ValueError:  # digits shaped like a date, e.g. 20231345
                    continue
                return mint, maxt
        return self.mint, self.maxt

    def _update_filepath(self, band: str, filepath: str) -> str:
        """Path of *band*'s file in the same product as *filepath*.

        See :meth:`_band_file`.

        Args:
            band: band to find, e.g. ``"B11"``.
            filepath: path of the product's indexed reference band file.

        Returns:
            The path of the band's file (which may not exist).
        """
        return self._band_file(band, filepath, self.filename_regex)

    def _band_file(self, band: str, filepath: str, regex: str) -> str:
        """Path of *band*'s file in the same product as a band file.

        Replaces the band name (torchgeo's ``band`` group), and for SAFE-style
        names the resolution suffix and ``R10m``/``R20m``/``R60m`` folder with
        *band*'s native resolution.

        Args:
            band: band to find, e.g. ``"B11"``.
            filepath: path of one of the product's band files.
            regex: regular expression of *filepath*'s name, with a ``band``
                group and an optional ``resolution`` group.

        Returns:
            The path of the band's file (which may not exist); *filepath*
            itself when its name does not match *regex*.
        """
        directory, filename = os.path.split(filepath)
        match = re.match(regex, filename, re.VERBOSE)
        if match is None or "band" not in match.groupdict():
            return filepath
        if match.groupdict().get("resolution") is not None:
            start, end = match.span("resolution")
            resolution = self.resolutions[band]
            filename = filename[:start] + resolution + filename[end:]
            parent, folder = os.path.split(directory)
            if folder in self.resolution_dirs:
                directory = os.path.join(parent, f"R{resolution}")
        start, end = match.span("band")
        filename = filename[:start] + band + filename[end:]
        return os.path.join(directory, filename)

    def _load_warp_file(
        self, filepath: Path, crs: CRS | None = None
    ) -> DatasetReader | WarpedVRT:
        """Open a file, warped to *crs*, resampling with :attr:`resampling`.

        torchgeo wraps every file in a WarpedVRT once :attr:`nodata` is set,
        even one already in *crs*, and builds it without a resampling method,
        so GDAL would warp, and resample each read onto the query grid, with
        nearest neighbour. Here a file already in *crs* and at :attr:`res` that
        itself declares :attr:`nodata` is read directly (the warp would change
        nothing and makes each read about twice as slow); any other is warped
        with :attr:`resampling`.

        Args:
            filepath: file to open.
            crs: CRS to warp to (default: the dataset CRS).

        Returns:
            The open file, or a WarpedVRT of it.
        """
        handle = super()._load_warp_file(filepath, crs)
        if self._native_crs is not None:  # Indexing: note the file's own CRS.
            native = handle.src_crs if isinstance(handle, WarpedVRT) else handle.crs
            self._native_crs[str(filepath)] = native.to_wkt()
        if not isinstance(handle, WarpedVRT):
            return handle
        src = rasterio.open(filepath)
        unwarped = (
            handle.crs == handle.src_crs
            and handle.transform == handle.src_transform
            and (handle.width, handle.height) == (src.width, src.height)
            and tuple(src.res) == tuple(self.res)
        )
        if unwarped and src.nodata == self.nodata:
            handle.close()
            return src
        if Resampling(handle.resampling) == self.resampling:
            src.close()
            return handle
        vrt = WarpedVRT(
            src,
            crs=handle.crs,
            transform=handle.transform,
            width=handle.width,
            height=handle.height,
            src_crs=handle.src_crs,
            src_transform=handle.src_transform,
            src_nodata=handle.src_nodata,
            resampling=self.resampling,
        )
        src.close()
        handle.close()
        return vrt

    def __getitem__(self, index: GeoSlice) -> Sample:
        """Read the pixels of a query, and with :attr:`pixel_dates` their dates.

        Args:
            index: ``[xmin:xmax:xres, ymin:ymax:yres, tmin:tmax:tres]``.

        Returns:
            torchgeo's sample (see the class docstring). With
            :attr:`pixel_dates` and no time series it also has ``date``, int64
            ``[H, W]``: the sensing day of the product each pixel comes from,
            as numpy ``datetime64[D]`` integers (days since 1970-01-01; view
            with ``sample["date"].numpy().view("datetime64[D]")``), NaT where
            no product has data or the product's name carries no date. Where
            bands differ in which product has data, the first band's count.
            It is added after *transforms*.

        Raises:
            IndexError: If *index* is not found in the dataset.
            UnreadableFileError: If a file or cloud mask cannot be opened or read.
        """
        self._sources = None
        try:
            sample = super().__getitem__(index)
            if self._sources is not None:
                paths, sources = self._sources
                assert sources.array is not None
                day_of = self._sensing_days()
                # NO_SOURCE, -1, picks the last day: NaT.
                days = np.array([day_of.get(path, "NaT") for path in paths] + ["NaT"])
                sample["date"] = torch.from_numpy(
                    days.astype("datetime64[D]")[sources.array].view(np.int64)
                )
        finally:
            self._sources = None
        return sample

    def _sensing_days(self) -> dict[str, str]:
        """The sensing day of every indexed file, and of its product's bands.

        Returns:
            ``YYYY-MM-DD`` (``NaT`` for a product whose name carries no date)
            by path, for the files :meth:`_merge_or_stack` reads.
        """
        if self._days is None or self._days[0] is not self.index:
            days: dict[str, str] = {}
            for path, interval in zip(
                self.index.filepath, self.index.index, strict=True
            ):
                day = sensing_date(interval)
                text = "NaT" if day is None else day.isoformat()
                days[os.fspath(path)] = text
                if self.separate_files:
                    for band in self.bands:
                        days[self._update_filepath(band, path)] = text
            self._days = (self.index, days)
        return self._days[1]

    def _merge_or_stack(
        self,
        filepaths: Sequence[str],
        index: GeoSlice,
        band_indexes: Sequence[int] | None = None,
        out_crs: CRS | None = None,
    ) -> Tensor:
        """Read the files under a query as reflectance x10000, and mosaic them.

        Per-band files of processing baseline 04.00 and later lose ESA's +1000
        offset (see :func:`~torchgeo_simclr.datasets.products.boa_offset`),
        and pixels their product's cloud masks call cloudy become nodata,
        file by file, before the mosaic; other files are returned as stored.

        Args:
            filepaths: files under the query, in mosaic order.
            index: ``[xmin:xmax:xres, ymin:ymax:yres, tmin:tmax:tres]``.
            band_indexes: 1-based bands to read (default: all).
            out_crs: CRS of the query (default: the dataset CRS).

        Returns:
            ``[C, H, W]`` (``[T, C, H, W]`` for a time series), :attr:`nodata`
            where no file has data.

        Raises:
            UnreadableFileError: If a file or cloud mask cannot be opened or read.
        """
        offsets = [
            boa_offset(os.fspath(path)) if self.separate_files else 0
            for path in filepaths
        ]
        masks = [self.cloud_masks.get(os.fspath(path), ()) for path in filepaths]
        if self.time_series:
            data = self._mosaic(filepaths, index, band_indexes, out_crs)
            return torch.stack(
                [
                    self._blank_clouds(remove_offset(d, o), m, index, out_crs)
                    for d, o, m in zip(data, offsets, masks, strict=True)
                ]
            )
        # The sample's dates follow its first band (see __getitem__).
        sources = PixelSources() if self.pixel_dates and self._sources is None else None
        if len(set(offsets)) == 1 and not any(masks):
            data = self._mosaic(filepaths, index, band_indexes, out_crs, sources)
            data = remove_offset(data, offsets[0])
        else:
            # Products with cloud masks, or of both offset kinds, overlap:
            # correct each file on its own, then mosaic.
            data = first_valid(
                (
                    self._blank_clouds(
                        remove_offset(
                            self._mosaic([path], index, band_indexes, out_crs), o
                        ),
                        m,
                        index,
                        out_crs,
                    )
                    for path, o, m in zip(filepaths, offsets, masks, strict=True)
                ),
                sources,
            )
        if sources is not None:
            self._sources = (list(map(os.fspath, filepaths)), sources)
        return data

    def _blank_clouds(
        self,
        data: Tensor,
        masks: tuple[CloudMask, ...],
        index: GeoSlice,
        out_crs: CRS | None = None,
    ) -> Tensor:
        """Set the pixels that any of *masks* calls cloudy to :attr:`nodata`.

        A query's flags (see :meth:`_cloudy`) are kept, per product, until the
        next query, so the product's other bands reuse them.

        Args:
            data: ``[C, H, W]`` one file's pixels under the query.
            masks: the cloud masks of the file's product (may be empty).
            index: ``[xmin:xmax:xres, ymin:ymax:yres, tmin:tmax:tres]``.
            out_crs: CRS of the query (default: the dataset CRS).

        Returns:
            *data*, blanked where cloudy.
        """
        if not masks:
            return data
        out_crs = out_crs or self.crs
        x, y, _ = self._disambiguate_slice(index)
        query = (x.start, x.stop, x.step, y.start, y.stop, y.step, out_crs)
        if query != self._flags_query:
            self._flags_query, self._flags = query, {}
        if masks not in self._flags:
            self._flags[masks] = self._cloudy(masks, x, y, out_crs)
        return data.masked_fill(self._flags[masks], S2_NODATA)

    def _cloudy(
        self, masks: tuple[CloudMask, ...], x: slice, y: slice, out_crs: CRS
    ) -> Tensor:
        """Read a product's masks over a query, widened by the bands' reach.

        See :func:`~torchgeo_simclr.datasets.cloud_masks.cloudy_pixels`.

        Args:
            masks: the cloud masks of one product.
            x: the query's ``xmin:xmax:xres``.
            y: the query's ``ymin:ymax:yres``.
            out_crs: CRS of the query.

        Returns:
            ``[H, W]``, True where cloudy or within reach of a cloudy pixel.

        Raises:
            UnreadableFileError: If a mask cannot be opened or read.
        """
        opened = []
        for mask in masks:
            with readable(mask.path):
                opened.append((mask, self._cached_open_mask(mask.path, out_crs)))
        coarsest = max(S2_BAND_RESOLUTION[band] for band in self.bands)
        return torch.from_numpy(
            cloudy_pixels(opened, x, y, coarsest, self.cloud_buffer)
        )

    def _cached_open_mask(self, path: str, crs: CRS) -> DatasetReader | WarpedVRT:
        """Open a cloud mask once per dataset, and keep it open.

        The dataset's :data:`MASKS_KEPT_OPEN` most recently used masks stay
        open, until the dataset is collected or :func:`fresh_file_handles`
        drops them.

        Args:
            path: the mask raster.
            crs: CRS of the queries.

        Returns:
            The open mask.
        """
        handles = _OPEN_MASKS.setdefault(self, OrderedDict())
        key = (path, crs)
        if key in handles:
            handles.move_to_end(key)
            return handles[key]
        handle = handles[key] = open_mask(path, crs)
        if len(handles) > MASKS_KEPT_OPEN:
            handles.popitem(last=False)
        return handle

    def _mosaic(
        self,
        filepaths: Sequence[str],
        index: GeoSlice,
        band_indexes: Sequence[int] | None = None,
        out_crs: CRS | None = None,
        sources: PixelSources | None = None,
    ) -> Tensor:
        """Read the files under a query and mosaic them, first valid pixel wins.

        torchgeo mosaics with :func:`rasterio.merge.merge`, which reads each
        file masked, then converts the mosaic to int32 and float32. When file
        handles are cached, every file is read directly (see
        :meth:`_load_warp_file`), no time series is asked for and the query
        lies on the files' own pixel grid, each file's part of the query is
        read here and converted to float32 once: the first file fills its
        part, later ones only what is still nodata, and a file whose part has
        no nodata left is not read. The values are the same, read about a
        quarter faster. Any other query goes through torchgeo, file by file
        (see :func:`first_valid`) unless it asks for a time series or the
        files are read without cached handles or nodata.

        Args:
            filepaths: files under the query, in mosaic order.
            index: ``[xmin:xmax:xres, ymin:ymax:yres, tmin:tmax:tres]``.
            band_indexes: 1-based bands to read (default: all).
            out_crs: CRS of the query (default: the dataset CRS).
            sources: if given, records which file each pixel came from (not
                for a time series).

        Returns:
            ``[C, H, W]`` pixel values (float32 on the direct path), :attr:`nodata`
            where no file has data.

        Raises:
            UnreadableFileError: If a file cannot be opened or read.
        """
        out_crs = out_crs or self.crs
        merge = self._merge
        if not self.cache or self.time_series or self.nodata is None:
            if sources is None or len(filepaths) == 1:
                data = merge(filepaths, index, band_indexes, out_crs)
                if sources is not None:
                    sources.take(data, 0)
                return data
            return first_valid(
                (merge([path], index, band_indexes, out_crs) for path in filepaths),
                sources,
            )
        handles: list[DatasetReader | WarpedVRT] = []
        for path in filepaths:
            with reading(path):
                handles.append(self._cached_load_warp_file(path, out_crs))
        x, y, _ = self._disambiguate_slice(index)
        width, height = (x.stop - x.start) / x.step, (y.stop - y.start) / y.step
        if not (
            _whole(width)
            and _whole(height)
            and all(self._on_grid(handle, x, y) for handle in handles)
        ):
            return first_valid(
                (merge([path], index, band_indexes, out_crs) for path in filepaths),
                sources,
            )
        width, height = round(width), round(height)
        bands = len(band_indexes) if band_indexes else handles[0].count
        mosaic = np.full((bands, height, width), self.nodata, np.float32)
        if sources is not None:
            sources.array = np.full((height, width), NO_SOURCE, np.int16)
        for i, (path, handle) in enumerate(zip(filepaths, handles, strict=True)):
            left, top = handle.transform.c, handle.transform.f
            col, row = round((left - x.start) / x.step), round((y.stop - top) / y.step)
            rows = slice(max(row, 0), min(row + handle.height, height))
            cols = slice(max(col, 0), min(col + handle.width, width))
            if rows.start >= rows.stop or cols.start >= cols.stop:
                continue
            window = Window(
                cols.start - col,
                rows.start - row,
                cols.stop - cols.start,
                rows.stop - rows.start,
            )
            region = mosaic[:, rows, cols]
            if i == 0:
                with reading(path):
                    region[...] = handle.read(band_indexes, window=window)
                if sources is not None:
                    sources.take(region, i, at=(rows, cols))
                continue
            empty = region == self.nodata
            if not empty.any():  # this file would change nothing here
                continue
            with reading(path):
                part = handle.read(band_indexes, window=window)
            if sources is not None:
                sources.take(part, i, at=(rows, cols))
            np.copyto(region, part, where=empty)
        return torch.from_numpy(mosaic)

    def _merge(
        self,
        filepaths: Sequence[str],
        index: GeoSlice,
        band_indexes: Sequence[int] | None = None,
        out_crs: CRS | None = None,
    ) -> Tensor:
        """Mosaic (or stack) files as torchgeo does, naming a file it cannot read.

        Args:
            filepaths: files under the query, in mosaic order.
            index: ``[xmin:xmax:xres, ymin:ymax:yres, tmin:tmax:tres]``.
            band_indexes: 1-based bands to read (default: all).
            out_crs: CRS of the query (default: the dataset CRS).

        Returns:
            torchgeo's ``[C, H, W]`` (``[T, C, H, W]`` for a time series).

        Raises:
            UnreadableFileError: If a file cannot be opened or read.
        """
        merge = super()._merge_or_stack
        paths = list(filepaths)
        if len(paths) == 1:
            with reading(paths[0]):
                return merge(paths, index, band_indexes, out_crs)
        try:
            return merge(paths, index, band_indexes, out_crs)
        except RasterioIOError:
            # Read each on its own, to name the one that fails.
            for path in paths:
                self._merge([path], index, band_indexes, out_crs)
            raise

    @staticmethod
    def _on_grid(handle: DatasetReader | WarpedVRT, x: slice, y: slice) -> bool:
        """Whether a query can be cut from a file without resampling.

        Args:
            handle: an open file, as :meth:`_load_warp_file` returns it.
            x: the query's ``xmin:xmax:xres``.
            y: the query's ``ymin:ymax:yres``.

        Returns:
            True for a file read directly (not warped), north up, at the
            query's resolution, with the query's corner on a pixel corner, and
            with values float32 holds exactly (integers of up to 16 bits).
        """
        transform = handle.transform
        dtype = np.dtype(handle.dtypes[0])
        return (
            not isinstance(handle, WarpedVRT)
            and (transform.a, transform.e) == (x.step, -y.step)
            and transform.b == transform.d == 0
            and _whole((x.start - transform.c) / x.step)
            and _whole((transform.f - y.stop) / y.step)
            and dtype.kind in "ui"
            and dtype.itemsize <= 2
        )

    def plot(
        self,
        sample: Sample,
        show_titles: bool = True,
        suptitle: str | None = None,
    ) -> Figure:
        """Plot a sample: true colour, and the mask and prediction when present.

        The true-colour panel shows B04/B03/B02 on one scale for all three
        bands (see :func:`~torchgeo_simclr.datasets.display.natural_colour`).

        Args:
            sample: a sample from :meth:`__getitem__`, ``image`` ``[C, H, W]``,
                optionally with ``mask`` and/or ``prediction`` ``[H, W]``
                (0 not irrigated, 1 irrigated, 255 ignored).
            show_titles: whether to title each panel.
            suptitle: optional title of the whole figure.

        Returns:
            A matplotlib Figure with one panel per shown item.

        Raises:
            RGBBandsMissingError: If the dataset lacks one of B04, B03, B02.
        """
        if not all(band in self.bands for band in self.rgb_bands):
            raise RGBBandsMissingError()
        rgb_indices = [self.bands.index(band) for band in self.rgb_bands]
        image = sample["image"][rgb_indices].detach().cpu().float().numpy()
        panels = [("Image", natural_colour(image)), *class_panels(sample)]
        return plot_panels(panels, show_titles, suptitle)


@functools.cache
def _crs_name(wkt: str) -> str:
    """A CRS as messages name it.

    Args:
        wkt: the CRS as WKT.

    Returns:
        Its authority code, e.g. ``EPSG:32610``, where pyproj finds one;
        else its name.
    """
    crs = CRS.from_wkt(wkt)
    authority = crs.to_authority(min_confidence=70)
    return ":".join(authority) if authority else crs.name


def class_panels(sample: Sample) -> list[tuple[str, npt.NDArray[Any]]]:
    """A sample's class layers as panels of :func:`plot_panels`.

    Args:
        sample: a sample, optionally with ``mask`` and/or ``prediction``
            ``[H, W]`` (0 not irrigated, 1 irrigated, 255 ignored).

    Returns:
        ``(title, [H, W] array)`` of ``mask`` and then ``prediction``, where
        present.
    """
    return [
        (key.capitalize(), sample[key].detach().cpu().numpy().squeeze())
        for key in ("mask", "prediction")
        if key in sample
    ]


def plot_panels(
    panels: Sequence[tuple[str, npt.NDArray[Any]]],
    show_titles: bool = True,
    suptitle: str | None = None,
) -> Figure:
    """Draw panels side by side, each 4 inches square.

    Args:
        panels: ``(title, array)`` per panel: a colour image ``[H, W, 3]`` in
            [0, 1], or a class layer ``[H, W]`` drawn in the map colours with
            a legend (:func:`~torchgeo_simclr.datasets.display.show_classes`).
        show_titles: whether to title each panel.
        suptitle: optional title of the whole figure.

    Returns:
        A matplotlib Figure with one axes per panel.
    """
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4 * len(panels), 4), squeeze=False
    )
    for ax, (title, data) in zip(axes[0], panels, strict=True):
        if data.ndim == 3:
            ax.imshow(data)
        else:
            show_classes(ax, data)
        ax.axis("off")
        if show_titles:
            ax.set_title(title)
    if suptitle is not None:
        fig.suptitle(suptitle)
    return fig


def fresh_file_handles(worker_id: int) -> None:
    """Drop the raster file handles a DataLoader worker inherited at fork.

    torchgeo keeps open handles in a cache shared by every
    :class:`~torchgeo.datasets.RasterDataset`. Workers forked after the main
    process has read (band statistics) inherit them, and two workers (the
    persistent train and val workers) then read through one shared file
    offset, which corrupts compressed tiles ("ZSTD_decompressStream(): Data
    corruption detected"). Each worker opens its own handles instead, of the
    bands and of the cloud masks.

    Args:
        worker_id: index of the worker (unused).
    """
    RasterDataset._cached_load_warp_file.cache_clear()
    _OPEN_MASKS.clear()
