"""sar2optical: Sentinel-1 SAR to Sentinel-2-like optical translation with Pix2Pix in JAX/Flax."""

__version__ = "0.1.0"
