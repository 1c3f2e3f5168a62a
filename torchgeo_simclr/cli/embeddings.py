"""The embedding commands: ``embed``, ``search`` and ``embedding-map``."""

import argparse
from pathlib import Path

#: Hits `search` prints; all of them are in its output file.
PRINTED_HITS = 50


def _embed(args: argparse.Namespace) -> None:
    """Embed every patch of a region into an index and report the rate.

    Args:
        args: the parsed ``embed`` command line.
    """
    from ..days import dates_note, parse_days
    from ..embeddings import embed_region

    start, end = parse_days(args.start, args.end)
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
        start=start,
        end=end,
    )
    note = dates_note(result.imagery_dates)
    print(
        f"Embedded {result.rows:,} patch{'es' if result.rows != 1 else ''} "
        f"({result.skipped:,} skipped: more than "
        f"half nodata) in {result.seconds:.1f} s "
        f"({(result.rows + result.skipped) / result.seconds:,.0f} patches/s): "
        f"{result.path}{'; ' if note else ''}{note}"
    )


def _search(args: argparse.Namespace) -> None:
    """Search an index and print the best hits and the files written.

    Args:
        args: the parsed ``search`` command line.
    """
    from ..embeddings import search
    from ..embeddings.search import plural

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
        exclude=args.exclude,
    )
    print(f"{'rank':>4} {'similarity':>10} {'lon':>10} {'lat':>9} {'date':>10}")
    for hit in result.hits.head(PRINTED_HITS).itertuples():
        print(
            f"{hit.rank:>4} {hit.similarity:>10.4f} {hit.lon:>10.5f} "
            f"{hit.lat:>9.5f} {hit.date or 'unknown'!s:>10}"
        )
    if len(result.hits) > PRINTED_HITS:
        print(f"... and {len(result.hits) - PRINTED_HITS:,} more in {result.out}")
    print(f"Query: {result.query}")
    if (excluded := result.excluded) is not None:
        print(
            f"Left out {plural(len(excluded.rows), 'patch')} that the "
            f"{plural(excluded.polygons, 'polygon')} of {str(excluded.path)!r} "
            "(--exclude) reach into"
        )
    print(f"Hits: {result.out}\nContact sheet: {result.sheet}")


def _embedding_map(args: argparse.Namespace) -> None:
    """Draw the t-SNE map of an index and name the PNG.

    Args:
        args: the parsed ``embedding-map`` command line.
    """
    from ..embeddings.projection import embedding_map

    path = embedding_map(
        index=Path(args.index),
        out=Path(args.out),
        labels=None if args.labels is None else Path(args.labels),
        class_column=args.class_column,
        class_map=dict(args.class_map) or None,
        root=None if args.root is None else Path(args.root),
        thumbnails=args.thumbnails,
        max_points=args.max_points,
        perplexity=args.perplexity,
        seed=args.seed,
        overwrite=args.overwrite,
        progress=args.progress,
    )
    print(f"Embedding map: {path}")
