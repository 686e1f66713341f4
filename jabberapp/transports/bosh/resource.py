"""
The BOSH endpoint (/http-bind) as a twisted.web resource: HTTP in, bodies to the
BOSHService, responses out; nothing of BOSH itself is decided here.

- POST carries a body; its response may come at once or after a long poll (NOT_DONE_YET).
  A client that closes the connection first is reported to its session, which then
  answers that request into the void (a repeat of its rid gets that answer).
- OPTIONS is a CORS preflight; GET answers with a short page, as Prosody does, so an
  operator can check the URL with a browser; other methods are 405 (the HTTP service's
  site answers a method a resource lacks so).
- CORS: an answer to a page of an allowed origin carries Access-Control-Allow-Origin (the
  page of a client such as Converse.js is often served from another origin); a POST from a
  page of any other origin is 403 and reaches no session.
"""
from twisted.web import resource, server

from jabberapp.c2s.stream import CORE_STEPS
from jabberapp.stream.framed import FramedClientStream
from jabberapp.transports.bosh.requests import BOSHLimits
from jabberapp.transports.bosh.service import BOSHService

__all__ = ["BOSHResource", "bosh_resource"]

_CONTENT_TYPE = b"text/xml; charset=utf-8"
_PAGE = (b"<!DOCTYPE html><html><head><title>BOSH</title></head><body><p>It works! Point "
         b"your BOSH client (XEP-0206) at this URL to connect.</p></body></html>")
_METHODS = (b"GET", b"POST")


class _Channel:
    """The one way to answer a request (BOSHSession channels)."""

    __slots__ = ("request", "done", "session")

    def __init__(self, request):
        self.request = request
        self.done = False
        self.session = None     # the BOSHSession it went to, set by the service

    def respond(self, code, data):
        """Answer with HTTP C{code} and body C{data}, once; nothing if the client left."""
        if self.done:
            return
        self.done = True
        request = self.request
        request.setResponseCode(code)
        if data:
            request.setHeader(b"Content-Type", _CONTENT_TYPE)
        request.setHeader(b"Content-Length", b"%d" % len(data))
        request.setHeader(b"Cache-Control", b"no-store")
        if data:
            request.write(data)
        request.finish()


class BOSHResource(resource.Resource):
    """
    /http-bind on the HTTP service C{web} (jabberapp.web.service.HTTPService: it provides
    client_address, is_secure, allow_origin and preflight). C{bosh} is the BOSHService.
    """

    isLeaf = True

    def __init__(self, bosh, web):
        super().__init__()
        self.bosh = bosh
        self.web = web

    def render_POST(self, request):
        if not self.web.allow_origin(request):
            request.setResponseCode(403)
            return b""
        data = request.content.read()
        channel = _Channel(request)
        request.notifyFinish().addErrback(self._lost, channel)
        self.bosh.request(data, channel, secure=self.web.is_secure(request),
                          address=self.web.client_address(request))
        return server.NOT_DONE_YET

    @staticmethod
    def _lost(failure, channel):
        if not channel.done:
            channel.done = True
            if channel.session is not None:
                channel.session.lost(channel)

    def render_GET(self, request):
        self.web.allow_origin(request)
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        return _PAGE

    def render_OPTIONS(self, request):
        return self.web.preflight(request, _METHODS)


def bosh_resource(listener, config, web):
    """
    The /http-bind resource on the HTTP service C{web}: sessions limited by C{config}
    ([bosh]) whose streams negotiate as those of the c2s C{listener} (its hosts, steps,
    stanza size limit -- also the largest body -- and send buffer); with [bosh]
    see_other_uri set, every client is redirected there.
    """
    limits = BOSHLimits(max_wait=config.max_wait, max_inactivity=config.max_inactivity,
                        max_hold=config.max_hold, max_requests=config.max_requests,
                        max_pause=config.max_pause, polling=config.polling,
                        max_pending=listener.max_send_buffer)
    bosh = BOSHService(lambda transport: FramedClientStream(transport, listener, CORE_STEPS),
                       listener.clock, limits, max_body=listener.max_stanza_size,
                       see_other_uri=config.see_other_uri)
    return BOSHResource(bosh, web)
