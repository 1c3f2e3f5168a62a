"""The embedding index: one GeoParquet row per patch, written in batches.

Columns (GeoParquet 1.1, readable by GeoPandas, GDAL and DuckDB):

- ``geometry``: the patch footprint, a WKB polygon in the imagery's CRS;
- ``lon``, ``lat``: the footprint's centre, EPSG:4326 degrees (float64);
- ``date``: sensing date of the newest scene under the patch, whose pixels the
  mosaic takes first (date32; null where the scenes' names carry no date);
- ``row``, ``col``: the patch's top-left pixel on the index grid (int32);
- ``embedding``: the encoder's output, ``fixed_size_list<float32>[dim]``;
- ``checkpoint``: the encoder checkpoint's id (first 16 hex digits of its
  SHA-256), the same on every row.

The file's schema metadata also holds ``torchgeo_simclr``: a JSON
:class:`IndexInfo` (checkpoint, model, patch size, stride, root, bands, CRS,
grid origin), so search and plots need no other input, and what else decided
which patches were embedded and how (the days read, cloud masking, the
software versions; null in indexes written before these were recorded).
"""

import json
import os
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from types import TracebackType
from typing import Final, Self

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq
import shapely
from pyproj import CRS, Transformer

from ..digest import CHECKPOINT_ID_LENGTH, file_digest
from ..outputs import not_a_file, partial_path

#: Schema metadata key of :class:`IndexInfo`.
INFO_KEY: Final[bytes] = b"torchgeo_simclr"

#: Version of the GeoParquet metadata written.
GEOPARQUET_VERSION: Final[str] = "1.1.0"


#: Rows per Parquet row group: batches are gathered up to this many before
#: they are written (16 MiB of 512-d embeddings). A row group per batch of 64
#: made files 40% larger and writing slower.
ROW_GROUP_ROWS: Final[int] = 8192


@dataclass(frozen=True)
class IndexInfo:
    """What an index was made from and how."""

    #: Id of the encoder checkpoint: the first 16 hex digits of its SHA-256.
    checkpoint_id: str
    #: Path of the checkpoint when the index was made.
    checkpoint: str
    #: timm backbone name.
    model: str
    #: Embedding length.
    dim: int
    #: Patch side, pixels.
    patch_size: int
    #: Distance between neighbouring patches, pixels.
    stride: int
    #: Imagery directory the patches were read from.
    root: str
    #: Bands given to the encoder, in order.
    bands: tuple[str, ...]
    #: CRS of the footprints and of the grid, as WKT.
    crs: str
    #: Pixel size, CRS units (metres).
    res: float
    #: ``(x, y)`` of the grid's top-left corner, CRS units: the pixel ``(row,
    #: col)`` starts at ``x + col * res``, ``y - row * res``.
    origin: tuple[float, float]
    #: First sensing day read, inclusive, ``YYYY-MM-DD`` (``--start``; None:
    #: no limit, or an index that does not record it).
    start: str | None = None
    #: Last sensing day read, inclusive, ``YYYY-MM-DD`` (``--end``; None: no
    #: limit, or an index that does not record it).
    end: str | None = None
    #: Whether pixels that cloud masks call cloudy were read as nodata (False:
    #: ``--no-cloud-mask``; None: not recorded).
    mask_clouds: bool | None = None
    #: Metres by which masked clouds were grown (``--cloud-buffer``; None: not
    #: recorded).
    cloud_buffer_m: float | None = None
    #: Versions of torchgeo-simclr, torch, torchgeo, ... and ``commit``, the
    #: source commit (see :func:`~torchgeo_simclr.software.software_record`);
    #: None: not recorded.
    software: dict[str, str | None] | None = None
    #: The region embedded, ``(xmin, ymin, xmax, ymax)`` in :attr:`bbox_crs`
    #: (``--bbox``; None: all imagery under :attr:`root`, or an index that does
    #: not record it).
    bbox: tuple[float, ...] | None = None
    #: CRS of :attr:`bbox` as pyproj writes it, e.g. ``EPSG:4326`` (None
    #: without a bbox).
    bbox_crs: str | None = None

    def footprints(
        self, rows: npt.ArrayLike, cols: npt.ArrayLike
    ) -> npt.NDArray[np.float64]:
        """Footprints of the patches with these top-left pixels.

        Args:
            rows: ``[N]`` top-left pixel rows on the grid.
            cols: ``[N]`` top-left pixel columns on the grid.

        Returns:
            ``[N, 4]`` ``(xmin, ymin, xmax, ymax)`` in the index CRS.
        """
        xmin = self.origin[0] + np.asarray(cols, dtype=np.float64) * self.res
        ymax = self.origin[1] - np.asarray(rows, dtype=np.float64) * self.res
        side = self.patch_size * self.res
        return np.stack([xmin, ymax - side, xmin + side, ymax], axis=1)

    def to_json(self) -> str:
        """Serialise for the file's metadata.

        Returns:
            JSON text.
        """
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | bytes) -> Self:
        """Parse :meth:`to_json`'s output.

        Args:
            text: JSON text.

        Returns:
            The info.
        """
        data = json.loads(text)
        data["bands"] = tuple(data["bands"])
        data["origin"] = tuple(data["origin"])
        if data.get("bbox") is not None:
            data["bbox"] = tuple(data["bbox"])
        return cls(**data)


def index_schema(info: IndexInfo) -> pa.Schema:
    """The Arrow schema of an index, with its GeoParquet and info metadata.

    Args:
        info: what the index is made from.

    Returns:
        The schema.
    """
    geo = {
        "version": GEOPARQUET_VERSION,
        "primary_column": "geometry",
        "columns": {
            "geometry": {
                "encoding": "WKB",
                "geometry_types": ["Polygon"],
                "crs": CRS.from_wkt(info.crs).to_json_dict(),
            }
        },
    }
    fields = [
        pa.field("geometry", pa.binary()),
        pa.field("lon", pa.float64()),
        pa.field("lat", pa.float64()),
        pa.field("date", pa.date32()),
        pa.field("row", pa.int32()),
        pa.field("col", pa.int32()),
        pa.field("embedding", pa.list_(pa.float32(), info.dim)),
        pa.field("checkpoint", pa.string()),
    ]
    metadata = {b"geo": json.dumps(geo).encode(), INFO_KEY: info.to_json().encode()}
    return pa.schema(fields, metadata=metadata)


class IndexWriter:
    """Append patches to an index file batch by batch (memory stays flat).

    Batches are gathered into row groups of :data:`ROW_GROUP_ROWS` rows. Rows
    go to a hidden temporary file, renamed to *path* only when the writer
    closes without an error; an interrupted run leaves *path* as it was.
    """

    def __init__(self, path: Path, info: IndexInfo) -> None:
        """Open a new index for writing.

        Args:
            path: the ``.parquet`` file to write.
            info: what the index is made from.
        """
        #: The final file.
        self.path = path
        #: What the index is made from.
        self.info = info
        #: Rows written so far.
        self.rows = 0
        # Named by process: two runs writing the same index keep apart.
        self._partial = partial_path(path)
        self._schema = index_schema(info)
        self._to_lonlat = Transformer.from_crs(
            CRS.from_wkt(info.crs), "EPSG:4326", always_xy=True
        )
        self._writer = pq.ParquetWriter(self._partial, self._schema)
        self._pending: list[pa.Table] = []

    def write(
        self,
        rows: npt.NDArray[np.int64],
        cols: npt.NDArray[np.int64],
        dates: list[date | None],
        embeddings: npt.NDArray[np.float32],
    ) -> None:
        """Append a batch of patches; footprints and centres follow from the grid.

        Args:
            rows: ``[N]`` top-left pixel rows on the grid.
            cols: ``[N]`` top-left pixel columns on the grid.
            dates: ``N`` sensing dates (None: unknown).
            embeddings: ``[N, dim]``.
        """
        n = len(rows)
        footprints = self.info.footprints(rows, cols)
        lon, lat = self._to_lonlat.transform(
            footprints[:, [0, 2]].mean(axis=1), footprints[:, [1, 3]].mean(axis=1)
        )
        polygons = shapely.box(*footprints.T)
        values = pa.array(np.ascontiguousarray(embeddings, np.float32).reshape(-1))
        table = pa.table(
            {
                "geometry": pa.array(shapely.to_wkb(polygons), pa.binary()),
                "lon": pa.array(lon, pa.float64()),
                "lat": pa.array(lat, pa.float64()),
                "date": pa.array(dates, pa.date32()),
                "row": pa.array(rows, pa.int32()),
                "col": pa.array(cols, pa.int32()),
                "embedding": pa.FixedSizeListArray.from_arrays(values, self.info.dim),
                "checkpoint": pa.array([self.info.checkpoint_id] * n, pa.string()),
            },
            schema=self._schema,
        )
        self._pending.append(table)
        self.rows += n
        if sum(len(pending) for pending in self._pending) >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        """Write the gathered batches as one row group."""
        if self._pending:
            self._writer.write_table(pa.concat_tables(self._pending))
            self._pending = []

    def close(self, ok: bool = True) -> None:
        """Finish the file and rename it (or, when not *ok*, delete it).

        Args:
            ok: whether everything was written.
        """
        try:
            if ok:
                self._flush()
        except BaseException:
            ok = False
            raise
        finally:
            self._writer.close()
            if ok:
                os.replace(self._partial, self.path)
            else:
                self._partial.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        """Use as a context manager.

        Returns:
            self.
        """
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        """Close, keeping the file only without an exception."""
        self.close(ok=error is None)


def checkpoint_id(path: str | os.PathLike[str]) -> str:
    """The id an index records for the checkpoint that made it.

    Args:
        path: the ``.ckpt`` file.

    Returns:
        The first :data:`CHECKPOINT_ID_LENGTH` hex digits of its SHA-256.
    """
    return file_digest(Path(path))[:CHECKPOINT_ID_LENGTH]


def read_info(path: str | os.PathLike[str], option: str = "--index") -> IndexInfo:
    """Read what an index was made from, without reading its rows.

    Args:
        path: the index file.
        option: how errors name the file (the command-line option that gave it).

    Returns:
        The info.

    Raises:
        FileNotFoundError: if *path* does not exist or is a folder.
        ValueError: if *path* is not an index written by this package.
    """
    if not Path(path).is_file():
        missing = not_a_file(path)
        msg = (
            f"{option} {str(path)!r} {missing}; pass an index written by "
            "`torchgeo-simclr embed` (a .parquet file)."
        )
        raise FileNotFoundError(msg)
    try:
        metadata = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowInvalid) as error:
        msg = (
            f"{option} {str(path)!r} is not a readable Parquet file ({error}); make "
            "one with `torchgeo-simclr embed`."
        )
        raise ValueError(msg) from None
    if INFO_KEY not in metadata:
        msg = (
            f"{option} {str(path)!r} is a Parquet file but not an embedding index "
            "(no torchgeo_simclr metadata); make one with `torchgeo-simclr embed`."
        )
        raise ValueError(msg)
    return IndexInfo.from_json(metadata[INFO_KEY])


def index_fault(path: Path) -> str | None:
    """Why an existing *path* is not an index this package wrote, or None.

    For refusing to replace a file that ``embed`` did not write: its indexes
    carry their :class:`IndexInfo` under :data:`INFO_KEY`.

    Args:
        path: the file.

    Returns:
        A few words for a message, or None for an index.
    """
    try:
        metadata = pq.read_schema(path).metadata or {}
    except pa.ArrowInvalid:
        return "not a Parquet file"
    return None if INFO_KEY in metadata else "no torchgeo_simclr metadata"


def read_embeddings(table: pa.Table) -> npt.NDArray[np.float32]:
    """The ``embedding`` column of an index table as one matrix.

    Args:
        table: rows of an index, with the ``embedding`` column.

    Returns:
        ``[N, dim]`` float32 (a view of Arrow's buffer where possible).
    """
    column = table.column("embedding").combine_chunks()
    dim = column.type.list_size
    values = column.values.to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.float32).reshape(len(column), dim)


def read_index(
    path: str | os.PathLike[str],
    columns: list[str] | None = None,
    option: str = "--index",
) -> tuple[IndexInfo, pa.Table]:
    """Read an index's info and rows.

    Args:
        path: the index file.
        columns: columns to read (default: all).
        option: how errors name the file (see :func:`read_info`).

    Returns:
        The info and the rows as an Arrow table.
    """
    info = read_info(path, option)
    return info, pq.read_table(path, columns=columns)
