"""Which of your fields are irrigated: an irrigation map summed up per field.

:func:`field_stats` reads a class map that ``predict`` wrote (and the
probability map beside it, where there is one) and a vector file of field
polygons (parcels, last year's DWR fields, fields drawn in QGIS: any file GDAL
reads, in any CRS) and gives each field that overlaps the map what the map says
about it: the area of its pixels mapped irrigated, the share of its mapped
area that is irrigated, its mean probability of irrigation, and a status
(:data:`STATUSES`) that a water manager can filter on.

A pixel belongs to a field when its centre lies inside the polygon (where
polygons overlap, to the one that comes later in the file), as ``evaluate``
counts label polygons; the map is read in strips of whole rows, so memory does
not grow with the map. Fields keep their own attributes, geometry and CRS;
fields whose bounding box misses the map are not read.
"""

import csv
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyogrio
import pyogrio.errors
import rasterio
import rasterio.windows
import shapely
from pyproj import CRS
from tqdm import tqdm

from .constants import (
    AREA_DECIMALS,
    IRRIGATED,
    M2_PER_ACRE,
    M2_PER_HA,
    MAP_CLASSES,
    MAP_NODATA,
    NOT_IRRIGATED,
)
from .geopackage import missing_layer, write_geopackage
from .interrupts import deferred_interrupts
from .lonlat import LONLAT, in_degrees, lonlat_extent, shapes_extent
from .map_pixels import (
    area_ha,
    open_map,
    pixel_range,
    rasterise_ids,
    read_classes,
    row_pixel_ha,
    strips,
)
from .outputs import (
    check_output_folder,
    not_a_file,
    partial_path,
    refuse_unless_ours,
    same_file,
)

#: Layer of the fields in the GeoPackage that ``--out`` names.
FIELD_STATS_LAYER: Final[str] = "field_stats"

#: Name of the layer's default style, shown in QGIS's style manager.
FIELD_STATS_STYLE_NAME: Final[str] = "field status"

#: ``status`` of a field: by the strict majority of its mapped area where at
#: least ``min_mapped`` of it is mapped; ``partly mapped`` where less is;
#: ``not mapped`` where no pixel centre with data lies in it (off the map's
#: data, or a field smaller than a pixel).
STATUSES: Final[tuple[str, ...]] = (
    "irrigated",
    "not irrigated",
    "partly mapped",
    "not mapped",
)

#: QGIS legend label and fill colour of each status, in legend order: the
#: map's own class colours, then greys.
STATUS_LEGEND: Final[dict[str, tuple[str, str]]] = {
    "irrigated": MAP_CLASSES[IRRIGATED],
    "not irrigated": MAP_CLASSES[NOT_IRRIGATED],
    "partly mapped": ("Partly mapped: too little of it on the map", "#9e9e9e"),
    "not mapped": ("Not mapped: no map data in it", "#e0e0e0"),
}

#: The columns :func:`field_stats` adds, in order, and what each holds (names
#: of 10 characters at most, so a Shapefile export keeps them).
COLUMNS: Final[dict[str, str]] = {
    "status": "one of: " + ", ".join(STATUSES),
    "irr_share": "share of the mapped area mapped irrigated, 0-1 (null: not mapped)",
    "mean_prob": (
        "mean probability of irrigation of its mapped pixels, 0-1 (null: not "
        "mapped, or no probability map beside the class map)"
    ),
    "irr_ha": "area of its pixels mapped irrigated, hectares",
    "mapped_ha": "area of its pixels with map data, hectares",
    "area_ha": "the polygon's area, hectares",
    "mapped_shr": "mapped_ha / area_ha, 0-1 (pixels by centre, so capped at 1)",
}

#: The columns a CSV adds after :data:`COLUMNS`: where each field lies, EPSG:4326
#: degrees of a point inside it.
CSV_COLUMNS: Final[tuple[str, str]] = ("lon", "lat")

#: Output suffixes and what each is written as.
SUFFIXES: Final[dict[str, str]] = {
    ".gpkg": "a GeoPackage of the fields, styled by status for QGIS",
    ".csv": "a table without geometry, with each field's lon and lat",
}

#: Decimals of the shares and the mean probability.
SHARE_DECIMALS: Final[int] = 4


@dataclass(frozen=True)
class FieldStats:
    """What :func:`field_stats` found, for its printed summary."""

    #: The file written.
    out: Path
    #: Fields read (those whose bounding box meets the map's).
    n_fields: int
    #: Fields of each status, in :data:`STATUSES` order.
    counts: dict[str, int]
    #: Total area of the fields of status ``irrigated``, hectares.
    irrigated_fields_ha: float
    #: Whether ``mean_prob`` was filled from a probability map.
    has_probability: bool

    def summary(self) -> str:
        """One line per fact, as the command prints it.

        Returns:
            The text, e.g. ``"Fields: 1,038 over the map's extent: 412
            irrigated (5,123.40 ha, 12,659.70 acres), ..."``.
        """
        parts = [f"{self.counts[status]:,} {status}" for status in STATUSES]
        acres = self.irrigated_fields_ha * M2_PER_HA / M2_PER_ACRE
        parts[0] += f" ({self.irrigated_fields_ha:,.2f} ha, {acres:,.2f} acres)"
        counted = ", ".join(parts)
        lines = [f"Fields: {self.n_fields:,} over the map's extent: {counted}"]
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
) -> FieldStats:
    """Sum up an irrigation map per field and write the fields with the sums.

    Each field that overlaps the map gets the columns of :data:`COLUMNS`
    after its own (a column of the same name that it had is replaced, with a
    warning). Its ``status`` is ``irrigated`` where more than half its mapped
    area is mapped irrigated (a tie is ``not irrigated``, as ``evaluate``
    votes), provided at least *min_mapped* of its area is mapped.

    Args:
        map_path: the class map ``PATH.tif`` that ``predict`` wrote (uint8, 0
            not irrigated, 1 irrigated, nodata 255); ``PATH_probability.tif``
            beside it, where it exists, gives ``mean_prob``.
        fields: a vector file of polygons (GeoPackage, Shapefile, GeoJSON,
            FlatGeobuf, ...) in any CRS.
        out: ``.gpkg`` (layer :data:`FIELD_STATS_LAYER`, the fields in their
            own CRS, styled by status for QGIS) or ``.csv`` (no geometry; each
            field's ``lon`` and ``lat``, EPSG:4326 degrees, of a point inside
            it).
        layer: the layer of *fields* to read, or None for its first.
        min_mapped: share of a field's area, 0-1, that must be mapped for it
            to get a class; below it the field is ``partly mapped``.
        overwrite: replace *out* if an earlier ``field-stats`` wrote it (never
            another file).
        progress: show a progress bar over the map's rows.
        rows_per_strip: map rows read at once; only memory and speed depend
            on it.

    Returns:
        The counts, for the summary line.

    Raises:
        FileNotFoundError: If the map or *fields* does not exist.
        FileExistsError: If *out* exists and *overwrite* is False, or it is no
            file ``field-stats`` wrote.
        IsADirectoryError: If *out* is a folder.
        PermissionError: If the folder of *out* cannot be written.
        ValueError: If the map is no class map, *fields* cannot be read, has
            no layer *layer*, no CRS, or geometries other than polygons, no
            field overlaps the map, *out* does not end in ``.gpkg`` or
            ``.csv`` or is one of the inputs, or *min_mapped* is not in 0-1.
    """
    if not 0 <= min_mapped <= 1:
        msg = (
            f"--min-mapped {min_mapped:g} is not a share of 0 to 1; pass e.g. 0.5 "
            "(half of a field's area mapped)."
        )
        raise ValueError(msg)
    if rows_per_strip < 1:
        msg = (
            f"rows_per_strip={rows_per_strip} is not a positive number of rows; "
            "pass e.g. 512."
        )
        raise ValueError(msg)
    out = Path(out)
    name, fields_name = os.fspath(map_path), os.fspath(fields)
    probability = _probability_path(Path(map_path))
    inputs: dict[str, str | os.PathLike[str]] = {
        "--map": map_path,
        "--fields": fields,
        "": probability,
    }
    _check_out(out, inputs, overwrite)
    layer, crs_of_fields = _check_fields(fields_name, layer)
    with open_map(map_path) as src:
        crs = CRS.from_user_input(src.crs.to_wkt())
        frame = _read_overlapping(fields_name, layer, crs_of_fields, src, name)
        shapes = frame.geometry.to_crs(crs).to_numpy()
        prob_src = _open_probability(probability, src, name)
        try:
            sums = _Sums(len(frame))
            window = _window(src, shapes)
            sindex = shapely.STRtree(shapes)
            bar = tqdm(
                total=window.height,
                desc="field stats",
                unit="row",
                disable=not progress,
            )
            with bar:
                for strip in strips(window, rows_per_strip):
                    classes = read_classes(src, strip, name)
                    prob = (
                        None
                        if prob_src is None
                        else prob_src.read(1, window=strip, out_dtype=np.float64)
                    )
                    transform = src.window_transform(strip)
                    hits = sindex.query(
                        shapely.box(*rasterio.windows.bounds(strip, src.transform)),
                        predicate="intersects",
                    )
                    ids = rasterise_ids(shapes, hits, classes.shape, transform)
                    sums.add(
                        classes, prob, ids, row_pixel_ha(transform, strip.height, crs)
                    )
                    bar.update(strip.height)
        finally:
            if prob_src is not None:
                prob_src.close()
    table = sums.columns(area_ha(shapes, crs), min_mapped)
    added = [*COLUMNS, *(CSV_COLUMNS if out.suffix.lower() == ".csv" else ())]
    clashes = sorted(set(added) & set(frame.columns))
    if clashes:
        warnings.warn(
            f"Fields {fields_name!r} already have the column(s) {', '.join(clashes)}, "
            f"which {out} holds field-stats' values in instead.",
            UserWarning,
            stacklevel=2,
        )
    result = frame.drop(columns=clashes)
    for column, values in table.items():
        result[column] = values
    _write(result, out, inputs, overwrite)
    status = table["status"]
    irrigated = status == "irrigated"
    return FieldStats(
        out=out,
        n_fields=len(result),
        counts={s: int(np.count_nonzero(status == s)) for s in STATUSES},
        irrigated_fields_ha=round(
            float(table["area_ha"][irrigated].sum()), AREA_DECIMALS
        ),
        has_probability=prob_src is not None,
    )


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
    given = str(out)
    if out.is_dir():
        msg = (
            f"--out {given!r} is a folder; pass a file name, e.g. "
            f"{out / 'field_stats.gpkg'} (nothing was written)."
        )
        raise IsADirectoryError(msg)
    if (clash := same_file([out], inputs)) is not None:
        option = clash[1] or "the probability map beside --map"
        msg = (
            f"--out {given!r} is the file {option} reads; choose another --out, "
            "e.g. maps/sample_field_stats.gpkg (nothing was written)."
        )
        raise ValueError(msg)
    if out.suffix.lower() not in SUFFIXES:
        kinds = "; ".join(f"{suffix} {what}" for suffix, what in SUFFIXES.items())
        msg = (
            f"--out {given!r} must end in .gpkg or .csv ({kinds}); pass e.g. "
            f"{out.with_suffix('.gpkg')}."
        )
        raise ValueError(msg)
    check_output_folder(out.parent)
    refuse_unless_ours(
        out,
        f"--out {given!r}",
        "a file of fields written by field-stats",
        _out_fault,
        "choose another --out",
    )
    if out.exists() and not overwrite:
        msg = f"{given} already exists; pass --overwrite to replace it."
        raise FileExistsError(msg)


def _out_fault(path: Path) -> str | None:
    """Why an existing *path* is no file field-stats wrote, or None."""
    if path.suffix.lower() == ".gpkg":
        return missing_layer(path, FIELD_STATS_LAYER)
    with path.open(encoding="utf-8", errors="replace", newline="") as file:
        header = next(csv.reader(file), [])
    missing = [column for column in COLUMNS if column not in header]
    return f"a CSV without the column(s) {', '.join(missing)}" if missing else None


def _check_fields(fields: str, layer: str | None) -> tuple[str, CRS]:
    """Check the field file and its layer before the map is read.

    Args:
        fields: the vector file.
        layer: the layer asked for, or None for the first.

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
            "`ogr2ogr -a_srs EPSG:32610`."
        )
        raise ValueError(msg)
    return chosen, CRS.from_user_input(wkt)


def _read_overlapping(
    fields: str, layer: str, crs: CRS, src: Any, name: str
) -> gpd.GeoDataFrame:
    """Read the fields whose bounding box meets the map's, and check them.

    Args:
        fields: the vector file.
        layer: its layer.
        crs: the layer's CRS.
        src: the open map.
        name: the map path, for messages.

    Returns:
        The fields, in their own CRS, in file order.

    Raises:
        ValueError: If no field overlaps the map, or a geometry is no polygon.
    """
    map_crs = CRS.from_user_input(src.crs.to_wkt())
    box = gpd.GeoSeries([shapely.box(*src.bounds)], crs=map_crs).to_crs(crs)
    frame = gpd.read_file(
        fields, layer=layer, bbox=tuple(box.total_bounds), engine="pyogrio"
    )
    shapes = frame.geometry.to_crs(map_crs)
    if not shapes.intersects(shapely.box(*src.bounds)).any():
        everything = gpd.read_file(fields, layer=layer, engine="pyogrio")
        bounds = [float(v) for v in everything.total_bounds]
        if crs.is_geographic and len(everything) and not in_degrees(bounds):
            extent = [round(v, 1) for v in bounds]
            msg = (
                f"Fields file {fields!r} is in {crs.name} degrees, but its "
                f"coordinates {extent} are not longitude/latitude (a GeoJSON is "
                "lon/lat unless it names a CRS); give the file its CRS, e.g. "
                "`ogr2ogr -a_srs EPSG:32610 fields.gpkg IN`."
            )
            raise ValueError(msg)
        where = shapes_extent(everything) if len(everything) else "nothing"
        msg = (
            f"No field of {fields!r} (which covers {where}) overlaps map {name!r}, "
            f"which covers {lonlat_extent(src.bounds, map_crs)} (min lon, min lat, "
            "max lon, max lat); pass the fields of the map's area."
        )
        raise ValueError(msg)
    kinds = frame.geometry.dropna()
    kinds = kinds[~kinds.is_empty].geom_type
    other = sorted(set(kinds) - {"Polygon", "MultiPolygon"})
    if other:
        msg = (
            f"Fields file {fields!r} holds {', '.join(other)} geometries; expected "
            "polygons of fields, so pass a polygon layer (--layer) or buffer the "
            "points or lines into polygons first."
        )
        raise ValueError(msg)
    return frame


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


def _window(src: Any, shapes: npt.NDArray[Any]) -> rasterio.windows.Window:
    """The smallest window of whole map pixels that holds every field's pixels."""
    xmin, ymin, xmax, ymax = (
        shapely.box(*shapely.total_bounds(shapes))
        .intersection(shapely.box(*src.bounds))
        .bounds
    )
    left, top = float(src.transform.c), float(src.transform.f)
    xres, yres = float(src.transform.a), float(-src.transform.e)
    col0, col1 = pixel_range(xmin - left, xmax - left, xres, src.width)
    row0, row1 = pixel_range(top - ymax, top - ymin, yres, src.height)
    return rasterio.windows.Window(col0, row0, col1 - col0, row1 - row0)


class _Sums:
    """Per-field areas and probability sums, accumulated strip by strip."""

    def __init__(self, n: int) -> None:
        """Start with zero sums for *n* fields."""
        #: Area of each field's pixels with map data, hectares, ``[N]``.
        self.mapped_ha = np.zeros(n, dtype=np.float64)
        #: Area of each field's pixels mapped irrigated, hectares, ``[N]``.
        self.irrigated_ha = np.zeros(n, dtype=np.float64)
        #: Sum of the probability of each field's mapped pixels, ``[N]``.
        self.probability = np.zeros(n, dtype=np.float64)
        #: Mapped pixels of each field with a probability, ``[N]``.
        self.probability_px = np.zeros(n, dtype=np.int64)

    def add(
        self,
        classes: npt.NDArray[np.uint8],
        probability: npt.NDArray[np.float64] | None,
        ids: npt.NDArray[np.int32],
        pixel_ha: npt.NDArray[np.float64],
    ) -> None:
        """Add one strip.

        Args:
            classes: map classes (0, 1 or 255), ``[H, W]``.
            probability: probability of irrigation (nodata below 0), ``[H, W]``,
                or None.
            ids: the field holding each pixel's centre, -1 for none, ``[H, W]``.
            pixel_ha: area of one pixel in each row, hectares, ``[H]``.
        """
        n = self.mapped_ha.size
        mapped = (ids >= 0) & (classes != MAP_NODATA)
        rows = np.nonzero(mapped)[0]
        owner = ids[mapped]
        self.mapped_ha += np.bincount(owner, weights=pixel_ha[rows], minlength=n)
        irrigated = classes[mapped] == IRRIGATED
        self.irrigated_ha += np.bincount(
            owner[irrigated], weights=pixel_ha[rows][irrigated], minlength=n
        )
        if probability is not None:
            value = probability[mapped]
            known = value >= 0
            self.probability += np.bincount(
                owner[known], weights=value[known], minlength=n
            )
            self.probability_px += np.bincount(owner[known], minlength=n)

    def columns(
        self, area: npt.NDArray[np.float64], min_mapped: float
    ) -> dict[str, npt.NDArray[Any]]:
        """The :data:`COLUMNS` of every field.

        Args:
            area: each polygon's area, hectares, ``[N]``.
            min_mapped: share of its area a field needs mapped for a class.

        Returns:
            Column name -> values, ``[N]`` each (NaN where null).
        """
        with np.errstate(divide="ignore", invalid="ignore"):
            share = self.irrigated_ha / self.mapped_ha
            mean = self.probability / self.probability_px
            mapped_share = np.minimum(self.mapped_ha / area, 1.0)
        mapped = self.mapped_ha > 0
        mapped_share[area == 0] = np.where(mapped[area == 0], 1.0, 0.0)
        status = np.where(share > 0.5, "irrigated", "not irrigated").astype(object)
        status[mapped_share < min_mapped] = "partly mapped"
        status[~mapped] = "not mapped"
        return {
            "status": status,
            "irr_share": np.round(np.where(mapped, share, np.nan), SHARE_DECIMALS),
            "mean_prob": np.round(
                np.where(self.probability_px > 0, mean, np.nan), SHARE_DECIMALS
            ),
            "irr_ha": np.round(self.irrigated_ha, AREA_DECIMALS),
            "mapped_ha": np.round(self.mapped_ha, AREA_DECIMALS),
            "area_ha": area,
            "mapped_shr": np.round(mapped_share, SHARE_DECIMALS),
        }


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
            points = frame.geometry.representative_point().to_crs(LONLAT)
            table = pd.DataFrame(frame.drop(columns=frame.geometry.name))
            lon, lat = CSV_COLUMNS
            table[lon] = np.round(points.x.to_numpy(), 6)
            table[lat] = np.round(points.y.to_numpy(), 6)
            table.to_csv(partial, index=False)
        else:
            from .inference.styles import categorized_polygon_style

            style = categorized_polygon_style(
                "status",
                [(s, label, colour) for s, (label, colour) in STATUS_LEGEND.items()],
            )
            write_geopackage(
                frame,
                partial,
                FIELD_STATS_LAYER,
                style=(FIELD_STATS_STYLE_NAME, style),
                geometry_type="MultiPolygon",
                promote_to_multi=True,
            )
        # A file may have appeared meanwhile: only field-stats' own is replaced.
        _check_out(out, inputs, overwrite)
        with deferred_interrupts():
            os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
