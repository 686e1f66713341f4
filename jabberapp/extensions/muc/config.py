"""
XEP-0045 §10.2 room configuration: the RoomConfig value and the muc#roomconfig data form
(XEP-0004) it is shown and submitted as.
"""
from dataclasses import asdict, dataclass, fields, replace

from jabberapp.errors import StanzaError
from jabberapp.xml import element

NS_DATA = "jabber:x:data"
NS_ROOMCONFIG = "http://jabber.org/protocol/muc#roomconfig"
FIELD = f"{{{NS_DATA}}}field"
VALUE = f"{{{NS_DATA}}}value"
WHOIS = ("moderators", "anyone")


@dataclass(frozen=True)
class RoomConfig:
    """The configuration of one room; defaults are those of a new room."""

    name: str = ""
    description: str = ""
    persistent: bool = False
    public: bool = True
    members_only: bool = False
    password: str = ""          # empty: no password
    moderated: bool = False
    whois: str = "moderators"   # 'moderators' (semi-anonymous) or 'anyone' (non-anonymous)
    max_users: int = 200
    history_length: int = 20
    changesubject: bool = False  # may participants change the subject?
    allowinvites: bool = False   # may participants invite in a members-only room?

    def to_json(self):
        """A dict for storage."""
        return asdict(self)

    @classmethod
    def from_json(cls, data):
        """The RoomConfig of a stored dict (unknown keys ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


# var -> (attribute, field type, label)
_FIELDS = (
    ("muc#roomconfig_roomname", "name", "text-single", "Room title"),
    ("muc#roomconfig_roomdesc", "description", "text-single", "Description"),
    ("muc#roomconfig_persistentroom", "persistent", "boolean", "Make room persistent"),
    ("muc#roomconfig_publicroom", "public", "boolean", "List room in the directory"),
    ("muc#roomconfig_membersonly", "members_only", "boolean", "Members-only room"),
    ("muc#roomconfig_passwordprotectedroom", None, "boolean", "Password required to enter"),
    ("muc#roomconfig_roomsecret", "password", "text-private", "Password"),
    ("muc#roomconfig_moderatedroom", "moderated", "boolean", "Moderated room"),
    ("muc#roomconfig_whois", "whois", "list-single", "Who may discover real JIDs"),
    ("muc#roomconfig_maxusers", "max_users", "text-single", "Maximum number of occupants"),
    ("muc#roomconfig_historylength", "history_length", "text-single",
     "Messages of history sent on join"),
    ("muc#roomconfig_changesubject", "changesubject", "boolean",
     "Participants may change the subject"),
    ("muc#roomconfig_allowinvites", "allowinvites", "boolean",
     "Participants may invite others"),
)
_BY_VAR = {var: (attr, kind) for var, attr, kind, _ in _FIELDS}


def config_form(config):
    """The muc#roomconfig form (type 'form') filled with C{config}."""
    form = element(NS_DATA, "x", type="form")
    form.append(element(NS_DATA, "title", text="Room configuration"))
    hidden = element(NS_DATA, "field", var="FORM_TYPE", type="hidden")
    hidden.append(element(NS_DATA, "value", text=NS_ROOMCONFIG))
    form.append(hidden)
    for var, attr, kind, label in _FIELDS:
        field = element(NS_DATA, "field", var=var, type=kind, label=label)
        if attr is None:
            value = "1" if config.password else "0"
        else:
            value = getattr(config, attr)
            if isinstance(value, bool):
                value = "1" if value else "0"
            value = str(value)
        if var == "muc#roomconfig_whois":
            for option in WHOIS:
                opt = element(NS_DATA, "option", label=option.capitalize())
                opt.append(element(NS_DATA, "value", text=option))
                field.append(opt)
        field.append(element(NS_DATA, "value", text=value))
        form.append(field)
    return form


def _bool(var, values):
    value = values[0] if values else ""
    if value in ("1", "true"):
        return True
    if value in ("0", "false"):
        return False
    raise StanzaError("not-acceptable", f"{var} must be a boolean")


def _int(var, values, low, high):
    try:
        value = int(values[0])
    except (ValueError, IndexError):
        raise StanzaError("not-acceptable", f"{var} must be an integer") from None
    if not low <= value <= high:
        raise StanzaError("not-acceptable", f"{var} must be from {low} to {high}")
    return value


def apply_form(config, form, max_users, max_history):
    """
    The RoomConfig C{config} changed by the submitted form C{form} (type 'submit'). A form
    of another FORM_TYPE is bad-request; a bad value is not-acceptable. Fields the form
    leaves out keep their values; unknown fields are ignored (XEP-0004 §3.2 lets a
    submitter include only what it changes, and clients add their own).
    """
    changes = {}
    protected = None
    for field in form.iterchildren(FIELD):
        var = field.get("var")
        values = [v.text or "" for v in field.iterchildren(VALUE)]
        if var == "FORM_TYPE":
            if values != [NS_ROOMCONFIG]:
                raise StanzaError("bad-request", "FORM_TYPE must be " + NS_ROOMCONFIG)
            continue
        if var not in _BY_VAR:
            continue
        attr, kind = _BY_VAR[var]
        if kind == "boolean":
            value = _bool(var, values)
            if attr is None:
                protected = value
            else:
                changes[attr] = value
        elif attr == "max_users":
            changes[attr] = _int(var, values, 1, max_users)
        elif attr == "history_length":
            changes[attr] = _int(var, values, 0, max_history)
        elif attr == "whois":
            if len(values) != 1 or values[0] not in WHOIS:
                raise StanzaError("not-acceptable", f"{var} must be one of {', '.join(WHOIS)}")
            changes[attr] = values[0]
        else:
            if len(values) > 1:
                raise StanzaError("not-acceptable", f"{var} takes one value")
            changes[attr] = values[0] if values else ""
    new = replace(config, **changes)
    if protected is False:
        new = replace(new, password="")
    elif protected is True and not new.password:
        raise StanzaError("not-acceptable", "a password-protected room needs a password")
    return new
