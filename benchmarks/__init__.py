"""Reproducible benchmarks of the lakehouse: ``packetx-lakehouse bench`` (see README.md here)."""
