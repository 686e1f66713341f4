"""
The built-in extensions, found by twisted.plugin.getPlugins(IExtension, jabberapp.plugins).

Only re-exports: no conditionals, since dropin.cache records what was importable when it
was built (STYLE.md §3).
"""
from jabberapp.extensions.disco import service_discovery
from jabberapp.extensions.entity_time import entity_time
from jabberapp.extensions.ping import ping
from jabberapp.extensions.version import software_version

__all__ = ["entity_time", "ping", "service_discovery", "software_version"]
