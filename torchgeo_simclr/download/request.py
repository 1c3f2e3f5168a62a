"""What a user asks to download: a lon/lat bbox and a date range, checked once."""

from dataclasses import dataclass
from datetime import date
from typing import Self

from ..days import parse_days


@dataclass(frozen=True)
class DownloadRequest:
    """A bbox in lon/lat degrees, a date range and a cloud-cover limit."""

    #: ``(min lon, min lat, max lon, max lat)``, EPSG:4326 degrees.
    bbox: tuple[float, float, float, float]
    #: First acquisition day, inclusive.
    start: date
    #: Last acquisition day, inclusive.
    end: date
    #: Highest scene cloud cover accepted, percent.
    max_cloud: float

    @classmethod
    def parse(cls, bbox: list[float], start: str, end: str, max_cloud: float) -> Self:
        """Check user input and build a request.

        Args:
            bbox: ``(min lon, min lat, max lon, max lat)`` in degrees.
            start: first day, ``YYYY-MM-DD``.
            end: last day, ``YYYY-MM-DD``.
            max_cloud: cloud-cover limit, percent (0-100).

        Returns:
            The checked request.

        Raises:
            ValueError: if the bbox is malformed or inverted (see
                :func:`~torchgeo_simclr.lonlat.check_lonlat_bbox`) or crosses
                the antimeridian, a date is not ``YYYY-MM-DD``, *start* is
                after *end*, or *max_cloud* is outside 0-100.
        """
        # Imported here: pyproj would slow every command's --help.
        from ..lonlat import check_lonlat_bbox, in_degrees

        values = [float(v) for v in bbox]
        if len(values) == 4 and in_degrees(values) and values[0] >= values[2]:
            msg = (
                f"--bbox {' '.join(f'{v:.10g}' for v in values)} has MIN_LON "
                f"{values[0]} >= MAX_LON {values[2]}: it is inverted or crosses the "
                "antimeridian (180 degrees), which is not supported; give MIN_LON "
                "< MAX_LON, or split the region into one download on each side of "
                "180 degrees."
            )
            raise ValueError(msg)
        checked = check_lonlat_bbox(values, "--bbox")
        assert checked is not None
        first, last = parse_days(start, end)
        assert first is not None
        assert last is not None
        if not 0 <= max_cloud <= 100:
            msg = f"--max-cloud {max_cloud} must be a percentage between 0 and 100."
            raise ValueError(msg)
        return cls(checked, first, last, float(max_cloud))

    @property
    def interval(self) -> str:
        """The date range as a STAC ``datetime`` interval (whole days, UTC).

        STAC datetimes are RFC 3339 and carry fractions of a second, so the
        range ends at the last microsecond of *end*: a scene sensed at
        ``23:59:59.5Z`` on that day is in it.

        Returns:
            ``YYYY-MM-DDT00:00:00Z/YYYY-MM-DDT23:59:59.999999Z``.
        """
        return (
            f"{self.start.isoformat()}T00:00:00Z/"
            f"{self.end.isoformat()}T23:59:59.999999Z"
        )
