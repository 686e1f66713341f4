"""The service the roster extension offers other extensions: C{host.service("roster")}."""
from zope.interface import Interface


class IRosterService(Interface):
    """
    Read and replace users' rosters on one host. Usernames are local parts of this host;
    contact JIDs are JID values (a full JID is taken as its bare JID). Every method returns
    a Deferred; results are current as of the last stored change.
    """

    def get_items(username):
        """Deferred: dict of bare JID -> RosterItem (a copy; changing it changes nothing)."""

    def get_item(username, contact):
        """Deferred: the RosterItem for C{contact}, or None."""

    def subscription(username, contact):
        """Deferred: 'none', 'to', 'from' or 'both' for C{contact} ('none' if not listed)."""

    def can_see_presence(username, contact):
        """
        Deferred: True when C{contact} may see the user's presence: it has a 'from' or
        'both' subscription, or it is the user themself (any resource).
        """

    def pending_requests(username):
        """Deferred: sorted list of the bare JIDs whose subscription requests are pending."""

    def set_items(username, items, pending=()):
        """
        Deferred: replace the user's whole roster with C{items} (RosterItem values) and the
        pending inbound requests with C{pending} (bare JIDs), as an import does (XEP-0227).
        Raises ValueError for an item of the user's own JID or a JID listed twice; the
        size limit does not apply (the operator decides what is imported). Connected
        resources are not sent pushes: import into an account that is offline.
        """
