"""The plugin modules of jabberapp.plugins: what their __all__ says is what they expose."""
from twisted.trial.unittest import SynchronousTestCase

from jabberapp.interfaces import IExtension, IStorageBackend
from jabberapp.plugins import jabberapp_builtin, jabberapp_storage


def providers(module, interface):
    """The public names of C{module} whose value provides C{interface} (what getPlugins finds)."""
    return sorted(name for name, value in vars(module).items()
                  if not name.startswith("_") and interface.providedBy(value))


class PluginAllTests(SynchronousTestCase):
    def test_builtin_all_is_its_extensions(self):
        """jabberapp_builtin.__all__ lists exactly the IExtension providers the module exposes."""
        self.assertEqual(sorted(jabberapp_builtin.__all__),
                         providers(jabberapp_builtin, IExtension))

    def test_storage_all_is_its_backends(self):
        """jabberapp_storage.__all__ lists exactly the IStorageBackend providers it exposes."""
        self.assertEqual(sorted(jabberapp_storage.__all__),
                         providers(jabberapp_storage, IStorageBackend))

    def test_all_names_exist(self):
        """Every name in each plugin module's __all__ exists and is not listed twice."""
        for module in (jabberapp_builtin, jabberapp_storage):
            self.assertEqual(len(set(module.__all__)), len(module.__all__), module.__name__)
            missing = [name for name in module.__all__ if not hasattr(module, name)]
            self.assertEqual(missing, [], module.__name__)

    def test_builtin_exposes_only_extensions(self):
        """jabberapp_builtin only re-exports extensions: no other public name is left over."""
        public = sorted(name for name in vars(jabberapp_builtin) if not name.startswith("_"))
        self.assertEqual(public, sorted(jabberapp_builtin.__all__))
