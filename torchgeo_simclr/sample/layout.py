"""Geometry of the sample scene: road grid, fields, river, canal and towns.

All coordinates are EPSG:32610 (UTM zone 10 N) metres and every straight edge
lies on the 10 m pixel grid of the scene, so a field boundary never runs through
a pixel centre. The layout imitates the west side of the San Joaquin Valley:

* county roads on the one-mile section lines (some half-mile roads, one divided
  highway), fields set back from them by a verge or an irrigation ditch;
* sections split into quarter sections and smaller rectangular fields (about
  180-820 m sides), a few centre pivots whose corners are a different cover;
* a meandering river with a riparian corridor (forest, marsh, grass, bare
  channel), a reservoir with a marsh fringe, fields cut irregularly by both;
* a concrete-lined aqueduct with levee roads across the west of the scene;
* a town of residential, commercial, industrial and vacant blocks on a street
  grid, a hamlet, farmsteads and dairies with wastewater lagoons.

Roads, streets, verges, the aqueduct and ditches are *surfaces*: drawn in the
image but covered by no polygon. Everything else is a *parcel*: a DWR polygon.
"""

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import LineString, MultiLineString, MultiPolygon, Polygon, box
from shapely.geometry.base import BaseGeometry
from shapely.ops import split

from torchgeo_simclr.sample.spectra import COVERS, DwrCode

#: Bounding box ``(left, bottom, right, top)`` in EPSG:32610 metres.
Bounds = tuple[float, float, float, float]

#: Pixel size and snapping grid of every straight edge, in metres.
GRID_M: Final[float] = 10.0

#: Distance between section-line roads (one mile on the 10 m grid), in metres.
SECTION_M: Final[float] = 1610.0

#: Longest side of a field that is not split further, in metres.
MAX_FIELD_SIDE_M: Final[float] = 820.0

#: Shortest side of a field made by splitting, in metres.
MIN_FIELD_SIDE_M: Final[float] = 180.0

#: Smallest parcel kept after clipping, in square metres (1.5 ha).
MIN_PARCEL_M2: Final[float] = 15_000.0

#: Area of one acre, in square metres.
ACRE_M2: Final[float] = 4046.8564224

#: CRS of the published DWR crop mapping.
DWR_CRS: Final[str] = "EPSG:4269"

#: CRS of the layout and of the imagery.
SCENE_CRS: Final[str] = "EPSG:32610"

#: Equal-area CRS used for ``ACRES`` (California Albers, as DWR uses).
AREA_CRS: Final[str] = "EPSG:3310"

#: Probability of each kind of section block.
BLOCK_TYPES: Final[dict[str, float]] = {
    "row": 0.48,
    "orchard": 0.28,
    "fallow": 0.17,
    "native": 0.07,
}

#: Relative weight of each field cover in each kind of block.
FIELD_COVERS: Final[dict[str, dict[str, float]]] = {
    "row": {
        "alfalfa": 0.12,
        "alfalfa_cut": 0.10,
        "corn": 0.09,
        "row_crop_young": 0.11,
        "cotton": 0.07,
        "tomato": 0.10,
        "rice": 0.04,
        "grain_stubble": 0.16,
        "idle_bare": 0.08,
        "idle_weedy": 0.05,
        "idle_green": 0.10,
    },
    "orchard": {
        "almond": 0.26,
        "walnut": 0.10,
        "pistachio": 0.20,
        "vineyard": 0.12,
        "young_orchard": 0.16,
        "idle_bare": 0.06,
        "idle_weedy": 0.04,
        "idle_green": 0.04,
        "alfalfa": 0.03,
    },
    "fallow": {
        "idle_bare": 0.30,
        "idle_weedy": 0.25,
        "grassland": 0.10,
        "idle_green": 0.15,
        "grain_stubble": 0.13,
        "alfalfa": 0.05,
        "pistachio": 0.05,
    },
    "native": {"grassland": 0.85, "salt_flat": 0.10, "barren": 0.05},
}

#: Cover of a field on the river bottom that is replaced (with probability
#: :data:`RIVER_BOTTOM_P`) by one of these.
RIVER_BOTTOM_COVERS: Final[dict[str, float]] = {
    "duck_marsh": 0.4,
    "idle_green": 0.3,
    "rice": 0.3,
}

#: Probability that a field within :data:`RIVER_BOTTOM_M` of the river gets a
#: river-bottom cover.
RIVER_BOTTOM_P: Final[float] = 0.45

#: Distance from the riparian corridor that counts as river bottom, in metres.
RIVER_BOTTOM_M: Final[float] = 600.0

#: Covers of the pieces of the riparian corridor.
CORRIDOR_COVERS: Final[dict[str, float]] = {
    "riparian_trees": 0.45,
    "marsh": 0.15,
    "grassland": 0.20,
    "barren": 0.07,
    "duck_marsh": 0.08,
    "idle_green": 0.05,
}

#: Covers of the circle of a centre pivot.
PIVOT_COVERS: Final[dict[str, float]] = {
    "alfalfa": 0.35,
    "corn": 0.25,
    "grain_stubble": 0.20,
    "row_crop_young": 0.10,
    "alfalfa_cut": 0.10,
}

#: Covers of the dry corners of a centre pivot.
PIVOT_CORNER_COVERS: Final[dict[str, float]] = {
    "idle_weedy": 0.5,
    "idle_bare": 0.3,
    "grassland": 0.2,
}

#: Probability that a field parcel is published as ``X`` (unclassified).
UNCLASSIFIED_P: Final[float] = 0.03

#: Columns of the DWR crop-mapping layer, in the order of the published 2023
#: file (its geometry column aside).
DWR_COLUMNS: Final[tuple[str, ...]] = (
    "Shape_Area",
    "Shape_Length",
    "DataStatus",
    "UniqueID",
    "DWR_REVISE",
    "SYMB_CLASS",
    "MULTIUSE",
    "CLASS1",
    "SUBCLASS1",
    "SPECOND1",
    "IRR_TYP1PA",
    "IRR_TYP1PB",
    "PCNT1",
    "CLASS2",
    "SUBCLASS2",
    "SPECOND2",
    "IRR_TYP2PA",
    "IRR_TYP2PB",
    "PCNT2",
    "CLASS3",
    "SUBCLASS3",
    "SPECOND3",
    "IRR_TYP3PA",
    "IRR_TYP3PB",
    "PCNT3",
    "CLASS4",
    "SUBCLASS4",
    "SPECOND4",
    "IRR_TYP4PA",
    "IRR_TYP4PB",
    "PCNT4",
    "UCF_ATT",
    "YR_PLANTED",
    "SEN_CROP",
    "ADOY_SEN",
    "CROPTYP1",
    "CTYP1_NOTE",
    "ADOY1",
    "CROPTYP2",
    "CTYP2_NOTE",
    "ADOY2",
    "CROPTYP3",
    "CTYP3_NOTE",
    "ADOY3",
    "CROPTYP4",
    "CTYP4_NOTE",
    "ADOY4",
    "EMRG_CROP",
    "ADOY_EMRG",
    "REGION",
    "ACRES",
    "COUNTY",
    "HYDRO_RGN",
    "LIQ_REPORT",
    "MAIN_CROP",
    "MAIN_CROP_DATE",
)


#: DWR columns that hold real numbers (NaN where empty); the other attribute
#: columns are strings, except ``YR_PLANTED`` (integer) and ``DWR_REVISE``
#: (always empty).
_FLOAT_COLUMNS: Final[frozenset[str]] = frozenset(
    {"Shape_Area", "Shape_Length", "ADOY_SEN", "ADOY1", "ADOY2", "ADOY3", "ADOY4"}
    | {"ADOY_EMRG", "ACRES", "MAIN_CROP_DATE"}
)


@dataclass(frozen=True)
class Parcel:
    """One polygon of the DWR layer.

    Args:
        geometry: field boundary, EPSG:32610 metres.
        cover: key of :data:`~torchgeo_simclr.sample.spectra.COVERS` that the
            renderer paints inside it.
        code: DWR codes written to the layer (``X`` for an unclassified field,
            whatever its cover).
        county: ``"Merced"`` (west of the river) or ``"Fresno"``.
        uid: ``UniqueID``.
        year_planted: planting year of a perennial, else None.
        adoy1: day of year of the earlier crop of a double crop, else NaN.
        adoy2: day of year of the main crop, NaN for perennials and non-crops.
    """

    #: Field boundary, EPSG:32610 metres.
    geometry: MultiPolygon
    #: Cover class painted inside it.
    cover: str
    #: DWR codes written to the layer.
    code: DwrCode
    #: County name.
    county: str
    #: ``UniqueID``.
    uid: str
    #: Planting year of a perennial, else None.
    year_planted: int | None
    #: Day of year of the earlier crop of a double crop, else NaN.
    adoy1: float
    #: Day of year of the main crop, else NaN.
    adoy2: float


@dataclass(frozen=True)
class Surface:
    """An unlabelled surface (road, canal, street, ...), EPSG:32610 metres."""

    #: Area covered, EPSG:32610 metres.
    geometry: BaseGeometry
    #: Cover class painted inside it.
    cover: str


@dataclass(frozen=True)
class Layout:
    """Everything the renderer paints and the DWR layer lists."""

    #: Scene bounds ``(left, bottom, right, top)``, EPSG:32610 metres.
    bounds: Bounds
    #: Labelled polygons, pairwise disjoint.
    parcels: list[Parcel]
    #: Unlabelled surfaces, painted after the parcels in this order.
    surfaces: list[Surface]


@dataclass(frozen=True)
class _Road:
    """A straight road on a grid line: lower edge and width, in metres."""

    edge: float
    width: float
    cover: str
    setback_low: float
    setback_high: float
    ditch: int


@dataclass(frozen=True)
class _River:
    """Centreline, water, corridor pieces and the county split of the river."""

    centreline: LineString
    water: BaseGeometry
    pieces: list[tuple[BaseGeometry, str]]
    reserved: BaseGeometry
    west: BaseGeometry


def make_layout(rng: np.random.Generator, bounds: Bounds) -> Layout:
    """Lay out roads, fields, the river, the aqueduct and the settlements.

    Args:
        rng: random generator; the layout is a pure function of its state.
        bounds: scene bounds ``(left, bottom, right, top)`` in EPSG:32610
            metres, on the 10 m grid.

    Returns:
        The layout. Parcels at the edge extend past ``bounds`` as real field
        boundaries do; parcels wholly outside are dropped.
    """
    ext = _expand(bounds, SECTION_M)
    xroads = _roads(rng, ext[0], ext[2], highway=False)
    yroads = _roads(rng, ext[1], ext[3], highway=True)
    road_geoms = _road_geometries(xroads, yroads, ext)
    roads = shapely.union_all([g for g, _ in road_geoms])
    river = _river(rng, bounds, ext, roads)
    canal_surfaces, canal_reserved = _canal(rng, bounds, ext)
    town, hamlet = _settlement_regions(rng, bounds, xroads, yroads)
    town = town.difference(river.reserved.union(canal_reserved))
    hamlet = hamlet.difference(river.reserved.union(canal_reserved))
    reserved = shapely.union_all([river.reserved, canal_reserved, town, hamlet])
    items = _fields(rng, _cells(xroads, yroads), river, reserved)
    items += river.pieces
    for region, big in ((town, True), (hamlet, False)):
        blocks, streets = _settlement(rng, region, roads, big)
        items += blocks
        canal_surfaces.append(Surface(streets, "street"))
    items = [
        (geom, cover)
        for geom, cover in items
        if geom.intersects(box(*bounds)) and not geom.is_empty
    ]
    parcels = _finalise(rng, items, river.west)
    surfaces = canal_surfaces + [Surface(g, c) for g, c in road_geoms]
    return Layout(bounds=bounds, parcels=parcels, surfaces=surfaces)


def to_crop_mapping(layout: Layout) -> gpd.GeoDataFrame:
    """Write the parcels as the DWR statewide crop-mapping layer.

    Args:
        layout: the scene layout.

    Returns:
        One row per parcel with the columns, column order and dtypes of the
        published 2023 layer (string codes padded to two characters as
        published, e.g. ``CLASS2 == " G"``), MultiPolygon geometry in
        EPSG:4269. ``ACRES`` is the true area (EPSG:3310) in acres;
        ``Shape_Area`` and ``Shape_Length`` are in degrees as in the
        published geodatabase.
    """
    utm = gpd.GeoSeries([p.geometry for p in layout.parcels], crs=SCENE_CRS)
    geo = utm.to_crs(DWR_CRS)
    frame = pd.DataFrame([_attributes(p) for p in layout.parcels])
    strings = [c for c in frame.columns if c not in _FLOAT_COLUMNS]
    frame[strings] = frame[strings].astype("str")
    frame["ACRES"] = utm.to_crs(AREA_CRS).area.to_numpy() / ACRE_M2
    frame["Shape_Area"] = shapely.area(geo.to_numpy())
    frame["Shape_Length"] = shapely.length(geo.to_numpy())
    years = [p.year_planted for p in layout.parcels]
    frame["YR_PLANTED"] = pd.array(years, dtype="Int32")
    frame["DWR_REVISE"] = pd.Series([None] * len(frame), dtype=object)
    return gpd.GeoDataFrame(
        frame[list(DWR_COLUMNS)], geometry=geo.to_numpy(), crs=DWR_CRS
    )


# --- DWR attributes -----------------------------------------------------------


def _pad(code: str) -> str:
    """Right-align a class or subclass code in two characters (``"G" -> " G"``)."""
    return code.rjust(2)


def _season(cls: str, sub: str, specond: str) -> list[str]:
    """CLASS, SUBCLASS, SPECOND, IRR_TYPnPA, IRR_TYPnPB, PCNT of one season."""
    return [_pad(cls), _pad(sub), specond, "*", "*", "**" if cls == "**" else "00"]


def _croptype(cls: str, sub: str) -> str:
    """``CROPTYPn`` of a crop, ``****`` when empty (``"G", "6" -> "G6"``)."""
    if cls == "**":
        return "****"
    return cls + ("" if sub == "**" else sub)


def _attributes(parcel: Parcel) -> dict[str, object]:
    """All DWR attribute columns of one parcel except the computed areas."""
    code = parcel.code
    multiuse = "S" if code.class1 == "**" else "D"
    seasons = [
        _season(code.class1, code.subclass1, "*"),
        _season(code.class2, code.subclass2, code.specond),
        _season("**", "**", "*"),
        _season("**", "**", "*"),
    ]
    crops = [_croptype(code.class1, code.subclass1)]
    crops += [_croptype(code.class2, code.subclass2), "****", "****"]
    adoys = [parcel.adoy1, parcel.adoy2, np.nan, np.nan]
    row: dict[str, object] = {
        "DataStatus": "Provisional",
        "UniqueID": parcel.uid,
        "SYMB_CLASS": code.class2,
        "MULTIUSE": multiuse,
        "UCF_ATT": multiuse + "".join("".join(s) for s in seasons),
        "SEN_CROP": "****",
        "ADOY_SEN": np.nan,
        "EMRG_CROP": "****",
        "ADOY_EMRG": np.nan,
        "REGION": "SCRO",
        "COUNTY": parcel.county,
        "HYDRO_RGN": "San Joaquin River",
        "MAIN_CROP": crops[1],
        "MAIN_CROP_DATE": parcel.adoy2,
    }
    names = ("CLASS", "SUBCLASS", "SPECOND", "IRR_TYP{}PA", "IRR_TYP{}PB", "PCNT")
    for n, season in enumerate(seasons, start=1):
        for name, value in zip(names, season, strict=True):
            row[name.format(n) if "{}" in name else f"{name}{n}"] = value
        row[f"CROPTYP{n}"] = crops[n - 1]
        row[f"CTYP{n}_NOTE"] = "****"
        row[f"ADOY{n}"] = adoys[n - 1]
    listed = [c for c in crops if c != "****"]
    padded = listed + ["****"] * (len(crops) - len(listed))
    row["LIQ_REPORT"] = " ".join(c.ljust(4) for c in padded)
    return row


# --- helpers ------------------------------------------------------------------


def _snap(value: float) -> float:
    """Round a coordinate or length to the 10 m grid, in metres."""
    return float(np.round(value / GRID_M) * GRID_M)


def _expand(bounds: Bounds, margin: float) -> Bounds:
    """Grow a bounding box by ``margin`` metres on every side."""
    left, bottom, right, top = bounds
    return (left - margin, bottom - margin, right + margin, top + margin)


def _choice(rng: np.random.Generator, weights: Mapping[str, float]) -> str:
    """Draw one key of ``weights`` with probability proportional to its value."""
    keys = list(weights)
    p = np.array([weights[k] for k in keys], dtype=float)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def _smooth(rng: np.random.Generator, n: int, corr: int) -> np.ndarray:
    """A smooth random series in [-1, 1] of length ``n``, knots every ``corr``."""
    knots = rng.uniform(-1.0, 1.0, n // corr + 2)
    return np.interp(np.arange(n) / corr, np.arange(knots.size), knots)


def _polygons(geom: BaseGeometry, min_area: float = MIN_PARCEL_M2) -> list[Polygon]:
    """Polygon parts of ``geom`` that are big and wide enough to be a parcel.

    Args:
        geom: any geometry (clipping may leave lines and slivers).
        min_area: smallest part kept, in square metres.

    Returns:
        Parts of at least ``min_area`` that are at least 30 m wide somewhere.
    """
    parts = shapely.get_parts(shapely.make_valid(geom))
    return [
        p
        for p in parts
        if isinstance(p, Polygon)
        and p.area >= min_area
        and not p.buffer(-15.0).is_empty
    ]


# --- roads and cells ----------------------------------------------------------


def _roads(
    rng: np.random.Generator, low: float, high: float, *, highway: bool
) -> list[_Road]:
    """Roads on the section lines (and some half-section lines) of one axis.

    Args:
        rng: random generator.
        low: start of the axis, metres, on the grid.
        high: end of the axis, metres.
        highway: whether one inner road is a 40 m divided highway.

    Returns:
        Roads sorted by position.
    """
    lines = []
    pos = low + _snap(rng.uniform(0.2, 0.8) * SECTION_M)
    while pos < high:
        lines.append(pos)
        if rng.random() < 0.3:
            lines.append(pos + _snap(SECTION_M / 2))
        pos += SECTION_M
    wide = int(rng.integers(1, len(lines) - 1)) if highway and len(lines) > 3 else -1
    roads = []
    for i, line in enumerate(lines):
        low_sb, high_sb = (
            float(v) for v in rng.choice([0, 10, 20], 2, p=[0.25, 0.55, 0.2])
        )
        ditch = int(rng.choice([-1, 0, 1], p=[0.12, 0.76, 0.12]))
        low_sb = max(low_sb, GRID_M) if ditch < 0 else low_sb
        high_sb = max(high_sb, GRID_M) if ditch > 0 else high_sb
        if i == wide:
            roads.append(_Road(line, 40.0, "highway", 20.0, 20.0, 0))
            continue
        width = 20.0 if rng.random() < 0.15 else GRID_M
        cover = "road" if rng.random() < 0.8 else "dirt_road"
        roads.append(_Road(line, width, cover, low_sb, high_sb, ditch))
    return roads


def _road_geometries(
    xroads: Sequence[_Road], yroads: Sequence[_Road], ext: Bounds
) -> list[tuple[BaseGeometry, str]]:
    """Ditches, then roads, as surfaces spanning the expanded bounds."""
    ditches: list[tuple[BaseGeometry, str]] = []
    roads: list[tuple[BaseGeometry, str]] = []
    for vertical, group in ((True, xroads), (False, yroads)):
        for road in group:
            strips = [(road.edge, road.edge + road.width, road.cover)]
            if road.ditch:
                lo = road.edge - GRID_M if road.ditch < 0 else road.edge + road.width
                strips.append((lo, lo + GRID_M, "ditch"))
            for lo, hi, cover in strips:
                geom = (
                    box(lo, ext[1], hi, ext[3])
                    if vertical
                    else box(ext[0], lo, ext[2], hi)
                )
                (ditches if cover == "ditch" else roads).append((geom, cover))
    return ditches + roads


def _cells(xroads: Sequence[_Road], yroads: Sequence[_Road]) -> list[Polygon]:
    """Farmable blocks between consecutive roads, inside their setbacks."""
    spans = []
    for group in (xroads, yroads):
        spans.append(
            [
                (a.edge + a.width + a.setback_high, b.edge - b.setback_low)
                for a, b in itertools.pairwise(group)
                if b.edge - b.setback_low - a.edge - a.width - a.setback_high
                >= MIN_FIELD_SIDE_M
            ]
        )
    return [box(x0, y0, x1, y1) for x0, x1 in spans[0] for y0, y1 in spans[1]]


# --- river, reservoir and aqueduct ---------------------------------------------


def _river(
    rng: np.random.Generator, bounds: Bounds, ext: Bounds, blocked: BaseGeometry
) -> _River:
    """A meandering river from the south-east to the north-west.

    Args:
        rng: random generator.
        bounds: scene bounds, metres.
        ext: expanded bounds the river spans, metres.
        blocked: roads and the aqueduct, cut out of every river parcel.

    Returns:
        The river with its riparian corridor pieces, a reservoir with a marsh
        fringe, the area fields must avoid, and the land west of the river.
    """
    width = bounds[2] - bounds[0]
    start = np.array([bounds[0] + rng.uniform(0.55, 0.8) * width, ext[1]])
    end = np.array([bounds[0] + rng.uniform(0.3, 0.5) * width, ext[3]])
    length = float(np.hypot(*(end - start)))
    tangent = (end - start) / length
    normal = np.array([-tangent[1], tangent[0]])
    s = np.arange(0.0, length, 20.0)
    phase = rng.uniform(0, 2 * np.pi, 2)
    offset = rng.uniform(150, 350) * np.sin(
        2 * np.pi * s / rng.uniform(2500, 4000) + phase[0]
    )
    offset += rng.uniform(30, 60) * np.sin(
        2 * np.pi * s / rng.uniform(1100, 1600) + phase[1]
    )
    points = start + s[:, None] * tangent + offset[:, None] * normal
    centreline = LineString(points)
    water = centreline.buffer(rng.uniform(15, 25))
    radius = 170 + 70 * _smooth(rng, s.size, 40)
    shift = 50 * _smooth(rng, s.size, 60)
    centres = shapely.points(points + shift[:, None] * normal)
    corridor = shapely.union_all(shapely.buffer(centres[::2], radius[::2], quad_segs=8))
    lake, fringe = _reservoir(rng, points, normal, width)
    pond = shapely.union_all([lake, fringe])
    land = corridor.difference(water).difference(pond).difference(blocked)
    cuts = _cross_sections(rng, points, normal, s)
    pieces = [(g, _choice(rng, CORRIDOR_COVERS)) for g in split(land, cuts).geoms]
    pieces += [(g, "river") for g in shapely.get_parts(water.difference(blocked))]
    pieces += [(lake.difference(blocked), "reservoir")]
    pieces += [(fringe.difference(blocked), "marsh")]
    far = np.vstack([start - 5000 * tangent, points, end + 5000 * tangent])
    halves = split(box(*ext), LineString(far)).geoms
    probe = shapely.Point(ext[0] + 1.0, (ext[1] + ext[3]) / 2)
    west = shapely.union_all([h for h in halves if h.intersects(probe)])
    reserved = corridor.union(pond).buffer(GRID_M)
    return _River(centreline, water, pieces, reserved, west)


def _reservoir(
    rng: np.random.Generator, points: np.ndarray, normal: np.ndarray, width: float
) -> tuple[Polygon, BaseGeometry]:
    """A lobed pond beside the river and its ring of marsh.

    Args:
        rng: random generator.
        points: river centreline vertices, metres, shape ``[N, 2]``.
        normal: unit vector across the river.
        width: scene width, metres (bounds the pond size).

    Returns:
        The open water and the marsh fringe around it.
    """
    radius = rng.uniform(0.5, 1.0) * min(380.0, 0.08 * width)
    anchor = points[int(rng.uniform(0.4, 0.6) * len(points))]
    side = 1.0 if rng.random() < 0.5 else -1.0
    centre = anchor + side * normal * (300.0 + radius)
    theta = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    lobes = sum(
        a * np.sin(k * theta + rng.uniform(0, 2 * np.pi))
        for k, a in ((2, 0.12), (3, 0.08), (5, 0.05))
    )
    r = radius * (1 + lobes)
    lake = Polygon(
        np.column_stack([centre[0] + r * np.cos(theta), centre[1] + r * np.sin(theta)])
    )
    fringe = lake.buffer(rng.uniform(20, 40)).difference(lake)
    return lake, fringe


def _cross_sections(
    rng: np.random.Generator, points: np.ndarray, normal: np.ndarray, s: np.ndarray
) -> MultiLineString:
    """Lines across the river every 400-1000 m that cut the corridor into pieces."""
    at = np.cumsum(rng.uniform(400, 1000, int(s[-1] // 400) + 1))
    idx = np.searchsorted(s, at[at < s[-1]])
    return MultiLineString(
        [
            [tuple(points[i] - 330 * normal), tuple(points[i] + 330 * normal)]
            for i in idx
        ]
    )


def _canal(
    rng: np.random.Generator, bounds: Bounds, ext: Bounds
) -> tuple[list[Surface], BaseGeometry]:
    """A 30 m concrete-lined aqueduct with levee roads in the west of the scene.

    Returns:
        The levee and water surfaces, and the corridor fields must avoid.
    """
    width = bounds[2] - bounds[0]
    ys = np.linspace(ext[1], ext[3], 6)
    start = rng.uniform(0.06, 0.16)
    wander = np.cumsum(rng.uniform(-0.02, 0.02, ys.size))
    xs = bounds[0] + (start + wander) * width
    line = LineString(np.column_stack([xs, ys]))
    water = line.buffer(15.0, cap_style="flat")
    levee = line.buffer(35.0, cap_style="flat").difference(water)
    reserved = line.buffer(45.0, cap_style="flat")
    return [Surface(levee, "levee"), Surface(water, "canal")], reserved


# --- settlements --------------------------------------------------------------


def _nearest_crossing(
    target: tuple[float, float], xroads: Sequence[_Road], yroads: Sequence[_Road]
) -> tuple[float, float]:
    """Centre of the road intersection nearest to ``target``, metres."""
    xs = np.array([r.edge + r.width / 2 for r in xroads])
    ys = np.array([r.edge + r.width / 2 for r in yroads])
    return (
        float(xs[np.argmin(np.abs(xs - target[0]))]),
        float(ys[np.argmin(np.abs(ys - target[1]))]),
    )


def _settlement_regions(
    rng: np.random.Generator,
    bounds: Bounds,
    xroads: Sequence[_Road],
    yroads: Sequence[_Road],
) -> tuple[Polygon, Polygon]:
    """A town in the west half and a hamlet in the east half, on road crossings."""
    left, bottom, right, top = bounds
    width, height = right - left, top - bottom
    regions = []
    for fx, (max_w, max_h, frac) in (
        ((0.2, 0.3), (1800.0, 1400.0, 0.3)),
        ((0.75, 0.9), (600.0, 600.0, 0.12)),
    ):
        target = (
            left + rng.uniform(*fx) * width,
            bottom + rng.uniform(0.3, 0.7) * height,
        )
        cx, cy = _nearest_crossing(target, xroads, yroads)
        half_w = _snap(min(max_w, frac * width) / 2)
        half_h = _snap(min(max_h, frac * height) / 2)
        regions.append(box(cx - half_w, cy - half_h, cx + half_w, cy + half_h))
    return regions[0], regions[1]


def _settlement(
    rng: np.random.Generator, region: BaseGeometry, roads: BaseGeometry, big: bool
) -> tuple[list[tuple[BaseGeometry, str]], BaseGeometry]:
    """Blocks of a town on a street grid.

    Args:
        rng: random generator.
        region: area of the settlement, metres.
        roads: county roads (cut out of the blocks).
        big: a town (commercial centre, industrial edge) rather than a hamlet.

    Returns:
        The block parcels with their covers, and the streets between them.
    """
    if region.is_empty:
        return [], region
    x0, y0, x1, y1 = region.bounds
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    reach = max(x1 - x0, y1 - y0) / 2
    usable = region.difference(roads)
    blocks: list[tuple[BaseGeometry, str]] = []
    for bx0, bx1 in _street_spans(rng, x0, x1):
        for by0, by1 in _street_spans(rng, y0, y1):
            d = (
                float(np.hypot(*(np.array([bx0 + bx1, by0 + by1]) / 2 - centre)))
                / reach
            )
            weights = (
                {
                    "urban_commercial": 0.6 * max(0.0, 1 - 1.5 * d),
                    "urban_residential": 0.6,
                    "urban_industrial": 0.4 * d,
                    "urban_vacant": 0.1,
                }
                if big
                else {"urban_residential": 0.6, "farmstead": 0.2, "urban_vacant": 0.2}
            )
            cover = _choice(rng, weights)
            for part in _polygons(box(bx0, by0, bx1, by1).intersection(usable), 8000.0):
                blocks.append((part, cover))
    streets = region.difference(shapely.union_all([g for g, _ in blocks]))
    return blocks, streets


def _street_spans(
    rng: np.random.Generator, low: float, high: float
) -> list[tuple[float, float]]:
    """Block extents between streets 10-20 m wide every 120-180 m, metres."""
    spans = []
    pos = low
    while pos < high:
        street = GRID_M if rng.random() < 0.7 else 2 * GRID_M
        end = min(high, pos + _snap(rng.uniform(120, 180)))
        if end - pos - street >= 60.0:
            spans.append((pos + street, end))
        pos = end
    return spans


# --- fields -------------------------------------------------------------------


def _fields(
    rng: np.random.Generator,
    cells: Sequence[Polygon],
    river: _River,
    reserved: BaseGeometry,
) -> list[tuple[BaseGeometry, str]]:
    """Fields of every block with their covers, clipped by ``reserved``."""
    items: list[tuple[BaseGeometry, str]] = []
    for cell in cells:
        kind = _choice(rng, BLOCK_TYPES)
        rects = [cell.bounds] if kind == "native" else _subdivide(rng, cell.bounds)
        block: list[tuple[BaseGeometry, str]] = []
        for rect in rects:
            cover = _choice(rng, FIELD_COVERS[kind])
            near = box(*rect).distance(river.reserved) < RIVER_BOTTOM_M
            if kind != "native" and near and rng.random() < RIVER_BOTTOM_P:
                cover = _choice(rng, RIVER_BOTTOM_COVERS)
            if kind in ("row", "fallow") and _pivot_fits(rect) and rng.random() < 0.2:
                block += _pivot(rng, rect)
            else:
                block.append((box(*rect), cover))
        if kind != "native" and rng.random() < 0.35:
            block = _farmstead(rng, block)
        items += block
    shapely.prepare(reserved)
    clipped = shapely.difference(np.array([g for g, _ in items]), reserved)
    return [(g, c) for g, (_, c) in zip(clipped, items, strict=True)]


def _subdivide(
    rng: np.random.Generator, rect: tuple[float, float, float, float]
) -> list[tuple[float, float, float, float]]:
    """Split a block into rectangular fields of 180-820 m sides.

    Args:
        rng: random generator.
        rect: ``(x0, y0, x1, y1)`` in metres, on the grid.

    Returns:
        Field rectangles; neighbours share an edge or are 10 m apart.
    """
    x0, y0, x1, y1 = rect
    w, h = x1 - x0, y1 - y0
    longest = max(w, h)
    stop = 0.35 if w * h > 500_000 else 0.55 if w * h > 250_000 else 0.8
    if longest <= MAX_FIELD_SIDE_M and rng.random() < stop:
        return [rect]
    if longest < 2 * MIN_FIELD_SIDE_M + GRID_M:
        return [rect]
    vertical = w > h if abs(w - h) > 50 else bool(rng.random() < 0.5)
    lo, hi = (x0, x1) if vertical else (y0, y1)
    frac = float(rng.choice([0.5, 0.5, 0.5, 0.25, 0.75, 1 / 3, 2 / 3]))
    gap = float(rng.choice([0.0, GRID_M], p=[0.6, 0.4]))
    cut = lo + _snap(frac * (hi - lo))
    if cut - lo < MIN_FIELD_SIDE_M or hi - cut - gap < MIN_FIELD_SIDE_M:
        cut = lo + _snap((hi - lo - gap) / 2)
    if vertical:
        parts = [(x0, y0, cut, y1), (cut + gap, y0, x1, y1)]
    else:
        parts = [(x0, y0, x1, cut), (x0, cut + gap, x1, y1)]
    return [f for part in parts for f in _subdivide(rng, part)]


def _pivot_fits(rect: tuple[float, float, float, float]) -> bool:
    """Whether a field is square and large enough for a centre pivot."""
    w, h = rect[2] - rect[0], rect[3] - rect[1]
    return min(w, h) >= 500 and max(w, h) / min(w, h) <= 1.3


def _pivot(
    rng: np.random.Generator, rect: tuple[float, float, float, float]
) -> list[tuple[BaseGeometry, str]]:
    """A centre-pivot circle and its dry corners."""
    x0, y0, x1, y1 = rect
    radius = min(x1 - x0, y1 - y0) / 2 - GRID_M
    circle = shapely.Point((x0 + x1) / 2, (y0 + y1) / 2).buffer(radius, quad_segs=32)
    corners = box(*rect).difference(circle)
    return [
        (circle, _choice(rng, PIVOT_COVERS)),
        (corners, _choice(rng, PIVOT_CORNER_COVERS)),
    ]


def _farmstead(
    rng: np.random.Generator, block: list[tuple[BaseGeometry, str]]
) -> list[tuple[BaseGeometry, str]]:
    """Carve a farmstead, or a dairy with its lagoon, out of a field corner."""
    big = [
        i
        for i, (g, _) in enumerate(block)
        if g.area >= 200_000 and g.area >= 0.999 * box(*g.bounds).area
    ]
    if not big:
        return block
    i = big[int(rng.integers(len(big)))]
    field, cover = block[i]
    fx0, fy0, fx1, fy1 = field.bounds
    dairy = rng.random() < 0.3
    size = _snap(rng.uniform(220, 340) if dairy else rng.uniform(100, 180))
    cx = fx0 if rng.random() < 0.5 else fx1 - size
    cy = fy0 if rng.random() < 0.5 else fy1 - size
    yard = box(cx, cy, cx + size, cy + size)
    out = [*block[:i], (field.difference(yard), cover), *block[i + 1 :]]
    if not dairy:
        return [*out, (yard, "farmstead")]
    side = _snap(0.35 * size)
    lagoon = box(cx, cy, cx + side, cy + side)
    return [*out, (yard.difference(lagoon), "dairy"), (lagoon, "lagoon")]


# --- parcels ------------------------------------------------------------------


def _finalise(
    rng: np.random.Generator,
    items: Sequence[tuple[BaseGeometry, str]],
    west: BaseGeometry,
) -> list[Parcel]:
    """Turn cleaned geometry parts into parcels with DWR codes and dates."""
    field_covers = {
        c for kind in ("row", "orchard", "fallow") for c in FIELD_COVERS[kind]
    }
    shapely.prepare(west)
    uid = 5_200_000 + int(rng.integers(0, 100_000))
    parcels = []
    for geom, cover in items:
        for part in _polygons(geom):
            options = COVERS[cover].codes
            code = options[int(rng.integers(len(options)))]
            if cover in field_covers and rng.random() < UNCLASSIFIED_P:
                code = DwrCode("X")
            uid += int(rng.integers(1, 40))
            parcels.append(
                Parcel(
                    geometry=MultiPolygon([part]),
                    cover=cover,
                    code=code,
                    county="Merced"
                    if west.intersects(part.representative_point())
                    else "Fresno",
                    uid=str(uid),
                    year_planted=_year_planted(rng, code),
                    adoy1=float(rng.integers(95, 130))
                    if code.class1 != "**"
                    else np.nan,
                    adoy2=_main_crop_doy(rng, code),
                )
            )
    return parcels


def _year_planted(rng: np.random.Generator, code: DwrCode) -> int | None:
    """Planting year of a perennial (2021-2023 when young), else None."""
    if not code.perennial:
        return None
    young = code.class2 == "YP" or code.specond == "Y"
    return int(rng.integers(2021, 2024) if young else rng.integers(1995, 2019))


def _main_crop_doy(rng: np.random.Generator, code: DwrCode) -> float:
    """Day of year of the main annual crop (``ADOY2``), NaN otherwise."""
    if code.class1 != "**":
        return float(rng.integers(225, 260))
    if code.class2 == "G":
        return float(rng.integers(95, 135))
    if code.class2 in ("F", "T", "R"):
        return float(rng.integers(170, 230))
    return np.nan
