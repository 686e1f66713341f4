"""
RFC 6121: roster (§2), presence subscriptions (§3) and presence (§4), with XEP-0237 roster
versioning and §3.4 subscription pre-approval.

Modules: ``extension`` (the extension object, ``roster``, that jabberapp.plugins
exports), ``items`` (RosterItem, roster storage, cache, per-user queue, versions), ``subscription``
(the Appendix A state machine, no I/O), ``iq`` (jabber:iq:roster), ``presence`` (the
subscription and presence hooks), ``service`` (the "roster" service and roster pushes),
``interfaces`` (IRosterService).

Other extensions declare ``depends = ("roster",)`` and call ``host.service("roster")``,
an L{IRosterService}: ``get_items(username)``, ``get_item(username, jid)``,
``subscription(username, jid)``, ``can_see_presence(username, jid)``,
``pending_requests(username)`` and ``set_items(username, items, pending=())``, all
returning Deferreds.
"""
# Only modules that import nothing of this package may be imported here: anything else
# would run this file again half-way (an import cycle through the package).
from jabberapp.extensions.roster.interfaces import IRosterService

__all__ = ["IRosterService"]
