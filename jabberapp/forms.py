"""
XEP-0004: Data Forms -- build, parse and validate <x xmlns='jabber:x:data'/>, in one place.

Every extension that speaks forms (disco extended information, caps hashing, MUC room
configuration, pubsub configuration and publish-options, contact addresses, later ad-hoc
commands) uses this module; nothing else spells the namespace.

The values
  L{Field} is one <field/>: its var, its type (one of FIELD_TYPES; None when the wire left
  it out, which XEP-0004 §3.3 reads as text-single), label, desc, required, the
  <option/>s offered (value, label) and its values as the strings on the wire. L{Form} is
  one <x/>: its type (form, submit, cancel, result), FORM_TYPE (the hidden field XEP-0068
  names, kept apart from the other fields), title, instructions and fields. Both are frozen.

Building (a form the server sends)
    form = Form("form", NS_ROOMCONFIG, title="Room configuration", fields=(
        Field("muc#roomconfig_persistentroom", "boolean", label="Persistent"),
        Field("muc#roomconfig_maxusers", "list-single", options=("10", "20", "none")),
    ))
    x = form.filled({"muc#roomconfig_persistentroom": True,
                     "muc#roomconfig_maxusers": 20}).to_element()

  C{filled()} turns Python values into wire strings by each field's type (L{encode}):
  bool for boolean, a str (or anything with str()) for the single types, an iterable for
  the -multi types, JIDs or strings for the jid- types; None leaves a field without value.
  C{result_form(form_type, {var: value})} is the shortcut for XEP-0128 style results.

Parsing (any form that arrives)
  C{parse(x)} is the L{Form} of an <x/> element, values as strings, no check beyond the
  shape (ValueError for an element that is not an <x/> of this namespace).
  C{find_form(parent, form_type=None)} finds the <x/> child (of that FORM_TYPE),
  C{form_type_of(x)} reads the FORM_TYPE of an element, C{Form.values()} is var -> list of
  strings; C{extended_info(x)} reads a disco#info form as caps hashes it (XEP-0115 §5.4).

Validating a submission against a definition (a form the server offered)
    try:
        changes = definition.read(x)        # {var: Python value} of the submitted fields
    except FormError as e:
        raise e.stanza_error()              # <not-acceptable/> naming e.var and e.reason

  C{Form.read(x, unknown="ignore", submit_types=("submit",))} checks the form's type, its
  FORM_TYPE (bad-request when another; absent is accepted), then each submitted field by
  the type the definition declares (L{Field.decode}): booleans are 0/1/false/true, single
  types carry at most one value, list types only values among the options, jid types
  valid JIDs (returned as L{JID}), required fields present. A field's C{convert} callable
  runs last on the typed value and may replace it or raise ValueError(reason) -- for an
  integer range, or for a list-single that also accepts values it does not list. Fields
  the submitter left out are not in the result (XEP-0004 §3.2 lets it send only what it
  changes); fields the definition does not know are ignored, or refused with
  unknown="error". Every refusal is a L{FormError} carrying the field's var (None for the
  form as a whole), the reason, and the stanza error condition protocol code answers:
  'not-acceptable' for a bad value, 'bad-request' for a form of the wrong shape, type or
  FORM_TYPE. C{FormError.stanza_error(app_condition=None)} builds that StanzaError.

Not here (yet): multi-item results (<reported/> and <item/>, XEP-0004 §3.4), media
(XEP-0221) and validation (XEP-0122) elements; they are left out when parsing.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field as _dataclass_field
from typing import Any, Callable

from lxml import etree

from jabberapp.errors import StanzaError
from jabberapp.jid import InvalidJID, JID
from jabberapp.xml import element

NS_DATA_FORMS = "jabber:x:data"
FORM_TYPE = "FORM_TYPE"
X = f"{{{NS_DATA_FORMS}}}x"

FIELD_TYPES = ("boolean", "fixed", "hidden", "jid-multi", "jid-single", "list-multi",
               "list-single", "text-multi", "text-private", "text-single")
FORM_TYPES = ("form", "submit", "cancel", "result")
MULTI_TYPES = frozenset({"jid-multi", "list-multi", "text-multi"})
TRUE, FALSE = ("1", "true"), ("0", "false")

_FIELD = f"{{{NS_DATA_FORMS}}}field"
_VALUE = f"{{{NS_DATA_FORMS}}}value"
_OPTION = f"{{{NS_DATA_FORMS}}}option"


class FormError(ValueError):
    """
    A form refused: C{var} names the field at fault (None for the form as a whole),
    C{reason} says why, C{condition} is the stanza error condition to answer with
    ('not-acceptable' for a bad value, 'bad-request' for a malformed form).
    """

    def __init__(self, var: str | None, reason: str, condition: str = "not-acceptable"):
        super().__init__(f"{var}: {reason}" if var else reason)
        self.var = var
        self.reason = reason
        self.condition = condition

    def stanza_error(self, app_condition=None) -> StanzaError:
        """The StanzaError protocol code raises for this refusal (text names the field)."""
        return StanzaError(self.condition, str(self), app_condition=app_condition)


@dataclass(frozen=True)
class Field:
    """
    One <field/>. C{options} are (value, label) pairs (a plain string is a value without
    label); C{values} the wire strings; C{convert} (definitions only, never on the wire)
    is applied to the typed value of a submission, see L{decode}.
    """

    var: str | None
    type: str | None = "text-single"
    label: str | None = None
    desc: str | None = None
    required: bool = False
    options: tuple = ()
    values: tuple = ()
    convert: Callable[[Any], Any] | None = _dataclass_field(default=None, compare=False,
                                                              repr=False)

    def __post_init__(self):
        if self.type is not None and self.type not in FIELD_TYPES:
            raise ValueError(f"unknown data form field type {self.type!r}")
        if self.var is None and self.type != "fixed":
            raise ValueError("only a fixed field may have no var")
        options = tuple((o, None) if isinstance(o, str) else (str(o[0]), o[1])
                        for o in self.options)
        object.__setattr__(self, "options", options)
        object.__setattr__(self, "values", tuple(self.values))

    @property
    def value(self) -> str | None:
        """The first wire value, or None."""
        return self.values[0] if self.values else None

    def with_value(self, value) -> Field:
        """This field holding the Python C{value}, encoded by the field's type."""
        return dataclasses.replace(self, values=encode(self.type, value))

    def decode(self, values: Iterable[str] | None = None):
        """
        The Python value of C{values} (default: this field's own) read as this field's
        type: bool, str (None when a single field has no value), a tuple of str for
        list-multi and text-multi, JID / tuple of JIDs for the jid types; then C{convert}.
        FormError naming the field when a value does not fit.
        """
        values = self.values if values is None else tuple(values)
        kind = self.type or "text-single"
        if kind not in MULTI_TYPES and len(values) > 1:
            raise FormError(self.var, "takes one value")
        if kind == "boolean":
            if len(values) != 1 or values[0] not in TRUE + FALSE:
                raise FormError(self.var, "must be a boolean (0, 1, false or true)")
            value = values[0] in TRUE
        elif kind in ("jid-single", "jid-multi"):
            try:
                value = tuple(JID.parse(v) for v in values)
            except InvalidJID:
                raise FormError(self.var, "must be a valid JID") from None
            if kind == "jid-single":
                value = value[0] if value else None
        else:
            if kind in ("list-single", "list-multi") and self.convert is None:
                allowed = {option for option, _ in self.options}
                for v in values:
                    if v not in allowed:
                        raise FormError(self.var,
                                        f"must be one of {', '.join(sorted(allowed))}")
            value = values if kind in MULTI_TYPES else (values[0] if values else None)
        if self.convert is not None:
            try:
                value = self.convert(value)
            except (ValueError, TypeError) as e:
                raise FormError(self.var, str(e) or "has a value that does not fit") from None
        return value

    def to_element(self):
        """The <field/> element (children in XEP-0004 schema order)."""
        field = element(NS_DATA_FORMS, "field", var=self.var, type=self.type,
                        label=self.label)
        if self.desc is not None:
            _sub(field, "desc", self.desc)
        if self.required:
            _sub(field, "required")
        for value in self.values:
            _sub(field, "value", value)
        for value, label in self.options:
            option = _sub(field, "option")
            if label is not None:
                option.set("label", label)
            _sub(option, "value", value)
        return field


@dataclass(frozen=True)
class Form:
    """One <x xmlns='jabber:x:data'/>: a form to fill, a submission, a cancel, a result."""

    type: str = "form"
    form_type: str | None = None      # the hidden FORM_TYPE field's value; None: no field
    fields: tuple = ()
    title: str | None = None
    instructions: tuple = ()

    def __post_init__(self):
        if self.type not in FORM_TYPES:
            raise ValueError(f"unknown data form type {self.type!r}")
        object.__setattr__(self, "fields", tuple(self.fields))
        instructions = ((self.instructions,) if isinstance(self.instructions, str)
                        else tuple(self.instructions))
        object.__setattr__(self, "instructions", instructions)

    def field(self, var: str) -> Field | None:
        """The field named C{var}, or None."""
        for field in self.fields:
            if field.var == var:
                return field
        return None

    def values(self) -> dict:
        """var -> list of wire strings, for every field with a var (FORM_TYPE too)."""
        found = {} if self.form_type is None else {FORM_TYPE: [self.form_type]}
        found.update((f.var, list(f.values)) for f in self.fields if f.var is not None)
        return found

    def filled(self, values: Mapping[str, Any], type: str | None = None) -> Form:
        """This form with the Python C{values} (var -> value) encoded into its fields,
        and of type C{type} when given; KeyError for a var the form has not."""
        known = {f.var for f in self.fields}
        for var in values:
            if var not in known:
                raise KeyError(var)
        fields = tuple(f.with_value(values[f.var]) if f.var in values else f
                       for f in self.fields)
        return dataclasses.replace(self, fields=fields, type=type or self.type)

    def to_element(self):
        """The <x/> element: title, instructions, the hidden FORM_TYPE first, the fields."""
        x = element(NS_DATA_FORMS, "x", type=self.type)
        if self.title is not None:
            _sub(x, "title", self.title)
        for line in self.instructions:
            _sub(x, "instructions", line)
        if self.form_type is not None:
            x.append(Field(FORM_TYPE, "hidden", values=(self.form_type,)).to_element())
        for field in self.fields:
            x.append(field.to_element())
        return x

    def read(self, x, unknown: str = "ignore", submit_types=("submit",)) -> dict:
        """
        The {var: Python value} of the fields the submitted form C{x} (an <x/> element)
        sets, validated against this definition; see the module docstring. FormError
        for the first field or property that does not fit.
        """
        if x.tag != X:
            raise FormError(None, "not a data form", "bad-request")
        if x.get("type") not in submit_types:
            raise FormError(None, f"the form must be of type "
                                  f"{' or '.join(t for t in submit_types if t)}", "bad-request")
        submitted = parse(x)
        # Whatever its type attribute says: a submitter may leave it out.
        sent_type = form_type_of(x)
        if (self.form_type is not None and sent_type is not None
                and sent_type != self.form_type):
            raise FormError(FORM_TYPE, f"must be {self.form_type}", "bad-request")
        result = {}
        for sent in submitted.fields:
            if sent.var == FORM_TYPE:
                continue
            declared = self.field(sent.var) if sent.var is not None else None
            if declared is None:
                if unknown == "error":
                    raise FormError(sent.var, "is not a field of this form", "bad-request")
                continue
            if declared.type == "fixed":
                continue
            result[sent.var] = declared.decode(sent.values)
        for declared in self.fields:
            if declared.required and declared.var not in result:
                raise FormError(declared.var, "is required")
        return result


def encode(field_type: str | None, value) -> tuple:
    """The wire strings of the Python C{value} for a field of C{field_type}: () for None,
    '1'/'0' for booleans, str() of each item of a -multi value, else str(value)."""
    if value is None:
        return ()
    if field_type == "boolean":
        return ("1" if value else "0",)
    if field_type in MULTI_TYPES:
        if isinstance(value, (str, bytes)):
            raise TypeError(f"a {field_type} field takes an iterable of values, not a string")
        return tuple(str(v) for v in value)
    return (str(value),)


def parse(x) -> Form:
    """
    The L{Form} of the <x xmlns='jabber:x:data'/> element C{x}, values as strings, with
    no check beyond the shape: ValueError when C{x} is not a data form; FormError
    (bad-request) when its type is not one of FORM_TYPES (a missing type reads as 'form')
    or its FORM_TYPE is not one value in one field. The FORM_TYPE field becomes
    C{form_type} when it is hidden, as XEP-0068 requires of forms and results; a
    submission or cancel may leave the type out. A FORM_TYPE field of another type stays
    among the fields (XEP-0115 §5.4 ignores such a form). Fields without a var that are
    not 'fixed', and unknown field types (read as None), are kept as given where possible.
    """
    if x.tag != X:
        raise ValueError(f"not a data form: {x.tag}")
    kind = x.get("type") or "form"
    if kind not in FORM_TYPES:
        raise FormError(None, f"unknown form type {kind!r}", "bad-request")
    form_type, seen_form_type, fields = None, False, []
    for child in x.iterchildren(_FIELD):
        values = tuple(v.text or "" for v in child.iterchildren(_VALUE))
        var, declared = child.get("var"), child.get("type")
        declared = declared if declared in FIELD_TYPES else None
        if var == FORM_TYPE:
            if seen_form_type or len(set(values)) > 1:
                raise FormError(FORM_TYPE, "must be one value in one field", "bad-request")
            seen_form_type = True
            hidden = declared == "hidden" or (declared is None and kind in ("submit",
                                                                             "cancel"))
            if hidden:
                form_type = values[0] if values else None
                continue
        if var is None and declared != "fixed":
            continue    # nothing can refer to it
        fields.append(Field(
            var, declared, label=child.get("label"),
            desc=child.findtext(f"{{{NS_DATA_FORMS}}}desc"),
            required=child.find(f"{{{NS_DATA_FORMS}}}required") is not None,
            options=tuple((o.findtext(_VALUE) or "", o.get("label"))
                          for o in child.iterchildren(_OPTION)),
            values=values))
    return Form(kind, form_type, fields, title=x.findtext(f"{{{NS_DATA_FORMS}}}title"),
                instructions=tuple(i.text or "" for i in
                                   x.iterchildren(f"{{{NS_DATA_FORMS}}}instructions")))


def form_type_of(x) -> str | None:
    """The value of the FORM_TYPE field of the <x/> element C{x}, or None without one."""
    for child in x.iterchildren(_FIELD):
        if child.get("var") == FORM_TYPE:
            return child.findtext(_VALUE) or ""
    return None


def find_form(parent, form_type: str | None = None):
    """The first <x xmlns='jabber:x:data'/> child of C{parent} (None: None), of the
    FORM_TYPE C{form_type} when given; None when there is none."""
    if parent is None:
        return None
    for x in parent.iterchildren(X):
        if form_type is None or form_type_of(x) == form_type:
            return x
    return None


def extended_info(x):
    """
    An XEP-0128 disco#info form as entity capabilities read it (XEP-0115 §5.4): None when
    it has no FORM_TYPE or is no XEP-0004 form; (FORM_TYPE, None) when its FORM_TYPE is not
    hidden (ignored, but it counts for duplicate FORM_TYPEs); else (FORM_TYPE, fields) with
    fields ((var, (value, ...)), ...) in document order. FormError naming FORM_TYPE when
    that is not one value in one field.
    """
    try:
        form = parse(x)
    except FormError as e:
        if e.var == FORM_TYPE:
            raise
        return None
    if form.form_type is not None:
        return form.form_type, tuple((f.var, f.values) for f in form.fields if f.var)
    shown = form.field(FORM_TYPE)
    return None if shown is None or shown.value is None else (shown.value, None)


def result_form(form_type: str, fields: Iterable[Field]):
    """An <x type='result'/> of FORM_TYPE C{form_type} with C{fields} (XEP-0128 style)."""
    return Form("result", form_type, tuple(fields)).to_element()


def _sub(parent, name, text=None):
    """A child {NS_DATA_FORMS}name of C{parent} (inheriting its namespace declaration)."""
    child = etree.SubElement(parent, f"{{{NS_DATA_FORMS}}}{name}")
    if text is not None:
        child.text = text
    return child
