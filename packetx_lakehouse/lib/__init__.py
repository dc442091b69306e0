"""Pure, Dagster-free building blocks: parsing, schemas, transforms and storage helpers."""
