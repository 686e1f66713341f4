"""
The extension plugin package: every jabberapp/plugins/ directory on sys.path joins it, so
third-party drop-ins are found by twisted.plugin.getPlugins(IExtension, jabberapp.plugins).
"""
from twisted.plugin import pluginPackagePaths

__path__.extend(pluginPackagePaths(__name__))
