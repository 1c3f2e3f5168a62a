"""The imagery commands: ``sample-data`` and ``download``."""

import argparse
from pathlib import Path

#: Days of earlier downloads that ``download`` names; more are counted.
DAYS_NAMED = 5


def _sample_data(args: argparse.Namespace) -> None:
    """Write the embedded sample scene and say where.

    Args:
        args: the parsed ``sample-data`` command line.
    """
    from ..sample import make_sample_scene

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
    """Download the scenes of a bbox and say what was written and kept.

    Args:
        args: the parsed ``download`` command line.
    """
    from ..download import DownloadRequest, download

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
    folder = Path(args.out) / "sentinel2"
    print(
        f"Wrote {len(result.written)} scene(s), kept {len(result.kept)} already "
        f"downloaded, under {folder}; manifest: {result.manifest}"
    )
    if others := result.other_dates:
        days = sorted({path.name.split("_")[2][:8] for path in others})
        named = ", ".join(f"{d[:4]}-{d[4:6]}-{d[6:]}" for d in days[:DAYS_NAMED])
        more = f" and {len(days) - DAYS_NAMED} more" if len(days) > DAYS_NAMED else ""
        first, last = request.start, request.end
        print(
            f"Kept {len(others)} scene(s) of other dates ({named}{more}) in "
            f"{folder} from earlier downloads: where they overlap the new ones, "
            "the newest with data wins each pixel and older scenes fill nodata "
            f"and masked clouds; pass --start {first} --end {last} to predict, "
            "embed or probe (--data.init_args.start/end to fit) to read only "
            "this download's dates."
        )
