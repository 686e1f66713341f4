"""An example third-party extension: echoes <echo xmlns='urn:example:echo'/> IQs."""
from zope.interface import implementer
from twisted.plugin import IPlugin

from jabberapp.config import Option
from jabberapp.interfaces import IExtension
from jabberapp.xml import element

NS_ECHO = "urn:example:echo"


@implementer(IPlugin, IExtension)
class Echo:
    name = "acme_echo"
    depends = ("disco",)
    specs = ()
    options = (Option("prefix", str, default="echo: ", doc="Text put before the echo."),)

    def install(self, host):
        host.add_feature(NS_ECHO)

        def on_echo(iq):
            text = iq[0].text or ""
            return element(NS_ECHO, "echo", text=host.config["prefix"] + text)

        host.iq_handler("get", NS_ECHO, "echo", on_echo, to="host")


echo = Echo()
