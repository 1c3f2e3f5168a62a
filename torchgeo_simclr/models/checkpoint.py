"""What a checkpoint records beside the weights, and loading an encoder from it."""

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .backbone import create_backbone

#: Key of this package's metadata inside a Lightning checkpoint.
CHECKPOINT_KEY = "torchgeo_simclr"


@dataclass(frozen=True)
class DataMetadata:
    """The data a model was trained on: what inference must reproduce."""

    #: Band names in the order the model expects them.
    bands: tuple[str, ...]
    #: Per-band mean used for normalisation, reflectance x10000.
    mean: tuple[float, ...]
    #: Per-band standard deviation used for normalisation, reflectance x10000.
    std: tuple[float, ...]
    #: Side of the square training patches, pixels.
    patch_size: int

    def to_dict(self) -> dict[str, Any]:
        """Return a plain dictionary for the checkpoint.

        Returns:
            The fields as lists and ints.
        """
        return {
            key: list(v) if isinstance(v, tuple) else v
            for key, v in asdict(self).items()
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DataMetadata":
        """Rebuild from :meth:`to_dict`'s output.

        Args:
            data: the stored dictionary.

        Returns:
            The metadata.
        """
        return cls(
            bands=tuple(data["bands"]),
            mean=tuple(float(v) for v in data["mean"]),
            std=tuple(float(v) for v in data["std"]),
            patch_size=int(data["patch_size"]),
        )

    @classmethod
    def from_datamodule(
        cls, datamodule: Any, in_channels: int
    ) -> "DataMetadata | None":
        """Read bands, statistics and patch size off a datamodule.

        Args:
            datamodule: the trainer's datamodule; anything with ``bands``,
                ``mean``, ``std`` and ``patch_size`` attributes qualifies.
            in_channels: the model's number of input bands.

        Returns:
            The metadata, or None when the datamodule does not expose it.

        Raises:
            ValueError: if the datamodule's band count differs from
                *in_channels*.
        """
        names = ("bands", "mean", "std", "patch_size")
        if datamodule is None or not all(hasattr(datamodule, n) for n in names):
            return None
        bands = tuple(datamodule.bands)
        if len(bands) != in_channels:
            msg = (
                f"The model has in_channels={in_channels} but the datamodule "
                f"delivers {len(bands)} bands {list(bands)}; set "
                f"--model.init_args.in_channels {len(bands)}."
            )
            raise ValueError(msg)
        patch = datamodule.patch_size
        return cls(
            bands=bands,
            mean=tuple(float(v) for v in torch.as_tensor(datamodule.mean)),
            std=tuple(float(v) for v in torch.as_tensor(datamodule.std)),
            patch_size=int(patch if isinstance(patch, int) else patch[0]),
        )


@dataclass(frozen=True)
class Encoder:
    """A pretrained backbone with the data it expects."""

    #: The backbone, mapping ``[B, C, H, W]`` to ``[B, num_features]``.
    backbone: nn.Module
    #: timm model name.
    model: str
    #: Bands, statistics and patch size of the training data (None if unknown).
    data: DataMetadata | None


def load_encoder(path: str | Path, kind: str = "simclr") -> Encoder:
    """Load the backbone of a checkpoint written by one of this package's tasks.

    Args:
        path: the ``.ckpt`` file.
        kind: the kind of checkpoint expected (``"simclr"`` for pretraining).

    Returns:
        The backbone in eval mode, its name and its data metadata.

    Raises:
        FileNotFoundError: if *path* does not exist.
        ValueError: if the file is not a checkpoint of the expected kind.
    """
    path = Path(path)
    if not path.is_file():
        msg = (
            f"Checkpoint {str(path)!r} does not exist; pass the .ckpt file that "
            "a fit run wrote."
        )
        raise FileNotFoundError(msg)
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    meta = checkpoint.get(CHECKPOINT_KEY) if isinstance(checkpoint, dict) else None
    if meta is None or meta.get("kind") != kind:
        found = (
            "no torchgeo-simclr metadata"
            if meta is None
            else f"kind {meta.get('kind')!r}"
        )
        msg = (
            f"Checkpoint {str(path)!r} has {found} but a {kind!r} checkpoint was "
            f"expected; pass a checkpoint written by the {kind} stage."
        )
        raise ValueError(msg)
    backbone = create_backbone(meta["model"], in_channels=meta["in_channels"])
    prefix = "backbone."
    state = {
        key[len(prefix) :]: value
        for key, value in checkpoint["state_dict"].items()
        if key.startswith(prefix)
    }
    backbone.load_state_dict(state)
    backbone.eval()
    data = meta.get("data")
    return Encoder(
        backbone=backbone,
        model=meta["model"],
        data=None if data is None else DataMetadata.from_dict(data),
    )
