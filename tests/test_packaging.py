"""What an installed wheel gives a user's tools."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_carries_the_type_marker(tmp_path: Path) -> None:
    """Without ``py.typed`` a user's mypy ignores the package's annotations."""
    source = tmp_path / "source"  # built outside the checkout: no build/ left
    shutil.copytree(ROOT / "torchgeo_simclr", source / "torchgeo_simclr")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source)
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    subprocess.run([*pip, "-q", "-w", str(tmp_path / "wheel"), str(source)], check=True)
    (wheel,) = (tmp_path / "wheel").glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert "torchgeo_simclr/py.typed" in archive.namelist()
