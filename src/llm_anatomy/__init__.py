"""llm-anatomy: how a large language model is built, read straight from its checkpoint files.

The Python API (llm_anatomy.open, Model, Module, Parameter) lives in llm_anatomy.api and is
imported on first use, so `import llm_anatomy` costs what the header-only commands cost."""

__version__ = "0.1.0"

__all__ = ["open", "Model", "Module", "Parameter", "Size", "SubmoduleError", "AnatomyError", "UsageError"]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .api import Model, Module, Parameter, Size, SubmoduleError, open
    from .errors import AnatomyError, UsageError


def __getattr__(name: str) -> object:
    """PEP 562: the API's names, imported when first asked for."""
    if name in ("AnatomyError", "UsageError"):
        from . import errors

        return getattr(errors, name)
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'llm_anatomy' has no attribute {name!r}")
