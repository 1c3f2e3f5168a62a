"""Embedding throughput against the encoder's pure forward, and search latency.

Part 1 embeds a region with ``embed_region`` (read imagery, normalise, forward,
write GeoParquet) and runs the same checkpoint's backbone alone on a batch of
the same shape, as many times as there are batches, round for round; each
figure is the best round, so the ratio compares the two under the same load.
It does so twice: as the CLI runs by default (torch on every core, imagery read
in the main process), then with torch on one core and the imagery read by one
DataLoader worker (``--num-workers 1``), which shows how much of the reading a
spare core hides.

Part 2 times exact cosine search (``top_k``) over 1,000,000 random 512-d unit
vectors for several queries.

Part 3 writes those vectors as an index (``IndexWriter``) and loads it for
search (``load_index``) in a fresh process, which reports the time and its peak
resident memory before and after loading.

    python benchmarks/embedding_search.py \
        --checkpoint runs/simclr_quickstart/checkpoints/last.ckpt --root data/sample
"""

import argparse
import math
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
from machine import describe
from pyproj import CRS

from torchgeo_simclr.embeddings import embed_region, top_k
from torchgeo_simclr.embeddings.index import ROW_GROUP_ROWS, IndexInfo, IndexWriter
from torchgeo_simclr.embeddings.search import unit_rows
from torchgeo_simclr.models.checkpoint import load_backbone


def embedding_throughput(
    checkpoint: Path, root: Path, batch_size: int, rounds: int, workers: int
) -> tuple[float, float, int]:
    """Best patches/s of ``embed_region`` and of the pure forward, and N."""
    encoder = load_backbone(checkpoint)
    assert encoder.data is not None
    size, bands = encoder.data.patch_size, len(encoder.data.bands)
    batch = torch.randn(batch_size, bands, size, size)
    backbone = encoder.backbone.eval()
    best_embed = best_forward = math.inf
    rows = 0
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "index.parquet"
        for _ in range(rounds):
            result = embed_region(
                checkpoint,
                root,
                out,
                batch_size=batch_size,
                num_workers=workers,
                overwrite=True,
                progress=False,
            )
            rows = result.rows + result.skipped
            best_embed = min(best_embed, result.seconds)
            start = time.perf_counter()
            with torch.inference_mode():
                for _ in range(math.ceil(rows / batch_size)):
                    backbone(batch)
            best_forward = min(best_forward, time.perf_counter() - start)
    return rows / best_embed, rows / best_forward, rows


def search_latency(
    matrix: np.ndarray, queries: int, k: int, rng: np.random.Generator
) -> list[float]:
    """Seconds per query of ``top_k`` over the unit rows of *matrix*."""
    seconds = []
    for row in rng.choice(len(matrix), queries, replace=False):
        start = time.perf_counter()
        top_k(matrix, matrix[row], k)
        seconds.append(time.perf_counter() - start)
    return seconds


#: Run in a fresh process: load an index, print seconds and VmHWM (kB) before
#: and after.
LOAD = """
import sys, time
from torchgeo_simclr.embeddings.search import load_index
def peak():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith("VmHWM"))
before = peak()
start = time.perf_counter()
load_index(sys.argv[1])
print(time.perf_counter() - start, before, peak())
"""


def index_load(matrix: np.ndarray) -> tuple[float, float, float, float]:
    """Write *matrix* as an index; seconds to load it and peak GB before/after."""
    n = len(matrix)
    info = IndexInfo(
        checkpoint_id="0" * 16,
        checkpoint="random.ckpt",
        model="random",
        dim=matrix.shape[1],
        patch_size=48,
        stride=48,
        root="random",
        bands=("B01",),
        crs=CRS.from_epsg(32610).to_wkt(),
        res=10.0,
        origin=(600000.0, 4200000.0),
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "index.parquet"
        with IndexWriter(path, info) as writer:
            for start in range(0, n, ROW_GROUP_ROWS):
                rows = np.arange(start, min(start + ROW_GROUP_ROWS, n))
                writer.write(
                    rows // 1000 * 48,
                    rows % 1000 * 48,
                    [date(2023, 7, 15)] * len(rows),
                    matrix[rows],
                )
        size = path.stat().st_size / 1e9
        output = subprocess.run(
            [sys.executable, "-c", LOAD, str(path)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
    seconds, before, after = (float(value) for value in output[-3:])
    return seconds, before / 1e6, after / 1e6, size


def main() -> None:
    """Print both parts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--root", type=Path, default=Path("data/sample"))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=10)
    parser.add_argument("--k", type=int, default=20)
    args = parser.parse_args()

    print(describe())
    threads = torch.get_num_threads()
    for torch_threads, workers in ((threads, 0), (1, 1)):
        torch.set_num_threads(torch_threads)
        embed, forward, rows = embedding_throughput(
            args.checkpoint, args.root, args.batch_size, args.rounds, workers
        )
        print(
            f"embedding, {torch_threads} torch thread(s), {workers} reading "
            f"worker(s): {rows} patches, batch {args.batch_size}, best of "
            f"{args.rounds}: embed_region {embed:.0f} patches/s, pure forward "
            f"{forward:.0f} patches/s, ratio {embed / forward:.2f} (target >= 0.8)"
        )
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    matrix = unit_rows(rng.standard_normal((args.rows, args.dim), dtype=np.float32))
    seconds = search_latency(matrix, args.queries, args.k, rng)
    print(
        f"search: {args.rows:,} x {args.dim} float32, k={args.k}, {args.queries} "
        f"queries: median {statistics.median(seconds):.3f} s, max {max(seconds):.3f}"
        " s per query (target <= 1 s)"
    )
    load, before, after, size = index_load(matrix)
    print(
        f"index load: {args.rows:,} rows ({size:.2f} GB of Parquet) in {load:.1f} s;"
        f" peak resident memory {after:.2f} GB ({before:.2f} GB before loading,"
        f" the matrix is {matrix.nbytes / 1e9:.2f} GB)"
    )


if __name__ == "__main__":
    main()
