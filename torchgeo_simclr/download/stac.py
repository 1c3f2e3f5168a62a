"""Search a STAC API for Sentinel-2 L2A scenes and pick the least cloudy ones."""

import contextlib
import re
from collections import defaultdict
from collections.abc import Sequence
from typing import Final

from pystac import Item
from pystac_client import Client
from pystac_client.exceptions import APIError
from pystac_client.stac_api_io import StacApiIO
from urllib3.util import Retry

from .request import DownloadRequest

#: A public Sentinel-2 L2A STAC API that needs no account (Element 84's Earth
#: Search on AWS; its assets are Cloud Optimized GeoTIFFs).
DEFAULT_STAC_URL: Final[str] = "https://earth-search.aws.element84.com/v1"

#: The Sentinel-2 L2A collection of :data:`DEFAULT_STAC_URL`.
DEFAULT_COLLECTION: Final[str] = "sentinel-2-l2a"

#: HTTP statuses worth retrying: rate limits and passing server trouble.
RETRY_STATUSES: Final[tuple[int, ...]] = (429, 500, 502, 503, 504)

#: Plain words for the urllib3 errors behind a failed request.
CAUSES: Final[dict[str, str]] = {
    "NameResolutionError": "the host name does not resolve",
    "NewConnectionError": "the connection was refused",
    "ConnectTimeoutError": "the connection timed out",
    "ReadTimeoutError": "the server did not answer in time",
    "SSLError": "the TLS handshake failed",
    "ResponseError": "the server kept answering with errors",
}

#: Product name pattern CentralValleyS2 reads (without ``.tif``).
PRODUCT_NAME: Final[re.Pattern[str]] = re.compile(
    r"^S2[ABC]_MSIL2A_\d{8}T\d{6}_N\d{4}_R\d{3}_T\d{2}[A-Z]{3}_\d{8}T\d{6}$"
)


def open_catalog(url: str, retries: int = 3, timeout: float = 30.0) -> Client:
    """Open a STAC API, retrying connection errors with exponential back-off.

    Args:
        url: the API's landing page.
        retries: retries per request after the first try.
        timeout: seconds to wait for a response.

    Returns:
        The pystac-client client.

    Raises:
        ConnectionError: if the API cannot be reached or does not answer
            like a STAC API.
    """
    retry = Retry(
        total=retries,
        backoff_factor=0.5,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=None,
        raise_on_status=False,
    )
    stac_io = StacApiIO(timeout=timeout, max_retries=retry)
    try:
        return Client.open(url, stac_io=stac_io)
    except (APIError, OSError, ValueError) as error:
        msg = (
            f"Could not reach the STAC API at --stac-url {url} ({failure(error)}); "
            "check the URL and the network connection."
        )
        raise ConnectionError(msg) from None


def failure(error: Exception) -> str:
    """Say in a few words why a request failed.

    pystac-client turns every failure into an ``APIError`` carrying the text of
    the underlying urllib3 error, whose cause is named in ``(Caused by ...)``.

    Args:
        error: what the request raised.

    Returns:
        A short reason, e.g. ``the host name does not resolve`` or ``HTTP 404``.
    """
    status = getattr(error, "status_code", None)
    if status is not None:
        return f"HTTP {status}"
    cause = re.search(r"Caused by (\w+)", str(error))
    if cause is not None:
        return CAUSES.get(cause.group(1), cause.group(1))
    text = str(error).strip().splitlines()
    return text[0][:120] if text else type(error).__name__


def search_scenes(
    client: Client, collection: str, request: DownloadRequest
) -> tuple[list[Item], int]:
    """Find the scenes of *collection* over the bbox and dates of *request*.

    Args:
        client: an open STAC API.
        collection: collection id, e.g. ``sentinel-2-l2a``.
        request: bbox, dates and cloud limit.

    Returns:
        The scenes at or under the cloud limit, and how many more were found
        above it.

    Raises:
        ConnectionError: if the API fails the search.
    """
    try:
        search = client.search(
            collections=[collection],
            bbox=request.bbox,
            datetime=request.interval,
            limit=100,
        )
        items = list(search.items())
    except APIError as error:
        msg = (
            f"The STAC API at {client.self_href} failed the search of collection "
            f"{collection!r} ({failure(error)}); check "
            "--collection and try again."
        )
        raise ConnectionError(msg) from None
    kept = [item for item in items if cloud_cover(item) <= request.max_cloud]
    return kept, len(items) - len(kept)


def cloud_cover(item: Item) -> float:
    """Scene cloud cover in percent (100 when the item does not say).

    Args:
        item: a STAC item.

    Returns:
        ``eo:cloud_cover``.
    """
    value = item.properties.get("eo:cloud_cover")
    return 100.0 if value is None else float(value)


#: An MGRS tile id: UTM zone, latitude band (C-X) and 100 km square (A-Z
#: without I and O), e.g. ``10SFG``.
MGRS_TILE: Final[re.Pattern[str]] = re.compile(r"\d{2}[C-X][A-HJ-NP-Z]{2}")


def tile_field(item: Item) -> tuple[str, str]:
    """The scene's MGRS tile as the item gives it, unchecked, and where from.

    Args:
        item: a Sentinel-2 STAC item.

    Returns:
        The tile id from ``s2:mgrs_tile``, the MGRS extension, ``grid:code``
        or the item id, in that order, and the name of the field(s) it came
        from.
    """
    props = item.properties
    if "s2:mgrs_tile" in props:
        return str(props["s2:mgrs_tile"]), "s2:mgrs_tile"
    if "mgrs:utm_zone" in props:
        zone = props["mgrs:utm_zone"]
        with contextlib.suppress(TypeError, ValueError, OverflowError):
            zone = f"{int(zone):02d}"
        return (
            f"{zone}{props.get('mgrs:latitude_band')}{props.get('mgrs:grid_square')}",
            "mgrs:utm_zone, mgrs:latitude_band and mgrs:grid_square",
        )
    if "grid:code" in props:
        return str(props["grid:code"]).removeprefix("MGRS-"), "grid:code"
    match = re.search(r"(?<![0-9A-Z])T?(\d{2}[C-X][A-Z]{2})(?![A-Z])", item.id)
    return (match.group(1) if match else item.id), "id"


def tile_of(item: Item) -> str:
    """The scene's MGRS tile, e.g. ``10SFG``.

    Args:
        item: a Sentinel-2 STAC item.

    Returns:
        The tile id from ``s2:mgrs_tile``, the MGRS extension, ``grid:code``
        or the item id, in that order (unchecked: :func:`product_name`
        checks it).
    """
    return tile_field(item)[0]


def pick_scenes(items: Sequence[Item], per_tile: int) -> list[Item]:
    """Keep the *per_tile* least cloudy scenes of each MGRS tile.

    Args:
        items: candidate scenes.
        per_tile: scenes to keep per tile.

    Returns:
        The chosen scenes, by tile, least cloudy (then earliest) first.
    """
    by_tile: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        by_tile[tile_of(item)].append(item)
    chosen: list[Item] = []
    for tile in sorted(by_tile):
        ranked = sorted(
            by_tile[tile], key=lambda item: (cloud_cover(item), item.datetime, item.id)
        )
        chosen.extend(ranked[:per_tile])
    return chosen


def product_name(item: Item) -> str:
    """File stem of a scene in the naming that CentralValleyS2 reads.

    The name is made of the remote catalog's fields, so each is checked: a
    tile such as ``../../x`` would put the file outside ``--out``.

    Args:
        item: a Sentinel-2 L2A STAC item.

    Returns:
        The ESA product name (``S2B_MSIL2A_20230715T184919_N0509_R070_T10SFG_
        20230715T223344``), from ``s2:product_uri`` or built from the item.

    Raises:
        ValueError: if a field the name is built from is not what a
            Sentinel-2 L2A item holds there.
    """
    uri = str(item.properties.get("s2:product_uri", "")).removesuffix(".SAFE")
    if PRODUCT_NAME.fullmatch(uri):
        return uri
    props = item.properties
    platform = str(props.get("platform", "sentinel-2a"))[-1:].upper()
    if not re.fullmatch(r"[A-Z0-9]", platform):
        raise ValueError(
            bad_field(item, "platform", props.get("platform"), "e.g. 'sentinel-2b'")
        )
    tile, field = tile_field(item)
    if not MGRS_TILE.fullmatch(tile):
        raise ValueError(bad_field(item, field, tile, "an MGRS tile such as 10SFG"))
    assert item.datetime is not None
    sensed = item.datetime.strftime("%Y%m%dT%H%M%S")
    baseline = str(props.get("s2:processing_baseline", "00.00"))
    if not re.fullmatch(r"[0-9]{0,4}", baseline.replace(".", "")):
        raise ValueError(
            bad_field(item, "s2:processing_baseline", baseline, "e.g. '05.09'")
        )
    given = props.get("sat:relative_orbit", 0)
    try:
        orbit = int(float(given)) if float(given).is_integer() else -1
    except (TypeError, ValueError, OverflowError):
        orbit = -1
    if not 0 <= orbit <= 999:
        raise ValueError(
            bad_field(item, "sat:relative_orbit", given, "an orbit number 0-999")
        )
    return (
        f"S2{platform}_MSIL2A_{sensed}_N{int(baseline.replace('.', '') or 0):04d}"
        f"_R{orbit:03d}_T{tile}_{sensed}"
    )


def bad_field(item: Item, field: str, value: object, expected: str) -> str:
    """The sentence for a field of a STAC item that no file name is made from.

    Args:
        item: the item.
        field: the field's name, e.g. ``s2:mgrs_tile``.
        value: what the item holds there.
        expected: what it should hold, e.g. ``"an MGRS tile such as 10SFG"``.

    Returns:
        One sentence naming the item, the field and its value (cut short).
    """
    shown = repr(value)
    shown = shown if len(shown) <= 80 else f"{shown[:77]}..."
    return (
        f"STAC item {item.id!r} has {field} {shown}, not {expected}, so no scene "
        "file name is made from it; the catalog at --stac-url does not describe "
        "Sentinel-2 L2A scenes as expected: check --stac-url and --collection "
        "(nothing was written)."
    )
