"""citypipe: sensor data pipeline for a county city brain."""

__version__ = "0.1.0"
