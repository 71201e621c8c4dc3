"""The package's version, in a module of its own: setuptools, the CLI, the report and the Hub's
user agent read it here without going through the package façade (whose __getattr__ imports
the API)."""

__version__ = "0.1.0"
