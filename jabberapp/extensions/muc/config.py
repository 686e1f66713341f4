"""
XEP-0045 §10.2 room configuration: the RoomConfig value and the muc#roomconfig data form
(XEP-0004, built and read with jabberapp.forms) it is shown and submitted as; and the
definitions of the other forms a room sends (room info, voice request, registration),
every field typed as the XEP-0045 §15.5 registry says.
"""
from dataclasses import asdict, dataclass, fields, replace

from jabberapp.forms import Field, Form, FormError

NS_ROOMCONFIG = "http://jabber.org/protocol/muc#roomconfig"
NS_ROOMINFO = "http://jabber.org/protocol/muc#roominfo"
NS_MUC_REQUEST = "http://jabber.org/protocol/muc#request"
NS_MUC_REGISTER = "http://jabber.org/protocol/muc#register"
WHOIS = ("moderators", "anyone")
# muc#roomconfig_maxusers is a list-single: the choices offered (up to the service's
# maximum, which is offered too, as is the room's current value), as ejabberd offers them.
# Any other number within the maximum is accepted when submitted.
MAX_USERS_CHOICES = (5, 10, 20, 30, 50, 100, 200, 500, 1000, 2000, 5000)


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


# (var, RoomConfig attribute, field type, label); types from the XEP-0045 §15.5.3 registry.
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
    ("muc#roomconfig_maxusers", "max_users", "list-single", "Maximum number of occupants"),
    # Not in the registry; Prosody's name and type for the same setting.
    ("muc#roomconfig_historylength", "history_length", "text-single",
     "Messages of history sent on join"),
    ("muc#roomconfig_changesubject", "changesubject", "boolean",
     "Participants may change the subject"),
    ("muc#roomconfig_allowinvites", "allowinvites", "boolean",
     "Participants may invite others"),
)
_ATTRS = {var: attr for var, attr, _, _ in _FIELDS}


def _integer(low, high):
    """A field convert: the value as an integer from C{low} to C{high}."""
    def convert(value):
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ValueError("must be an integer") from None
        if not low <= number <= high:
            raise ValueError(f"must be from {low} to {high}")
        return number
    return convert


def _whois(value):
    if value not in WHOIS:
        raise ValueError(f"must be one of {', '.join(WHOIS)}")
    return value


def config_definition(max_users, max_history, current_users=None):
    """
    The muc#roomconfig form definition (a jabberapp.forms.Form) for a service whose
    rooms hold at most C{max_users} occupants and C{max_history} messages of history;
    C{current_users} is offered among the maxusers choices too.
    """
    users = sorted({n for n in MAX_USERS_CHOICES if n < max_users} | {max_users}
                   | ({current_users} if current_users else set()))
    special = {
        "muc#roomconfig_whois": {"options": tuple((o, o.capitalize()) for o in WHOIS),
                                 "convert": _whois},
        "muc#roomconfig_maxusers": {"options": tuple(str(n) for n in users),
                                    "convert": _integer(1, max_users)},
        "muc#roomconfig_historylength": {"convert": _integer(0, max_history)},
    }
    return Form("form", NS_ROOMCONFIG, title="Room configuration", fields=tuple(
        Field(var, kind, label=label, **special.get(var, {}))
        for var, _, kind, label in _FIELDS))


def config_form(config, max_users=None, max_history=1000):
    """The muc#roomconfig form (type 'form') filled with C{config}; C{max_users} is the
    service's maximum (default: the room's own), which bounds the maxusers choices."""
    definition = config_definition(max(max_users or 0, config.max_users), max_history,
                                   config.max_users)
    values = {var: (bool(config.password) if attr is None else getattr(config, attr))
              for var, attr, _, _ in _FIELDS}
    return definition.filled(values).to_element()


def apply_form(config, form, max_users, max_history):
    """
    The RoomConfig C{config} changed by the submitted form C{form} (type 'submit'). A form
    of another FORM_TYPE is bad-request; a bad value is not-acceptable. Fields the form
    leaves out keep their values; unknown fields are ignored (XEP-0004 §3.2 lets a
    submitter include only what it changes, and clients add their own).
    """
    try:
        submitted = config_definition(max_users, max_history).read(form)
    except FormError as e:
        raise e.stanza_error() from None
    changes = {_ATTRS[var]: ("" if value is None else value)
               for var, value in submitted.items() if _ATTRS[var] is not None}
    protected = submitted.get("muc#roomconfig_passwordprotectedroom")
    new = replace(config, **changes)
    if protected is False:
        new = replace(new, password="")
    elif protected is True and not new.password:
        raise FormError("muc#roomconfig_roomsecret",
                        "a password-protected room needs a password").stanza_error()
    return new


def room_info_form(config, occupants, subject):
    """The muc#roominfo form (XEP-0045 §6.4, type 'result') of a room with C{config},
    C{occupants} occupants and the subject C{subject}."""
    return Form("result", NS_ROOMINFO, fields=(
        Field("muc#roominfo_description", "text-single", label="Description",
              values=(config.description,)),
        Field("muc#roominfo_occupants", "text-single", label="Number of occupants",
              values=(str(occupants),)),
        Field("muc#roominfo_subject", "text-single", label="Subject",
              values=(subject or "",)),
    )).to_element()


def voice_request_form(jid, nick):
    """XEP-0045 §8.6: the muc#request form moderators get for a visitor's voice request."""
    return Form("form", NS_MUC_REQUEST, title="Voice request", instructions=(
        "To approve this request for voice, select the \"Grant voice to this person?\" "
        "checkbox and submit the form. To skip this request, cancel it."), fields=(
        Field("muc#role", "list-single", label="Requested role",
              options=(("participant", "Participant"),), values=("participant",)),
        Field("muc#jid", "jid-single", label="User ID", values=(str(jid),)),
        Field("muc#roomnick", "text-single", label="Room Nickname", values=(nick,)),
        Field("muc#request_allow", "boolean", label="Grant voice to this person?",
              values=("false",)),
    )).to_element()


def register_form(room_jid):
    """XEP-0045 §7.10: the muc#register form to reserve a nickname in the room."""
    return Form("form", NS_MUC_REGISTER, title=f"Registration with {room_jid}", fields=(
        Field("muc#register_roomnick", "text-single", label="Desired Nickname",
              required=True),
    )).to_element()
