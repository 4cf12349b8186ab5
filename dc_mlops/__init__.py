"""dc_mlops: lumisection-level data certification for CMS."""
__version__ = "0.1.0"
