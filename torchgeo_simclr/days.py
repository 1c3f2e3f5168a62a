"""Whole UTC days given as ``YYYY-MM-DD``: date ranges and how to name them.

``download`` fetches scenes sensed in a range of days; ``predict``, ``embed``,
``probe`` and the datamodules read only the products sensed in one
(:class:`~torchgeo_simclr.datasets.CentralValleyS2`'s *start* and *end*).
Both parse and check the days here, so they accept and refuse the same input.
"""

from collections.abc import Sequence
from datetime import date, datetime

from .constants import UNKNOWN_DATE

#: Dates named in full in a message; more are shortened to the first and last
#: few (see :func:`dates_text`).
DATES_NAMED = 8


def parse_day(option: str, value: date | str) -> date:
    """Read a day given as ``YYYY-MM-DD`` (or a date already).

    Args:
        option: what the value was given as, for the message, e.g.
            ``"--start"`` or ``"start"``.
        value: the day: ``YYYY-MM-DD``, a :class:`~datetime.date`, or a
            :class:`~datetime.datetime` (its day is taken).

    Returns:
        The day.

    Raises:
        ValueError: If *value* is not a date.
    """
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        msg = (
            f"{option} {value!r} is not a date; give it as YYYY-MM-DD, e.g. 2023-07-01."
        )
        raise ValueError(msg) from None


def parse_days(
    start: date | str | None,
    end: date | str | None,
    options: tuple[str, str] = ("--start", "--end"),
) -> tuple[date | None, date | None]:
    """Read a range of days, either end open, and check its order.

    Args:
        start: first day, inclusive, or None for no lower limit.
        end: last day, inclusive, or None for no upper limit.
        options: what *start* and *end* were given as, for the messages.

    Returns:
        ``(start, end)`` as dates (None where not given).

    Raises:
        ValueError: If a day is not a date, or *start* is after *end*.
    """
    first = None if start is None else parse_day(options[0], start)
    last = None if end is None else parse_day(options[1], end)
    if first is not None and last is not None and first > last:
        msg = (
            f"{options[0]} {first.isoformat()} is after {options[1]} "
            f"{last.isoformat()}; give the earlier date as {options[0]}."
        )
        raise ValueError(msg)
    return first, last


def iso_day(day: date | None) -> str | None:
    """A day limit as records write it: ``YYYY-MM-DD``, or None for no limit."""
    return None if day is None else day.isoformat()


def range_text(start: date | None, end: date | None) -> str:
    """A range of days in words, for messages.

    Args:
        start: first day, inclusive (None: open).
        end: last day, inclusive (None: open).

    Returns:
        E.g. ``"between 2023-07-01 and 2023-07-31"``, ``"on or after
        2023-07-01"``, ``"on 2023-07-01"``; ``"on any day"`` when both are None.
    """
    if start is not None and end is not None:
        if start == end:
            return f"on {start.isoformat()}"
        return f"between {start.isoformat()} and {end.isoformat()}"
    if start is not None:
        return f"on or after {start.isoformat()}"
    if end is not None:
        return f"on or before {end.isoformat()}"
    return "on any day"


def dates_text(dates: Sequence[str]) -> str:
    """Sorted ISO dates as a list for messages, shortened when long.

    Args:
        dates: ``YYYY-MM-DD``, sorted.

    Returns:
        E.g. ``"2023-07-15, 2023-08-14"``; above :data:`DATES_NAMED` dates,
        the first and last few around ``...`` with the count.
    """
    if len(dates) <= DATES_NAMED:
        return ", ".join(dates)
    half = DATES_NAMED // 2
    return (
        f"{', '.join(dates[:half])}, ..., {', '.join(dates[-half:])} "
        f"({len(dates)} dates)"
    )


def dates_note(dates: Sequence[str], options: str = "--start/--end") -> str:
    """Say that imagery of several dates was mosaicked, and how to pick dates.

    Args:
        dates: the imagery's sensing dates, ISO, sorted, then
            :data:`~torchgeo_simclr.constants.UNKNOWN_DATE` for undated
            products (as :func:`~torchgeo_simclr.datasets.dates.iso_days`
            gives them).
        options: the options that pick dates, e.g.
            ``"--data.init_args.start/end"``.

    Returns:
        ``""`` for imagery of one date (or none); else e.g. ``"imagery of 2
        dates, 2023-07-15 to 2023-08-14: the newest with data wins each
        pixel; --start/--end pick dates"``.
    """
    if len(dates) < 2:
        return ""
    known = [day for day in dates if day != UNKNOWN_DATE]
    span = f"{known[0]} to {known[-1]}" if len(known) > 1 else "".join(known)
    if len(known) < len(dates):
        span = f"{span} and undated" if span else "undated"
    return (
        f"imagery of {len(dates)} dates, {span}: the newest with data wins each "
        f"pixel; {options} pick dates"
    )
