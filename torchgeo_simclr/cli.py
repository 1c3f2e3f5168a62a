"""The ``torchgeo-simclr`` command: sample data, training, maps, embeddings."""

import argparse
import math
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

if TYPE_CHECKING:
    from lightning.pytorch.cli import LightningCLI

    from .inference import MapResult

#: This package's directory: its warnings are printed as one line.
PACKAGE = Path(__file__).resolve().parent

#: Repository directory holding the YAML configs (present in a source checkout).
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"

#: Hits `search` prints; all of them are in its output file.
PRINTED_HITS = 50


class OneLineErrors(argparse.ArgumentParser):
    """An argument parser that reports bad arguments in one line.

    Like every other error of this command: the usage is one ``--help`` away.
    """

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
        value = int(text)
        if value < minimum:
            msg = f"must be at least {minimum}, got {value}"
            raise argparse.ArgumentTypeError(msg)
        return value

    return integer


def _at_least_zero(quantity: str) -> Callable[[str], float]:
    """An argparse type: a finite number of 0 or more.

    Args:
        quantity: what it measures, for the message, e.g. ``"a distance of 0
            metres"``.

    Returns:
        The converter, which argparse reports errors of in one line.
    """

    def number(text: str) -> float:
        value = float(text)
        if not 0 <= value < math.inf:
            msg = f"must be {quantity} or more, got {text}"
            raise argparse.ArgumentTypeError(msg)
        return value

    return number


def _sample_data(args: argparse.Namespace) -> None:
    from .sample import make_sample_scene

    scene = make_sample_scene(
        Path(args.root),
        size=args.size,
        seed=args.seed,
        tiles=args.tiles,
        overwrite=args.overwrite,
    )
    tiles = len(scene.image_paths)
    print(f"Wrote {tiles} Sentinel-2 tiles under {scene.root / 'sentinel2'}")
    print(f"Wrote DWR-style crop-mapping labels to {scene.labels_path}")


def _download(args: argparse.Namespace) -> None:
    from .download import DownloadRequest, download

    request = DownloadRequest.parse(args.bbox, args.start, args.end, args.max_cloud)
    result = download(
        request,
        Path(args.out),
        stac_url=args.stac_url,
        collection=args.collection,
        per_tile=args.per_tile,
        mask_clouds=args.mask_clouds,
        cloud_buffer=args.cloud_buffer,
        retries=args.retries,
        progress=args.progress,
    )
    print(
        f"Wrote {len(result.written)} scene(s), kept {len(result.kept)} already "
        f"downloaded, under {Path(args.out) / 'sentinel2'}; manifest: {result.manifest}"
    )


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
    parser.add_argument(
        "--class-column",
        default="CLASS2",
        help="attribute of the label file with the crop class code (default: CLASS2)",
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
        type=_at_least_zero("a distance of 0 metres"),
        default=0.0,
        metavar="METRES",
        help=(
            "grow masked clouds and their shadows this much further, for edges "
            "and haze the mask misses (default: 0; they already grow as far as "
            "the coarsest band carries their light: 70 m from a 20 m SCL with "
            "the 60 m bands)"
        ),
    )


def _add_progress(parser: argparse.ArgumentParser) -> None:
    """Add ``--no-progress`` (sets ``progress`` to False)."""
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress bar"
    )


def _add_download_command(commands: "argparse._SubParsersAction[Any]") -> None:
    """Add the ``download`` sub-command."""
    from .download import DEFAULT_COLLECTION, DEFAULT_STAC_URL

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


def run_cli(arguments: Sequence[str]) -> "LightningCLI":
    """Run ``torchgeo fit ARGUMENTS`` in this process.

    Args:
        arguments: the arguments after ``torchgeo fit``, e.g.
            ``["--config", "conf/simclr_quickstart.yaml"]``.

    Returns:
        The finished CLI, with its ``trainer``, ``model`` and ``datamodule``.
    """
    from torchgeo.datamodules import BaseDataModule
    from torchgeo.tasks import BaseTask

    from .interrupts import keyboard_interrupts
    from .lightning_cli import PluginCLI

    # LightningCLI reads sys.argv, which must be this stage's command line:
    # DDP starts every other rank by running sys.argv again.
    argv, sys.argv = sys.argv, [sys.argv[0], "fit", *arguments]
    try:
        with keyboard_interrupts():
            return PluginCLI(
                model_class=BaseTask,
                datamodule_class=BaseDataModule,
                seed_everything_default=0,
                subclass_mode_model=True,
                subclass_mode_data=True,
                save_config_kwargs={"overwrite": True},
            )
    finally:
        sys.argv = argv


def fit(arguments: Sequence[str]) -> Path | None:
    """Run ``torchgeo fit`` in this process and return the last checkpoint.

    Args:
        arguments: the arguments after ``torchgeo fit``, e.g.
            ``["--config", "conf/simclr_quickstart.yaml"]``.

    Returns:
        Path of the checkpoint written last, None if the run wrote none
        (``fast_dev_run``, or no checkpoint callback).
    """
    cli = run_cli(arguments)
    callback = cli.trainer.checkpoint_callback
    path = getattr(callback, "last_model_path", "") or getattr(
        callback, "best_model_path", ""
    )
    return Path(path) if path else None


def _fit(args: argparse.Namespace) -> None:
    checkpoint = fit(args.arguments)
    if checkpoint is None:
        print("\nNo checkpoint written (fast_dev_run or no ModelCheckpoint).")
    else:
        print(f"\nCheckpoint: {checkpoint.resolve()}")
        earlier = checkpoint.with_name("last.ckpt")
        if checkpoint.name.startswith("last-v") and earlier.exists():
            # Lightning never overwrites a checkpoint: a rerun writes last-vN.
            print(
                f"({earlier.resolve()} holds an earlier run in the same folder; "
                "give the next stage the path above.)"
            )


def _probe(args: argparse.Namespace) -> None:
    import torch

    from .models import create_backbone
    from .models.checkpoint import load_encoder
    from .probe import knn_probe, probe_datamodule

    encoder = load_encoder(args.checkpoint)
    if encoder.data is None:
        msg = f"Checkpoint {args.checkpoint!r} records no band list or statistics."
        raise SystemExit(msg)
    datamodule = probe_datamodule(
        encoder.data,
        args.root,
        args.labels,
        args.block_size,
        args.seed,
        class_column=args.class_column,
    )
    torch.manual_seed(args.seed)
    random = create_backbone(
        encoder.model,
        in_channels=len(encoder.data.bands),
        options=encoder.backbone_kwargs,
    )
    rows = [
        ("pretrained (SimCLRv2)", knn_probe(encoder.backbone, datamodule, k=args.k)),
        ("random weights", knn_probe(random, datamodule, k=args.k)),
    ]
    patch = encoder.data.patch_size
    print(f"kNN probe (k={args.k}), {encoder.model}, patches of {patch} px:")
    header = ("accuracy", 10), ("bal. acc.", 11), ("F1", 8), ("n ref", 8), ("n test", 8)
    print(f"{'encoder':<24}" + "".join(f"{name:>{width}}" for name, width in header))
    for name, r in rows:
        print(
            f"{name:<24}{r.accuracy:>10.3f}{r.balanced_accuracy:>11.3f}{r.f1:>8.3f}"
            f"{r.n_reference:>8d}{r.n_test:>8d}"
        )


def _demo(args: argparse.Namespace) -> None:
    from .sample import make_sample_scene

    root = Path(args.root)
    if not (root / "crop_mapping.gpkg").exists():
        print(f"Making the embedded sample scene in {root} ...")
        make_sample_scene(root)
    config = CONF_DIR / "simclr_quickstart.yaml"
    if not config.exists():
        msg = (
            f"the demo needs {config}, which only a source checkout has; clone the "
            "repository and install it with `pip install -e .` to run the demo."
        )
        raise FileNotFoundError(msg)
    checkpoint = fit(["--config", str(config), "--data.init_args.root", str(root)])
    if checkpoint is None:
        msg = f"{config} wrote no checkpoint; it needs a ModelCheckpoint callback."
        raise RuntimeError(msg)
    print(f"\nPretrained checkpoint: {checkpoint.resolve()}")
    if args.probe:
        # The probe command's own defaults, so the two never drift apart.
        probe = build_parser().parse_args(
            ["probe", "--checkpoint", str(checkpoint), "--root", str(root)]
        )
        probe.func(probe)


def _experiment(args: argparse.Namespace) -> None:
    from .experiment import ExperimentPlan, markdown_table, run_experiment
    from .outputs import not_a_file

    conf = Path(args.config_dir)
    stages = {
        name: Path(
            getattr(args, f"{name}_config") or conf / f"{stem}_{args.preset}.yaml"
        )
        for name, stem in (
            ("pretrain", "simclr"),
            ("finetune", "finetune"),
            ("supervised", "supervised"),
            ("distill", "distill"),
        )
    }
    for name, path in stages.items():
        if not path.is_file():
            missing = not_a_file(path)
            msg = (
                f"the {name} config {str(path)!r} {missing}; pass "
                f"--{name}-config or --config-dir (default: the repository's conf/)."
            )
            raise FileNotFoundError(msg)
    plan = ExperimentPlan(
        root=Path(args.root),
        out=Path(args.out),
        fractions=args.fractions,
        seeds=args.seeds,
        pretrain_config=stages["pretrain"],
        finetune_config=stages["finetune"],
        supervised_config=stages["supervised"],
        distill_config=stages["distill"],
        checkpoint=None if args.checkpoint is None else Path(args.checkpoint),
        extra_args=args.stage_args,
    )
    _quiet_lightning()
    try:
        rows = run_experiment(plan)
    except KeyboardInterrupt:
        results = plan.out / "results.csv"
        kept = (
            f"Finished runs are kept in {results}"
            if results.exists()
            else "No run had finished (a finished pretraining is kept)"
        )
        print(
            f"\nInterrupted. {kept}; run the same command again to resume.",
            file=sys.stderr,
        )
        raise SystemExit(130) from None
    print(markdown_table(rows))
    print(f"\nResults: {plan.out / 'results.csv'}")
    print(f"Plot:    {plan.out / 'f1_vs_fraction.png'}")


def _quiet_lightning() -> None:
    """Keep Lightning's start-up notes and known harmless warnings off the terminal.

    The GPU/TPU banner, tips and seeding notes say nothing about a map or an
    experiment; neither do Lightning's own deprecation warning from its pytree
    helper and, in distillation, the note that the frozen teacher is in eval mode.
    """
    import logging

    # Lightning sets its loggers to INFO when first imported: import it first.
    import lightning.pytorch  # noqa: F401

    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings(
        "ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated"
    )
    warnings.filterwarnings(
        "ignore", message=r"Found \d+ module\(s\) in eval mode at the start"
    )


def _hectares(value: float) -> str:
    """Hectares to one decimal, or two significant digits below 1 ha."""
    return f"{value:,.1f} ha" if value >= 1 or value == 0 else f"{value:.2g} ha"


def _predict(args: argparse.Namespace) -> None:
    from .inference import MapFiles, predict_map
    from .inference.quicklook import quicklook
    from .interrupts import Interrupted

    png = MapFiles.beside(args.out).quicklook
    if args.quicklook and png.exists() and not args.overwrite:
        msg = f"{str(png)!r} already exists; pass --overwrite to replace it."
        raise FileExistsError(msg)
    _quiet_lightning()
    result = predict_map(
        checkpoint=args.checkpoint,
        root=args.root,
        out=args.out,
        bbox=args.bbox,
        bbox_crs=args.bbox_crs,
        patch_size=args.patch_size,
        overlap=args.overlap,
        batch_size=args.batch_size,
        device=args.device,
        threshold=args.threshold,
        min_area_ha=args.min_area,
        num_workers=args.num_workers,
        mask_clouds=args.mask_clouds,
        cloud_buffer=args.cloud_buffer,
        overwrite=args.overwrite,
        progress=args.progress,
    )
    try:
        _report_map(args, result, png, quicklook)
    except KeyboardInterrupt:
        undrawn = (
            "; the quick look was not (run the same command with --overwrite to "
            "draw it)"
            if args.quicklook
            else ""
        )
        msg = (
            f"The map was written before it ({result.files.classes} and the files "
            f"beside it){undrawn}."
        )
        raise Interrupted(msg) from None


def _report_map(
    args: argparse.Namespace,
    result: "MapResult",
    png: Path,
    quicklook: Callable[..., Path],
) -> None:
    """Print a finished map's summary and files; draw or drop its quick look."""
    # The quick look of the map just replaced would no longer match it.
    stale = args.overwrite and png.exists()
    if stale:
        png.unlink()
    summary = result.summary
    regions = summary["irrigated_regions"]
    print(
        f"Irrigated: {_hectares(summary['irrigated_ha'])} of "
        f"{_hectares(summary['valid_ha'])} with data "
        f"({100 * summary['irrigated_fraction']:.1f}%), {regions} "
        f"region{'' if regions == 1 else 's'} of at least {args.min_area:g} ha; "
        f"{summary['width']} x {summary['height']} px of {summary['pixel_size']:g} m "
        f"in {summary['crs']}, {summary['run_seconds']:.1f} s."
    )
    if masks := summary["cloud_masks"]:
        buffer = summary["cloud_buffer_m"]
        grown = f", clouds grown by {buffer:g} m more" if buffer else ""
        print(f"Cloud masks applied: {len(masks)} file(s), e.g. {masks[0]}{grown}")
    paths = result.files.all()
    if args.quicklook:
        paths.append(
            quicklook(
                args.out,
                png,
                root=args.root,
                overwrite=True,
                mask_clouds=args.mask_clouds,
                cloud_buffer=args.cloud_buffer,
            )
        )
    for path in paths:
        print(f"  {path}")
    if stale and not args.quicklook:
        print(
            f"Removed {png}, the quick look of the map replaced (pass --quicklook "
            "to draw this map's)."
        )


def _evaluate(args: argparse.Namespace) -> None:
    from .evaluate import evaluate_map

    result = evaluate_map(
        args.map,
        args.labels,
        class_column=args.class_column,
        class_map=dict(args.class_map),
        bbox=args.bbox,
        progress=args.progress,
    )
    print(result.table())


def _add_map_commands(commands: "argparse._SubParsersAction[Any]") -> None:
    """Add the ``predict`` and ``evaluate`` sub-commands."""
    predict = commands.add_parser(
        "predict",
        help="map irrigation over a bbox: COG classes + probability, QGIS styles, "
        "irrigated regions as polygons (GeoPackage; fields that touch merge into one) "
        "and a JSON summary",
    )
    predict.add_argument(
        "--checkpoint", required=True, help="fine-tuned or distilled .ckpt file"
    )
    predict.add_argument("--root", required=True, help="Sentinel-2 directory")
    predict.add_argument("--out", required=True, help="class map to write, PATH.tif")
    _add_bbox(predict)
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
        type=_at_least_zero("an area of 0 ha"),
        default=0.5,
        help="smallest irrigated region kept as a polygon, ha (default: 0.5)",
    )
    predict.add_argument(
        "--num-workers", type=_at_least(0), default=0, help="processes reading imagery"
    )
    _add_cloud_mask(predict)
    predict.add_argument(
        "--overwrite", action="store_true", help="replace existing output files"
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
        help="score a class map against DWR crop-mapping polygons: pixel "
        "F1/precision/recall/IoU and field-level accuracy",
    )
    evaluate.add_argument("--map", required=True, help="class map (PATH.tif)")
    evaluate.add_argument(
        "--labels", required=True, help="DWR crop-mapping file (GeoPackage, ...)"
    )
    _add_class_column(evaluate)
    evaluate.add_argument(
        "--bbox",
        type=float,
        nargs=4,
        metavar=("MIN_LON", "MIN_LAT", "MAX_LON", "MAX_LAT"),
        help="score only inside this lon/lat box",
    )
    evaluate.add_argument(
        "--class-map",
        nargs="+",
        type=_class_code,
        default=[],
        metavar="CODE=VALUE",
        help="class codes to count as irrigated (1), not irrigated (0) or ignored "
        "(255), over the DWR defaults, e.g. --class-map I=1 X=0",
    )
    _add_progress(evaluate)
    evaluate.set_defaults(func=_evaluate)


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


def _embed(args: argparse.Namespace) -> None:
    from .embeddings import embed_region

    result = embed_region(
        checkpoint=args.checkpoint,
        root=args.root,
        out=args.out,
        bbox=args.bbox,
        bbox_crs=args.bbox_crs,
        patch_size=args.patch_size,
        stride=args.stride,
        batch_size=args.batch_size,
        device=args.device,
        num_workers=args.num_workers,
        mask_clouds=args.mask_clouds,
        cloud_buffer=args.cloud_buffer,
        overwrite=args.overwrite,
        progress=args.progress,
    )
    print(
        f"Embedded {result.rows:,} patch{'es' if result.rows != 1 else ''} "
        f"({result.skipped:,} skipped: more than "
        f"half nodata) in {result.seconds:.1f} s "
        f"({(result.rows + result.skipped) / result.seconds:,.0f} patches/s): "
        f"{result.path}"
    )


def _search(args: argparse.Namespace) -> None:
    from .embeddings import search

    result = search(
        index=args.index,
        out=args.out,
        lonlat=args.lonlat,
        query=args.query,
        polygon=args.geojson,
        k=args.k,
        sheet=args.sheet,
        checkpoint=args.checkpoint,
        root=args.root,
        overwrite=args.overwrite,
    )
    print(f"{'rank':>4} {'similarity':>10} {'lon':>10} {'lat':>9} {'date':>10}")
    for hit in result.hits.head(PRINTED_HITS).itertuples():
        print(
            f"{hit.rank:>4} {hit.similarity:>10.4f} {hit.lon:>10.5f} "
            f"{hit.lat:>9.5f} {hit.date or 'unknown'!s:>10}"
        )
    if len(result.hits) > PRINTED_HITS:
        print(f"... and {len(result.hits) - PRINTED_HITS:,} more in {result.out}")
    print(f"Hits: {result.out}\nContact sheet: {result.sheet}")


def _embedding_map(args: argparse.Namespace) -> None:
    from .embeddings.projection import embedding_map

    path = embedding_map(
        index=Path(args.index),
        out=Path(args.out),
        labels=None if args.labels is None else Path(args.labels),
        class_column=args.class_column,
        root=None if args.root is None else Path(args.root),
        thumbnails=args.thumbnails,
        max_points=args.max_points,
        perplexity=args.perplexity,
        seed=args.seed,
        overwrite=args.overwrite,
        progress=args.progress,
    )
    print(f"Embedding map: {path}")


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
        "--overwrite", action="store_true", help="replace an existing index"
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
        help="query polygons (GeoJSON, lon/lat): the mean of the patches inside",
    )
    search.add_argument(
        "--k", type=_at_least(1), default=20, help="hits to return (default: 20)"
    )
    search.add_argument(
        "--out", required=True, help="hits to write, PATH.gpkg or PATH.geojson"
    )
    search.add_argument("--sheet", help="contact sheet PNG (default: --out with .png)")
    search.add_argument(
        "--checkpoint", help="check that the index was made by this .ckpt"
    )
    search.add_argument(
        "--root",
        help="Sentinel-2 directory of the thumbnails (default: the index's)",
    )
    search.add_argument(
        "--overwrite", action="store_true", help="replace existing outputs"
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
        "--perplexity", type=float, default=30.0, help="t-SNE perplexity (default: 30)"
    )
    projection.add_argument("--seed", type=int, default=0, help="random seed")
    projection.add_argument(
        "--overwrite", action="store_true", help="replace an existing PNG"
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

    # Listed for the help text only: main() hands `fit ...` to LightningCLI.
    commands.add_parser(
        "fit",
        help="`torchgeo fit ARGS` that reports bad input in one line and prints "
        "the checkpoint path",
    )

    demo = commands.add_parser(
        "demo", help="sample scene + quickstart pretraining + kNN probe, on a CPU"
    )
    demo.add_argument("--root", default="data/sample", help="sample scene directory")
    demo.add_argument(
        "--no-probe", dest="probe", action="store_false", help="skip the kNN probe"
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
    experiment.add_argument("--root", default="data/sample", help="imagery directory")
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


#: What an interrupted command leaves, by command.
INTERRUPTED: dict[str, str] = {
    **dict.fromkeys(
        ("predict", "embed", "search", "embedding-map"),
        " Outputs are written under temporary names and renamed only once "
        "complete, so no file was written or changed.",
    ),
    # Once training runs, the CLI names the checkpoint that resumes it.
    "fit": " It stopped before training began, so nothing was saved.",
}


def _show_warning(
    prefix: str,
    default: Callable[..., None],
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """Print this package's warnings as one line, others as Python does."""
    if Path(filename).resolve().is_relative_to(PACKAGE):
        print(f"{prefix}: warning: {message}", file=sys.stderr)
    else:
        default(message, category, filename, lineno, file, line)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the ``torchgeo-simclr`` command.

    Args:
        argv: arguments (default: ``sys.argv[1:]``).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["fit"]:
        # LightningCLI would print its own usage (with subcommands this tool
        # does not have) and "required: fit.data, fit.model".
        print(
            "torchgeo-simclr fit: error: pass a config, e.g. torchgeo-simclr fit "
            "--config conf/simclr_quickstart.yaml (the README names one per stage; "
            "torchgeo-simclr fit --help lists every option).",
            file=sys.stderr,
        )
        raise SystemExit(2)
    if argv[:1] == ["fit"]:
        # Everything after `fit`, --help included, goes to LightningCLI as is.
        args = argparse.Namespace(command="fit", func=_fit, arguments=argv[1:])
    else:
        args = build_parser().parse_args(argv)
    prefix = f"torchgeo-simclr {args.command}"
    try:
        with warnings.catch_warnings():
            warnings.showwarning = partial(_show_warning, prefix, warnings.showwarning)
            args.func(args)
    except (
        FileNotFoundError,
        FileExistsError,
        NotADirectoryError,
        IsADirectoryError,
        PermissionError,
        ConnectionError,
        ValueError,
    ) as error:
        print(f"{prefix}: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except Exception as error:
        # Lightning's refusal of trainer settings, e.g. "No supported gpu
        # backend found!" for --trainer.accelerator gpu on a CPU-only machine.
        if type(error).__name__ != "MisconfigurationException":
            raise
        import torch

        hint = ""
        if re.search(r"gpu|cuda|accelerator|device", str(error), re.IGNORECASE):
            hint = (
                f" (torch sees {torch.cuda.device_count()} GPU(s); check "
                "--trainer.accelerator and --trainer.devices, or use auto)"
            )
        print(f"{prefix}: error: {error}{hint}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt as error:
        # Interrupted says what was written; other interrupts, the usual.
        kept = getattr(error, "kept", None)
        note = f" {kept}" if kept else INTERRUPTED.get(args.command, "")
        print(f"\n{prefix}: interrupted.{note}", file=sys.stderr)
        raise SystemExit(130) from None
