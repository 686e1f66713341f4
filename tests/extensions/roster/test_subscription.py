"""RFC 6121 Appendix A: the pure subscription state machine, row by row."""
import pytest

from jabberapp.extensions.roster.subscription import (
    AVAILABLE, STATES, UNAVAILABLE, State, inbound, outbound)
from tests.extensions.roster import tables


def _ids(rows, section):
    return [f"{section}-{kind}-{existing}" for kind, existing, *_ in rows]


OUT_ROWS = tables.rows(tables.OUTBOUND)
IN_ROWS = tables.rows(tables.INBOUND)


@pytest.mark.parametrize("kind,existing,forwarded,new,pushed", OUT_ROWS,
                         ids=_ids(OUT_ROWS, "A.2"))
def test_outbound_row(kind, existing, forwarded, new, pushed):
    """Each row of A.2: the new state, whether the stanza is routed and the roster pushed."""
    state = State.named(existing)
    transition = outbound(state, kind)
    assert transition.state == (state if new is None else State.named(new))
    assert transition.forward is forwarded
    assert transition.push is pushed
    assert transition.reply is None


@pytest.mark.parametrize("kind,existing,forwarded,new,pushed", IN_ROWS,
                         ids=_ids(IN_ROWS, "A.3"))
def test_inbound_row(kind, existing, forwarded, new, pushed):
    """Each row of A.3: the new state, whether the stanza is delivered and pushed."""
    state = State.named(existing)
    transition = inbound(state, kind)
    assert transition.state == (state if new is None else State.named(new))
    assert transition.forward is forwarded
    assert transition.push is pushed


@pytest.mark.parametrize("existing,direction,kind,forwarded,new,pushed", tables.PRE_APPROVAL,
                         ids=[f"{d}-{k}-{e}" for e, d, k, *_ in tables.PRE_APPROVAL])
def test_pre_approval_row(existing, direction, kind, forwarded, new, pushed):
    """§3.4: pre-approvals are noted, used by the next request and can be cancelled."""
    state = State.named(existing)
    transition = (inbound if direction == "inbound" else outbound)(state, kind)
    assert transition.state == (state if new is None else State.named(new))
    assert (transition.forward, transition.push) == (forwarded, pushed)


def test_table_covers_every_state():
    """Every table of Appendix A has one row for each of the nine defined states."""
    for table in list(tables.OUTBOUND.values()) + list(tables.INBOUND.values()):
        assert [State.named(row[0]) for row in table] == list(STATES)


@pytest.mark.parametrize("existing", ["From", "From + Pending Out", "Both"])
def test_inbound_subscribe_when_subscribed_auto_replies(existing):
    """A.3.1 note: a request from an already subscribed contact is answered 'subscribed'."""
    transition = inbound(State.named(existing), "subscribe")
    assert (transition.reply, transition.presence) == ("subscribed", AVAILABLE)


def test_pre_approved_request_is_approved_on_the_users_behalf():
    """§3.4: a pre-approved contact's request gets 'subscribed' and the user's presence."""
    transition = inbound(State.named("None (pre-approved)"), "subscribe")
    assert (transition.reply, transition.presence) == ("subscribed", AVAILABLE)


def test_outbound_approval_sends_current_presence():
    """§3.1.5: approving a request is followed by the user's current presence."""
    transition = outbound(State.named("None + Pending In"), "subscribed")
    assert transition.presence == AVAILABLE


@pytest.mark.parametrize("existing", ["From", "From + Pending Out", "Both"])
def test_cancelling_a_subscription_sends_unavailable(existing):
    """§3.2.2: 'unsubscribed' to a subscribed contact is preceded by unavailable presence."""
    assert outbound(State.named(existing), "unsubscribed").presence == UNAVAILABLE


def test_denying_a_request_sends_no_presence():
    """Refusing a pending request ('unsubscribed') sends no unavailable presence."""
    assert outbound(State.named("None + Pending In"), "unsubscribed").presence is None


@pytest.mark.parametrize("existing", ["From", "Both"])
def test_inbound_unsubscribe_sends_unavailable(existing):
    """§3.3.3: a contact ending its subscription gets unavailable presence from the user."""
    assert inbound(State.named(existing), "unsubscribe").presence == UNAVAILABLE


def test_state_names_round_trip():
    """Each defined state's RFC name parses back to the same state."""
    for state in STATES:
        assert State.named(state.name) == state
        assert str(state) == state.name


def test_impossible_states_are_refused():
    """States Appendix A does not define cannot be built."""
    for kwargs in ({"subscription": "to", "pending_out": True},
                   {"subscription": "from", "pending_in": True},
                   {"subscription": "both", "approved": True},
                   {"pending_in": True, "approved": True},
                   {"subscription": "sideways"}):
        with pytest.raises(ValueError):
            State(**kwargs)


def test_unknown_stanza_type_is_refused():
    """Only the four subscription types are transitions."""
    with pytest.raises(ValueError):
        outbound(State(), "probe")
    with pytest.raises(ValueError):
        inbound(State(), "unavailable")
