"""End to end over real sockets: SCRAM-*-PLUS channel binding (RFC 5802, RFC 5929, RFC 9266,
XEP-0440) with binding data computed by an independent client (tests/e2e/rawclient.py)."""
import pytest
from OpenSSL import SSL

from tests.e2e.harness import ServerProcess
from tests.e2e.rawclient import (
    RawClient,
    SASLFailed,
    channel_binding_types,
    login_plus,
    mechanisms,
)

PASSWORD = "s3cret pässword"
PLUS = ["SCRAM-SHA-512-PLUS", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = ServerProcess(tmp_path_factory.mktemp("cb"))
    server.adduser("alice@localhost", PASSWORD)
    with server:
        yield server


def secured(server, max_version=None):
    """A RawClient past STARTTLS, and the features of its encrypted stream."""
    client = RawClient(server.port, server.certificate)
    client.open_stream()
    return client, client.starttls(max_version)


def test_tls_exporter_login_on_tls13(server):
    """SCRAM-SHA-256-PLUS bound to tls-exporter over TLS 1.3 logs in and binds a resource."""
    jid = login_plus(server, "alice", PASSWORD, "SCRAM-SHA-256-PLUS", "tls-exporter", "exp")
    assert jid == "alice@localhost/exp"


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-1-PLUS", "SCRAM-SHA-512-PLUS"])
def test_tls_server_end_point_login(server, mechanism):
    """SCRAM-SHA-1-PLUS and SCRAM-SHA-512-PLUS bound to tls-server-end-point log in."""
    jid = login_plus(server, "alice", PASSWORD, mechanism, "tls-server-end-point", "tsep")
    assert jid == "alice@localhost/tsep"


def test_tls13_features_advertise_both_binding_types(server):
    """Over TLS 1.3 the features offer every -PLUS mechanism and both XEP-0440 binding types."""
    client, features = secured(server)
    with client:
        assert client.tls_version == "TLSv1.3"
        assert mechanisms(features)[:3] == PLUS
        assert sorted(channel_binding_types(features)) == ["tls-exporter",
                                                           "tls-server-end-point"]


def test_wrong_binding_data_is_not_authorized(server):
    """tls-exporter data exported under another label (as a MITM would see it) is refused."""
    client, _ = secured(server)
    with client:
        forged = client.channel_binding("tls-exporter", label=b"EXPORTER-Something-Else")
        assert forged != client.channel_binding("tls-exporter")
        with pytest.raises(SASLFailed) as failed:
            client.authenticate("SCRAM-SHA-256-PLUS", "alice", PASSWORD,
                                cb_type="tls-exporter", cb_data=forged)
        assert failed.value.condition == "not-authorized"


def test_downgrade_to_non_plus_is_refused(server):
    """SCRAM-SHA-256 with GS2 flag 'y' while -PLUS is offered is refused as a downgrade."""
    client, features = secured(server)
    with client:
        assert "SCRAM-SHA-256-PLUS" in mechanisms(features)
        with pytest.raises(SASLFailed) as failed:
            client.authenticate("SCRAM-SHA-256", "alice", PASSWORD, gs2_header="y,,")
        assert failed.value.condition == "not-authorized"


def test_tls12_offers_only_tls_server_end_point(server):
    """Over TLS 1.2 tls-exporter is not offered (RFC 9266) but -PLUS with tls-server-end-point
    still is, and logs in."""
    client, features = secured(server, max_version=SSL.TLS1_2_VERSION)
    with client:
        assert client.tls_version == "TLSv1.2"
        assert channel_binding_types(features) == ["tls-server-end-point"]
        assert mechanisms(features)[:3] == PLUS
        client.authenticate("SCRAM-SHA-256-PLUS", "alice", PASSWORD,
                            cb_type="tls-server-end-point")
        assert client.bind("tls12") == "alice@localhost/tls12"
