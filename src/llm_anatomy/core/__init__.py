"""The bottom layer: records and rules (errors, escaping, the Catalog, dtypes, config schema, extras); standard library only, no I/O."""
