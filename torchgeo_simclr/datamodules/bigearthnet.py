"""BigEarthNet-S2 irrigation patches for pretraining, fine-tuning and distillation."""

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor
from torch.utils.data import DataLoader, Subset
from torchgeo.datamodules import NonGeoDataModule
from torchgeo.datasets.utils import Sample

from ..constants import IGNORE_INDEX, S2_BANDS
from ..datasets import BigEarthNetIrrigation
from ..datasets.bigearthnet import Scheme
from .augment import make_views, set_augmentations
from .balanced_split import VAL_PERCENT, irrigation_splits
from .fractions import draw_labelled_subset
from .options import (
    check_batch_size,
    check_label_fraction,
    save_plain_hyperparameters,
)
from .samplers import (
    RandomDrawSampler,
    ResumableDraws,
    epoch_draws,
)
from .statistics import cache_key, cached_band_statistics
from .workers import ignore_sigterm


class IrrigationPatches(Subset[Sample]):
    """Some patches of a :class:`BigEarthNetIrrigation`, cropped, labels maybe hidden.

    Crops are square, of *patch_size* pixels: at random for training, in the
    centre for evaluation. Patches outside *labelled* keep their image but get
    the label :data:`~torchgeo_simclr.constants.IGNORE_INDEX`, so a
    distillation run sees every patch while a supervised loss sees only the
    labelled ones.
    """

    def __init__(
        self,
        dataset: BigEarthNetIrrigation,
        indices: Sequence[int],
        patch_size: int,
        random_crop: bool = False,
        labelled: Tensor | None = None,
    ) -> None:
        """Initialise a new IrrigationPatches.

        Args:
            dataset: where the patches are read.
            indices: the patches, indices into *dataset*.
            patch_size: side of the crops, pixels (at most 120).
            random_crop: crop at random (training) instead of in the centre.
            labelled: boolean ``[len(indices)]``, True where the label is kept
                (default: all).
        """
        super().__init__(dataset, indices)
        #: Side of the crops, pixels.
        self.patch_size = patch_size
        #: Whether crops are taken at random (training) rather than centred.
        self.random_crop = random_crop
        #: Bool ``[len(indices)]``, True where the label is kept; None keeps all.
        self.labelled = labelled

    def __getitem__(self, index: int) -> Sample:
        """Read one patch.

        Args:
            index: 0..N-1.

        Returns:
            ``image`` float32 ``[12, patch_size, patch_size]`` and ``label``
            int64 scalar (0, 1 or ``IGNORE_INDEX``).
        """
        sample = dict(self.dataset[self.indices[index]])
        image, size = sample["image"], self.patch_size
        height, width = image.shape[1:]
        if self.random_crop:
            top = int(torch.randint(0, height - size + 1, ()))
            left = int(torch.randint(0, width - size + 1, ()))
        else:
            top, left = (height - size) // 2, (width - size) // 2
        sample["image"] = image[:, top : top + size, left : left + size]
        if self.labelled is not None and not self.labelled[index]:
            sample["label"] = torch.tensor(IGNORE_INDEX)
        return sample

    def __getitems__(self, indices: list[int]) -> list[Sample]:
        """Read several patches (what the DataLoader calls).

        Args:
            indices: 0..N-1 each.

        Returns:
            The samples, as :meth:`__getitem__` returns them.
        """
        return [self[index] for index in indices]


class BigEarthNetIrrigationDataModule(ResumableDraws, NonGeoDataModule):
    """BigEarthNet-S2 irrigation patches in the study's balanced split.

    All irrigated patches (under *scheme*) and as many randomly drawn
    not-irrigated ones are split 70/15/15 per class into train, val and test
    (:func:`~torchgeo_simclr.datamodules.balanced_split.irrigation_splits`,
    each patch placed by a hash of *split_seed* and its name, so adding or
    removing a patch folder moves only a few patches). Pretraining
    (``label_fraction=None``) uses every training patch without its label;
    fine-tuning uses a nested,
    class-balanced *label_fraction* of them (1% of 19,024 = 190 patches), and
    distillation (``unlabeled=True``) every training patch with only that
    subset's labels kept.

    Bands are normalised with a per-band mean and standard deviation computed
    from up to *stats_images* training patches (cached in ``stats/`` under
    *cache_dir*). On the device, after transfer, training
    batches (and validation batches when ``num_views >= 2``) get augmented
    views from :class:`~torchgeo_simclr.transforms.SimCLRViews`.

    Batches: ``image`` float32 ``[B, 12, H, W]`` (normalised), ``label`` int64
    ``[B]`` (0, 1, or :data:`~torchgeo_simclr.constants.IGNORE_INDEX` where
    hidden), ``valid`` bool ``[B, H, W]`` (pixels of ``image`` with data), and
    ``views`` ``[V, B, 12, H, W]`` when ``num_views >= 2``.
    """

    #: The data it reads, as checkpoints record it
    #: (:attr:`~torchgeo_simclr.models.checkpoint.DataMetadata.dataset`).
    dataset_kind = "bigearthnet"

    def __init__(
        self,
        root: str = "data",
        scheme: Scheme = "regular",
        split_seed: int = 0,
        batch_size: int = 32,
        num_workers: int = 0,
        patch_size: int = 120,
        length: int | None = None,
        label_fraction: float | None = None,
        label_seed: int = 0,
        unlabeled: bool = False,
        augmentations: list[str] | None = None,
        ops_per_view: int = 2,
        num_views: int = 2,
        augmentation_kwargs: dict[str, dict[str, Any]] | None = None,
        stats_images: int = 256,
        cache_dir: str | None = None,
    ) -> None:
        """Initialise a new BigEarthNetIrrigationDataModule.

        Args:
            root: directory holding ``BigEarthNet-v1.0/``, or the patch folders
                (see :class:`~torchgeo_simclr.datasets.BigEarthNetIrrigation`).
            scheme: ``regular`` (permanently irrigated land) or ``extended``
                (also rice fields, vineyards, fruit trees and olive groves).
            split_seed: seed of the balanced train / val / test split and of
                the statistics' patches.
            batch_size: patches per batch.
            num_workers: data loading worker processes.
            patch_size: side of the patches, pixels (10 m each), at most 120;
                smaller patches are random crops for training and centre crops
                for val and test.
            length: training patches per epoch (default: the training set's
                size), drawn by reshuffling the training set as often as needed.
            label_fraction: None (pretraining): train on every training patch,
                its label hidden. A share in ``(0, 1]`` (fine-tuning): train on
                a class-balanced subset of that share of the training patches,
                nested across fractions for one *label_seed* (see
                :func:`~torchgeo_simclr.datamodules.fractions.nested_balanced_subset`);
                the exact count is logged and kept in :attr:`n_labels`.
            label_seed: seed of the labelled subset (independent of
                *split_seed*, so the split stays fixed while subsets vary).
            unlabeled: with *label_fraction*, train on every training patch,
                with the labels of patches outside the labelled subset set to
                the ignore index (for distillation).
            augmentations: names of the enabled augmentation ops (default:
                all nine).
            ops_per_view: ops drawn per view and sample.
            num_views: augmented views per patch: 2 for contrastive
                pretraining, 1 for supervised training, 0 for none.
            augmentation_kwargs: per-op keyword arguments, e.g.
                ``{"rotation": {"right_angles": True}}``.
            stats_images: training patches read to compute band statistics.
            cache_dir: where band statistics are cached (default:
                ``$XDG_CACHE_HOME/torchgeo-simclr``, else
                ``~/.cache/torchgeo-simclr``).

        Raises:
            ValueError: if *patch_size* is not between 1 and 120,
                *batch_size* is below 1, or *label_fraction* is not in
                ``(0, 1]``.
        """
        check_batch_size(batch_size)
        check_label_fraction(label_fraction)
        super().__init__(BigEarthNetIrrigation, batch_size, num_workers)
        # Every setting, for the loggers (hparams.yaml, TensorBoard's HPARAMS)
        # and load_from_checkpoint; the labelled subset adds its size later.
        save_plain_hyperparameters(self)
        side = BigEarthNetIrrigation.image_size[0]
        if not 1 <= patch_size <= side:
            msg = (
                f"patch_size must be between 1 and {side} (the side of a "
                f"BigEarthNet patch, pixels), got {patch_size}; pass a smaller "
                "--data.init_args.patch_size."
            )
            raise ValueError(msg)
        #: Directory holding ``BigEarthNet-v1.0/`` or the patch folders.
        self.root = Path(root)
        #: Labelling scheme: ``regular`` or ``extended``.
        self.scheme: Scheme = scheme
        #: Seed of the train / val / test split and of the statistics' patches.
        self.split_seed = split_seed
        #: Side of the crops, pixels (10 m each), at most 120.
        self.patch_size = patch_size
        #: Training patches per epoch (None: the training set's size).
        self.length = length
        #: Share of training patches whose labels are used (None: pretraining).
        self.label_fraction = label_fraction
        #: Seed of the labelled subset.
        self.label_seed = label_seed
        #: Train on every training patch, unlabelled ones with hidden labels.
        self.unlabeled = unlabeled
        #: Augmented-view generator for training, or None for no views.
        self.views = make_views(
            augmentations, ops_per_view, num_views, augmentation_kwargs
        )
        #: Most training patches read to compute band statistics.
        self.stats_images = stats_images
        #: Where band statistics are cached (None: the default cache).
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        #: Band names, in the order of the image channels.
        self.bands = list(S2_BANDS)
        #: Every patch under *root*, built on the first :meth:`setup`.
        self.patches: BigEarthNetIrrigation | None = None
        #: Indices into :attr:`patches` of the train, val and test patches.
        self.splits: dict[str, Tensor] = {}
        #: Digest of the split's patch names: two runs with the same digest
        #: share the same val and test patches.
        self.split_fingerprint: str | None = None
        #: The split's sizes in words (set up by :meth:`setup`), as logged.
        self.split_summary: str | None = None
        #: The training sampler of the last train dataloader (None before).
        self.train_sampler: RandomDrawSampler | None = None
        #: Number of labelled training patches (set up with *label_fraction*).
        self.n_labels: int | None = None

    @property
    def split_settings(self) -> dict[str, Any]:
        """The options that make this datamodule's split, as checkpoints record them.

        Returns:
            ``root``, ``scheme`` and ``split_seed`` as plain JSON values.
        """
        return {
            "root": str(self.root),
            "scheme": self.scheme,
            "split_seed": int(self.split_seed),
        }

    def prepare_data(self) -> None:
        """Read the label files once per node, so :meth:`setup` reads the cache."""
        BigEarthNetIrrigation(self.root, self.scheme)

    def _build(self) -> None:
        patches = BigEarthNetIrrigation(self.root, self.scheme)
        self.splits = irrigation_splits(patches.labels, self.split_seed, patches.names)
        if not len(self.splits["train"]):
            msg = (
                f"The balanced split of {str(self.root)!r} has no training patch: "
                f"{int(patches.labels.sum())} of its {len(patches)} patches are "
                f"irrigated under scheme {self.scheme!r}, and train takes 70% of "
                "them (rounded down) and as many others; point root at the full "
                "BigEarthNet-S2 v1.0 archive or pass --data.init_args.scheme "
                "extended."
            )
            raise ValueError(msg)
        self._refuse_empty_evaluation(patches)
        text = "|".join(
            f"{split}:" + ",".join(patches.names[i] for i in indices.tolist())
            for split, indices in self.splits.items()
        )
        self.split_fingerprint = hashlib.sha1(text.encode()).hexdigest()[:16]
        counts = {
            split: f"{len(indices)} ({int(patches.labels[indices].sum())} irrigated)"
            for split, indices in self.splits.items()
        }
        self.split_summary = (
            f"BigEarthNet split of {self.root} ({len(patches)} patches, scheme "
            f"{self.scheme!r}, split_seed={self.split_seed}): {counts}"
        )
        rank_zero_info(self.split_summary)
        #: Per-band mean and standard deviation ``[12]`` (two attributes),
        #: reflectance x10000, of up to :attr:`stats_images` training patches.
        self.mean, self.std = self._statistics(patches)
        #: Training patches, randomly cropped: all with labels hidden
        #: (pretraining), the labelled subset (:attr:`label_fraction`), or all
        #: with only that subset's labels kept (:attr:`unlabeled`).
        self.train_dataset = self._train_patches(patches)
        #: Val and test patches (two attributes), centre-cropped, labelled.
        self.val_dataset, self.test_dataset = (
            IrrigationPatches(patches, self.splits[split].tolist(), self.patch_size)
            for split in ("val", "test")
        )
        self.patches = patches

    def _refuse_empty_evaluation(self, patches: BigEarthNetIrrigation) -> None:
        """Refuse a split whose val or test set is empty (too few irrigated patches).

        Args:
            patches: the dataset split.

        Raises:
            ValueError: naming the patch counts and the least that fills both.
        """
        empty = [split for split in ("val", "test") if not len(self.splits[split])]
        if not empty:
            return
        # floor(0.15 n) is 0 below 7 patches of a class.
        least = next(n for n in range(1, 100) if n * VAL_PERCENT // 100 > 0)
        msg = (
            f"The balanced split of {str(self.root)!r} has an empty "
            f"{' and '.join(empty)} set: {int(patches.labels.sum())} of its "
            f"{len(patches)} patches are irrigated under scheme {self.scheme!r}, "
            f"and val takes 15% of them (rounded down), which needs at least "
            f"{least} irrigated patches; point root at the full BigEarthNet-S2 "
            "v1.0 archive or pass --data.init_args.scheme extended."
        )
        raise ValueError(msg)

    def _statistics(self, patches: BigEarthNetIrrigation) -> tuple[Tensor, Tensor]:
        train = self.splits["train"]
        generator = torch.Generator().manual_seed(self.split_seed)
        order = torch.randperm(len(train), generator=generator)
        chosen = train[order[: self.stats_images]].sort().values.tolist()
        files = [path for i in chosen for path in patches.band_files(i)]
        key = cache_key(files, "bigearthnet", len(chosen))
        return cached_band_statistics(patches, chosen, key, self.cache_dir)

    def setup(self, stage: str) -> None:
        """Read the labels, split, compute statistics and the split datasets.

        The first call does the work; later ones (``test`` after ``fit``) keep
        its datasets.

        Args:
            stage: ``fit``, ``validate``, ``test`` or ``predict``.
        """
        if self.patches is None:
            self._build()
        set_augmentations(self, self.mean, self.std, self.views)

    def _train_patches(self, patches: BigEarthNetIrrigation) -> IrrigationPatches:
        train = self.splits["train"]
        if self.label_fraction is None:
            return IrrigationPatches(
                patches,
                train.tolist(),
                self.patch_size,
                random_crop=True,
                labelled=torch.zeros(len(train), dtype=torch.bool),
            )
        labels = patches.labels[train]
        chosen, _ = draw_labelled_subset(
            self,
            labels,
            self.label_fraction,
            self.label_seed,
            f"{len(train)} training patches",
        )
        self.n_labels = len(chosen)
        if self.unlabeled:
            keep = torch.zeros(len(train), dtype=torch.bool)
            keep[chosen] = True
            return IrrigationPatches(
                patches,
                train.tolist(),
                self.patch_size,
                random_crop=True,
                labelled=keep,
            )
        return IrrigationPatches(
            patches, train[chosen].tolist(), self.patch_size, random_crop=True
        )

    def _dataloader_factory(self, split: str) -> DataLoader[Sample]:
        """A split's DataLoader, whose workers ignore SIGTERM (:func:`ignore_sigterm`).

        Args:
            split: ``train``, ``val``, ``test`` or ``predict``.

        Returns:
            The DataLoader: for ``train``, of :class:`RandomDrawSampler`'s
            draws, resumable (see :class:`ResumableDraws`).
        """
        if split != "train":
            loader = super()._dataloader_factory(split)
            loader.worker_init_fn = ignore_sigterm
            return loader
        data = self._valid_attribute("train_dataset")
        # Reshuffled as often as *length* needs, and at least one full batch
        # (on each device) even when the labelled subset is smaller than a
        # batch; on several devices they split the draws.
        sampler = RandomDrawSampler(
            data,
            epoch_draws(self.length, len(data), self.batch_size, self.trainer),
            replacement=False,
            generator=torch.Generator().manual_seed(torch.initial_seed()),
        )
        self.resume_draws(sampler)
        self.train_sampler = sampler
        return DataLoader(
            data,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=self.collate_fn,
            drop_last=True,
            persistent_workers=self.num_workers > 0,
            worker_init_fn=ignore_sigterm,
        )
