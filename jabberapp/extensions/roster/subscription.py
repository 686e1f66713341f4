"""
RFC 6121 Appendix A: the presence subscription state machine, as pure functions.

A user's subscription state with one contact is a L{State}: the 'subscription' value
('none', 'to', 'from', 'both'), whether the user's own request is pending (pending out, the
roster's ask='subscribe'), whether the contact's request is pending (pending in, kept outside
the roster item), and whether the user pre-approved the contact (§3.4, approved='true').

L{outbound} answers "the user sent a subscription stanza to the contact" (Appendix A.2) and
L{inbound} "a subscription stanza from the contact arrived for the user" (Appendix A.3), each
with a L{Transition}: the new state and what the server must do about it. Nothing here does
I/O, so every row of the RFC's tables is checked by a unit test.

The side effects that are not in the tables come from the sections they summarise:

- outbound 'subscribed' that approves a pending request: the user's current presence goes
  to the contact (§3.1.5); without a pending request it is a pre-approval (§3.4), noted
  and not routed;
- outbound 'unsubscribed' that cancels the contact's subscription: unavailable presence
  from each available resource goes first (§3.2.2); without a subscription it cancels a
  pre-approval;
- inbound 'subscribe' when the contact is already subscribed: auto-reply 'subscribed'
  (A.3.1 note) and send the current presence (as Prosody does); when pre-approved: approve
  automatically, not delivered (§3.4);
- inbound 'unsubscribe' that ends the contact's subscription: unavailable presence from
  each available resource to the contact (§3.3.3).
"""
from dataclasses import dataclass, replace

NONE, TO, FROM, BOTH = "none", "to", "from", "both"
SUBSCRIPTIONS = (NONE, TO, FROM, BOTH)
SUBSCRIPTION_TYPES = frozenset({"subscribe", "subscribed", "unsubscribe", "unsubscribed"})

AVAILABLE = "available"      # Transition.presence: send the user's current presence
UNAVAILABLE = "unavailable"  # Transition.presence: send unavailable from each resource


@dataclass(frozen=True)
class State:
    """One of the defined states of RFC 6121 Appendix A.1, plus the pre-approval flag."""

    subscription: str = NONE
    pending_out: bool = False
    pending_in: bool = False
    approved: bool = False

    def __post_init__(self):
        if self.subscription not in SUBSCRIPTIONS:
            raise ValueError(f"unknown subscription {self.subscription!r}")
        if self.pending_out and self.subscription in (TO, BOTH):
            raise ValueError("pending out with a subscription to the contact")
        if self.pending_in and self.subscription in (FROM, BOTH):
            raise ValueError("pending in with a subscription from the contact")
        if self.approved and (self.subscription in (FROM, BOTH) or self.pending_in):
            raise ValueError("a pre-approval with a subscription or request from the contact")

    @property
    def has_to(self):
        """The user receives the contact's presence ('to' or 'both')."""
        return self.subscription in (TO, BOTH)

    @property
    def has_from(self):
        """The contact receives the user's presence ('from' or 'both')."""
        return self.subscription in (FROM, BOTH)

    @property
    def visible(self):
        """What a roster item shows of this state: subscription, ask, approved."""
        return (self.subscription, self.pending_out, self.approved)

    @property
    def name(self):
        """The RFC's name of the state, e.g. 'None + Pending Out+In'."""
        name = self.subscription.capitalize()
        if self.pending_out and self.pending_in:
            name += " + Pending Out+In"
        elif self.pending_out:
            name += " + Pending Out"
        elif self.pending_in:
            name += " + Pending In"
        if self.approved:
            name += " (pre-approved)"
        return name

    @classmethod
    def named(cls, name):
        """The state the RFC calls C{name} (the inverse of L{name})."""
        approved = name.endswith(" (pre-approved)")
        if approved:
            name = name[:-len(" (pre-approved)")]
        subscription, _, pending = name.partition(" + ")
        return cls(subscription.lower(), pending in ("Pending Out", "Pending Out+In"),
                   pending in ("Pending In", "Pending Out+In"), approved)

    def __str__(self):
        return self.name


#: The nine defined states of RFC 6121 Appendix A.1, in the RFC's order.
STATES = tuple(State.named(name) for name in (
    "None", "None + Pending Out", "None + Pending In", "None + Pending Out+In", "To",
    "To + Pending In", "From", "From + Pending Out", "Both"))


@dataclass(frozen=True)
class Transition:
    """
    The outcome of one subscription stanza.

    C{forward}: route the stanza to the contact (outbound) or deliver it to the user
    (inbound). C{push}: the roster item changed visibly, so interested resources get a roster
    push. C{reply}: the presence type the server sends to the contact on the user's behalf
    (inbound only). C{presence}: AVAILABLE to send the user's current presence to the contact
    (after the stanza), UNAVAILABLE to send unavailable presence from each of the user's
    available resources (before it).
    """

    old: State
    state: State
    forward: bool
    reply: str | None = None
    presence: str | None = None

    @property
    def changed(self):
        """The state (including pending in) changed: it has to be stored."""
        return self.old != self.state

    @property
    def push(self):
        """The roster item changed in what it shows: a roster push is due."""
        return self.old.visible != self.state.visible


def _less_from(subscription):
    return {FROM: NONE, BOTH: TO}.get(subscription, subscription)


def _less_to(subscription):
    return {TO: NONE, BOTH: FROM}.get(subscription, subscription)


def _plus_from(subscription):
    return {NONE: FROM, TO: BOTH}.get(subscription, subscription)


def _plus_to(subscription):
    return {NONE: TO, FROM: BOTH}.get(subscription, subscription)


def outbound(state, kind):
    """The user sent C{kind} ('subscribe', ...) to the contact: RFC 6121 Appendix A.2."""
    if kind == "subscribe":
        # A.2.1: always routed; pending out unless already subscribed to the contact.
        new = state if state.has_to else replace(state, pending_out=True)
        return Transition(state, new, forward=True)
    if kind == "subscribed":
        if state.pending_in:
            # A.2.2: approving the contact's request (§3.1.5).
            new = replace(state, subscription=_plus_from(state.subscription),
                          pending_in=False, approved=False)
            return Transition(state, new, forward=True, presence=AVAILABLE)
        if not state.has_from:
            # No request to approve: a pre-approval (§3.4), not routed.
            return Transition(state, replace(state, approved=True), forward=False)
        return Transition(state, state, forward=False)
    if kind == "unsubscribe":
        # A.2.3: always routed.
        new = replace(state, subscription=_less_to(state.subscription), pending_out=False)
        return Transition(state, new, forward=True)
    if kind == "unsubscribed":
        if state.pending_in or state.has_from:
            # A.2.4: cancelling (or denying) the contact's subscription (§3.2.2).
            new = replace(state, subscription=_less_from(state.subscription),
                          pending_in=False)
            return Transition(state, new, forward=True,
                              presence=UNAVAILABLE if state.has_from else None)
        if state.approved:
            # Cancelling a pre-approval (§3.4): noted, not routed.
            return Transition(state, replace(state, approved=False), forward=False)
        return Transition(state, state, forward=False)
    raise ValueError(f"not a subscription type: {kind!r}")


def inbound(state, kind):
    """The contact sent C{kind} to the user: RFC 6121 Appendix A.3."""
    if kind == "subscribe":
        if state.has_from:
            # A.3.1 note: already subscribed -- auto-reply, do not bother the user.
            return Transition(state, state, forward=False, reply="subscribed",
                              presence=AVAILABLE)
        if state.pending_in:
            return Transition(state, state, forward=False)
        if state.approved:
            # §3.4: pre-approved -- approve on the user's behalf, do not deliver.
            new = replace(state, subscription=_plus_from(state.subscription), approved=False)
            return Transition(state, new, forward=False, reply="subscribed",
                              presence=AVAILABLE)
        return Transition(state, replace(state, pending_in=True), forward=True)
    if kind == "subscribed":
        if state.pending_out:
            new = replace(state, subscription=_plus_to(state.subscription), pending_out=False)
            return Transition(state, new, forward=True)
        return Transition(state, state, forward=False)
    if kind == "unsubscribe":
        if state.pending_in or state.has_from:
            new = replace(state, subscription=_less_from(state.subscription),
                          pending_in=False)
            return Transition(state, new, forward=True,
                              presence=UNAVAILABLE if state.has_from else None)
        return Transition(state, state, forward=False)
    if kind == "unsubscribed":
        if state.pending_out or state.has_to:
            new = replace(state, subscription=_less_to(state.subscription),
                          pending_out=False)
            return Transition(state, new, forward=True)
        return Transition(state, state, forward=False)
    raise ValueError(f"not a subscription type: {kind!r}")
