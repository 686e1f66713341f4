"""
The frozen, validated objects ``load_config()`` returns, and ``ConfigError``.

Every object is a frozen dataclass (hashable, so it can key caches); paths in them are
absolute. Import these names from ``jabberapp.config``, the stable public path.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AuthConfig", "BOSHConfig", "C2SConfig", "ComponentConfig", "ComponentsConfig",
           "ConfigError", "HTTPConfig", "S2SConfig", "S2SRoute", "ServerConfig",
           "StorageConfig", "TLSConfig", "WebSocketConfig"]


class ConfigError(Exception):
    """
    The configuration is unusable. Its text is one line:
    "<file>: [section] key: what is wrong (got 'value')".
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split("\n")))


class FrozenMap(Mapping):
    """A read-only, hashable mapping (so the frozen config objects stay hashable)."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any] = ()) -> None:
        self._data = dict(data)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __repr__(self) -> str:
        return f"{{{', '.join(f'{k!r}: {v!r}' for k, v in self._data.items())}}}"


@dataclass(frozen=True)
class C2SConfig:
    """The client listener ([c2s])."""

    interface: str = "127.0.0.1"
    port: int = 5222
    direct_tls_port: int = 5223
    require_encryption: bool = True
    max_stanza_size: int = 262144
    max_send_buffer: int = 4194304
    send_buffer_timeout: float = 30.0
    read_rate: int = 100000
    read_burst: float = 5.0


@dataclass(frozen=True)
class AuthConfig:
    """Authentication settings ([auth])."""

    scram_iterations: int = 10000
    mechanisms: tuple[str, ...] = ()


@dataclass(frozen=True)
class TLSConfig:
    """
    Certificates ([tls] and [tls:HOST]); every path is absolute. A host with neither its
    own section nor a [tls] certificate gets a self-signed one generated in data_dir.
    """

    certificate: str | None = None
    private_key: str | None = None
    per_host: Mapping[str, tuple[str, str]] = FrozenMap()

    def for_host(self, host: str) -> tuple[str, str] | None:
        """(certificate, private_key) for C{host}, or None: generate a self-signed one."""
        if host in self.per_host:
            return self.per_host[host]
        if self.certificate is not None and self.private_key is not None:
            return (self.certificate, self.private_key)
        return None


@dataclass(frozen=True)
class StorageConfig:
    """The storage backend ([storage]); C{path} is absolute."""

    backend: str
    path: str


@dataclass(frozen=True)
class S2SRoute:
    """One static s2s route target ([s2s] routes): connect to host:port for domain."""

    domain: str
    host: str
    port: int = 5269
    direct_tls: bool = False


@dataclass(frozen=True)
class S2SConfig:
    """Server-to-server federation ([s2s]); ca_file is absolute when set."""

    enabled: bool = True
    interface: str = "127.0.0.1"
    port: int = 5269
    direct_tls_port: int = 0
    require_encryption: bool = True
    allow_dialback: bool = True
    bidi: bool = True
    ca_file: str | None = None
    trust_self_signed: tuple[str, ...] = ()
    routes: tuple[S2SRoute, ...] = ()
    dns_servers: tuple[tuple[str, int], ...] = ()
    connect_timeout: float = 10.0
    negotiation_timeout: float = 60.0
    idle_timeout: float = 600.0
    max_stanza_size: int = 524288
    read_rate: int = 1000000
    read_burst: float = 5.0

    def routes_for(self, domain: str) -> tuple[S2SRoute, ...]:
        """The static targets of C{domain}, in the order written (empty: use DNS)."""
        return tuple(route for route in self.routes if route.domain == domain)


@dataclass(frozen=True)
class ComponentConfig:
    """One external component ([component:DOMAIN], XEP-0114); the secret is never shown."""

    domain: str
    secret: str = field(repr=False)
    name: str = ""


@dataclass(frozen=True)
class ComponentsConfig:
    """The external component listener ([components]) and its components."""

    interface: str = "127.0.0.1"
    port: int = 5347
    components: tuple[ComponentConfig, ...] = ()


@dataclass(frozen=True)
class HTTPConfig:
    """
    The HTTP service ([http]): WebSocket, BOSH and host-meta. C{trusted_proxies} holds
    ipaddress networks; C{cors_origins} normalised origins or '*'.
    """

    enabled: bool = False
    interface: str = "127.0.0.1"
    port: int = 5280
    tls_port: int = 5281
    trusted_proxies: tuple[Any, ...] = ()
    cors_origins: tuple[str, ...] = ("*",)
    max_request_size: int = 1048576
    request_timeout: float = 30.0


@dataclass(frozen=True)
class BOSHConfig:
    """BOSH at /http-bind ([bosh]): the most a session may ask for."""

    enabled: bool = True
    max_wait: int = 60
    max_inactivity: int = 60
    max_hold: int = 1
    max_requests: int = 2
    max_pause: int = 120
    polling: int = 5
    see_other_uri: str = ""


@dataclass(frozen=True)
class WebSocketConfig:
    """XMPP over WebSocket ([websocket], RFC 7395) on the HTTP service."""

    enabled: bool = True
    ping_interval: float = 60.0
    see_other_uri: str = ""


@dataclass(frozen=True)
class ServerConfig:
    """The whole validated configuration of one server process."""

    path: str | None
    hosts: tuple[str, ...]
    data_dir: str
    log_level: str
    extensions: tuple[str, ...] | None
    c2s: C2SConfig
    auth: AuthConfig
    tls: TLSConfig
    storage: StorageConfig
    extension_options: Mapping[str, Mapping[str, Any]]
    s2s: S2SConfig = S2SConfig()
    components: ComponentsConfig = ComponentsConfig()
    http: HTTPConfig = HTTPConfig()
    bosh: BOSHConfig = BOSHConfig()
    websocket: WebSocketConfig = WebSocketConfig()
