"""Render the sample scene and write it as Sentinel-2 L2A GeoTIFFs plus DWR polygons.

The renderer paints every surface of the :mod:`~torchgeo_simclr.sample.layout`
as a per-pixel mixture of the endmembers of :mod:`~torchgeo_simclr.sample.spectra`:

1. per field: endmember fractions drawn from the cover's ranges (growth stage,
   canopy cover, soil moisture), a brightness per endmember and a small gain
   per band (field-to-field variation of the same crop);
2. per pixel: smooth low-frequency variation of the vegetation cover, a soil
   moisture gradient across irrigated fields, periodic rows in orchards and
   vineyards, log-normal speckle of the fractions in towns and verges;
3. sensor: per-pixel noise, 20 m bands averaged over 2 x 2 pixels and 60 m bands
   over 6 x 6 pixels and interpolated back to 10 m;
4. atmosphere: smooth residual haze strongest in blue, a few cumulus clouds
   with their shadows displaced to the north-west (the sun stands in the
   south-east at 10:50 local solar time in July).

All randomness comes from one ``numpy.random.Generator`` seeded with ``seed``,
so the same seed gives byte-identical pixel arrays (with the same numpy build)
and identical polygons.
"""

import contextlib
import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import numpy as np
import rasterio
from rasterio.features import rasterize
from rasterio.io import MemoryFile
from rasterio.transform import Affine, from_origin
from shapely.geometry.base import BaseGeometry

from torchgeo_simclr.constants import (
    REFLECTANCE_SCALE,
    S2_BAND_RESOLUTION,
    S2_BANDS,
    S2_NODATA,
)
from torchgeo_simclr.geopackage import write_geopackage
from torchgeo_simclr.outputs import replaced_when_complete
from torchgeo_simclr.sample.layout import (
    GRID_M,
    SCENE_CRS,
    Bounds,
    Layout,
    make_layout,
    to_crop_mapping,
)
from torchgeo_simclr.sample.spectra import (
    CLOUD_REFLECTANCE,
    COVERS,
    ENDMEMBER_NAMES,
    ENDMEMBERS,
    SHADOW_TRANSMISSION,
    VEGETATION,
    WAVELENGTH_NM,
)

#: Acquisition time of the scene (Sentinel-2B over the San Joaquin Valley).
ACQUIRED: Final[datetime] = datetime(2023, 7, 15, 18, 49, 19, tzinfo=UTC)

#: Product discriminator (processing time) in the file names.
PROCESSED: Final[str] = "20230715T223344"

#: Easting of the boundary between the MGRS 100 km columns F and G of UTM
#: zone 10, in metres; the scene is centred on it.
CENTRE_EASTING: Final[float] = 700_000.0

#: Northing of the south edge of the scene, in metres (MGRS row G starts here).
SOUTH_NORTHING: Final[float] = 4_100_000.0

#: MGRS 100 km column letters of UTM zone 10 around :data:`CENTRE_EASTING`.
MGRS_COLUMNS: Final[str] = "EFGH"

#: Name of the layer in the GeoPackage.
LAYER: Final[str] = "crop_mapping"

#: GeoTIFF block size, in pixels.
BLOCK_PX: Final[int] = 256

#: Smallest scene side, in pixels.
MIN_SIZE: Final[int] = 64

#: Most tiles a scene can be split into.
MAX_TILES: Final[int] = len(MGRS_COLUMNS)

#: Reflectance (0-1) of the additive per-pixel noise floor.
NOISE_FLOOR: Final[float] = 0.002


@dataclass(frozen=True)
class SampleScene:
    """Where a generated sample scene lies and what it covers.

    Args:
        root: folder the scene was written to.
        image_paths: Sentinel-2 L2A GeoTIFFs, west to east.
        labels_path: DWR crop-mapping GeoPackage.
        bounds: ``(left, bottom, right, top)`` in EPSG:32610 metres.
        size: side of the whole scene, in pixels.
        seed: seed of the random generator.
        crs: CRS of the imagery.
        res: pixel size, in metres.
        layer: layer name in the GeoPackage.
        acquired: acquisition time written to the images.
    """

    #: Folder the scene was written to.
    root: Path
    #: Sentinel-2 L2A GeoTIFFs, west to east.
    image_paths: list[Path]
    #: DWR crop-mapping GeoPackage (EPSG:4269).
    labels_path: Path
    #: ``(left, bottom, right, top)`` in EPSG:32610 metres.
    bounds: Bounds
    #: Side of the whole scene, in pixels.
    size: int
    #: Seed of the random generator.
    seed: int
    #: CRS of the imagery.
    crs: str = SCENE_CRS
    #: Pixel size, in metres.
    res: float = GRID_M
    #: Layer name in the GeoPackage.
    layer: str = LAYER
    #: Acquisition time written to the images.
    acquired: datetime = ACQUIRED

    @property
    def style_paths(self) -> list[Path]:
        """QGIS styles beside the GeoTIFFs (``.qml``, natural colour), west to east.

        Returns:
            One per path of :attr:`image_paths`, with the suffix ``.qml``.
        """
        return [path.with_suffix(".qml") for path in self.image_paths]


def make_sample_scene(
    root: str | os.PathLike[str],
    size: int = 2048,
    seed: int = 0,
    tiles: int = 2,
    *,
    overwrite: bool = False,
) -> SampleScene:
    """Write a synthetic Central Valley Sentinel-2 scene and its DWR labels.

    Writes ``root/sentinel2/S2B_MSIL2A_..._T10S?G_....tif`` (``tiles`` GeoTIFFs
    side by side, together ``size`` x ``size`` pixels of 10 m, EPSG:32610,
    12 bands in ``S2_BANDS`` order, uint16 reflectance x10000, nodata 0) and
    ``root/crop_mapping.gpkg`` (DWR crop-mapping polygons, EPSG:4269, layer
    ``crop_mapping``). Beside each GeoTIFF a QGIS style of the same name
    (``.qml``, see :func:`~torchgeo_simclr.inference.styles.natural_colour_style`)
    makes QGIS open it in natural colour. Files are written under temporary
    names and renamed when all are complete.

    Args:
        root: output folder, created if missing.
        size: side of the scene in pixels (10 m each), at least 64 and a
            multiple of ``tiles``.
        seed: seed of the random generator; the same seed gives the same
            pixels and polygons.
        tiles: number of GeoTIFFs the scene is split into, west to east (1-4).
        overwrite: replace the files of an existing sample scene in ``root``.

    Returns:
        The paths and bounds of the scene.

    Raises:
        ValueError: if ``size`` or ``tiles`` is out of range, or ``root`` (or
            its ``sentinel2`` folder) is a file.
        FileExistsError: if an output file exists and ``overwrite`` is False.
    """
    _check_arguments(size, tiles)
    root = Path(root)
    for folder in (root, root / "sentinel2"):
        if folder.exists() and not folder.is_dir():
            msg = (
                f"Sample scene folder {str(folder)!r} is a file; pass a folder "
                "for --root (it is made if missing)."
            )
            raise ValueError(msg)
    image_paths = [root / "sentinel2" / name for name in tile_names(tiles)]
    labels_path = root / f"{LAYER}.gpkg"
    style_paths = [path.with_suffix(".qml") for path in image_paths]
    if not overwrite:
        _refuse_existing([*image_paths, *style_paths, labels_path])
    layout_rng, render_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2)
    )
    bounds = scene_bounds(size)
    layout = make_layout(layout_rng, bounds)
    image = render(render_rng, layout, size)
    _write_outputs(layout, image, image_paths, labels_path, seed)
    return SampleScene(
        root=root,
        image_paths=image_paths,
        labels_path=labels_path,
        bounds=bounds,
        size=size,
        seed=seed,
    )


def scene_bounds(size: int) -> Bounds:
    """Bounds of a ``size`` x ``size`` scene, EPSG:32610 metres.

    The scene is centred on easting 700 000 m with its south edge on northing
    4 100 000 m, on the west side of the San Joaquin Valley (Merced / Fresno
    counties).
    """
    left = CENTRE_EASTING - size * GRID_M / 2
    return (left, SOUTH_NORTHING, left + size * GRID_M, SOUTH_NORTHING + size * GRID_M)


def tile_names(tiles: int) -> list[str]:
    """File names of the GeoTIFFs, west to east, in the L2A product style.

    Each file gets its own MGRS tile of row G of UTM zone 10 (``T10SFG``,
    ``T10SGG``, ...).
    """
    start = 2 - tiles // 2
    return [
        f"S2B_MSIL2A_{ACQUIRED:%Y%m%dT%H%M%S}_N0509_R070_T10S{col}G_{PROCESSED}.tif"
        for col in MGRS_COLUMNS[start : start + tiles]
    ]


def _check_arguments(size: int, tiles: int) -> None:
    """Raise ValueError for a size or tile count the scene cannot have."""
    if not 1 <= tiles <= MAX_TILES:
        msg = f"tiles must be between 1 and {MAX_TILES}, got {tiles}."
        raise ValueError(msg)
    if size < MIN_SIZE or size % tiles:
        msg = (
            f"size must be at least {MIN_SIZE} pixels and a multiple of "
            f"tiles={tiles}, got {size}."
        )
        raise ValueError(msg)


def _refuse_existing(paths: list[Path]) -> None:
    """Raise FileExistsError naming the first of ``paths`` that exists."""
    for path in paths:
        if path.exists():
            msg = (
                f"{path} already exists (`make demo` writes the scene too); pass "
                "--overwrite (overwrite=True in Python) to replace the sample scene."
            )
            raise FileExistsError(msg)


# --- rendering ----------------------------------------------------------------


@dataclass(frozen=True)
class _Surfaces:
    """Per-surface rendering parameters; row ``i`` is surface id ``i``.

    Surface id 0 is the background (field margins and verges), then the
    parcels, then the unlabelled surfaces, in layout order.
    """

    #: Endmember fractions times brightness, shape ``[N, K]``.
    fractions: np.ndarray
    #: Per-band gain of each surface, shape ``[12, N]``.
    band_gain: np.ndarray
    #: Relative amplitude of the smooth vegetation variation, ``[N]``.
    veg_amp: np.ndarray
    #: Weight of the fine versus coarse noise field, ``[N]``.
    veg_mix: np.ndarray
    #: Relative per-pixel noise, ``[N]``.
    pixel_noise: np.ndarray
    #: Log-normal speckle of the fractions, ``[N]``.
    speckle: np.ndarray
    #: Signed across-field change of the soil wet share, ``[N]``.
    wet_grad: np.ndarray
    #: Direction of that change and of the rows, radians, ``[N]``.
    theta: np.ndarray
    #: Centre (row, col) and half diagonal of the surface, pixels, ``[3, N]``.
    extent: np.ndarray
    #: Row period in pixels (0 = no rows), ``[N]``.
    row_period: np.ndarray
    #: Row phase (0-1), ``[N]``.
    row_phase: np.ndarray
    #: Row contrast (0-1), ``[N]``.
    row_contrast: np.ndarray
    #: Endmember index that forms the rows (-1 = none), ``[N]``.
    row_member: np.ndarray


def render(rng: np.random.Generator, layout: Layout, size: int) -> np.ndarray:
    """Paint the layout as a Sentinel-2 L2A image.

    Args:
        rng: random generator.
        layout: roads, fields and other surfaces, EPSG:32610.
        size: side of the scene, pixels.

    Returns:
        Reflectance x10000, uint16, shape ``[12, size, size]``, bands in
        ``S2_BANDS`` order, every value >= 1 (0 is nodata).
    """
    transform = from_origin(layout.bounds[0], layout.bounds[3], GRID_M, GRID_M)
    covers = ["margin"] + [p.cover for p in layout.parcels]
    covers += [s.cover for s in layout.surfaces]
    geoms = [p.geometry for p in layout.parcels] + [s.geometry for s in layout.surfaces]
    sid = rasterize(
        ((g, i) for i, g in enumerate(geoms, start=1)),
        out_shape=(size, size),
        transform=transform,
        fill=0,
        dtype="int32",
    )
    table = _draw_surfaces(rng, covers, [None, *geoms], ~transform)
    fractions = _pixel_fractions(rng, sid, table)
    endmembers = np.array(
        [ENDMEMBERS[k].reflectance for k in ENDMEMBER_NAMES], dtype=np.float32
    )
    refl = (endmembers.T @ fractions.reshape(len(ENDMEMBER_NAMES), -1)).reshape(
        len(S2_BANDS), size, size
    )
    del fractions
    refl *= np.take(table.band_gain, sid, axis=1)
    noise = rng.standard_normal(refl.shape, dtype=np.float32)
    refl += noise * (refl * table.pixel_noise[sid] + NOISE_FLOOR)
    del noise
    _native_resolution(refl)
    _atmosphere(rng, refl)
    dn = np.rint(refl * np.float32(REFLECTANCE_SCALE))
    out: np.ndarray = np.clip(dn, S2_NODATA + 1, np.iinfo(np.uint16).max)
    return out.astype(np.uint16)


def _draw_surfaces(
    rng: np.random.Generator,
    covers: list[str],
    geoms: Sequence[BaseGeometry | None],
    to_pixels: Affine,
) -> _Surfaces:
    """Draw the per-field parameters of every surface.

    Args:
        rng: random generator.
        covers: cover name of each surface id.
        geoms: geometry of each surface id (None for the background).
        to_pixels: affine from EPSG:32610 metres to (col, row) pixels.

    Returns:
        The parameter table.
    """
    n, k = len(covers), len(ENDMEMBER_NAMES)
    index = {name: i for i, name in enumerate(ENDMEMBER_NAMES)}
    spread = np.array([ENDMEMBERS[e].spread for e in ENDMEMBER_NAMES])
    fractions = np.zeros((n, k))
    for i, cover in enumerate(covers):
        for name, (lo, hi) in COVERS[cover].fractions.items():
            fractions[i, index[name]] = rng.uniform(lo, hi)
    fractions /= fractions.sum(axis=1, keepdims=True)
    fractions *= np.clip(1 + spread * rng.standard_normal((n, k)), 0.6, 1.5)
    attrs = [COVERS[c] for c in covers]
    rows = [a.rows for a in attrs]

    def per_cover(values: list[float]) -> np.ndarray:
        return np.array(values, dtype=np.float32)

    def uniform(ranges: list[tuple[float, float] | None]) -> np.ndarray:
        draws = [rng.uniform(*r) if r else 0.0 for r in ranges]
        return per_cover(draws)

    axis_aligned = rng.random(n) < 0.8
    theta = np.where(
        axis_aligned, rng.integers(0, 2, n) * np.pi / 2, rng.uniform(0, np.pi, n)
    )
    return _Surfaces(
        fractions=fractions.astype(np.float32),
        band_gain=(1 + 0.03 * rng.standard_normal((len(S2_BANDS), n))).astype(
            np.float32
        ),
        veg_amp=per_cover([a.veg_noise for a in attrs]),
        veg_mix=rng.uniform(0, 1, n).astype(np.float32),
        pixel_noise=per_cover([a.pixel_noise for a in attrs]),
        speckle=per_cover([a.speckle for a in attrs]),
        wet_grad=per_cover([a.wet_gradient for a in attrs])
        * rng.choice([-1.0, 1.0], n).astype(np.float32),
        theta=theta.astype(np.float32),
        extent=_pixel_extents(geoms, to_pixels),
        row_period=uniform([r.period_px if r else None for r in rows]),
        row_phase=rng.uniform(0, 1, n).astype(np.float32),
        row_contrast=uniform([r.contrast if r else None for r in rows]),
        row_member=np.array([index[r.member] if r else -1 for r in rows]),
    )


def _pixel_extents(
    geoms: Sequence[BaseGeometry | None], to_pixels: Affine
) -> np.ndarray:
    """Centre row, centre col and half diagonal of each geometry, in pixels.

    Args:
        geoms: geometries (None for the background, which gets a centre of
            0 and a half diagonal of 1).
        to_pixels: affine from EPSG:32610 metres to (col, row) pixels.

    Returns:
        float32 array of shape ``[3, N]``.
    """
    out = np.zeros((3, len(geoms)), dtype=np.float32)
    out[2] = 1.0
    for i, geom in enumerate(geoms):
        if geom is None:
            continue
        x0, y0, x1, y1 = geom.bounds
        c0, r0 = to_pixels @ (x0, y1)
        c1, r1 = to_pixels @ (x1, y0)
        out[:, i] = (
            (r0 + r1) / 2,
            (c0 + c1) / 2,
            max(np.hypot(r1 - r0, c1 - c0) / 2, 1),
        )
    return out


def _pixel_fractions(
    rng: np.random.Generator, sid: np.ndarray, table: _Surfaces
) -> np.ndarray:
    """Endmember fractions of every pixel.

    Args:
        rng: random generator.
        sid: surface id of every pixel, shape ``[H, W]``.
        table: per-surface parameters.

    Returns:
        float32 array of shape ``[K, H, W]`` (K endmembers).
    """
    fractions = np.take(table.fractions.T, sid, axis=1)
    size = sid.shape[0]
    fine, coarse = _value_noise(rng, size, 24), _value_noise(rng, size, 64)
    _vary_moisture(fractions, sid, table, coarse)
    mix = table.veg_mix[sid]
    field = mix * fine + (1 - mix) * coarse
    field += 0.35 * rng.standard_normal(sid.shape, dtype=np.float32)
    _vary_vegetation(fractions, 1 + table.veg_amp[sid] * field)
    del field, mix, fine, coarse
    _add_rows(fractions, sid, table)
    _add_speckle(rng, fractions, sid, table)
    return fractions


def _rescale_rest(
    fractions: np.ndarray, members: list[int], before: np.ndarray, after: np.ndarray
) -> None:
    """Scale the endmembers not in ``members`` so each pixel's sum is kept.

    Args:
        fractions: ``[K, ...]`` fractions, changed in place.
        members: endmember indices whose total went from ``before`` to ``after``.
        before: their total before the change, shape ``[...]``.
        after: their total after the change, shape ``[...]``.
    """
    total = fractions.sum(axis=0) - after + before
    scale = (total - after) / np.maximum(total - before, 1e-6)
    rest = [i for i in range(fractions.shape[0]) if i not in members]
    fractions[rest] *= scale


def _vary_vegetation(fractions: np.ndarray, factor: np.ndarray) -> None:
    """Multiply the vegetation cover by ``factor`` (``[H, W]``), keeping sums."""
    veg = [ENDMEMBER_NAMES.index(v) for v in VEGETATION]
    before = fractions[veg].sum(axis=0)
    total = fractions.sum(axis=0)
    after = np.clip(before * np.maximum(factor, 0), 0, 0.98 * total)
    fractions[veg] *= after / np.maximum(before, 1e-6)
    _rescale_rest(fractions, veg, before, after)


def _vary_moisture(
    fractions: np.ndarray, sid: np.ndarray, table: _Surfaces, noise: np.ndarray
) -> None:
    """Shift soil between dry and moist along each field and with ``noise``.

    Furrow and flood irrigation wet the head of a field first, so the wet share
    of the soil ramps across the field in the direction ``theta``.
    """
    dry, moist = ENDMEMBER_NAMES.index("dry_soil"), ENDMEMBER_NAMES.index("moist_soil")
    soil = fractions[dry] + fractions[moist]
    wet = fractions[moist] / np.maximum(soil, 1e-6)
    rows, cols = np.indices(sid.shape, dtype=np.float32)
    centre_r, centre_c, half = (table.extent[i][sid] for i in range(3))
    theta = table.theta[sid]
    ramp = (
        (cols - centre_c) * np.cos(theta) + (rows - centre_r) * np.sin(theta)
    ) / half
    wet = np.clip(wet + table.wet_grad[sid] * ramp + 0.08 * noise, 0, 1)
    fractions[moist] = soil * wet
    fractions[dry] = soil * (1 - wet)


def _add_rows(fractions: np.ndarray, sid: np.ndarray, table: _Surfaces) -> None:
    """Modulate the canopy of orchards and vineyards with periodic rows."""
    for member in np.unique(table.row_member[table.row_member >= 0]):
        rr, cc = np.nonzero(table.row_member[sid] == member)
        s = sid[rr, cc]
        theta = table.theta[s]
        phase = (cc * np.cos(theta) + rr * np.sin(theta)) / table.row_period[s]
        wave = np.cos(2 * np.pi * (phase + table.row_phase[s]))
        sub = fractions[:, rr, cc]
        before = sub[member].copy()
        after = np.clip(
            before * (1 + table.row_contrast[s] * wave), 0, 0.98 * sub.sum(axis=0)
        )
        sub[member] = after
        _rescale_rest(sub, [int(member)], before, after)
        fractions[:, rr, cc] = sub


def _add_speckle(
    rng: np.random.Generator, fractions: np.ndarray, sid: np.ndarray, table: _Surfaces
) -> None:
    """Jitter the fractions pixel by pixel in mixed surfaces (towns, verges)."""
    rr, cc = np.nonzero(table.speckle[sid] > 0)
    sub = fractions[:, rr, cc]
    sigma = table.speckle[sid[rr, cc]]
    total = sub.sum(axis=0)
    sub *= np.exp(sigma * rng.standard_normal(sub.shape, dtype=np.float32))
    sub *= total / np.maximum(sub.sum(axis=0), 1e-6)
    fractions[:, rr, cc] = sub


# --- sensor and atmosphere ----------------------------------------------------


def _value_noise(rng: np.random.Generator, size: int, cell: int) -> np.ndarray:
    """Smooth random field with features about ``cell`` pixels across.

    Args:
        rng: random generator.
        size: side of the field, pixels.
        cell: distance between random knots, pixels.

    Returns:
        float32 array of shape ``[size, size]``, roughly zero mean, unit scale.
    """
    knots = size // cell + 2
    grid = rng.standard_normal((knots, knots), dtype=np.float32)
    return _interpolate(grid, size, cell, smooth=True)


def _interpolate(
    grid: np.ndarray, size: int, factor: float, *, smooth: bool
) -> np.ndarray:
    """Resample a coarse grid to ``size`` x ``size`` pixels, separably.

    Args:
        grid: coarse values, shape ``[h, w]``; cell ``i`` is centred on fine
            pixel ``(i + 0.5) * factor - 0.5``.
        size: side of the output, pixels.
        factor: fine pixels per coarse cell.
        smooth: use smoothstep weights (value noise) instead of linear ones.

    Returns:
        float32 array of shape ``[size, size]``.
    """
    out = grid
    for axis in (0, 1):
        pos = np.clip((np.arange(size) + 0.5) / factor - 0.5, 0, grid.shape[axis] - 1)
        i0 = np.minimum(pos.astype(np.int64), grid.shape[axis] - 2)
        t = (pos - i0).astype(np.float32)
        if smooth:
            t = t * t * (3 - 2 * t)
        shape = (-1, 1) if axis == 0 else (1, -1)
        a = np.take(out, i0, axis=axis)
        b = np.take(out, i0 + 1, axis=axis)
        out = a + (b - a) * t.reshape(shape)
    return out.astype(np.float32)


def _native_resolution(refl: np.ndarray) -> None:
    """Average 20 m and 60 m bands over their native pixels, in place.

    Args:
        refl: reflectance, shape ``[12, H, W]`` on the 10 m grid.
    """
    size = refl.shape[1]
    for b, band in enumerate(S2_BANDS):
        factor = S2_BAND_RESOLUTION[band] // int(GRID_M)
        if factor == 1:
            continue
        pad = -size % factor
        padded = np.pad(refl[b], ((0, pad), (0, pad)), mode="edge")
        n = padded.shape[0] // factor
        coarse = padded.reshape(n, factor, n, factor).mean(axis=(1, 3))
        refl[b] = _interpolate(coarse, size, factor, smooth=False)


def _atmosphere(rng: np.random.Generator, refl: np.ndarray) -> None:
    """Add residual haze, cloud shadows and clouds, in place.

    Args:
        rng: random generator.
        refl: reflectance, shape ``[12, H, W]``.
    """
    size = refl.shape[1]
    wavelength = np.array(WAVELENGTH_NM, dtype=np.float32)
    haze_shape = (wavelength / wavelength[0]) ** -2
    haze = np.clip(0.5 + 0.5 * _value_noise(rng, size, max(size // 2, 32)), 0, 1)
    haze *= rng.uniform(0.005, 0.025)
    cloud = _cloud_opacity(rng, size)
    shift = int(rng.uniform(30, 60) * size / 2048) + 1
    shadow = np.zeros_like(cloud)
    shadow[:-shift, :-shift] = cloud[shift:, shift:]
    for b in range(refl.shape[0]):
        refl[b] *= 1 - shadow * (1 - SHADOW_TRANSMISSION[b])
        refl[b] += haze * haze_shape[b]
        refl[b] += cloud * (CLOUD_REFLECTANCE[b] - refl[b])


def _cloud_opacity(rng: np.random.Generator, size: int) -> np.ndarray:
    """Opacity (0-1) of a few fair-weather cumulus, shape ``[size, size]``."""
    opacity = np.zeros((size, size), dtype=np.float32)
    puffs = _value_noise(rng, size, 6)
    count = 1 + rng.poisson(3 * (size / 2048) ** 2)
    for _ in range(count):
        radius = rng.uniform(8, 30) * np.array([rng.uniform(0.6, 1.0), 1.0])
        centre = rng.uniform(0, size, 2)
        lo = np.maximum((centre - 2 * radius).astype(int), 0)
        hi = np.minimum((centre + 2 * radius).astype(int) + 1, size)
        rows, cols = np.ogrid[lo[0] : hi[0], lo[1] : hi[1]]
        dist = np.hypot((rows - centre[0]) / radius[0], (cols - centre[1]) / radius[1])
        window = (slice(lo[0], hi[0]), slice(lo[1], hi[1]))
        alpha = np.clip(2.5 * (1 - dist) + 0.8 * puffs[window], 0, 1)
        opacity[window] = np.maximum(opacity[window], rng.uniform(0.6, 1.0) * alpha)
    return opacity


# --- writing ------------------------------------------------------------------


@functools.cache
def _compression() -> str:
    """``"zstd"`` where this GDAL build has it, else ``"deflate"``."""
    profile = {"driver": "GTiff", "width": 16, "height": 16, "count": 1}
    profile |= {"crs": SCENE_CRS, "transform": from_origin(0, 16, 1, 1)}
    with MemoryFile() as mem:
        with mem.open(**profile, dtype="uint16", compress="zstd") as dst:
            dst.write(np.ones((1, 16, 16), dtype=np.uint16))
        with mem.open() as src:
            found = src.compression
    return "zstd" if found is not None and found.value.lower() == "zstd" else "deflate"


def _write_outputs(
    layout: Layout,
    image: np.ndarray,
    image_paths: list[Path],
    labels_path: Path,
    seed: int,
) -> None:
    """Write the tiles, their styles and the labels under temporary names, then rename.

    Beside each tile goes its QGIS style (same name, ``.qml``): natural colour.
    Each file is written under its :func:`~torchgeo_simclr.outputs.partial_path`
    (this process's own name, so two runs into one folder never share one),
    and all are renamed only once every one is complete. A failure removes the
    temporary files and leaves existing files untouched.
    """
    # Here, not at the top: the inference package imports torch.
    from torchgeo_simclr.inference.styles import natural_colour_style

    image_paths[0].parent.mkdir(parents=True, exist_ok=True)
    style_paths = [path.with_suffix(".qml") for path in image_paths]
    with contextlib.ExitStack() as stack:
        staged = {
            path: stack.enter_context(replaced_when_complete(path))
            for path in [*image_paths, *style_paths, labels_path]
        }
        _write_tiles(image, layout.bounds, {p: staged[p] for p in image_paths}, seed)
        style = natural_colour_style(S2_BANDS)
        for path in style_paths:
            staged[path].write_text(style, encoding="utf-8")
        write_geopackage(to_crop_mapping(layout), staged[labels_path], LAYER)


def _write_tiles(
    image: np.ndarray, bounds: Bounds, paths: dict[Path, Path], seed: int
) -> None:
    """Write the image as adjacent GeoTIFF tiles, west to east.

    Args:
        image: reflectance x10000, uint16, shape ``[12, H, W]``.
        bounds: scene bounds, EPSG:32610 metres.
        paths: each tile's final path (whose name the tags use) -> the path
            it is written to, west to east.
        seed: generator seed, recorded in the tags.
    """
    height, width = image.shape[1:]
    step = width // len(paths)
    for i, (final, path) in enumerate(paths.items()):
        tile = image[:, :, i * step : (i + 1) * step]
        profile = {
            "driver": "GTiff",
            "width": step,
            "height": height,
            "count": len(S2_BANDS),
            "dtype": "uint16",
            "crs": SCENE_CRS,
            "transform": from_origin(
                bounds[0] + i * step * GRID_M, bounds[3], GRID_M, GRID_M
            ),
            "nodata": S2_NODATA,
            "tiled": True,
            "blockxsize": BLOCK_PX,
            "blockysize": BLOCK_PX,
            "compress": _compression(),
            "predictor": 2,
        }
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(tile)
            dst.descriptions = S2_BANDS
            dst.update_tags(**_tags(final.name, seed))
            for b, nm in enumerate(WAVELENGTH_NM, start=1):
                dst.update_tags(b, WAVELENGTH_NM=f"{nm:g}")


def _tags(name: str, seed: int) -> dict[str, str]:
    """Dataset tags of one tile: acquisition, product and generator."""
    tile = name.split("_")[5]
    return {
        "TIFFTAG_DATETIME": f"{ACQUIRED:%Y:%m:%d %H:%M:%S}",
        "ACQUISITION_DATETIME": ACQUIRED.isoformat().replace("+00:00", "Z"),
        "SPACECRAFT_NAME": "Sentinel-2B",
        "PRODUCT_TYPE": "S2MSI2A",
        "MGRS_TILE": tile.removeprefix("T"),
        "REFLECTANCE_SCALE": f"{REFLECTANCE_SCALE:g}",
        "SYNTHETIC": "true",
        "GENERATOR": "torchgeo_simclr.sample.make_sample_scene",
        "GENERATOR_SEED": str(seed),
    }
