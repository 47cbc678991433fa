"""Names of a package imported on first use (PEP 562): modules that import torch stay out of
``import ganmetrics``, the command line's start and FID between two statistics files."""

import importlib


def lazy_attributes(package: str, modules: dict[str, str]):
    """A module ``__getattr__`` for ``package`` that imports ``modules[name]`` (relative to the
    package) when ``name`` is first read, and returns its attribute ``name``."""

    def __getattr__(name: str):
        if name in modules:
            return getattr(importlib.import_module(modules[name], package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
