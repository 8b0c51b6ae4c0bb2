"""Artifacts: what a build writes and a reader trusts. `output` writes files into staging,
one provenance row per file, and finalizes `_files.parquet`; `marker` is `_registry.json`
as one typed value (the commit point) and the names an artifact's folder reserves."""
