"""Score an irrigation map against label polygons (DWR crop mapping or your own).

:func:`evaluate_map` compares a class map (single-band uint8 GeoTIFF: 0 not
irrigated, 1 irrigated, 255 nodata) with label polygons read by
:class:`~torchgeo_simclr.datasets.labels.IrrigationLabels`, at two levels:

* pixels: the polygons are rasterised onto the map's own grid (a pixel takes a
  polygon's label when its centre lies inside it; where polygons overlap, the
  one that comes later in the file wins, as in ``IrrigationLabels``), and every
  pixel with a map class (0 or 1) and a label (0 or 1) is counted once;
* fields: each labelled polygon is predicted by a majority vote of the map
  classes of its pixels (the pixels it carries the label of, so a pixel counts
  for one field only), and the vote is compared with the polygon's label.

The map is read, and the labels rasterised, in strips of whole rows, so memory
does not grow with the size of the map.

The scores also say what they rest on: how many label polygons were read and
scored (and why the others were not), and a warning where the scored labels
hold one class only, since a map of that class alone then scores perfectly.

With ``fields``, the scored fields are also written as a GeoPackage layer
(:data:`FIELDS_LAYER`), one polygon per field with its crop class, label,
vote, pixel counts and outcome, styled for QGIS by outcome, so a GIS analyst
sees where the map agrees with the labels and which crops it misses. With
``scores``, the scores and what was scored (paths, the label file's
SHA-256, bbox, class-map overrides, software versions) are also written as a
JSON file (:data:`SCORES_KEYS`, :data:`SCORES_UNITS`), with what ties them
to the map (its SHA-256 and the checkpoint and imagery dates its tags name),
when they were made and the warnings given.
"""

import json
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pyogrio
import pyogrio.errors
import rasterio
import rasterio.errors
import rasterio.features
import rasterio.windows
import shapely
from pyproj import CRS, Transformer
from tqdm import tqdm

from . import __version__
from .constants import (
    AREA_DECIMALS,
    IRRIGATED,
    MAP_CLASSES,
    MAP_NODATA,
    NOT_IRRIGATED,
)
from .datasets.dwr import code_key
from .datasets.labels import IrrigationLabels, LabelsOutsideBboxError, layer_columns
from .datasets.survey_years import other_years
from .geopackage import missing_layer, write_geopackage
from .interrupts import deferred_interrupts
from .lonlat import (
    LONLAT,
    bbox_polygon,
    check_bbox,
    check_latitudes,
    check_lonlat_bbox,
    in_degrees,
    lonlat_extent,
    parse_bbox_crs,
    shapes_extent,
)
from .map_pixels import (
    area_ha,
    map_provenance,
    open_map,
    pixel_range,
    rasterise_ids,
    read_classes,
    row_pixel_ha,
    strips,
)
from .outputs import check_output_folder, partial_path, same_file
from .run_record import RunClock, absolute_path, json_record_fault, kept_warnings
from .software import cached_file_digest, software_record

#: Layer of the scored fields in the GeoPackage that ``fields`` names.
FIELDS_LAYER: Final[str] = "fields"

#: The ``outcome`` of a scored field by ``(label, mapped)``, 1 irrigated and 0
#: not: what the field is, then what the map's majority vote made of it.
FIELD_OUTCOMES: Final[dict[tuple[int, int], str]] = {
    (IRRIGATED, IRRIGATED): "irrigated, mapped irrigated",
    (NOT_IRRIGATED, NOT_IRRIGATED): "not irrigated, mapped not irrigated",
    (IRRIGATED, NOT_IRRIGATED): "irrigated, mapped not irrigated",
    (NOT_IRRIGATED, IRRIGATED): "not irrigated, mapped irrigated",
}

#: QGIS legend label and fill colour of each outcome, in legend order: the
#: map's own class colours where it agrees with the label, orange for missed
#: irrigation and dark magenta for false irrigation. The four differ in
#: lightness, so they stay apart in greyscale (luminance contrast 1.6:1 or
#: more between any two) and with red-green colour blindness (CIE76 colour
#: difference 44 or more between any two, deuteranopia simulated as Machado
#: et al. 2009): the missed orange is mid-light, the false magenta darker
#: than the irrigated blue.
OUTCOME_LEGEND: Final[dict[str, tuple[str, str]]] = {
    FIELD_OUTCOMES[IRRIGATED, IRRIGATED]: (
        "Irrigated, mapped irrigated",
        MAP_CLASSES[IRRIGATED][1],
    ),
    FIELD_OUTCOMES[NOT_IRRIGATED, NOT_IRRIGATED]: (
        "Not irrigated, mapped not irrigated",
        MAP_CLASSES[NOT_IRRIGATED][1],
    ),
    FIELD_OUTCOMES[IRRIGATED, NOT_IRRIGATED]: (
        "Missed: irrigated, mapped not irrigated",
        "#f57900",
    ),
    FIELD_OUTCOMES[NOT_IRRIGATED, IRRIGATED]: (
        "False: not irrigated, mapped irrigated",
        "#8e0152",
    ),
}

#: Name of the fields layer's default style, shown in QGIS's style manager.
FIELDS_STYLE_NAME: Final[str] = "field outcomes"

#: Decimals of ``agreement``.
AGREEMENT_DECIMALS: Final[int] = 4

#: Top-level keys of the JSON file ``scores`` names: an existing file is
#: taken for an earlier evaluate's scores (which may be replaced) when it is a
#: JSON object with all of them.
SCORES_KEYS: Final[frozenset[str]] = frozenset(
    {"torchgeo_simclr_version", "map", "labels", "bbox", "pixels", "fields"}
)

#: The ``units`` entry of a scores file: what each kind of number is in, by
#: key or key ending.
SCORES_UNITS: Final[dict[str, str]] = {
    "f1, precision, recall, iou, accuracy": (
        "fraction 0-1, irrigated is the positive class (null where the "
        "denominator is 0: e.g. recall without a pixel labelled irrigated, "
        "precision without one mapped irrigated)"
    ),
    "tp, fp, fn, tn": (
        "tp mapped and labelled irrigated, fp mapped irrigated but labelled not "
        "irrigated, fn mapped not irrigated but labelled irrigated, tn mapped "
        "and labelled not irrigated"
    ),
    "_px": "pixels of the map",
    "_ha": "hectares (10,000 m2), rounded to 0.01 ha",
    "_fields": "label polygons, each voted by the majority of its pixels",
    "label_polygons": (
        "label polygons read (in the bbox's lon/lat box where one is given) and "
        "scored; off_map have no pixel centre in the area scored (off the map or "
        "bbox), ignored_class have a code that is neither class (255, unmapped or "
        "missing), map_nodata_only have map nodata in every pixel"
    ),
    "bbox": "xmin, ymin, xmax, ymax in bbox_crs (lon/lat degrees for EPSG:4326)",
}

#: Largest existing file read to tell whether it is a scores file, bytes (a
#: scores file is about 2 KB).
MAX_SCORES_BYTES: Final[int] = 1 << 20

#: How the scores table prints a score with a zero denominator (None).
NOT_AVAILABLE: Final[str] = "n/a"


def _score(value: float | None) -> str:
    """A score as the table prints it: four decimals, or :data:`NOT_AVAILABLE`."""
    return NOT_AVAILABLE if value is None else f"{value:.4f}"


def _ratio(numerator: int, denominator: int) -> float | None:
    """Divide, returning None for a zero denominator (the score is undefined).

    Args:
        numerator: count above the line.
        denominator: count below the line.

    Returns:
        ``numerator / denominator``, or None when *denominator* is 0.
    """
    return numerator / denominator if denominator else None


def _f1(tp: int, fp: int, fn: int) -> float | None:
    """F1 score from confusion counts (None when there is no positive at all).

    Args:
        tp: true positives.
        fp: false positives.
        fn: false negatives.

    Returns:
        ``2 tp / (2 tp + fp + fn)``.
    """
    return _ratio(2 * tp, 2 * tp + fp + fn)


@dataclass(frozen=True)
class MapEvaluation:
    """Pixel- and field-level scores of an irrigation map (irrigated = positive).

    Every score is a fraction in [0, 1], or None where its denominator is zero
    and it is undefined (e.g. precision of a map that predicts no irrigated
    pixel, or recall against labels without an irrigated pixel).
    Counts are pixels or fields; areas are hectares, rounded to 0.01 ha.
    """

    #: Pixel F1 score of the irrigated class, ``2 tp / (2 tp + fp + fn)``.
    f1: float | None
    #: Pixel precision of the irrigated class, ``tp / (tp + fp)``.
    precision: float | None
    #: Pixel recall of the irrigated class, ``tp / (tp + fn)``.
    recall: float | None
    #: Pixel intersection over union of the irrigated class, ``tp / (tp + fp + fn)``.
    iou: float | None
    #: Fraction of scored pixels whose map class equals the label.
    accuracy: float | None
    #: Pixels scored: map class 0 or 1 and label 0 or 1.
    n_pixels: int
    #: Scored pixels mapped irrigated and labelled irrigated.
    tp: int
    #: Scored pixels mapped irrigated and labelled not irrigated.
    fp: int
    #: Scored pixels mapped not irrigated and labelled irrigated.
    fn: int
    #: Scored pixels mapped not irrigated and labelled not irrigated.
    tn: int
    #: Fraction of scored fields whose majority map class equals their label.
    field_accuracy: float | None
    #: Field F1 score of the irrigated class (fields predicted by majority vote).
    field_f1: float | None
    #: Fields scored: polygons labelled 0 or 1 with at least one map pixel of
    #: class 0 or 1.
    n_fields: int
    #: Scored fields voted irrigated and labelled irrigated.
    field_tp: int
    #: Scored fields voted irrigated and labelled not irrigated.
    field_fp: int
    #: Scored fields voted not irrigated and labelled irrigated.
    field_fn: int
    #: Scored fields voted not irrigated and labelled not irrigated.
    field_tn: int
    #: Area of the ``tp`` pixels, hectares.
    tp_ha: float
    #: Area of the ``fp`` pixels, hectares.
    fp_ha: float
    #: Area of the ``fn`` pixels, hectares.
    fn_ha: float
    #: Area of the ``tn`` pixels, hectares.
    tn_ha: float
    #: Label polygons read (all of the file, or those in the bbox's lon/lat
    #: box where one is given), scored or not.
    n_polygons: int
    #: Polygons read but not scored because their class says nothing about
    #: irrigation (mask value 255: e.g. ``X``, an unmapped or missing code).
    n_polygons_ignored: int
    #: Polygons of class 0 or 1 not scored because no pixel centre of the
    #: area scored is theirs: they lie off the map or outside the bbox (or are
    #: smaller than a pixel, or covered by polygons later in the file).
    n_polygons_off_map: int
    #: Polygons of class 0 or 1 not scored because all their pixels are map
    #: nodata.
    n_polygons_nodata: int

    @classmethod
    def from_counts(
        cls,
        *,
        tp: int,
        fp: int,
        fn: int,
        tn: int,
        field_tp: int,
        field_fp: int,
        field_fn: int,
        field_tn: int,
        tp_ha: float,
        fp_ha: float,
        fn_ha: float,
        tn_ha: float,
        n_polygons: int,
        n_polygons_ignored: int,
        n_polygons_off_map: int,
        n_polygons_nodata: int,
    ) -> "MapEvaluation":
        """Compute the scores from pixel and field confusion counts.

        Args:
            tp: pixels mapped irrigated, labelled irrigated.
            fp: pixels mapped irrigated, labelled not irrigated.
            fn: pixels mapped not irrigated, labelled irrigated.
            tn: pixels mapped not irrigated, labelled not irrigated.
            field_tp: fields voted irrigated, labelled irrigated.
            field_fp: fields voted irrigated, labelled not irrigated.
            field_fn: fields voted not irrigated, labelled irrigated.
            field_tn: fields voted not irrigated, labelled not irrigated.
            tp_ha: area of the *tp* pixels, hectares.
            fp_ha: area of the *fp* pixels, hectares.
            fn_ha: area of the *fn* pixels, hectares.
            tn_ha: area of the *tn* pixels, hectares.
            n_polygons: label polygons read.
            n_polygons_ignored: of them, those whose code is neither class
                (mask value 255).
            n_polygons_off_map: those of class 0 or 1 without a pixel centre
                in the area scored.
            n_polygons_nodata: those of class 0 or 1 whose pixels are all map
                nodata.

        Returns:
            The evaluation; scores with a zero denominator are None.
        """
        n_pixels = tp + fp + fn + tn
        n_fields = field_tp + field_fp + field_fn + field_tn
        return cls(
            f1=_f1(tp, fp, fn),
            precision=_ratio(tp, tp + fp),
            recall=_ratio(tp, tp + fn),
            iou=_ratio(tp, tp + fp + fn),
            accuracy=_ratio(tp + tn, n_pixels),
            n_pixels=n_pixels,
            tp=tp,
            fp=fp,
            fn=fn,
            tn=tn,
            field_accuracy=_ratio(field_tp + field_tn, n_fields),
            field_f1=_f1(field_tp, field_fp, field_fn),
            n_fields=n_fields,
            field_tp=field_tp,
            field_fp=field_fp,
            field_fn=field_fn,
            field_tn=field_tn,
            tp_ha=tp_ha,
            fp_ha=fp_ha,
            fn_ha=fn_ha,
            tn_ha=tn_ha,
            n_polygons=n_polygons,
            n_polygons_ignored=n_polygons_ignored,
            n_polygons_off_map=n_polygons_off_map,
            n_polygons_nodata=n_polygons_nodata,
        )

    def to_dict(self) -> dict[str, float | int | None]:
        """Return the scores and counts as a flat dict (JSON-serialisable).

        Returns:
            Field name -> value, in declaration order.
        """
        return asdict(self)

    def table(self) -> str:
        """Return the scores as a short text table, pixels and fields side by side.

        Returns:
            Several lines, without a trailing newline.
        """
        rows = [
            ("F1 (irrigated)", _score(self.f1), _score(self.field_f1)),
            ("precision", _score(self.precision), ""),
            ("recall", _score(self.recall), ""),
            ("IoU", _score(self.iou), ""),
            ("accuracy", _score(self.accuracy), _score(self.field_accuracy)),
            ("count", f"{self.n_pixels:,}", f"{self.n_fields:,}"),
        ]
        header = ("", "pixels", "fields")
        width = max(len(row[0]) for row in rows)
        cells = max(len(cell) for row in (header, *rows) for cell in row[1:])
        lines = [
            f"{name:<{width}}  {pixels:>{cells}}  {fields:>{cells}}".rstrip()
            for name, pixels, fields in (header, *rows)
        ]
        pixels = (
            ("tp", self.tp, self.tp_ha),
            ("fp", self.fp, self.fp_ha),
            ("fn", self.fn, self.fn_ha),
            ("tn", self.tn, self.tn_ha),
        )
        lines.append(
            "pixels: "
            + "  ".join(f"{name} {n:,} ({ha:,.2f} ha)" for name, n, ha in pixels)
        )
        lines.append(
            f"fields: tp {self.field_tp:,}  fp {self.field_fp:,}  "
            f"fn {self.field_fn:,}  tn {self.field_tn:,}"
        )
        lines.append(self.polygons_line())
        if any(NOT_AVAILABLE in row for row in rows):
            lines.append(
                f"{NOT_AVAILABLE}: undefined, its denominator is 0 (recall: "
                "nothing labelled irrigated; precision: nothing mapped irrigated; "
                "F1 and IoU: neither)"
            )
        return "\n".join(lines)

    def polygons_line(self) -> str:
        """Say how many label polygons were read and scored, and why others were not.

        Returns:
            One line, e.g. ``label polygons: 18 read, 16 scored; not scored:
            2 with no pixel centre in the area scored (off the map or
            --bbox)``.
        """
        line = f"label polygons: {self.n_polygons:,} read, {self.n_fields:,} scored"
        reasons = [
            (
                self.n_polygons_off_map,
                "with no pixel centre in the area scored (off the map or --bbox)",
            ),
            (
                self.n_polygons_ignored,
                "with an ignored code (255, unmapped or missing)",
            ),
            (self.n_polygons_nodata, "over map nodata only"),
        ]
        why = [f"{count:,} {reason}" for count, reason in reasons if count]
        return f"{line}; not scored: {', '.join(why)}" if why else line

    def scores_record(
        self,
        *,
        map_path: str | Path,
        labels: str | Path,
        class_column: str,
        class_map: Mapping[str, int] | None,
        bbox: Sequence[float] | None,
        bbox_crs: CRS,
        map_crs: CRS,
        fields: str | Path | None,
        labels_layer: str | None = None,
        map_tags: Mapping[str, str] | None = None,
        created: str | None = None,
        run_seconds: float | None = None,
        warned: Sequence[str] = (),
    ) -> dict[str, Any]:
        """The scores and what was scored, as the JSON file ``scores`` names.

        Args:
            map_path: the map scored, as given (recorded absolute, unless a
                GDAL ``/vsi`` path, with the file's SHA-256 as
                ``map_sha256``).
            labels: the label file or folder, as given (recorded absolute,
                with the file's SHA-256 as ``labels_sha256``: None for a
                folder, such as a ``.gdb``, or a GDAL ``/vsi`` path).
            class_column: the attribute with the class code.
            class_map: the class map given (for a DWR class column, the
                overrides of the defaults, which are not recorded).
            bbox: the region scored, in *bbox_crs*, or None for the whole map.
            bbox_crs: the CRS of *bbox*.
            map_crs: the map's CRS (pixel areas are taken in it).
            fields: the GeoPackage of scored fields written, or None.
            labels_layer: the layer of the label file read, or None for its
                first.
            map_tags: the map's GeoTIFF tags, of which ``map_tags`` keeps
                those named in :data:`~torchgeo_simclr.map_pixels.MAP_TAGS`;
                None for none.
            created: when the scoring started, UTC, ISO 8601, or None.
            run_seconds: how long it took until the scores were recorded,
                seconds, or None.
            warned: the text of each warning given while scoring.

        Returns:
            A JSON-serialisable dict with :data:`SCORES_KEYS`: the inputs, the
            map's provenance (``map_sha256``, ``map_tags``), ``created`` and
            ``run_seconds``, the ``units`` (:data:`SCORES_UNITS`), the
            ``pixels`` and ``fields`` scores and counts (None where
            undefined), ``label_polygons``: how many were read and scored, and
            why the others were not, and ``warnings``; counts end in ``_px``
            (pixels), ``_ha`` (hectares) or ``_fields`` (fields).
        """
        return {
            "torchgeo_simclr_version": __version__,
            "software": software_record(),
            "created": created,
            "run_seconds": run_seconds,
            "map": absolute_path(map_path),
            "map_sha256": cached_file_digest(map_path),
            "map_tags": map_provenance(map_tags or {}),
            "labels": absolute_path(labels),
            "labels_sha256": cached_file_digest(labels),
            "labels_layer": labels_layer,
            "class_column": class_column,
            "class_map": dict(class_map or {}),
            "bbox": None if bbox is None else [float(v) for v in bbox],
            "bbox_crs": bbox_crs.to_string(),
            "map_crs": map_crs.to_string(),
            "fields_gpkg": None if fields is None else os.path.abspath(fields),
            "units": dict(SCORES_UNITS),
            "pixels": {
                "f1": self.f1,
                "precision": self.precision,
                "recall": self.recall,
                "iou": self.iou,
                "accuracy": self.accuracy,
                "scored_px": self.n_pixels,
                "tp_px": self.tp,
                "fp_px": self.fp,
                "fn_px": self.fn,
                "tn_px": self.tn,
                "scored_ha": round(
                    self.tp_ha + self.fp_ha + self.fn_ha + self.tn_ha, AREA_DECIMALS
                ),
                "tp_ha": self.tp_ha,
                "fp_ha": self.fp_ha,
                "fn_ha": self.fn_ha,
                "tn_ha": self.tn_ha,
            },
            "fields": {
                "f1": self.field_f1,
                "accuracy": self.field_accuracy,
                "scored_fields": self.n_fields,
                "tp_fields": self.field_tp,
                "fp_fields": self.field_fp,
                "fn_fields": self.field_fn,
                "tn_fields": self.field_tn,
            },
            "label_polygons": {
                "read": self.n_polygons,
                "scored": self.n_fields,
                "off_map": self.n_polygons_off_map,
                "ignored_class": self.n_polygons_ignored,
                "map_nodata_only": self.n_polygons_nodata,
            },
            "warnings": list(warned),
        }


@dataclass(frozen=True)
class _Bbox:
    """A checked ``--bbox`` and the CRS ``--bbox-crs`` names for it."""

    #: ``(xmin, ymin, xmax, ymax)`` in :attr:`crs`.
    values: tuple[float, float, float, float]
    #: The CRS of :attr:`values` (EPSG:4326 for lon/lat).
    crs: CRS

    @classmethod
    def parse(cls, bbox: Sequence[float] | None, bbox_crs: CRS | str) -> "_Bbox | None":
        """Check a bbox and its CRS as ``predict`` and ``embed`` check theirs.

        Args:
            bbox: ``(xmin, ymin, xmax, ymax)`` in *bbox_crs*, or None.
            bbox_crs: its CRS, e.g. ``"EPSG:32610"`` (pyproj reads it).

        Returns:
            The bbox, or None without one.

        Raises:
            ValueError: If pyproj does not know *bbox_crs*, or *bbox* is not 4
                finite numbers with min < max (lon/lat given latitude first or
                in 0-360 degrees get the fix; metres given as lon/lat are told
                to name their CRS with ``--bbox-crs``).
        """
        crs = parse_bbox_crs(bbox_crs)
        if bbox is None:
            return None
        values = tuple(float(v) for v in bbox)
        if crs == LONLAT:
            try:
                checked = check_lonlat_bbox(values, "--bbox")
            except ValueError:
                if any(abs(v) > 360 for v in values):
                    # Metres: the fix is --bbox-crs, as predict's message says.
                    check_latitudes("--bbox", values, crs)
                raise
            assert checked is not None  # a bbox was given
            return cls(checked, crs)
        return cls(check_bbox(values, crs), crs)

    @property
    def named(self) -> str:
        """The bbox as a message names it, e.g. ``--bbox 1 2 3 4 in EPSG:32610``.

        Returns:
            The option and its values, and the CRS unless it is lon/lat.
        """
        given = f"--bbox {' '.join(f'{v:.10g}' for v in self.values)}"
        return given if self.crs == LONLAT else f"{given} in {self.crs.to_string()}"

    def polygon(self, crs: CRS) -> shapely.Polygon:
        """The bbox as a polygon in *crs*, densified to follow its curvature.

        Args:
            crs: the target CRS.

        Returns:
            The polygon (see :func:`~torchgeo_simclr.lonlat.bbox_polygon`).
        """
        return bbox_polygon(self.values, self.crs, crs)

    def lonlat(self) -> tuple[float, float, float, float] | None:
        """The lon/lat box around the bbox, within which the labels are read.

        Returns:
            ``(min lon, min lat, max lon, max lat)``, EPSG:4326 degrees, or
            None where the bbox reaches beyond where its CRS is defined.
        """
        if self.crs == LONLAT:
            return self.values
        west, south, east, north = self.polygon(LONLAT).bounds
        box = (max(west, -180.0), max(south, -90.0), min(east, 180.0), min(north, 90.0))
        valid = (
            all(math.isfinite(v) for v in box) and box[0] < box[2] and box[1] < box[3]
        )
        return box if valid else None

    def check_not_degrees(
        self, map_bounds: Sequence[float], map_crs: CRS, name: str
    ) -> None:
        """Refuse lon/lat degrees given as the coordinates of a projected CRS.

        Such a bbox lies far from the map (around the CRS's origin) and would
        only be refused for missing it, without the reason.

        Args:
            map_bounds: ``(left, bottom, right, top)`` of the map in *map_crs*.
            map_crs: the map's CRS.
            name: the map path, for the message.

        Raises:
            ValueError: If the bbox misses the map in its CRS but its numbers,
                read as lon/lat, lie over it.
        """
        if not self.crs.is_projected or not in_degrees(self.values):
            return
        area = shapely.box(*map_bounds)
        as_lonlat = _Bbox(self.values, LONLAT)
        if area.intersects(as_lonlat.polygon(map_crs)) and not area.intersects(
            self.polygon(map_crs)
        ):
            crs = self.crs.to_string()
            msg = (
                f"{self.named} misses map {name!r}, but read as lon/lat degrees it "
                f"lies over it; leave out --bbox-crs {crs} (lon/lat is the "
                f"default), or give the bbox in {crs} coordinates."
            )
            raise ValueError(msg)


def _check_label_layers(
    labels: str | Path, layer: str | None, class_column: str
) -> int:
    """Check the layer of a label file read, in evaluate's terms (``--labels-layer``).

    Only a single label file GDAL reads (not a folder of them, nor
    GeoParquet) is checked; :class:`IrrigationLabels` reports any other fault.

    Args:
        labels: the label file or folder.
        layer: the layer asked for, or None for the first.
        class_column: the attribute with the class code.

    Returns:
        How many layers the file holds (tables included, e.g. QGIS's
        ``layer_styles``); 0 where it was not checked.

    Raises:
        ValueError: If the file has no layer *layer*, or, without *layer*,
            its first layer has no *class_column* but it has other layers.

    Warns:
        UserWarning: if, without *layer*, the file has other vector layers
            than the first, which is read.
    """
    name = os.fspath(labels)
    is_gdb = os.path.isdir(name) and name.lower().rstrip("/").endswith(".gdb")
    if name.lower().endswith(IrrigationLabels.parquet_suffixes) or not (
        os.path.isfile(name) or is_gdb
    ):
        return 0
    try:
        listed = pyogrio.list_layers(name)
    except (pyogrio.errors.DataSourceError, OSError):
        return 0  # IrrigationLabels says why it cannot be read.
    names = [str(row[0]) for row in listed]
    vector = [str(row[0]) for row in listed if row[1] is not None]
    if layer is not None:
        if layer not in names:
            msg = (
                f"Label file {name!r} has no layer {layer!r}; its vector layers "
                f"are {vector}, so pass one of them as --labels-layer."
            )
            raise ValueError(msg)
        return len(names)
    first = names[0] if names else None
    others = [other for other in vector if other != first]
    if first is None or not others:
        return len(names)
    columns = layer_columns(name, first)
    if class_column not in columns:
        having = [o for o in others if class_column in layer_columns(name, o)]
        if having:
            advice = f"so pass --labels-layer {having[0]}" + (
                "" if len(having) == 1 else f" (or {', '.join(having[1:])})"
            )
            holds = f" ({', '.join(having)} with {class_column!r})"
        else:
            advice = (
                f"none with {class_column!r} either, so pass --labels-layer with "
                f"the layer of your labels and --class-column with its class "
                f"column (the first layer's columns are {columns})"
            )
            holds = ""
        msg = (
            f"Label file {name!r} has no column {class_column!r} in its first "
            f"layer {first!r}, which is read when no --labels-layer is given; "
            f"its other vector layers are {others}{holds}, {advice}."
        )
        raise ValueError(msg)
    warnings.warn(
        f"Label file {name!r} holds {len(vector)} vector layers ("
        f"{', '.join(repr(v) for v in vector)}) and only the first, {first!r}, is "
        "scored against; pass --labels-layer NAME to score against another.",
        UserWarning,
        stacklevel=4,
    )
    return len(names)


def _one_class(evaluation: MapEvaluation, labels: str | Path) -> str | None:
    """Why scores against labels of one class only say little, or None.

    Args:
        evaluation: the scores.
        labels: the label file or folder, for the message.

    Returns:
        One sentence for a warning where every scored pixel is labelled
        irrigated, or every one not irrigated; None where both are scored.
    """
    irrigated = evaluation.tp + evaluation.fn
    other = evaluation.fp + evaluation.tn
    if irrigated and other:
        return None
    given = repr(os.fspath(labels))
    if other == 0:
        found = f"all {irrigated:,} scored pixels are labelled irrigated"
        meaning = (
            "precision, accuracy and the true negatives say nothing about "
            "false irrigation, and a map that calls everything irrigated scores "
            "F1 1.0"
        )
        missing, value = "not-irrigated", 0
    else:
        found = f"all {other:,} scored pixels are labelled not irrigated"
        meaning = (
            "recall is undefined (n/a) and F1, precision and IoU are 0 whatever "
            "the map (n/a where it maps nothing irrigated), and a map that calls "
            "nothing irrigated scores accuracy 1.0"
        )
        missing, value = "irrigated", 1
    return (
        f"Labels {given}: {found}, so {meaning}; score against labels that also "
        f"hold {missing} fields (add some, or map their codes with --class-map "
        f"CODE={value})."
    )


def evaluate_map(
    map_path: str | Path,
    labels: str | Path,
    class_column: str = "CLASS2",
    class_map: Mapping[str, int] | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    progress: bool = False,
    *,
    bbox_crs: CRS | str = "EPSG:4326",
    rows_per_strip: int = 512,
    fields: str | Path | None = None,
    scores: str | Path | None = None,
    overwrite: bool = False,
    labels_layer: str | None = None,
) -> MapEvaluation:
    """Score an irrigation map against label polygons, per pixel and per field.

    The labels are read with
    :class:`~torchgeo_simclr.datasets.labels.IrrigationLabels` (reprojected to
    the map's CRS, class codes mapped to 0/1/255) and rasterised onto the map's
    own grid, strip by strip: a pixel takes a polygon's label when its centre
    lies inside it, and where polygons overlap the later one (later in the file,
    later files over earlier ones) wins, as in ``IrrigationLabels``. Pixels with
    map class 255 (nodata) or label 255 (no polygon, or a class such as ``X``
    that says nothing about irrigation) are not scored.

    Each labelled polygon (0 or 1) is predicted by the majority of the map
    classes (0 or 1, nodata skipped) of the pixels it labels; a tie is voted
    not irrigated (a field is called irrigated only with a strict majority).
    Polygons without any such pixel are not scored.

    With *fields*, the scored fields are also written to a new GeoPackage,
    layer :data:`FIELDS_LAYER`, in the map's CRS: one polygon per scored field
    (the whole label polygon, also where a bbox clips it) with ``crop_class``
    (its *class_column* code, e.g. ``P`` for pasture), ``label`` and
    ``mapped`` (0/1: the label and the majority vote), ``irr_px`` and
    ``not_irr_px`` (its scored pixels mapped irrigated and not), ``agreement``
    (the share of them whose map class equals the label, 0-1), ``outcome``
    (one of :data:`FIELD_OUTCOMES`), ``area_ha`` (the polygon's area,
    hectares) and ``scored_ha`` (the area of its scored pixels, on which the
    vote rests: less than ``area_ha`` where the field reaches past the map or
    its data); every name has 10 characters at most, so that a Shapefile
    export keeps it. QGIS opens it filled by outcome (:data:`OUTCOME_LEGEND`).

    With *scores*, the scores are also written to a JSON file (see
    :meth:`MapEvaluation.scores_record`): what was scored (map and labels,
    absolute, with their SHA-256, class column and class-map overrides, bbox
    and its CRS, package version), what made the map (its tags named in
    :data:`~torchgeo_simclr.map_pixels.MAP_TAGS`: checkpoint SHA-256,
    threshold, imagery dates, ...), the
    pixel scores with the confusion counts in pixels and hectares, the field
    scores with their counts (null for a score with a zero denominator), when
    the scoring started (``created``, UTC) and took (``run_seconds``), and the
    text of every warning shown meanwhile (``warnings``).

    The *fields* and *scores* paths are checked before any work; each file is
    written under a temporary name beside it and renamed once complete.

    Args:
        map_path: the map GeoTIFF: single band, uint8, 0 not irrigated, 1
            irrigated, nodata 255, georeferenced and north-up (e.g. EPSG:32610
            with 10 m pixels).
        labels: label polygons: a file (DWR's GDB zip, or any GeoPackage,
            Shapefile, GeoJSON, GeoParquet, ...) or a directory of them, in
            any CRS; land outside every polygon is not scored.
        class_column: attribute holding the class code.
        class_map: class code -> mask value (0, 1 or 255): entries that update
            :data:`~torchgeo_simclr.datasets.DEFAULT_IRRIGATION_MAP` for a DWR
            class column (``CLASS1`` to ``CLASS4``), the whole map for any
            other column, e.g. ``{"S": 1, "N": 0}``.
        bbox: ``(xmin, ymin, xmax, ymax)`` in *bbox_crs*, by default ``(min
            lon, min lat, max lon, max lat)`` in EPSG:4326 degrees; when given,
            only pixels whose centre lies inside it are scored, for pixel and
            field metrics alike (a field crossing the bbox edge is voted on its
            pixels inside).
        progress: show a progress bar over the map's rows.
        bbox_crs: the CRS of *bbox*, anything pyproj reads, e.g.
            ``"EPSG:32610"`` for UTM zone 10N metres.
        rows_per_strip: map rows (pixels) read and rasterised at once; only
            memory (a few tens of bytes per strip pixel) and speed depend on it,
            not the result.
        fields: a GeoPackage (``.gpkg``) to write the scored fields to, or
            None for none.
        scores: a JSON file (``.json``) to write the scores to, or None for
            none.
        overwrite: replace *fields* if it is a GeoPackage with the
            :data:`FIELDS_LAYER`, and *scores* if it is a JSON file with the
            :data:`SCORES_KEYS` (never another file).
        labels_layer: the layer of a multi-layer label file to read (e.g. a
            QGIS project GeoPackage), or None for its first.

    Returns:
        The pixel and field scores; scores with a zero denominator are None.

    Raises:
        FileNotFoundError: If the map or the label file does not exist.
        FileExistsError: If *fields* or *scores* exists and *overwrite* is
            False, or it is no file of fields or scores evaluate wrote.
        IsADirectoryError: If *fields* or *scores* is a folder.
        PermissionError: If the folder of *fields* or *scores* cannot be
            written.
        ValueError: If the map is not a uint8 class map with nodata 255 or holds
            values other than 0, 1, 255, the labels cannot be read, *bbox_crs*
            is no CRS, *bbox* is malformed or does not overlap the map or the
            labels, the labels do not overlap the map, no pixel has both a map
            class and a 0/1 label, *fields* does not end in ``.gpkg``,
            *scores* does not end in ``.json``, or either is the map or the
            labels; if the label file has no layer *labels_layer*, or, without
            one, its first layer lacks *class_column* while it has others; if
            *class_column* is not DWR's and *class_map* maps none of its
            codes (the message lists them); if the label file names no CRS
            and its coordinates are not degrees (the fix names the map's); if
            its coordinates can be no place on Earth in its CRS (degrees beyond
            +-180 or +-90, or e.g. +-1e300), as field-stats refuses them.

    Warns:
        UserWarning: if the label file has other vector layers than the one
            read without *labels_layer*, or the scored pixels are labelled with
            one class only (then a map of that class alone scores perfectly);
            if it holds features with NaN or infinite coordinates (left out)
            or invalid polygons (scored as shapely's make_valid repairs them),
            as field-stats warns of them.
    """
    if rows_per_strip < 1:
        msg = (
            f"rows_per_strip={rows_per_strip} is not a positive number of rows; "
            "pass e.g. 512."
        )
        raise ValueError(msg)
    clock = RunClock()
    # A latitude-first or inverted bbox gets the fix in --bbox's own syntax.
    region = _Bbox.parse(bbox, bbox_crs)
    fields_path = (
        None
        if fields is None
        else _FIELDS.check(Path(fields), map_path, labels, overwrite)
    )
    scores_path = (
        None
        if scores is None
        else _SCORES.check(Path(scores), map_path, labels, overwrite)
    )
    with kept_warnings() as warned:
        evaluation, crs, tags = _score_map(
            map_path,
            labels,
            region,
            class_column=class_column,
            class_map=class_map,
            labels_layer=labels_layer,
            rows_per_strip=rows_per_strip,
            progress=progress,
            fields_path=fields_path,
            overwrite=overwrite,
        )
    if scores_path is not None:
        record = evaluation.scores_record(
            map_path=map_path,
            labels=labels,
            class_column=class_column,
            class_map=class_map,
            bbox=None if region is None else region.values,
            bbox_crs=parse_bbox_crs(bbox_crs),
            map_crs=crs,
            fields=fields_path,
            labels_layer=labels_layer,
            map_tags=tags,
            created=clock.created,
            run_seconds=clock.seconds(),
            warned=warned,
        )
        _write_scores(record, scores_path, map_path, labels, overwrite)
    return evaluation


def _score_map(
    map_path: str | Path,
    labels: str | Path,
    region: _Bbox | None,
    *,
    class_column: str,
    class_map: Mapping[str, int] | None,
    labels_layer: str | None,
    rows_per_strip: int,
    progress: bool,
    fields_path: Path | None,
    overwrite: bool,
) -> tuple[MapEvaluation, CRS, dict[str, str]]:
    """Score the map, and write the scored fields where *fields_path* is given.

    The bbox is checked against the map first, so a bbox off the map is
    refused before any warning about the labels.

    Args:
        map_path: the map GeoTIFF.
        labels: the label file or folder.
        region: the checked bbox, or None for the whole map.
        class_column: the attribute with the class code.
        class_map: the class map given (see :func:`evaluate_map`), or None.
        labels_layer: the layer of the label file to read, or None.
        rows_per_strip: map rows read and rasterised at once.
        progress: show a progress bar over the map's rows.
        fields_path: the checked GeoPackage of scored fields, or None.
        overwrite: whether an earlier GeoPackage of fields may be replaced.

    Returns:
        The scores, the map's CRS and its GeoTIFF tags.

    Raises:
        ValueError: as :func:`evaluate_map` says.
        FileNotFoundError: If the map or the label file does not exist.
    """
    name = os.fspath(map_path)
    with open_map(map_path) as src:
        crs = CRS.from_user_input(src.crs.to_wkt())
        tags = dict(src.tags())
        bbox_polygon = None
        if region is not None:
            region.check_not_degrees(src.bounds, crs, name)
            bbox_polygon = region.polygon(crs)
            _check_bbox_on_map(src, region, bbox_polygon, crs, name)
        layers = _check_label_layers(labels, labels_layer, class_column)
        try:
            with warnings.catch_warnings():
                if layers > 1:
                    # pyogrio's, which asks for a `layer` parameter: the layers
                    # were checked above, in evaluate's own terms.
                    warnings.filterwarnings(
                        "ignore", "More than one layer found", UserWarning
                    )
                dataset = IrrigationLabels(
                    paths=os.fspath(labels),
                    crs=crs,
                    res=(float(src.transform.a), float(-src.transform.e)),
                    class_column=class_column,
                    class_map=dict(class_map) if class_map is not None else None,
                    layer=labels_layer,
                    bbox=None if region is None else region.lonlat(),
                )
        except LabelsOutsideBboxError as error:
            assert region is not None  # only raised for a bbox
            extents = error.extents
            cover = (
                str(next(iter(extents.values())))
                if len(extents) == 1
                else "; ".join(f"{f!r}: {e}" for f, e in extents.items())
            )
            msg = (
                f"{region.named} does not overlap the labels "
                f"{os.fspath(labels)!r}, which cover {cover} (lon/lat); pass a "
                f"--bbox over both the labels and map {name!r} "
                f"({lonlat_extent(src.bounds, crs)}), or leave it out."
            )
            raise ValueError(msg) from None
        map_dates = tags.get("imagery_dates", "")
        why = other_years(
            dataset.years,
            repr(os.fspath(labels)),
            map_dates.split(",") if map_dates else [],
            "a map made with predict --start/--end",
        )
        if why is not None:
            warnings.warn(why, UserWarning, stacklevel=3)
        trained_on = tags.get("training_labels_sha256")
        if trained_on is None:
            warnings.warn(
                f"Map {name!r} does not record the label file its model was "
                "trained on (a checkpoint of an earlier version, or labels from "
                "a folder), so whether these labels are held out cannot be told; "
                "score a --bbox you know the model was not trained on.",
                UserWarning,
                stacklevel=3,
            )
        elif trained_on == cached_file_digest(labels):
            warnings.warn(
                f"{os.fspath(labels)!r} is the label file that trained the model "
                f"of map {name!r} (same SHA-256): outside its val and test blocks "
                "it was trained on these very fields, so the scores say how well "
                "it fits them more than how it does on new fields; score it "
                "against labels it did not train on.",
                UserWarning,
                stacklevel=3,
            )
        window = _labelled_window(src, dataset, bbox_polygon, name, labels)
        tally = _Tally(dataset.features["value"].to_numpy(dtype=np.uint8))
        geometries = dataset.features.geometry.to_numpy()
        sindex = dataset.features.sindex
        bar = tqdm(
            total=window.height, desc="evaluate map", unit="row", disable=not progress
        )
        with bar:
            for strip in strips(window, rows_per_strip):
                classes = read_classes(src, strip, name)
                transform = src.window_transform(strip)
                hits = sindex.query(
                    shapely.box(*rasterio.windows.bounds(strip, src.transform)),
                    predicate="intersects",
                )
                ids = rasterise_ids(geometries, hits, classes.shape, transform)
                if bbox_polygon is not None:
                    outside = rasterio.features.geometry_mask(
                        [bbox_polygon], out_shape=classes.shape, transform=transform
                    )
                    ids[outside] = -1
                tally.add(classes, ids, row_pixel_ha(transform, strip.height, crs))
                bar.update(strip.height)

    if tally.confusion.sum() == 0:
        if tally.n_labelled == 0:
            found = (
                "no pixel centre lies in a polygon of an irrigated or not-irrigated "
                "class"
            )
            advice = "check --class-column and --class-map"
        else:
            found = (
                f"all {tally.n_labelled:,} labelled pixels are map nodata "
                f"({MAP_NODATA})"
            )
            advice = "check that the map covers the labelled fields"
        msg = (
            f"No labelled pixel to score in map {name!r} with labels "
            f"{os.fspath(labels)!r}: {found}; {advice}."
        )
        raise ValueError(msg)
    evaluation = tally.evaluation()
    if (one_class := _one_class(evaluation, labels)) is not None:
        warnings.warn(one_class, UserWarning, stacklevel=3)
    if fields_path is not None:
        frame = tally.fields_frame(
            dataset.features.geometry.to_numpy(),
            dataset.features["code"].to_numpy(),
            crs,
        )
        _write_fields(frame, fields_path, map_path, labels, overwrite)
    return evaluation, crs, tags


class _Tally:
    """Pixel confusion counts and per-field votes, accumulated strip by strip."""

    def __init__(self, values: npt.NDArray[np.uint8]) -> None:
        """Start with zero counts.

        Args:
            values: mask value (0, 1 or 255) of every label polygon, ``[N]``.
        """
        #: Mask value of every label polygon, ``[N]``.
        self.values = values
        #: Scored pixels by ``2 * label + map class``: tn, fp, fn, tp.
        self.confusion = np.zeros(4, dtype=np.int64)
        #: Their areas, hectares (unrounded).
        self.confusion_ha = np.zeros(4, dtype=np.float64)
        #: Scored pixels of each polygon mapped not irrigated and irrigated,
        #: ``[N, 2]``.
        self.votes = np.zeros((len(values), 2), dtype=np.int64)
        #: Pixels whose centre each polygon holds (and labels), whatever the
        #: map class, ``[N]``.
        self.pixels = np.zeros(len(values), dtype=np.int64)
        #: Area of each polygon's scored pixels, hectares (unrounded), ``[N]``.
        self.scored_ha = np.zeros(len(values), dtype=np.float64)
        #: Pixels with a 0/1 label, whatever their map class.
        self.n_labelled = 0

    def add(
        self,
        classes: npt.NDArray[np.uint8],
        ids: npt.NDArray[np.int32],
        pixel_ha: npt.NDArray[np.float64],
    ) -> None:
        """Count one strip.

        Args:
            classes: map classes of the strip (0, 1 or 255), ``[H, W]``.
            ids: polygon labelling each pixel of the strip, -1 for none,
                ``[H, W]``.
            pixel_ha: area of one pixel in each row of the strip, hectares,
                ``[H]``.
        """
        labelled = ids >= 0
        self.pixels += np.bincount(ids[labelled], minlength=self.pixels.size)
        truth = np.full(classes.shape, MAP_NODATA, dtype=np.uint8)
        truth[labelled] = self.values[ids[labelled]]
        self.n_labelled += int(np.count_nonzero(truth != MAP_NODATA))
        scored = (classes != MAP_NODATA) & (truth != MAP_NODATA)
        predicted = classes[scored].astype(np.int64)
        cell = 2 * truth[scored].astype(np.int64) + predicted
        self.confusion += np.bincount(cell, minlength=4)
        # Rows of the scored pixels, in the row-major order of `cell`.
        rows = np.nonzero(scored)[0]
        self.confusion_ha += np.bincount(cell, weights=pixel_ha[rows], minlength=4)
        self.scored_ha += np.bincount(
            ids[scored], weights=pixel_ha[rows], minlength=self.scored_ha.size
        )
        self.votes += np.bincount(
            2 * ids[scored].astype(np.int64) + predicted, minlength=self.votes.size
        ).reshape(self.votes.shape)

    def evaluation(self) -> MapEvaluation:
        """Score the counts; fields are voted irrigated on a strict majority.

        Returns:
            The pixel and field scores.
        """
        tn, fp, fn, tp = (int(count) for count in self.confusion)
        tn_ha, fp_ha, fn_ha, tp_ha = (
            round(float(area), AREA_DECIMALS) for area in self.confusion_ha
        )
        scored_px = self.votes.sum(axis=1)
        ignored = self.values == MAP_NODATA
        fields = (scored_px > 0) & ~ignored
        truth = self.values[fields] == IRRIGATED
        votes = self.votes[fields]
        vote = votes[:, IRRIGATED] > votes[:, NOT_IRRIGATED]
        return MapEvaluation.from_counts(
            tp=tp,
            fp=fp,
            fn=fn,
            tn=tn,
            field_tp=int(np.count_nonzero(vote & truth)),
            field_fp=int(np.count_nonzero(vote & ~truth)),
            field_fn=int(np.count_nonzero(~vote & truth)),
            field_tn=int(np.count_nonzero(~vote & ~truth)),
            tp_ha=tp_ha,
            fp_ha=fp_ha,
            fn_ha=fn_ha,
            tn_ha=tn_ha,
            n_polygons=len(self.values),
            n_polygons_ignored=int(np.count_nonzero(ignored)),
            n_polygons_off_map=int(np.count_nonzero(~ignored & (self.pixels == 0))),
            n_polygons_nodata=int(
                np.count_nonzero(~ignored & (self.pixels > 0) & (scored_px == 0))
            ),
        )

    def fields_frame(
        self, geometries: npt.NDArray[Any], codes: npt.NDArray[Any], crs: CRS
    ) -> gpd.GeoDataFrame:
        """The scored fields, one row each, voted as :meth:`evaluation` votes.

        Args:
            geometries: every label polygon, in *crs*, ``[N]``.
            codes: every label polygon's class code as read, ``[N]``.
            crs: the map's CRS.

        Returns:
            The fields in label order: ``crop_class`` (the code, surrounding
            spaces stripped, as the class map keys it), ``label``, ``mapped``,
            ``irr_px``, ``not_irr_px``, ``agreement``,
            ``outcome``, ``area_ha`` (the whole polygon's), ``scored_ha`` (its
            part on the map with data, which the vote rests on) and the
            polygon.
        """
        scored = (self.votes.sum(axis=1) > 0) & (self.values != MAP_NODATA)
        votes = self.votes[scored]
        label = self.values[scored].astype(np.int64)
        mapped = (votes[:, IRRIGATED] > votes[:, NOT_IRRIGATED]).astype(np.int64)
        agree = np.take_along_axis(votes, label[:, None], axis=1)[:, 0]
        shapes = geometries[scored]
        return gpd.GeoDataFrame(
            {
                "crop_class": [code_key(code) for code in codes[scored]],
                "label": label,
                "mapped": mapped,
                "irr_px": votes[:, IRRIGATED],
                "not_irr_px": votes[:, NOT_IRRIGATED],
                "agreement": np.round(agree / votes.sum(axis=1), AGREEMENT_DECIMALS),
                "outcome": [
                    FIELD_OUTCOMES[int(truth), int(vote)]
                    for truth, vote in zip(label, mapped, strict=True)
                ],
                "area_ha": area_ha(shapes, crs),
                "scored_ha": np.round(self.scored_ha[scored], AREA_DECIMALS),
            },
            geometry=shapes,
            crs=crs,
        )


def _check_bbox_on_map(
    src: Any, region: _Bbox, bbox_polygon: shapely.Polygon, crs: CRS, name: str
) -> None:
    """Refuse a bbox that does not overlap the map.

    Args:
        src: the open map.
        region: the user bbox.
        bbox_polygon: *region* in the map CRS.
        crs: the map's CRS.
        name: the map path, for messages.

    Raises:
        ValueError: If the bbox does not overlap the map, naming the map's
            extent in lon/lat (and in the bbox's CRS, where that is another).
    """
    if shapely.box(*src.bounds).intersects(bbox_polygon):
        return
    map_extent = lonlat_extent(src.bounds, crs)
    if region.crs == LONLAT:
        given = f"{region.named} (min lon, min lat, max lon, max lat)"
        extent = f"{map_extent} (lon/lat)"
    else:
        given = region.named
        to_bbox = Transformer.from_crs(crs, region.crs, always_xy=True)
        bounds = np.round(to_bbox.transform_bounds(*src.bounds), 1)
        extent = (
            f"{map_extent} (lon/lat) = {bounds.tolist()} in {region.crs.to_string()}"
        )
    msg = (
        f"{given} does not overlap map {name!r}, which covers {extent}; "
        "pass a --bbox inside that extent or leave it out."
    )
    raise ValueError(msg)


def _labelled_window(
    src: Any,
    dataset: IrrigationLabels,
    bbox_polygon: shapely.Polygon | None,
    name: str,
    labels: str | Path,
) -> rasterio.windows.Window:
    """The map window to score: the map within the bbox and the labels' extent.

    Args:
        src: the open map.
        dataset: the labels, in the map CRS.
        bbox_polygon: the user bbox in the map CRS (checked to overlap the map
            by :func:`_check_bbox_on_map`), or None.
        name: the map path, for messages.
        labels: the label path, for messages.

    Returns:
        The smallest window of whole pixels holding every pixel that may be
        scored.

    Raises:
        ValueError: If no label polygon overlaps the map (within the bbox).
    """
    features = dataset.features
    map_extent = lonlat_extent(src.bounds, dataset.crs)
    area = shapely.box(*src.bounds)
    if bbox_polygon is not None:
        area = area.intersection(bbox_polygon)
    hits = features.sindex.query(area, predicate="intersects")
    if hits.size == 0:
        # The features' own lon/lat bounds: the box around them in the map's
        # CRS, taken back to lon/lat, is far wider for labels far from the map.
        labels_extent = shapes_extent(features)
        where = "" if bbox_polygon is None else " within the bbox"
        msg = (
            f"Labels {os.fspath(labels)!r} cover {labels_extent} but map {name!r} "
            f"covers {map_extent} (min lon, min lat, max lon, max lat) and no "
            f"label polygon overlaps the map{where}; pass labels of the map's area."
        )
        raise ValueError(msg)
    extent = shapely.box(*features.geometry.iloc[hits].total_bounds)
    xmin, ymin, xmax, ymax = extent.intersection(area).bounds
    left, top = float(src.transform.c), float(src.transform.f)
    xres, yres = float(src.transform.a), float(-src.transform.e)
    col0, col1 = pixel_range(xmin - left, xmax - left, xres, src.width)
    row0, row1 = pixel_range(top - ymax, top - ymin, yres, src.height)
    return rasterio.windows.Window(col0, row0, col1 - col0, row1 - row0)


@dataclass(frozen=True)
class _Output:
    """One of evaluate's output files, as its checks and messages name it."""

    #: Its option, e.g. ``--scores``.
    option: str
    #: Its file name ending, e.g. ``.json``.
    suffix: str
    #: Its kind of file, e.g. ``"GeoPackage"``.
    kind: str
    #: What it is written as, e.g. ``"a GeoPackage"``.
    written_as: str
    #: What an earlier evaluate's file of it is, e.g. ``"a scores file"``.
    what: str
    #: Why an existing file is not an earlier evaluate's, or None where it is.
    fault: Callable[[Path], str | None]

    def check(
        self, path: Path, map_path: str | Path, labels: str | Path, overwrite: bool
    ) -> Path:
        """Refuse the output path before any work; nothing is written or made.

        Args:
            path: the file to write.
            map_path: the map scored.
            labels: the label file or folder.
            overwrite: whether an earlier evaluate's file may be replaced.

        Returns:
            *path*.

        Raises:
            IsADirectoryError: If *path* is a folder.
            ValueError: If *path* is the map or the labels (links included),
                or does not end in :attr:`suffix`.
            PermissionError: If its folder cannot be made or written.
            FileExistsError: If it exists and is not an earlier evaluate's
                file of this output, or *overwrite* is False.
        """
        name, option = str(path), self.option
        example = f"{option.removeprefix('--')}{self.suffix}"
        if path.is_dir():
            msg = (
                f"{option} {name!r} is a folder; pass a {self.kind} file name, "
                f"e.g. {path / example} (nothing was written)."
            )
            raise IsADirectoryError(msg)
        inputs = {"--map": map_path, "--labels": labels}
        if (clash := same_file([path], inputs)) is not None:
            given = os.fspath(inputs[clash[1]])
            which = "" if given == name else f" ({given!r})"
            msg = (
                f"{option} {name!r} is the file {clash[1]} reads{which}; choose "
                f"another {option}, e.g. maps/sample_{example} (nothing was "
                "written)."
            )
            raise ValueError(msg)
        if option == "--fields" and _inside_folder(path, labels):
            msg = (
                f"--fields {name!r} is inside the --labels folder "
                f"{os.fspath(labels)!r}, where it would be read as labels; choose "
                "another --fields, e.g. maps/sample_fields.gpkg (nothing was "
                "written)."
            )
            raise ValueError(msg)
        if path.suffix.lower() != self.suffix:
            msg = (
                f"{option} {name!r} must end in {self.suffix} (it is written as "
                f"{self.written_as}); pass e.g. {path.with_suffix(self.suffix)}."
            )
            raise ValueError(msg)
        check_output_folder(path.parent, option)
        if path.exists():
            why = self.fault(path)
            if why is not None:
                msg = (
                    f"{option} {name!r} is not {self.what} written by evaluate "
                    f"({why}); choose another {option} (nothing was written)."
                )
                raise FileExistsError(msg)
            if not overwrite:
                msg = (
                    f"{name} already exists; pass --overwrite to replace it, or "
                    f"choose another {option}."
                )
                raise FileExistsError(msg)
        return path

    def write(
        self,
        path: Path,
        writer: Callable[[Path], object],
        map_path: str | Path,
        labels: str | Path,
        overwrite: bool,
    ) -> None:
        """Write the output under a temporary name beside *path*, then rename.

        Args:
            path: the file, checked by :meth:`check` before any work.
            writer: writes the file to the path it is given.
            map_path: the map scored (checked again before the rename).
            labels: the labels (checked again before the rename).
            overwrite: whether an earlier evaluate's file may be replaced.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = partial_path(path)
        try:
            writer(partial)
            # A file may have appeared meanwhile: only this output is replaced.
            self.check(path, map_path, labels, overwrite)
            with deferred_interrupts():
                os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)


def _inside_folder(path: Path, folder: str | Path) -> bool:
    """Whether *path* lies inside *folder* (False where it is no folder)."""
    return os.path.isdir(folder) and path.resolve().is_relative_to(
        Path(folder).resolve()
    )


def _write_fields(
    frame: gpd.GeoDataFrame,
    path: Path,
    map_path: str | Path,
    labels: str | Path,
    overwrite: bool,
) -> None:
    """Write the scored fields, styled by outcome, under a temporary name, then rename.

    Args:
        frame: the fields, from :meth:`_Tally.fields_frame`.
        path: the GeoPackage, checked by ``_FIELDS.check`` before any work.
        map_path: the map scored (checked again before the rename).
        labels: the labels (checked again before the rename).
        overwrite: whether an earlier GeoPackage of fields may be replaced.
    """
    from .inference.styles import categorized_polygon_style

    style = categorized_polygon_style(
        "outcome",
        [
            (outcome, label, colour)
            for outcome, (label, colour) in OUTCOME_LEGEND.items()
        ],
    )
    polygonal = bool(frame.geom_type.isin(["Polygon", "MultiPolygon"]).all())
    _FIELDS.write(
        path,
        lambda partial: write_geopackage(
            frame,
            partial,
            FIELDS_LAYER,
            style=(FIELDS_STYLE_NAME, style),
            **(
                {"geometry_type": "MultiPolygon", "promote_to_multi": True}
                if polygonal
                else {}
            ),
        ),
        map_path,
        labels,
        overwrite,
    )


def _scores_file_fault(path: Path) -> str | None:
    """Why an existing *path* is no scores file evaluate wrote, or None.

    Args:
        path: an existing file.

    Returns:
        A few words for a message (e.g. ``"not JSON"``), or None for a JSON
        object with every key of :data:`SCORES_KEYS`.
    """
    return json_record_fault(path, SCORES_KEYS, MAX_SCORES_BYTES, "a scores file")


#: ``--fields``: a GeoPackage with the :data:`FIELDS_LAYER`.
_FIELDS = _Output(
    "--fields",
    ".gpkg",
    "GeoPackage",
    "a GeoPackage",
    "a GeoPackage of fields",
    lambda path: missing_layer(path, FIELDS_LAYER),
)

#: ``--scores``: a JSON object with the :data:`SCORES_KEYS`.
_SCORES = _Output(
    "--scores", ".json", "JSON", "JSON", "a scores file", _scores_file_fault
)


def _write_scores(
    record: dict[str, Any],
    path: Path,
    map_path: str | Path,
    labels: str | Path,
    overwrite: bool,
) -> None:
    """Write the scores as JSON under a temporary name, then rename.

    Args:
        record: the scores, from :meth:`MapEvaluation.scores_record`.
        path: the JSON file, checked by ``_SCORES.check`` before any work.
        map_path: the map scored (checked again before the rename).
        labels: the labels (checked again before the rename).
        overwrite: whether an earlier scores file may be replaced.
    """
    text = json.dumps(record, indent=2) + "\n"
    _SCORES.write(
        path,
        lambda partial: partial.write_text(text, encoding="utf-8"),
        map_path,
        labels,
        overwrite,
    )
