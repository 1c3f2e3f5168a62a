"""What a command's JSON record says of its run: when, how long, and what it warned.

``evaluate --scores`` and ``field-stats --summary`` record the same facts of
their run, as ``predict``'s JSON summary does: the paths read (absolute), when
the run started (``created``, UTC), how long it took (``run_seconds``) and
the text of each warning it showed.
"""

import json
import os
import time
import warnings
from collections.abc import Iterator, Set
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO


def absolute_path(path: str | Path) -> str:
    """An input path as a record gives it: absolute, unless a GDAL ``/vsi`` path."""
    name = os.fspath(path)
    return name if name.startswith("/vsi") else os.path.abspath(name)


class RunClock:
    """When a run started, and how long it has taken since."""

    def __init__(self) -> None:
        """Start the clock now."""
        #: When the run started, UTC, ISO 8601 to the second.
        self.created = datetime.now(UTC).isoformat(timespec="seconds")
        #: :func:`time.perf_counter` at the start.
        self.start = time.perf_counter()

    def seconds(self) -> float:
        """Seconds since the start, to 0.01 s."""
        return round(time.perf_counter() - self.start, 2)


@contextmanager
def kept_warnings() -> Iterator[list[str]]:
    """Show warnings as they come, as ever, and keep the text of each one shown.

    Warnings the filters in force ignore are neither shown nor kept, and
    those they turn into errors are raised as before.

    Yields:
        The text of each warning shown so far in the block, in order.
    """
    kept: list[str] = []
    with warnings.catch_warnings():
        show = warnings.showwarning

        def keep(
            message: Warning | str,
            category: type[Warning],
            filename: str,
            lineno: int,
            file: TextIO | None = None,
            line: str | None = None,
        ) -> None:
            kept.append(str(message))
            show(message, category, filename, lineno, file, line)

        warnings.showwarning = keep
        yield kept


def json_record_fault(
    path: Path, keys: Set[str], max_bytes: int, kind: str
) -> str | None:
    """Why an existing *path* is no JSON record of this kind, or None.

    An output that is such a record may be replaced with ``--overwrite``;
    any other file never is.

    Args:
        path: an existing file.
        keys: the keys every record of this kind holds.
        max_bytes: the largest file read (a record is a few KB).
        kind: the record in words, e.g. ``"a scores file"``.

    Returns:
        A few words for a message (e.g. ``"not JSON"``), or None for a JSON
        object with every key of *keys*.
    """
    try:
        size = path.stat().st_size
        if size > max_bytes:
            return f"a file of {size:,} bytes, far larger than {kind}"
        record = json.loads(path.read_bytes())
    except OSError as error:
        return f"unreadable: {error.strerror}"
    except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
        return "not JSON"
    if not isinstance(record, dict):
        return f"JSON, but a {type(record).__name__}, not an object"
    missing = sorted(set(keys) - set(record))
    if missing:
        return f"JSON without the key(s) {', '.join(missing)}"
    return None
