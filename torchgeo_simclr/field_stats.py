"""Which of your fields are irrigated: an irrigation map summed up per field.

:func:`field_stats` reads a class map that ``predict`` wrote (and the
probability map beside it, where there is one) and a vector file of field
polygons (parcels, last year's DWR fields, fields drawn in QGIS: any file GDAL
reads, in any CRS) and gives every field what the map says about it: the area
of its pixels mapped irrigated, the share of its mapped area that is
irrigated, its mean probability of irrigation, a status (:data:`STATUSES`)
that a water manager can filter on, and what made the map.

A pixel belongs to a field when its centre lies inside the polygon; fields
that overlap each other each count the pixels they share. The map is read in
strips of whole rows, so memory does not grow with the map. Fields keep their
own attributes, geometry, CRS and order, and every field of the file is
written, also those off the map or without geometry, first with its feature id
in the file (:data:`SOURCE_FID`), so that the output joins back to the file and
the outputs of other maps of the same file join to each other.
"""

import csv
import json
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Final, Required, TypedDict

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyogrio
import pyogrio.errors
import rasterio
import rasterio.features
import rasterio.windows
import shapely
from pyproj import CRS

from . import __version__
from .constants import (
    IRRIGATED,
    M2_PER_ACRE,
    M2_PER_HA,
    MAP_CLASSES,
    NOT_IRRIGATED,
    UNKNOWN_DATE,
)
from .digest import CHECKPOINT_ID_LENGTH
from .field_pixels import FieldPixels, overlapping
from .geopackage import missing_layer, write_geopackage
from .interrupts import deferred_interrupts
from .lonlat import LONLAT, lonlat_extent, shapes_extent
from .map_pixels import map_provenance, open_map
from .outputs import (
    check_out_replaceable,
    check_output_folder,
    not_a_file,
    partial_path,
    replaced_when_complete,
    same_file,
)
from .run_record import RunClock, absolute_path, json_record_fault, kept_warnings
from .software import cached_file_digest, software_record
from .vectors import assign_crs_hint, not_finite, off_earth_fault

#: Layer of the fields in the GeoPackage that ``--out`` names.
FIELD_STATS_LAYER: Final[str] = "field_stats"

#: Keys every ``--summary`` file holds: how an earlier one is told from
#: another JSON file, which ``--overwrite`` never replaces.
SUMMARY_KEYS: Final[frozenset[str]] = frozenset(
    {"torchgeo_simclr_version", "map", "fields", "counts", "irrigated_fields_ha"}
)

#: Largest existing file read to tell whether it is a summary, bytes (a
#: summary is about 2 KB).
MAX_SUMMARY_BYTES: Final[int] = 1 << 20

#: Name of the layer's default style, shown in QGIS's style manager.
FIELD_STATS_STYLE_NAME: Final[str] = "field status"

#: ``status`` of a field. Where at least ``min_mapped`` of its pixels have
#: map data, by the strict majority of its mapped area; ``partly mapped``
#: where fewer do, ``no data`` where none does (masked clouds, outside a
#: lon/lat bbox's edge), ``too small`` where it holds no pixel centre, ``off
#: map`` where it lies outside the map, ``no geometry`` where it has none.
STATUSES: Final[tuple[str, ...]] = (
    "irrigated",
    "not irrigated",
    "partly mapped",
    "no data",
    "too small",
    "off map",
    "no geometry",
)


class StatusFill(TypedDict, total=False):
    """How the fields of one status are drawn in QGIS.

    The arguments of :class:`~torchgeo_simclr.inference.styles.Fill` (made
    only when a GeoPackage is written, so this module loads without
    matplotlib); those left out take its defaults (a solid fill, a thin dark
    grey outline).
    """

    #: Fill colour (of a hatch, its lines), or None for no fill.
    colour: Required[str | None]
    #: QGIS fill pattern, e.g. ``solid`` or ``b_diagonal`` (a hatch).
    pattern: str
    #: Outline colour.
    outline: str
    #: QGIS outline line style, e.g. ``solid`` or ``dash``.
    outline_style: str


#: QGIS legend label and look of each status, in legend order: the map's own
#: class colours, a solid grey for partly mapped, a grey hatch for no data
#: (what is under it shows between the lines), and no fill, only a grey
#: outline, for fields too small or off the map, so those (often most fields
#: of a county's file) never cover a basemap. A field without geometry is
#: drawn nowhere.
STATUS_LEGEND: Final[dict[str, tuple[str, StatusFill]]] = {
    "irrigated": (
        MAP_CLASSES[IRRIGATED][0],
        {"colour": MAP_CLASSES[IRRIGATED][1]},
    ),
    "not irrigated": (
        MAP_CLASSES[NOT_IRRIGATED][0],
        {"colour": MAP_CLASSES[NOT_IRRIGATED][1]},
    ),
    "partly mapped": (
        "Partly mapped: too few of its pixels have data",
        {"colour": "#9e9e9e"},
    ),
    "no data": (
        "No data: none of its pixels has map data",
        {"colour": "#636363", "pattern": "b_diagonal"},
    ),
    "too small": (
        "Too small: holds no pixel centre",
        {"colour": None, "outline": "#636363", "outline_style": "dash"},
    ),
    "off map": ("Off the map", {"colour": None, "outline": "#969696"}),
}

#: The columns :func:`field_stats` adds, in order, and what each holds (names
#: of 10 characters at most, so a Shapefile export keeps them).
COLUMNS: Final[dict[str, str]] = {
    "status": "one of: " + ", ".join(STATUSES),
    "irr_share": (
        "share of its mapped area mapped irrigated, 0-1 (null: no pixel with data)"
    ),
    "mean_prob": (
        "mean probability of irrigation of its mapped pixels, 0-1 (null: no pixel "
        "with data, or no probability map beside the class map)"
    ),
    "irr_ha": "area of its pixels mapped irrigated, hectares",
    "irr_ac": "the same in acres",
    "mapped_ha": "area of its pixels with map data, hectares",
    "area_ha": "the polygon's area (planar, in the map's CRS), hectares",
    "area_ac": "the same in acres",
    "mapped_shr": (
        "share of its pixels with map data, 0-1: 1 where every pixel whose centre "
        "it holds has data, less where its pixels lack data or it reaches past "
        "the map"
    ),
    "map": "the class map's file name",
    "ckpt_id": "first 16 hex digits of the SHA-256 of the map's checkpoint",
    "threshold": "probability above which the map calls a pixel irrigated",
    "acq_from": "first sensing date of the map's pixels, YYYY-MM-DD",
    "acq_to": "last sensing date of the map's pixels, YYYY-MM-DD",
}

#: Column written first: the field's feature id (FID) in the field file, as
#: GDAL numbers it (a GeoPackage's ``fid``; 0, 1, 2, ... in file order for a
#: Shapefile, GeoJSON or FlatGeobuf), to join the output back to the file. A
#: GeoPackage written keeps it as its own FID too.
SOURCE_FID: Final[str] = "src_fid"

#: A GeoPackage's FID column, which GDAL takes a column of this name for.
GPKG_FID: Final[str] = "fid"

#: Longest column name a Shapefile (dBASE) keeps; it truncates longer ones.
MAX_NAME: Final[int] = 10

#: The columns a CSV adds after :data:`COLUMNS`: where each field lies, EPSG:4326
#: degrees of a point inside it.
CSV_COLUMNS: Final[tuple[str, str]] = ("lon", "lat")

#: Output suffixes and what each is written as.
SUFFIXES: Final[dict[str, str]] = {
    ".gpkg": "a GeoPackage of the fields, styled by status for QGIS",
    ".csv": "a table without geometry, with each field's lon and lat",
}


@dataclass(frozen=True)
class FieldStats:
    """What :func:`field_stats` found, for its printed summary."""

    #: The file written.
    out: Path
    #: Fields written: every field of the file.
    n_fields: int
    #: Fields of each status, in :data:`STATUSES` order.
    counts: dict[str, int]
    #: Total area of the fields of status ``irrigated``, hectares.
    irrigated_fields_ha: float
    #: Area of the pixels mapped irrigated inside those fields, hectares.
    irrigated_in_them_ha: float
    #: Area of the pixels mapped irrigated inside any field, hectares.
    irrigated_in_all_ha: float
    #: Side of the square one value of the map stands for, with its unit
    #: (e.g. ``"240 m"``), where it is coarser than a pixel (a per-patch
    #: model's map), else None.
    detail_size: str | None
    #: Whether ``mean_prob`` was filled from a probability map.
    has_probability: bool
    #: The layer of the field file read.
    layer: str
    #: The class map's GeoTIFF tags.
    map_tags: dict[str, str]

    def record(
        self, map_path: str | Path, fields: str | Path, min_mapped: float
    ) -> dict[str, Any]:
        """The counts and totals as ``--summary`` writes them, with what made them.

        Args:
            map_path: the class map read.
            fields: the field file read.
            min_mapped: ``--min-mapped``.

        Returns:
            A JSON-serialisable dict: the files (absolute), the map's SHA-256
            and what made it (``map_tags``, see
            :func:`~torchgeo_simclr.map_pixels.map_provenance`), the field
            counts by status, the irrigated hectares and acres, and the
            software; the keys :data:`SUMMARY_KEYS` among them.
        """
        acres = self.irrigated_fields_ha * M2_PER_HA / M2_PER_ACRE
        return {
            "torchgeo_simclr_version": __version__,
            "software": software_record(),
            "map": absolute_path(map_path),
            "map_sha256": cached_file_digest(map_path),
            "map_tags": map_provenance(self.map_tags),
            "fields": absolute_path(fields),
            "layer": self.layer,
            "out": absolute_path(self.out),
            "min_mapped": min_mapped,
            "has_probability": self.has_probability,
            "detail_size": self.detail_size,
            "n_fields": self.n_fields,
            "counts": self.counts,
            "irrigated_fields_ha": self.irrigated_fields_ha,
            "irrigated_fields_acres": round(acres, 2),
            "irrigated_in_them_ha": self.irrigated_in_them_ha,
            "irrigated_in_all_ha": self.irrigated_in_all_ha,
        }

    def summary(self) -> str:
        """What the command prints, one fact per line.

        Returns:
            The text, e.g. ``"Fields: 1,158 written: 581 irrigated, ..."``.
        """
        parts = [
            f"{self.counts[status]:,} {status}"
            for status in STATUSES
            if self.counts[status] or status in STATUSES[:4]
        ]
        acres = self.irrigated_fields_ha * M2_PER_HA / M2_PER_ACRE
        lines = [
            f"Fields: {self.n_fields:,} written: {', '.join(parts)}",
            f"Irrigated fields cover {self.irrigated_fields_ha:,.2f} ha "
            f"({acres:,.2f} acres); the pixels mapped irrigated cover "
            f"{self.irrigated_in_them_ha:,.2f} ha of them and "
            f"{self.irrigated_in_all_ha:,.2f} ha of all fields",
        ]
        if self.detail_size is not None:
            lines.append(
                f"The map is a per-patch model's: one value per {self.detail_size} x "
                f"{self.detail_size} cell, so fields smaller than that take the value "
                "of the patch around them"
            )
        if not self.has_probability:
            lines.append(
                "mean_prob is empty: no probability map (PATH_probability.tif) "
                "beside the class map"
            )
        return "\n".join(lines)


def field_stats(
    map_path: str | Path,
    fields: str | Path,
    out: str | Path,
    *,
    layer: str | None = None,
    min_mapped: float = 0.5,
    overwrite: bool = False,
    progress: bool = False,
    rows_per_strip: int = 512,
    summary: str | Path | None = None,
) -> FieldStats:
    """Sum up an irrigation map per field and write the fields with the sums.

    Every field of the file is written, in file order, with its feature id
    :data:`SOURCE_FID` first, then its own columns, then those of
    :data:`COLUMNS`. A column of its own with the name of one of these (or of
    ``fid``, a GeoPackage's FID), in any case or in its first 10 characters,
    is kept under a numbered name of at most 10 characters that no other
    column has (``status_1``, ``mapped_s_1``; ``status_2`` where ``status_1``
    is taken, as in the output of field-stats fed back a second time), with a
    warning that names each. Its ``status`` is ``irrigated`` where
    more than half its mapped area is mapped irrigated (a tie is ``not
    irrigated``, as ``evaluate`` votes), provided at least *min_mapped* of its
    pixels have map data. An invalid polygon (a self-intersecting ring, say)
    is counted as shapely's ``make_valid`` repairs it, with a warning; the
    file keeps the polygon as it was.

    Args:
        map_path: the class map ``PATH.tif`` that ``predict`` wrote (uint8, 0
            not irrigated, 1 irrigated, nodata 255); ``PATH_probability.tif``
            beside it, where it exists, gives ``mean_prob``.
        fields: a vector file of polygons (GeoPackage, Shapefile, GeoJSON,
            FlatGeobuf, ...) in any CRS.
        out: ``.gpkg`` (layer :data:`FIELD_STATS_LAYER`, the fields in their
            own CRS with :data:`SOURCE_FID` as their FID, styled by status for
            QGIS; ``acq_from`` and ``acq_to`` typed DATE, ``threshold`` REAL,
            as ``predict``'s regions) or ``.csv`` (no geometry; each field's
            ``lon`` and ``lat``, EPSG:4326 degrees, of a point inside it).
        layer: the layer of *fields* to read, or None for its first.
        min_mapped: share of a field's pixels, 0-1, that must have map data
            for it to get a class; below it the field is ``partly mapped``.
        overwrite: replace *out* if an earlier ``field-stats`` wrote it (never
            another file).
        progress: show a progress bar over the map's rows.
        rows_per_strip: map rows read at once; only memory and speed depend
            on it.
        summary: a JSON file to write the counts and totals to, with what
            made them (see :meth:`FieldStats.record`), when the run started
            (``created``, UTC), its ``run_seconds`` and the ``warnings`` it
            showed; None for none.

    Returns:
        The counts, for the summary.

    Raises:
        FileNotFoundError: If the map or *fields* does not exist.
        FileExistsError: If *out* or *summary* exists and *overwrite* is
            False, or it is no file ``field-stats`` wrote.
        IsADirectoryError: If *out* is a folder.
        PermissionError: If the folder of *out* cannot be written.
        ValueError: If the map is no class map, *fields* cannot be read, has
            no layer *layer*, no CRS (the fix names the map's), geometries
            other than polygons, or coordinates that can be no place on Earth
            in its CRS (degrees beyond +-180 or +-90, or e.g. +-1e300), no
            field overlaps the map, *out* does not end in ``.gpkg`` or
            ``.csv`` or is one of the inputs, *summary* does not end in
            ``.json`` or is *out* or an input, or *min_mapped* is not in 0-1.

    Warns:
        UserWarning: if fields have invalid geometry, or columns of the names
            :func:`field_stats` adds.
    """
    clock = RunClock()
    if not 0 <= min_mapped <= 1:
        msg = (
            f"--min-mapped {min_mapped:g} is not a share of 0 to 1; pass e.g. 0.5 "
            "(half of a field's pixels with map data)."
        )
        raise ValueError(msg)
    if rows_per_strip < 1:
        msg = (
            f"rows_per_strip={rows_per_strip} is not a positive number of rows; "
            "pass e.g. 512."
        )
        raise ValueError(msg)
    out = Path(out)
    fields_name = os.fspath(fields)
    probability = _probability_path(Path(map_path))
    inputs: dict[str, str | os.PathLike[str]] = {
        "--map": map_path,
        "--fields": fields,
        "": probability,
    }
    _check_out(out, inputs, overwrite)
    if summary is not None:
        _check_summary(Path(summary), out, inputs, overwrite)
    with kept_warnings() as warned:
        result = _sum_fields(
            map_path,
            fields_name,
            out,
            inputs,
            layer=layer,
            min_mapped=min_mapped,
            overwrite=overwrite,
            progress=progress,
            rows_per_strip=rows_per_strip,
        )
    if summary is not None:
        record = result.record(map_path, fields_name, min_mapped)
        record["created"] = clock.created
        record["run_seconds"] = clock.seconds()
        record["warnings"] = warned
        # Checked again: another file may have taken the name meanwhile.
        _check_summary(Path(summary), out, inputs, overwrite)
        with replaced_when_complete(Path(summary)) as partial:
            partial.write_text(
                json.dumps(record, indent=2, allow_nan=False) + "\n", encoding="utf-8"
            )
    return result


def _sum_fields(
    map_path: str | Path,
    fields_name: str,
    out: Path,
    inputs: dict[str, str | os.PathLike[str]],
    *,
    layer: str | None,
    min_mapped: float,
    overwrite: bool,
    progress: bool,
    rows_per_strip: int,
) -> FieldStats:
    """Read the fields, sum the map up over them and write them with the sums.

    Args:
        map_path: the class map.
        fields_name: the vector file of fields.
        out: the file to write, checked before.
        inputs: option -> path of each file read.
        layer: the layer of the fields to read, or None for the first.
        min_mapped: share of a field's pixels that must have map data.
        overwrite: whether an earlier field-stats file may be replaced.
        progress: show a progress bar over the map's rows.
        rows_per_strip: map rows read at once.

    Returns:
        The counts.
    """
    name = os.fspath(map_path)
    with open_map(map_path) as src:
        map_crs = CRS.from_user_input(src.crs.to_wkt())
    layer, crs_of_fields = _check_fields(fields_name, layer, map_crs)
    with warnings.catch_warnings():
        # shapely's own word on NaN coordinates; _shapes names the fields.
        warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
        frame = gpd.read_file(
            fields_name, layer=layer, engine="pyogrio", fid_as_index=True
        )
    source_fid = _source_fids(frame.index)
    frame = _as_written(frame.reset_index(drop=True), fields_name, layer)
    _check_polygons(frame, fields_name)
    _check_on_earth(frame, crs_of_fields, fields_name, map_crs)
    with open_map(map_path) as src:
        crs = CRS.from_user_input(src.crs.to_wkt())
        shapes = _shapes(frame, crs, fields_name)
        on_map = shapely.intersects(shapes, shapely.box(*src.bounds))
        if not on_map.any():
            raise ValueError(_off_map(frame, crs_of_fields, fields_name, src, name))
        prob_src = _open_probability(Path(inputs[""]), src, name)
        try:
            sums = FieldPixels(src, prob_src, name, crs, len(shapes))
            sums.add_strips(shapes, on_map, rows_per_strip, progress)
            for index in overlapping(shapes):
                sums.recount(int(index), shapes[index])
            table = sums.columns(shapes, on_map, min_mapped)
        finally:
            if prob_src is not None:
                prob_src.close()
        tags = src.tags()
        res = float(src.transform.a)
    table.update(_provenance(Path(map_path).name, tags, len(frame)))
    result = _with_columns(frame, source_fid, table, out, fields_name)
    _write(result, out, inputs, overwrite)
    status = table["status"]
    irrigated = status == "irrigated"
    detail = float(tags.get("detail_size", res))
    unit = "m" if crs.axis_info[0].unit_name == "metre" else crs.axis_info[0].unit_name
    stats = FieldStats(
        out=out,
        n_fields=len(result),
        counts={s: int(np.count_nonzero(status == s)) for s in STATUSES},
        irrigated_fields_ha=round(float(table["area_ha"][irrigated].sum()), 2),
        irrigated_in_them_ha=round(float(sums.irrigated_ha[irrigated].sum()), 2),
        irrigated_in_all_ha=round(float(sums.irrigated_ha.sum()), 2),
        detail_size=f"{detail:g} {unit}" if detail > res else None,
        has_probability=prob_src is not None,
        layer=layer,
        map_tags=tags,
    )
    return stats


def _probability_path(map_path: Path) -> Path:
    """``PATH_probability.tif`` beside ``PATH.tif``, as ``predict`` names it."""
    # Not with_suffix: a name such as irrig.2023.tif keeps its ".2023".
    return Path(f"{map_path.with_suffix('')}_probability{map_path.suffix}")


def _check_out(
    out: Path, inputs: dict[str, str | os.PathLike[str]], overwrite: bool
) -> None:
    """Refuse *out* before any work: a folder, an input, another suffix, not ours.

    Args:
        out: the file to write.
        inputs: option -> path of each file read (the probability map under
            the key ``""``).
        overwrite: whether an earlier field-stats file may be replaced.

    Raises:
        IsADirectoryError: If *out* is a folder.
        ValueError: If *out* is an input or its suffix is not in
            :data:`SUFFIXES`.
        PermissionError: If its folder cannot be made or written.
        FileExistsError: If it exists and is no field-stats file, or
            *overwrite* is False.
    """
    _check_output(
        out,
        "--out",
        SUFFIXES,
        inputs,
        ("a file of fields written by field-stats", _out_fault),
        overwrite,
    )


def _check_summary(
    summary: Path, out: Path, inputs: dict[str, str | os.PathLike[str]], overwrite: bool
) -> None:
    """Refuse a ``--summary`` before any work: not JSON, *out*, an input, not ours.

    Args:
        summary: the JSON file to write.
        out: the fields file to write.
        inputs: option -> path of each file read.
        overwrite: whether an earlier summary may be replaced.

    Raises:
        IsADirectoryError: If *summary* is a folder.
        ValueError: If it does not end in ``.json``, or is *out* or an input.
        PermissionError: If its folder cannot be made or written.
        FileExistsError: If it exists and is no field-stats summary, or
            *overwrite* is False.
    """
    _check_output(
        summary,
        "--summary",
        {".json": "the counts and totals as JSON"},
        {**inputs, "--out": out},
        ("a summary written by field-stats", _summary_fault),
        overwrite,
    )


def _check_output(
    path: Path,
    option: str,
    suffixes: dict[str, str],
    others: dict[str, str | os.PathLike[str]],
    ours: tuple[str, Callable[[Path], str | None]],
    overwrite: bool,
) -> None:
    """Refuse an output before any work: a folder, another file, a suffix, not ours.

    Args:
        path: the file to write.
        option: the option that gave it, e.g. ``--out``.
        suffixes: the endings it may have, each with what it writes.
        others: option -> path of each other file read or written (the
            probability map under the key ``""``; ``--out`` is written).
        ours: what an earlier output of *option* is, and why an existing file
            is not one (None where it is).
        overwrite: whether an earlier output may be replaced.
    """
    given = str(path)
    first = next(iter(suffixes))
    example = f"field_stats{first}"
    if path.is_dir():
        msg = (
            f"{option} {given!r} is a folder; pass a file name, e.g. "
            f"{path / example} (nothing was written)."
        )
        raise IsADirectoryError(msg)
    if (clash := same_file([path], others)) is not None:
        other = clash[1] or "the probability map beside --map"
        does = "writes" if other == "--out" else "reads"
        msg = (
            f"{option} {given!r} is the file {other} {does}; choose another "
            f"{option}, e.g. maps/sample_{example} (nothing was written)."
        )
        raise ValueError(msg)
    if path.suffix.lower() not in suffixes:
        kinds = "; ".join(f"{suffix} {what}" for suffix, what in suffixes.items())
        endings = " or ".join(suffixes)
        msg = (
            f"{option} {given!r} must end in {endings} ({kinds}); pass e.g. "
            f"{path.with_suffix(first)}."
        )
        raise ValueError(msg)
    check_output_folder(path.parent, option)
    check_out_replaceable(path, *ours, overwrite, option)


def _summary_fault(path: Path) -> str | None:
    """Why an existing *path* is no summary field-stats wrote, or None."""
    return json_record_fault(path, SUMMARY_KEYS, MAX_SUMMARY_BYTES, "a summary")


def _out_fault(path: Path) -> str | None:
    """Why an existing *path* is no file field-stats wrote, or None."""
    if path.suffix.lower() == ".gpkg":
        return missing_layer(path, FIELD_STATS_LAYER)
    with path.open(encoding="utf-8", errors="replace", newline="") as file:
        header = next(csv.reader(file), [])
    missing = [column for column in COLUMNS if column not in header]
    return f"a CSV without the column(s) {', '.join(missing)}" if missing else None


def _check_fields(fields: str, layer: str | None, map_crs: CRS) -> tuple[str, CRS]:
    """Check the field file and its layer before its fields are read.

    Args:
        fields: the vector file.
        layer: the layer asked for, or None for the first.
        map_crs: the map's CRS, which the fix for a file without a CRS names.

    Returns:
        The layer to read (*layer*, or the first) and its CRS.

    Raises:
        FileNotFoundError: If *fields* does not exist.
        ValueError: If it cannot be read, has no layer *layer* or no vector
            layer, or its layer has no CRS.

    Warns:
        UserWarning: if, without *layer*, it has other vector layers than the
            first, which is read.
    """
    if not fields.startswith("/vsi") and not os.path.exists(fields):
        msg = (
            f"Fields file {fields!r} {not_a_file(fields)}; expected a vector file "
            "of field polygons (e.g. parcels.gpkg), so check the path."
        )
        raise FileNotFoundError(msg)
    try:
        listed = pyogrio.list_layers(fields)
    except (pyogrio.errors.DataSourceError, OSError) as error:
        reason = str(error).strip().splitlines()[0].rstrip(".")
        msg = (
            f"Cannot read fields file {fields!r} ({reason}); expected a vector file "
            "of field polygons GDAL reads (GeoPackage, Shapefile, GeoJSON, ...)."
        )
        raise ValueError(msg) from None
    vector = [str(row[0]) for row in listed if row[1] is not None]
    if layer is not None and layer not in vector:
        msg = (
            f"Fields file {fields!r} has no vector layer {layer!r}; its vector "
            f"layers are {vector}, so pass one of them as --layer."
        )
        raise ValueError(msg)
    if not vector:
        msg = (
            f"Fields file {fields!r} has no vector layer (only tables); expected "
            "field polygons."
        )
        raise ValueError(msg)
    chosen = layer if layer is not None else vector[0]
    if layer is None and len(vector) > 1:
        warnings.warn(
            f"Fields file {fields!r} holds {len(vector)} vector layers ("
            f"{', '.join(repr(v) for v in vector)}) and only the first, "
            f"{chosen!r}, is read; pass --layer NAME to read another.",
            UserWarning,
            stacklevel=3,
        )
    wkt = pyogrio.read_info(fields, layer=chosen)["crs"]
    if not wkt:
        msg = (
            f"Fields file {fields!r} (layer {chosen!r}) has no CRS, so where its "
            "fields lie is unknown; set it, e.g. in QGIS (Layer > Set CRS) or with "
            f"{assign_crs_hint(map_crs, 'the map', 'fields.gpkg')}."
        )
        raise ValueError(msg)
    return chosen, CRS.from_user_input(wkt)


def _check_polygons(frame: gpd.GeoDataFrame, fields: str) -> None:
    """Refuse fields that are points or lines.

    Args:
        frame: the fields as read.
        fields: the vector file, for the message.

    Raises:
        ValueError: If a geometry is neither a polygon nor a multipolygon.
    """
    present = frame.geometry[~(frame.geometry.isna() | frame.geometry.is_empty)]
    other = sorted(set(present.geom_type) - {"Polygon", "MultiPolygon"})
    if other:
        msg = (
            f"Fields file {fields!r} holds {', '.join(other)} geometries; expected "
            "polygons of fields, so pass a polygon layer (--layer) or buffer the "
            "points or lines into polygons first."
        )
        raise ValueError(msg)


def _check_on_earth(
    frame: gpd.GeoDataFrame, crs: CRS, fields: str, map_crs: CRS
) -> None:
    """Refuse coordinates that can be no place on Earth in the fields' CRS.

    Args:
        frame: the fields as read.
        crs: their CRS.
        fields: the vector file, for the message.
        map_crs: the map's CRS, which the fix for degrees that are not names.

    Raises:
        ValueError: If *crs* is geographic and a coordinate lies beyond +-180
            or +-90 degrees (e.g. a GeoJSON of UTM metres without its CRS), or
            a coordinate lies far beyond any place on Earth (see
            :func:`~torchgeo_simclr.vectors.off_earth_fault`).
    """
    geometries = frame.geometry.to_numpy().copy()
    # Fields with NaN or infinite coordinates are left to _shapes.
    geometries[not_finite(geometries)] = None
    fix = assign_crs_hint(map_crs, "the map", "fields.gpkg")
    fault = off_earth_fault(f"Fields file {fields!r}", geometries, crs, fix)
    if fault is not None:
        raise ValueError(fault)


def _shapes(frame: gpd.GeoDataFrame, crs: CRS, fields: str) -> npt.NDArray[Any]:
    """The fields in the map's CRS, invalid ones repaired, as they are counted.

    Args:
        frame: the fields as read, in their own CRS.
        crs: the map's CRS.
        fields: the vector file, for the warning.

    Returns:
        One polygon per field, ``[N]``; None where a field has no geometry.

    Warns:
        UserWarning: naming how many fields have coordinates that are not
            numbers (NaN, or infinite: counted as having no geometry, as
            shapely cannot repair them), and how many are invalid polygons,
            each with the first of them by row.
    """
    shapes: npt.NDArray[Any] = frame.geometry.to_crs(crs).to_numpy()
    shapes[shapely.is_empty(shapes)] = None
    broken = np.flatnonzero(not_finite(shapes))
    if broken.size:
        warnings.warn(
            f"Fields file {fields!r} holds {broken.size:,} field(s) with "
            f"coordinates that are not numbers (NaN or infinite, e.g. row "
            f"{int(broken[0]) + 1}), counted as having no geometry (status "
            "'no geometry'); fix or remove them in the file.",
            UserWarning,
            stacklevel=3,
        )
        shapes[broken] = None
    invalid = np.flatnonzero(~shapely.is_valid(shapes) & ~shapely.is_missing(shapes))
    if invalid.size:
        warnings.warn(
            f"Fields file {fields!r} holds {invalid.size:,} invalid polygon(s) (e.g. "
            f"row {int(invalid[0]) + 1}: {shapely.is_valid_reason(shapes[invalid[0]])}"
            "), counted as shapely's make_valid repairs them; fix them in the file "
            "(QGIS: Vector > Geometry Tools > Fix Geometries) to be sure of their "
            "area.",
            UserWarning,
            stacklevel=3,
        )
        shapes[invalid] = shapely.make_valid(shapes[invalid])
    return shapes


def _off_map(
    frame: gpd.GeoDataFrame, crs: CRS, fields: str, src: Any, name: str
) -> str:
    """Why no field lies on the map, in one sentence.

    Args:
        frame: the fields as read.
        crs: their CRS.
        fields: the vector file.
        src: the open map.
        name: the map path.

    Returns:
        The message, with both extents.
    """
    present = frame[~(frame.geometry.isna() | frame.geometry.is_empty)]
    where = shapes_extent(present) if len(present) else "nothing"
    map_crs = CRS.from_user_input(src.crs.to_wkt())
    return (
        f"No field of {fields!r} (which covers {where}) overlaps map {name!r}, "
        f"which covers {lonlat_extent(src.bounds, map_crs)} (min lon, min lat, "
        "max lon, max lat); pass the fields of the map's area."
    )


def _source_fids(index: pd.Index) -> npt.NDArray[np.int64]:
    """The fields' feature ids in their file, for :data:`SOURCE_FID`.

    Args:
        index: the FIDs GDAL read (``fid_as_index=True``), ``[N]``.

    Returns:
        *index* as int64, ``[N]``; the row numbers 0, 1, 2, ... instead where
        a driver gives no usable FIDs (one missing or negative, or two the
        same), so the ids are unique either way.
    """
    fids = index.to_numpy()
    usable = (
        np.issubdtype(fids.dtype, np.integer)
        and (fids >= 0).all()
        and len(np.unique(fids)) == len(fids)
    )
    return fids.astype(np.int64) if usable else np.arange(len(fids), dtype=np.int64)


def _as_written(frame: gpd.GeoDataFrame, fields: str, layer: str) -> gpd.GeoDataFrame:
    """The fields' own columns as a GeoPackage written through Arrow types them.

    Date fields (read as datetimes) become dates again, so they stay DATE
    (e.g. ``acq_from`` of an earlier field-stats output read as fields), and
    JSON objects (read as dicts, from a GeoJSON) become their JSON text rather
    than a column per key.

    Args:
        frame: the fields as read.
        fields: the vector file.
        layer: its layer read.

    Returns:
        The fields, those columns converted.
    """
    info = pyogrio.read_info(fields, layer=layer)
    kinds = dict(zip(info["fields"], info["dtypes"], strict=True))
    frame = frame.copy()
    day = pd.ArrowDtype(pa.date32())
    for column in frame.columns.drop(frame.geometry.name):
        values = frame[column]
        if kinds.get(column) == "datetime64[D]":
            frame[column] = pd.Series(values.dt.date, frame.index, day)
        elif values.dtype == object and values.map(_is_json_object).any():
            frame[column] = values.map(_json_text)
    return frame


def _is_json_object(value: object) -> bool:
    """Whether *value* is a JSON object as read (a dict)."""
    return isinstance(value, dict)


def _json_text(value: object) -> object:
    """*value* as JSON text, where it is a JSON object or array; else itself."""
    if isinstance(value, dict | list | np.ndarray):
        return json.dumps(value, default=lambda item: np.asarray(item).tolist())
    return value


def _provenance(map_name: str, tags: dict[str, str], n: int) -> dict[str, Any]:
    """What made the map, as a column each, from the tags ``predict`` writes.

    Args:
        map_name: the map's file name.
        tags: the map's GeoTIFF tags.
        n: number of fields.

    Returns:
        ``map``, ``ckpt_id``, ``threshold`` (float64), ``acq_from`` and
        ``acq_to`` (Arrow ``date32``, so that a GeoPackage types them DATE, as
        ``predict``'s regions; a CSV writes ``YYYY-MM-DD``), ``[N]`` each
        (null where the map has no such tag).
    """
    dates = sorted(
        day
        for day in tags.get("imagery_dates", "").split(",")
        if day and day != UNKNOWN_DATE
    )
    sha = tags.get("checkpoint_sha256")
    threshold = tags.get("threshold")
    day = pd.ArrowDtype(pa.date32())
    first, last = (date.fromisoformat(dates[i]) if dates else None for i in (0, -1))
    return {
        "map": np.full(n, map_name, dtype=object),
        "ckpt_id": np.full(
            n, None if sha is None else sha[:CHECKPOINT_ID_LENGTH], dtype=object
        ),
        "threshold": np.full(n, np.nan if threshold is None else float(threshold)),
        "acq_from": pd.Series(first, range(n), day).array,
        "acq_to": pd.Series(last, range(n), day).array,
    }


def _with_columns(
    frame: gpd.GeoDataFrame,
    source_fid: npt.NDArray[np.int64],
    table: dict[str, Any],
    out: Path,
    fields: str,
) -> gpd.GeoDataFrame:
    """The fields with their id first, the added columns after their own.

    Args:
        frame: the fields as read.
        source_fid: their feature ids in *fields*, ``[N]``.
        table: column name -> values, ``[N]`` each, in :data:`COLUMNS` order.
        out: the output (a CSV also adds :data:`CSV_COLUMNS`).
        fields: the vector file, for the warning.

    Returns:
        The fields to write: :data:`SOURCE_FID`, their own columns (renamed
        by :func:`_kept_names`), *table*'s, geometry last. Their own
        :data:`SOURCE_FID` is left out where it holds *source_fid* (a
        GeoPackage field-stats wrote, read as fields, has its fields' ids as
        FIDs), so the ids are not repeated.

    Warns:
        UserWarning: if the fields have columns of the added names, naming
            each with the name it is kept as.
    """
    added = [
        SOURCE_FID,
        *table,
        *(CSV_COLUMNS if out.suffix.lower() == ".csv" else ()),
    ]
    geometry = frame.geometry.name
    if SOURCE_FID in frame.columns and np.array_equal(
        frame[SOURCE_FID].to_numpy(), source_fid
    ):
        frame = frame.drop(columns=SOURCE_FID)
    renamed = _kept_names(
        [str(column) for column in frame.columns.drop(geometry)], [*added, GPKG_FID]
    )
    if renamed:
        kept = ", ".join(f"{old} as {new}" for old, new in renamed.items())
        warnings.warn(
            f"Fields {fields!r} already have column(s) named like those field-stats "
            f"writes; {out} keeps them as other names of at most {MAX_NAME} "
            f"characters: {kept}.",
            UserWarning,
            stacklevel=3,
        )
        frame = frame.rename(columns=renamed)
    result = frame.copy()
    result.insert(0, SOURCE_FID, source_fid)
    for column, values in table.items():
        result[column] = values
    return result[[*result.columns.drop(geometry), geometry]]


def _kept_names(own: list[str], added: list[str]) -> dict[str, str]:
    """New names for the fields' own columns that clash with those written.

    A column clashes where its name, or its first :data:`MAX_NAME` characters
    (all a Shapefile export keeps), is one of *added* in any case (GeoPackage
    and Shapefile column names are case-insensitive). It is kept as its name
    cut short, ``_`` and the smallest number that makes a name of at most
    :data:`MAX_NAME` characters that no column has, nor has cut short, in any
    case: ``status_1``, ``mapped_s_1``, then ``status_2`` where ``status_1``
    is taken (as in a field-stats output fed back again, so the numbers go up
    with each map added).

    Args:
        own: the fields' own column names, in file order.
        added: the names of the columns written besides them.

    Returns:
        Old name -> new name of each clashing column, in file order.
    """
    reserved = {name.lower() for name in added}
    taken = reserved | {name.lower() for name in own}
    taken |= {name[:MAX_NAME].lower() for name in own}
    renamed: dict[str, str] = {}
    for name in own:
        if name[:MAX_NAME].lower() not in reserved:
            continue
        number = 1
        while True:
            suffix = f"_{number}"
            kept = name[: MAX_NAME - len(suffix)] + suffix
            if kept.lower() not in taken:
                break
            number += 1
        renamed[name] = kept
        taken.add(kept.lower())
    return renamed


def _open_probability(path: Path, src: Any, name: str) -> Any:
    """Open the probability map beside the class map, or None where there is none.

    Args:
        path: ``PATH_probability.tif``.
        src: the open class map.
        name: the class map path, for messages.

    Returns:
        The open probability map (the caller closes it), or None.

    Raises:
        ValueError: If it is not one float band on the class map's grid.
    """
    if not path.is_file():
        return None
    prob = rasterio.open(path)
    same_grid = (
        prob.count == 1
        and prob.crs == src.crs
        and prob.transform == src.transform
        and prob.shape == src.shape
    )
    if not same_grid:
        prob.close()
        msg = (
            f"{str(path)!r} beside map {name!r} is not the map's probability: it "
            f"has {prob.count} band(s) of {prob.shape[1]} x {prob.shape[0]} px on "
            f"{prob.crs}, the map {src.width} x {src.height} px on {src.crs}; "
            "remove or rename it, or pass the map it belongs to."
        )
        raise ValueError(msg)
    return prob


def _write(
    frame: gpd.GeoDataFrame,
    out: Path,
    inputs: dict[str, str | os.PathLike[str]],
    overwrite: bool,
) -> None:
    """Write the fields under a temporary name beside *out*, then rename.

    Args:
        frame: the fields with their statistics, in their own CRS.
        out: ``.gpkg`` or ``.csv``, checked by :func:`_check_out` before any
            work.
        inputs: the files read (checked again before the rename).
        overwrite: whether an earlier field-stats file may be replaced.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(out)
    try:
        if out.suffix.lower() == ".csv":
            # No point lies in a field with NaN or infinite coordinates.
            drawn = frame.geometry.copy()
            drawn[not_finite(drawn.to_numpy())] = None
            points = drawn.representative_point().to_crs(LONLAT)
            table = pd.DataFrame(frame.drop(columns=frame.geometry.name))
            lon, lat = CSV_COLUMNS
            table[lon] = np.round(points.x.to_numpy(), 6)
            table[lat] = np.round(points.y.to_numpy(), 6)
            table.to_csv(partial, index=False)
        else:
            from .inference.styles import Fill, categorized_polygon_style

            style = categorized_polygon_style(
                "status",
                [
                    (s, label, Fill(**fill))
                    for s, (label, fill) in STATUS_LEGEND.items()
                ],
            )
            # GDAL takes the column GPKG_FID for the FID; through Arrow, the
            # acquisition dates are DATE fields (else TEXT).
            write_geopackage(
                frame.assign(**{GPKG_FID: frame[SOURCE_FID]}),
                partial,
                FIELD_STATS_LAYER,
                style=(FIELD_STATS_STYLE_NAME, style),
                geometry_type="MultiPolygon",
                promote_to_multi=True,
                use_arrow=True,
            )
        # A file may have appeared meanwhile: only field-stats' own is replaced.
        _check_out(out, inputs, overwrite)
        with deferred_interrupts():
            os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
