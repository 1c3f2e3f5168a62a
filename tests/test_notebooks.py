import json
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
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
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
