"""What the sdist and the wheel give a packager and a user, at the declared floors."""

import argparse
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import torchgeo_simclr
from torchgeo_simclr.cli import training

ROOT = Path(__file__).resolve().parents[1]

#: What the sdist carries beside the package: a packager builds, tests and
#: documents from it (MANIFEST.in).
SDIST_FOLDERS = ("conf", "tests", "docs", "notebooks", "benchmarks", "scripts")
SDIST_FILES = ("LICENSE", "Makefile")
#: Files and folders the builds leave out (MANIFEST.in, .gitignore).
NOT_SOURCE = shutil.ignore_patterns(
    "__pycache__", "*.py[cod]", "*.ckpt", ".ipynb_checkpoints", "*.egg-info"
)


def source_files(folder: Path) -> set[str]:
    """The files under *folder*, relative to it, as the builds see them."""
    return {
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.is_file()
        and not {"__pycache__", ".ipynb_checkpoints"} & set(path.parts)
        and path.suffix not in {".pyc", ".ckpt"}
    }


class Builds:
    """The source the builds read, its sdist and the wheel built from that."""

    def __init__(self, folder: Path) -> None:
        self.source = folder / "source"  # built outside the checkout: no build/
        self.source.mkdir()
        names = (
            *SDIST_FOLDERS,
            *SDIST_FILES,
            "torchgeo_simclr",
            "pyproject.toml",
            "README.md",
            "MANIFEST.in",
        )
        for name in names:
            path = ROOT / name
            if path.is_dir():
                shutil.copytree(path, self.source / name, ignore=NOT_SOURCE)
            elif path.is_file():
                shutil.copy(path, self.source)
        shutil.rmtree(self.source / "notebooks" / "data", ignore_errors=True)
        # As `python -m build` does: the sdist, then the wheel from the sdist.
        dist = folder / "dist"
        build_sdist = (
            "import sys; from setuptools import build_meta; "
            "print(build_meta.build_sdist(sys.argv[1]))"
        )
        subprocess.run(
            [sys.executable, "-c", build_sdist, str(dist)],
            cwd=self.source,
            check=True,
            capture_output=True,
        )
        (self.sdist,) = dist.glob("*.tar.gz")
        with tarfile.open(self.sdist) as archive:
            archive.extractall(folder / "unpacked", filter="data")
            top = archive.getnames()[0].split("/")[0]
            self.sdist_files = {
                name.removeprefix(f"{top}/")
                for name in archive.getnames()
                if archive.getmember(name).isfile()
            }
        pip = [sys.executable, "-m", "pip", "wheel", "--no-deps"]
        subprocess.run(
            [*pip, "--no-build-isolation", "-q", "-w", str(dist), "."],
            cwd=folder / "unpacked" / top,
            check=True,
        )
        (self.wheel,) = dist.glob("*.whl")
        with zipfile.ZipFile(self.wheel) as archive:
            self.wheel_files = set(archive.namelist())
            (metadata,) = (
                name for name in self.wheel_files if name.endswith("info/METADATA")
            )
            self.metadata = archive.read(metadata).decode()


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Builds:
    """One sdist and one wheel for the module's tests."""
    return Builds(tmp_path_factory.mktemp("builds"))


def test_the_wheel_carries_the_type_marker(builds: Builds) -> None:
    """Without ``py.typed`` a user's mypy ignores the package's annotations."""
    assert "torchgeo_simclr/py.typed" in builds.wheel_files


def test_the_wheel_carries_every_package_and_config(builds: Builds) -> None:
    """pyproject.toml lists the packages: a new one must be listed there too.

    The configs are the repository's conf/, installed as torchgeo_simclr.conf:
    ``demo`` and ``experiment`` read them, and a wheel's user copies them.
    """
    packages = {
        f"torchgeo_simclr/{path.relative_to(builds.source / 'torchgeo_simclr')}"
        for path in (builds.source / "torchgeo_simclr").rglob("__init__.py")
    }
    assert packages <= builds.wheel_files
    configs = {path.name for path in (ROOT / "conf").glob("*.yaml")}
    assert "simclr_quickstart.yaml" in configs
    assert {f"torchgeo_simclr/conf/{name}" for name in configs} <= builds.wheel_files
    assert not [name for name in builds.wheel_files if name.startswith("conf/")]


def test_the_wheel_names_its_license_and_version(builds: Builds) -> None:
    """MIT asks for the notice to travel with every copy; one version source."""
    assert any(
        name.endswith(".dist-info/licenses/LICENSE") for name in builds.wheel_files
    )
    headers = builds.metadata.split("\n\n", 1)[0].splitlines()
    assert "License-Expression: MIT" in headers
    assert "License-File: LICENSE" in headers
    assert f"Version: {torchgeo_simclr.__version__}" in headers
    assert any(line.startswith("Author: ") for line in headers)


def test_the_sdist_carries_what_its_tests_and_docs_need(builds: Builds) -> None:
    """A packager runs the tests from the sdist: conftest.py, conf/, docs ..."""
    expected = {
        f"{folder}/{name}"
        for folder in SDIST_FOLDERS
        for name in source_files(builds.source / folder)
    }
    assert {"tests/conftest.py", "conf/simclr_quickstart.yaml"} <= expected
    assert {*expected, *SDIST_FILES} <= builds.sdist_files


def test_a_wheels_install_finds_its_configs(builds: Builds, tmp_path: Path) -> None:
    """The CLI's config_dir and experiment's default, from the wheel's files."""
    site = tmp_path / "site"
    with zipfile.ZipFile(builds.wheel) as archive:
        archive.extractall(site)
    work = tmp_path / "work"  # not the checkout: no conf/ here
    work.mkdir()
    script = (
        "from torchgeo_simclr.cli.parser import build_parser\n"
        "from torchgeo_simclr.cli.training import config_dir\n"
        "print(config_dir())\n"
        "print(build_parser().parse_args(['experiment']).config_dir)\n"
    )
    found = subprocess.run(
        [sys.executable, "-c", script],
        cwd=work,
        env={"PYTHONPATH": str(site), "PATH": ""},
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    conf = site / "torchgeo_simclr" / "conf"
    assert found == [str(conf), str(conf)]
    assert (conf / "simclr_quickstart.yaml").is_file()


def test_this_install_finds_the_configs() -> None:
    """An editable install (or a checkout) reads conf/ itself: one source."""
    found = training.config_dir()
    assert found == training.CONF_DIR
    assert {path.name for path in found.glob("*.yaml")} == {
        path.name for path in (ROOT / "conf").glob("*.yaml")
    }
    package = Path(torchgeo_simclr.__file__).resolve().parent
    if package == ROOT / "torchgeo_simclr":  # not a wheel's install
        assert found == ROOT / "conf"


def test_the_demo_looks_for_its_config_before_making_the_scene(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A missing config must not cost the half minute and 60 MB of a scene."""
    import torchgeo_simclr.sample

    made: list[Path] = []
    monkeypatch.setattr(torchgeo_simclr.sample, "make_sample_scene", made.append)
    monkeypatch.setattr(training, "CONF_DIR", tmp_path / "no_configs")
    args = argparse.Namespace(root=str(tmp_path / "scene"), retrain=False, probe=False)
    with pytest.raises(FileNotFoundError, match=r"simclr_quickstart\.yaml"):
        training._demo(args)
    assert made == []


def test_a_task_runs_on_the_lowest_torch_declared(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """torch 2.4 and 2.5 (``torch>=2.4``) have no ``torch.compiler.is_exporting``.

    A task's forward outside a Trainer (the README's own code) checks it.
    """
    import torch
    from lightning.pytorch import LightningModule

    from torchgeo_simclr.tasks.normalisation import RawInputWarning, warn_if_raw

    monkeypatch.delattr(torch.compiler, "is_exporting", raising=False)
    with pytest.warns(RawInputWarning):
        warn_if_raw(LightningModule(), torch.full((1, 3, 4, 4), 1000.0))
