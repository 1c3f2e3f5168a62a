"""What a checkpoint records beside the weights, and loading an encoder from it."""

import hashlib
import itertools
import math
import os
import pickle
import re
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, overload

import torch
from torch import Tensor, nn

from ..lonlat import lonlat_extent
from ..software import cached_file_digest
from .backbone import (
    PooledFeatures,
    create_backbone,
    file_options,
    reserved_options,
)
from .classifier import IrrigationModel, ModelSpec

#: Key of this package's metadata inside a Lightning checkpoint.
CHECKPOINT_KEY = "torchgeo_simclr"

#: Checkpoint kinds that hold a backbone: those of every training stage.
BACKBONE_KINDS: tuple[str, ...] = ("simclr", "finetune", "distill")

#: Each checkpoint kind's stage, and the quickstart command that writes one.
KIND_STAGES: dict[str, tuple[str, str]] = {
    "simclr": (
        "SimCLR pretraining",
        "`torchgeo fit --config conf/simclr_quickstart.yaml`",
    ),
    "finetune": (
        "fine-tuning",
        "`torchgeo fit --config conf/segment_quickstart.yaml` (a per-pixel model, "
        "for 10 m maps) or conf/finetune_quickstart.yaml",
    ),
    "distill": (
        "distillation",
        "`torchgeo fit --config conf/distill_quickstart.yaml`",
    ),
}


def kind_writers(kinds: Sequence[str]) -> str:
    """The stages that write checkpoints of *kinds*, and a command for the first.

    Args:
        kinds: accepted checkpoint kinds (keys of :data:`KIND_STAGES`), e.g.
            ``("finetune", "distill")``.

    Returns:
        E.g. ``"the fine-tuning or distillation stage, e.g. by `torchgeo fit
        --config conf/segment_quickstart.yaml` (...)"``.
    """
    known = [kind for kind in kinds if kind in KIND_STAGES]
    if not known:  # a kind of a task outside this package
        return f"the {' or '.join(map(repr, kinds))} stage"
    *others, last = [KIND_STAGES[kind][0] for kind in known]
    named = f"{', '.join(others)} or {last}" if others else last
    return f"the {named} stage, e.g. by {KIND_STAGES[known[0]][1]}"


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
    #: Digest of the train / val / test blocks or patches (None if unknown):
    #: two runs with the same digest share the same held-out data.
    split: str | None = None
    #: Digest of the val and test blocks alone (None if unknown or not
    #: blocks): runs whose training blocks keep another distance from them
    #: (``split_buffer``) share it.
    held_out: str | None = None
    #: What data it is: ``"bigearthnet"`` (BigEarthNet-S2 patches),
    #: ``"scene"`` (a Sentinel-2 scene cut into blocks, e.g. the Central
    #: Valley), or None where unknown (checkpoints of earlier versions).
    dataset: str | None = None
    #: ``[min lon, min lat, max lon, max lat]`` (EPSG:4326 degrees) of the
    #: split blocks of scene data (None otherwise, or unknown).
    extent: tuple[float, ...] | None = None
    #: The datamodule's options that make its split, by option name (e.g.
    #: ``root``, ``bbox``, ``bbox_crs``, ``block_size``, ``split_fractions``,
    #: ``split_buffer``, ``seed``; BigEarthNet: ``root``, ``scheme``,
    #: ``split_seed``), as plain JSON values; None where unknown (checkpoints
    #: of earlier versions, or a datamodule without ``split_settings``).
    settings: dict[str, Any] | None = None
    #: Sensing dates (``YYYY-MM-DD``, sorted; ``unknown`` for undated
    #: products) of the scene imagery under the region trained on, e.g.
    #: ``("2023-07-15",)``; None where unknown (BigEarthNet patches, or
    #: checkpoints of earlier versions).
    imagery_dates: tuple[str, ...] | None = None

    @property
    def kind(self) -> str | None:
        """:attr:`dataset`, or what the splits recorded tell of it.

        Checkpoints of earlier versions record no :attr:`dataset`; those that
        record :attr:`held_out` blocks were trained on a scene.
        """
        if self.dataset is not None:
            return self.dataset
        return SCENE if self.held_out else None

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
    def from_dict(
        cls, data: dict[str, Any], source: str | os.PathLike[str] | None = None
    ) -> "DataMetadata":
        """Rebuild from :meth:`to_dict`'s output.

        Args:
            data: the stored dictionary.
            source: the checkpoint it was read from, for the message.

        Returns:
            The metadata.

        Raises:
            ValueError: if its normalisation statistics cannot standardise
                the bands (see :func:`check_statistics`).
        """
        check_statistics(data, source)
        return cls(
            bands=tuple(data["bands"]),
            mean=tuple(float(v) for v in data["mean"]),
            std=tuple(float(v) for v in data["std"]),
            patch_size=int(data["patch_size"]),
            split=data.get("split"),
            held_out=data.get("held_out"),
            dataset=data.get("dataset"),
            extent=None
            if data.get("extent") is None
            else tuple(float(v) for v in data["extent"]),
            settings=data.get("settings"),
            imagery_dates=None
            if data.get("imagery_dates") is None
            else tuple(str(v) for v in data["imagery_dates"]),
        )

    @classmethod
    def from_checkpoint(
        cls, checkpoint: dict[str, Any], source: str | os.PathLike[str] | None = None
    ) -> "DataMetadata | None":
        """Read the metadata a task stored in a Lightning checkpoint.

        Args:
            checkpoint: the loaded checkpoint dictionary.
            source: the file it was read from, for the message.

        Returns:
            The metadata, None when the checkpoint records none.

        Raises:
            ValueError: if its normalisation statistics cannot standardise
                the bands (see :func:`check_statistics`).
        """
        data = checkpoint.get(CHECKPOINT_KEY, {}).get("data")
        return None if data is None else cls.from_dict(data, source)

    @classmethod
    def from_datamodule(
        cls, datamodule: Any, in_channels: int
    ) -> "DataMetadata | None":
        """Read bands, statistics and patch size off a datamodule.

        Args:
            datamodule: the trainer's datamodule; anything with ``bands``,
                ``mean``, ``std`` and ``patch_size`` attributes qualifies. Its
                split is its ``split_fingerprint`` (a string) if it has one,
                else the digest of its ``split_blocks`` (geometries), and
                its held-out data the digest of the val and test blocks.
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
                f"delivers {len(bands)} bands {list(bands)}; pass the "
                f"{in_channels} bands the model takes as --data.init_args.bands "
                "(or, when training from scratch, set --model.init_args.in_channels "
                f"{len(bands)})."
            )
            raise ValueError(msg)
        patch = datamodule.patch_size
        split, held_out = datamodule_split(datamodule)
        return cls(
            bands=bands,
            mean=tuple(float(v) for v in torch.as_tensor(datamodule.mean)),
            std=tuple(float(v) for v in torch.as_tensor(datamodule.std)),
            patch_size=int(patch if isinstance(patch, int) else patch[0]),
            split=split,
            held_out=held_out,
            dataset=getattr(datamodule, "dataset_kind", None)
            or (SCENE if held_out else None),
            extent=blocks_extent(datamodule),
            settings=getattr(datamodule, "split_settings", None),
            imagery_dates=imagery_dates(datamodule),
        )


#: :attr:`DataMetadata.dataset` of data split into blocks of a scene.
SCENE = "scene"


def check_statistics(
    data: Mapping[str, Any], source: str | os.PathLike[str] | None = None
) -> None:
    """Refuse normalisation statistics that would turn every pixel into NaN.

    A NaN or infinite mean or standard deviation, or a deviation of 0 or
    below, makes every standardised pixel NaN or infinite: the map would be
    all nodata, blamed on the imagery.

    Args:
        data: :meth:`DataMetadata.to_dict`'s output, as a checkpoint stores it.
        source: the checkpoint it was read from, for the message.

    Raises:
        ValueError: if there is not one finite mean and one finite deviation
            above 0 per band.
    """
    named = "A checkpoint" if source is None else f"Checkpoint {os.fspath(source)!r}"
    bands = [str(band) for band in data["bands"]]
    mean, std = list(data["mean"]), list(data["std"])
    if not len(mean) == len(std) == len(bands):
        msg = (
            f"{named} records {len(mean)} normalisation means and {len(std)} "
            f"standard deviations for its {len(bands)} bands {bands}; the file "
            "was altered or damaged: use the checkpoint the fit run wrote, or "
            "fit again."
        )
        raise ValueError(msg)
    bad = []
    for band, m, s in zip(bands, mean, std, strict=True):
        faults = []
        if not _finite(m):
            faults.append(f"mean {m}")
        if not _finite(s) or float(s) <= 0:
            faults.append(f"std {s}")
        if faults:
            bad.append(f"{band} ({', '.join(faults)})")
    if bad:
        msg = (
            f"{named} records normalisation statistics that cannot standardise "
            f"band{'s' if len(bad) > 1 else ''} {', '.join(bad)} (a mean must be "
            "finite and a standard deviation finite and above 0, else every pixel "
            "is NaN and the map all nodata); the checkpoint is damaged or was "
            "trained on data with no valid pixels in those bands: fit it again on "
            "imagery with data, or use another checkpoint."
        )
        raise ValueError(msg)


def _finite(value: Any) -> bool:
    """Whether *value* is a finite number."""
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def imagery_dates(datamodule: Any) -> tuple[str, ...] | None:
    """The sensing dates of a scene datamodule's imagery, or None.

    Args:
        datamodule: a set-up datamodule; one with an ``imagery_dates()``
            method (e.g. :class:`~torchgeo_simclr.datamodules.CentralValleyDataModule`)
            is asked.

    Returns:
        Its dates, e.g. ``("2023-07-15",)``; None where it has no such method
        or names no date.
    """
    method = getattr(datamodule, "imagery_dates", None)
    dates = tuple(str(d) for d in method()) if callable(method) else ()
    return dates or None


def datamodule_split(datamodule: Any) -> tuple[str | None, str | None]:
    """A datamodule's split and held-out data, as :class:`DataMetadata` records them.

    Args:
        datamodule: a set-up datamodule: its ``split_fingerprint`` (a string)
            if it has one, else its ``split_blocks`` (geometries) are read.

    Returns:
        The split's digest and that of the val and test blocks alone (None
        where unknown, or not blocks).
    """
    split = getattr(datamodule, "split_fingerprint", None)
    blocks = None if split else getattr(datamodule, "split_blocks", None)
    if not blocks:
        return split, None
    held_out = split_digest({k: v for k, v in blocks.items() if k != "train"})
    return split_digest(blocks), held_out


def blocks_extent(datamodule: Any) -> tuple[float, ...] | None:
    """The lon/lat extent of a datamodule's split blocks.

    Args:
        datamodule: a set-up datamodule with ``split_blocks`` and a
            ``dataset`` with a ``crs``.

    Returns:
        ``(min lon, min lat, max lon, max lat)``, None without blocks or CRS.
    """
    blocks = getattr(datamodule, "split_blocks", None)
    crs = getattr(getattr(datamodule, "dataset", None), "crs", None)
    if not blocks or crs is None:
        return None
    bounds = [b.bounds for b in blocks.values() if not b.is_empty]
    if not bounds:
        return None
    xmin, ymin = min(b[0] for b in bounds), min(b[1] for b in bounds)
    xmax, ymax = max(b[2] for b in bounds), max(b[3] for b in bounds)
    return tuple(lonlat_extent((xmin, ymin, xmax, ymax), crs, 6))


def split_digest(blocks: dict[str, Any] | None) -> str | None:
    """Fingerprint a spatial split so stages can check they share it.

    Args:
        blocks: split name → geometry (a datamodule's ``split_blocks``).

    Returns:
        A short hex digest of the geometries, None without blocks.
    """
    if not blocks:
        return None
    text = "|".join(f"{name}:{blocks[name].wkt}" for name in sorted(blocks))
    return hashlib.sha1(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Encoder:
    """A pretrained backbone with the data it expects."""

    #: The backbone, mapping ``[B, C, H, W]`` to ``[B, num_features]``.
    backbone: nn.Module
    #: timm model name.
    model: str
    #: Bands, statistics and patch size of the training data (None if unknown).
    data: DataMetadata | None
    #: Further ``timm.create_model`` arguments the backbone was built with.
    backbone_kwargs: dict[str, Any] | None = field(default=None, hash=False)


@overload
def absolute_if_present(path: str) -> str: ...
@overload
def absolute_if_present(path: None) -> None: ...
def absolute_if_present(path: str | None) -> str | None:
    """The absolute path of an existing file, else *path* as given.

    A task saves its checkpoint arguments among its hyperparameters, which
    Lightning reuses when it restores the task (``--ckpt_path``): absolute,
    they still lead to the file when the run is restored from another
    folder; a missing file keeps the name its error message should show.

    Args:
        path: a file path, or None.

    Returns:
        The resolved path, or *path*.
    """
    if path is None or not Path(path).is_file():
        return path
    return str(Path(path).resolve())


def not_found(what: str, path: str | Path, writer: str) -> str:
    """The sentence for a checkpoint path where there is no file.

    Args:
        what: e.g. ``"Checkpoint"`` or ``"Teacher"``.
        path: the path as given.
        writer: the run that writes such a file, e.g. ``"a fine-tuning run"``.

    Returns:
        One sentence; a relative path is named with the folder it was read
        from, since configs name their checkpoints relative to the
        repository's root, and a path where a config in ``conf/`` writes
        (``runs/<config>/checkpoints/``) with the command that writes it.
    """
    where = (
        ""
        if Path(path).is_absolute()
        else f" (read from the working directory {os.getcwd()})"
    )
    parts = Path(path).parts
    config = Path("conf", f"{parts[-3]}.yaml") if len(parts) >= 3 else None
    if parts[-2:-1] == ("checkpoints",) and config is not None and config.is_file():
        # runs/<config>/checkpoints/last.ckpt: where that config's fit writes.
        return (
            f"{what} {str(path)!r} does not exist{where}; `torchgeo fit --config "
            f"{config.as_posix()}` writes it, or pass the .ckpt file that {writer} "
            "wrote."
        )
    return (
        f"{what} {str(path)!r} does not exist{where}; pass the .ckpt file that "
        f"{writer} wrote."
    )


def read_checkpoint(
    path: str | Path, kinds: Sequence[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Open a checkpoint of this package and check its kind.

    Args:
        path: the ``.ckpt`` file.
        kinds: the accepted kinds (``simclr``, ``finetune``, ``distill``).

    Returns:
        The whole checkpoint and its torchgeo-simclr metadata.

    Raises:
        FileNotFoundError: if *path* does not exist.
        ValueError: if the file is not a checkpoint of an accepted kind, or
            holds objects other than tensors and plain values (unpickling
            them could run any code, so they are not loaded).
    """
    path = Path(path)
    if path.is_dir():
        msg = (
            f"Checkpoint {str(path)!r} is a folder; pass the .ckpt file inside "
            "it that a fit run wrote (e.g. checkpoints/last.ckpt)."
        )
        raise ValueError(msg)
    if not path.is_file():
        raise FileNotFoundError(not_found("Checkpoint", path, "a fit run"))
    try:
        # This package's checkpoints hold only tensors and plain values; a
        # full unpickling of a file someone sent could run any code.
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        text = str(error)
        if "GLOBAL" in text or "allowlisted" in text:
            named = re.search(r"GLOBAL (\S+)|but got (.+?)\s*$", text, re.MULTILINE)
            what = "" if named is None else f" ({named[1] or named[2]})"
            msg = (
                f"Checkpoint {str(path)!r} holds objects other than tensors and "
                f"plain values{what}, so it was not written by a fit of "
                "torchgeo-simclr (or was altered since) and is not loaded, as "
                "unpickling it could run any code; if you trust it, load it "
                "yourself with torch.load(weights_only=False) and re-save it "
                "with only tensors and plain values, or else pass a checkpoint "
                "a fit of torchgeo-simclr wrote."
            )
            raise ValueError(msg) from None
        found = text.split("error:")[-1].strip().splitlines()[0].rstrip(".")
        msg = (
            f"Checkpoint {str(path)!r} is not a readable PyTorch checkpoint "
            f"({found}); pass a .ckpt file that a fit run wrote, and copy it "
            "again if it was cut short."
        )
        raise ValueError(msg) from error
    # The weights-only unpickler meets damaged bytes with these as well.
    except (EOFError, RuntimeError, KeyError, IndexError, ValueError) as error:
        found = str(error).split(". ")[0].rstrip(".")
        if isinstance(error, EOFError):
            found = "it ends early"
        elif not isinstance(error, RuntimeError):
            found = f"{type(error).__name__} {found}"
        msg = (
            f"Checkpoint {str(path)!r} is not a readable PyTorch checkpoint "
            f"({found}); pass a .ckpt file that a fit run wrote, and copy it "
            "again if it was cut short."
        )
        raise ValueError(msg) from error
    meta = checkpoint.get(CHECKPOINT_KEY) if isinstance(checkpoint, dict) else None
    if meta is None or meta.get("kind") not in kinds:
        found = (
            "no torchgeo-simclr metadata"
            if meta is None
            else f"kind {meta.get('kind')!r}"
        )
        expected = " or ".join(repr(kind) for kind in kinds)
        msg = (
            f"Checkpoint {str(path)!r} has {found} but a {expected} checkpoint "
            f"was expected; pass a checkpoint written by {kind_writers(kinds)}."
        )
        raise ValueError(msg)
    check_metadata(path, meta)
    return checkpoint, meta


def check_metadata(path: str | os.PathLike[str], meta: Mapping[str, Any]) -> None:
    """Refuse a checkpoint's metadata that would drive timm or the maps astray.

    A checkpoint's ``backbone_kwargs`` go to ``timm.create_model`` when it is
    read: those of :data:`~torchgeo_simclr.models.backbone.FILE_OPTIONS`
    (e.g. ``checkpoint_path``: timm would open that file) and of
    :data:`~torchgeo_simclr.models.backbone.RESERVED_OPTIONS` are refused,
    any other is taken. Its normalisation statistics must standardise every
    band (:func:`check_statistics`).

    Args:
        path: the checkpoint, for the messages.
        meta: its torchgeo-simclr metadata.

    Raises:
        ValueError: if either is not so.
    """
    spec = meta.get("spec")
    for options in (
        meta.get("backbone_kwargs"),
        spec.get("backbone_kwargs") if isinstance(spec, Mapping) else None,
    ):
        if options is not None and not isinstance(options, Mapping):
            msg = (
                f"Checkpoint {os.fspath(path)!r} records backbone_kwargs "
                f"{options!r}, not a mapping of timm options; the file was altered "
                "or written by another tool: pass a checkpoint a fit of "
                "torchgeo-simclr wrote."
            )
            raise ValueError(msg)
        if reading := file_options(options):
            msg = (
                f"Checkpoint {os.fspath(path)!r} sets backbone_kwargs "
                f"{', '.join(reading)}, which would make timm read or fetch "
                "another file (weights or a model config) as the checkpoint is "
                "read; it is refused so that a checkpoint reads no file but "
                "itself: pass a checkpoint whose backbone_kwargs leave "
                f"{', '.join(reading)} out."
            )
            raise ValueError(msg)
        if clash := reserved_options(options):
            msg = (
                f"Checkpoint {os.fspath(path)!r} sets backbone_kwargs "
                f"{', '.join(clash)}, which the task sets itself from the "
                "checkpoint's bands and weights; pass a checkpoint whose "
                f"backbone_kwargs leave {', '.join(clash)} out."
            )
            raise ValueError(msg)
    data = meta.get("data")
    if data is not None:
        check_statistics(data, path)


def sub_state(state: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """The entries of a state dict under *prefix*, with the prefix removed.

    Args:
        state: a module's (or a Lightning checkpoint's) state dict.
        prefix: e.g. ``"backbone."``.

    Returns:
        The sub-module's state dict.
    """
    return {
        key[len(prefix) :]: value
        for key, value in state.items()
        if key.startswith(prefix)
    }


def build_loaded[M: nn.Module](
    build: Callable[[], M], state: Mapping[str, Tensor]
) -> M:
    """Build a module with *state* as its weights, skipping their random initialisation.

    timm and torch initialise every weight at random when a network is built (0.1 s for
    a ResNet-18, 0.5 s for a ResNet-152 on a 2-core CPU), only for the checkpoint to
    replace them. Here the network is built on the meta device (shapes, no memory) and
    takes the checkpoint's tensors as its own. A network that cannot be built that way,
    or that keeps buffers the checkpoint does not hold, is built and loaded as usual;
    one that refuses to be built (a ValueError), or whose weights *state* does not
    hold by name and shape, is refused before any memory goes to it.

    Args:
        build: makes the network, e.g. ``lambda: create_backbone("resnet18")``.
        state: its state dict (from a checkpoint just read, used by nothing else).

    Returns:
        The network, holding *state*'s tensors.

    Raises:
        RuntimeError: if *state* does not fit the network (as
            ``load_state_dict`` says).
    """
    module: M | None
    try:
        with torch.device("meta"):
            module = build()
    except (RuntimeError, NotImplementedError):
        # Some constructors compute values from tensors, which meta tensors lack.
        module = None
    else:
        try:
            module.load_state_dict(state, assign=True)
        except RuntimeError:
            if not _fits(module, state):
                # Built for real, it would take as long (a ViT-g: 90 s, 5 GB)
                # only to fail the same way.
                raise
            module = None
    if module is None or any(
        tensor.is_meta
        for tensor in itertools.chain(module.parameters(), module.buffers())
    ):
        module = build()
        module.load_state_dict(state)
    return module


def _fits(module: nn.Module, state: Mapping[str, Tensor]) -> bool:
    """Whether *state* has exactly *module*'s weights, by name and shape.

    Args:
        module: a network (on the meta device: only shapes are read).
        state: a state dict for it.

    Returns:
        True where names and shapes agree.
    """
    own = module.state_dict()
    return own.keys() == state.keys() and all(
        tuple(own[key].shape) == tuple(state[key].shape) for key in own
    )


def _built[M: nn.Module](
    path: str | Path, model: str, build: Callable[[], M], state: Mapping[str, Tensor]
) -> M:
    """:func:`build_loaded`, refusing in one sentence weights that do not fit.

    Args:
        path: the checkpoint, for the message.
        model: the timm name its metadata gives, for the message.
        build: makes the network its metadata describes.
        state: the weights it holds for that network.

    Returns:
        The network, holding *state*'s tensors.

    Raises:
        ValueError: if *state* does not fit the network.
    """
    try:
        return build_loaded(build, state)
    except RuntimeError as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        if not lines or not lines[0].startswith("Error(s) in loading state_dict"):
            raise
        detail = textwrap.shorten(lines[1].rstrip(". ") if len(lines) > 1 else "", 200)
        msg = (
            f"Checkpoint {os.fspath(path)!r} holds weights that do not fit the "
            f"{model} network its metadata describes ({detail}); the file was "
            "altered or written by another tool: use the checkpoint the fit run "
            "wrote."
        )
        raise ValueError(msg) from None


def load_encoder(path: str | Path, kind: str = "simclr") -> Encoder:
    """Load the backbone of a checkpoint written by one of this package's tasks.

    Args:
        path: the ``.ckpt`` file.
        kind: the kind of checkpoint expected (``"simclr"`` for pretraining).

    Returns:
        The backbone in eval mode, its name and its data metadata.
    """
    checkpoint, meta = read_checkpoint(path, [kind])
    return _encoder(path, checkpoint, meta)


def _encoder(
    path: str | Path, checkpoint: dict[str, Any], meta: dict[str, Any]
) -> Encoder:
    """The backbone of an opened SimCLR checkpoint (see :func:`load_encoder`).

    *path* only names the file in errors.
    """
    options = meta.get("backbone_kwargs")
    backbone = _built(
        path,
        meta["model"],
        lambda: create_backbone(
            meta["model"], in_channels=meta["in_channels"], options=options
        ),
        sub_state(checkpoint["state_dict"], "backbone."),
    )
    backbone.eval()
    data = meta.get("data")
    return Encoder(
        backbone=backbone,
        model=meta["model"],
        data=None if data is None else DataMetadata.from_dict(data),
        backbone_kwargs=options,
    )


@dataclass(frozen=True)
class TrainedModel:
    """A fine-tuned or distilled irrigation model with the data it expects."""

    #: The network in eval mode, mapping ``[B, C, H, W]`` to logits.
    model: IrrigationModel
    #: ``finetune`` or ``distill``.
    kind: str
    #: Bands, statistics, patch size and split of the training data.
    data: DataMetadata | None
    #: Probability above which a pixel or patch was scored irrigated.
    threshold: float = 0.5
    #: How its training labels were drawn: ``label_fraction``, ``label_seed``,
    #: ``n_labels`` (labelled patches; None for all of them) and
    #: ``labels_sha256``; None when the checkpoint does not record it.
    labels: dict[str, Any] | None = None
    #: The checkpoints it was built from, as it records them:
    #: ``pretrained_from`` (fine-tuned) or ``teacher`` (distilled), each with
    #: its ``..._sha256``; empty for earlier versions' checkpoints.
    built_from: dict[str, str | None] = field(default_factory=dict)
    #: Its scores on the validation blocks at the last validation before it
    #: was saved (see :func:`~torchgeo_simclr.tasks.metrics.validation_scores`);
    #: None when it was not validated or the checkpoint does not record them.
    val_scores: dict[str, Any] | None = None


def training_labels(datamodule: Any) -> dict[str, Any] | None:
    """How a datamodule draws its labelled training patches, for the checkpoint.

    Args:
        datamodule: the trainer's datamodule.

    Returns:
        ``label_fraction``, ``label_seed``, ``n_labels`` (None where every
        labelled patch is used) and ``labels_sha256`` (the SHA-256 of the
        label file, None for a folder of them or a datamodule without one),
        or None for a datamodule without label fractions.
    """
    if not hasattr(datamodule, "label_fraction"):
        return None
    labels = getattr(datamodule, "labels_path", None)
    return {
        "label_fraction": datamodule.label_fraction,
        "label_seed": getattr(datamodule, "label_seed", None),
        "n_labels": getattr(datamodule, "n_labels", None),
        "labels_sha256": None if labels is None else cached_file_digest(labels),
    }


def load_model(
    path: str | Path, kinds: Sequence[str] = ("finetune", "distill")
) -> TrainedModel:
    """Rebuild a fine-tuned or distilled model from its checkpoint alone.

    Args:
        path: the ``.ckpt`` file.
        kinds: the accepted kinds.

    Returns:
        The model in eval mode with its kind and data metadata.
    """
    checkpoint, meta = read_checkpoint(path, kinds)
    return _trained_model(path, checkpoint, meta)


def _trained_model(
    path: str | Path, checkpoint: dict[str, Any], meta: dict[str, Any]
) -> TrainedModel:
    """The network of an opened fine-tuned or distilled checkpoint.

    See :func:`load_model`; *path* only names the file in errors.
    """
    spec = ModelSpec.from_dict(meta["spec"])
    data = meta.get("data")
    if data is not None and len(data["bands"]) != spec.in_channels:
        msg = (
            f"Checkpoint {str(path)!r} lists {len(data['bands'])} bands "
            f"{list(data['bands'])} but its network takes {spec.in_channels}; the "
            "file was altered or written by another tool: use the checkpoint the "
            "fit run wrote."
        )
        raise ValueError(msg)
    model = _built(
        path,
        spec.model,
        lambda: IrrigationModel(spec),
        sub_state(checkpoint["state_dict"], "model."),
    )
    model.eval()
    return TrainedModel(
        model=model,
        kind=meta["kind"],
        data=None if data is None else DataMetadata.from_dict(data),
        threshold=float(checkpoint.get("hyper_parameters", {}).get("threshold", 0.5)),
        labels=meta.get("labels"),
        val_scores=meta.get("val_scores"),
        built_from={
            key: meta[key]
            for parent in ("pretrained_from", "teacher")
            for key in (parent, f"{parent}_sha256")
            if key in meta
        },
    )


def load_backbone(path: str | Path) -> Encoder:
    """Load the backbone of any checkpoint of this package, as a feature extractor.

    A SimCLR checkpoint gives its pretrained backbone; a fine-tuned or distilled
    one the backbone of its irrigation network (for a segmentation model, the
    U-Net's encoder with its last feature map average-pooled). Either way the
    backbone maps ``[B, C, H, W]`` to pooled features ``[B, num_features]``, the
    input of the projection head or classifier.

    Args:
        path: a ``simclr``, ``finetune`` or ``distill`` ``.ckpt`` file.

    Returns:
        The backbone in eval mode, its timm name and its data metadata.
    """
    checkpoint, meta = read_checkpoint(path, BACKBONE_KINDS)
    if meta["kind"] == "simclr":
        return _encoder(path, checkpoint, meta)
    trained = _trained_model(path, checkpoint, meta)
    network = trained.model
    backbone = (
        network.backbone if network.unet is None else PooledFeatures(network.backbone)
    )
    return Encoder(
        backbone=backbone.eval(),
        model=network.spec.model,
        data=trained.data,
        backbone_kwargs=network.spec.backbone_kwargs,
    )
