"""
The built-in extensions, found by twisted.plugin.getPlugins(IExtension, jabberapp.plugins).

Only re-exports: no conditionals, since dropin.cache records what was importable when it
was built (STYLE.md §3).
"""
from jabberapp.extensions.blocking import blocking
from jabberapp.extensions.caps import caps
from jabberapp.extensions.carbons import message_carbons
from jabberapp.extensions.contact_addresses import contact_addresses
from jabberapp.extensions.csi import client_state_indication
from jabberapp.extensions.disco import service_discovery
from jabberapp.extensions.entity_time import entity_time
from jabberapp.extensions.fast import fast_tokens
from jabberapp.extensions.last import last_activity
from jabberapp.extensions.mam.plugin import mam
from jabberapp.extensions.muc import muc
from jabberapp.extensions.offline import offline_messages
from jabberapp.extensions.ping import ping
from jabberapp.extensions.private import private_storage
from jabberapp.extensions.pubsub.plugin import pep, pubsub_service
from jabberapp.extensions.push import push_notifications
from jabberapp.extensions.register import register
from jabberapp.extensions.roster.extension import roster
from jabberapp.extensions.sm import stream_management
from jabberapp.extensions.vcard import vcard_temp
from jabberapp.extensions.version import software_version

__all__ = [
    "blocking",
    "caps",
    "client_state_indication",
    "contact_addresses",
    "entity_time",
    "fast_tokens",
    "last_activity",
    "mam",
    "message_carbons",
    "muc",
    "offline_messages",
    "pep",
    "ping",
    "private_storage",
    "pubsub_service",
    "push_notifications",
    "register",
    "roster",
    "service_discovery",
    "software_version",
    "stream_management",
    "vcard_temp",
]
