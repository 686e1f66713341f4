"""An example third-party extension that serves HTTP through the host's "http" service."""
from twisted.plugin import IPlugin
from twisted.web import resource
from zope.interface import implementer

from jabberapp.interfaces import IExtension


class Hello(resource.Resource):
    isLeaf = True

    def __init__(self, http, domain):
        super().__init__()
        self.http = http
        self.domain = domain

    def render_GET(self, request):
        return (f"{self.domain} greets {self.http.client_address(request)} "
                f"secure={self.http.is_secure(request)}").encode()


@implementer(IPlugin, IExtension)
class AcmeWeb:
    name = "acme_web"
    depends = ()
    specs = ()
    options = ()

    def install(self, host):
        if not host.has_service("http"):
            raise ValueError("acme_web needs [http] enabled = yes")
        http = host.service("http")
        path = b"acme/" + host.domain.encode()      # the URL space is the process's
        http.add_resource(path, Hello(http, host.domain))
        host.on_unload(lambda: http.remove_resource(path))


web = AcmeWeb()
