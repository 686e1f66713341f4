"""
Writes config.example.ini from the schemas (core and built-in extensions), so the documented
options cannot drift from the code: `python -m jabberapp.admin.example > config.example.ini`.
"""
import sys

from jabberapp.config import render_example
from jabberapp.server import discover_extensions, is_builtin


def builtin_example():
    """The config.example.ini text for the core and every built-in extension."""
    schemas = {name: tuple(ext.options) for name, ext in discover_extensions().items()
               if is_builtin(ext)}
    return render_example(schemas)


if __name__ == "__main__":
    sys.stdout.write(builtin_example())
