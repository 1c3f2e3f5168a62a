"""Sensing dates of torchgeo index entries, files indexed without one included."""

from collections.abc import Iterable
from datetime import date, datetime

import numpy as np
import numpy.typing as npt
import pandas as pd

from ..constants import UNKNOWN_DATE

#: numpy's NaT as an int64: an unknown day among ``datetime64[D]`` integers.
NAT = int(np.iinfo(np.int64).min)

#: Day 0 of ``datetime64[D]`` integers.
EPOCH = date(1970, 1, 1)


def sensing_start(interval: pd.Interval | datetime) -> pd.Timestamp:
    """The time a torchgeo index entry starts at.

    Args:
        interval: an entry of a dataset's ``index.index`` (an interval or a
            timestamp).

    Returns:
        Its start; ``pd.Timestamp.min`` for a file indexed without a date.
    """
    return pd.Timestamp(
        interval.left if isinstance(interval, pd.Interval) else interval
    )


def sensing_date(interval: pd.Interval | datetime) -> date | None:
    """The sensing date a torchgeo index entry holds.

    Files whose names carry no date are indexed from torchgeo's earliest
    timestamp (``pd.Timestamp.min``, 1677-09-21) on.

    Args:
        interval: an entry of a dataset's ``index.index`` (an interval or a
            timestamp).

    Returns:
        The date the entry starts on; None for a file indexed without a date.
    """
    start = sensing_start(interval)
    return None if start == pd.Timestamp.min else start.date()


def index_dates(intervals: Iterable[pd.Interval | datetime]) -> list[str]:
    """The sensing dates of torchgeo index entries, as :func:`iso_days` lists days.

    Args:
        intervals: entries of a dataset's ``index.index``.

    Returns:
        ``YYYY-MM-DD`` dates, sorted, without repeats, then
        :data:`~torchgeo_simclr.constants.UNKNOWN_DATE` for an entry without
        a date.
    """
    days = {sensing_date(interval) for interval in intervals}
    return iso_days(NAT if day is None else (day - EPOCH).days for day in days)


def day_set(days: npt.NDArray[np.int64]) -> set[int]:
    """The distinct known days among *days*.

    Args:
        days: sensing days as ``datetime64[D]`` integers (days since
            1970-01-01), :data:`NAT` for unknown.

    Returns:
        The days other than :data:`NAT`.
    """
    if not days.size:
        return set()
    newest = int(days.max())
    # NAT, the smallest int64, is the largest uint64: the min skips it.
    oldest = int(days.view(np.uint64).min().astype(np.int64))
    if newest == NAT:
        return set()
    if oldest == newest:  # one date, the common case: no sort
        return {newest}
    known = days[days != NAT]
    return set(np.unique(known).tolist())


def iso_days(days: Iterable[int]) -> list[str]:
    """Days as sorted ISO dates, then an unknown one's name.

    Args:
        days: ``datetime64[D]`` integers, :data:`NAT` for unknown.

    Returns:
        ``YYYY-MM-DD`` dates, sorted, without repeats, then
        :data:`~torchgeo_simclr.constants.UNKNOWN_DATE` if *days* holds
        :data:`NAT`.
    """
    unique = set(days)
    known = np.array(sorted(unique - {NAT}), np.int64).view("datetime64[D]")
    return [str(day) for day in known] + ([UNKNOWN_DATE] if NAT in unique else [])
