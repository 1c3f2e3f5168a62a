"""Embedded sample scene: synthetic Central Valley Sentinel-2 L2A plus DWR labels."""

from torchgeo_simclr.sample.scene import SampleScene, make_sample_scene

__all__ = ["SampleScene", "make_sample_scene"]
