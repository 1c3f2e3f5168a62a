import json
import re
from collections.abc import Callable
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

import matplotlib.pyplot as plt

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def _cells(path: Path) -> list[dict]:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    assert notebook["nbformat"] == 4
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"
    return notebook["cells"]


def _source(cell: dict) -> str:
    source = cell["source"]
    return source if isinstance(source, str) else "".join(source)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.name for path in NOTEBOOKS])
def test_notebook_runs(
    path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cells = _cells(path)
    kinds = [cell["cell_type"] for cell in cells]
    assert "markdown" in kinds
    assert "code" in kinds
    code = [cell for cell in cells if cell["cell_type"] == "code"]
    # Notebooks are committed without outputs.
    assert all(not cell.get("outputs") for cell in code)

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(plt, "show", lambda *args, **kwargs: None)
    plt.close("all")
    namespace: dict[str, object] = {"__name__": "__main__"}
    try:
        for number, cell in enumerate(code, start=1):
            compiled = compile(
                _source(cell), f"{path.name} [code cell {number}]", "exec"
            )
            exec(compiled, namespace)
        assert plt.get_fignums(), f"{path.name} drew no figure"
    finally:
        plt.close("all")
    # Everything under data/ as the notebooks say: a stand-in encoder under
    # runs/simclr_quickstart would be taken for `make demo`'s by later runs.
    assert {entry.name for entry in tmp_path.iterdir()} <= {"data", "cache"}
    check = CHECKS.get(path.name)
    if check is not None:
        check(cells, namespace, capsys.readouterr().out)


def _check_ndvi_note(cells: list[dict], namespace: dict, printed: str) -> None:
    """The note on the README's NDVI figure quotes the F1 the notebook prints."""
    (f1,) = re.findall(r"^F1 \(irrigated\): (\d\.\d{3})$", printed, re.MULTILINE)
    notes = [
        _source(cell)
        for cell in cells
        if cell["cell_type"] == "markdown" and "README's 0.834" in _source(cell)
    ]
    assert len(notes) == 1, "no note on why the README's NDVI F1 differs"
    assert namespace["SIZE"] == 512
    assert f"F1 ({f1})" in notes[0]


def _check_precision(cells: list[dict], namespace: dict, printed: str) -> None:
    """Precision@k is over the top k hits and counts as docs/results.md does.

    It printed "irrigated hits: 10 of 10 labelled" then "precision@11: 1.00":
    the k and the counts did not say the same thing.
    """
    counts = re.search(
        r"^top (\d+) hits: (\d+) labelled, (\d+) of them irrigated$",
        printed,
        re.MULTILINE,
    )
    assert counts is not None, printed[-600:]
    k, labelled, irrigated = map(int, counts.groups())
    precision = re.search(r"^precision@(\d+) \(.*\): (\S+)$", printed, re.MULTILINE)
    assert precision is not None, printed[-600:]
    # k is the number of hits the search returned; the share of irrigated
    # hits among the labelled ones, as benchmarks/search_precision.py scores.
    assert int(precision.group(1)) == k == len(namespace["found"].hits)
    assert labelled <= k
    assert precision.group(2) == (f"{irrigated / labelled:.2f}" if labelled else "nan")


CHECKS: dict[str, Callable[[list[dict], dict, str], None]] = {
    "01_sample_scene.ipynb": _check_ndvi_note,
    "02_find_more_like_this.ipynb": _check_precision,
}
