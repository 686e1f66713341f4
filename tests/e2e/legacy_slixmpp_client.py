"""
A client script run in a subprocess by tests/e2e/test_legacy_channel_binding.py, with an old
slixmpp release first on PYTHONPATH (it must not import anything of this checkout).

    python3 legacy_slixmpp_client.py JID PASSWORD PORT CAFILE

Connects with STARTTLS and slixmpp's default mechanism choice, pings the server (an IQ) and
prints one JSON line: the slixmpp version, every SASL attempt as [mechanism, outcome], the
stream error if any, and whether the ping was answered. Exits 0 when it logged in and the
ping was answered.
"""
import asyncio
import json
import ssl
import sys

import slixmpp

TIMEOUT = 30


class LegacyClient(slixmpp.ClientXMPP):
    """A default-configured slixmpp client that records its SASL attempts."""

    def __init__(self, jid, password, cafile):
        super().__init__(jid, password)
        self.ssl_context = ssl.create_default_context(cafile=cafile)
        self.register_plugin("xep_0199")
        self.attempts = []
        self.stream_error = None
        self.pinged = False
        self.done = asyncio.get_event_loop().create_future()
        self.add_event_handler("failed_auth", self._failed_auth)
        self.add_event_handler("auth_success", self._auth_success)
        self.add_event_handler("session_start", self._session_start)
        self.add_event_handler("failed_all_auth", lambda _: self._finish())
        self.add_event_handler("stream_error", self._stream_error)
        self.add_event_handler("disconnected", lambda _: self._finish())

    def _mechanism(self):
        return self["feature_mechanisms"].mech.name

    def _failed_auth(self, stanza):
        self.attempts.append([self._mechanism(), stanza["condition"]])

    def _auth_success(self, _):
        self.attempts.append([self._mechanism(), "success"])

    def _stream_error(self, error):
        self.stream_error = error["condition"]
        self._finish()

    async def _session_start(self, _):
        try:
            await self["xep_0199"].ping(self.boundjid.domain, timeout=TIMEOUT)
            self.pinged = True
        finally:
            self._finish()

    def _finish(self):
        if not self.done.done():
            self.done.set_result(None)


async def main(jid, password, port, cafile):
    client = LegacyClient(jid, password, cafile)
    client.connect(("127.0.0.1", int(port)))    # slixmpp 1.8 takes an (host, port) tuple
    try:
        await asyncio.wait_for(client.done, TIMEOUT)
    finally:
        client.disconnect()
    report = {"version": slixmpp.__version__, "attempts": client.attempts,
              "stream_error": client.stream_error, "pinged": client.pinged}
    print(json.dumps(report), flush=True)
    return client.pinged


if __name__ == "__main__":
    sys.exit(0 if asyncio.run(main(*sys.argv[1:5])) else 1)
