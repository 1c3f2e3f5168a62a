"""Irrigation masks rasterised from DWR crop-mapping or your own polygons."""

import json
import math
import os
import pathlib
import shlex
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, cast

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pyogrio.errors
import rasterio.features
import rasterio.transform
import shapely
import torch
from geopandas import GeoDataFrame
from matplotlib.figure import Figure
from pyproj import CRS
from torchgeo.datasets import GeoDataset, IntersectionDataset, VectorDataset
from torchgeo.datasets.utils import GeoSlice, Path, Sample

from ..constants import IGNORE_INDEX
from ..lonlat import (
    LONLAT,
    bbox_polygon,
    check_lonlat_bbox,
    lonlat_extent,
    unnamed_crs,
)
from ..vectors import assign_crs_hint, not_finite, off_earth_fault
from .combine import intersect
from .dwr import (
    DEFAULT_IRRIGATION_MAP,
    DWR_CLASS_COLUMN,
    DWR_CLASS_COLUMNS,
    MISSING_CODE,
    build_irrigation_map,
    class_codes_to_mask_values,
    code_key,
    is_dwr_column,
)
from .files import as_path_list
from .sentinel2 import check_res, class_panels, plot_panels
from .survey_years import survey_year

#: What a label file must be, for error messages.
EXPECTED_FORMATS = (
    "a vector file GDAL can read (GDB zip, .gdb folder, GeoPackage, Shapefile, "
    "GeoJSON) or a GeoParquet file"
)


def resolve_label_path(root: str | os.PathLike[str], labels: str) -> pathlib.Path:
    """Find a label file given absolute, relative to *root* or to the working dir.

    Args:
        root: the scene directory.
        labels: the label file as a user wrote it.

    Returns:
        *labels* itself when absolute; else *labels* under *root* when it is
        there; else *labels* from the working directory when it is there; else
        *labels* under *root* (whose absence the reader then reports).
    """
    path = pathlib.Path(labels)
    under_root = pathlib.Path(root) / path
    if path.is_absolute() or (not under_root.exists() and path.exists()):
        return path
    return under_root


def shown_code(code: str) -> str:
    """A class code as messages list it: a blank one as ``<blank>``.

    Args:
        code: a code as :func:`~torchgeo_simclr.datasets.dwr.code_key` gives it.

    Returns:
        The code, or ``<blank>`` for an empty one (which would vanish).
    """
    return code or "<blank>"


def class_map_example(codes: Sequence[str]) -> str:
    """How to pass a class map for *codes*, in each command's terms.

    The first code is set irrigated and the second (if any) not, as an
    example of the syntax: what the codes mean only the user knows.

    Args:
        codes: codes found, as :func:`~torchgeo_simclr.datasets.dwr.code_key`
            gives them; blank and missing ones are left out of the example.

    Returns:
        E.g. ``if S means irrigated and N not: --data.init_args.class_map
        '{"S": 1, "N": 0}' for fit (class_map in a config), --class-map S=1
        N=0 for evaluate, probe and embedding-map``.
    """
    named = [code for code in codes if code and code != MISSING_CODE][:2] or ["CODE"]
    pairs = dict(zip(named, (1, 0), strict=False))
    meaning = f"if {named[0]} means irrigated" + (
        f" and {named[1]} not" if len(named) > 1 else ""
    )
    yaml = shlex.quote(json.dumps(pairs, ensure_ascii=False))
    cli = " ".join(shlex.quote(f"{code}={value}") for code, value in pairs.items())
    return (
        f"{meaning}: --data.init_args.class_map {yaml} for fit (class_map in a "
        f"config), --class-map {cli} for evaluate, probe and embedding-map"
    )


def unmapped_codes_message(
    files: Sequence[str],
    class_column: str,
    codes: Sequence[str],
    class_map: Mapping[str, int] | None,
) -> str:
    """The refusal of labels whose own codes no class map gives a mask value.

    Args:
        files: the label files read.
        class_column: their class column, not one of DWR's.
        codes: the distinct codes found, sorted.
        class_map: the class map given, or None.

    Returns:
        One sentence naming the files, the column, the codes (the first 10)
        and what to pass.
    """
    named = f"file {files[0]!r}" if len(files) == 1 else f"files {list(files)}"
    listed = ", ".join(map(shown_code, codes[:10])) + (
        f" and {len(codes) - 10} more" if len(codes) > 10 else ""
    )
    given = (
        f" and class_map {dict(class_map)} maps none of them (codes are compared "
        "case-sensitively, surrounding spaces stripped)"
        if class_map
        else ""
    )
    dwr = ", ".join(sorted(DWR_CLASS_COLUMNS))
    return (
        f"Label {named} column {class_column!r} holds the codes {listed}, which "
        f"say nothing about irrigation without a class map (DWR's crop classes "
        f"are read from {dwr} only){given}; pass what each code means, 1 "
        f"(irrigated), 0 (not irrigated) or 255 (ignored), e.g. "
        f"{class_map_example(codes)}."
    )


def dwr_codes_left_out(
    class_column: str, unmapped: Iterable[str], class_map: Mapping[str, int] | None
) -> list[str]:
    """DWR crop codes a partial class map leaves out of a renamed DWR column.

    DWR's defaults apply only to
    :data:`~torchgeo_simclr.datasets.dwr.DWR_CLASS_COLUMNS`: a DWR column
    renamed (e.g. ``Class2_2022``) with a class map of a few overrides (e.g.
    ``{"G": 255, "P": 255}``) would leave every other DWR class ignored.

    Args:
        class_column: the label files' class column.
        unmapped: the distinct codes found that *class_map* leaves out, as
            :func:`~torchgeo_simclr.datasets.dwr.code_key` gives them.
        class_map: the class map given, or None.

    Returns:
        The keys of :data:`~torchgeo_simclr.datasets.dwr.DEFAULT_IRRIGATION_MAP`
        among *unmapped*, sorted, where the column is not DWR's, a class map is
        given, and at least two of them make at least half of *unmapped*
        (missing codes not counted); else an empty list.
    """
    if is_dwr_column(class_column) or not class_map:
        return []
    codes = {code for code in unmapped if code != MISSING_CODE}
    dwr = sorted(codes & DEFAULT_IRRIGATION_MAP.keys())
    return dwr if len(dwr) >= 2 and 2 * len(dwr) >= len(codes) else []


def dwr_codes_left_out_message(
    files: Sequence[str],
    class_column: str,
    codes: Sequence[str],
    class_map: Mapping[str, int],
) -> str:
    """The refusal of a renamed DWR column with a partial class map.

    Args:
        files: the label files read.
        class_column: their class column, not one of DWR's.
        codes: the DWR codes *class_map* leaves out, from
            :func:`dwr_codes_left_out`.
        class_map: the class map given.

    Returns:
        One sentence naming the column, the codes left out, the rule and what
        to do.
    """
    named = f"file {files[0]!r}" if len(files) == 1 else f"files {list(files)}"
    listed = ", ".join(map(shown_code, codes[:10])) + (
        f" and {len(codes) - 10} more" if len(codes) > 10 else ""
    )
    return (
        f"Label {named} column {class_column!r} holds DWR crop codes that "
        f"class_map {dict(class_map)} leaves out ({listed}), and DWR's default "
        f"classes apply only to columns named CLASS1 to CLASS4, so those polygons "
        f"would all be ignored; rename the column to {DWR_CLASS_COLUMN} in the "
        f"file and read it as {DWR_CLASS_COLUMN} (the default class_column), "
        "keeping class_map as overrides of DWR's defaults, or give class_map a "
        "value for every code."
    )


def layer_columns(path: str, layer: str) -> list[str]:
    """The attribute columns of one layer of a file GDAL reads.

    Args:
        path: the file.
        layer: the layer's name.

    Returns:
        Its attribute column names (not the geometry).
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Measured \\(M\\) geometry types")
        return [
            str(column) for column in pyogrio.read_info(path, layer=layer)["fields"]
        ]


def _polygonal(geometry: shapely.Geometry) -> shapely.Geometry:
    """The polygons of a geometry make_valid repaired (it also keeps lines and points).

    Args:
        geometry: a valid geometry.

    Returns:
        It when a (multi)polygon; else a multipolygon of its polygon parts,
        empty where it has none.
    """
    if isinstance(geometry, shapely.Polygon | shapely.MultiPolygon):
        return geometry
    polygons = [
        polygon
        for part in shapely.get_parts(geometry)
        for polygon in shapely.get_parts(part)
        if isinstance(polygon, shapely.Polygon)
    ]
    return shapely.MultiPolygon(polygons)


class LabelsOutsideBboxError(ValueError):
    """No label polygon intersects the bbox (a ``ValueError`` with its parts)."""

    def __init__(
        self, message: str, bbox: list[float], extents: dict[str, list[float]]
    ) -> None:
        """Initialise a new LabelsOutsideBboxError.

        Args:
            message: the sentence for the user.
            bbox: the bbox, lon/lat degrees.
            extents: label file -> its lon/lat extent.
        """
        super().__init__(message)
        #: The bbox, ``[min lon, min lat, max lon, max lat]``.
        self.bbox = bbox
        #: Label file -> ``[min lon, min lat, max lon, max lat]``.
        self.extents = extents


class IrrigationLabels(VectorDataset):
    """Irrigation masks from California DWR Statewide Crop Mapping or your own polygons.

    Each polygon's class code (column ``CLASS2`` by default) is mapped once to
    a mask value: 1 irrigated, 0 not irrigated, 255 ignored. DWR's class
    columns (:data:`~torchgeo_simclr.datasets.dwr.DWR_CLASS_COLUMNS`) are
    mapped by :data:`~torchgeo_simclr.datasets.DEFAULT_IRRIGATION_MAP` updated
    with *class_map*; any other column by *class_map* alone, which must map
    some of its codes (a code such as ``S`` or ``D`` may mean one thing to
    DWR and the opposite in your file). The
    features are read once, with only the class column and the geometry (Z/M
    dropped), and kept in memory with a spatial index; each sample rasterises
    the polygons that intersect the query. Features with a NaN or infinite
    coordinate are left out, and an invalid polygon (a self-intersecting
    ring, say) is replaced by the polygons of shapely's ``make_valid`` repair,
    each with one warning per file naming the first by row, as ``field-stats``
    counts its fields; coordinates that can be no place on Earth in the
    file's CRS are refused. Pixels are burnt when their centre
    lies inside a polygon; pixels outside every polygon are 255. Where polygons
    overlap, the one that comes later in the file (and later files over earlier
    ones) wins.

    Labels have no date: every file spans all time, so ``image & labels``
    intersects in space only. When the CRS changes (``image & labels`` sets the
    labels' CRS to the image's), the features are reprojected once.

    Samples are dicts with ``mask``: int64 ``[H, W]`` on the query grid
    (``H = round(height / yres)``, ``W = round(width / xres)``), and torchgeo's
    ``bounds`` and ``transform``.

    Reads the DWR File Geodatabase as published (``*.gdb.zip`` or ``.gdb``
    folder), GeoPackage, Shapefile, GeoJSON, FlatGeobuf and GeoParquet.
    """

    #: File name endings (lower case) of label files found in a directory.
    label_suffixes: ClassVar[tuple[str, ...]] = (
        ".gdb.zip",
        ".gdb",
        ".gpkg",
        ".shp",
        ".geojson",
        ".fgb",
        ".parquet",
    )

    #: File name endings (lower case) read with GeoPandas' Parquet reader.
    parquet_suffixes: ClassVar[tuple[str, ...]] = (".parquet", ".geoparquet")

    def __and__(self, other: GeoDataset) -> IntersectionDataset:
        """Intersect with *other*, refused in one sentence when they miss.

        Args:
            other: e.g. the imagery.

        Returns:
            The intersection.
        """
        return intersect(self, other)

    def __init__(
        self,
        paths: Path | Iterable[Path] = "data",
        crs: CRS | str | None = None,
        res: float | tuple[float, float] = 10.0,
        class_column: str = DWR_CLASS_COLUMN,
        class_map: dict[str, int] | None = None,
        layer: str | int | None = None,
        bbox: tuple[float, float, float, float] | None = None,
        transforms: Callable[[Sample], Sample] | None = None,
        covers_bbox: bool = False,
    ) -> None:
        """Initialise a new IrrigationLabels dataset (reads the features once).

        Args:
            paths: label files, or directories searched recursively for files
                ending in one of :attr:`label_suffixes`.
            crs: CRS of the samples, a pyproj CRS or a string such as
                ``"EPSG:32610"`` (default: the first file's CRS when projected,
                else the UTM zone of its features).
            res: pixel size in units of the CRS (metres for UTM, degrees for
                a geographic CRS such as EPSG:4269, where 1 or more is refused
                as metres meant; see
                :func:`~torchgeo_simclr.datasets.sentinel2.check_res`),
                ``(x, y)`` or one number for both.
            class_column: attribute holding the class code.
            class_map: class code -> mask value (0, 1 or 255): entries that
                update :data:`~torchgeo_simclr.datasets.DEFAULT_IRRIGATION_MAP`
                for a DWR class column (``CLASS1`` to ``CLASS4``, any case),
                the whole map for any other column, e.g. ``{"S": 1, "N": 0}``.
            layer: layer name or index in multi-layer files (default: first).
            bbox: only read features intersecting ``(min lon, min lat, max lon,
                max lat)``, EPSG:4326 degrees; the filter is applied while
                reading.
            transforms: a function that takes a sample and returns a
                transformed version.
            covers_bbox: the files hold every label inside *bbox*, so the
                dataset covers all of *bbox*'s extent in its CRS (land without
                a polygon there is unlabelled) rather than only its features'
                bounds: an intersection with imagery, and the patches and
                blocks cut from it, then do not move when labels are added or
                removed.

        Raises:
            FileNotFoundError: If a path does not exist or holds no label file.
            ValueError: If a file cannot be read, the class column or layer is
                missing, *class_map* has a value other than 0, 1, 255, *bbox* is
                malformed, no feature lies in *bbox*, *res* is 1 or more in a
                geographic *crs*, a file names no CRS and its coordinates are
                not degrees, a file's coordinates can be no place on Earth in
                its CRS (see :func:`off_earth_fault`), or *class_column* is not
                DWR's and *class_map* maps none of its codes.

        Warns:
            UserWarning: if a file holds features with coordinates that are
                not numbers (left out) or invalid polygons (repaired).
        """
        if crs is not None:
            crs = CRS.from_user_input(crs)
            check_res(crs, res)
        #: Label files, or directories searched for them (see :attr:`files`).
        self.paths = paths
        #: Function applied to each sample, or None.
        self.transforms = transforms
        #: Attribute holding the class code.
        self.class_column = class_column
        #: Class code -> mask value (0, 1 or 255): the default map updated
        #: with *class_map* for a DWR class column, else *class_map* alone.
        self.class_map = build_irrigation_map(class_map, class_column)
        # The samples' CRS asked for (None: the files'), which a file that
        # names no CRS is told to take.
        self._asked_crs = crs
        #: Layer name or index read from multi-layer files (None: the first).
        self.layer = layer
        #: Region ``(min lon, min lat, max lon, max lat)``, EPSG:4326 degrees,
        #: that features are read in (validated; None: everywhere).
        self.bbox = check_lonlat_bbox(bbox)
        #: Whether the dataset covers all of :attr:`bbox`, not only the
        #: features' bounds.
        self.covers_bbox = covers_bbox and self.bbox is not None

        files = self.files
        # Features left out for coordinates that are not numbers.
        self._not_numbers = 0
        frames: list[GeoDataFrame] = []
        kept: list[str] = []
        extents: dict[str, list[float]] = {}
        unknown: set[str] = set()
        # Codes the polygons have (to catch class_map entries that match none).
        seen: set[str] = set()
        # Polygons read, and those whose code has no irrigation class.
        polygons = unmapped = 0
        for filepath in files:
            frame, extent = self._read(filepath)
            if frame.empty:
                if extent is not None:
                    extents[filepath] = extent
                continue
            values, missing = class_codes_to_mask_values(
                frame[class_column], self.class_map
            )
            seen.update(code_key(code) for code in frame[class_column].unique())
            unknown.update(missing)
            polygons += len(frame)
            if missing:  # A second pass over the codes only when some are unknown.
                unknown_codes = set(missing)
                unmapped += sum(
                    code_key(c) in unknown_codes for c in frame[class_column]
                )
            frames.append(
                GeoDataFrame(
                    {
                        "value": values,
                        "source": len(kept),
                        "code": frame[class_column].to_numpy(),
                    },
                    geometry=frame.geometry.to_numpy(),
                    crs=frame.crs,
                )
            )
            kept.append(filepath)

        if not frames:
            if self.bbox is None or not extents:
                left_out = (
                    f" with coordinates that are numbers ({self._not_numbers:,} "
                    "left out)"
                    if self._not_numbers
                    else ""
                )
                msg = (
                    f"Label file(s) {files} hold no polygons{left_out}; expected "
                    "label polygons (DWR's crop mapping or your own), so check the "
                    "file and its layer (--data.init_args.labels_layer; evaluate: "
                    "--labels-layer)."
                )
            else:
                box = [round(v, 4) for v in self.bbox]
                msg = (
                    f"No label polygons intersect {box} (min lon, min lat, max lon,"
                    " max lat: the bbox, or the imagery's or map's extent where no "
                    "bbox is given); the file(s) cover "
                    + "; ".join(f"{f!r}: {e}" for f, e in extents.items())
                    + " (lon/lat), so pass labels of that area, a bbox inside both, "
                    "or no labels to pretrain (--data.init_args.labels null)."
                )
                raise LabelsOutsideBboxError(msg, box, extents)
            raise ValueError(msg)
        if not is_dwr_column(class_column) and seen.isdisjoint(self.class_map):
            msg = unmapped_codes_message(kept, class_column, sorted(seen), class_map)
            raise ValueError(msg)
        if class_map and (
            dwr_codes := dwr_codes_left_out(class_column, unknown, class_map)
        ):
            msg = dwr_codes_left_out_message(kept, class_column, dwr_codes, class_map)
            raise ValueError(msg)
        if unknown:
            codes = sorted(unknown)
            listed = ", ".join(map(shown_code, codes[:10])) + (
                f" and {len(codes) - 10} more" if len(codes) > 10 else ""
            )
            warnings.warn(
                f"{unmapped:,} of {polygons:,} label polygons have a {class_column} "
                f"code with no irrigation class ({listed}), so they are ignored "
                f"(labelled {IGNORE_INDEX}); map codes to 1 (irrigated) or 0 (not) "
                "with class_map (evaluate: --class-map CODE=1).",
                UserWarning,
                stacklevel=2,
            )

        unused = sorted({code_key(code) for code in class_map or {}} - seen)
        if unused:
            present = sorted(seen)
            listed = ", ".join(map(shown_code, present[:20])) + (
                " ..." if len(present) > 20 else ""
            )
            warnings.warn(
                f"class_map code(s) {unused} match no label polygon, so they change "
                f"nothing; the {class_column} codes here are {listed} (compared "
                "case-sensitively, surrounding spaces stripped).",
                UserWarning,
                stacklevel=2,
            )

        if crs is None:
            first = frames[0]
            first_crs = CRS.from_user_input(first.crs) if first.crs else LONLAT
            crs = first_crs if first_crs.is_projected else first.estimate_utm_crs()
        features = pd.concat([frame.to_crs(crs) for frame in frames], ignore_index=True)
        self._filepaths = kept
        #: The survey years the files' or layers' names give, DWR style
        #: (``i15_Crop_Mapping_2023``; see
        #: :func:`~torchgeo_simclr.datasets.survey_years.survey_year`); empty
        #: for names without one.
        self.years = frozenset(
            year
            for year in (survey_year(path, layer) for path in kept)
            if year is not None
        )
        if isinstance(res, int | float):
            res = (float(res), float(res))
        self._res = res
        self._set_features(cast(GeoDataFrame, features))

    @property
    def files(self) -> list[str]:
        """Label files: the given files, plus those found in given directories.

        Returns:
            Sorted label file paths.

        Raises:
            FileNotFoundError: If a path does not exist or no label file is found.
        """
        paths = as_path_list(self.paths)
        found: set[str] = set()
        for path in paths:
            name = os.fspath(path)
            is_gdb = os.path.isdir(name) and name.lower().rstrip("/").endswith(".gdb")
            if name.startswith("/vsi") or os.path.isfile(name) or is_gdb:
                found.add(name)
            elif os.path.isdir(name):
                found.update(self._find_label_files(name))
            else:
                msg = (
                    f"Label path {name!r} does not exist; expected the DWR "
                    "crop-mapping GDB zip or another label file, that is "
                    f"{EXPECTED_FORMATS}: pass one as --labels "
                    "(--data.init_args.labels), or --data.init_args.labels null "
                    "to pretrain without labels."
                )
                raise FileNotFoundError(msg)
        if not found:
            msg = (
                f"No label file found under {[os.fspath(p) for p in paths]} (no "
                f"name there ends in {', '.join(self.label_suffixes)}); expected "
                f"{EXPECTED_FORMATS}, so put one there or pass its path."
            )
            raise FileNotFoundError(msg)
        return sorted(found)

    def _find_label_files(self, root: str) -> list[str]:
        """Find label files under a directory (a ``.gdb`` folder counts as one).

        Args:
            root: directory searched recursively.

        Returns:
            Paths of files (and ``.gdb`` folders) ending in :attr:`label_suffixes`.
        """
        found = []
        for directory, subdirs, filenames in os.walk(root):
            for subdir in list(subdirs):
                if subdir.lower().endswith(".gdb"):
                    found.append(os.path.join(directory, subdir))
                    subdirs.remove(subdir)
            found.extend(
                os.path.join(directory, name)
                for name in filenames
                if name.lower().endswith(self.label_suffixes)
            )
        return found

    def bbox_in(self, crs: CRS | None) -> shapely.Polygon | None:
        """The user bbox as a polygon in *crs* (densified to follow curvature).

        The features are read within it.

        Args:
            crs: target CRS (None: lon/lat).

        Returns:
            The bbox polygon in *crs*, or None when no bbox was given.
        """
        if self.bbox is None:
            return None
        return bbox_polygon(self.bbox, LONLAT, LONLAT if crs is None else crs)

    def _read(self, filepath: str) -> tuple[GeoDataFrame, list[float] | None]:
        """Read one file's class column and 2-D geometry, within the bbox.

        Args:
            filepath: label file.

        Returns:
            The features (class column and geometry, empty and null geometries
            dropped) and the file's extent as ``[min lon, min lat, max lon,
            max lat]`` (only computed when no feature is read, else empty;
            None when the file holds no feature at all).

        Raises:
            ValueError: If the file cannot be read or lacks the layer or column.
        """
        with warnings.catch_warnings():
            # shapely's own word on NaN coordinates; _usable names the features.
            warnings.filterwarnings(
                "ignore", "invalid value encountered", RuntimeWarning
            )
            if filepath.lower().endswith(self.parquet_suffixes):
                frame = self._read_parquet(filepath)
            else:
                frame = self._read_ogr(filepath)
            frame = self._usable(filepath, frame)
            extent: list[float] | None = []
            if frame.empty:
                extent = self._extent(filepath)
        return frame, extent

    def _usable(self, filepath: str, frame: GeoDataFrame) -> GeoDataFrame:
        """The features of a file that can be rasterised, invalid polygons repaired.

        Features without geometry are dropped; those with a NaN or infinite
        coordinate are left out with a warning; an invalid polygon (a
        self-intersecting ring, say) is replaced by the polygons of shapely's
        ``make_valid`` repair, with a warning (as ``field-stats`` counts it).

        Args:
            filepath: the label file, for the messages.
            frame: its features as read, in its CRS.

        Returns:
            The usable features, in file order.

        Raises:
            ValueError: If a coordinate can be no place on Earth in the file's
                CRS (see :func:`off_earth_fault`).

        Warns:
            UserWarning: naming how many features have coordinates that are
                not numbers, and how many are invalid polygons, each with the
                first of them by row (1-based, among the features read).
        """
        geometries = frame.geometry.to_numpy().copy()
        keep = ~(shapely.is_missing(geometries) | shapely.is_empty(geometries))
        broken = np.flatnonzero(keep & not_finite(geometries))
        if broken.size:
            warnings.warn(
                f"Label file {filepath!r} holds {broken.size:,} feature(s) with "
                "coordinates that are not numbers (NaN or infinite, e.g. row "
                f"{int(broken[0]) + 1}), left out; fix or remove them in the file.",
                UserWarning,
                stacklevel=4,
            )
            keep[broken] = False
            self._not_numbers += broken.size
        geometries[~keep] = None
        fix = assign_crs_hint(self._asked_crs, "the imagery or map it is read for")
        fault = off_earth_fault(
            f"Label file {filepath!r}",
            geometries,
            CRS.from_user_input(frame.crs),
            fix,
        )
        if fault is not None:
            raise ValueError(fault)
        invalid = np.flatnonzero(keep & ~shapely.is_valid(geometries))
        if invalid.size:
            reason = shapely.is_valid_reason(geometries[invalid[0]])
            warnings.warn(
                f"Label file {filepath!r} holds {invalid.size:,} invalid polygon(s) "
                f"(e.g. row {int(invalid[0]) + 1}: {reason}), used as shapely's "
                "make_valid repairs them; fix them in the file (QGIS: Vector > "
                "Geometry Tools > Fix Geometries) to be sure of the pixels they "
                "label.",
                UserWarning,
                stacklevel=4,
            )
            repaired = shapely.make_valid(geometries[invalid])
            geometries[invalid] = [_polygonal(shape) for shape in repaired]
            keep[invalid] = ~shapely.is_empty(geometries[invalid])
        frame = frame.set_geometry(
            gpd.GeoSeries(
                geometries, index=frame.index, crs=frame.crs, name=frame.geometry.name
            )
        )
        return cast(GeoDataFrame, frame[keep])

    def _unreadable(self, filepath: str, error: Exception) -> ValueError:
        """Build the error for a label file that cannot be read.

        Args:
            filepath: the label file.
            error: what the reader raised.

        Returns:
            A ValueError with one sentence naming the file.
        """
        reason = str(error).strip().splitlines()[0].split(";")[0].rstrip(".")
        msg = (
            f"Cannot read label file {filepath!r} ({reason}); expected "
            f"{EXPECTED_FORMATS}, so check the path or convert the file, e.g. "
            "with `ogr2ogr out.gpkg IN`."
        )
        return ValueError(msg)

    def _read_ogr(self, filepath: str) -> GeoDataFrame:
        """Read a file with GDAL (pyogrio), filtering by bbox while reading.

        Args:
            filepath: label file GDAL can open.

        Returns:
            The features: class column and 2-D geometry, in the file's CRS.

        Raises:
            ValueError: If the file cannot be read or lacks the layer or column.
        """
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Measured \\(M\\) geometry types")
            try:
                info = pyogrio.read_info(filepath, layer=self.layer)
            except pyogrio.errors.DataLayerError as error:
                layers = [str(name) for name in pyogrio.list_layers(filepath)[:, 0]]
                msg = (
                    f"Label file {filepath!r} has no layer {self.layer!r} "
                    f"({error}); its layers are {layers}, so pass one of them as "
                    "`layer` (--data.init_args.labels_layer; evaluate: "
                    "--labels-layer)."
                )
                raise ValueError(msg) from None
            except (pyogrio.errors.DataSourceError, OSError) as error:
                raise self._unreadable(filepath, error) from None
            self._check_column(filepath, list(info["fields"]))
            if info["crs"]:
                crs = CRS.from_user_input(info["crs"])
            else:
                extent = pyogrio.read_info(
                    filepath, layer=self.layer, force_total_bounds=True
                )["total_bounds"]
                crs = self._unnamed_crs(
                    filepath, (math.nan,) * 4 if extent is None else extent
                )
            frame = pyogrio.read_dataframe(
                filepath,
                layer=self.layer,
                columns=[self.class_column],
                mask=self.bbox_in(crs),
                force_2d=True,
            )
        if frame.crs is None:
            frame = frame.set_crs(crs)
        return cast(GeoDataFrame, frame)

    def _read_parquet(self, filepath: str) -> GeoDataFrame:
        """Read a GeoParquet file, then keep features in the bbox.

        Args:
            filepath: GeoParquet file.

        Returns:
            The features: class column and 2-D geometry, in the file's CRS.

        Raises:
            ValueError: If the file cannot be read or lacks the column.
        """
        try:
            frame = gpd.read_parquet(filepath)
        except (OSError, ValueError) as error:
            raise self._unreadable(filepath, error) from None
        self._check_column(filepath, [c for c in frame.columns if c != "geometry"])
        frame = frame[[self.class_column, frame.geometry.name]]
        frame = frame.set_geometry(frame.geometry.force_2d())
        if frame.crs is None:
            frame = frame.set_crs(self._unnamed_crs(filepath, frame.total_bounds))
        mask = self.bbox_in(CRS.from_user_input(frame.crs))
        if mask is not None:
            frame = frame.iloc[frame.sindex.query(mask, predicate="intersects")]
        return cast(GeoDataFrame, frame)

    def _unnamed_crs(self, filepath: str, bounds: Iterable[float]) -> CRS:
        """The CRS of a file that names none, refused in the samples' CRS's terms.

        Args:
            filepath: the label file.
            bounds: its ``(xmin, ymin, xmax, ymax)`` (NaN for an empty file).

        Returns:
            EPSG:4326, as :func:`~torchgeo_simclr.lonlat.unnamed_crs` gives it.

        Raises:
            ValueError: If the coordinates are not degrees; the fix names the
                CRS of the imagery or map the labels are read for, where
                known.
        """
        bounds = [float(v) for v in bounds]
        try:
            return unnamed_crs(filepath, bounds)
        except ValueError:
            pass
        extent = [round(v, 1) for v in bounds]
        fix = assign_crs_hint(self._asked_crs, "the imagery or map it is read for")
        msg = (
            f"Label file {filepath!r} names no CRS and its coordinates {extent} "
            f"are not longitude/latitude degrees; give the file its CRS, e.g. "
            f"{fix} (a shapefile keeps it in its .prj)."
        )
        raise ValueError(msg) from None

    def _check_column(self, filepath: str, columns: list[str]) -> None:
        """Check that the class column exists.

        Args:
            filepath: the label file.
            columns: its attribute columns.

        Raises:
            ValueError: If :attr:`class_column` is not among *columns*.
        """
        if self.class_column in columns:
            return
        having = self._layers_with_column(filepath) if self.layer is None else []
        if having:
            msg = (
                f"Label file {filepath!r} has no column {self.class_column!r} in "
                f"its first layer, which is read when no layer is given; its "
                f"layer(s) {having} have it, so pass --data.init_args.labels_layer "
                f"{having[0]} (evaluate: --labels-layer {having[0]})."
            )
            raise ValueError(msg)
        msg = (
            f"Label file {filepath!r} has no column {self.class_column!r}; its "
            f"columns are {columns}, so pass one of them as `class_column` "
            "(--class-column, --data.init_args.class_column)."
        )
        raise ValueError(msg)

    def _layers_with_column(self, filepath: str) -> list[str]:
        """The layers after the first that hold :attr:`class_column`.

        Args:
            filepath: a label file GDAL can open (others give an empty list).

        Returns:
            Their names, in file order.
        """
        try:
            layers = pyogrio.list_layers(filepath)
            having = [
                str(name)
                for name, geometry in layers[1:]
                if geometry is not None
                and self.class_column in layer_columns(filepath, str(name))
            ]
        except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError):
            return []
        return having

    def _extent(self, filepath: str) -> list[float] | None:
        """A file's extent as ``[min lon, min lat, max lon, max lat]``.

        Args:
            filepath: label file.

        Returns:
            The extent of all its features in EPSG:4326 degrees; None for
            a file without features.
        """
        if filepath.lower().endswith(self.parquet_suffixes):
            frame = gpd.read_parquet(filepath)
            if frame.empty:
                return None
            return lonlat_extent(frame.total_bounds, frame.crs)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Measured \\(M\\) geometry types")
            info = pyogrio.read_info(
                filepath, layer=self.layer, force_total_bounds=True
            )
        if info["total_bounds"] is None:
            return None
        crs = CRS.from_user_input(info["crs"]) if info["crs"] else None
        return lonlat_extent(info["total_bounds"], crs)

    @property
    def features(self) -> GeoDataFrame:
        """The features in the dataset CRS, read once.

        Returns:
            Columns ``value`` (mask value, uint8), ``source`` (file number),
            ``code`` (the :attr:`class_column` code as read, e.g. ``" P"``
            with DWR's padding; null where missing) and geometry, with a
            spatial index.
        """
        return self._features

    def _set_features(self, features: GeoDataFrame) -> None:
        """Keep *features*, build their spatial index and the dataset index.

        Args:
            features: all features in the dataset CRS, columns ``value`` (mask
                value, uint8), ``source`` (file number), ``code`` (class code
                as read) and geometry.
        """
        self._features = features
        # Build the spatial index once, here, not in each DataLoader worker.
        self._features.sindex  # noqa: B018
        self._values = features["value"].to_numpy(dtype=np.uint8)
        self._sources = features["source"].to_numpy()
        self._geometries = features.geometry.to_numpy()
        bounds = features.geometry.bounds.groupby(self._sources).agg(
            {"minx": "min", "miny": "min", "maxx": "max", "maxy": "max"}
        )
        boxes = [shapely.box(*row) for row in bounds.itertuples(index=False)]
        if self.covers_bbox:
            area = self.bbox_in(CRS.from_user_input(features.crs))
            assert area is not None  # covers_bbox needs a bbox
            # The bbox projects to a curved quadrilateral; a region cut from
            # the bbox is usually its axis-aligned extent, which must be
            # covered whole: the extent, grown by a hundredth either way.
            xmin, ymin, xmax, ymax = area.bounds
            grow = max(xmax - xmin, ymax - ymin) / 100
            cover = shapely.box(xmin - grow, ymin - grow, xmax + grow, ymax + grow)
            boxes = [cover] * len(boxes)
        full = (pd.Timestamp.min, pd.Timestamp.max)
        index = pd.IntervalIndex.from_tuples(
            [full] * len(boxes), closed="both", name="datetime"
        )
        self.index = GeoDataFrame(
            {"filepath": [self._filepaths[i] for i in bounds.index]},
            index=index,
            geometry=boxes,
            crs=features.crs,
        )

    @property
    def crs(self) -> CRS:
        """Coordinate reference system of the samples and features.

        Returns:
            The CRS.
        """
        return cast(CRS, self.index.crs)

    @crs.setter
    def crs(self, new_crs: CRS) -> None:
        """Change the CRS, reprojecting the features once.

        Args:
            new_crs: the new CRS.
        """
        if new_crs == self.crs:
            return
        self._set_features(cast(GeoDataFrame, self._features.to_crs(new_crs)))

    def __getitem__(self, index: GeoSlice) -> Sample:
        """Rasterise the irrigation mask of a spatiotemporal slice.

        Args:
            index: ``[xmin:xmax:xres, ymin:ymax:yres, tmin:tmax:tres]`` in the
                dataset CRS.

        Returns:
            ``mask`` int64 ``[H, W]`` (0 not irrigated, 1 irrigated, 255 no
            polygon or ignored class), ``bounds`` and ``transform``.

        Raises:
            IndexError: If the slice does not intersect the labels.
        """
        x, y, t = self._disambiguate_slice(index)
        interval = pd.Interval(t.start, t.stop)
        rows = self.index.iloc[self.index.index.overlaps(interval)]
        rows = rows.cx[x.start : x.stop, y.start : y.stop]
        if rows.empty:
            msg = f"index: {index} not found in dataset with bounds: {self.bounds}"
            raise IndexError(msg)

        height = round((y.stop - y.start) / y.step)
        width = round((x.stop - x.start) / x.step)
        transform = rasterio.transform.from_origin(x.start, y.stop, x.step, y.step)
        query = shapely.box(x.start, y.start, x.stop, y.stop)
        hits = np.sort(self._features.sindex.query(query, predicate="intersects"))
        sources = [self._filepaths.index(path) for path in rows.filepath]
        hits = hits[np.isin(self._sources[hits], sources)]
        if hits.size:
            shapes: Iterable[tuple[Any, int]] = zip(
                self._geometries[hits], self._values[hits].tolist(), strict=True
            )
            mask = rasterio.features.rasterize(
                shapes,
                out_shape=(height, width),
                transform=transform,
                fill=IGNORE_INDEX,
                dtype=np.uint8,
            )
        else:
            mask = np.full((height, width), IGNORE_INDEX, dtype=np.uint8)

        sample: Sample = {
            "mask": torch.from_numpy(mask.astype(np.int64)),
            "bounds": self._slice_to_tensor(index),
            "transform": torch.tensor(transform),
        }
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample

    def plot(
        self,
        sample: Sample,
        show_titles: bool = True,
        suptitle: str | None = None,
    ) -> Figure:
        """Plot a sample: the mask, and the prediction when present.

        Classes are drawn as :meth:`CentralValleyS2.plot
        <torchgeo_simclr.datasets.CentralValleyS2.plot>` draws them, in the map
        colours with a legend.

        Args:
            sample: a sample from :meth:`__getitem__`, ``mask`` ``[H, W]``,
                optionally with ``prediction`` ``[H, W]`` (0 not irrigated,
                1 irrigated, 255 ignored).
            show_titles: whether to title each panel.
            suptitle: optional title of the whole figure.

        Returns:
            A matplotlib Figure with one panel per shown item.

        Raises:
            ValueError: If *sample* has no ``mask``.
        """
        if "mask" not in sample:
            msg = (
                f"IrrigationLabels.plot got a sample without 'mask' (keys: "
                f"{sorted(sample)}); expected a sample of this dataset, so pass "
                "labels[query] (with 'prediction' added, if any)."
            )
            raise ValueError(msg)
        return plot_panels(class_panels(sample), show_titles, suptitle)

    def __str__(self) -> str:
        """Return a short description: files, features and class column."""
        return (
            f"{self.__class__.__name__} Dataset\n"
            f"    type: VectorDataset (features in memory)\n"
            f"    bbox: {self.bounds}\n"
            f"    files: {len(self)}, features: {len(self._features)}, "
            f"class column: {self.class_column}"
        )
