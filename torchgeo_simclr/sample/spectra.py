"""Spectral signatures of the sample scene: endmembers and cover classes.

Every pixel of the sample scene is a linear mixture of a few *endmembers* (green
crop canopy, tree canopy, dry soil, moist soil, senesced residue, water, ...). A
*cover class* (alfalfa, almond orchard, idle field, riparian forest, ...) says
which endmembers a field of that cover is made of, as a range of area fractions
that is drawn once per field (growth stage, canopy cover, soil moisture), plus
its texture and the DWR crop-mapping codes a field of that cover gets.

Source of the numbers: the endmember spectra are rounded, hand-set values chosen
inside the ranges typically reported for mid-summer surface reflectance of these
materials: laboratory and field spectra such as the USGS Spectral Library
Version 7 (Kokaly et al., 2017, USGS Data Series 1035) convolved to the
Sentinel-2 MSI bands, and Sentinel-2 L2A field-average crop signatures in the
crop-mapping literature (green canopy: B02-B04 about 0.02-0.06, red-edge rise,
B08/B8A about 0.3-0.5, B11 about 0.15-0.25, B12 about 0.07-0.12; dry bright soil:
monotonic rise, B04 about 0.15-0.25, B11 about 0.3-0.4; water: NIR and SWIR near
0.01). They are not copied from any single published spectrum; they are
plausible, internally consistent values for a synthetic test scene.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from torchgeo_simclr.constants import S2_BANDS

#: Central wavelength of each band in :data:`S2_BANDS` order, in nanometres
#: (Sentinel-2 MSI, rounded).
WAVELENGTH_NM: Final[tuple[float, ...]] = (
    443.0,
    490.0,
    560.0,
    665.0,
    705.0,
    740.0,
    783.0,
    842.0,
    865.0,
    945.0,
    1610.0,
    2190.0,
)


@dataclass(frozen=True)
class Endmember:
    """A pure surface material.

    Args:
        reflectance: surface reflectance (0-1, not x10000) per band, in
            :data:`S2_BANDS` order, 12 values.
        spread: relative standard deviation of the brightness of this material
            from one field to the next (unitless, e.g. 0.1 = 10 %).
        description: what the spectrum stands for.
    """

    #: Surface reflectance (0-1) per band, in ``S2_BANDS`` order.
    reflectance: tuple[float, ...]
    #: Relative field-to-field brightness standard deviation (unitless).
    spread: float
    #: What the spectrum stands for.
    description: str

    def __post_init__(self) -> None:
        if len(self.reflectance) != len(S2_BANDS):
            msg = (
                f"Endmember {self.description!r} has {len(self.reflectance)} "
                f"reflectance values, expected {len(S2_BANDS)} (one per S2 band)."
            )
            raise ValueError(msg)


# fmt: off
#: Endmember spectra, surface reflectance 0-1, bands
#: B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B11 B12.
ENDMEMBERS: Final[dict[str, Endmember]] = {
    "green_canopy": Endmember(
        (0.030, 0.035, 0.070, 0.035, 0.110, 0.330,
         0.420, 0.450, 0.470, 0.460, 0.220, 0.100),
        0.08,
        "dense green irrigated crop canopy (LAI > 3)",
    ),
    "tree_canopy": Endmember(
        (0.025, 0.028, 0.050, 0.030, 0.080, 0.230,
         0.300, 0.330, 0.345, 0.335, 0.160, 0.070),
        0.10,
        "tree or vine crowns including within-crown shadow",
    ),
    "wetland_veg": Endmember(
        (0.030, 0.032, 0.055, 0.035, 0.080, 0.200,
         0.250, 0.270, 0.280, 0.270, 0.120, 0.050),
        0.12,
        "emergent wetland vegetation (tules, cattail) over standing water",
    ),
    "dry_residue": Endmember(
        (0.080, 0.090, 0.130, 0.190, 0.230, 0.260,
         0.280, 0.290, 0.310, 0.310, 0.390, 0.280),
        0.12,
        "senesced grass, straw and crop residue (cellulose absorption in B12)",
    ),
    "dry_soil": Endmember(
        (0.100, 0.120, 0.160, 0.210, 0.235, 0.250,
         0.265, 0.275, 0.285, 0.285, 0.370, 0.320),
        0.14,
        "dry, light alluvial soil of the west side of the San Joaquin Valley",
    ),
    "moist_soil": Endmember(
        (0.050, 0.060, 0.080, 0.100, 0.120, 0.130,
         0.140, 0.150, 0.155, 0.150, 0.150, 0.110),
        0.15,
        "recently irrigated soil: darker, SWIR lowered by water absorption",
    ),
    "water": Endmember(
        (0.070, 0.065, 0.075, 0.055, 0.045, 0.025,
         0.020, 0.016, 0.013, 0.010, 0.006, 0.004),
        0.30,
        "turbid river, canal or pond water",
    ),
    "asphalt": Endmember(
        (0.090, 0.100, 0.110, 0.120, 0.130, 0.135,
         0.140, 0.145, 0.150, 0.150, 0.170, 0.160),
        0.15,
        "aged asphalt",
    ),
    "concrete": Endmember(
        (0.200, 0.230, 0.270, 0.300, 0.310, 0.320,
         0.330, 0.340, 0.345, 0.340, 0.360, 0.320),
        0.12,
        "concrete, gravel and canal lining",
    ),
    "roof": Endmember(
        (0.160, 0.170, 0.190, 0.210, 0.220, 0.230,
         0.235, 0.240, 0.245, 0.240, 0.260, 0.240),
        0.30,
        "roofs, average of bright metal and dark shingle",
    ),
    "salt_crust": Endmember(
        (0.300, 0.350, 0.400, 0.430, 0.450, 0.460,
         0.470, 0.480, 0.480, 0.470, 0.450, 0.380),
        0.10,
        "saline crust of the west-side salt flats",
    ),
}
# fmt: on

#: Endmember names in the order of the mixing matrix used by the renderer.
ENDMEMBER_NAMES: Final[tuple[str, ...]] = tuple(ENDMEMBERS)

#: Endmembers that are green vegetation (their cover varies within a field).
VEGETATION: Final[tuple[str, ...]] = ("green_canopy", "tree_canopy", "wetland_veg")

# fmt: off
#: Top-of-cloud reflectance (0-1) of a thick low cumulus, per band.
CLOUD_REFLECTANCE: Final[tuple[float, ...]] = (
    0.50, 0.50, 0.50, 0.50, 0.50, 0.51, 0.51, 0.51, 0.50, 0.45, 0.33, 0.22,
)

#: Fraction of reflectance left under a full cloud shadow, per band (diffuse
#: skylight is bluer, so blue loses the least).
SHADOW_TRANSMISSION: Final[tuple[float, ...]] = (
    0.55, 0.50, 0.42, 0.38, 0.36, 0.34, 0.33, 0.32, 0.32, 0.32, 0.30, 0.30,
)
# fmt: on


@dataclass(frozen=True)
class DwrCode:
    """DWR crop-mapping codes of one field (unpadded, e.g. ``"G"``, ``"6"``).

    Args:
        class2: main-season class (``CLASS2``), e.g. ``"G"``, ``"YP"``, ``"NV"``.
        subclass2: main-season subclass (``SUBCLASS2``), ``"**"`` for none.
        class1: class of an earlier crop of a double-cropped field, ``"**"``
            for none.
        subclass1: subclass of that earlier crop, ``"**"`` for none.
        specond: special condition of the main crop (``SPECOND2``), ``"Y"`` =
            young, ``"*"`` for none.
        perennial: whether the crop is a perennial (gets ``YR_PLANTED``).
    """

    #: Main-season class letter(s), ``CLASS2``.
    class2: str
    #: Main-season subclass number, ``SUBCLASS2`` (``"**"`` = none).
    subclass2: str = "**"
    #: Earlier-season class of a double crop, ``CLASS1`` (``"**"`` = none).
    class1: str = "**"
    #: Earlier-season subclass of a double crop, ``SUBCLASS1``.
    subclass1: str = "**"
    #: Special condition of the main crop, ``SPECOND2`` (``"*"`` = none).
    specond: str = "*"
    #: Whether the crop is perennial (orchards, vineyards).
    perennial: bool = False


@dataclass(frozen=True)
class RowTexture:
    """Periodic canopy/soil rows of orchards and vineyards.

    Args:
        member: endmember that forms the rows (the canopy).
        period_px: range of the row period, in 10 m pixels.
        contrast: range of the relative amplitude of the row pattern (0-1).
    """

    #: Endmember that forms the rows.
    member: str
    #: Range of the row period, in 10 m pixels.
    period_px: tuple[float, float]
    #: Range of the relative amplitude of the row pattern (0-1).
    contrast: tuple[float, float]


@dataclass(frozen=True)
class CoverClass:
    """What a field (or an unlabelled surface) of one cover is made of.

    Args:
        description: plain-words description.
        fractions: endmember name -> (low, high) range of its area fraction;
            one value per field is drawn uniformly and the draw is normalised
            to sum to 1.
        codes: DWR codes a parcel of this cover can get (one drawn per parcel);
            empty for surfaces that no polygon covers (roads, canals, verges).
        veg_noise: relative amplitude of the smooth within-field variation of
            the vegetation fraction (unitless).
        pixel_noise: relative per-pixel, per-band noise (unitless).
        speckle: log-normal per-pixel jitter of the endmember fractions
            (unitless); high for mixed surfaces such as towns.
        wet_gradient: range of the across-field change of the soil wet share
            (irrigation runs wetter at the head of a furrow), unitless.
        rows: periodic row texture, or None.
    """

    #: Plain-words description.
    description: str
    #: Endmember name -> (low, high) range of its area fraction.
    fractions: Mapping[str, tuple[float, float]]
    #: DWR codes a parcel of this cover can get; empty = unlabelled surface.
    codes: tuple[DwrCode, ...] = ()
    #: Relative amplitude of the smooth within-field vegetation variation.
    veg_noise: float = 0.08
    #: Relative per-pixel, per-band noise.
    pixel_noise: float = 0.02
    #: Log-normal per-pixel jitter of the endmember fractions.
    speckle: float = 0.0
    #: Across-field change of the soil wet share.
    wet_gradient: float = 0.0
    #: Periodic row texture, or None.
    rows: RowTexture | None = field(default=None)

    @property
    def labelled(self) -> bool:
        """Whether parcels of this cover are written as DWR polygons."""
        return bool(self.codes)


_ORCHARD_ROWS = RowTexture("tree_canopy", (3.0, 4.0), (0.5, 0.9))
_VINE_ROWS = RowTexture("green_canopy", (2.0, 3.0), (0.5, 0.9))

#: Cover classes of the sample scene, keyed by name.
COVERS: Final[dict[str, CoverClass]] = {
    # --- irrigated crops -------------------------------------------------
    "alfalfa": CoverClass(
        "alfalfa, full regrowth",
        {
            "green_canopy": (0.75, 0.95),
            "moist_soil": (0.03, 0.15),
            "dry_residue": (0.0, 0.08),
        },
        (DwrCode("P", "1"),),
    ),
    "alfalfa_cut": CoverClass(
        "alfalfa a few days after cutting: stubble, windrows, moist soil",
        {
            "green_canopy": (0.15, 0.45),
            "dry_residue": (0.25, 0.50),
            "moist_soil": (0.10, 0.35),
            "dry_soil": (0.0, 0.15),
        },
        (DwrCode("P", "1"),),
        veg_noise=0.15,
        wet_gradient=0.3,
    ),
    "corn": CoverClass(
        "corn, closed canopy",
        {
            "green_canopy": (0.80, 0.97),
            "dry_residue": (0.0, 0.05),
            "moist_soil": (0.02, 0.10),
        },
        (DwrCode("F", "6"), DwrCode("F", "16")),
        veg_noise=0.05,
    ),
    "row_crop_young": CoverClass(
        "freshly planted row crop (second crop after grain, late tomatoes) on wet beds",
        {
            "green_canopy": (0.08, 0.30),
            "moist_soil": (0.35, 0.60),
            "dry_residue": (0.10, 0.30),
            "dry_soil": (0.0, 0.10),
        },
        (DwrCode("F", "6", class1="G", subclass1="6"), DwrCode("T", "15")),
        veg_noise=0.2,
        wet_gradient=0.4,
    ),
    "cotton": CoverClass(
        "cotton, canopy closing",
        {
            "green_canopy": (0.50, 0.85),
            "moist_soil": (0.05, 0.25),
            "dry_soil": (0.05, 0.20),
        },
        (DwrCode("F", "1"),),
        veg_noise=0.1,
        wet_gradient=0.2,
    ),
    "tomato": CoverClass(
        "processing tomatoes",
        {
            "green_canopy": (0.45, 0.90),
            "moist_soil": (0.05, 0.25),
            "dry_soil": (0.0, 0.20),
            "dry_residue": (0.0, 0.05),
        },
        (DwrCode("T", "15"),),
        veg_noise=0.1,
        wet_gradient=0.2,
    ),
    "rice": CoverClass(
        "rice, green canopy over flooded basins",
        {
            "green_canopy": (0.65, 0.92),
            "water": (0.05, 0.30),
            "moist_soil": (0.0, 0.10),
        },
        (DwrCode("R", "1"),),
        veg_noise=0.06,
    ),
    "grain_stubble": CoverClass(
        "small grain harvested in June: stubble on soil wetted for the next crop",
        {
            "dry_residue": (0.40, 0.70),
            "moist_soil": (0.10, 0.40),
            "dry_soil": (0.05, 0.30),
            "green_canopy": (0.02, 0.10),
        },
        (DwrCode("G", "6"), DwrCode("G", "2")),
        veg_noise=0.3,
        wet_gradient=0.4,
    ),
    "almond": CoverClass(
        "almond orchard, drip irrigated, bare interrows",
        {
            "tree_canopy": (0.35, 0.65),
            "dry_soil": (0.20, 0.50),
            "moist_soil": (0.05, 0.20),
            "dry_residue": (0.0, 0.10),
        },
        (DwrCode("D", "12", perennial=True),),
        veg_noise=0.05,
        rows=_ORCHARD_ROWS,
    ),
    "walnut": CoverClass(
        "walnut orchard, large crowns, green cover in the interrows",
        {
            "tree_canopy": (0.55, 0.85),
            "green_canopy": (0.05, 0.20),
            "moist_soil": (0.05, 0.15),
            "dry_soil": (0.0, 0.15),
        },
        (DwrCode("D", "13", perennial=True),),
        veg_noise=0.05,
        rows=_ORCHARD_ROWS,
    ),
    "pistachio": CoverClass(
        "pistachio orchard, open canopy on dry interrows",
        {
            "tree_canopy": (0.25, 0.50),
            "dry_soil": (0.30, 0.55),
            "moist_soil": (0.05, 0.15),
            "dry_residue": (0.0, 0.10),
        },
        (DwrCode("D", "14", perennial=True),),
        veg_noise=0.05,
        rows=_ORCHARD_ROWS,
    ),
    "vineyard": CoverClass(
        "trellised vineyard",
        {
            "green_canopy": (0.30, 0.55),
            "dry_soil": (0.30, 0.50),
            "moist_soil": (0.02, 0.10),
            "dry_residue": (0.0, 0.10),
        },
        (DwrCode("V", perennial=True), DwrCode("V", "2", perennial=True)),
        veg_noise=0.05,
        rows=_VINE_ROWS,
    ),
    "young_orchard": CoverClass(
        "orchard planted in the last two years: small trees, drip-wetted strips",
        {
            "tree_canopy": (0.06, 0.20),
            "dry_soil": (0.40, 0.70),
            "moist_soil": (0.15, 0.35),
            "dry_residue": (0.0, 0.15),
        },
        (
            DwrCode("YP", perennial=True),
            DwrCode("D", "12", specond="Y", perennial=True),
            DwrCode("D", "14", specond="Y", perennial=True),
        ),
        veg_noise=0.1,
        rows=_ORCHARD_ROWS,
    ),
    # --- idle and native land (not irrigated) ---------------------------------
    "idle_bare": CoverClass(
        "idle field, disced bare soil",
        {
            "dry_soil": (0.65, 0.95),
            "dry_residue": (0.0, 0.30),
            "green_canopy": (0.0, 0.04),
        },
        (DwrCode("I", "1"), DwrCode("I", "2"), DwrCode("I", "4")),
        veg_noise=0.3,
    ),
    "idle_weedy": CoverClass(
        "idle field with dry weeds",
        {
            "dry_residue": (0.35, 0.65),
            "dry_soil": (0.25, 0.60),
            "green_canopy": (0.02, 0.10),
        },
        (DwrCode("I", "1"), DwrCode("I", "4")),
        veg_noise=0.4,
    ),
    "idle_green": CoverClass(
        "idle field with green weeds on a high water table or seepage",
        {
            "green_canopy": (0.30, 0.60),
            "dry_residue": (0.20, 0.45),
            "moist_soil": (0.05, 0.25),
            "dry_soil": (0.0, 0.15),
        },
        (DwrCode("I", "1"),),
        veg_noise=0.35,
        speckle=0.25,
    ),
    "grassland": CoverClass(
        "native annual grassland, senesced",
        {
            "dry_residue": (0.55, 0.80),
            "dry_soil": (0.15, 0.40),
            "green_canopy": (0.0, 0.06),
        },
        (DwrCode("NV", "1"),),
        veg_noise=0.4,
    ),
    "riparian_trees": CoverClass(
        "riparian forest (cottonwood, willow) along the river",
        {
            "tree_canopy": (0.55, 0.90),
            "dry_residue": (0.05, 0.25),
            "moist_soil": (0.0, 0.10),
            "water": (0.0, 0.05),
        },
        (DwrCode("NR", "3"),),
        veg_noise=0.2,
        speckle=0.2,
    ),
    "marsh": CoverClass(
        "marsh with tules and sedges",
        {
            "wetland_veg": (0.50, 0.85),
            "water": (0.10, 0.35),
            "dry_residue": (0.0, 0.15),
        },
        (DwrCode("NR", "1"),),
        veg_noise=0.2,
        speckle=0.15,
    ),
    "duck_marsh": CoverClass(
        "seasonal duck marsh, partly wet in summer",
        {
            "moist_soil": (0.25, 0.50),
            "dry_residue": (0.20, 0.45),
            "green_canopy": (0.05, 0.25),
            "water": (0.0, 0.15),
        },
        (DwrCode("NR", "4"),),
        veg_noise=0.3,
        speckle=0.2,
        wet_gradient=0.3,
    ),
    "river": CoverClass(
        "river channel",
        {"water": (0.85, 1.0), "wetland_veg": (0.0, 0.08), "moist_soil": (0.0, 0.08)},
        (DwrCode("NW", "1"),),
        veg_noise=0.3,
    ),
    "reservoir": CoverClass(
        "pond or small reservoir",
        {"water": (0.90, 1.0), "wetland_veg": (0.0, 0.05)},
        (DwrCode("NW", "4"),),
        veg_noise=0.3,
    ),
    "lagoon": CoverClass(
        "dairy wastewater lagoon",
        {
            "water": (0.70, 0.95),
            "green_canopy": (0.02, 0.15),
            "dry_residue": (0.0, 0.10),
        },
        (DwrCode("NW", "6"),),
        veg_noise=0.3,
    ),
    "barren": CoverClass(
        "barren land",
        {"dry_soil": (0.75, 1.0), "dry_residue": (0.0, 0.20)},
        (DwrCode("NB", "3"), DwrCode("NB", "1")),
        veg_noise=0.2,
    ),
    "salt_flat": CoverClass(
        "salt flat",
        {"salt_crust": (0.30, 0.70), "dry_soil": (0.30, 0.70)},
        (DwrCode("NB", "4"),),
        veg_noise=0.2,
        speckle=0.1,
    ),
    # --- built-up land (not irrigated) ---------------------------------------
    "urban_residential": CoverClass(
        "single-family housing with street trees and lawns",
        {
            "roof": (0.25, 0.40),
            "asphalt": (0.15, 0.25),
            "tree_canopy": (0.15, 0.30),
            "green_canopy": (0.10, 0.25),
            "concrete": (0.05, 0.15),
        },
        (DwrCode("UR", "2"), DwrCode("U")),
        pixel_noise=0.04,
        speckle=0.6,
    ),
    "urban_commercial": CoverClass(
        "shops, offices and their parking lots",
        {
            "roof": (0.35, 0.50),
            "asphalt": (0.30, 0.45),
            "concrete": (0.10, 0.20),
            "tree_canopy": (0.0, 0.08),
        },
        (DwrCode("UC", "1"),),
        pixel_noise=0.04,
        speckle=0.5,
    ),
    "urban_industrial": CoverClass(
        "warehouses, packing sheds and yards",
        {
            "roof": (0.30, 0.50),
            "concrete": (0.15, 0.30),
            "dry_soil": (0.15, 0.35),
            "asphalt": (0.05, 0.15),
        },
        (DwrCode("UI", "3"), DwrCode("UI", "11")),
        pixel_noise=0.04,
        speckle=0.5,
    ),
    "urban_vacant": CoverClass(
        "vacant urban lots",
        {
            "dry_soil": (0.40, 0.70),
            "dry_residue": (0.20, 0.50),
            "concrete": (0.0, 0.10),
        },
        (DwrCode("UV", "1"),),
        veg_noise=0.3,
        speckle=0.2,
    ),
    "farmstead": CoverClass(
        "farmstead: house, sheds, shade trees, yard",
        {
            "roof": (0.15, 0.30),
            "tree_canopy": (0.20, 0.40),
            "dry_soil": (0.20, 0.40),
            "green_canopy": (0.05, 0.15),
        },
        (DwrCode("S", "1"),),
        pixel_noise=0.04,
        speckle=0.6,
    ),
    "dairy": CoverClass(
        "dairy: barns, corrals, feed yard",
        {"roof": (0.30, 0.45), "dry_soil": (0.35, 0.55), "dry_residue": (0.05, 0.15)},
        (DwrCode("S", "3"),),
        pixel_noise=0.04,
        speckle=0.5,
    ),
    # --- surfaces that no polygon covers (ignored by the mask) ----------------
    "road": CoverClass(
        "paved county road with gravel shoulders",
        {"asphalt": (0.30, 0.60), "concrete": (0.30, 0.50), "dry_soil": (0.05, 0.20)},
        speckle=0.1,
    ),
    "dirt_road": CoverClass(
        "unpaved farm road, compacted and bright",
        {"dry_soil": (0.70, 0.90), "concrete": (0.10, 0.30)},
        speckle=0.1,
    ),
    "highway": CoverClass(
        "divided highway with an oleander median",
        {"asphalt": (0.50, 0.70), "concrete": (0.20, 0.40), "tree_canopy": (0.0, 0.10)},
        speckle=0.1,
    ),
    "canal": CoverClass(
        "concrete-lined aqueduct",
        {"water": (0.60, 0.85), "concrete": (0.15, 0.35)},
        speckle=0.05,
    ),
    "ditch": CoverClass(
        "irrigation ditch along a road, narrower than a pixel",
        {"water": (0.30, 0.60), "concrete": (0.10, 0.30), "green_canopy": (0.05, 0.25)},
        speckle=0.2,
    ),
    "levee": CoverClass(
        "canal levee and patrol road",
        {
            "dry_soil": (0.50, 0.80),
            "concrete": (0.10, 0.30),
            "dry_residue": (0.05, 0.20),
        },
        speckle=0.1,
    ),
    "street": CoverClass(
        "town streets with street trees",
        {
            "asphalt": (0.60, 0.80),
            "tree_canopy": (0.05, 0.20),
            "concrete": (0.10, 0.20),
        },
        pixel_noise=0.04,
        speckle=0.4,
    ),
    "margin": CoverClass(
        "field margins, ditch banks and verges",
        {
            "dry_residue": (0.30, 0.60),
            "dry_soil": (0.30, 0.60),
            "green_canopy": (0.0, 0.10),
        },
        speckle=0.3,
    ),
}


def mean_spectrum(cover: str) -> tuple[float, ...]:
    """Expected reflectance of a cover class at the middle of its ranges.

    Args:
        cover: key of :data:`COVERS`.

    Returns:
        Reflectance (0-1) per band, in :data:`S2_BANDS` order, 12 values.
    """
    mids = {k: (lo + hi) / 2 for k, (lo, hi) in COVERS[cover].fractions.items()}
    total = sum(mids.values())
    return tuple(
        sum(mids[k] * ENDMEMBERS[k].reflectance[b] for k in mids) / total
        for b in range(len(S2_BANDS))
    )
