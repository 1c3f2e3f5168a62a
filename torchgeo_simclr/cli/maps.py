"""The map commands: ``predict``, ``evaluate``, ``field-stats`` and ``change``."""

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..inference import MapResult


def _area(value: float, unit: str = "ha") -> str:
    """An area to one decimal, or two significant digits below 1."""
    return f"{value:,.1f} {unit}" if value >= 1 or value == 0 else f"{value:.2g} {unit}"


def _predict(args: argparse.Namespace) -> None:
    """Map irrigation over a region; report the map and its files.

    Args:
        args: the parsed ``predict`` command line.

    Raises:
        FileExistsError: if ``--quicklook`` would replace a quick look
            without ``--overwrite``, or a PNG that is no quick look (see
            :meth:`~torchgeo_simclr.inference.MapFiles.check_quicklook`).
        Interrupted: on Ctrl-C after the map was written, naming it.
    """
    from ..days import parse_days
    from ..inference import MapFiles, predict_map
    from ..inference.quicklook import quicklook
    from ..interrupts import Interrupted

    args.start, args.end = parse_days(args.start, args.end)
    files = MapFiles.beside(args.out)
    png = files.quicklook
    if args.quicklook or args.overwrite:  # draws it, or removes the old one
        files.check_quicklook(args.overwrite)
    # Imported after the refusal above: it loads the tasks and LightningCLI.
    from ..lightning_cli import quiet_lightning

    quiet_lightning()
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
        start=args.start,
        end=args.end,
        max_pixels=args.max_pixels,
    )
    try:
        _report_map(args, result, png, quicklook)
    except KeyboardInterrupt as interrupt:
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
        raise Interrupted(msg, interrupt) from None


def _report_map(
    args: argparse.Namespace,
    result: "MapResult",
    png: Path,
    quicklook: Callable[..., Path],
) -> None:
    """Print a finished map's summary and files; draw or drop its quick look."""
    from ..constants import UNKNOWN_DATE
    from ..days import dates_note

    # The quick look of the map just replaced would no longer match it.
    stale = args.overwrite and png.exists()
    if stale:
        png.unlink()
    summary = result.summary
    regions = summary["irrigated_regions"]
    dates = summary["imagery_dates"]
    # One date is named too: a log of two years' runs tells them apart.
    one = "an unknown date" if dates == [UNKNOWN_DATE] else dates[0] if dates else ""
    note = dates_note(dates) or (f"imagery of {one}" if one else "")
    print(
        f"Irrigated: {_area(summary['irrigated_ha'])} "
        f"({_area(summary['irrigated_acres'], 'acres')}) of "
        f"{_area(summary['valid_ha'])} with data "
        f"({100 * summary['irrigated_fraction']:.1f}%), {regions} "
        f"region{'' if regions == 1 else 's'} of at least {args.min_area:g} ha; "
        f"{summary['width']} x {summary['height']} px of {summary['pixel_size']:g} m "
        f"in {summary['crs']}, {summary['run_seconds']:.1f} s"
        f"{'; ' if note else ''}{note}."
    )
    model = summary["model"]
    scores = model.get("val_scores") or {}
    if scores.get("val_f1") is not None:
        unit = "pixels" if model["problem"] == "segmentation" else "patches"
        print(
            f"Model: val F1 {scores['val_f1']:.3f} on "
            f"{int(scores['val_labelled']):,} labelled {unit} of its validation "
            f"blocks (epoch {scores['epoch']})."
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
                start=args.start,
                end=args.end,
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
    """Score a class map against label polygons and print the scores.

    With ``--fields``, the scored fields are also written to a GeoPackage,
    and with ``--scores`` the scores to a JSON file; their paths are printed
    after the scores.

    Args:
        args: the parsed ``evaluate`` command line.
    """
    from ..evaluate import FIELDS_LAYER, evaluate_map

    result = evaluate_map(
        args.map,
        args.labels,
        class_column=args.class_column,
        class_map=dict(args.class_map),
        bbox=args.bbox,
        bbox_crs=args.bbox_crs,
        progress=args.progress,
        fields=args.fields,
        scores=args.scores,
        overwrite=args.overwrite,
        labels_layer=args.labels_layer,
    )
    print(result.table())
    if args.fields is not None:
        count = result.n_fields
        print(
            f"Fields: {args.fields} (layer {FIELDS_LAYER!r}, {count:,} field"
            f"{'' if count == 1 else 's'}, styled by outcome for QGIS)"
        )
    if args.scores is not None:
        print(f"Scores: {args.scores} (JSON)")


def _field_stats(args: argparse.Namespace) -> None:
    """Sum up a class map per field; print the counts and the file written.

    Args:
        args: the parsed ``field-stats`` command line.
    """
    from ..field_stats import FIELD_STATS_LAYER, field_stats

    result = field_stats(
        args.map,
        args.fields,
        args.out,
        layer=args.layer,
        min_mapped=args.min_mapped,
        overwrite=args.overwrite,
        progress=args.progress,
        summary=args.summary,
    )
    print(result.summary())
    written = (
        f"layer {FIELD_STATS_LAYER!r}, styled by status for QGIS"
        if result.out.suffix.lower() == ".gpkg"
        else "CSV, one row per field"
    )
    print(f"Wrote {result.out} ({written})")
    if args.summary is not None:
        print(f"Wrote {args.summary} (the counts and totals as JSON)")


def _change(args: argparse.Namespace) -> None:
    """Compare two class maps; print the change in one paragraph and the files.

    ``PATH.qml`` and ``PATH.json`` beside ``--out`` are held for this run
    (see :func:`~torchgeo_simclr.outputs.exclusive_output`), so a second run
    writing the same change map at once is refused before any work.

    Args:
        args: the parsed ``change`` command line.
    """
    from contextlib import ExitStack

    from ..change import ChangeFiles, change_map
    from ..outputs import exclusive_output

    files = ChangeFiles.beside(args.out)
    with ExitStack() as stack:
        for path in (files.style, files.record):
            stack.enter_context(exclusive_output(path))
        result = change_map(
            args.before,
            args.after,
            args.out,
            overwrite=args.overwrite,
            progress=args.progress,
        )
    print(result.summary())
    print(f"Wrote {files.classes} (classes, styled by {files.style.name} for QGIS)")
    print(f"Wrote {files.record} (hectares and acres per class, as JSON)")
