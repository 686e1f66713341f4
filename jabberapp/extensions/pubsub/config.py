"""
Node configuration (XEP-0060 §8.2): the options, their defaults, and the pubsub#node_config
and pubsub#publish-options data forms (built and read with jabberapp.forms; field types as
the XEP-0060 §16.4 registry gives them).

A configuration is a dict of option name (without the ``pubsub#`` prefix) to a Python
value: booleans, ints, "max" for max_items, strings, and a list for roster_groups_allowed.
"""
from jabberapp.errors import StanzaError
from jabberapp.forms import Field, Form, FormError
from jabberapp.xml import element

NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_PUBSUB_ERRORS = "http://jabber.org/protocol/pubsub#errors"
NODE_CONFIG = "http://jabber.org/protocol/pubsub#node_config"
PUBLISH_OPTIONS = "http://jabber.org/protocol/pubsub#publish-options"

ACCESS_MODELS = ("open", "presence", "roster", "whitelist", "authorize")
PUBLISH_MODELS = ("publishers", "subscribers", "open")
SEND_LAST = ("never", "on_sub", "on_sub_and_presence")

# name -> (field type, choices, label); the types of the XEP-0060 §16.4.3 registry.
OPTIONS = {
    "title": ("text-single", None, "A friendly name for the node"),
    "access_model": ("list-single", ACCESS_MODELS, "Who may subscribe and retrieve items"),
    "publish_model": ("list-single", PUBLISH_MODELS, "Who may publish"),
    "max_items": ("text-single", None, "Most items kept (a number or 'max')"),
    "persist_items": ("boolean", None, "Keep items in storage"),
    "deliver_payloads": ("boolean", None, "Deliver payloads with event notifications"),
    "deliver_notifications": ("boolean", None, "Deliver event notifications"),
    "notify_retract": ("boolean", None, "Notify subscribers when items are retracted"),
    "notify_delete": ("boolean", None, "Notify subscribers when the node is deleted"),
    "send_last_published_item": ("list-single", SEND_LAST,
                                 "When to send the last published item"),
    "roster_groups_allowed": ("list-multi", None,
                              "Roster groups allowed (access model roster)"),
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


def _choice(choices):
    """A field convert: the value must be one of C{choices}."""
    def convert(value):
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value
    return convert


def _max_items(limit):
    """A field convert: 'max' or a number from 1 to C{limit}."""
    def convert(value):
        if value == "max":
            return "max"
        if not value or not value.isdigit() or not 1 <= int(value) <= limit:
            raise ValueError(f"must be 'max' or from 1 to {limit}")
        return int(value)
    return convert


def node_config_definition(max_items_limit, form_type=NODE_CONFIG, groups=()):
    """
    The pubsub#node_config form definition (a jabberapp.forms.Form; FORM_TYPE
    C{form_type}, e.g. PUBLISH_OPTIONS for publish-options), for a service whose nodes keep
    at most C{max_items_limit} items. C{groups} are the roster groups offered as choices
    of pubsub#roster_groups_allowed; any group name is accepted when submitted.
    """
    fields = []
    for name, (kind, choices, label) in OPTIONS.items():
        if choices is not None:
            extra = {"options": choices, "convert": _choice(choices)}
        elif name == "max_items":
            extra = {"convert": _max_items(max_items_limit)}
        elif name == "roster_groups_allowed":
            extra = {"options": tuple(groups), "convert": list}
        elif kind == "text-single":
            extra = {"convert": lambda value: value or ""}
        else:
            extra = {}
        fields.append(Field(f"pubsub#{name}", kind, label=label, **extra))
    return Form("form", form_type, fields=tuple(fields))


def read_form(x, form_type, max_items_limit, error):
    """
    The options a submitted data form C{x} sets, as a dict; raises C{error(text)} for a
    form of another FORM_TYPE, an unknown field or an invalid value (the text names the
    field). A form of type 'cancel' sets nothing.
    """
    if x.get("type") == "cancel":
        return {}
    try:
        values = node_config_definition(max_items_limit, form_type).read(
            x, unknown="error", submit_types=("submit", None))
    except FormError as e:
        raise error(str(e)) from None
    return {var[len("pubsub#"):]: value for var, value in values.items()}


def config_form(config, form_type="form", groups=()):
    """The pubsub#node_config form (type C{form_type}) showing C{config}; C{groups} (the
    owner's roster groups) are offered for pubsub#roster_groups_allowed, with the groups
    already allowed."""
    allowed = list(config.get("roster_groups_allowed") or ())
    choices = list(groups) + [g for g in allowed if g not in groups]
    definition = node_config_definition(1, groups=choices)
    values = {f"pubsub#{name}": config.get(name) for name in OPTIONS}
    values["pubsub#roster_groups_allowed"] = allowed
    return definition.filled(values, type=form_type).to_element()
