"""
The core schema: the [server], [c2s], [s2s], [components], [auth], [tls], [storage] and
[http] sections (``CORE_SCHEMA``) and a [component:DOMAIN] section (``COMPONENT_SCHEMA``), with the
value types only they use.

Checks that span several options (a port that must differ from another, a certificate that
needs its key) are the loader's (``jabberapp.configuration.loader``).
"""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from types import MappingProxyType

from jabberapp.configuration.options import (Option, comma_list, int_range, ip_address, one_of,
                                             positive_seconds, seconds_or_zero)
from jabberapp.configuration.settings import S2SRoute
from jabberapp.jid import InvalidJID, prep_domain

__all__ = ["COMPONENT_SCHEMA", "CORE_SCHEMA", "LOG_LEVELS", "dns_servers", "ip_networks",
           "s2s_routes", "sasl_mechanisms", "web_origins", "websocket_uri"]

#: Log levels accepted by ``[server] log_level`` (twisted.logger.LogLevel names).
LOG_LEVELS = ("debug", "info", "warn", "error", "critical")

# The prefixes of the sections named after something: [tls:HOST], [extension:NAME],
# [component:DOMAIN].
TLS_PREFIX = "tls:"
EXTENSION_PREFIX = "extension:"
COMPONENT_PREFIX = "component:"


def sasl_mechanisms(raw: str) -> tuple[str, ...]:
    """A comma-separated list of SASL mechanism names this server implements."""
    from jabberapp.sasl import MECHANISM_NAMES  # the one list of what is implemented
    names = tuple(name.upper() for name in comma_list(raw))
    unknown = [name for name in names if name not in MECHANISM_NAMES]
    if unknown:
        raise ValueError(f"unknown mechanism {', '.join(unknown)} "
                         f"(known: {', '.join(MECHANISM_NAMES)})")
    return names


_HOST_NAME = re.compile(r"[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?\.?")


def _host_port(text: str, default_port: int) -> tuple[str, int]:
    """'host', 'host:port', '[v6]', '[v6]:port' or 'v4:port' -> (host, port)."""
    text = text.strip()
    port = default_port
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket:
            raise ValueError(f"{text!r}: missing ']'")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{text!r}: expected ':PORT' after ']'")
            port = _port(rest[1:], text)
        try:
            return str(ipaddress.IPv6Address(host)), port
        except ValueError:
            raise ValueError(f"{text!r}: not an IPv6 address in brackets") from None
    host, colon, rest = text.rpartition(":")
    if not colon:
        host = rest
    else:
        port = _port(rest, text)
    if ":" in host:
        raise ValueError(f"{text!r}: write an IPv6 address in brackets, as [::1]:5269")
    try:
        return str(ipaddress.IPv4Address(host)), port
    except ValueError:
        pass
    if not _HOST_NAME.fullmatch(host) or len(host) > 253:
        raise ValueError(f"{text!r}: not a host name or IP address")
    return host.lower().rstrip("."), port


def _port(text: str, entry: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"{entry!r}: the port must be from 1 to 65535")
    return int(text)


def s2s_routes(raw: str) -> tuple[S2SRoute, ...]:
    """
    Parse static s2s routes: comma-separated DOMAIN=[tls:]HOST[:PORT] entries. 'tls:' means
    direct TLS (XEP-0368) instead of STARTTLS; the port defaults to 5269. A domain written
    more than once gets several targets, tried in the order written.
    """
    routes = []
    for entry in comma_list(raw):
        domain, equals, target = entry.partition("=")
        if not equals or not domain.strip() or not target.strip():
            raise ValueError(f"{entry!r}: expected DOMAIN=HOST:PORT")
        try:
            domain = prep_domain(domain.strip())
        except InvalidJID as exc:
            raise ValueError(f"{entry!r}: {exc}") from None
        target = target.strip()
        direct_tls = target.lower().startswith("tls:")
        if direct_tls:
            target = target[4:]
        host, port = _host_port(target, 5269)
        routes.append(S2SRoute(domain, host, port, direct_tls))
    return tuple(routes)


s2s_routes.description = "comma-separated DOMAIN=[tls:]HOST[:PORT]"  # type: ignore[attr-defined]


def dns_servers(raw: str) -> tuple[tuple[str, int], ...]:
    """Parse comma-separated name server addresses, IP[:PORT] or [IPv6][:PORT] (port 53)."""
    servers = []
    for entry in comma_list(raw):
        host, port = _host_port(entry, 53)
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{entry!r}: a name server must be an IP address") from None
        servers.append((host, port))
    return tuple(servers)


dns_servers.description = "comma-separated IP[:PORT]"  # type: ignore[attr-defined]


def ip_networks(raw: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Parse comma-separated IP addresses and CIDR networks ([http] trusted_proxies)."""
    networks = []
    for entry in comma_list(raw):
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{entry!r}: not an IP address or network (as 10.0.0.0/8)"
                             ) from None
    return tuple(networks)


ip_networks.description = "comma-separated IP addresses or networks"  # type: ignore[attr-defined]

_ORIGIN = re.compile(r"(https?)://([A-Za-z0-9](?:[-A-Za-z0-9.]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])"
                     r"(?::([0-9]{1,5}))?/?")


def web_origins(raw: str) -> tuple[str, ...]:
    """
    Parse comma-separated web origins ([http] cors_origins): '*' or SCHEME://HOST[:PORT]
    with http or https, returned lower-cased without a trailing slash or a default port,
    the form browsers send in an Origin header.
    """
    origins = []
    for entry in comma_list(raw):
        if entry == "*":
            origins.append("*")
            continue
        match = _ORIGIN.fullmatch(entry)
        if match is None:
            raise ValueError(f"{entry!r}: expected * or an origin such as "
                             "https://chat.example.org")
        scheme, host, port = match.group(1).lower(), match.group(2).lower(), match.group(3)
        if port is not None and not 1 <= int(port) <= 65535:
            raise ValueError(f"{entry!r}: the port must be from 1 to 65535")
        if port is not None and int(port) != (443 if scheme == "https" else 80):
            host = f"{host}:{int(port)}"
        origins.append(f"{scheme}://{host}")
    return tuple(origins)


web_origins.description = "* or comma-separated origins"  # type: ignore[attr-defined]


def websocket_uri(raw: str) -> str:
    """A ws:// or wss:// URL ([websocket] see_other_uri), or empty."""
    value = raw.strip()
    if value and not re.fullmatch(r"wss?://[^\s/?#]+(?:[/?#]\S*)?", value):
        raise ValueError(f"{value!r}: expected a ws:// or wss:// URL")
    return value


websocket_uri.description = "a ws:// or wss:// URL"  # type: ignore[attr-defined]


def http_uri(raw: str) -> str:
    """An http:// or https:// URL ([bosh] see_other_uri), or empty."""
    value = raw.strip()
    if value and not re.fullmatch(r"https?://[^\s/?#]+(?:[/?#]\S*)?", value):
        raise ValueError(f"{value!r}: expected an http:// or https:// URL")
    return value


http_uri.description = "an http:// or https:// URL"  # type: ignore[attr-defined]


# -- the core schema ------------------------------------------------------------------------

#: The core sections: section name -> options. [tls:HOST] sections take the [tls] options.
CORE_SCHEMA: Mapping[str, tuple[Option, ...]] = MappingProxyType({
    "server": (
        Option("hosts", comma_list, ("localhost",),
               "Virtual hosts (XMPP domains) served by this process, comma-separated."),
        Option("data_dir", str, "jabberapp-data",
               "Directory for the database, generated certificates and other state."),
        Option("log_level", one_of(*LOG_LEVELS), "info",
               "Least severe log level written."),
        Option("extensions", comma_list, None,
               "Extensions installed on every host, comma-separated. Unset: every built-in "
               "extension; empty: none. Third-party extensions are installed only when "
               "listed here; a listed name that is not installed is an error."),
    ),
    "c2s": (
        Option("interface", ip_address, "127.0.0.1",
               "Address the client listeners bind to. The default accepts clients from "
               "this machine only (a local development server); use :: (every IPv6 and, "
               "on most systems, IPv4 address) or 0.0.0.0 in production."),
        Option("port", int_range(1, 65535), 5222,
               "Port for client connections (STARTTLS, RFC 6120)."),
        Option("direct_tls_port", int_range(0, 65535), 5223,
               "Port for direct TLS client connections (XEP-0368); 0 disables it."),
        Option("require_encryption", bool, True,
               "Require TLS before authentication. Disable only for local testing."),
        Option("max_stanza_size", int_range(10000, 2**31 - 1), 262144,
               "Largest client stanza accepted, in bytes; a larger one closes the stream "
               "with policy-violation. RFC 6120 requires at least 10000."),
        Option("max_send_buffer", int_range(65536, 2**31 - 1), 4194304,
               "Bytes that may wait to be sent to one client that does not read fast "
               "enough. Past it, stanzas to that client are refused (messages go to "
               "offline storage when it has no other resource, otherwise the sender gets "
               "resource-constraint) and the connections sending to it are not read "
               "until it drains."),
        Option("send_buffer_timeout", positive_seconds, 30.0,
               "Seconds a client's send buffer may stay past max_send_buffer; then its "
               "stream is closed with policy-violation and what was queued is freed."),
        Option("read_rate", int_range(0, 2**31 - 1), 100000,
               "Bytes per second read from one client connection (Prosody's "
               "limits.c2s.rate); past it the connection is not read until it is within "
               "the rate again, so nothing is lost, only slowed. 0: no limit."),
        Option("read_burst", positive_seconds, 5.0,
               "Seconds of read_rate a quiet client saves up and may then send at once "
               "(Prosody's limits.c2s.burst): 5 s at 100000 bytes/s lets a client send "
               "500 kB at full speed (a login, an avatar) before the rate applies."),
    ),
    "s2s": (
        Option("enabled", bool, True,
               "Federate with other XMPP domains (server-to-server, RFC 6120). When off, "
               "stanzas to other domains are answered with remote-server-not-found."),
        Option("interface", ip_address, "127.0.0.1",
               "Address the s2s listeners bind to. Other servers must reach it on port "
               "5269 (or the port an _xmpp-server._tcp SRV record names): use :: or "
               "0.0.0.0 in production."),
        Option("port", int_range(0, 65535), 5269,
               "Port for incoming server connections (STARTTLS); 0: accept none (outgoing "
               "links still work, though dialback peers cannot verify us)."),
        Option("direct_tls_port", int_range(0, 65535), 0,
               "Port for incoming direct TLS server connections (XEP-0368, advertised "
               "with _xmpps-server._tcp SRV records); 0 disables it."),
        Option("require_encryption", bool, True,
               "Require TLS on every server-to-server stream, both directions. Disable "
               "only for local testing."),
        Option("allow_dialback", bool, True,
               "Accept and use server dialback (XEP-0220) when a certificate does not "
               "authenticate the peer. Off: only peers whose certificate validates for "
               "their domain (SASL EXTERNAL, XEP-0178) can federate."),
        Option("bidi", bool, True,
               "Bidirectional server-to-server streams (XEP-0288): stanzas to a peer may "
               "travel on the stream it opened, and ours carry its answers."),
        Option("ca_file", str, "",
               "PEM file of the certificate authorities trusted for peer certificates. "
               "Empty: the system's trust store."),
        Option("trust_self_signed", comma_list, (),
               "Domains whose self-signed certificate is accepted when it names the "
               "domain (private networks and tests). No other domain's self-signed "
               "certificate ever authenticates it."),
        Option("routes", s2s_routes, (),
               "Static routes, consulted before DNS: comma-separated DOMAIN=HOST:PORT "
               "(STARTTLS) or DOMAIN=tls:HOST:PORT (direct TLS); write IPv6 addresses in "
               "brackets, [::1]:5269. A domain listed twice gets two targets, tried in "
               "order. Example: example.net=127.0.0.1:5270, other.test=[::1]:5269"),
        Option("dns_servers", dns_servers, (),
               "Name servers for SRV and address lookups, comma-separated IP[:PORT]. "
               "Empty: those of /etc/resolv.conf."),
        Option("connect_timeout", positive_seconds, 10.0,
               "Seconds one outgoing TCP connection attempt may take before the next "
               "target is tried."),
        Option("negotiation_timeout", positive_seconds, 60.0,
               "Seconds a link may take from its first connection attempt to "
               "authentication. Stanzas queued for a link that times out bounce with "
               "remote-server-timeout; an incoming stream not authenticated by then is "
               "closed."),
        Option("idle_timeout", seconds_or_zero, 600.0,
               "Seconds after which an outgoing link that carried no stanza is closed; "
               "0: never."),
        Option("max_stanza_size", int_range(10000, 2**31 - 1), 524288,
               "Largest stanza accepted from a server, in bytes; a larger one closes the "
               "stream with policy-violation."),
        Option("read_rate", int_range(0, 2**31 - 1), 1000000,
               "Bytes per second read from one server-to-server connection, either "
               "direction (Prosody's limits.s2sin.rate); past it the connection is not "
               "read until it is within the rate again. 0: no limit."),
        Option("read_burst", positive_seconds, 5.0,
               "Seconds of read_rate a quiet server-to-server connection saves up and may "
               "then send at once."),
    ),
    "components": (
        Option("interface", ip_address, "127.0.0.1",
               "Address the external component listener (XEP-0114) binds to. Component "
               "streams are not encrypted: keep it on loopback or a private network."),
        Option("port", int_range(0, 65535), 5347,
               "Port for external components (XEP-0114); 0 disables the listener. It is "
               "opened only when at least one [component:DOMAIN] section exists."),
    ),
    "auth": (
        Option("scram_iterations", int_range(4096, 10_000_000), 10000,
               "PBKDF2 iteration count for SCRAM credentials stored when a password is "
               "set; existing credentials keep theirs. At least 4096 (RFC 7677)."),
        Option("mechanisms", sasl_mechanisms, (),
               "SASL mechanisms offered to clients, comma-separated. Empty: all of them. "
               "Accounts imported with SCRAM-SHA-1 credentials only (as Prosody exports "
               "them) can use SCRAM-SHA-1(-PLUS) and PLAIN only: offer just those until "
               "their users have set new passwords."),
    ),
    "tls": (
        Option("certificate", str, "",
               "PEM certificate chain file (leaf first) for hosts without a [tls:HOST] "
               "section. Empty: a self-signed certificate is generated in "
               "<data_dir>/certs for each such host (development only)."),
        Option("private_key", str, "",
               "PEM private key file of the certificate; required with certificate."),
    ),
    "storage": (
        Option("backend", str, "sqlite",
               "Storage backend: sqlite (built in), memory (volatile, for tests) or the "
               "name of a storage plugin."),
        Option("path", str, "",
               "Database file of the sqlite backend. Empty: jabberapp.sqlite in data_dir."),
    ),
    "http": (
        Option("enabled", bool, False,
               "Run the HTTP service that carries XMPP over WebSocket (RFC 7395) and BOSH "
               "(XEP-0124/0206) and serves /.well-known/host-meta (XEP-0156) for every "
               "host. Off: no HTTP port is opened."),
        Option("interface", ip_address, "127.0.0.1",
               "Address the HTTP listeners bind to. The default serves this machine only, "
               "which is what a reverse proxy on the same machine needs; use :: or 0.0.0.0 "
               "to serve browsers directly."),
        Option("port", int_range(0, 65535), 5280,
               "Port for plain HTTP (ws:// and http:// URLs); 0 disables it. Browsers "
               "refuse plain WebSocket from an https page: serve it behind a TLS reverse "
               "proxy, or use tls_port."),
        Option("tls_port", int_range(0, 65535), 5281,
               "Port for HTTPS (wss:// and https:// URLs), with the certificate of the "
               "host the client names by SNI (the [tls] and [tls:HOST] certificates, as "
               "for c2s); 0 disables it."),
        Option("trusted_proxies", ip_networks, (),
               "Reverse proxies whose X-Forwarded-For, X-Forwarded-Proto and "
               "X-Forwarded-Host headers are believed: comma-separated IP addresses or "
               "networks, such as 127.0.0.1, 10.0.0.0/8. The client's address is the "
               "right-most X-Forwarded-For entry that is not a trusted proxy. From any "
               "other peer these headers are ignored, so a client cannot choose the "
               "address it is throttled and logged under."),
        Option("cors_origins", web_origins, ("*",),
               "Web origins whose pages may use the HTTP endpoints from a browser "
               "(cross-origin BOSH requests, WebSocket origin checks): * for any page, or "
               "comma-separated origins such as https://chat.example.org. Empty: only "
               "pages served from this listener's own origin. XMPP clients log in with "
               "SASL inside the session, never with cookies, so * lets other sites' pages "
               "host a web client but not act for a logged-in user."),
        Option("max_request_size", int_range(1024, 2**31 - 1), 1048576,
               "Largest HTTP request body accepted, in bytes; a larger one is answered "
               "413 and the connection closed before the body is read."),
        Option("request_timeout", positive_seconds, 30.0,
               "Seconds a connection may take to send a whole request (headers and body) "
               "from when it opens or its previous response ends; then it is closed. This "
               "closes idle keep-alive connections and clients that send slowly. It does "
               "not limit how long a request is answered (BOSH long polls, WebSocket)."),
    ),
    "bosh": (
        Option("enabled", bool, True,
               "Serve BOSH (XEP-0124, XEP-0206) at /http-bind on the HTTP service, when "
               "[http] is enabled; listed in host-meta."),
        Option("max_wait", int_range(1, 3600), 60,
               "Longest a request is held waiting for stanzas, in seconds; a client asking "
               "for a longer 'wait' gets this."),
        Option("max_inactivity", int_range(2, 3600), 60,
               "Seconds a session may have no request held before it is dropped like a "
               "lost TCP connection (stream management may keep it for a resumption)."),
        Option("max_hold", int_range(0, 10), 1,
               "Most requests held at once ('hold'); a client asking for more gets this."),
        Option("max_requests", int_range(1, 11), 2,
               "Most simultaneous requests of a session ('requests', at most hold + 1); "
               "more is policy-violation."),
        Option("max_pause", int_range(0, 86400), 120,
               "Longest pause a client may ask for, in seconds ('maxpause')."),
        Option("polling", int_range(0, 60), 5,
               "Shortest interval, in seconds, between the empty requests of a polling "
               "session (hold or wait 0); shorter is policy-violation."),
        Option("see_other_uri", http_uri, "",
               "Redirect every BOSH client to this http:// or https:// URL (XEP-0124 "
               "§17.2: a session request is answered condition='see-other-uri' with the "
               "<uri/>), e.g. while moving the service. Empty: no redirect."),
    ),
    "websocket": (
        Option("enabled", bool, True,
               "Serve XMPP over WebSocket (RFC 7395) at /xmpp-websocket on the HTTP "
               "service (when [http] is enabled), with the c2s negotiation and limits. "
               "Browser pages must come from an origin [http] cors_origins allows."),
        Option("ping_interval", seconds_or_zero, 60.0,
               "Seconds between WebSocket pings to each client; a client whose pong does "
               "not come back within as long is disconnected. Set it below the idle "
               "timeout of any proxy in between. 0: no pings."),
        Option("see_other_uri", websocket_uri, "",
               "Redirect every WebSocket client to this ws:// or wss:// URL (RFC 7395 "
               "§3.6.1: <close see-other-uri=.../> in answer to its <open/>), e.g. while "
               "moving the service. Empty: no redirect."),
    ),
})


#: The options of a [component:DOMAIN] section: one external component (XEP-0114).
COMPONENT_SCHEMA: tuple[Option, ...] = (
    Option("secret", str, "",
           "Required: the shared secret the component authenticates with (the XEP-0114 "
           "handshake). Use a long random string."),
    Option("name", str, "",
           "The component's name in the disco#items of its parent host (the served host "
           "DOMAIN is a subdomain of). Empty: no name."),
)
