"""The optional packages and the pip extra that installs each.

`pip install abcweb` gives the sampler alone (NumPy); training and the compiled sampler need
TensorFlow (`abcweb[train]`), the page needs Streamlit (`abcweb[app]`). A missing one is named
with the extra that brings it, wherever it is first needed.
"""

from __future__ import annotations

import importlib

EXTRA_OF = {"tensorflow": "train", "keras": "train", "music21": "train",
            "streamlit": "app", "altair": "app", "pandas": "app"}


class MissingExtra(ImportError):
    """An optional package is not installed; the message says which extra installs it."""


def advice(package: str, purpose: str) -> str:
    extra = EXTRA_OF.get(package.split(".")[0], "all")
    return (f"{purpose} needs {package}, which is not installed here: "
            f"pip install 'abcweb[{extra}]'")


def explain(error: ModuleNotFoundError, purpose: str = "this") -> str | None:
    """The advice for an import that failed because an optional package is missing; None when
    the missing module is not one of ours to explain (a broken install, say)."""
    root = (error.name or "").split(".")[0]
    return advice(root, purpose) if root in EXTRA_OF else None


def require(package: str, purpose: str):
    """Import an optional package, or raise MissingExtra naming the extra that installs it."""
    try:
        return importlib.import_module(package)
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] != package.split(".")[0]:
            raise  # the package is there but something it needs is not: not ours to rename
        raise MissingExtra(advice(package, purpose)) from e
