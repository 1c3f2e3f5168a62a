"""The download manifest: which scene went into which file, from where."""

import json
from pathlib import Path
from typing import Any, Final

from ..outputs import replaced_when_complete

#: File name of the manifest inside the download root.
MANIFEST_NAME: Final[str] = "manifest.json"


class Manifest:
    """Scenes written under a download root, keyed by file name.

    Each entry records the STAC item (id, date, cloud cover, tile), the asset
    URLs read, the bbox, the grid written and how digital numbers were turned
    into reflectance. The file is rewritten (under a temporary name, then
    renamed) after every finished scene, so an interrupted download knows what
    it already has.
    """

    def __init__(self, path: Path) -> None:
        """Load the manifest at *path*, or start an empty one.

        Args:
            path: ``ROOT/manifest.json``.

        Raises:
            ValueError: if *path* exists but is not a manifest.
        """
        #: Where the manifest lives.
        self.path = path
        #: Entries by file name (relative to the root).
        self.scenes: dict[str, dict[str, Any]] = {}
        if path.exists():
            try:
                data = json.loads(path.read_text())
                #: Entries by file name (relative to the root).
                self.scenes = {entry["file"]: entry for entry in data["scenes"]}
            except (json.JSONDecodeError, KeyError, TypeError) as error:
                msg = (
                    f"{path} is not a torchgeo-simclr download manifest ({error}); "
                    "move it away or choose another --out."
                )
                raise ValueError(msg) from None

    def add(self, entry: dict[str, Any]) -> None:
        """Record a finished scene and save the manifest.

        Args:
            entry: the scene's record; ``entry["file"]`` is its key.
        """
        self.scenes[entry["file"]] = entry
        scenes = [self.scenes[name] for name in sorted(self.scenes)]
        with replaced_when_complete(self.path) as partial:
            partial.write_text(json.dumps({"scenes": scenes}, indent=2) + "\n")
