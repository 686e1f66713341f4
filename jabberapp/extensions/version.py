"""
XEP-0092: Software Version -- the server's name and version.

<iq type='get' to='example.org'><query xmlns='jabber:iq:version'/></iq> is answered with
<name>jabberapp</name> and <version>, and the operating system in <os> only when the
``show_os`` option is on (XEP-0092 §5: the OS helps an attacker pick an exploit).
"""
import platform

from twisted.plugin import IPlugin
from zope.interface import implementer

import jabberapp
from jabberapp.config import Option
from jabberapp.interfaces import IExtension
from jabberapp.specs import Spec
from jabberapp.xml import element
from jabberapp.xml.ns import NS_VERSION

SOFTWARE_NAME = "jabberapp"


def operating_system():
    """The <os/> text: system and release, e.g. 'Linux 6.1.0'."""
    return f"{platform.system()} {platform.release()}".strip() or "unknown"


@implementer(IPlugin, IExtension)
class SoftwareVersion:
    """Answers jabber:iq:version queries addressed to the host JID."""

    name = "version"
    specs = (Spec("XEP-0092", "1.1", "Software Version"),)
    depends = ("disco",)    # XEP-0092 §2: support is advertised through disco
    options = (
        Option("show_os", bool, default=False,
               doc="Include the server's operating system and release in software "
                   "version replies."),
    )

    def install(self, host):
        """Declare the feature and own version queries to the host JID."""
        host.add_feature(NS_VERSION)
        # Read once: the answer cannot change while the process runs.
        os_text = operating_system() if host.config["show_os"] else None

        def on_query(iq):
            query = element(NS_VERSION, "query")
            query.append(element(NS_VERSION, "name", text=SOFTWARE_NAME))
            query.append(element(NS_VERSION, "version", text=jabberapp.__version__))
            if os_text is not None:
                query.append(element(NS_VERSION, "os", text=os_text))
            return query

        host.iq_handler("get", NS_VERSION, "query", on_query, to="host")


software_version = SoftwareVersion()   # re-exported by jabberapp/plugins/jabberapp_builtin.py
