"""Where irrigation changed between two maps: a change raster, its style and areas.

:func:`change_map` reads two class maps that ``predict`` wrote over the same
grid (a year before and a year after, say) and writes, beside ``--out
PATH.tif``:

* ``PATH.tif``, a uint8 Cloud Optimized GeoTIFF of :data:`CHANGE_CLASSES`
  (stayed not irrigated, stayed irrigated, lost, gained; 255 where either map
  has no data) over the pixels both maps cover, with a colour table and tags
  naming both maps and what made them;
* ``PATH.qml``, its QGIS style (colours told apart by deuteranopes and in
  greyscale);
* ``PATH.json``, the hectares and acres of each class over the *common
  coverage* (the pixels with data in both maps), and the area with data in
  only one of them.

Totals of two maps are only comparable over their common coverage: a year
whose imagery covers part of the bbox, or whose clouds were masked elsewhere,
would otherwise look like a loss. Both maps are read in strips of whole rows,
so memory does not grow with the map's height.
"""

import json
import math
import os
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import rasterio
import rasterio.windows
from pyproj import CRS
from rasterio.errors import RasterioError
from rasterio.transform import Affine
from tqdm import tqdm

from . import __version__
from .constants import (
    IRRIGATED,
    M2_PER_ACRE,
    M2_PER_HA,
    MAP_NODATA,
    NOT_IRRIGATED,
    UNKNOWN_DATE,
)
from .digest import CHECKPOINT_ID_LENGTH
from .interrupts import deferred_interrupts
from .lonlat import lonlat_extent
from .map_pixels import map_provenance, open_map, read_classes, row_pixel_ha, strips
from .outputs import (
    check_output_folder,
    output_folder,
    partial_path,
    refuse_unless_ours,
    same_file,
)
from .run_record import RunClock, absolute_path, json_record_fault, kept_warnings
from .software import cached_file_digest, software_record

#: Change class of a pixel not irrigated in either map.
STAYED_NOT_IRRIGATED: Final[int] = 0

#: Change class of a pixel irrigated in both maps.
STAYED_IRRIGATED: Final[int] = 1

#: Change class of a pixel irrigated before and not after.
LOST: Final[int] = 2

#: Change class of a pixel not irrigated before and irrigated after.
GAINED: Final[int] = 3

#: Legend label and colour (hex RGB) of each change class, shared by the colour
#: table and the QGIS style: a pale cream and a light blue for what stayed, a
#: dark orange for lost and an indigo for gained. Every pair stays apart for a
#: deuteranope (CIE76 difference of 45 or more) and in greyscale (WCAG
#: contrast of 1.8 or more).
CHANGE_CLASSES: Final[dict[int, tuple[str, str]]] = {
    STAYED_NOT_IRRIGATED: ("Stayed not irrigated", "#ece7d8"),
    STAYED_IRRIGATED: ("Stayed irrigated", "#6baed6"),
    LOST: ("Lost: irrigated before, not after", "#c84f00"),
    GAINED: ("Gained: irrigated after, not before", "#2c1a6b"),
}

#: Key of each change class in the JSON record's ``area_ha`` and ``area_acres``.
CLASS_KEYS: Final[dict[int, str]] = {
    STAYED_NOT_IRRIGATED: "stayed_not_irrigated",
    STAYED_IRRIGATED: "stayed_irrigated",
    LOST: "lost",
    GAINED: "gained",
}

#: Value of the ``product`` tag that marks a GeoTIFF as a change map, which
#: ``--overwrite`` may replace (never a class map or another file).
PRODUCT: Final[str] = "irrigation change"

#: Keys every change record ``PATH.json`` holds: how an earlier one is told
#: from another JSON file, which ``--overwrite`` never replaces.
RECORD_KEYS: Final[frozenset[str]] = frozenset(
    {"torchgeo_simclr_version", "before", "after", "area_ha", "common_ha"}
)

#: Largest existing file read to tell whether it is a change record, bytes
#: (a record is about 4 KB).
MAX_RECORD_BYTES: Final[int] = 1 << 20

#: Share of a map's data area that the other map lacks, 0-1, from which a
#: warning says that the comparison leaves much of it out.
ONE_SIDED_WARNING: Final[float] = 0.1

#: Pixels two grids' origins may be apart by, as a share of a pixel, and
#: still count as aligned (rounding of the origins' coordinates).
ALIGN_TOLERANCE_PX: Final[float] = 1e-6

#: Map rows read at once; only memory and speed depend on it (the COG tiles
#: of ``predict``'s maps are 256 px high).
ROWS_PER_STRIP: Final[int] = 256

#: The start of the ``software`` tag, as ``predict``'s maps have it.
SOFTWARE: Final[str] = "torchgeo-simclr "


@dataclass(frozen=True)
class ChangeFiles:
    """The files of one change map, all beside ``PATH.tif``."""

    #: uint8 change classes (:data:`CHANGE_CLASSES`, 255 = nodata), COG.
    classes: Path
    #: QGIS style of the classes.
    style: Path
    #: The areas per class and what made them, JSON.
    record: Path

    @classmethod
    def beside(cls, path: str | os.PathLike[str]) -> "ChangeFiles":
        """The file names that belong to a change map at *path*.

        Args:
            path: ``PATH.tif``.

        Returns:
            ``PATH.tif``, ``PATH.qml`` and ``PATH.json``.

        Raises:
            IsADirectoryError: if *path* is a folder.
            ValueError: if *path* does not end in ``.tif`` or ``.tiff``.
        """
        path = Path(path)
        if path.is_dir():
            msg = (
                f"--out {str(path)!r} is a folder; pass a file name, e.g. "
                f"{path / 'change.tif'} (nothing was written)."
            )
            raise IsADirectoryError(msg)
        if path.suffix.lower() not in (".tif", ".tiff"):
            msg = (
                f"--out {str(path)!r} must end in .tif (the change map); the style "
                f"and record are named after it, so pass e.g. "
                f"{path.with_suffix('.tif')}."
            )
            raise ValueError(msg)
        # Not with_suffix: a name such as change.2022-2023.tif keeps its dots.
        stem = path.with_suffix("")
        return cls(classes=path, style=Path(f"{stem}.qml"), record=Path(f"{stem}.json"))

    def all(self) -> list[Path]:
        """Every file, change map first.

        Returns:
            The paths.
        """
        return [self.classes, self.style, self.record]


@dataclass
class ComparedMap:
    """What one of the two maps is and where it has data."""

    #: The map as given.
    path: str
    #: Its GeoTIFF tags.
    tags: dict[str, str]
    #: Area of its pixels with data, over the whole map, hectares.
    valid_ha: float = 0.0

    def provenance(self) -> dict[str, Any]:
        """The map as the record names it.

        Returns:
            ``path`` (absolute), ``sha256``, ``ckpt_id`` (the first
            :data:`~torchgeo_simclr.digest.CHECKPOINT_ID_LENGTH` hex digits
            of its checkpoint's SHA-256, None if untagged), ``valid_ha`` and
            :func:`~torchgeo_simclr.map_pixels.map_provenance` of its tags.
        """
        record = map_provenance(self.tags)
        sha = record["checkpoint_sha256"]
        return {
            "path": absolute_path(self.path),
            "sha256": cached_file_digest(self.path),
            "ckpt_id": None if sha is None else sha[:CHECKPOINT_ID_LENGTH],
            "valid_ha": round(self.valid_ha, 2),
            **record,
        }

    def dates(self) -> list[str]:
        """Its known imagery dates (ISO), sorted; empty where untagged."""
        return sorted(
            day
            for day in self.tags.get("imagery_dates", "").split(",")
            if day and day != UNKNOWN_DATE
        )


@dataclass
class ChangeResult:
    """The areas of a change map, as the command prints them."""

    #: The files written.
    files: ChangeFiles
    #: The map of the earlier year.
    before: ComparedMap
    #: The map of the later year.
    after: ComparedMap
    #: Hectares of each change class over the common coverage, by class value.
    class_ha: dict[int, float] = field(default_factory=dict)
    #: The JSON record written to :attr:`ChangeFiles.record`.
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def common_ha(self) -> float:
        """Area with data in both maps, hectares."""
        return sum(self.class_ha.values())

    def summary(self) -> str:
        """What the command prints: one paragraph.

        Returns:
            The text, e.g. ``"Irrigation change from 2022-07-16 to
            2023-07-15, over the 180.00 ha with data in both maps: lost ..."``.
        """
        lost, gained = self.class_ha[LOST], self.class_ha[GAINED]
        net = gained - lost
        dates = " to ".join(
            "/".join(side.dates()) or "unknown dates"
            for side in (self.before, self.after)
        )
        only = [
            f"{side.valid_ha - self.common_ha:,.2f} ha only in --{name}"
            for name, side in (("before", self.before), ("after", self.after))
            if side.valid_ha - self.common_ha >= 0.005
        ]
        left_out = (
            f" Left out, as it has data in one map only: {' and '.join(only)}."
            if only
            else ""
        )
        return (
            f"Irrigation change from {dates}, over the {self.common_ha:,.2f} ha "
            f"({_acres(self.common_ha):,.2f} acres) with data in both maps: lost "
            f"{lost:,.2f} ha ({_acres(lost):,.2f} acres), gained {gained:,.2f} ha "
            f"({_acres(gained):,.2f} acres), net change {net:+,.2f} ha "
            f"({_acres(net):+,.2f} acres); "
            f"{self.class_ha[STAYED_IRRIGATED]:,.2f} ha stayed irrigated and "
            f"{self.class_ha[STAYED_NOT_IRRIGATED]:,.2f} ha stayed not irrigated."
            f"{left_out}"
        )


def _acres(ha: float) -> float:
    """Hectares in acres."""
    return ha * M2_PER_HA / M2_PER_ACRE


def change_classes(
    before: npt.NDArray[np.uint8], after: npt.NDArray[np.uint8]
) -> npt.NDArray[np.uint8]:
    """The change class of each pixel of two class maps on the same grid.

    Args:
        before: classes of the earlier map (0, 1 or 255), ``[rows, cols]``.
        after: classes of the later map, the same shape.

    Returns:
        uint8 ``[rows, cols]``: :data:`STAYED_NOT_IRRIGATED`,
        :data:`STAYED_IRRIGATED`, :data:`LOST` or :data:`GAINED`, and
        :data:`~torchgeo_simclr.constants.MAP_NODATA` where either map has no
        data.
    """
    table = np.full((256, 256), MAP_NODATA, dtype=np.uint8)
    table[NOT_IRRIGATED, NOT_IRRIGATED] = STAYED_NOT_IRRIGATED
    table[IRRIGATED, IRRIGATED] = STAYED_IRRIGATED
    table[IRRIGATED, NOT_IRRIGATED] = LOST
    table[NOT_IRRIGATED, IRRIGATED] = GAINED
    return table[before, after]


def change_colormap() -> dict[int, tuple[int, int, int, int]]:
    """The colour table of a change map: :data:`CHANGE_CLASSES`, nodata clear.

    Returns:
        Class value -> RGBA (0-255).
    """
    table = {
        value: (
            int(colour[1:3], 16),
            int(colour[3:5], 16),
            int(colour[5:7], 16),
            255,
        )
        for value, (_, colour) in CHANGE_CLASSES.items()
    }
    table[MAP_NODATA] = (0, 0, 0, 0)
    return table


def change_map(
    before: str | os.PathLike[str],
    after: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    progress: bool = False,
    rows_per_strip: int = ROWS_PER_STRIP,
) -> ChangeResult:
    """Compare two class maps pixel by pixel and write the change map.

    The maps must share a CRS, a pixel size and pixel edges (``predict`` with
    the same ``--bbox`` over imagery of the same tiles gives that); where
    their extents differ, the change map covers the rectangle both cover.

    Args:
        before: the earlier class map ``predict`` wrote (uint8, 0 not
            irrigated, 1 irrigated, nodata 255).
        after: the later one.
        out: the change map to write, ``PATH.tif``; ``PATH.qml`` and
            ``PATH.json`` are written beside it (see :class:`ChangeFiles`).
        overwrite: replace the files of an earlier change map (never others).
        progress: show a progress bar over the rows read.
        rows_per_strip: map rows read at once; only memory and speed depend
            on it.

    Returns:
        The areas per class and the record written.

    Raises:
        FileNotFoundError: if a map does not exist.
        FileExistsError: if an output exists and *overwrite* is False, or it
            is no file of a change map.
        IsADirectoryError: if an output is a folder.
        PermissionError: if the folder of *out* cannot be written.
        ValueError: if a map is no class map, the two are the same file, not
            on the same grid or do not overlap, or an output is a map read.

    Warns:
        UserWarning: if the maps were made by different checkpoints or
            thresholds (a change then mixes model change with land change), do
            not say what made them, if the earlier map's imagery is newer than
            the later one's, or if one map has data on much of an area the
            other lacks.
    """
    clock = RunClock()
    if rows_per_strip < 1:
        msg = (
            f"rows_per_strip={rows_per_strip} is not a positive number of rows; "
            "pass e.g. 256."
        )
        raise ValueError(msg)
    files = ChangeFiles.beside(out)
    inputs = {"--before": os.fspath(before), "--after": os.fspath(after)}
    _check_inputs(files, inputs)
    _check_outputs(files, overwrite)
    with ExitStack() as stack, kept_warnings() as warned:
        src_before = stack.enter_context(open_map(inputs["--before"]))
        src_after = stack.enter_context(open_map(inputs["--after"]))
        window_before, window_after = _common_windows(
            src_before, src_after, inputs["--before"], inputs["--after"]
        )
        sides = (
            ComparedMap(inputs["--before"], src_before.tags()),
            ComparedMap(inputs["--after"], src_after.tags()),
        )
        _warn_provenance(*sides)
        result = ChangeResult(files, *sides)
        stack.enter_context(output_folder(files.classes.parent))
        partial = {path: partial_path(path) for path in files.all()}
        striped = partial_path(files.classes.with_suffix(".strips.tif"))
        try:
            result.class_ha = _write_change(
                (src_before, src_after),
                (window_before, window_after),
                sides,
                striped,
                partial[files.classes],
                progress,
                rows_per_strip,
            )
            _warn_one_sided(result)
            from .inference.styles import class_style

            partial[files.style].write_text(class_style(CHANGE_CLASSES))
            result.record = _record(result, src_before, window_before, clock, warned)
            text = json.dumps(result.record, indent=2, allow_nan=False)
            partial[files.record].write_text(text + "\n", encoding="utf-8")
            # Files may have appeared meanwhile: only a change map's are replaced.
            _check_outputs(files, overwrite)
            with deferred_interrupts():
                for path, temporary in partial.items():
                    os.replace(temporary, path)
        finally:
            for temporary in (*partial.values(), striped):
                temporary.unlink(missing_ok=True)
    return result


def _check_inputs(files: ChangeFiles, inputs: Mapping[str, str]) -> None:
    """Refuse two maps that are one file, or an output that is a map read.

    Args:
        files: the outputs.
        inputs: option -> path of each map.

    Raises:
        ValueError: if ``--before`` and ``--after`` are the same file, or an
            output is one of them.
    """
    before, after = inputs["--before"], inputs["--after"]
    if same_file([Path(before)], {"--after": after}) is not None:
        msg = (
            f"--before {before!r} and --after {after!r} are the same file, so "
            "nothing can have changed; pass the maps of two years (nothing was "
            "written)."
        )
        raise ValueError(msg)
    clash = same_file(files.all(), inputs)
    if clash is None:
        return
    output, option = clash
    found = (
        "is" if output == files.classes else f"would write {str(output)!r}, which is"
    )
    msg = (
        f"--out {str(files.classes)!r} {found} the map {option} reads; choose "
        "another --out, e.g. maps/change.tif (nothing was written)."
    )
    raise ValueError(msg)


def _check_outputs(files: ChangeFiles, overwrite: bool) -> None:
    """Refuse to replace anything but an earlier change map's files.

    Args:
        files: the outputs.
        overwrite: allow replacing an earlier change map's files.

    Raises:
        IsADirectoryError: if the style or record would be written over a
            folder.
        PermissionError: if the folder cannot be made or written.
        FileExistsError: if a file exists that is no earlier change map's, or
            any exists and *overwrite* is False.
    """
    check_output_folder(files.classes.parent)
    out = f"--out {str(files.classes)!r}"
    for path in files.all()[1:]:
        if path.is_dir():
            msg = (
                f"{out} would write {str(path)!r}, which is a folder; choose "
                "another --out (nothing was written)."
            )
            raise IsADirectoryError(msg)
    faults = (
        ("a change map written by torchgeo-simclr change", _raster_fault),
        ("a QGIS style of a change map", _style_fault),
        ("a record of a change map", _record_fault),
    )
    for path, (what, fault) in zip(files.all(), faults, strict=True):
        named = out if path == files.classes else f"{str(path)!r}, which {out} writes,"
        refuse_unless_ours(path, named, what, fault, "choose another --out")
    existing = [str(path) for path in files.all() if path.exists()]
    if existing and not overwrite:
        one = len(existing) == 1
        msg = (
            f"{', '.join(existing)} already exist{'s' if one else ''}; pass "
            f"--overwrite to replace {'it' if one else 'them'}, or choose another "
            "--out."
        )
        raise FileExistsError(msg)


def _raster_fault(path: Path) -> str | None:
    """Why an existing *path* is no change map, or None."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a PNG named .tif opens too
            with rasterio.open(path) as src:
                tags = src.tags()
    except RasterioError:
        return "not a raster GDAL reads"
    if not tags.get("software", "").startswith(SOFTWARE):
        return "no 'software' tag of torchgeo-simclr"
    if tags.get("product") != PRODUCT:
        return f"no 'product' tag {PRODUCT!r}: a class map or another raster"
    return None


def _style_fault(path: Path) -> str | None:
    """Why an existing *path* is no style of a change map, or None."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        return "not a QGIS style"
    labels = {
        entry.get("label") for entry in root.iterfind(".//colorPalette/paletteEntry")
    }
    if root.tag != "qgis" or root.find(".//rasterrenderer") is None:
        return "not a QGIS raster style"
    if labels != {label for label, _ in CHANGE_CLASSES.values()}:
        return "a QGIS style of another raster"
    return None


def _record_fault(path: Path) -> str | None:
    """Why an existing *path* is no record of a change map, or None."""
    return json_record_fault(path, RECORD_KEYS, MAX_RECORD_BYTES, "a change record")


def _common_windows(
    before: Any, after: Any, before_name: str, after_name: str
) -> tuple[rasterio.windows.Window, rasterio.windows.Window]:
    """The pixels both maps cover, as a window of each.

    Args:
        before: the earlier map, open.
        after: the later map, open.
        before_name: its path, for messages.
        after_name: the later map's path, for messages.

    Returns:
        The window of *before* and the window of *after* over the same
        ground, the same size.

    Raises:
        ValueError: if the maps differ in CRS or pixel size, their pixel edges
            do not line up, or they do not overlap.
    """
    maps = f"--before {before_name!r} and --after {after_name!r}"
    advice = (
        "map both with predict with the same --bbox and --checkpoint over imagery "
        "of the same tiles, then compare them (nothing was written)"
    )
    b, a = before.transform, after.transform
    differs = None
    if before.crs != after.crs:
        differs = (
            f"CRS {before.crs.to_string()} and {after.crs.to_string()}: the "
            "imagery of another UTM zone"
        )
    elif not (math.isclose(b.a, a.a) and math.isclose(b.e, a.e)):
        differs = f"pixels of {b.a:g} x {-b.e:g} and {a.a:g} x {-a.e:g}"
    else:
        cols, rows = (a.c - b.c) / b.a, (a.f - b.f) / b.e
        shift = max(abs(cols - round(cols)), abs(rows - round(rows)))
        if shift > ALIGN_TOLERANCE_PX:
            differs = f"pixel edges {shift:.2f} px apart"
    if differs is not None:
        msg = f"Maps {maps} are not on the same grid ({differs}); {advice}."
        raise ValueError(msg)
    col, row = round((a.c - b.c) / b.a), round((a.f - b.f) / b.e)
    left, top = max(0, col), max(0, row)
    right = min(before.width, col + after.width)
    bottom = min(before.height, row + after.height)
    if right <= left or bottom <= top:
        crs = CRS.from_user_input(before.crs.to_wkt())
        msg = (
            f"Maps {maps} do not overlap (they cover "
            f"{lonlat_extent(before.bounds, crs)} and "
            f"{lonlat_extent(after.bounds, crs)}, min lon, min lat, max lon, max "
            f"lat); {advice}."
        )
        raise ValueError(msg)
    width, height = right - left, bottom - top
    return (
        rasterio.windows.Window(left, top, width, height),
        rasterio.windows.Window(left - col, top - row, width, height),
    )


def model_mismatch(before: ComparedMap, after: ComparedMap) -> str | None:
    """Why the two maps' change may be the model's rather than the land's.

    Args:
        before: the earlier map.
        after: the later map.

    Returns:
        One sentence where they were made by different checkpoints or
        thresholds, or either does not say what made it; else None.
    """
    tagged = ("checkpoint_sha256", "threshold")
    untagged = [
        f"--{name} {side.path!r}"
        for name, side in (("before", before), ("after", after))
        if any(key not in side.tags for key in tagged)
    ]
    if untagged:
        return (
            f"{' and '.join(untagged)} record{'s' if len(untagged) == 1 else ''} no "
            "checkpoint or threshold (a map not written by predict?), so it cannot "
            "be told whether both maps were made alike; a change may be the model's "
            "rather than the land's."
        )
    differs = []
    ids = [
        side.tags["checkpoint_sha256"][:CHECKPOINT_ID_LENGTH]
        for side in (before, after)
    ]
    if ids[0] != ids[1]:
        differs.append(f"checkpoints ({ids[0]} and {ids[1]})")
    thresholds = [map_provenance(side.tags)["threshold"] for side in (before, after)]
    if thresholds[0] != thresholds[1]:
        differs.append(
            f"thresholds ({before.tags['threshold']} and {after.tags['threshold']})"
        )
    if not differs:
        return None
    return (
        f"--before {before.path!r} and --after {after.path!r} were made with "
        f"different {' and '.join(differs)}, so the change mixes the model's "
        "change with the land's; map both years with the same --checkpoint and "
        "--threshold to compare the land alone."
    )


def _warn_provenance(before: ComparedMap, after: ComparedMap) -> None:
    """Warn where the two maps' change may not be a change on the ground.

    Args:
        before: the earlier map.
        after: the later map.

    Warns:
        UserWarning: with :func:`model_mismatch`'s sentence, and if the
            earlier map's imagery is newer than the later one's.
    """
    mismatch = model_mismatch(before, after)
    if mismatch is not None:
        warnings.warn(mismatch, UserWarning, stacklevel=3)
    earlier, later = before.dates(), after.dates()
    if earlier and later and earlier[0] > later[-1]:
        warnings.warn(
            f"--before {before.path!r} has imagery of {', '.join(earlier)}, newer "
            f"than --after {after.path!r} of {', '.join(later)}, so lost and gained "
            "are the reverse of the change in time; swap --before and --after if "
            "that is not meant.",
            UserWarning,
            stacklevel=3,
        )


def _warn_one_sided(result: ChangeResult) -> None:
    """Warn if one map has data on much of an area the other lacks.

    Args:
        result: the areas, counted.

    Warns:
        UserWarning: if at least :data:`ONE_SIDED_WARNING` of a map's data
            area has no data in the other map.
    """
    common = result.common_ha
    for name, side, other in (
        ("before", result.before, "after"),
        ("after", result.after, "before"),
    ):
        only = side.valid_ha - common
        if side.valid_ha > 0 and only / side.valid_ha >= ONE_SIDED_WARNING:
            warnings.warn(
                f"--{name} {side.path!r} has data on {only:,.2f} ha "
                f"({100 * only / side.valid_ha:.0f}% of its {side.valid_ha:,.2f} "
                f"ha) where --{other} has none (imagery of part of the bbox, "
                "clouds, another extent); the areas compare the "
                f"{common:,.2f} ha with data in both, not the maps' totals.",
                UserWarning,
                stacklevel=3,
            )


def _row_strips(
    srcs: tuple[Any, Any],
    windows: tuple[rasterio.windows.Window, rasterio.windows.Window],
    rows: int,
) -> Iterator[tuple[rasterio.windows.Window, npt.NDArray[np.uint8]]]:
    """The change classes of the common windows, strip by strip.

    Args:
        srcs: the earlier and the later map, open.
        windows: the window of each over the same ground.
        rows: rows per strip.

    Yields:
        The strip's window on the earlier map, and its change classes
        ``[strip rows, window width]``.
    """
    before, after = srcs
    top_shift = windows[1].row_off - windows[0].row_off
    col_shift = windows[1].col_off - windows[0].col_off
    for strip in strips(windows[0], rows):
        twin = rasterio.windows.Window(
            strip.col_off + col_shift,
            strip.row_off + top_shift,
            strip.width,
            strip.height,
        )
        yield (
            strip,
            change_classes(
                read_classes(before, strip, before.name),
                read_classes(after, twin, after.name),
            ),
        )


def _valid_ha(src: Any, rows: int, bar: Any) -> float:
    """Area of a map's pixels with data, hectares, read in strips.

    Args:
        src: the map, open.
        rows: rows per strip.
        bar: the progress bar, advanced by the rows read.

    Returns:
        Hectares.
    """
    crs = CRS.from_user_input(src.crs.to_wkt())
    total = 0.0
    whole = rasterio.windows.Window(0, 0, src.width, src.height)
    for strip in strips(whole, rows):
        valid = read_classes(src, strip, src.name) != MAP_NODATA
        ha = row_pixel_ha(src.window_transform(strip), strip.height, crs)
        total += float(np.count_nonzero(valid, axis=1) @ ha)
        bar.update(strip.height)
    return total


def _write_change(
    srcs: tuple[Any, Any],
    windows: tuple[rasterio.windows.Window, rasterio.windows.Window],
    sides: tuple[ComparedMap, ComparedMap],
    striped: Path,
    target: Path,
    progress: bool,
    rows: int,
) -> dict[int, float]:
    """Write the change classes as a COG and count their areas.

    Args:
        srcs: the earlier and the later map, open.
        windows: the window of each over the same ground.
        sides: the two maps; their ``valid_ha`` is filled in.
        striped: the temporary striped GeoTIFF written first.
        target: the temporary name of the COG.
        progress: show a progress bar over the rows read.
        rows: rows per strip.

    Returns:
        Hectares of each change class, by class value.
    """
    from .inference.geotiff import StripWriter, write_cog
    from .inference.grid import OutputGrid

    before = srcs[0]
    crs = CRS.from_user_input(before.crs.to_wkt())
    transform: Affine = before.window_transform(windows[0])
    grid = OutputGrid(
        crs=crs, transform=transform, width=windows[0].width, height=windows[0].height
    )
    class_ha = dict.fromkeys(CHANGE_CLASSES, 0.0)
    total = srcs[0].height + srcs[1].height + windows[0].height
    with (
        tqdm(total=total, desc="change", unit="row", disable=not progress) as bar,
        StripWriter(
            striped,
            grid,
            "uint8",
            MAP_NODATA,
            "irrigation change",
            _tags(sides),
            change_colormap(),
        ) as writer,
    ):
        for side, src in zip(sides, srcs, strict=True):
            side.valid_ha = _valid_ha(src, rows, bar)
        for strip, classes in _row_strips(srcs, windows, rows):
            writer.write(strip.row_off - windows[0].row_off, classes)
            ha = row_pixel_ha(before.window_transform(strip), strip.height, crs)
            for value in CHANGE_CLASSES:
                class_ha[value] += float(
                    np.count_nonzero(classes == value, axis=1) @ ha
                )
            bar.update(strip.height)
    write_cog(striped, target, "nearest")
    return class_ha


def _tags(sides: tuple[ComparedMap, ComparedMap]) -> dict[str, str]:
    """The change map's GeoTIFF tags: what it is, and both maps it compares.

    Args:
        sides: the earlier and the later map.

    Returns:
        ``software``, ``product``, ``classes``, and for ``before`` and
        ``after`` each: the path (absolute), ``_sha256``, ``_imagery_dates``,
        ``_threshold``, ``_checkpoint``, ``_ckpt_id``; plus ``warning``
        (:func:`model_mismatch`) where the maps were made with different
        checkpoints or thresholds, or do not say.
    """
    classes = ", ".join(
        f"{value} {label.lower()}" for value, (label, _) in CHANGE_CLASSES.items()
    )
    tags = {
        "software": f"{SOFTWARE}{__version__}",
        "product": PRODUCT,
        "classes": f"{classes}, {MAP_NODATA} nodata in either map",
    }
    commit = software_record()["commit"]
    if commit is not None:
        tags["software_commit"] = commit
    for name, side in zip(("before", "after"), sides, strict=True):
        record = side.provenance()
        tags[name] = record["path"]
        for key in ("sha256", "checkpoint", "ckpt_id"):
            if record[key] is not None:
                tags[f"{name}_{key}"] = str(record[key])
        if record["imagery_dates"] is not None:
            tags[f"{name}_imagery_dates"] = ",".join(record["imagery_dates"])
        if "threshold" in side.tags:
            tags[f"{name}_threshold"] = side.tags["threshold"]
    if (mismatch := model_mismatch(*sides)) is not None:
        tags["warning"] = mismatch
    return tags


def _record(
    result: ChangeResult,
    before: Any,
    window: rasterio.windows.Window,
    clock: RunClock,
    warned: list[str],
) -> dict[str, Any]:
    """The JSON record of a change map.

    Args:
        result: the areas, counted.
        before: the earlier map, open (its grid is the change map's).
        window: the change map's window on it.
        clock: when the run started.
        warned: the text of each warning shown so far.

    Returns:
        A JSON-serialisable dict: both maps and what made them, the grid, the
        hectares and acres of each class over the common coverage, the area
        with data in one map only, the net change, the software, ``created``
        (UTC), ``run_seconds`` and ``warnings``; the keys :data:`RECORD_KEYS`
        among them.
    """
    common = result.common_ha
    lost, gained = result.class_ha[LOST], result.class_ha[GAINED]
    area_ha = {CLASS_KEYS[v]: round(ha, 2) for v, ha in result.class_ha.items()}
    area_acres = {
        CLASS_KEYS[v]: round(_acres(ha), 2) for v, ha in result.class_ha.items()
    }
    only_before = max(result.before.valid_ha - common, 0.0)
    only_after = max(result.after.valid_ha - common, 0.0)
    bounds = rasterio.windows.bounds(window, before.transform)
    crs = CRS.from_user_input(before.crs.to_wkt())
    return {
        "torchgeo_simclr_version": __version__,
        "software": software_record(),
        "before": result.before.provenance(),
        "after": result.after.provenance(),
        "files": {
            "classes": result.files.classes.name,
            "style": result.files.style.name,
        },
        "classes": {str(value): CLASS_KEYS[value] for value in CHANGE_CLASSES}
        | {str(MAP_NODATA): "nodata in either map"},
        "crs": crs.to_string(),
        "pixel_size": float(before.transform.a),
        "width": int(window.width),
        "height": int(window.height),
        "bounds": list(bounds),
        "bounds_lonlat": lonlat_extent(bounds, crs),
        "area_ha": area_ha,
        "area_acres": area_acres,
        "common_ha": round(common, 2),
        "common_acres": round(_acres(common), 2),
        "only_before_ha": round(only_before, 2),
        "only_before_acres": round(_acres(only_before), 2),
        "only_after_ha": round(only_after, 2),
        "only_after_acres": round(_acres(only_after), 2),
        "net_change_ha": round(gained - lost, 2),
        "net_change_acres": round(_acres(gained - lost), 2),
        "created": clock.created,
        "run_seconds": clock.seconds(),
        "warnings": list(warned),
    }
