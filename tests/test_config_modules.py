"""jabberapp.config stays the public face of the configuration parts in jabberapp.configuration."""
import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

import jabberapp.config
from jabberapp.configuration import core, example, loader, options, settings

# Every name importable from jabberapp.config before it was split into jabberapp.configuration;
# third-party extensions and the rest of the server import them from there.
PUBLIC_BEFORE_SPLIT = (
    "AuthConfig", "C2SConfig", "COMPONENT_SCHEMA", "CORE_SCHEMA", "ComponentConfig",
    "ComponentsConfig", "ConfigError", "LOG_LEVELS", "Option", "ServerConfig", "S2SConfig",
    "S2SRoute", "StorageConfig", "TLSConfig", "comma_list", "dns_servers", "int_range",
    "ip_address", "load_config", "one_of", "positive_seconds", "render_example", "s2s_routes",
    "sasl_mechanisms", "seconds_or_zero",
)


class PublicPathTests(SynchronousTestCase):
    def test_public_names_kept(self):
        """Every name that jabberapp.config offered before the split is still importable."""
        missing = [name for name in PUBLIC_BEFORE_SPLIT if not hasattr(jabberapp.config, name)]
        self.assertEqual(missing, [])

    def test_all_is_exact(self):
        """jabberapp.config.__all__ lists exactly the public names, each of which exists."""
        self.assertEqual(sorted(jabberapp.config.__all__), sorted(PUBLIC_BEFORE_SPLIT))

    def test_reexports_not_copies(self):
        """Each public name is the very object its part module defines (one definition)."""
        parts = (options, settings, core, loader, example)
        for name in jabberapp.config.__all__:
            owners = [part for part in parts if name in part.__all__]
            self.assertEqual(len(owners), 1, name)
            self.assertIs(getattr(jabberapp.config, name), getattr(owners[0], name), name)

    def test_schema_type_loads_alone(self):
        """Importing the option schema type loads neither the core schema, the loader nor
        the example writer, so an extension's schema costs only what it uses."""
        code = ("import sys, jabberapp.configuration.options\n"
                "print(sorted(m for m in sys.modules if m.startswith('jabberapp.')))\n")
        root = os.path.dirname(os.path.dirname(os.path.abspath(jabberapp.config.__file__)))
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, cwd=root).stdout
        self.assertEqual(out.strip(), "['jabberapp.configuration', "
                                      "'jabberapp.configuration.options']")
