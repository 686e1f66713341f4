"""
XEP-0157: Contact Addresses for XMPP Services -- whom to write about abuse, security, support.

The configured addresses are published in the host JID's disco#info answer as an XEP-0128
extended information form of FORM_TYPE http://jabber.org/network/serverinfo (§3), one
list-multi field (the registry's type) per role that has addresses, in the order of the
options below:

    [extension:contact_addresses]
    abuse = mailto:abuse@example.org, xmpp:abuse@example.org
    security = mailto:security@example.org

Every value must be a URI (mailto:, xmpp:, https:, ...): §3 requires it of status
addresses and recommends it for the others, and a bare "abuse@example.org" is a typo that
is better refused at start than published. With no address configured no form is
published, as an empty one would tell nobody anything.
"""
import re

from twisted.plugin import IPlugin
from zope.interface import implementer

from jabberapp.config import Option, comma_list
from jabberapp.forms import Field, result_form
from jabberapp.interfaces import IExtension
from jabberapp.specs import Spec

SERVERINFO = "http://jabber.org/network/serverinfo"

# Option name -> (form field, what the addresses are for), in the order they are published.
ROLES = (
    ("abuse", "abuse-addresses", "reporting abuse of the service"),
    ("admin", "admin-addresses", "reaching the service's administrators"),
    ("feedback", "feedback-addresses", "feedback on the service"),
    ("sales", "sales-addresses", "sales enquiries"),
    ("security", "security-addresses", "reporting security problems"),
    ("status", "status-addresses", "the service's status page or feed"),
    ("support", "support-addresses", "user support"),
)

# RFC 3986 §3.1: a scheme, a colon, and something after it; no whitespace anywhere.
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s]+\Z")


def uri_list(raw):
    """An Option type: a comma-separated list of URIs."""
    values = comma_list(raw)
    for value in values:
        if not _URI.match(value):
            raise ValueError(f"{value!r} is not a URI: write e.g. mailto:{value} or "
                             f"xmpp:{value}")
    return values


uri_list.description = "comma-separated list of URIs"


@implementer(IPlugin, IExtension)
class ContactAddresses:
    """Publishes the service's contact addresses in the host's disco#info."""

    name = "contact_addresses"
    specs = (Spec("XEP-0157", "1.1.1", "Contact Addresses for XMPP Services"),)
    depends = ("disco",)    # the addresses travel in disco#info
    options = tuple(
        Option(option, uri_list, default=(),
               doc=f"Addresses (URIs such as mailto:... or xmpp:...) for {purpose}, "
                   f"published as {field} in the server's disco#info.")
        for option, field, purpose in ROLES)

    def install(self, host):
        """Add the serverinfo form to the host's disco#info (through the service "disco"),
        when any address is set; it goes when this extension unloads."""
        fields = [Field(field, "list-multi", values=host.config[option])
                  for option, field, _ in ROLES if host.config[option]]
        if fields:
            host.on_unload(host.service("disco").add(result_form(SERVERINFO, fields)))


contact_addresses = ContactAddresses()   # re-exported by jabberapp/plugins/jabberapp_builtin.py
