"""
The XEP-0045 MUC extension's plugin object: its options, and installing the service on
a host. Exported as C{jabberapp.extensions.muc.muc} (see the package docstring).
"""
from twisted.plugin import IPlugin
from zope.interface import implementer

from jabberapp.config import Option, int_range, one_of
from jabberapp.extensions.muc.interfaces import KeyValueRoomStore
from jabberapp.extensions.muc.service import MUCService
from jabberapp.interfaces import IExtension
from jabberapp.specs import Spec


@implementer(IPlugin, IExtension)
class MultiUserChat:
    """Group chat rooms at a subdomain of the host, served in-process."""

    name = "muc"
    depends = ()
    specs = (
        Spec("XEP-0045", "1.34.5", "Multi-User Chat",
             "rooms, roles, affiliations, configuration, history, persistence, nickname "
             "registration, voice requests, private IQs, multi-session nicks; no room "
             "archive"),
        Spec("XEP-0410", "1.1.0", "MUC Self-Ping (Schrödinger's Chat)",
             "rooms answer joined occupants' self-pings themselves and advertise "
             "muc#self-ping-optimization"),
        Spec("XEP-0421", "0.2.0", "Anonymous unique occupant identifiers for MUCs"),
    )
    options = (
        Option("domain", str, "conference.{host}",
               "Domain of the MUC service; {host} is replaced by the host's domain."),
        Option("name", str, "Chatrooms", "Name of the service in disco."),
        Option("lock_new_rooms", bool, True,
               "Keep a room created by a join locked until its owner configures it "
               "(XEP-0045 §10.1); no: new rooms are open at once with the defaults."),
        Option("creators", one_of("local", "anyone"), "local",
               "Who may create rooms: users of this host (local) or anyone."),
        Option("max_rooms", int_range(1, 10_000_000), 10000,
               "Most rooms the service holds; creating more is refused with not-allowed."),
        Option("max_users", int_range(1, 100_000), 200,
               "Default and highest maximum number of occupants of a room."),
        Option("history_length", int_range(0, 1000), 20,
               "Messages of history a new room keeps and sends on join by default."),
        Option("max_history_length", int_range(0, 1000), 100,
               "Highest history length a room's owner may configure."),
    )

    def install(self, host):
        """Serve the MUC domain and load its persistent rooms."""
        domain = host.config["domain"].replace("{host}", host.domain)
        store = KeyValueRoomStore(host.storage, domain)
        service = MUCService(host, domain, store, host.config)
        host.add_component(domain, service.handle, name=host.config["name"])
        service.load()
        host.provide("muc", service)


muc = MultiUserChat()   # re-exported by jabberapp/plugins/jabberapp_builtin.py
