"""
TCP listening ports whose connections send at once.

Twisted's TCP transport never sends in write(): it queues the bytes, asks the reactor to watch
the socket for writability (an epoll_ctl), sends on the next reactor iteration and stops
watching again (another epoll_ctl). XMPP writes are small and the socket almost always has room,
so every stanza paid two system calls and one reactor iteration of latency for nothing.

Here write() sends straight away when nothing is queued ahead of it; whatever the socket does
not take (or any error, which the next doWrite() then reports as usual) goes through Twisted's
queue, so order, flow control and close handling stay Twisted's. With STARTTLS the TLS layer
writes through a bypass of the transport's base class (twisted.internet._newtls), which
startTLS() is told to use instead of FileDescriptor.
"""
from twisted.internet import _newtls, tcp
from twisted.internet.abstract import FileDescriptor

__all__ = ["listen_tcp"]


class _SendAtOnce(FileDescriptor):
    """The write() used for a connection's raw bytes (plain, or TLS records)."""

    def write(self, data):
        if (data and self.connected and not self._writeDisconnected and not self._tempDataLen
                and self.offset == len(self.dataBuffer)):
            sent = self.writeSomeData(data)
            if isinstance(sent, int):       # else the connection broke: doWrite reports it
                if sent == len(data):
                    return
                data = data[sent:]
        FileDescriptor.write(self, data)


class _Server(tcp.Server):
    """An accepted connection that sends at once (see the module docstring)."""

    def write(self, data):
        if self.TLS:
            tcp.Server.write(self, data)    # into the TLS layer, which comes back as below
        else:
            _SendAtOnce.write(self, data)

    def startTLS(self, ctx, normal=True):
        _newtls.startTLS(self, ctx, normal, _SendAtOnce)


class _Port(tcp.Port):
    transport = _Server


# Connections the kernel may hold for us before accept(): Twisted's default of 50 overflows
# when many clients reconnect at once (after a network outage), and each overflowed one
# waits a second for its SYN to be retried. 128 is Prosody's default too.
LISTEN_BACKLOG = 128


def listen_tcp(reactor, port, factory, interface="", backlog=LISTEN_BACKLOG):
    """Listen on C{port} (0: any free one) at C{interface} like reactor.listenTCP, with
    connections that send at once; returns the listening port. Raises CannotListenError."""
    listening = _Port(port, factory, backlog, interface, reactor)
    listening.startListening()
    return listening
