"""Scene file names are made of the catalog's fields: each is checked first.

When ``s2:product_uri`` did not match its pattern, the name was built from
``s2:mgrs_tile`` (or the MGRS extension, ``grid:code``, the item id) as the
catalog gave it: ``../`` there put the file outside ``--out``, and the error
that followed advised to check the network.
"""

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pystac import Item
from stac_server import StacServer, fake_item, serve

from torchgeo_simclr.cli import main
from torchgeo_simclr.download.stac import product_name

CLEAR = "S2B_MSIL2A_20230715T184919_N0509_R070_T10SFG_20230715T223344"
BBOX = ["-120.75", "36.95", "-120.70", "37.0"]
SENSED = datetime(2023, 7, 5, 18, 49, 19, tzinfo=UTC)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[StacServer]:
    (tmp_path / "files").mkdir()
    yield from serve(tmp_path / "files")


def _download(server: StacServer, out: Path) -> None:
    main(
        [
            "download",
            "--bbox",
            *BBOX,
            "--start",
            "2023-07-01",
            "--end",
            "2023-07-31",
            "--out",
            str(out),
            "--stac-url",
            server.url,
            "--no-progress",
        ]
    )


def test_a_tile_that_climbs_out_of_out_is_refused(
    server: StacServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    item = fake_item(server, CLEAR, "2023-07-15T18:49:19Z", 5.0)
    escape = "/../../../../../" + str(tmp_path / "ESCAPED").lstrip("/")
    item["properties"].update({"s2:product_uri": "x.SAFE", "s2:mgrs_tile": escape})
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_code:
        _download(server, out)
    assert exit_code.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(
        "torchgeo-simclr download: error: STAC item 'S2B_10SFG_20230715_0_L2A' has "
        "s2:mgrs_tile '/../../"
    ), err[0]
    assert "not an MGRS tile such as 10SFG" in err[0]
    assert "check --stac-url and --collection" in err[0]
    assert "network" not in err[0]
    # Nothing was fetched or written, inside --out or out of it.
    assert not server.requests
    assert not list(tmp_path.glob("*ESCAPED*"))
    assert not [p for p in out.rglob("*") if p.is_file()]


def _item(**properties: Any) -> Item:
    base = {"platform": "sentinel-2a", "sat:relative_orbit": 70}
    return Item("S2A_10SFG_20230705_0_L2A", None, None, SENSED, base | properties)


@pytest.mark.parametrize(
    ("properties", "field"),
    [
        ({"s2:mgrs_tile": "10SFG/.."}, "s2:mgrs_tile"),
        ({"s2:mgrs_tile": "10SFG\n"}, "s2:mgrs_tile"),
        ({"s2:mgrs_tile": "10SIG"}, "s2:mgrs_tile"),  # no I in a 100 km square
        ({"grid:code": "MGRS-../10SFG"}, "grid:code"),
        (
            {
                "mgrs:utm_zone": "../10",
                "mgrs:latitude_band": "S",
                "mgrs:grid_square": "FG",
            },
            "mgrs:utm_zone, mgrs:latitude_band and mgrs:grid_square",
        ),
        ({"s2:mgrs_tile": "10SFG", "platform": "sentinel-2/"}, "platform"),
        (
            {"s2:mgrs_tile": "10SFG", "s2:processing_baseline": "../5"},
            "s2:processing_baseline",
        ),
        ({"s2:mgrs_tile": "10SFG", "sat:relative_orbit": "7/0"}, "sat:relative_orbit"),
        ({"s2:mgrs_tile": "10SFG", "sat:relative_orbit": 12345}, "sat:relative_orbit"),
    ],
)
def test_each_field_of_a_built_name_is_checked(
    properties: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValueError, match="so no scene file name is made") as error:
        product_name(_item(**properties))
    assert f"STAC item 'S2A_10SFG_20230705_0_L2A' has {field} " in str(error.value)


def test_an_item_id_without_a_tile_gives_no_name() -> None:
    item = Item("../../evil", None, None, SENSED, {"platform": "sentinel-2a"})
    with pytest.raises(ValueError, match=r"has id '\.\./\.\./evil', not an MGRS"):
        product_name(item)


def test_sound_fields_still_build_the_esa_name() -> None:
    name = product_name(
        _item(**{"grid:code": "MGRS-10SFG", "s2:processing_baseline": "05.09"})
    )
    assert name == "S2A_MSIL2A_20230705T184919_N0509_R070_T10SFG_20230705T184919"
    # An orbit given as text or as a float, as some catalogs do, still counts.
    for orbit in ("70", 70.0):
        assert "_R070_" in product_name(
            _item(**{"s2:mgrs_tile": "10SFG", "sat:relative_orbit": orbit})
        )
