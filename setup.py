"""The one thing pyproject.toml cannot declare without a warning: the optional C extension.

`llm_anatomy.decode._codes` (src/llm_anatomy/decode/_codes.c) counts the raw 8- and 16-bit codes for
`stats`, about 3x faster than numpy's bincount. `optional=True`: on a machine without a C
compiler the install goes on without it, and code_counts.py counts with numpy instead."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("llm_anatomy.decode._codes", ["src/llm_anatomy/decode/_codes.c"], optional=True)])
