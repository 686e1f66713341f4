"""
A package face that imports its names when first used (PEP 562).

A package whose ``__init__`` imports its own modules runs them whenever any one of them is
imported, which is how an import cycle through a package arises. A face built here names
each exported name's defining module and imports it on first access instead:

    __getattr__, __dir__ = lazy_exports(globals(), {"StreamParser": "jabberapp.xml.parser"})
"""
import importlib
from collections.abc import Mapping


def lazy_exports(namespace: dict, exports: Mapping[str, str]):
    """(__getattr__, __dir__) for the module whose globals are C{namespace}: each name of
    C{exports} is taken from its module when first asked for, then kept in C{namespace}."""
    package = namespace["__name__"]

    def __getattr__(name):
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__():
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
