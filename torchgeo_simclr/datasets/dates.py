"""Sensing dates of torchgeo index entries, files indexed without one included."""

from datetime import date, datetime

import pandas as pd


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
