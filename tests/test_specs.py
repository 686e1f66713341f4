"""The README's list of supported specifications is generated from the declarations."""
import os

from jabberapp.admin.specs import render, rewrite
from jabberapp.server import discover_extensions
from jabberapp.specs import Spec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_readme_lists_what_is_declared():
    """The README's specifications table is exactly what the code declares."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    assert rewrite(text) == text, "regenerate: python -m jabberapp.admin.specs README.md"


def test_every_extension_declares_specs():
    """Each discovered extension declares a tuple of Spec values."""
    for extension in discover_extensions().values():
        assert isinstance(extension.specs, tuple)
        assert all(isinstance(spec, Spec) for spec in extension.specs)


def test_render_names_the_provider():
    """Each row says which extension (or the core) provides the specification."""
    table = render()
    assert "| XEP-0199 | 2.0.1 | XMPP Ping | ping |" in table
    assert "| RFC 6120 | — | XMPP Core | core |" in table
