"""A third-party extension dropped into a plugins directory is discovered, enabled and used."""
import os
import shutil

import pytest
from lxml import etree

from tests.e2e.harness import TIMEOUT, ServerProcess, close, login, run

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    plugins = tmp_path_factory.mktemp("plugins")
    shutil.copytree(os.path.join(HERE, "dropin"), plugins, dirs_exist_ok=True)
    server = ServerProcess(tmp_path_factory.mktemp("server"), plugin_path=str(plugins), config="""
        [extension:acme_echo]
        prefix = ACME says:
        """)
    with open(server.config_path) as f:
        text = f.read()
    with open(server.config_path, "w") as f:
        f.write(text.replace("log_level = debug", "log_level = debug\nextensions = disco, acme_echo"))
    server.adduser("alice@localhost", "pw")
    with server:
        yield server


def test_dropin_extension_answers_its_iq(server):
    """The enabled drop-in answers its IQ with its configured option and appears in disco."""
    async def scenario():
        client = await login(server, "alice@localhost/x", "pw")
        client.register_plugin("xep_0030")
        iq = client.make_iq_get(ito="localhost")
        iq.append(etree_to_slixmpp("<echo xmlns='urn:example:echo'>hello</echo>"))
        reply = await iq.send(timeout=TIMEOUT)
        assert reply.xml.find("{urn:example:echo}echo").text == "ACME says:hello"
        info = await client.plugin["xep_0030"].get_info(jid="localhost", timeout=TIMEOUT)
        assert "urn:example:echo" in info["disco_info"]["features"]
        await close(client)
    run(scenario())


def test_unknown_extension_name_stops_startup(tmp_path):
    """Naming an extension that is not installed is a one-line startup error."""
    server = ServerProcess(tmp_path)
    with open(server.config_path) as f:
        text = f.read()
    with open(server.config_path, "w") as f:
        f.write(text.replace("log_level = debug", "log_level = debug\nextensions = disco, nosuch"))
    with pytest.raises(AssertionError, match="server exited") as raised:
        server.start()
    server.stop()
    assert "unknown extension 'nosuch'" in str(raised.value)
    assert "Traceback" not in str(raised.value)


def etree_to_slixmpp(xml):
    """slixmpp stanzas append xml.etree elements."""
    import xml.etree.ElementTree as ET
    return ET.fromstring(xml)
