"""config.example.ini is generated from the schemas and stays loadable."""
import os

from jabberapp.admin.example import builtin_example
from jabberapp.config import load_config
from jabberapp.server import discover_extensions

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "config.example.ini")


def test_example_matches_the_schemas():
    """The committed config.example.ini is exactly what the schemas generate."""
    with open(EXAMPLE, encoding="utf-8") as f:
        assert f.read() == builtin_example(), (
            "regenerate: python -m jabberapp.admin.example > config.example.ini")


def test_example_loads_to_the_defaults():
    """Loading the example gives the same settings as no config file at all."""
    schemas = {name: tuple(ext.options) for name, ext in discover_extensions().items()}
    assert load_config(EXAMPLE, schemas).c2s == load_config(None, schemas).c2s
