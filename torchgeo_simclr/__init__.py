"""torchgeo-simclr: SimCLRv2 irrigation mapping from Sentinel-2, a TorchGeo plugin."""

__version__ = "0.1.0"
