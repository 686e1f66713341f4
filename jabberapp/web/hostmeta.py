"""
XEP-0156: Discovering Alternative XMPP Connection Methods -- /.well-known/host-meta (XRD,
RFC 6415) and /.well-known/host-meta.json (JRD, RFC 7033).

Each lists the WebSocket and BOSH endpoints of the host the request names in its Host
header, as URLs the client can use: the scheme from whether the client reached us over TLS
(or a trusted proxy says so), the authority from its Host header (or a trusted proxy's
X-Forwarded-Host). A Host that is none of the served hosts gets 404. Only endpoints that
are mounted are listed. Browsers may read them from any page (Access-Control-Allow-Origin:
*, as XEP-0156 §3 recommends).
"""
from __future__ import annotations

import json

from lxml import etree
from twisted.web import resource

from jabberapp.web.site import not_found

__all__ = ["HostMeta", "NS_XRD"]

NS_XRD = "http://docs.oasis-open.org/ns/xri/xrd-1.0"


def xrd(links) -> bytes:
    """The XRD document listing C{links}, (rel, href) pairs."""
    root = etree.Element(f"{{{NS_XRD}}}XRD", nsmap={None: NS_XRD})
    for rel, href in links:
        etree.SubElement(root, f"{{{NS_XRD}}}Link", rel=rel, href=href)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def jrd(links) -> bytes:
    """The JRD (JSON) document listing C{links}, (rel, href) pairs."""
    return json.dumps({"links": [{"rel": rel, "href": href} for rel, href in links]},
                      separators=(",", ":")).encode("ascii")


class HostMeta(resource.Resource):
    """One host-meta document (C{render_links} builds it from the links); GET and HEAD,
    OPTIONS for a CORS preflight; anything else 405."""

    isLeaf = True

    def __init__(self, service, content_type: bytes, render_links):
        super().__init__()
        self.service = service
        self.content_type = content_type
        self.render_links = render_links

    def render_GET(self, request):
        request.setHeader(b"Access-Control-Allow-Origin", b"*")
        if request.postpath not in ([], [b""]) or self.service.request_host(request) is None:
            return not_found().render(request)
        request.setHeader(b"Content-Type", self.content_type)
        # Short: the endpoints change only when the operator reconfigures.
        request.setHeader(b"Cache-Control", b"max-age=300")
        return self.render_links(self.service.alt_connections(request))

    def render_OPTIONS(self, request):
        request.setHeader(b"Access-Control-Allow-Origin", b"*")
        request.setHeader(b"Access-Control-Allow-Methods", b"GET, HEAD, OPTIONS")
        request.setHeader(b"Access-Control-Max-Age", b"86400")
        request.setHeader(b"Allow", b"GET, HEAD, OPTIONS")
        request.setResponseCode(204)
        return b""


def mount_host_meta(service) -> None:
    """Serve both host-meta documents of C{service} (an HTTPService)."""
    service.add_resource(b".well-known/host-meta",
                         HostMeta(service, b"application/xrd+xml; charset=utf-8", xrd))
    service.add_resource(b".well-known/host-meta.json",
                         HostMeta(service, b"application/json", jrd))
