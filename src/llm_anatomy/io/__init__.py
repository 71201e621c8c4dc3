"""Bytes on this machine: byte sources, capped JSON, atomic writes, the cache folder; no format, no network."""
