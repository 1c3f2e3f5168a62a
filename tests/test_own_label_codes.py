"""Your own label codes mean what your class map says, never DWR's classes.

A Spanish ``regadio`` column holds S (sí) / N (no), a Nebraska ``riego``
column I (irrigated) / D (dryland): DWR reads S as semi-agricultural (not
irrigated), I as idle (not) and D as deciduous fruits (irrigated), so DWR's
defaults silently halved or inverted such labels. They now apply to DWR's
class columns only; another column needs a class map, and is refused in one
sentence without one.
"""

import warnings
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin

from torchgeo_simclr.cli import main
from torchgeo_simclr.constants import IGNORE_INDEX, IRRIGATED, NOT_IRRIGATED
from torchgeo_simclr.datamodules import CentralValleyDataModule
from torchgeo_simclr.datasets import (
    DEFAULT_IRRIGATION_MAP,
    IrrigationLabels,
    build_irrigation_map,
)
from torchgeo_simclr.models.checkpoint import DataMetadata
from torchgeo_simclr.probe import probe_datamodule
from torchgeo_simclr.sample import make_sample_scene
from torchgeo_simclr.sample.spectra import S2_BANDS

#: The test map's CRS (La Mancha, UTM 30N) and top-left corner, metres.
SPAIN = "EPSG:32630"
ORIGIN = (560000.0, 4330000.0)

#: Side of the test map, 10 m pixels.
SIZE = 20

#: Fields as (irrigated?, (row0, col0, row1, col1)) in map pixels, end
#: exclusive; the map calls the irrigated ones irrigated and the others not.
FIELDS = (
    (True, (0, 0, 4, 4)),
    (False, (0, 10, 4, 14)),
    (True, (10, 0, 14, 4)),
    (False, (10, 10, 14, 14)),
)


def field_box(rows: tuple[int, int, int, int]) -> shapely.Polygon:
    """The rectangle of map pixels ``(row0, col0, row1, col1)``, in SPAIN."""
    row0, col0, row1, col1 = rows
    x0, y0 = ORIGIN
    return shapely.box(x0 + 10 * col0, y0 - 10 * row1, x0 + 10 * col1, y0 - 10 * row0)


def write_fields(
    path: Path, column: str, yes: str, no: str, crs: str | None = "EPSG:25830"
) -> Path:
    """Write FIELDS with *column* = *yes* where irrigated, else *no*."""
    frame = gpd.GeoDataFrame(
        {column: [yes if irrigated else no for irrigated, _ in FIELDS]},
        geometry=[field_box(rows) for _, rows in FIELDS],
        crs=SPAIN,
    ).to_crs("EPSG:25830")
    if crs is None:
        frame = frame.set_crs(None, allow_override=True)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "'crs' was not provided")
            frame.to_file(path)
    else:
        frame.to_file(path)
    return path


def write_map(path: Path) -> Path:
    """A map on the SPAIN grid that gets every field of FIELDS right."""
    classes = np.zeros((SIZE, SIZE), dtype=np.uint8)
    for irrigated, (row0, col0, row1, col1) in FIELDS:
        classes[row0:row1, col0:col1] = int(irrigated)
    profile = {
        "driver": "GTiff",
        "width": SIZE,
        "height": SIZE,
        "count": 1,
        "dtype": "uint8",
        "crs": SPAIN,
        "transform": from_origin(*ORIGIN, 10.0, 10.0),
        "nodata": 255,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(classes, 1)
        dst.update_tags(training_labels_sha256="0" * 64)
    return path


def values(labels: IrrigationLabels) -> list[int]:
    """The mask value of each field, in FIELDS order."""
    return labels.features["value"].tolist()


def test_dwr_codes_in_your_own_column_keep_your_meaning(tmp_path: Path) -> None:
    # D (dryland) is not in the user's map: it is ignored with a warning,
    # not read as DWR's deciduous fruits (irrigated).
    path = write_fields(tmp_path / "ne_fields.gpkg", "riego", "I", "D")
    with pytest.warns(UserWarning, match=r"riego code with no irrigation class \(D\)"):
        labels = IrrigationLabels(path, class_column="riego", class_map={"I": 1})
    assert values(labels) == [IRRIGATED, IGNORE_INDEX] * 2
    both = IrrigationLabels(path, class_column="riego", class_map={"I": 1, "D": 0})
    assert values(both) == [IRRIGATED, NOT_IRRIGATED] * 2
    # S (sí) with only N mapped: ignored, not DWR's semi-agricultural (0).
    spain = write_fields(tmp_path / "parcelas.gpkg", "regadio", "S", "N")
    with pytest.warns(UserWarning, match=r"\(S\)"):
        only_no = IrrigationLabels(spain, class_column="regadio", class_map={"N": 0})
    assert values(only_no) == [IGNORE_INDEX, NOT_IRRIGATED] * 2


@pytest.mark.parametrize(
    ("class_map", "given"),
    [(None, None), ({}, None), ({"Si": 1, "No": 0}, "class_map {'Si': 1, 'No': 0}")],
    ids=["no class_map", "empty", "matching no code"],
)
def test_your_own_column_without_a_class_map_is_refused(
    tmp_path: Path, class_map: dict[str, int] | None, given: str | None
) -> None:
    path = write_fields(tmp_path / "parcelas.gpkg", "regadio", "S", "N")
    with pytest.raises(ValueError, match="say nothing about irrigation") as info:
        IrrigationLabels(path, class_column="regadio", class_map=class_map)
    message = str(info.value)
    assert f"Label file {str(path)!r} column 'regadio' holds the codes N, S" in message
    assert '--data.init_args.class_map \'{"N": 1, "S": 0}\' for fit' in message
    assert "--class-map N=1 S=0 for evaluate, probe and embedding-map" in message
    assert (given is None) == ("maps none of them" not in message)
    if given is not None:
        assert given in message


def test_dwr_class_columns_keep_the_defaults() -> None:
    assert build_irrigation_map() == DEFAULT_IRRIGATION_MAP
    for column in ("CLASS1", "CLASS2", "Class2", "CLASS4"):
        effective = build_irrigation_map({"I": IGNORE_INDEX}, column)
        assert effective == DEFAULT_IRRIGATION_MAP | {"I": IGNORE_INDEX}
    assert build_irrigation_map({"S": 1, "N": 0}, "regadio") == {"S": 1, "N": 0}


def write_dwr_fields(path: Path, column: str) -> Path:
    """DWR crop codes (G, P, V, I, U, NV) in *column*, one per 4x4 field."""
    codes = ["G", "P", "V", "I", "U", "NV"]
    frame = gpd.GeoDataFrame(
        {column: codes},
        geometry=[field_box((0, 4 * i, 4, 4 * i + 4)) for i in range(len(codes))],
        crs=SPAIN,
    )
    frame.to_file(path)
    return path


def test_a_renamed_dwr_column_with_overrides_is_refused(tmp_path: Path) -> None:
    # The old README sent a year whose class column is named otherwise to
    # class_column; with a few overrides every other DWR class became 255,
    # with only a warning, and training ran on near-empty labels.
    path = write_dwr_fields(tmp_path / "crops_2022.gpkg", "Class2_2022")
    overrides = {"G": IGNORE_INDEX, "P": IGNORE_INDEX}
    with pytest.raises(ValueError, match="DWR crop codes") as info:
        IrrigationLabels(path, class_column="Class2_2022", class_map=overrides)
    message = str(info.value)
    assert message.startswith(
        f"Label file {str(path)!r} column 'Class2_2022' holds DWR crop codes that "
        "class_map {'G': 255, 'P': 255} leaves out (I, NV, U, V), and DWR's "
        "default classes apply only to columns named CLASS1 to CLASS4"
    ), message
    assert "rename the column to CLASS2" in message
    assert "value for every code" in message
    # Renamed to CLASS2, the same overrides update DWR's defaults.
    renamed = write_dwr_fields(tmp_path / "crops_2022_renamed.gpkg", "CLASS2")
    labels = IrrigationLabels(renamed, class_map=overrides)
    assert (
        values(labels) == [IGNORE_INDEX, IGNORE_INDEX, IRRIGATED] + [NOT_IRRIGATED] * 3
    )
    # Every code mapped: the user's own meaning, no refusal.
    full = overrides | {"V": 1, "I": 0, "U": 0, "NV": 0}
    mine = IrrigationLabels(path, class_column="Class2_2022", class_map=full)
    assert values(mine) == [IGNORE_INDEX, IGNORE_INDEX, IRRIGATED] + [NOT_IRRIGATED] * 3


def evaluate(map_path: Path, labels: Path, *options: str) -> list[str]:
    """The evaluate command line, without progress."""
    return ["evaluate", "--map", str(map_path), "--labels", str(labels), *options]


def test_evaluate_refuses_your_codes_without_class_map(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # DWR read I as idle and D as deciduous: the map scored F1 0 in silence.
    map_path = write_map(tmp_path / "es.tif")
    labels = write_fields(tmp_path / "ne_fields.gpkg", "riego", "I", "D")
    command = evaluate(map_path, labels, "--class-column", "riego", "--no-progress")
    with pytest.raises(SystemExit) as info:
        main(command)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "column 'riego' holds the codes D, I" in err
    assert "--class-map D=1 I=0 for evaluate" in err
    main([*command, "--class-map", "I=1", "D=0"])
    out = capsys.readouterr().out
    assert "tp 32" in out  # both irrigated fields, 16 pixels each
    assert "fp 0" in out
    # Every code ignored: the fix is given in evaluate's own options.
    with pytest.raises(SystemExit):
        main([*command, "--class-map", "I=255", "D=255"])
    assert "check --class-column and --class-map." in capsys.readouterr().err


@pytest.mark.parametrize("name", ["parcelas.shp", "parcelas.gpkg"])
def test_a_label_file_without_crs_is_told_the_maps_crs(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The hint named California's zone (EPSG:32610) whatever the map's CRS.
    map_path = write_map(tmp_path / "es.tif")
    labels = write_fields(tmp_path / name, "regadio", "S", "N", crs=None)
    command = evaluate(map_path, labels, "--class-column", "regadio")
    with pytest.raises(SystemExit):
        main([*command, "--class-map", "S=1", "N=0", "--no-progress"])
    err = capsys.readouterr().err
    assert "names no CRS" in err
    assert "`ogr2ogr -a_srs EPSG:32630 out.gpkg IN` if they are in EPSG:32630" in err
    assert "32610" not in err
    # Read for no imagery or map, the hint names no CRS of its own.
    with pytest.raises(ValueError, match="names no CRS") as refused:
        IrrigationLabels(labels, class_column="regadio", class_map={"S": 1})
    assert "-a_srs EPSG:CODE" in str(refused.value)
    assert "32610" not in str(refused.value)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sample scene with its DWR labels also written as Nebraska I/D codes."""
    root = tmp_path_factory.mktemp("scene")
    make_sample_scene(root, size=256)
    frame = gpd.read_file(root / "crop_mapping.gpkg")
    irrigated = frame["CLASS2"].str.strip().map(DEFAULT_IRRIGATION_MAP) == IRRIGATED
    frame["riego"] = np.where(irrigated, "I", "D")
    frame[["riego", "geometry"]].to_file(root / "riego.gpkg")
    return root


def datamodule(scene: Path, **kwargs: Any) -> CentralValleyDataModule:
    """A small labelled datamodule of *scene*'s I/D labels."""
    options: dict[str, Any] = {
        "root": str(scene),
        "labels": "riego.gpkg",
        "class_column": "riego",
        "patch_size": 32,
        "block_size": 64,
        "batch_size": 4,
        "num_views": 1,
        "stats_patches": 4,
        "cache_dir": str(scene / "cache"),
    }
    return CentralValleyDataModule(**(options | kwargs))


def test_fit_refuses_your_codes_without_class_map(scene: Path) -> None:
    dm = datamodule(scene)
    with pytest.raises(ValueError, match="column 'riego' holds the codes D, I") as info:
        dm._build_datasets()
    assert '--data.init_args.class_map \'{"D": 1, "I": 0}\'' in str(info.value)


def test_fit_one_class_warning_points_at_the_class_map(scene: Path) -> None:
    # Every code mapped irrigated: the advice names the class map, not only
    # labels the user already has.
    dm = datamodule(scene, class_map={"I": 1, "D": 1}, label_fraction=1.0)
    with pytest.warns(UserWarning, match="only learn one class") as record:
        dm.setup("fit")
    [warning] = [w for w in record if "only learn one class" in str(w.message)]
    assert "'riego' with --data.init_args.class_map" in str(warning.message)


def test_probe_takes_a_class_map(scene: Path) -> None:
    metadata = DataMetadata(
        bands=tuple(S2_BANDS),
        mean=(0.0,) * len(S2_BANDS),
        std=(1.0,) * len(S2_BANDS),
        patch_size=32,
    )
    root = str(scene)
    with pytest.raises(
        ValueError, match="--class-map D=1 I=0 for evaluate, probe and embedding-map"
    ):
        probe_datamodule(metadata, root, "riego.gpkg", 64, class_column="riego")
    dm = probe_datamodule(
        metadata,
        root,
        "riego.gpkg",
        64,
        class_column="riego",
        class_map={"I": 1, "D": 0},
    )
    assert dm.label_dataset is not None
    features = dm.label_dataset.features
    # I irrigated and D not, as the class map says (DWR: I idle, D deciduous).
    expected = np.where(features["code"] == "I", IRRIGATED, NOT_IRRIGATED)
    np.testing.assert_array_equal(features["value"].to_numpy(), expected)
    assert set(expected) == {IRRIGATED, NOT_IRRIGATED}


@pytest.mark.parametrize(
    "command",
    [
        ["probe", "--checkpoint", "m.ckpt", "--root", "data"],
        ["embedding-map", "--index", "i.parquet", "--out", "m.png"],
        ["evaluate", "--map", "m.tif", "--labels", "l.gpkg"],
    ],
    ids=["probe", "embedding-map", "evaluate"],
)
def test_every_command_with_class_column_takes_a_class_map(
    command: list[str],
) -> None:
    # Your own column needs its codes' meaning: probe and embedding-map had
    # --class-column but no --class-map, so such labels could not be used.
    from torchgeo_simclr.cli.parser import build_parser

    given = [*command, "--class-column", "regadio", "--class-map", "S=1", "N=0"]
    args = build_parser().parse_args(given)
    assert dict(args.class_map) == {"S": 1, "N": 0}
