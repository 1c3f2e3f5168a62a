"""The imagery commands: ``sample-data`` and ``download``."""

import argparse
from pathlib import Path


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
    print(
        f"Wrote {len(result.written)} scene(s), kept {len(result.kept)} already "
        f"downloaded, under {Path(args.out) / 'sentinel2'}; manifest: {result.manifest}"
    )
