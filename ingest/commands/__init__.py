"""Sub-commands of `python -m ingest`."""
