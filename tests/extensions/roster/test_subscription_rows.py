"""
RFC 6121 Appendix A through the server: every row of A.2 and A.3 played with real stanzas
between a local user (alice) and a contact on another domain (romeo), so what is routed
to the contact's server, delivered to alice, pushed to her and stored can all be seen.
"""
import pytest

from jabberapp.extensions.roster.subscription import State
from tests.extensions.roster import tables
from tests.extensions.roster.helpers import World, presences, pushes

ALICE = "alice@example.org"
ROMEO = "romeo@remote.example"

OUT_ROWS = tables.rows(tables.OUTBOUND)
IN_ROWS = tables.rows(tables.INBOUND)


def _setup(existing):
    world = World()
    session = world.login(f"{ALICE}/home")
    world.set_state("alice", ROMEO, existing)
    world.host.sent.clear()
    world.host.remote.received.clear()
    return world, session


@pytest.mark.parametrize("kind,existing,forwarded,new,pushed", OUT_ROWS,
                         ids=[f"A.2-{k}-{e}" for k, e, *_ in OUT_ROWS])
def test_outbound_row(kind, existing, forwarded, new, pushed):
    """Each row of A.2: alice's stanza is routed or not, her roster stored and pushed."""
    world, session = _setup(existing)
    world.send(f"<presence from='{ALICE}/home' to='{ROMEO}/balcony' type='{kind}'/>")
    assert world.state("alice", ROMEO) == State.named(new or existing)
    routed = presences(world.host.remote.received, kind)
    assert bool(routed) is forwarded
    for stanza in routed:   # §3: stamped with the bare JIDs of both parties
        assert (stanza.get("from"), stanza.get("to")) == (ALICE, ROMEO)
    assert bool(pushes(session)) is pushed


@pytest.mark.parametrize("kind,existing,forwarded,new,pushed", IN_ROWS,
                         ids=[f"A.3-{k}-{e}" for k, e, *_ in IN_ROWS])
def test_inbound_row(kind, existing, forwarded, new, pushed):
    """Each row of A.3: romeo's stanza is delivered to alice or not, stored and pushed."""
    world, session = _setup(existing)
    world.send(f"<presence from='{ROMEO}/balcony' to='{ALICE}' type='{kind}'/>")
    assert world.state("alice", ROMEO) == State.named(new or existing)
    delivered = presences(session.sent, kind)
    assert bool(delivered) is forwarded
    for stanza in delivered:
        assert (stanza.get("from"), stanza.get("to")) == (ROMEO, ALICE)
    assert bool(pushes(session)) is pushed
    replies = presences(world.host.remote.received, "subscribed")
    auto_reply = kind == "subscribe" and State.named(existing).has_from
    assert bool(replies) is auto_reply


@pytest.mark.parametrize("existing,direction,kind,forwarded,new,pushed", tables.PRE_APPROVAL,
                         ids=[f"{d}-{k}-{e}" for e, d, k, *_ in tables.PRE_APPROVAL])
def test_pre_approval_row(existing, direction, kind, forwarded, new, pushed):
    """§3.4 pre-approval rows: stored, pushed, and whether the stanza goes on."""
    world, session = _setup(existing)
    if direction == "inbound":
        world.send(f"<presence from='{ROMEO}' to='{ALICE}' type='{kind}'/>")
        assert bool(presences(session.sent, kind)) is forwarded
    else:
        world.send(f"<presence from='{ALICE}/home' to='{ROMEO}' type='{kind}'/>")
        assert bool(presences(world.host.remote.received, kind)) is forwarded
    assert world.state("alice", ROMEO) == State.named(new or existing)
    assert bool(pushes(session)) is pushed
