"""llm-anatomy: how a large language model is built, read straight from its checkpoint files.

The Python API (llm_anatomy.open, llm_anatomy.diff, llm_anatomy.verify, llm_anatomy.inventory, Model, Module, Parameter) lives in llm_anatomy.api and is
imported on first use, so `import llm_anatomy` costs what the header-only commands cost."""

from ._version import __version__ as __version__  # re-exported: llm_anatomy.__version__

# The error kinds (llm_anatomy.core.errors), importable without importing the API.
_ERRORS = (
    "AnatomyError",
    "UsageError",
    "CorruptFile",
    "MissingExtra",
    "HubError",
    "RepoNotFound",
    "GatedRepo",
    "RevisionNotFound",
)

__all__ = [
    "open",
    "diff",
    "verify",
    "inventory",
    "Model",
    "Module",
    "Parameter",
    "Size",
    "SubmoduleError",
    "Diff",
    "ReportFile",
    "Inventory",
    *_ERRORS,
]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .api import (
        Diff,
        Inventory,
        Model,
        Module,
        Parameter,
        ReportFile,
        Size,
        SubmoduleError,
        diff,
        inventory,
        open,
        verify,
    )
    from .core.errors import (
        AnatomyError as AnatomyError,
        CorruptFile as CorruptFile,
        GatedRepo as GatedRepo,
        HubError as HubError,
    )
    from .core.errors import (
        MissingExtra as MissingExtra,
        RepoNotFound as RepoNotFound,
        RevisionNotFound as RevisionNotFound,
        UsageError as UsageError,
    )


def __getattr__(name: str) -> object:
    """PEP 562: the API's names, imported when first asked for."""
    if name in _ERRORS:
        from .core import errors

        return getattr(errors, name)
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'llm_anatomy' has no attribute {name!r}")
