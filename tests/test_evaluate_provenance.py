"""Tests of what evaluate's scores file ties them to, and of undefined scores.

A nightly predict -> evaluate chain needs the scores file to say which map
it scored (absolute path, SHA-256, the checkpoint and imagery dates the
map's tags name), when, and what evaluate warned about; a score with nothing
to divide by must read as undefined, not as a poor 0.0.
"""

import hashlib
import json
import os
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio
from test_evaluate import (
    ORIGIN,
    SIZE,
    base_map,
    evaluate_command,
    lonlat_bbox,
    write_labels,
    write_map,
)

from torchgeo_simclr.cli import main
from torchgeo_simclr.evaluate import SCORES_KEYS, evaluate_map

#: Tags a map made by predict carries (see inference/writer.py), in part.
PREDICT_TAGS = {
    "software": "torchgeo-simclr 0.0.test",
    "model": "unet_resnet18",
    "checkpoint": "/runs/segment/last.ckpt",
    "checkpoint_sha256": "ab" * 32,
    "problem": "segmentation",
    "threshold": "0.35",
    "imagery_dates": "2023-07-01,2023-07-11",
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tag(path: Path, **tags: str) -> Path:
    """Add *tags* to the map at *path*, as predict writes them."""
    with rasterio.open(path, "r+") as dst:
        dst.update_tags(**tags)
    return path


def test_scores_name_the_map_absolute_with_its_hash_and_what_made_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A relative map path named another file once the job's folder changed,
    # and yesterday's map at the same path could not be told from today's.
    (tmp_path / "maps").mkdir()
    map_path = tag(write_map(tmp_path / "maps" / "m.tif", base_map()), **PREDICT_TAGS)
    write_labels(tmp_path / "labels.gpkg")
    monkeypatch.chdir(tmp_path)
    before = datetime.now(UTC).replace(microsecond=0)
    main(
        evaluate_command(
            Path("maps/m.tif"),
            Path("labels.gpkg"),
            "--scores",
            "out/m_scores.json",
            "--fields",
            "out/m_fields.gpkg",
        )
    )
    after = datetime.now(UTC)
    record = json.loads((tmp_path / "out" / "m_scores.json").read_text())
    assert record["map"] == str(map_path)
    assert record["fields_gpkg"] == str(tmp_path / "out" / "m_fields.gpkg")
    assert record["map_sha256"] == sha256(map_path)
    assert record["map_tags"] == {
        "checkpoint": "/runs/segment/last.ckpt",
        "checkpoint_sha256": "ab" * 32,
        "model": "unet_resnet18",
        "problem": "segmentation",
        "threshold": 0.35,
        "imagery_dates": ["2023-07-01", "2023-07-11"],
        "training_labels_sha256": "0" * 64,  # write_map's: other labels
        "software": "torchgeo-simclr 0.0.test",
        "software_commit": None,
    }
    created = datetime.fromisoformat(record["created"])
    assert created.tzinfo == UTC
    assert before <= created <= after
    assert 0 <= record["run_seconds"] <= (after - before).total_seconds() + 1
    assert record["warnings"] == []
    # The keys an earlier scores file is recognised by are all still there.
    assert set(record) >= SCORES_KEYS


def test_a_map_without_predict_s_tags_records_them_as_null(tmp_path: Path) -> None:
    map_path = write_map(tmp_path / "map.tif", base_map(), trained_on=None)
    scores = tmp_path / "scores.json"
    with pytest.warns(UserWarning, match="does not record the label file"):
        evaluate_map(map_path, write_labels(tmp_path / "labels.gpkg"), scores=scores)
    record = json.loads(scores.read_text())
    assert record["map_tags"] == {
        "checkpoint": None,
        "checkpoint_sha256": None,
        "model": None,
        "problem": None,
        "threshold": None,
        "imagery_dates": None,
        "training_labels_sha256": None,
        "software": None,
        "software_commit": None,
    }
    assert record["map_sha256"] == sha256(map_path)


def test_an_earlier_scores_file_without_the_new_keys_is_replaced_with_overwrite(
    tmp_path: Path,
) -> None:
    map_path = write_map(tmp_path / "map.tif", base_map())
    labels = write_labels(tmp_path / "labels.gpkg")
    scores = tmp_path / "scores.json"
    # What an evaluate of the previous version wrote, in part.
    scores.write_text(json.dumps(dict.fromkeys(SCORES_KEYS, 0)))
    evaluate_map(map_path, labels, scores=scores, overwrite=True)
    assert json.loads(scores.read_text())["map_sha256"] == sha256(map_path)


def test_undefined_scores_are_null_in_the_json_and_n_a_in_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Five not-irrigated fields and a map calling nothing irrigated: F1,
    # precision, recall and IoU have nothing to divide by; a dashboard read
    # "F1 0.0" from the file.
    labels = write_labels(tmp_path / "idle_only.gpkg", [("I", (0, 0, 4, 4))])
    map_path = write_map(tmp_path / "map.tif", np.zeros((SIZE, SIZE), np.uint8))
    scores = tmp_path / "scores.json"
    main(evaluate_command(map_path, labels, "--scores", str(scores)))
    out, err = capsys.readouterr()
    text = scores.read_text()
    assert "NaN" not in text
    record = json.loads(text)
    pixels, fields = record["pixels"], record["fields"]
    assert [pixels[key] for key in ("f1", "precision", "recall", "iou")] == [None] * 4
    assert pixels["accuracy"] == 1.0
    assert (fields["f1"], fields["accuracy"]) == (None, 1.0)
    units = record["units"]["f1, precision, recall, iou, accuracy"]
    assert "null where the denominator is 0" in units
    lines = out.splitlines()
    assert lines[1].split() == ["F1", "(irrigated)", "n/a", "n/a"]
    assert lines[2].split() == ["precision", "n/a"]
    assert lines[5].split() == ["accuracy", "1.0000", "1.0000"]
    assert any(
        line.startswith("n/a: undefined, its denominator is 0") for line in lines
    )
    assert "0.0000" not in out
    # The one-class warning is on stderr, once, and in the file.
    shown = err.splitlines()
    assert len(shown) == 1
    assert "recall is undefined (n/a)" in shown[0]
    assert shown[0] == f"torchgeo-simclr evaluate: warning: {record['warnings'][0]}"
    assert len(record["warnings"]) == 1


def test_scores_keep_the_warnings_shown_while_scoring(tmp_path: Path) -> None:
    # Scores against the model's own training labels read like a held-out
    # test; the warning went to stderr only.
    labels = write_labels(tmp_path / "labels.gpkg")
    map_path = write_map(tmp_path / "map.tif", base_map(), trained_on=sha256(labels))
    scores = tmp_path / "scores.json"
    with pytest.warns(UserWarning, match="trained the model") as shown:
        evaluate_map(map_path, labels, scores=scores)
    record = json.loads(scores.read_text())
    assert record["warnings"] == [str(w.message) for w in shown]
    assert len(record["warnings"]) == 1
    assert "is the label file that trained the model" in record["warnings"][0]
    # Warnings the filters in force turn into errors are raised as before,
    # and no scores are written.
    scores.unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UserWarning, match="trained the model"):
            evaluate_map(map_path, labels, scores=scores)
    assert not scores.exists()


def test_a_bbox_off_the_map_is_refused_before_any_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The long "label file that trained the model" warning came first, then
    # the refusal.
    fields = [("P", (0, 0, 4, 4)), ("P", (0, 5000, 4, 5004))]  # one 50 km east
    labels = write_labels(tmp_path / "labels.gpkg", fields)
    map_path = write_map(tmp_path / "map.tif", base_map(), trained_on=sha256(labels))
    x0, y0 = ORIGIN
    bbox = lonlat_bbox(x0 + 49_900, y0 - 100, x0 + 50_100, y0 + 10)
    with pytest.raises(SystemExit) as info:
        main(evaluate_command(map_path, labels, "--bbox", *(str(v) for v in bbox)))
    assert info.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert err[0].startswith("torchgeo-simclr evaluate: error: --bbox ")
    assert f"does not overlap map {str(map_path)!r}, which covers [" in err[0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match="does not overlap map"):
            evaluate_map(map_path, labels, bbox=bbox)
    assert caught == []
    assert sorted(os.listdir(tmp_path)) == ["labels.gpkg", "map.tif"]
