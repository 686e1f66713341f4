"""End to end: accounts and data imported with `jabberappctl import` (XEP-0227) serve real
clients -- Prosody 0.12's SCRAM-SHA-1 export and a plaintext-password export -- and the
export of a running server's data imports into another."""
import asyncio
import os

import pytest

from tests.e2e.harness import TIMEOUT, Client, ServerProcess, close, ctl, login, run
from tests.test_xep0227 import (
    JULIET_PASSWORD,
    PROSODY_JULIET,
    PROSODY_ROMEO,
    ROMEO_PASSWORD,
)

HOST = "capulet.lit"
NURSE_PASSWORD = "nurse pässword"
NURSE = f"""\
<?xml version='1.0' encoding='UTF-8'?>
<server-data xmlns='urn:xmpp:pie:0'>
  <host jid='capulet.lit'>
    <user name='nurse' password='{NURSE_PASSWORD}'>
      <query xmlns='jabber:iq:roster'>
        <item jid='juliet@capulet.lit' name='Juliet' subscription='both'>
          <group>Family</group>
        </item>
      </query>
      <offline-messages>
        <message xmlns='jabber:client' from='romeo@capulet.lit/orchard'
                 to='nurse@capulet.lit' type='chat' id='m1'>
          <body>Commend me to thy lady.</body>
          <delay xmlns='urn:xmpp:delay' from='capulet.lit' stamp='2010-07-10T23:08:25Z'/>
        </message>
      </offline-messages>
    </user>
  </host>
</server-data>
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server whose accounts all come from an import made before it started."""
    directory = tmp_path_factory.mktemp("migration")
    server = ServerProcess(directory, hosts=(HOST,))
    files = []
    for name, text in (("juliet@capulet.lit.xml", PROSODY_JULIET),
                       ("romeo@capulet.lit.xml", PROSODY_ROMEO), ("nurse.xml", NURSE)):
        path = os.path.join(str(directory), name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        files.append(path)
    result = ctl(server.config_path, "import", *files)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("imported 3 accounts on capulet.lit"), result.stdout
    with server:
        yield server


def test_prosody_account_logs_in_with_its_roster(server):
    """juliet, imported from Prosody with SCRAM-SHA-1 material only, logs in with
    SCRAM-SHA-1 and finds her roster and the subscription request left pending."""
    async def scenario():
        juliet = Client(f"juliet@{HOST}/balcony", JULIET_PASSWORD, server.certificate,
                        mechanism="SCRAM-SHA-1")
        juliet.auto_authorize = None
        requests = asyncio.Queue()
        juliet.add_event_handler("presence_subscribe", requests.put_nowait)
        juliet.connect("127.0.0.1", server.port)
        await asyncio.wait_for(juliet.started, TIMEOUT)
        await juliet.get_roster()
        juliet.send_presence()
        roster = juliet.client_roster
        assert roster["romeo@montague.lit"]["name"] == "Romeo"
        assert roster["romeo@montague.lit"]["subscription"] == "both"
        assert set(roster["romeo@montague.lit"]["groups"]) == {"Lovers", "Friends"}
        assert roster["tybalt@capulet.lit"]["name"] == "Cousin & <Tybalt>"
        assert roster["nurse@capulet.lit"]["pending_out"]
        request = await asyncio.wait_for(requests.get(), TIMEOUT)
        assert request["from"] == "mercutio@montague.lit"
        await close(juliet)
    run(scenario())


def test_plaintext_account_gets_its_offline_message(server):
    """nurse, imported with a plaintext password (now SCRAM material for every hash), logs
    in with the client's preferred mechanism and receives the imported offline message,
    with its original delay stamp."""
    async def scenario():
        nurse = await login(server, f"nurse@{HOST}/kitchen", NURSE_PASSWORD)
        message = await asyncio.wait_for(nurse.messages.get(), TIMEOUT)
        assert (message["from"], message["body"]) == ("romeo@capulet.lit/orchard",
                                                      "Commend me to thy lady.")
        delay = message.xml.find("{urn:xmpp:delay}delay")
        assert delay.get("stamp") == "2010-07-10T23:08:25Z"
        await close(nurse)
    run(scenario())


def test_export_imports_into_another_server(server, tmp_path_factory):
    """Data written by clients on the running server exports, and the export imports into
    a fresh server where the same account logs in and finds it."""
    async def change():
        romeo = await login(server, f"romeo@{HOST}/orchard", ROMEO_PASSWORD, "SCRAM-SHA-1")
        await romeo.get_roster()
        romeo.update_roster(f"juliet@{HOST}", name="Juliet", groups=["Verona"])
        await romeo.get_roster()
        await close(romeo)
    run(change())
    directory = tmp_path_factory.mktemp("migration-target")
    export = os.path.join(str(directory), "export.xml")
    result = ctl(server.config_path, "export", HOST, export)
    assert result.returncode == 0, result.stderr
    target = ServerProcess(directory, hosts=(HOST,))
    result = ctl(target.config_path, "import", export)
    assert result.returncode == 0, result.stderr

    async def check():
        romeo = await login(target, f"romeo@{HOST}/orchard", ROMEO_PASSWORD, "SCRAM-SHA-1")
        await romeo.get_roster()
        assert romeo.client_roster[f"juliet@{HOST}"]["name"] == "Juliet"
        assert romeo.client_roster[f"juliet@{HOST}"]["groups"] == ["Verona"]
        await close(romeo)
    with target:
        run(check())
