"""
End to end over raw sockets: XEP-0388 SASL2 with XEP-0386 Bind2 and XEP-0198 inline -- a login
in one round trip (SCRAM-SHA-256-PLUS bound to tls-exporter, resource bound, stream management
enabled), a resumption inside <authenticate/> after the connection is cut, carbons inline, bad
input, a password change ending other sessions, and a XEP-0484 FAST token's life.
"""
import base64
import hashlib
import hmac
import os
import uuid

import pytest
from lxml import etree

from tests.e2e.harness import ServerProcess
from tests.e2e.rawclient import NS_CLIENT, RawClient, StreamClosed
from tests.e2e.test_stream_management import next_bodies, send_messages
from tests.scram_client import Client

PASSWORD = "sasl2 pw"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_SASL2 = "urn:xmpp:sasl:2"
NS_BIND2 = "urn:xmpp:bind:0"
NS_SM = "urn:xmpp:sm:3"
DEVICE = str(uuid.uuid4())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = ServerProcess(tmp_path_factory.mktemp("sasl2"))
    for user in ("alice", "bob"):
        server.adduser(f"{user}@localhost", PASSWORD)
    with server:
        yield server


def b64(data):
    return base64.b64encode(data).decode()


def secured(server):
    """A RawClient past STARTTLS and the SASL2 <authentication/> it was offered."""
    client = RawClient(server.port, server.certificate)
    client.open_stream()
    features = client.starttls()
    authentication = features.find(f"{{{NS_SASL2}}}authentication")
    assert authentication is not None, etree.tostring(features)
    return client, authentication


def user_agent(ua_id=DEVICE):
    return (f"<user-agent id='{ua_id}'><software>rawclient</software>"
            f"<device>test</device></user-agent>")


def sasl2_scram(client, user, password, inline="", mechanism="SCRAM-SHA-256-PLUS",
                ua_id=DEVICE):
    """SCRAM over SASL2 with C{inline} in <authenticate/>: the <success/> or <failure/>."""
    cb_type = "tls-exporter" if mechanism.endswith("-PLUS") else None
    scram = Client("sha256", user, password, nonce=b64(os.urandom(18)),
                   gs2_header=f"p={cb_type},," if cb_type else "n,,",
                   cb_data=client.channel_binding(cb_type) if cb_type else b"")
    client.send(f"<authenticate xmlns='{NS_SASL2}' mechanism='{mechanism}'>"
                f"<initial-response>{b64(scram.first())}</initial-response>"
                f"{user_agent(ua_id)}{inline}</authenticate>")
    el = client.expect(f"{{{NS_SASL2}}}challenge", f"{{{NS_SASL2}}}failure")
    if el.tag == f"{{{NS_SASL2}}}failure":
        return el
    client.send(f"<response xmlns='{NS_SASL2}'>"
                f"{b64(scram.final(base64.b64decode(el.text)))}</response>")
    el = client.expect(f"{{{NS_SASL2}}}success", f"{{{NS_SASL2}}}failure")
    if el.tag == f"{{{NS_SASL2}}}success":
        scram.verify(base64.b64decode(el.findtext(f"{{{NS_SASL2}}}additional-data")))
    return el


def condition(failure):
    """The RFC 6120 condition of a SASL2 <failure/>."""
    return [etree.QName(c).localname for c in failure if etree.QName(c).namespace == NS_SASL][0]


BIND_SM = (f"<bind xmlns='{NS_BIND2}'><tag>raw</tag>"
           f"<enable xmlns='{NS_SM}' resume='true'/></bind>")


def test_login_bind_and_sm_in_one_round_trip(server):
    """SCRAM-SHA-256-PLUS (tls-exporter) over SASL2 with Bind2 and inline stream
    management: <success/> names a full JID stable for the device, with <enabled/> in
    <bound/>, and the session works at once."""
    client, authentication = secured(server)
    with client:
        inline = authentication.find(f"{{{NS_SASL2}}}inline")
        assert inline.find(f"{{{NS_SM}}}sm") is not None
        success = sasl2_scram(client, "alice", PASSWORD, BIND_SM)
        assert success.tag == f"{{{NS_SASL2}}}success", etree.tostring(success)
        jid = success.findtext(f"{{{NS_SASL2}}}authorization-identifier")
        assert jid.startswith("alice@localhost/raw.")
        enabled = success.find(f"{{{NS_BIND2}}}bound/{{{NS_SM}}}enabled")
        assert enabled.get("resume") == "true"
        client.send("<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
        assert client.expect(f"{{{NS_CLIENT}}}iq").get("id") == "p1"
    client, _ = secured(server)
    with client:
        again = sasl2_scram(client, "alice", PASSWORD, BIND_SM)
        assert again.findtext(f"{{{NS_SASL2}}}authorization-identifier") == jid


def test_resume_inside_authenticate(server):
    """After a cut, <resume/> inside <authenticate/> resumes the session: <resumed/> is in
    <success/> and the messages sent meanwhile follow."""
    alice, _ = secured(server)
    success = sasl2_scram(alice, "alice", PASSWORD, BIND_SM, ua_id=str(uuid.uuid4()))
    jid = success.findtext(f"{{{NS_SASL2}}}authorization-identifier")
    previd = success.find(f"{{{NS_BIND2}}}bound/{{{NS_SM}}}enabled").get("id")
    bob, _ = secured(server)
    try:
        sasl2_scram(bob, "bob", PASSWORD, f"<bind xmlns='{NS_BIND2}'/>")
        alice._sock.close()
        for _ in server.lines_until(lambda line: f"{jid} awaits resumption" in line):
            pass
        send_messages(bob, ["1", "2"], to=jid)
        alice, _ = secured(server)
        success = sasl2_scram(alice, "alice", PASSWORD,
                              f"<resume xmlns='{NS_SM}' previd='{previd}' h='0'/>")
        assert success.findtext(f"{{{NS_SASL2}}}authorization-identifier") == jid
        assert success.find(f"{{{NS_SM}}}resumed").get("previd") == previd
        got = [m.findtext(f"{{{NS_CLIENT}}}body") for m in next_bodies(alice, 2)]
        assert got == ["1", "2"]
    finally:
        alice.close()
        bob.close()


def test_unknown_mechanism(server):
    """An unknown mechanism is <invalid-mechanism/>."""
    client, _ = secured(server)
    with client:
        client.send(f"<authenticate xmlns='{NS_SASL2}' mechanism='X-NOPE'>"
                    f"<initial-response>AA==</initial-response></authenticate>")
        assert condition(client.expect(f"{{{NS_SASL2}}}failure")) == "invalid-mechanism"


def test_user_agent_id_must_be_a_uuid(server):
    """A user-agent id that is not a UUID is <malformed-request/>, with a text."""
    client, _ = secured(server)
    with client:
        failure = sasl2_scram(client, "alice", PASSWORD, ua_id="my-phone")
        assert condition(failure) == "malformed-request"
        assert failure.findtext(f"{{{NS_SASL2}}}text")


def test_wrong_password_then_right_one(server):
    """A wrong password is <not-authorized/>; the throttle lets the right one in after
    (on the same stream, SCRAM without -PLUS this time)."""
    client, _ = secured(server)
    with client:
        failure = sasl2_scram(client, "bob", "wrong")
        assert condition(failure) == "not-authorized"
        success = sasl2_scram(client, "bob", PASSWORD, mechanism="SCRAM-SHA-256")
        assert success.findtext(f"{{{NS_SASL2}}}authorization-identifier") == "bob@localhost"


def test_carbons_enabled_inline(server):
    """Carbons enabled inside Bind2: a message bob sends to alice's other resource reaches
    the SASL2 device as a received carbon."""
    phone, authentication = secured(server)
    laptop, _ = secured(server)
    bob, _ = secured(server)
    try:
        offered = [f.get("var") for f in authentication.iter(f"{{{NS_BIND2}}}feature")]
        assert "urn:xmpp:carbons:2" in offered
        sasl2_scram(phone, "alice", PASSWORD, f"<bind xmlns='{NS_BIND2}'><tag>phone</tag>"
                    "<enable xmlns='urn:xmpp:carbons:2'/></bind>", ua_id=str(uuid.uuid4()))
        laptop_jid = sasl2_scram(laptop, "alice", PASSWORD, f"<bind xmlns='{NS_BIND2}'/>",
                                 ua_id=str(uuid.uuid4())).findtext(
                                     f"{{{NS_SASL2}}}authorization-identifier")
        sasl2_scram(bob, "bob", PASSWORD, f"<bind xmlns='{NS_BIND2}'/>")
        send_messages(bob, ["c1"], to=laptop_jid)
        carbon = phone.expect(f"{{{NS_CLIENT}}}message")
        received = carbon.find("{urn:xmpp:carbons:2}received")
        assert received is not None, etree.tostring(carbon)
        assert "c1" in etree.tostring(received).decode()
    finally:
        for client in (phone, laptop, bob):
            client.close()


def test_password_change_ends_other_sessions(tmp_path):
    """A XEP-0077 password change answers its session and ends the account's other one
    with a <reset/> stream error; the new password logs in over SASL2."""
    server = ServerProcess(tmp_path)
    server.adduser("carol@localhost", PASSWORD)
    with server:
        changer, _ = secured(server)
        other, _ = secured(server)
        try:
            for client in (changer, other):
                sasl2_scram(client, "carol", PASSWORD, f"<bind xmlns='{NS_BIND2}'/>",
                            ua_id=str(uuid.uuid4()))
            changer.send("<iq type='set' id='pw'><query xmlns='jabber:iq:register'>"
                         "<username>carol</username><password>new pw</password></query></iq>")
            assert changer.expect(f"{{{NS_CLIENT}}}iq").get("type") == "result"
            with pytest.raises(StreamClosed) as closed:
                while True:
                    other.next_element()
            assert closed.value.error == "reset"
        finally:
            changer.close()
            other.close()
        client, _ = secured(server)
        with client:
            success = sasl2_scram(client, "carol", "new pw")
            assert success.tag == f"{{{NS_SASL2}}}success"


def fast_login(server, token, count, ua_id, mechanism="HT-SHA-256-EXPR", inline=""):
    """A FAST login on a new connection: the client and the <success/> or <failure/>."""
    client, authentication = secured(server)
    offered = authentication.find(f"{{{NS_SASL2}}}inline/{{urn:xmpp:fast:0}}fast")
    assert mechanism in [m.text for m in offered]
    cb = client.channel_binding("tls-exporter") if mechanism.endswith("EXPR") else b""
    proof = b"dave\0" + hmac.new(token.encode(), b"Initiator" + cb, hashlib.sha256).digest()
    client.send(f"<authenticate xmlns='{NS_SASL2}' mechanism='{mechanism}'>"
                f"<initial-response>{b64(proof)}</initial-response>{user_agent(ua_id)}"
                f"<fast xmlns='urn:xmpp:fast:0' count='{count}'/>{inline}</authenticate>")
    el = client.expect(f"{{{NS_SASL2}}}success", f"{{{NS_SASL2}}}failure")
    if el.tag == f"{{{NS_SASL2}}}success":
        data = base64.b64decode(el.findtext(f"{{{NS_SASL2}}}additional-data"))
        assert data == hmac.new(token.encode(), b"Responder" + cb, hashlib.sha256).digest()
    return client, el


def test_fast_token_obtained_used_rotated_revoked(tmp_path):
    """A token requested at a password login logs in on a new connection bound to
    tls-exporter with Bind2 in one round trip, is rotated, and a password change revokes it."""
    server = ServerProcess(tmp_path)
    server.adduser("dave@localhost", PASSWORD)
    device = str(uuid.uuid4())
    request = "<request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-EXPR'/>"
    with server:
        client, _ = secured(server)
        with client:
            success = sasl2_scram(client, "dave", PASSWORD, request, ua_id=device)
            token = success.find("{urn:xmpp:fast:0}token").get("token")
        client, success = fast_login(server, token, 1, device,
                                     inline=request + f"<bind xmlns='{NS_BIND2}'/>")
        with client:
            assert success.tag == f"{{{NS_SASL2}}}success"
            assert "/" in success.findtext(f"{{{NS_SASL2}}}authorization-identifier")
            new = success.find("{urn:xmpp:fast:0}token").get("token")
            assert new != token
        client, success = fast_login(server, new, 1, device,
                                     inline=f"<bind xmlns='{NS_BIND2}'/>")
        with client:
            assert success.tag == f"{{{NS_SASL2}}}success"
            client.send("<iq type='set' id='pw'><query xmlns='jabber:iq:register'>"
                        "<username>dave</username><password>new pw</password></query></iq>")
            assert client.expect(f"{{{NS_CLIENT}}}iq").get("type") == "result"
        client, failure = fast_login(server, new, 2, device)
        with client:
            assert failure.tag == f"{{{NS_SASL2}}}failure"
            assert condition(failure) == "not-authorized"
