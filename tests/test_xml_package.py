"""jabberapp.xml is the face of the XML modules: its names, loaded from their modules on use."""
import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

import jabberapp.xml
from jabberapp.xml import events, ns, parser, serializer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(jabberapp.xml.__file__))))


class XMLPackageTests(SynchronousTestCase):
    def test_exports(self):
        """Every name of jabberapp.xml.__all__ is the object its defining module has."""
        for name in jabberapp.xml.__all__:
            owners = [module for module in (ns, serializer, parser, events)
                      if name in vars(module) and getattr(module, name) is getattr(
                          jabberapp.xml, name)]
            self.assertTrue(owners, name)
        for name in ("element", "serialize", "stream_header", "parse_element",
                     "StreamParser", "StreamOpened", "StreamClosed", "NS_CLIENT"):
            self.assertIn(name, jabberapp.xml.__all__)

    def test_unknown_name(self):
        """A name the package does not export is an AttributeError, as for any module."""
        with self.assertRaises(AttributeError):
            jabberapp.xml.no_such_name

    def test_star_import(self):
        """'from jabberapp.xml import *' binds every exported name."""
        scope = {}
        exec("from jabberapp.xml import *", scope)
        self.assertEqual(sorted(set(scope) - {"__builtins__"}), sorted(jabberapp.xml.__all__))

    def _loaded_after(self, statement):
        code = (f"import sys\n{statement}\n"
                "print(sorted(m for m in sys.modules if m.startswith('jabberapp.')))\n")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, cwd=ROOT).stdout
        return eval(out)

    def test_package_loads_no_parser(self):
        """Importing the package or its namespace constants loads neither the parser nor the
        serializer, so no module of the package is run before another by the __init__."""
        self.assertEqual(self._loaded_after("import jabberapp.xml.ns"),
                         ["jabberapp.lazyexports", "jabberapp.namespaces", "jabberapp.xml",
                          "jabberapp.xml.ns"])

    def test_names_load_their_modules(self):
        """Importing an exported name loads the module that defines it."""
        loaded = self._loaded_after("from jabberapp.xml import StreamParser")
        self.assertIn("jabberapp.xml.parser", loaded)
