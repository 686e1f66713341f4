"""
Node configuration (XEP-0060 §8.2): the options, their defaults, and the pubsub#node_config
and pubsub#publish-options data forms.

A configuration is a dict of option name (without the ``pubsub#`` prefix) to a Python
value: booleans, ints, "max" for max_items, strings, and a list for roster_groups_allowed.
"""
from jabberapp.errors import StanzaError
from jabberapp.xml import element

NS_DATA = "jabber:x:data"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_PUBSUB_ERRORS = "http://jabber.org/protocol/pubsub#errors"
NODE_CONFIG = "http://jabber.org/protocol/pubsub#node_config"
PUBLISH_OPTIONS = "http://jabber.org/protocol/pubsub#publish-options"

ACCESS_MODELS = ("open", "presence", "roster", "whitelist", "authorize")
PUBLISH_MODELS = ("publishers", "subscribers", "open")
SEND_LAST = ("never", "on_sub", "on_sub_and_presence")

# name -> (kind, choices, label); kind is bool, int (max_items), list-single, text, list
OPTIONS = {
    "title": ("text", None, "A friendly name for the node"),
    "access_model": ("list-single", ACCESS_MODELS, "Who may subscribe and retrieve items"),
    "publish_model": ("list-single", PUBLISH_MODELS, "Who may publish"),
    "max_items": ("max_items", None, "Most items kept (a number or 'max')"),
    "persist_items": ("bool", None, "Keep items in storage"),
    "deliver_payloads": ("bool", None, "Deliver payloads with event notifications"),
    "deliver_notifications": ("bool", None, "Deliver event notifications"),
    "notify_retract": ("bool", None, "Notify subscribers when items are retracted"),
    "notify_delete": ("bool", None, "Notify subscribers when the node is deleted"),
    "send_last_published_item": ("list-single", SEND_LAST,
                                 "When to send the last published item"),
    "roster_groups_allowed": ("list", None, "Roster groups allowed (access model roster)"),
}

SERVICE_DEFAULTS = {
    "title": "", "access_model": "open", "publish_model": "publishers", "max_items": 10,
    "persist_items": True, "deliver_payloads": True, "deliver_notifications": True,
    "notify_retract": True, "notify_delete": True, "send_last_published_item": "never",
    "roster_groups_allowed": [],
}
PEP_DEFAULTS = dict(SERVICE_DEFAULTS, access_model="presence", max_items=1,
                    send_last_published_item="on_sub_and_presence")


def pubsub_error(condition, app=None, text=None, **attrs):
    """A StanzaError with the pubsub#errors application condition C{app}."""
    app_condition = element(NS_PUBSUB_ERRORS, app, **attrs) if app else None
    return StanzaError(condition, text, app_condition=app_condition)


def unsupported(feature, condition="feature-not-implemented"):
    """<feature-not-implemented/><unsupported feature='...'/> (XEP-0060 §7-8)."""
    return pubsub_error(condition, "unsupported", feature=feature)


def parse_value(name, values, max_items_limit, error):
    """The Python value of option C{name} from the form's C{values}; raises C{error()}."""
    kind, choices, _ = OPTIONS[name]
    if kind == "list":
        return list(values)
    value = values[0] if values else ""
    if kind == "bool":
        if value in ("1", "true"):
            return True
        if value in ("0", "false"):
            return False
        raise error(f"pubsub#{name} must be a boolean")
    if kind == "max_items":
        if value == "max":
            return "max"
        if not value.isdigit() or not 1 <= int(value) <= max_items_limit:
            raise error(f"pubsub#max_items must be 'max' or from 1 to {max_items_limit}")
        return int(value)
    if choices is not None and value not in choices:
        raise error(f"pubsub#{name} must be one of {', '.join(choices)}")
    return value


def read_form(x, form_type, max_items_limit, error):
    """
    The options a submitted data form C{x} sets, as a dict; raises C{error(text)} for a
    form of another FORM_TYPE, an unknown field or an invalid value. A form of type
    'cancel' sets nothing.
    """
    if x.get("type") == "cancel":
        return {}
    if x.get("type") not in ("submit", None):
        raise error("The form must be of type submit")
    options = {}
    seen_type = None
    for field in x.iterchildren(f"{{{NS_DATA}}}field"):
        var = field.get("var")
        values = [v.text or "" for v in field.iterchildren(f"{{{NS_DATA}}}value")]
        if var == "FORM_TYPE":
            seen_type = values[0] if values else ""
            continue
        if not var or not var.startswith("pubsub#") or var[7:] not in OPTIONS:
            raise error(f"Unsupported field {var!r}")
        options[var[7:]] = parse_value(var[7:], values, max_items_limit, error)
    if seen_type is not None and seen_type != form_type:
        raise error(f"The FORM_TYPE must be {form_type}")
    return options


def config_form(config, form_type="form"):
    """The pubsub#node_config form (type C{form_type}) showing C{config}."""
    x = element(NS_DATA, "x", type=form_type)
    hidden = element(NS_DATA, "field", var="FORM_TYPE", type="hidden")
    hidden.append(element(NS_DATA, "value", text=NODE_CONFIG))
    x.append(hidden)
    for name, (kind, choices, label) in OPTIONS.items():
        field_type = {"bool": "boolean", "max_items": "text-single", "text": "text-single",
                      "list": "text-multi"}.get(kind, kind)
        field = element(NS_DATA, "field", var=f"pubsub#{name}", type=field_type, label=label)
        value = config.get(name)
        if kind == "list":
            for item in value or []:
                field.append(element(NS_DATA, "value", text=item))
        else:
            text = ("1" if value else "0") if kind == "bool" else str(value)
            field.append(element(NS_DATA, "value", text=text))
        for choice in choices or ():
            option = element(NS_DATA, "option")
            option.append(element(NS_DATA, "value", text=choice))
            field.append(option)
        x.append(field)
    return x


def find_form(parent):
    """The jabber:x:data <x/> child of C{parent}, or None."""
    return None if parent is None else parent.find(f"{{{NS_DATA}}}x")
