"""Tests of the t-SNE embedding map (torchgeo_simclr.embeddings.projection)."""

import math
from datetime import date
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
import shapely
from conftest import (
    FAKE_CRS,
    FAKE_FIELDS,
    FAKE_ORIGIN,
    FAKE_SIZE,
    fake_dwr_gpkg,
    fake_s2_multiband,
)
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from PIL import Image
from pyproj import CRS

from torchgeo_simclr.constants import IGNORE_INDEX
from torchgeo_simclr.datasets.dwr import DEFAULT_IRRIGATION_MAP
from torchgeo_simclr.embeddings import projection
from torchgeo_simclr.embeddings.index import IndexInfo, IndexWriter, read_index
from torchgeo_simclr.embeddings.projection import (
    FIGURE_DPI,
    FIGURE_SIDE,
    UNKNOWN_DATE_COLOUR,
    _draw_dates,
    embedding_map,
    patch_majority_labels,
    project,
    sample_rows,
)
from torchgeo_simclr.embeddings.sheet import contact_sheet

PATCH = 32
RES = 10.0
DIM = 16
#: DWR codes of the irrigated fake fields.
IRRIGATED_CODES = {"G", "P", "V"}


def make_info(root: Path) -> IndexInfo:
    return IndexInfo(
        checkpoint_id="0123456789abcdef",
        checkpoint="/tmp/encoder.ckpt",
        model="resnet18",
        dim=DIM,
        patch_size=PATCH,
        stride=PATCH,
        root=str(root),
        bands=("B02", "B03", "B04", "B08"),
        crs=CRS.from_user_input(FAKE_CRS).to_wkt(),
        res=RES,
        origin=FAKE_ORIGIN,
    )


def grid() -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Top-left pixels of the 8 x 8 grid of 32 px patches over the fake scene."""
    starts = np.arange(0, FAKE_SIZE, PATCH, dtype=np.int64)
    rows, cols = np.meshgrid(starts, starts, indexing="ij")
    return rows.ravel(), cols.ravel()


def footprints(
    rows: npt.NDArray[np.int64], cols: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    x0, y0 = FAKE_ORIGIN
    xmin = x0 + cols * RES
    ymax = y0 - rows * RES
    return np.stack(
        [xmin, ymax - PATCH * RES, xmin + PATCH * RES, ymax], axis=1
    ).astype(np.float64)


def irrigated_share(bounds: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Share of each footprint inside an irrigated field, from the geometry."""
    irrigated = shapely.union_all(
        [shapely.box(*box) for code, box in FAKE_FIELDS if code in IRRIGATED_CODES]
    )
    boxes = shapely.box(*bounds.T)
    return np.asarray(
        shapely.area(shapely.intersection(boxes, irrigated)) / shapely.area(boxes)
    )


def write_index(
    path: Path,
    root: Path,
    rows: npt.NDArray[np.int64],
    cols: npt.NDArray[np.int64],
    embeddings: npt.NDArray[np.float32],
    dates: list[date],
    batch: int = 16,
) -> Path:
    with IndexWriter(path, make_info(root)) as writer:
        for i in range(0, len(rows), batch):
            part = slice(i, i + batch)
            writer.write(rows[part], cols[part], dates[part], embeddings[part])
    return path


def clustered_embeddings(
    irrigated: npt.NDArray[np.bool_], seed: int = 0
) -> npt.NDArray[np.float32]:
    """Irrigated patches near one axis, the others near another, with noise."""
    rng = np.random.default_rng(seed)
    centres = np.zeros((len(irrigated), DIM), dtype=np.float32)
    centres[irrigated, 0] = 1.0
    centres[~irrigated, 1] = 1.0
    noise = rng.normal(0.0, 0.05, (len(irrigated), DIM)).astype(np.float32)
    return centres + noise


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A fake scene, its labels and an index of two clusters over it."""
    base = tmp_path_factory.mktemp("embedding_map")
    root = base / "s2"
    fake_s2_multiband(root)
    labels = fake_dwr_gpkg(base / "labels")
    rows, cols = grid()
    irrigated = irrigated_share(footprints(rows, cols)) > 0.5
    dates = [date(2023, 7, 15) if r < 128 else date(2023, 8, 24) for r in rows]
    index = write_index(
        base / "index.parquet",
        root,
        rows,
        cols,
        clustered_embeddings(irrigated),
        dates,
    )
    return {"base": base, "root": root, "labels": labels, "index": index}


def png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.load()
        return image.size


EXPECTED_SIDE = round(FIGURE_SIDE * FIGURE_DPI)


def test_patch_majority_labels(scene: dict[str, Path]) -> None:
    info, table = read_index(scene["index"])
    labels = patch_majority_labels(info, table, scene["labels"])
    assert labels.shape == (len(table),)
    assert labels.dtype == np.int64
    found = {
        (row, col): int(value)
        for row, col, value in zip(
            table.column("row").to_pylist(),
            table.column("col").to_pylist(),
            labels,
            strict=True,
        )
    }
    expected = {
        # Inside the grain field "G": irrigated.
        (32, 32): 1,
        # 704 px idle "I" and 320 px vineyard "V" (V is later, so it wins):
        # fully labelled, mostly not irrigated.
        (32, 128): 0,
        # Inside the pasture "P": irrigated.
        (160, 128): 1,
        # 768 px urban "U", the rest unlabelled: 75% labelled, not irrigated.
        (192, 32): 0,
        # 960 px of "X" (says nothing) and 64 px with no polygon: unlabelled.
        (160, 32): IGNORE_INDEX,
        # Only 44 px of "G": less than half labelled.
        (0, 0): IGNORE_INDEX,
        # No polygon at all.
        (0, 224): IGNORE_INDEX,
        # 256 px of "P": a quarter labelled.
        (224, 224): IGNORE_INDEX,
    }
    assert {key: found[key] for key in expected} == expected


def test_labels_with_another_class_column(
    scene: dict[str, Path], tmp_path: Path
) -> None:
    frame = gpd.read_file(scene["labels"]).rename(columns={"CLASS2": "CROP"})
    renamed = tmp_path / "crop_mapping.gpkg"
    frame.to_file(renamed)
    info, table = read_index(scene["index"])
    expected = patch_majority_labels(info, table, scene["labels"])
    with pytest.raises(ValueError, match="--class-column"):
        patch_majority_labels(info, table, renamed)
    # A column of another name is not DWR's: its codes need a class map, and
    # with DWR's own they give the same labels.
    with pytest.raises(ValueError, match="without a class map"):
        patch_majority_labels(info, table, renamed, class_column="CROP")
    got = patch_majority_labels(
        info,
        table,
        renamed,
        class_column="CROP",
        class_map=dict(DEFAULT_IRRIGATION_MAP),
    )
    np.testing.assert_array_equal(got, expected)


def test_project_separates_clusters(scene: dict[str, Path]) -> None:
    rows, cols = grid()
    irrigated = irrigated_share(footprints(rows, cols)) > 0.5
    assert 5 < irrigated.sum() < len(irrigated) - 5
    xy = project(clustered_embeddings(irrigated), perplexity=30.0, seed=0)
    assert xy.shape == (len(rows), 2)
    assert np.isfinite(xy).all()
    distance = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    same = irrigated[:, None] == irrigated[None]
    off_diagonal = ~np.eye(len(xy), dtype=bool)
    within = distance[same & off_diagonal].mean()
    between = distance[~same].mean()
    assert between > 3 * within
    np.testing.assert_array_equal(project(clustered_embeddings(irrigated)), xy)


def test_project_clamps_perplexity_for_few_points() -> None:
    embeddings = np.eye(3, 4, dtype=np.float32) + 0.01
    xy = project(embeddings, perplexity=30.0)
    assert xy.shape == (3, 2)
    assert np.isfinite(xy).all()


def test_project_needs_three_points() -> None:
    with pytest.raises(ValueError, match=r"at least 3"):
        project(np.ones((2, 4), dtype=np.float32))


def test_sample_rows_is_seeded() -> None:
    first = sample_rows(1000, 50, seed=3)
    assert len(first) == 50
    assert len(np.unique(first)) == 50
    assert (np.diff(first) > 0).all()
    assert first.min() >= 0
    assert first.max() < 1000
    np.testing.assert_array_equal(sample_rows(1000, 50, seed=3), first)
    assert not np.array_equal(sample_rows(1000, 50, seed=4), first)
    np.testing.assert_array_equal(sample_rows(40, 50), np.arange(40))


def test_embedding_map_with_labels_and_thumbnails(
    scene: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "maps" / "tsne.png"
    result = embedding_map(
        scene["index"],
        out,
        labels=scene["labels"],
        thumbnails=5,
        progress=False,
    )
    assert result == out
    assert png_size(out) == (EXPECTED_SIDE, EXPECTED_SIDE)
    assert [p.name for p in out.parent.iterdir()] == ["tsne.png"]
    plain = embedding_map(
        scene["index"], tmp_path / "plain.png", labels=scene["labels"], progress=False
    )
    assert plain.read_bytes() != out.read_bytes()


def test_embedding_map_by_date_samples_repeatably(
    scene: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = embedding_map(scene["index"], tmp_path / "a.png", max_points=20, seed=1)
    assert "Mapping 20 of 64 patches" in capsys.readouterr().err
    second = embedding_map(
        scene["index"], tmp_path / "b.png", max_points=20, seed=1, progress=False
    )
    assert capsys.readouterr().err == ""
    assert png_size(first) == (EXPECTED_SIDE, EXPECTED_SIDE)
    assert first.read_bytes() == second.read_bytes()


def test_embedding_map_single_date(tmp_path: Path) -> None:
    rows, cols = grid()
    rows, cols = rows[:6], cols[:6]
    embeddings = np.random.default_rng(0).normal(size=(6, DIM)).astype(np.float32)
    index = write_index(
        tmp_path / "small.parquet",
        tmp_path / "missing",
        rows,
        cols,
        embeddings,
        [date(2023, 7, 15)] * 6,
    )
    out = embedding_map(index, tmp_path / "small.png", progress=False)
    assert png_size(out) == (EXPECTED_SIDE, EXPECTED_SIDE)


def test_embedding_map_overwrite(scene: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "map.png"
    embedding_map(scene["index"], out, max_points=10, progress=False)
    before = out.read_bytes()
    with pytest.raises(FileExistsError, match=r"already exists; pass --overwrite"):
        embedding_map(scene["index"], out, progress=False)
    assert out.read_bytes() == before
    # An earlier map is replaced, here by one of another seed.
    embedding_map(
        scene["index"], out, max_points=10, seed=1, overwrite=True, progress=False
    )
    assert out.read_bytes() != before
    assert png_size(out) == (EXPECTED_SIDE, EXPECTED_SIDE)


def test_embedding_map_overwrites_only_its_own_png(
    scene: dict[str, Path], tmp_path: Path
) -> None:
    """`embedding-map --out photo.png --overwrite` replaced any PNG."""
    text = tmp_path / "notes.png"
    text.write_bytes(b"keep me")
    picture = tmp_path / "picture.png"
    figure = Figure(figsize=(1, 1))
    figure.add_subplot().plot([0, 1])
    figure.savefig(picture, format="png")  # Matplotlib's, as the map is
    sheet = tmp_path / "sheet.png"
    contact_sheet([np.zeros((3, 4, 4), np.float32)], ["query"], sheet, queries=1)
    whys = {
        text: "not an image",
        picture: "no 'Software' text of torchgeo-simclr",
        sheet: "its 'Description' is not 'torchgeo-simclr embedding map'",
    }
    kept = {path: path.read_bytes() for path in whys}
    for out, why in whys.items():
        for overwrite in (True, False):
            with pytest.raises(FileExistsError) as refused:
                embedding_map(scene["index"], out, overwrite=overwrite, progress=False)
            assert str(refused.value) == (
                f"--out {str(out)!r} is not an embedding map drawn by embedding-map "
                f"({why}), so even --overwrite does not replace it; choose another "
                "--out or remove it yourself (nothing was written)."
            )
    assert {path: path.read_bytes() for path in kept} == kept
    assert sorted(tmp_path.iterdir()) == sorted(kept)


def test_embedding_map_rechecks_its_output_before_renaming(
    scene: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file put at --out during the t-SNE is kept."""
    out = tmp_path / "map.png"

    def meanwhile(*args: Any, **kwargs: Any) -> Any:
        out.write_bytes(b"keep me")
        return project(*args, **kwargs)

    monkeypatch.setattr(projection, "project", meanwhile)
    with pytest.raises(FileExistsError, match=r"is not an embedding map"):
        embedding_map(
            scene["index"], out, max_points=10, overwrite=True, progress=False
        )
    assert out.read_bytes() == b"keep me"
    assert sorted(tmp_path.iterdir()) == [out]


def test_embedding_map_needs_png(scene: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"must be a \.png file"):
        embedding_map(scene["index"], tmp_path / "map.jpg", progress=False)


def test_embedding_map_missing_index(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.parquet' does not exist"):
        embedding_map(tmp_path / "nope.parquet", tmp_path / "map.png")


def test_embedding_map_unreadable_index(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"not parquet")
    with pytest.raises(ValueError, match=r"not a readable Parquet file"):
        embedding_map(path, tmp_path / "map.png")


def test_embedding_map_not_an_index(tmp_path: Path) -> None:
    path = tmp_path / "table.parquet"
    pd.DataFrame({"a": [1, 2, 3]}).to_parquet(path)
    with pytest.raises(ValueError, match=r"not an embedding index"):
        embedding_map(path, tmp_path / "map.png")


def test_embedding_map_too_few_rows(scene: dict[str, Path], tmp_path: Path) -> None:
    rows, cols = grid()
    index = write_index(
        tmp_path / "two.parquet",
        scene["root"],
        rows[:2],
        cols[:2],
        np.ones((2, DIM), dtype=np.float32),
        [date(2023, 7, 15)] * 2,
    )
    with pytest.raises(ValueError, match=r"holds 2 patch\(es\) but .* at least 3"):
        embedding_map(index, tmp_path / "map.png")


def test_embedding_map_labels_elsewhere(scene: dict[str, Path], tmp_path: Path) -> None:
    far = [
        (code, (x0 + 50_000, y0 + 50_000, x1 + 50_000, y1 + 50_000))
        for code, (x0, y0, x1, y1) in FAKE_FIELDS
    ]
    labels = fake_dwr_gpkg(tmp_path, fields=far)
    with pytest.raises(
        ValueError,
        match=r"No label polygons intersect \[-?\d+\.\d{1,4}, .*\] .* the "
        r"file\(s\) cover .*\[.*\]",
    ):
        embedding_map(scene["index"], tmp_path / "map.png", labels=labels)


def test_embedding_map_missing_root(scene: dict[str, Path], tmp_path: Path) -> None:
    missing = tmp_path / "no-imagery"
    with pytest.raises(FileNotFoundError, match=r"no-imagery'?, which does not exist"):
        embedding_map(scene["index"], tmp_path / "map.png", root=missing, thumbnails=3)
    assert not (tmp_path / "map.png").exists()


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"max_points": 2}, "--max-points must be at least 3"),
        ({"thumbnails": -1}, "--thumbnails must be 0 or more"),
        ({"perplexity": 0.0}, "--perplexity must be a finite number above 0"),
        # NaN passed `<= 0` and reached scikit-learn, not naming the option.
        ({"perplexity": math.nan}, "--perplexity must be a finite number above 0"),
        ({"perplexity": math.inf}, "--perplexity must be a finite number above 0"),
    ],
)
def test_option_errors_name_the_command_line_option(
    tmp_path: Path, option: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        embedding_map(tmp_path / "index.parquet", tmp_path / "map.png", **option)


def test_patches_of_unknown_date_are_drawn_grey() -> None:
    # Before, NaT joined the date colours as a day 292 years before 1970.
    figure = Figure()
    ax = figure.add_subplot()
    dates = np.array([None] * 3 + ["2023-07-15"] * 2, dtype="datetime64[D]")
    _draw_dates(figure, ax, np.arange(10.0).reshape(5, 2), dates)
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend == ["Date unknown (3)", "Acquired 2023-07-15 (2)"]
    grey = ax.collections[0].get_facecolor()[0]
    assert to_hex(grey) == UNKNOWN_DATE_COLOUR
