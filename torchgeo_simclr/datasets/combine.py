"""Unions and intersections of datasets, refused in one sentence when they miss."""

from torchgeo.datasets import GeoDataset, IntersectionDataset, UnionDataset

from ..lonlat import shapes_extent


def intersect(first: GeoDataset, second: GeoDataset) -> IntersectionDataset:
    """``first & second``, refused in one sentence naming both extents.

    torchgeo says only "Datasets have no spatial intersection".

    Args:
        first: e.g. the imagery.
        second: e.g. the labels.

    Returns:
        The intersection of the two datasets.

    Raises:
        ValueError: if their footprints do not overlap.
    """
    try:
        return IntersectionDataset(first, second)
    except RuntimeError as error:
        if "no spatial intersection" not in str(error):
            raise

        def side(dataset: GeoDataset) -> str:
            # Label polygons themselves: a file's footprint box warped across
            # UTM zones and back grows by degrees.
            extent = shapes_extent(getattr(dataset, "features", dataset.index))
            files = list(getattr(dataset, "files", []))  # a UnionDataset has none
            more = " ..." if len(files) > 1 else ""
            where = f" of {files[:1]}{more}" if files else ""
            name = " | ".join(type(part).__name__ for part in united(dataset))
            return f"{name}{where} covers {extent}"

        sides = [side(first), side(second)]
        msg = (
            f"{sides[0]} and {sides[1]} (lon/lat), so they do not overlap; pass "
            "imagery and labels of the same area."
        )
        raise ValueError(msg) from None


def united(dataset: GeoDataset) -> list[GeoDataset]:
    """The datasets a union of unions is made of, in order.

    Args:
        dataset: any dataset; a :class:`~torchgeo.datasets.UnionDataset` is
            taken apart, nested ones too.

    Returns:
        The datasets that are not unions.
    """
    if not isinstance(dataset, UnionDataset):
        return [dataset]
    return [part for inner in dataset.datasets for part in united(inner)]


class CheckedCombinations(GeoDataset):
    """``&`` and ``|`` for GeoDatasets, refused in one sentence where they miss.

    Listed before another GeoDataset base, it replaces torchgeo's operators: ``&``
    goes through :func:`intersect`, ``|`` gives a :class:`CheckedUnion`.
    """

    def __and__(self, other: GeoDataset) -> IntersectionDataset:
        """Intersect with *other*, refused in one sentence when they miss.

        Args:
            other: e.g. :class:`~torchgeo_simclr.datasets.IrrigationLabels`.

        Returns:
            The intersection.
        """
        return intersect(self, other)

    def __or__(self, other: GeoDataset) -> "CheckedUnion":
        """Unite with *other* (e.g. imagery in the other layout, or a third folder).

        Args:
            other: another dataset of imagery.

        Returns:
            The union, whose ``& labels`` names all its parts when they miss.
        """
        return CheckedUnion(self, other)


class CheckedUnion(CheckedCombinations, UnionDataset):
    """``first | second`` whose ``& labels`` is refused as :func:`intersect` does.

    torchgeo's union intersects with torchgeo's own message ("Datasets have
    no spatial intersection"), so ``(a | b) & labels`` lost the extents that
    ``a & labels`` names. Its ``|`` gives a checked union again.
    """
