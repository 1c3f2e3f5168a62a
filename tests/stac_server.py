"""A small STAC API and COG server on 127.0.0.1 for the download tests.

:class:`StacServer` serves a landing page, ``/search`` (GET and POST, filtered
by collection, bbox and datetime) and band files under ``/data/`` with HTTP
range requests, as GDAL reads COGs. It logs every file request and can answer
some with errors, to test retries and resuming. :func:`fake_item` writes the
band COGs of one fake scene and returns its STAC item.
"""

import json
import threading
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np
import numpy.typing as npt
import rasterio
import shapely
from rasterio.transform import from_origin
from rasterio.warp import transform_bounds

from torchgeo_simclr.constants import S2_BAND_RESOLUTION, S2_BANDS, SCL
from torchgeo_simclr.download.assets import COMMON_NAMES

#: Side of a fake scene in 10 m pixels.
SCENE_SIZE = 768

#: CRS of the fake scenes (UTM 10N, as the Central Valley).
SCENE_CRS = "EPSG:32610"


class StacServer:
    """STAC API + file server in a background thread, on a free local port."""

    def __init__(self, files: Path) -> None:
        """Serve *files* under ``/data/``; items are added with :meth:`add`.

        Args:
            files: directory of the band files.
        """
        self.files = files
        self.items: list[dict[str, Any]] = []
        #: Paths of every ``/data/`` request, in order.
        self.requests: list[str] = []
        #: Path -> number of next requests answered 503 (transient failure).
        self.fail: dict[str, int] = {}
        #: Paths answered 404.
        self.missing: set[str] = set()
        #: Bytes of band files sent, all requests together.
        self.bytes_sent = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The API's landing page, ``http://127.0.0.1:PORT``."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> "StacServer":
        """Start serving."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def landing(self) -> dict[str, Any]:
        """The landing page of a STAC API with item search."""
        return {
            "type": "Catalog",
            "stac_version": "1.0.0",
            "id": "test-api",
            "description": "Test STAC API",
            "conformsTo": [
                "https://api.stacspec.org/v1.0.0/core",
                "https://api.stacspec.org/v1.0.0/item-search",
            ],
            "links": [
                {"rel": "self", "href": f"{self.url}/", "type": "application/json"},
                {"rel": "root", "href": f"{self.url}/", "type": "application/json"},
                {
                    "rel": "search",
                    "href": f"{self.url}/search",
                    "type": "application/geo+json",
                    "method": "POST",
                },
            ],
        }

    def search(self, query: dict[str, Any]) -> dict[str, Any]:
        """Items matching a search body (collections, bbox, datetime)."""
        features = self.items
        if query.get("collections"):
            features = [f for f in features if f["collection"] in query["collections"]]
        if query.get("bbox"):
            box = shapely.box(*[float(v) for v in query["bbox"]])
            features = [f for f in features if shapely.box(*f["bbox"]).intersects(box)]
        if query.get("datetime"):
            first, last = (
                datetime.fromisoformat(t.replace("Z", "+00:00"))
                for t in query["datetime"].split("/")
            )
            features = [
                f
                for f in features
                if first
                <= datetime.fromisoformat(
                    f["properties"]["datetime"].replace("Z", "+00:00")
                )
                <= last
            ]
        return {"type": "FeatureCollection", "features": features, "links": []}


def _handler(server: StacServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _json(self, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            self._json(server.search(json.loads(self.rfile.read(length) or b"{}")))

        def do_HEAD(self) -> None:
            self._file(body=False)

        def do_GET(self) -> None:
            url = urlparse(self.path)
            if url.path in ("", "/"):
                self._json(server.landing())
            elif url.path == "/search":
                query: dict[str, Any] = {
                    k: v[0] for k, v in parse_qs(url.query).items()
                }
                for key in ("bbox", "collections"):
                    if key in query:
                        query[key] = query[key].split(",")
                self._json(server.search(query))
            else:
                self._file(body=True)

        def _file(self, body: bool) -> None:
            path = urlparse(self.path).path
            server.requests.append(path)
            if server.fail.get(path, 0) > 0:
                server.fail[path] -= 1
                self.send_error(503)
                return
            file = server.files / path.removeprefix("/data/")
            if path in server.missing or not file.is_file():
                self.send_error(404)
                return
            data = file.read_bytes()
            start, end = 0, len(data) - 1
            ranged = self.headers.get("Range", "").removeprefix("bytes=")
            if ranged and "," not in ranged:
                first, _, last = ranged.partition("-")
                start = int(first)
                end = min(int(last), len(data) - 1) if last else len(data) - 1
            self.send_response(206 if ranged else 200)
            if ranged:
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Type", "image/tiff")
            self.send_header("Content-Length", str(end - start + 1))
            self.end_headers()
            if body:
                self.wfile.write(data[start : end + 1])
                server.bytes_sent += end - start + 1

    return Handler


def band_values(band: str, size: int) -> npt.NDArray[np.uint16]:
    """Digital numbers of a fake band: a smooth ramp, different per band, > 1000."""
    rows, cols = np.mgrid[0:size, 0:size]
    offset = 100 * S2_BANDS.index(band)
    return (2000 + offset + 3 * rows + 5 * cols).astype(np.uint16)


def fake_item(
    server: StacServer,
    name: str,
    when: str,
    cloud: float,
    origin: tuple[float, float] = (700000.0, 4100000.0),
    names: str = "earth-search",
    baseline: str = "05.09",
    cloud_box: tuple[int, int, int, int] | None = (0, 0, 96, 96),
) -> dict[str, Any]:
    """Write a fake scene's band COGs and add its STAC item to *server*.

    Args:
        server: where the item is served; files go to ``server.files / name``.
        name: the ESA product name, e.g. ``S2B_MSIL2A_..._T10SFG_...``.
        when: sensing time, ISO 8601 with ``Z``.
        cloud: ``eo:cloud_cover``, percent.
        origin: top-left corner in EPSG:32610 metres.
        names: ``earth-search`` assets (``red``, ``scl``, with raster:bands
            scale 0.0001 and offset -0.1) or ``planetary`` (``B04``, ``SCL``,
            no raster:bands: the offset follows *baseline*).
        baseline: ``s2:processing_baseline``.
        cloud_box: ``(row0, col0, row1, col1)`` of SCL "cloud high
            probability" in 20 m pixels, or None for a clear scene.

    Returns:
        The item (a dict).
    """
    folder = server.files / name
    folder.mkdir(parents=True, exist_ok=True)
    assets: dict[str, Any] = {}
    for band in [*S2_BANDS, SCL]:
        metres = S2_BAND_RESOLUTION.get(band, 20)
        size = SCENE_SIZE * 10 // metres
        if band == SCL:
            data = np.full((size, size), 4, dtype=np.uint8)
            if cloud_box is not None:
                r0, c0, r1, c1 = cloud_box
                data[r0:r1, c0:c1] = 9
        else:
            data = band_values(band, size)
        with rasterio.open(
            folder / f"{band}.tif",
            "w",
            driver="COG",
            width=size,
            height=size,
            count=1,
            dtype=data.dtype,
            crs=SCENE_CRS,
            transform=from_origin(*origin, metres, metres),
            nodata=0,
            blocksize=256,
        ) as dst:
            dst.write(data, 1)
        key = band if names == "planetary" else COMMON_NAMES[band]
        asset: dict[str, Any] = {
            "href": f"{server.url}/data/{name}/{band}.tif",
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "roles": ["data"],
        }
        if names == "earth-search" and band != SCL:
            offset = -0.1 if baseline >= "04.00" else 0.0
            asset["raster:bands"] = [{"nodata": 0, "scale": 0.0001, "offset": offset}]
        assets[key] = asset
    x0, y0 = origin
    side = SCENE_SIZE * 10
    bbox = transform_bounds(SCENE_CRS, "EPSG:4326", x0, y0 - side, x0 + side, y0)
    tile = name.split("_")[5].removeprefix("T")
    item = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [],
        "id": f"{name[:3]}_{tile}_{when[:10].replace('-', '')}_0_L2A",
        "collection": "sentinel-2-l2a",
        "bbox": list(bbox),
        "geometry": shapely.geometry.mapping(shapely.box(*bbox)),
        "properties": {
            "datetime": when,
            "eo:cloud_cover": cloud,
            "platform": "sentinel-2b",
            "s2:mgrs_tile": tile,
            "s2:product_uri": f"{name}.SAFE",
            "s2:processing_baseline": baseline,
        },
        "assets": assets,
        "links": [],
    }
    server.items.append(item)
    return item


def serve(files: Path) -> Iterator[StacServer]:
    """Run a :class:`StacServer` for the length of a fixture."""
    server = StacServer(files).start()
    try:
        yield server
    finally:
        server.stop()
