"""What people look at: views of built datasets for a person, not a build. Each takes the
engine's narrow `Project` (what `api.Registry` is), reads (markers, file tables through
DuckDB, the catalog) and returns a value, never prints: `card` renders one dataset as a
static, self-contained HTML page (`registry report`); the CLI and the Registry wire them.
"""
