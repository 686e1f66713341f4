"""Tests for jabberapp.config: loading, validation errors and the generated example."""
from __future__ import annotations

import dataclasses
import os
import re
import shutil
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from jabberapp.config import (
    CORE_SCHEMA,
    ConfigError,
    Option,
    ServerConfig,
    comma_list,
    int_range,
    load_config,
    one_of,
    render_example,
)

SCHEMAS = {
    "last": (Option("expose_uptime", bool, default=True, doc="Answer uptime queries."),),
    "ping": (
        Option("interval", int, default=300, doc="Seconds between pings."),
        Option("mode", one_of("client", "server"), default="server", doc="Who pings."),
    ),
    "disco": (),
}


class ConfigTestCase(SynchronousTestCase):
    """Helpers: a temporary directory and a config file written into it."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="jabberapp-config-")
        self.addCleanup(shutil.rmtree, self.dir)

    def write(self, text, name="jabberapp.ini"):
        path = os.path.join(self.dir, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def error(self, text, schemas=SCHEMAS):
        path = self.write(text)
        exc = self.assertRaises(ConfigError, load_config, path, schemas)
        message = str(exc)
        self.assertNotIn("\n", message)
        return message.replace(path, "FILE")

    def pem_pair(self, stem):
        cert = self.write("not parsed by the loader", stem + ".crt")
        key = self.write("not parsed by the loader", stem + ".key")
        return cert, key


class DefaultsTests(ConfigTestCase):
    def test_no_file(self):
        """With no file, every option has its documented default."""
        config = load_config(None)
        data_dir = os.path.abspath("jabberapp-data")
        self.assertEqual(config.path, None)
        self.assertEqual(config.hosts, ("localhost",))
        self.assertEqual(config.data_dir, data_dir)
        self.assertEqual(config.log_level, "info")
        self.assertIsNone(config.extensions)
        self.assertEqual(
            (config.c2s.interface, config.c2s.port, config.c2s.direct_tls_port,
             config.c2s.require_encryption, config.c2s.max_stanza_size),
            ("127.0.0.1", 5222, 5223, True, 262144))
        self.assertEqual(config.auth.scram_iterations, 10000)
        self.assertEqual(config.storage.backend, "sqlite")
        self.assertEqual(config.storage.path, os.path.join(data_dir, "jabberapp.sqlite"))
        self.assertIsNone(config.tls.certificate)
        self.assertIsNone(config.tls.for_host("localhost"))
        self.assertEqual(dict(config.extension_options), {})

    def test_empty_file(self):
        """An empty file gives the same configuration as no file."""
        config = load_config(self.write(""))
        self.assertEqual(dataclasses.replace(config, path=None), load_config(None))

    def test_extension_defaults(self):
        """Every known extension gets its defaults even without a section."""
        config = load_config(None, SCHEMAS)
        self.assertEqual(dict(config.extension_options["ping"]),
                         {"interval": 300, "mode": "server"})
        self.assertEqual(dict(config.extension_options["disco"]), {})

    def test_frozen_and_hashable(self):
        """The configuration is immutable and hashable."""
        config = load_config(None, SCHEMAS)
        self.assertIsInstance(hash(config), int)
        self.assertRaises(dataclasses.FrozenInstanceError, setattr, config, "hosts", ())
        with self.assertRaises(TypeError):
            config.extension_options["ping"]["interval"] = 1


class ValuesTests(ConfigTestCase):
    def test_all_core_values(self):
        """Values of every core section are parsed into their types."""
        path = self.write("""
[server]
hosts = Example.ORG, chat.example.net.
data_dir = state
log_level = DEBUG
extensions = last, ping

[c2s]
interface = ::
port = 15222
direct_tls_port = 0
require_encryption = off
max_stanza_size = 65536

[auth]
scram_iterations = 4096

[storage]
backend = memory
path = db/x.sqlite
""")
        config = load_config(path, SCHEMAS)
        self.assertEqual(config.path, path)
        self.assertEqual(config.hosts, ("example.org", "chat.example.net"))
        self.assertEqual(config.data_dir, os.path.abspath("state"))
        self.assertEqual(config.log_level, "debug")
        self.assertEqual(config.extensions, ("last", "ping"))
        self.assertEqual(config.c2s.interface, "::")
        self.assertEqual((config.c2s.port, config.c2s.direct_tls_port), (15222, 0))
        self.assertFalse(config.c2s.require_encryption)
        self.assertEqual(config.c2s.max_stanza_size, 65536)
        self.assertEqual(config.auth.scram_iterations, 4096)
        self.assertEqual(config.storage.backend, "memory")
        self.assertEqual(config.storage.path, os.path.abspath("db/x.sqlite"))

    def test_bool_words(self):
        """Booleans accept yes/no, true/false, on/off and 1/0 in any case."""
        for word, expected in [("yes", True), ("TRUE", True), ("on", True), ("1", True),
                               ("no", False), ("False", False), ("OFF", False), ("0", False)]:
            config = load_config(self.write(f"[c2s]\nrequire_encryption = {word}\n"))
            self.assertIs(config.c2s.require_encryption, expected, word)

    def test_empty_extensions(self):
        """An empty extensions list means no extension at all, unlike an unset one."""
        config = load_config(self.write("[server]\nextensions =\n"), SCHEMAS)
        self.assertEqual(config.extensions, ())

    def test_extension_section(self):
        """An [extension:NAME] section overrides that extension's defaults only."""
        config = load_config(self.write("[extension:ping]\ninterval = 60\n"), SCHEMAS)
        self.assertEqual(dict(config.extension_options["ping"]),
                         {"interval": 60, "mode": "server"})
        self.assertEqual(dict(config.extension_options["last"]), {"expose_uptime": True})

    def test_tls_per_host(self):
        """[tls:HOST] overrides [tls] for that host; other hosts use [tls]."""
        cert, key = self.pem_pair("default")
        cert2, key2 = self.pem_pair("chat")
        config = load_config(self.write(f"""
[server]
hosts = example.org, chat.example.org
[tls]
certificate = {cert}
private_key = {key}
[tls:Chat.Example.org]
certificate = {cert2}
private_key = {key2}
"""))
        self.assertEqual(config.tls.for_host("example.org"), (cert, key))
        self.assertEqual(config.tls.for_host("chat.example.org"), (cert2, key2))

    def test_tls_per_host_only(self):
        """Without a [tls] certificate, hosts without their own section get None."""
        cert, key = self.pem_pair("chat")
        config = load_config(self.write(f"""
[server]
hosts = example.org, chat.example.org
[tls:chat.example.org]
certificate = {cert}
private_key = {key}
"""))
        self.assertIsNone(config.tls.for_host("example.org"))
        self.assertEqual(config.tls.for_host("chat.example.org"), (cert, key))

    def test_comma_list(self):
        """comma_list splits on commas and newlines and drops empty items."""
        self.assertEqual(comma_list(" a, b ,,\n c "), ("a", "b", "c"))
        self.assertEqual(comma_list(""), ())


class ErrorTests(ConfigTestCase):
    def test_missing_file(self):
        """A missing file is reported as unreadable, with the path."""
        path = os.path.join(self.dir, "nope.ini")
        exc = self.assertRaises(ConfigError, load_config, path)
        self.assertEqual(str(exc), f"{path}: cannot read: No such file or directory")

    def test_not_utf8(self):
        """A file that is not UTF-8 is reported as unreadable."""
        path = os.path.join(self.dir, "latin1.ini")
        with open(path, "wb") as f:
            f.write(b"[server]\nhosts = caf\xe9\n")
        exc = self.assertRaises(ConfigError, load_config, path)
        self.assertTrue(str(exc).startswith(f"{path}: cannot read: not UTF-8"), str(exc))

    def test_unknown_section(self):
        """An unknown section is an error naming it."""
        self.assertEqual(self.error("[srever]\nhosts = a\n"), "FILE: unknown section [srever]")

    def test_default_section(self):
        """[DEFAULT] is not special: it is an unknown section."""
        self.assertEqual(self.error("[DEFAULT]\nport = 1\n"), "FILE: unknown section [DEFAULT]")

    def test_unknown_key(self):
        """An unknown key is an error that suggests the nearest known key."""
        self.assertEqual(self.error("[c2s]\nprot = 5222\n"),
                         "FILE: [c2s] prot: unknown option; did you mean 'port'?")

    def test_bad_value(self):
        """A bad value is one line naming the section, key, problem and value."""
        self.assertEqual(self.error("[c2s]\nport = 52x22\n"),
                         "FILE: [c2s] port: expected an integer from 1 to 65535 (got '52x22')")

    def test_bad_bool(self):
        """A boolean that is not a yes/no word is rejected."""
        self.assertEqual(self.error("[c2s]\nrequire_encryption = maybe\n"),
                         "FILE: [c2s] require_encryption: expected yes or no (got 'maybe')")

    def test_bad_choice(self):
        """A log level outside the list is rejected with the list."""
        self.assertEqual(
            self.error("[server]\nlog_level = verbose\n"),
            "FILE: [server] log_level: expected one of debug, info, warn, error, critical "
            "(got 'verbose')")

    def test_bad_interface(self):
        """The c2s interface must be an IP address."""
        self.assertEqual(self.error("[c2s]\ninterface = localhost\n"),
                         "FILE: [c2s] interface: expected an IPv4 or IPv6 address "
                         "(got 'localhost')")

    def test_multiline_value_stays_one_line(self):
        """A multi-line value is shown escaped so the error stays on one line."""
        message = self.error("[c2s]\nport = 1\n  2\n")
        self.assertEqual(message, "FILE: [c2s] port: expected an integer from 1 to 65535 "
                                  "(got '1\\n2')")

    def test_duplicate_key(self):
        """A key given twice in a section is an error."""
        self.assertEqual(self.error("[c2s]\nport = 1\nport = 2\n"),
                         "FILE: [c2s] port: duplicate option (line 3)")

    def test_duplicate_section(self):
        """A section given twice is an error."""
        self.assertEqual(self.error("[c2s]\n[auth]\n[c2s]\n"),
                         "FILE: line 3: duplicate section [c2s]")

    def test_key_outside_section(self):
        """A key before any section header is an error."""
        self.assertEqual(self.error("port = 1\n"),
                         "FILE: line 1: option outside any section (got 'port = 1')")

    def test_garbage_line(self):
        """A line that is neither a key nor a header is an error with its line number."""
        self.assertEqual(self.error("[c2s]\nport 5222\n"),
                         "FILE: line 2: not a 'key = value' line or a [section] header "
                         "(got 'port 5222')")

    def test_bad_host(self):
        """An invalid host name is rejected with the reason."""
        message = self.error("[server]\nhosts = example.org, bad host\n")
        self.assertTrue(message.startswith("FILE: [server] hosts: 'bad host': "), message)
        self.assertTrue(message.endswith("(got 'example.org, bad host')"), message)

    def test_no_hosts(self):
        """At least one host is required."""
        self.assertEqual(self.error("[server]\nhosts =\n"),
                         "FILE: [server] hosts: at least one host is required (got '')")

    def test_duplicate_host(self):
        """A host listed twice (after preparation) is an error."""
        self.assertEqual(self.error("[server]\nhosts = a.example, A.example\n"),
                         "FILE: [server] hosts: 'A.example' is listed twice "
                         "(got 'a.example, A.example')")

    def test_same_ports(self):
        """The direct TLS port may not be the STARTTLS port."""
        self.assertEqual(self.error("[c2s]\nport = 5223\n"),
                         "FILE: [c2s] direct_tls_port: must differ from port (got '5223')")

    def test_too_few_iterations(self):
        """SCRAM iterations below the RFC 7677 minimum are rejected."""
        self.assertEqual(self.error("[auth]\nscram_iterations = 100\n"),
                         "FILE: [auth] scram_iterations: expected an integer from 4096 to "
                         "10000000 (got '100')")

    def test_unknown_extension_section(self):
        """A section for an extension that is not installed is an error."""
        self.assertEqual(self.error("[extension:pubsub]\n"),
                         "FILE: unknown section [extension:pubsub]: no extension 'pubsub' "
                         "is installed (installed: disco, last, ping)")

    def test_unknown_extension_key(self):
        """An unknown key in an extension section is an error."""
        self.assertEqual(self.error("[extension:ping]\ninterval = 5\nfoo = 1\n"),
                         "FILE: [extension:ping] foo: unknown option")

    def test_bad_extension_value(self):
        """An extension option is validated with its declared type."""
        self.assertEqual(self.error("[extension:last]\nexpose_uptime = perhaps\n"),
                         "FILE: [extension:last] expose_uptime: expected yes or no "
                         "(got 'perhaps')")

    def test_unknown_extension_listed(self):
        """[server] extensions may only name installed extensions."""
        self.assertEqual(self.error("[server]\nextensions = ping, mam\n"),
                         "FILE: [server] extensions: unknown extension 'mam' "
                         "(installed: disco, last, ping) (got 'ping, mam')")

    def test_tls_section_for_unknown_host(self):
        """A [tls:HOST] section for a host that is not served is an error."""
        cert, key = self.pem_pair("x")
        self.assertEqual(
            self.error(f"[tls:other.org]\ncertificate = {cert}\nprivate_key = {key}\n"),
            "FILE: [tls:other.org]: 'other.org' is not one of [server] hosts (localhost)")

    def test_certificate_without_key(self):
        """A certificate without its private key is an error."""
        cert, _ = self.pem_pair("x")
        self.assertEqual(self.error(f"[tls]\ncertificate = {cert}\n"),
                         "FILE: [tls] private_key: required when certificate is set")

    def test_tls_host_section_incomplete(self):
        """A [tls:HOST] section needs both files."""
        _, key = self.pem_pair("x")
        self.assertEqual(self.error(f"[tls:localhost]\nprivate_key = {key}\n"),
                         "FILE: [tls:localhost] certificate: required in a [tls:localhost] "
                         "section")

    def test_unreadable_certificate(self):
        """A certificate path that is not a readable file is an error."""
        _, key = self.pem_pair("x")
        missing = os.path.join(self.dir, "missing.crt")
        self.assertEqual(
            self.error(f"[tls]\ncertificate = {missing}\nprivate_key = {key}\n"),
            f"FILE: [tls] certificate: not a readable file (got '{missing}')")

    def test_option_name_checked(self):
        """An Option name configparser could never match is a schema bug."""
        self.assertRaises(ValueError, Option, "maxItems", int, 1, "doc")

    def test_int_range(self):
        """int_range rejects out-of-range and non-integer text."""
        parse = int_range(1, 3)
        self.assertEqual(parse(" 2 "), 2)
        self.assertRaises(ValueError, parse, "4")
        self.assertRaises(ValueError, parse, "two")


class ExampleTests(ConfigTestCase):
    def test_every_option_documented(self):
        """The example names every core and extension section and option with its doc."""
        text = render_example(SCHEMAS)
        for section, options in CORE_SCHEMA.items():
            self.assertIn(f"\n[{section}]\n", text)
            for option in options:
                self.assertRegex(text, rf"\n;{option.name} =")
                self.assertIn(option.doc.split()[0], text)
        for name, options in SCHEMAS.items():
            self.assertIn(f"\n[extension:{name}]\n", text)
            for option in options:
                default = "yes" if option.default is True else option.default
                self.assertIn(f"\n;{option.name} = {default}", text)
        self.assertIn("[tls:example.org]", text)

    def test_example_loads_as_defaults(self):
        """The example file as generated loads to the default configuration."""
        config = load_config(self.write(render_example(SCHEMAS)), SCHEMAS)
        self.assertEqual(dataclasses.replace(config, path=None), load_config(None, SCHEMAS))

    def test_uncommented_defaults_load_as_defaults(self):
        """Uncommenting every option of the example changes nothing but the extensions list."""
        text = re.sub(r"(?m)^;([a-z_]+ = )", r"\1", render_example(SCHEMAS))
        text = re.sub(r"(?m)^;([a-z_]+)$", r"\1 =", text)
        config = load_config(self.write(text), SCHEMAS)
        self.assertEqual(config.extensions, ("disco", "last", "ping"))
        self.assertEqual(dataclasses.replace(config, path=None, extensions=None),
                         load_config(None, SCHEMAS))

    def test_server_config_fields(self):
        """ServerConfig exposes the documented fields."""
        self.assertEqual(
            [f.name for f in dataclasses.fields(ServerConfig)],
            ["path", "hosts", "data_dir", "log_level", "extensions", "c2s", "auth", "tls",
             "storage", "extension_options", "s2s", "components", "http", "bosh",
             "websocket"])


def test_auth_mechanisms_are_checked(tmp_path):
    """[auth] mechanisms accepts implemented names (any case) and refuses others in one line."""
    from jabberapp.config import ConfigError, load_config
    good = tmp_path / "good.ini"
    good.write_text("[auth]\nmechanisms = scram-sha-1, PLAIN\n")
    assert load_config(str(good)).auth.mechanisms == ("SCRAM-SHA-1", "PLAIN")
    bad = tmp_path / "bad.ini"
    bad.write_text("[auth]\nmechanisms = SCRAM-SHA-1, DIGEST-MD5\n")
    try:
        load_config(str(bad))
    except ConfigError as e:
        assert "[auth] mechanisms" in str(e) and "DIGEST-MD5" in str(e)
        assert "\n" not in str(e)
    else:
        raise AssertionError("DIGEST-MD5 was accepted")

