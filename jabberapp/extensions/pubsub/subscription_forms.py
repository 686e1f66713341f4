"""
The data forms of subscriptions: pubsub#subscribe_options (XEP-0060 §6.3) and
pubsub#subscribe_authorization (§8.6), defined, built and read with L{jabberapp.forms}.

Subscription options are a dict: ``deliver`` (bool; false silences the subscription) and
``show_values`` (sorted list of presence states; absent or empty: no filtering). No other
option is supported: a form setting one is refused with <bad-request/><invalid-options/>.
"""
from jabberapp import forms
from jabberapp.errors import StanzaError
from jabberapp.extensions.pubsub.config import pubsub_error
from jabberapp.forms import Field, Form, FormError

SUBSCRIBE_OPTIONS = "http://jabber.org/protocol/pubsub#subscribe_options"
SUBSCRIBE_AUTHORIZATION = "http://jabber.org/protocol/pubsub#subscribe_authorization"
SHOW_VALUES = ("away", "chat", "dnd", "online", "xa")
MALFORMED = "Malformed subscription authorization form"

OPTIONS_FORM = Form("form", SUBSCRIBE_OPTIONS, fields=(
    Field("pubsub#deliver", "boolean", label="Enable delivery?"),
    Field("pubsub#show-values", "list-multi", options=SHOW_VALUES,
          label="Receive notifications only when your presence is one of these "
                "(none: always)"),
))
AUTHORIZATION_FORM = Form(
    "form", SUBSCRIBE_AUTHORIZATION, title="PubSub subscriber request",
    instructions=("To approve this entity's subscription request, set pubsub#allow to "
                  "true; to deny it, set it to false.",),
    fields=(
        Field("pubsub#subid", "hidden"),
        Field("pubsub#node", "text-single", label="Node ID"),
        Field("pubsub#subscriber_jid", "jid-single", label="Subscriber Address"),
        # Offered as 'false', as in §8.6's example.
        Field("pubsub#allow", "boolean", values=("false",),
              label="Allow this JID to subscribe to this pubsub node?"),
    ))


def read_subscribe_options(parent):
    """The options a pubsub#subscribe_options form in C{parent} sets (§6.3.5)."""
    x = forms.find_form(parent)
    if x is None:
        raise pubsub_error("bad-request", "invalid-options", text="No options form")
    try:
        # Whatever the form's type says, as before: clients differ.
        values = OPTIONS_FORM.read(x, unknown="error",
                                   submit_types=forms.FORM_TYPES + (None,))
    except FormError as e:
        raise pubsub_error("bad-request", "invalid-options", text=str(e)) from None
    options = {}
    if "pubsub#deliver" in values:
        options["deliver"] = values["pubsub#deliver"]
    if "pubsub#show-values" in values:
        options["show_values"] = sorted(set(values["pubsub#show-values"]))
    return options


def subscribe_options_form(options):
    """The pubsub#subscribe_options form showing a subscription's C{options}."""
    return OPTIONS_FORM.filled({
        "pubsub#deliver": options.get("deliver", True),
        "pubsub#show-values": options.get("show_values") or (),
    }).to_element()


def authorization_form(node, jid, subid):
    """The subscription authorization form of XEP-0060 §8.6 for C{jid}'s request."""
    return AUTHORIZATION_FORM.filled({
        "pubsub#subid": subid, "pubsub#node": node, "pubsub#subscriber_jid": jid,
    }).to_element()


def find_authorization(message):
    """The subscription authorization form in C{message}, or None."""
    return forms.find_form(message, SUBSCRIBE_AUTHORIZATION)


def read_authorization(x):
    """
    (node, subscriber JID, allow, subid) of a submitted authorization form C{x}. The subid
    is None when the form has none, '' when its field is empty (it matches no request).
    StanzaError when it is not a well-formed submission.
    """
    try:
        values = AUTHORIZATION_FORM.read(x)
    except FormError as e:
        if e.var == "pubsub#subscriber_jid":
            raise StanzaError("jid-malformed") from None
        raise StanzaError("bad-request", MALFORMED) from None
    if (values.get("pubsub#allow") is None or not values.get("pubsub#node")
            or not values.get("pubsub#subscriber_jid")):
        raise StanzaError("bad-request", MALFORMED)
    subid = values.get("pubsub#subid")
    if subid is None and "pubsub#subid" in values:
        subid = ""
    return (values["pubsub#node"], values["pubsub#subscriber_jid"], values["pubsub#allow"],
            subid)
