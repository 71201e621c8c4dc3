"""Analyses: each takes a Catalog (and options) and returns a dataclass; none prints."""
