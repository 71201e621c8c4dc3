"""llm-anatomy: how a large language model is built, read straight from its checkpoint files."""

__version__ = "0.1.0"
