"""The ``torchgeo-simclr`` command line: its sub-commands and their options."""

import argparse
import difflib
import math
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from .. import __version__
from ..constants import MAX_PIXELS
from .data import _download, _sample_data
from .embeddings import _embed, _embedding_map, _search
from .maps import _change, _evaluate, _field_stats, _predict
from .training import CONF_DIR, _demo, _experiment, _probe


class OneLineErrors(argparse.ArgumentParser):
    """An argument parser that reports bad arguments in one line.

    Like every other error of this command: the usage is one ``--help`` away.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """An argparse parser that reads ``-1e12`` as a negative number.

        Python 3.12 and 3.13 take a negative number in exponent form for an
        option, so ``--bbox -1e12 -1e12 1e12 1e12`` came out as "expected 4
        arguments" (Python 3.14 reads it as a number, as here).

        Args:
            args: argparse's arguments.
            kwargs: argparse's keyword arguments.
        """
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(
            r"^-(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$"
        )

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: Any = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """Parse, first refusing a misspelt option with the names it is close to.

        argparse checks required options first, so ``--chekpoint`` came out
        as "the following arguments are required: --checkpoint".

        Args:
            args: the command line (default: ``sys.argv[1:]``).
            namespace: where to put the values.

        Returns:
            argparse's namespace and the arguments it did not know.
        """
        tokens = list(args or ())
        if not {"-h", "--help"} & set(tokens) and not any(
            isinstance(action, argparse._SubParsersAction) for action in self._actions
        ):
            known = list(self._option_string_actions)
            # After `--` come arguments for another program (experiment's).
            for token in tokens[: tokens.index("--") if "--" in tokens else None]:
                name = token.split("=", 1)[0]
                if name.startswith("--") and not any(o.startswith(name) for o in known):
                    close = difflib.get_close_matches(name, known, n=2)
                    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
                    self.error(f"unrecognized argument {name}{hint}")
            self._refuse_commas(
                tokens[: tokens.index("--") if "--" in tokens else None]
            )
        return super().parse_known_args(args, namespace)

    def _refuse_commas(self, tokens: list[str]) -> None:
        """Refuse coordinates written with commas, which argparse miscounts.

        ``--bbox -120,80 37.05 ...`` came out as "expected 4 arguments": a
        token such as ``-120,80`` is no negative number to argparse, so it
        took it for an option.

        Args:
            tokens: the command line, up to a ``--``.
        """
        for i, token in enumerate(tokens):
            option, joined, value = token.partition("=")
            action = self._option_string_actions.get(option)
            if action is None or option not in ("--bbox", "--lonlat"):
                continue
            count = action.nargs if isinstance(action.nargs, int) else 0
            values = [value] if joined else []
            for following in tokens[i + 1 : i + 1 + count]:
                if following in self._option_string_actions:
                    break
                values.append(following)
            for given in values:
                if "," in given:
                    self.error(
                        f"{option} value {given!r} has a comma; write each number "
                        "with a decimal point and separate them with spaces, e.g. "
                        f"{option} -120.8 37.05"
                        + (" -120.79 37.06" if count == 4 else "")
                    )

    def error(self, message: str) -> NoReturn:
        """Print ``PROG: error: MESSAGE (see PROG --help)`` and exit with 2.

        Args:
            message: argparse's description of the problem.
        """
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class DefaultsShown(argparse.HelpFormatter):
    """Help that ends each option with its default, where it has a telling one.

    Unlike :class:`argparse.ArgumentDefaultsHelpFormatter`, flags, options
    without a default (None) and help that already names its default are
    left as they are.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            action.nargs == 0  # a flag: --overwrite, --no-probe, ...
            or default is None
            or default == argparse.SUPPRESS
            or "default" in text
            or not action.option_strings
        ):
            return action.help
        return f"{text} (default: %(default)s)"


def _at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least *minimum*.

    Args:
        minimum: the smallest value accepted.

    Returns:
        The converter, which argparse reports errors of in one line.
    """

    def integer(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            # 2e9 is a whole number too; 2.5, nan and inf are not.
            number = float(text)
            if not number.is_integer():
                raise
            value = int(number)
        if value < minimum:
            msg = f"must be at least {minimum}, got {value}"
            raise argparse.ArgumentTypeError(msg)
        return value

    return integer


def _finite_number(
    expected: str, strictly_above: bool = False
) -> Callable[[str], float]:
    """An argparse type: a finite number of 0 or more (or above 0).

    Args:
        expected: what it must be, for the message, e.g. ``"a distance of 0
            metres or more"``.
        strictly_above: refuse 0 too.

    Returns:
        The converter, which argparse reports errors of in one line.
    """

    def number(text: str) -> float:
        value = float(text)
        if not (value > 0 if strictly_above else value >= 0) or value == math.inf:
            msg = f"must be {expected}, got {text}"
            raise argparse.ArgumentTypeError(msg)
        return value

    return number


def _class_code(value: str) -> tuple[str, int]:
    """Parse one ``CODE=VALUE`` of ``--class-map``."""
    code, _, number = value.partition("=")
    if not code.strip() or number not in ("0", "1", "255"):
        msg = (
            f"{value!r} is not CODE=VALUE with VALUE 0 (not irrigated), 1 "
            "(irrigated) or 255 (ignored); pass e.g. I=1"
        )
        raise argparse.ArgumentTypeError(msg)
    return code.strip(), int(number)


def _add_bbox(parser: argparse.ArgumentParser) -> None:
    """Add ``--bbox`` and ``--bbox-crs`` (a region, lon/lat by default)."""
    parser.add_argument(
        "--bbox",
        type=float,
        nargs=4,
        metavar=("XMIN", "YMIN", "XMAX", "YMAX"),
        help="region (default: all imagery); lon/lat unless --bbox-crs",
    )
    parser.add_argument(
        "--bbox-crs", default="EPSG:4326", help="CRS of --bbox (default: lon/lat)"
    )


def _add_class_column(parser: argparse.ArgumentParser) -> None:
    """Add ``--class-column`` (the label attribute with the crop class code)."""
    parser.add_argument(
        "--class-column",
        default="CLASS2",
        help="attribute of the label file with the crop class code (default: CLASS2)",
    )


def _add_class_map(parser: argparse.ArgumentParser) -> None:
    """Add ``--class-map`` (what the ``--class-column`` codes mean)."""
    parser.add_argument(
        "--class-map",
        nargs="+",
        type=_class_code,
        default=[],
        metavar="CODE=VALUE",
        help="class codes to count as irrigated (1), not irrigated (0) or ignored "
        "(255): over the DWR defaults for a DWR class column (CLASS1-CLASS4, e.g. "
        "--class-map I=1 X=0); for your own --class-column the whole map, "
        "required, e.g. --class-column regadio --class-map S=1 N=0",
    )


def _add_cloud_mask(parser: argparse.ArgumentParser) -> None:
    """Add ``--no-cloud-mask`` (sets ``mask_clouds`` to False)."""
    parser.add_argument(
        "--no-cloud-mask",
        dest="mask_clouds",
        action="store_false",
        help=(
            "keep the pixels an SCL or cloud_mask.tif beside per-band files "
            "calls cloudy (default: they are nodata)"
        ),
    )
    _add_cloud_buffer(parser)


def _add_cloud_buffer(parser: argparse.ArgumentParser) -> None:
    """Add ``--cloud-buffer`` (metres by which masked clouds grow)."""
    parser.add_argument(
        "--cloud-buffer",
        type=_finite_number("a distance of 0 metres or more"),
        default=0.0,
        metavar="METRES",
        help=(
            "grow masked clouds and their shadows this much further, for edges "
            "and haze the mask misses (default: 0; they already grow as far as "
            "the coarsest band carries their light: 70 m from a 20 m SCL with "
            "the 60 m bands)"
        ),
    )


def _add_dates(parser: argparse.ArgumentParser) -> None:
    """Add ``--start`` and ``--end`` (the sensing days read, inclusive)."""
    parser.add_argument(
        "--start",
        help="first sensing day read, YYYY-MM-DD, UTC as in the file names "
        "(default: every day; where products of several days overlap, the newest "
        "with data wins each pixel)",
    )
    parser.add_argument(
        "--end",
        help="last sensing day read, YYYY-MM-DD, inclusive (default: every day)",
    )


def _add_progress(parser: argparse.ArgumentParser) -> None:
    """Add ``--progress`` and ``--no-progress`` (set ``progress``).

    Bars are on by default only when stderr is a terminal: a job's log file
    would otherwise fill with their carriage-return updates.
    """
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=sys.stderr is not None and sys.stderr.isatty(),
        help="progress bars on stderr (default: on when stderr is a terminal, off "
        "in a log file or pipe)",
    )


def _add_download_command(commands: "argparse._SubParsersAction[Any]") -> None:
    """Add the ``download`` sub-command."""
    from ..download import DEFAULT_COLLECTION, DEFAULT_STAC_URL

    download = commands.add_parser(
        "download",
        help="Sentinel-2 L2A imagery of a bbox from a STAC API (COG window reads, "
        "12 bands on 10 m, manifest, resumable)",
    )
    download.add_argument(
        "--bbox",
        type=float,
        nargs=4,
        required=True,
        metavar=("MIN_LON", "MIN_LAT", "MAX_LON", "MAX_LAT"),
        help="region in lon/lat degrees (EPSG:4326)",
    )
    download.add_argument("--start", required=True, help="first day, YYYY-MM-DD")
    download.add_argument("--end", required=True, help="last day, YYYY-MM-DD")
    download.add_argument(
        "--max-cloud",
        type=float,
        default=20.0,
        help="highest scene cloud cover, %% (default: 20)",
    )
    download.add_argument("--out", required=True, help="download root, e.g. data/cv")
    download.add_argument(
        "--stac-url",
        default=DEFAULT_STAC_URL,
        help=f"STAC API (default: {DEFAULT_STAC_URL}, no account needed)",
    )
    download.add_argument(
        "--collection",
        default=DEFAULT_COLLECTION,
        help=f"Sentinel-2 L2A collection (default: {DEFAULT_COLLECTION})",
    )
    download.add_argument(
        "--per-tile",
        type=_at_least(1),
        default=1,
        help="least cloudy scenes kept per MGRS tile (default: 1)",
    )
    download.add_argument(
        "--no-cloud-mask",
        dest="mask_clouds",
        action="store_false",
        help="keep cloudy pixels (default: SCL cloud, cirrus and shadow -> nodata)",
    )
    _add_cloud_buffer(download)
    download.add_argument(
        "--retries",
        type=_at_least(0),
        default=3,
        help="retries of a failed request, with back-off (default: 3)",
    )
    _add_progress(download)
    download.set_defaults(func=_download)


def _add_map_commands(commands: "argparse._SubParsersAction[Any]") -> None:
    """Add the map sub-commands: predict, evaluate, field-stats and change."""
    predict = commands.add_parser(
        "predict",
        help="map irrigation over a bbox: COG classes + probability, QGIS styles, "
        "irrigated regions as polygons (GeoPackage; fields that touch merge into one) "
        "and a JSON summary (with --config: `torchgeo predict ARGS`, checked as "
        "fit is)",
        description="Map irrigation over a bbox with a fine-tuned or distilled "
        "checkpoint. Beside --out PATH.tif (classes: 0 not irrigated, 1 irrigated, "
        "255 nodata) it writes PATH_probability.tif, the QGIS styles PATH.qml and "
        "PATH_probability.qml (QGIS loads them with the rasters), PATH.gpkg (the "
        "irrigated regions) and PATH.json (a summary), all on the imagery's own "
        "grid. E.g. torchgeo-simclr predict --checkpoint "
        "runs/segment_quickstart/checkpoints/last.ckpt --root data/sample --bbox "
        "-120.86 37.03 -120.70 37.15 --out maps/sample.tif",
    )
    predict.add_argument(
        "--checkpoint", required=True, help="fine-tuned or distilled .ckpt file"
    )
    predict.add_argument("--root", required=True, help="Sentinel-2 directory")
    predict.add_argument("--out", required=True, help="class map to write, PATH.tif")
    _add_bbox(predict)
    _add_dates(predict)
    predict.add_argument(
        "--patch-size",
        type=_at_least(1),
        help="window side, px (default: the training patch for classification, "
        "256 for segmentation)",
    )
    predict.add_argument(
        "--overlap",
        type=_at_least(0),
        help="px shared by neighbouring windows (default: half a window for "
        "classification, a quarter for segmentation)",
    )
    predict.add_argument(
        "--batch-size",
        type=_at_least(1),
        help="windows per batch (default: 8 x 256 x 256 px worth: 8 windows of 256 "
        "px, 227 of 48 px)",
    )
    predict.add_argument(
        "--device", default="auto", help="auto, cpu, cuda or mps (default: auto)"
    )
    predict.add_argument(
        "--threshold",
        type=float,
        help="probability above which a pixel is irrigated (default: the model's)",
    )
    predict.add_argument(
        "--min-area",
        type=_finite_number("an area of 0 ha or more"),
        default=0.5,
        help="smallest irrigated region kept as a polygon, ha (default: 0.5)",
    )
    predict.add_argument(
        "--num-workers", type=_at_least(0), default=0, help="processes reading imagery"
    )
    predict.add_argument(
        "--max-pixels",
        type=_at_least(1),
        default=MAX_PIXELS,
        help="largest map made, pixels: a larger one (e.g. a stray scene far from "
        f"the others under --root) is refused before any work (default: {MAX_PIXELS:,}"
        ", 100,000 km2 at 10 m)",
    )
    _add_cloud_mask(predict)
    predict.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the files of an earlier map (never other files)",
    )
    predict.add_argument(
        "--quicklook",
        action="store_true",
        help="also draw PATH_quicklook.png: natural colour beside the classes",
    )
    _add_progress(predict)
    predict.set_defaults(func=_predict)

    evaluate = commands.add_parser(
        "evaluate",
        help="score a class map against label polygons (DWR's crop mapping or "
        "your own): pixel F1/precision/recall/IoU and field-level accuracy "
        "(optionally as JSON, and the scored fields as a GeoPackage for QGIS)",
    )
    evaluate.add_argument("--map", required=True, help="class map (PATH.tif)")
    evaluate.add_argument(
        "--labels",
        required=True,
        help="label polygons to score against: any polygon file (GeoPackage, "
        "Shapefile, GeoJSON, GeoParquet, DWR's GDB zip, ...) or a folder of them, "
        "in any CRS; land outside every polygon is not scored. Codes are DWR "
        "crop classes by default: for your own, pass --class-column and "
        "--class-map, e.g. --class-column irrigated --class-map 1=1 0=0",
    )
    evaluate.add_argument(
        "--labels-layer",
        metavar="NAME",
        help="layer of --labels to read, for multi-layer files such as a QGIS "
        "project GeoPackage (default: the first layer)",
    )
    _add_class_column(evaluate)
    evaluate.add_argument(
        "--bbox",
        type=float,
        nargs=4,
        metavar=("XMIN", "YMIN", "XMAX", "YMAX"),
        help="score only pixels whose centre is inside this box (default: the "
        "whole map); lon/lat unless --bbox-crs",
    )
    evaluate.add_argument(
        "--bbox-crs",
        default="EPSG:4326",
        help="CRS of --bbox, e.g. EPSG:32610 for UTM zone 10N metres (default: "
        "lon/lat)",
    )
    _add_class_map(evaluate)
    evaluate.add_argument(
        "--fields",
        metavar="PATH.gpkg",
        help="also write the scored label fields to this GeoPackage, for QGIS: one "
        "polygon per field in the map's CRS with its crop_class (its "
        "--class-column code, e.g. P), its label and the map's majority vote "
        "(0/1), irr_px and not_irr_px (its pixels mapped irrigated and not), "
        "agreement (0-1), outcome (e.g. "
        "'irrigated, mapped not irrigated'), area_ha and scored_ha (the part "
        "on the map with data, which the vote rests on), filled by outcome",
    )
    evaluate.add_argument(
        "--scores",
        metavar="PATH.json",
        help="also write the scores to this JSON file: pixel f1, precision, "
        "recall, iou and accuracy with the tp/fp/fn/tn counts in pixels (_px) "
        "and hectares (_ha), field f1, accuracy and counts (_fields), the map "
        "and labels paths, --bbox and --bbox-crs, --class-map and the "
        "torchgeo_simclr version",
    )
    evaluate.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a GeoPackage of fields or a scores file an earlier evaluate "
        "wrote (never other files)",
    )
    _add_progress(evaluate)
    evaluate.set_defaults(func=_evaluate)

    stats = commands.add_parser(
        "field-stats",
        help="which of your fields are irrigated: a class map summed up per field "
        "(irrigated area and share, mean probability, status), as a GeoPackage "
        "styled for QGIS or a CSV table",
        description="Sum up a class map that predict wrote over your field "
        "polygons (parcels, DWR fields, fields drawn in QGIS; any vector file, any "
        "CRS). Every field keeps its attributes and its feature id in the file "
        "(src_fid) and gets status (irrigated, not "
        "irrigated, partly mapped, no data, too small, off map, no geometry), "
        "irr_share, mean_prob (from PATH_probability.tif beside the map), irr_ha "
        "and irr_ac, mapped_ha, area_ha and area_ac, mapped_shr, and what made the "
        "map (map, ckpt_id, threshold, acq_from, acq_to). A pixel counts for a "
        "field when its centre lies inside it. E.g. torchgeo-simclr field-stats "
        "--map maps/sample.tif "
        "--fields data/sample/crop_mapping.gpkg --out maps/sample_field_stats.gpkg",
    )
    stats.add_argument("--map", required=True, help="class map (PATH.tif)")
    stats.add_argument(
        "--fields",
        required=True,
        help="field polygons: a GeoPackage, Shapefile, GeoJSON, ... in any CRS",
    )
    stats.add_argument(
        "--layer",
        metavar="NAME",
        help="layer of --fields to read (default: the first)",
    )
    stats.add_argument(
        "--out",
        required=True,
        metavar="PATH.gpkg|PATH.csv",
        help="where to write the fields: .gpkg (their geometry and CRS, styled by "
        "status for QGIS) or .csv (a table with each field's lon and lat)",
    )
    stats.add_argument(
        "--summary",
        metavar="PATH.json",
        help="also write the counts by status and the irrigated hectares and acres "
        "as JSON, with the map's SHA-256 and what made it, created, run_seconds and "
        "the warnings shown",
    )
    stats.add_argument(
        "--min-mapped",
        type=_finite_number("a share of 0 to 1"),
        default=0.5,
        metavar="SHARE",
        help="share of a field's pixels that must have map data for it to be "
        "called irrigated or not; fewer is 'partly mapped' (default: 0.5)",
    )
    stats.add_argument(
        "--overwrite",
        action="store_true",
        help="replace files an earlier field-stats wrote (never other files)",
    )
    _add_progress(stats)
    stats.set_defaults(func=_field_stats)

    change = commands.add_parser(
        "change",
        help="where irrigation changed between two maps (e.g. two years): a styled "
        "class raster (stayed not irrigated, stayed irrigated, lost, gained) and "
        "the hectares and acres of each over the area both maps cover",
        description="Compare two class maps that predict wrote on the same grid "
        "(the same --bbox over imagery of the same tiles), pixel by pixel. Beside "
        "--out PATH.tif (0 stayed not irrigated, 1 stayed irrigated, 2 lost: "
        "irrigated before, not after, 3 gained: irrigated after, not before, 255 "
        "nodata in either map) it writes PATH.qml (the QGIS style) and PATH.json "
        "(hectares and acres of each class over the common coverage, the pixels "
        "with data in both maps, and the area with data in one map only). Where "
        "the extents differ, the pixels both cover are compared. E.g. "
        "torchgeo-simclr change --before maps/y2022.tif --after maps/y2023.tif "
        "--out maps/change_2022_2023.tif",
    )
    change.add_argument(
        "--before",
        required=True,
        metavar="PATH.tif",
        help="class map of the earlier year, as predict wrote it",
    )
    change.add_argument(
        "--after",
        required=True,
        metavar="PATH.tif",
        help="class map of the later year, as predict wrote it",
    )
    change.add_argument(
        "--out",
        required=True,
        metavar="PATH.tif",
        help="change map to write; PATH.qml and PATH.json go beside it",
    )
    change.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the files of an earlier change map (never other files)",
    )
    _add_progress(change)
    change.set_defaults(func=_change)


def _add_embedding_commands(commands: "argparse._SubParsersAction[Any]") -> None:
    """Add the ``embed``, ``search`` and ``embedding-map`` sub-commands."""
    embed = commands.add_parser(
        "embed",
        help="embed every patch of a region with a checkpoint's backbone into a "
        "GeoParquet index (footprint, lon/lat, date, embedding)",
    )
    embed.add_argument(
        "--checkpoint",
        required=True,
        help="SimCLR, fine-tuned or distilled .ckpt file",
    )
    embed.add_argument("--root", required=True, help="Sentinel-2 directory")
    embed.add_argument("--out", required=True, help="index to write, PATH.parquet")
    _add_bbox(embed)
    _add_dates(embed)
    embed.add_argument(
        "--patch-size",
        type=_at_least(1),
        help="patch side, px (default: the training patch)",
    )
    embed.add_argument(
        "--stride",
        type=_at_least(1),
        help="px between neighbouring patches, 1 to the patch size (default: the "
        "patch size)",
    )
    embed.add_argument(
        "--batch-size",
        type=_at_least(1),
        default=64,
        help="patches per batch (default: 64)",
    )
    embed.add_argument(
        "--device", default="auto", help="auto, cpu, cuda or mps (default: auto)"
    )
    embed.add_argument(
        "--num-workers", type=_at_least(0), default=0, help="processes reading imagery"
    )
    _add_cloud_mask(embed)
    embed.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an index an earlier embed wrote (never another file)",
    )
    _add_progress(embed)
    embed.set_defaults(func=_embed)

    search = commands.add_parser(
        "search",
        help="find the patches of an index most like a point, a polygon or another "
        "index; hits as GeoPackage/GeoJSON plus a contact sheet",
    )
    search.add_argument("--index", required=True, help="index made by embed")
    where = search.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--lonlat",
        type=float,
        nargs=2,
        metavar=("LON", "LAT"),
        help="query point: the indexed patch under it",
    )
    where.add_argument(
        "--query", help="query index (PATH.parquet): the mean of its patches"
    )
    where.add_argument(
        "--geojson",
        metavar="PATH",
        help="query polygons: the mean of the patches centred inside; a GeoJSON, "
        "GeoPackage, Shapefile or GeoParquet file in any CRS it names (a file that "
        "names none is lon/lat)",
    )
    search.add_argument(
        "--k", type=_at_least(1), default=20, help="hits to return (default: 20)"
    )
    search.add_argument(
        "--out", required=True, help="hits to write, PATH.gpkg or PATH.geojson"
    )
    search.add_argument("--sheet", help="contact sheet PNG (default: --out with .png)")
    search.add_argument(
        "--exclude",
        metavar="PATH",
        help="polygons of places already labelled or seen (e.g. an earlier "
        "search's hits file; formats and CRS as --geojson): patches they reach "
        "into are left out, and --k hits come from the rest",
    )
    search.add_argument(
        "--checkpoint", help="check that the index was made by this .ckpt"
    )
    search.add_argument(
        "--root",
        help="Sentinel-2 directory of the thumbnails (default: the index's)",
    )
    search.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the hits file and contact sheet of an earlier search "
        "(never other files)",
    )
    search.set_defaults(func=_search)

    projection = commands.add_parser(
        "embedding-map",
        help="2-D t-SNE map of an index's embeddings, coloured by labels, with "
        "optional thumbnails",
    )
    projection.add_argument("--index", required=True, help="index made by embed")
    projection.add_argument("--out", required=True, help="PNG to write")
    projection.add_argument(
        "--labels", help="DWR crop-mapping file colouring the points"
    )
    _add_class_column(projection)
    _add_class_map(projection)
    projection.add_argument(
        "--root", help="Sentinel-2 directory of the thumbnails (default: the index's)"
    )
    projection.add_argument(
        "--thumbnails",
        type=_at_least(0),
        default=0,
        help="patches drawn as thumbnails on the map (default: 0)",
    )
    projection.add_argument(
        "--max-points",
        type=_at_least(2),
        default=5000,
        help="patches projected, a random sample above this (default: 5000)",
    )
    projection.add_argument(
        "--perplexity",
        type=_finite_number("a finite number above 0 (e.g. 30)", strictly_above=True),
        default=30.0,
        help="t-SNE perplexity (default: 30)",
    )
    projection.add_argument("--seed", type=int, default=0, help="random seed")
    projection.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a PNG an earlier embedding-map drew (never another file)",
    )
    _add_progress(projection)
    projection.set_defaults(func=_embedding_map)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of the ``torchgeo-simclr`` command.

    Returns:
        The parser with one sub-command per job.
    """
    parser = OneLineErrors(
        prog="torchgeo-simclr",
        description="SimCLRv2 irrigation mapping from Sentinel-2 (a TorchGeo plugin).",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"torchgeo-simclr {__version__}",
        help="print the version, e.g. for a job's log, and exit",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    sample = commands.add_parser(
        "sample-data", help="write the embedded Central Valley sample scene"
    )
    sample.add_argument("--root", required=True, help="output directory")
    sample.add_argument(
        "--size", type=_at_least(1), default=2048, help="scene side, pixels"
    )
    sample.add_argument("--seed", type=int, default=0, help="random seed")
    sample.add_argument(
        "--tiles", type=_at_least(1), default=2, help="number of adjacent tiles"
    )
    sample.add_argument(
        "--overwrite", action="store_true", help="replace existing files"
    )
    sample.set_defaults(func=_sample_data)

    # Listed for the help text only: main() hands `fit ...`, `validate ...`
    # and `test ...` to LightningCLI.
    commands.add_parser(
        "fit",
        help="`torchgeo fit ARGS` that reports bad input in one line and prints "
        "the checkpoint path",
    )
    for name in ("validate", "test"):
        commands.add_parser(
            name,
            help=f"`torchgeo {name} ARGS` that refuses a --ckpt_path of another "
            "task than the config's and reports bad input in one line",
        )

    demo = commands.add_parser(
        "demo", help="sample scene + quickstart pretraining + kNN probe, on a CPU"
    )
    demo.add_argument("--root", default="data/sample", help="sample scene directory")
    demo.add_argument(
        "--no-probe", dest="probe", action="store_false", help="skip the kNN probe"
    )
    demo.add_argument(
        "--retrain",
        action="store_true",
        help="pretrain again even when an earlier demo's checkpoint is finished",
    )
    demo.set_defaults(func=_demo)

    probe = commands.add_parser(
        "probe",
        help="kNN probe of a pretrained encoder against random weights",
    )
    probe.add_argument("--checkpoint", required=True, help="SimCLRv2 .ckpt file")
    probe.add_argument("--root", required=True, help="imagery directory")
    probe.add_argument(
        "--labels",
        default="crop_mapping.gpkg",
        help="DWR label file (relative to --root)",
    )
    _add_class_column(probe)
    _add_class_map(probe)
    _add_dates(probe)
    probe.add_argument(
        "--block-size", type=_at_least(1), default=256, help="split block side, px"
    )
    probe.add_argument("--seed", type=int, default=0, help="split seed")
    probe.add_argument("-k", type=_at_least(1), default=20, help="neighbours that vote")
    probe.set_defaults(func=_probe)

    experiment = commands.add_parser(
        "experiment",
        help="label-efficiency experiment: fine-tuned SimCLRv2 vs supervised vs "
        "distilled, over label fractions and seeds (resumable)",
    )
    experiment.add_argument(
        "--root",
        help="imagery directory (default: data/sample; data/bigearthnet, holding "
        "BigEarthNet-S2 v1.0, with --preset bigearthnet)",
    )
    experiment.add_argument(
        "--out", default="runs/experiment", help="output directory (resumes there)"
    )
    experiment.add_argument(
        "--fractions",
        type=float,
        nargs="+",
        default=[0.01, 0.1, 1.0],
        help="label fractions",
    )
    experiment.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds"
    )
    experiment.add_argument(
        "--checkpoint",
        help="SimCLRv2 checkpoint to reuse (default: pretrain once in OUT/runs)",
    )
    experiment.add_argument(
        "--preset",
        choices=["quickstart", "cal", "bigearthnet"],
        default="quickstart",
        help="config set: conf/<stage>_<preset>.yaml (cal = full scale, "
        "bigearthnet = BigEarthNet-S2 with the study's splits)",
    )
    experiment.add_argument(
        "--config-dir", default=str(CONF_DIR), help="directory of the configs"
    )
    for stage in ("pretrain", "finetune", "supervised", "distill"):
        experiment.add_argument(
            f"--{stage}-config", help=f"config of the {stage} stage (overrides preset)"
        )
    experiment.add_argument(
        "stage_args",
        nargs="*",
        help="extra LightningCLI arguments for every stage, after `--`, e.g. "
        "-- --trainer.accelerator cpu",
    )
    experiment.set_defaults(func=_experiment)
    _add_map_commands(commands)
    _add_embedding_commands(commands)
    _add_download_command(commands)
    for command in commands.choices.values():
        command.formatter_class = DefaultsShown
    return parser
