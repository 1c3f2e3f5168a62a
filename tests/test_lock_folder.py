"""The lock folder of exclusive_output: private to the user, or not used at all.

Its name in /tmp is known to every user of the machine, who could make it
first, open to all, and plant symbolic links under the lock names (which
follow from the outputs' paths) or hold the locks to block every run.
"""

import os
import stat
import tomllib
import warnings
from importlib.metadata import version
from pathlib import Path

import pytest

from torchgeo_simclr import outputs
from torchgeo_simclr.outputs import exclusive_output

PYPROJECT = Path(__file__).parents[1] / "pyproject.toml"

pytestmark = pytest.mark.skipif(
    not hasattr(os, "getuid"), reason="user ids and modes are POSIX"
)


@pytest.fixture
def folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """The shared lock folder and the user's fallbacks, all under tmp_path."""
    shared = tmp_path / "tmp" / "torchgeo-simclr-locks-1000"
    runtime = tmp_path / "run-user"
    home = tmp_path / "home"
    (tmp_path / "tmp").mkdir()
    runtime.mkdir(mode=0o700)
    home.mkdir()
    monkeypatch.setattr(outputs, "LOCK_FOLDER", shared)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr(outputs, "_UNLOCKED", set(), raising=False)
    return {
        "shared": shared,
        "runtime": runtime / "torchgeo-simclr-locks",
        "home": home / ".cache" / "torchgeo-simclr" / "locks",
    }


def _locks(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.lock")) if folder.is_dir() else []


def test_the_lock_folder_is_made_private(
    folders: dict[str, Path], tmp_path: Path
) -> None:
    # It was made with the umask's mode (0o755 or 0o775), open to others.
    with exclusive_output(tmp_path / "map.tif"):
        assert len(_locks(folders["shared"])) == 1
    mode = stat.S_IMODE(folders["shared"].stat().st_mode)
    assert mode & 0o077 == 0, oct(mode)


def test_a_world_writable_lock_folder_is_not_used(
    folders: dict[str, Path], tmp_path: Path
) -> None:
    # Another user made the folder first, open to all, and planted a link under
    # the lock's name to a file of the victim's: older filelocks truncated it.
    shared = folders["shared"]
    shared.mkdir()
    shared.chmod(0o777)
    precious = tmp_path / "precious.txt"
    precious.write_text("the user's own data")
    precious.chmod(0o600)
    out = tmp_path / "out" / "map.tif"
    with exclusive_output(out):
        # The run is held in the user's own runtime folder instead ...
        assert len(_locks(folders["runtime"])) == 1
        # ... so a second run is still refused.
        with pytest.raises(FileExistsError, match="Another torchgeo-simclr run"):
            exclusive_output(out).__enter__()
    assert _locks(shared) == []
    assert precious.read_text() == "the user's own data"
    assert stat.S_IMODE(precious.stat().st_mode) == 0o600


def test_a_symlinked_lock_folder_is_not_used(
    folders: dict[str, Path], tmp_path: Path
) -> None:
    elsewhere = tmp_path / "theirs"
    elsewhere.mkdir(mode=0o700)
    folders["shared"].symlink_to(elsewhere)
    with exclusive_output(tmp_path / "map.tif"):
        assert _locks(elsewhere) == []
        assert len(_locks(folders["runtime"])) == 1


def test_a_lock_folder_of_another_user_is_not_used(
    folders: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if the folder were another user's: this process claims another uid,
    # which owns the fallbacks it then makes as well; the runtime folder the
    # session had is left unset.
    folders["shared"].mkdir(mode=0o700)
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    monkeypatch.setattr(outputs.os, "getuid", lambda: os.geteuid() + 1)
    with (
        pytest.raises(PermissionError) as error,
        exclusive_output(tmp_path / "map.tif"),
    ):
        pytest.fail("a run went on with another user's lock folder")
    message = str(error.value)
    assert message.startswith(
        f"The lock folder {str(folders['shared'])!r} is not a private folder of "
        f"yours (owned by uid {os.geteuid()}, mode 0o700)"
    ), message
    assert "remove it (or ask its owner to)" in message
    assert "\n" not in message
    assert _locks(folders["shared"]) == []


def test_a_lock_that_cannot_be_made_is_warned_about_once(
    folders: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A read-only lock folder: the run went on without a lock and said nothing.
    if os.geteuid() == 0:  # root writes anywhere: opening the lock fails instead

        class Refused:
            def __init__(self, *_args: object, **_kwargs: object) -> None:
                pass

            def acquire(self) -> None:
                raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(outputs, "FileLock", Refused)
    else:
        folders["shared"].mkdir(mode=0o500)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name in ("a.tif", "b.tif"):
            with exclusive_output(tmp_path / name):
                pass
    assert len(caught) == 1, [str(w.message) for w in caught]
    message = str(caught[0].message)
    assert message.startswith(f"No lock could be made in {str(folders['shared'])!r}")
    assert "Permission denied" in message


def test_the_filelock_pin_opens_lock_files_without_following_links() -> None:
    # filelock < 3.20.1 truncated and chmod-ed the target of a planted link
    # (CVE-2025-68146); the pin allowed 3.12.
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    pins = [pin for pin in project["dependencies"] if pin.startswith("filelock")]
    assert pins == ["filelock>=3.20.1"]
    installed = tuple(int(part) for part in version("filelock").split(".")[:3])
    assert installed >= (3, 20, 1)
