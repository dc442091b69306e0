"""Dagster definitions, one folder per layer or concern; assembled in ``definitions.py``."""
