"""
The data forms of subscriptions: pubsub#subscribe_options (XEP-0060 §6.3) and
pubsub#subscribe_authorization (§8.6).

Subscription options are a dict: ``deliver`` (bool; false silences the subscription) and
``show_values`` (sorted list of presence states; absent or empty: no filtering). No other
option is supported: a form setting one is refused with <bad-request/><invalid-options/>.
"""
from jabberapp.errors import StanzaError
from jabberapp.extensions.pubsub.config import NS_DATA, find_form, pubsub_error
from jabberapp.xml import element

SUBSCRIBE_OPTIONS = "http://jabber.org/protocol/pubsub#subscribe_options"
SUBSCRIBE_AUTHORIZATION = "http://jabber.org/protocol/pubsub#subscribe_authorization"
SHOW_VALUES = ("away", "chat", "dnd", "online", "xa")


def read_subscribe_options(parent):
    """The options a pubsub#subscribe_options form in C{parent} sets (§6.3.5)."""
    form = find_form(parent)
    if form is None:
        raise pubsub_error("bad-request", "invalid-options", text="No options form")
    options = {}
    for field in form.iterchildren(f"{{{NS_DATA}}}field"):
        var = field.get("var")
        value = field.findtext(f"{{{NS_DATA}}}value") or ""
        if var == "FORM_TYPE":
            if value != SUBSCRIBE_OPTIONS:
                raise pubsub_error("bad-request", "invalid-options")
        elif var == "pubsub#deliver" and value in ("1", "true", "0", "false"):
            options["deliver"] = value in ("1", "true")
        elif var == "pubsub#show-values":
            shows = [v.text or "" for v in field.iterchildren(f"{{{NS_DATA}}}value")]
            if not set(shows) <= set(SHOW_VALUES):
                raise pubsub_error("bad-request", "invalid-options",
                                   text="Unknown presence state in pubsub#show-values")
            options["show_values"] = sorted(set(shows))
        else:
            raise pubsub_error("bad-request", "invalid-options",
                               text=f"Unsupported option {var!r}")
    return options


def subscribe_options_form(options):
    """The pubsub#subscribe_options form showing a subscription's C{options}."""
    x = element(NS_DATA, "x", type="form")
    hidden = element(NS_DATA, "field", var="FORM_TYPE", type="hidden")
    hidden.append(element(NS_DATA, "value", text=SUBSCRIBE_OPTIONS))
    x.append(hidden)
    field = element(NS_DATA, "field", var="pubsub#deliver", type="boolean",
                    label="Enable delivery?")
    field.append(element(NS_DATA, "value", text="1" if options.get("deliver", True) else "0"))
    x.append(field)
    field = element(NS_DATA, "field", var="pubsub#show-values", type="list-multi",
                    label="Receive notifications only when your presence is one of "
                          "these (none: always)")
    for show in SHOW_VALUES:
        option = element(NS_DATA, "option")
        option.append(element(NS_DATA, "value", text=show))
        field.append(option)
    for show in options.get("show_values") or ():
        field.append(element(NS_DATA, "value", text=show))
    x.append(field)
    return x


def authorization_form(node, jid, subid):
    """The subscription authorization form of XEP-0060 §8.6 for C{jid}'s request."""
    x = element(NS_DATA, "x", type="form")
    x.append(element(NS_DATA, "title", text="PubSub subscriber request"))
    x.append(element(NS_DATA, "instructions",
                     text="To approve this entity's subscription request, set "
                          "pubsub#allow to true; to deny it, set it to false."))
    for var, type_, label, value in (
            ("FORM_TYPE", "hidden", None, SUBSCRIBE_AUTHORIZATION),
            ("pubsub#subid", "hidden", None, subid),
            ("pubsub#node", "text-single", "Node ID", node),
            ("pubsub#subscriber_jid", "jid-single", "Subscriber Address", str(jid)),
            ("pubsub#allow", "boolean",
             "Allow this JID to subscribe to this pubsub node?", "false")):
        field = element(NS_DATA, "field", var=var, type=type_, label=label)
        field.append(element(NS_DATA, "value", text=value))
        x.append(field)
    return x


def find_authorization(message):
    """The subscription authorization form in C{message}, or None."""
    for x in message.iterchildren(f"{{{NS_DATA}}}x"):
        for field in x.iterchildren(f"{{{NS_DATA}}}field"):
            if (field.get("var") == "FORM_TYPE" and field.findtext(
                    f"{{{NS_DATA}}}value") == SUBSCRIBE_AUTHORIZATION):
                return x
    return None


def read_authorization(x):
    """(node, subscriber JID text, allow, subid or None) of a submitted authorization form
    C{x}; StanzaError when it is not a well-formed submission."""
    values = {}
    for field in x.iterchildren(f"{{{NS_DATA}}}field"):
        values[field.get("var")] = field.findtext(f"{{{NS_DATA}}}value") or ""
    allow = values.get("pubsub#allow")
    if (x.get("type") != "submit" or allow not in ("1", "true", "0", "false")
            or not values.get("pubsub#node") or not values.get("pubsub#subscriber_jid")):
        raise StanzaError("bad-request", "Malformed subscription authorization form")
    return (values["pubsub#node"], values["pubsub#subscriber_jid"], allow in ("1", "true"),
            values.get("pubsub#subid"))
