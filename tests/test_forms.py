"""XEP-0004 Data Forms: jabberapp.forms builds, parses and validates every field type."""
from twisted.trial.unittest import SynchronousTestCase

from jabberapp import forms
from jabberapp.errors import StanzaError
from jabberapp.forms import (FIELD_TYPES, FORM_TYPE, NS_DATA_FORMS, Field, Form, FormError,
                             extended_info, find_form, form_type_of, parse, result_form)
from jabberapp.jid import JID
from jabberapp.testing import parse as parse_xml
from jabberapp.xml import element, serialize

NS_TEST = "urn:example:test"

# One field of every type with a Python value, and the wire strings it must become.
EVERY_TYPE = (
    (Field("b", "boolean", label="B"), True, ("1",)),
    (Field(None, "fixed"), "Read this first", ("Read this first",)),
    (Field("h", "hidden"), "secret-state", ("secret-state",)),
    (Field("jm", "jid-multi"), (JID.parse("a@example.org"), JID.parse("b@example.org/r")),
     ("a@example.org", "b@example.org/r")),
    (Field("js", "jid-single", required=True), JID.parse("room@muc.example.org"),
     ("room@muc.example.org",)),
    (Field("lm", "list-multi", options=("x", ("y", "Why"), "z")), ("x", "z"), ("x", "z")),
    (Field("ls", "list-single", options=(("10", "ten"), ("20", "twenty"))), "20", ("20",)),
    (Field("tm", "text-multi", desc="Lines"), ("line one", "", "line three"),
     ("line one", "", "line three")),
    (Field("tp", "text-private"), "hunter2", ("hunter2",)),
    (Field("ts", "text-single"), "Room <&> title", ("Room <&> title",)),
)
DEFINITION = Form("form", NS_TEST, title="Everything", instructions=("Fill", "it in"),
                  fields=tuple(field for field, _, _ in EVERY_TYPE))


def submission(*fields, form_type=NS_TEST, type_="submit"):
    """An <x type='submit'/> element with FORM_TYPE and (var, [values]) fields."""
    x = element(NS_DATA_FORMS, "x", type=type_)
    if form_type is not None:
        x.append(Field(FORM_TYPE, "hidden", values=(form_type,)).to_element())
    for var, values in fields:
        x.append(Field(var, None, values=values).to_element())
    return x


def wire(x):
    """C{x} serialised and parsed again, as a peer would receive it."""
    return parse_xml(serialize(x))


class RoundTripTests(SynchronousTestCase):
    def test_every_type_is_covered(self):
        """The round-trip table holds one field of each XEP-0004 field type."""
        self.assertEqual(sorted(f.type for f, _, _ in EVERY_TYPE), sorted(FIELD_TYPES))

    def test_encode(self):
        """Each type's Python value becomes the wire strings XEP-0004 prescribes."""
        for field, value, strings in EVERY_TYPE:
            self.assertEqual(field.with_value(value).values, strings, field.type)
        self.assertEqual(Field("b", "boolean").with_value(False).values, ("0",))
        self.assertEqual(Field("ts").with_value(None).values, ())
        self.assertEqual(Field("ls", "list-single").with_value(50).values, ("50",))

    def test_round_trip_every_type(self):
        """A filled form of every field type survives serialisation, parsing and decoding:
        types, labels, options, desc, required, values and the Python values."""
        filled = DEFINITION.filled({f.var: v for f, v, _ in EVERY_TYPE if f.var})
        filled = Form(filled.type, filled.form_type,
                      filled.fields[:1] + (EVERY_TYPE[1][0].with_value(EVERY_TYPE[1][1]),)
                      + filled.fields[2:], filled.title, filled.instructions)
        parsed = parse(wire(filled.to_element()))
        self.assertEqual(parsed, filled)
        for (field, value, _), got in zip(EVERY_TYPE, parsed.fields):
            self.assertEqual(got.decode(), value, field.type)

    def test_submit_round_trip(self):
        """A submission of every submittable type reads back as the Python values."""
        values = {f.var: v for f, v, _ in EVERY_TYPE if f.type != "fixed"}
        x = wire(DEFINITION.filled(values, type="submit").to_element())
        self.assertEqual(DEFINITION.read(x), values)

    def test_boolean_spellings(self):
        """Booleans read '1' and 'true' as True, '0' and 'false' as False."""
        field = Field("b", "boolean")
        self.assertEqual([field.decode([v]) for v in ("1", "true", "0", "false")],
                         [True, True, False, False])

    def test_shape(self):
        """The <x/> carries its type, title, instructions and the hidden FORM_TYPE first."""
        x = DEFINITION.to_element()
        self.assertEqual((x.tag, x.get("type")), (f"{{{NS_DATA_FORMS}}}x", "form"))
        self.assertEqual([c.tag.split("}")[1] for c in x][:4],
                         ["title", "instructions", "instructions", "field"])
        self.assertEqual((x[3].get("var"), x[3].get("type"), x[3][0].text),
                         (FORM_TYPE, "hidden", NS_TEST))
        ls = x.find(f"{{{NS_DATA_FORMS}}}field[@var='ls']")
        self.assertEqual([(o.get("label"), o[0].text) for o in ls],
                         [("ten", "10"), ("twenty", "20")])

    def test_result_form(self):
        """result_form builds a typed XEP-0128 result of a FORM_TYPE."""
        x = result_form(NS_TEST, [Field("a", "list-multi", values=("u:1", "u:2"))])
        form = parse(x)
        self.assertEqual((form.type, form.form_type, form.values()),
                         ("result", NS_TEST, {FORM_TYPE: [NS_TEST], "a": ["u:1", "u:2"]}))
        self.assertEqual(form.field("a").type, "list-multi")

    def test_definitions_are_checked(self):
        """Unknown field or form types and a var-less non-fixed field are our own misuse."""
        self.assertRaises(ValueError, Field, "a", "text-long")
        self.assertRaises(ValueError, Field, None, "text-single")
        self.assertRaises(ValueError, Form, "reply")
        self.assertRaises(KeyError, DEFINITION.filled, {"nope": 1})
        self.assertRaises(TypeError, Field("tm", "text-multi").with_value, "one string")


class ParseTests(SynchronousTestCase):
    def test_not_a_form(self):
        """parse() refuses an element that is not a jabber:x:data <x/>."""
        self.assertRaises(ValueError, parse, element("urn:other", "x"))

    def test_unknown_form_type(self):
        """An unknown form type is a bad-request FormError."""
        error = self.assertRaises(FormError, parse, element(NS_DATA_FORMS, "x", type="what"))
        self.assertEqual((error.var, error.condition), (None, "bad-request"))

    def test_form_type_twice(self):
        """Two FORM_TYPE fields, or two different values, are refused naming FORM_TYPE."""
        x = submission()
        x.append(Field(FORM_TYPE, "hidden", values=("urn:other",)).to_element())
        self.assertEqual(self.assertRaises(FormError, parse, x).var, FORM_TYPE)
        x = element(NS_DATA_FORMS, "x", type="result")
        x.append(Field(FORM_TYPE, "hidden", values=("a", "b")).to_element())
        self.assertEqual(self.assertRaises(FormError, parse, x).var, FORM_TYPE)
        x = element(NS_DATA_FORMS, "x", type="result")
        x.append(Field(FORM_TYPE, "hidden", values=("a", "a")).to_element())
        self.assertEqual(parse(x).form_type, "a")

    def test_form_type_not_hidden(self):
        """A result's FORM_TYPE that is not hidden is no FORM_TYPE but an ordinary field;
        a submission's may leave the type out."""
        x = element(NS_DATA_FORMS, "x", type="result")
        x.append(Field(FORM_TYPE, "text-single", values=(NS_TEST,)).to_element())
        form = parse(x)
        self.assertEqual((form.form_type, form.field(FORM_TYPE).value), (None, NS_TEST))
        x = element(NS_DATA_FORMS, "x", type="submit")
        x.append(Field(FORM_TYPE, None, values=(NS_TEST,)).to_element())
        self.assertEqual(parse(x).form_type, NS_TEST)

    def test_lenient_fields(self):
        """Unknown field types read as None (text-single); var-less fields are dropped."""
        x = parse_xml(f"<x xmlns='{NS_DATA_FORMS}' type='result'>"
                      "<field var='a' type='odd'><value>1</value></field>"
                      "<field><value>lost</value></field></x>")
        form = parse(x)
        self.assertEqual([(f.var, f.type, f.values) for f in form.fields],
                         [("a", None, ("1",))])
        self.assertEqual(form.fields[0].decode(), "1")

    def test_find_form_and_form_type_of(self):
        """find_form picks the <x/> child (of a FORM_TYPE); form_type_of reads it."""
        parent = element("urn:p", "options")
        parent.append(result_form("urn:a", ()))
        parent.append(result_form("urn:b", ()))
        self.assertEqual(form_type_of(find_form(parent)), "urn:a")
        self.assertEqual(form_type_of(find_form(parent, "urn:b")), "urn:b")
        self.assertIsNone(find_form(parent, "urn:c"))
        self.assertIsNone(find_form(None))
        self.assertIsNone(form_type_of(element(NS_DATA_FORMS, "x")))

    def test_extended_info(self):
        """extended_info reads a disco#info form as caps hash it: hidden FORM_TYPE and
        fields; a shown FORM_TYPE without fields; nothing without one or for a non-form."""
        fields = [Field("a", values=("2", "1")), Field(None, "fixed", values=("x",))]
        self.assertEqual(extended_info(result_form(NS_TEST, fields)),
                         (NS_TEST, (("a", ("2", "1")),)))
        shown = element(NS_DATA_FORMS, "x", type="result")
        shown.append(Field(FORM_TYPE, "text-single", values=(NS_TEST,)).to_element())
        self.assertEqual(extended_info(shown), (NS_TEST, None))
        self.assertIsNone(extended_info(element(NS_DATA_FORMS, "x", type="result")))
        self.assertIsNone(extended_info(element(NS_DATA_FORMS, "x", type="odd")))
        twice = result_form(NS_TEST, [Field(FORM_TYPE, "hidden", values=("urn:b",))])
        self.assertEqual(self.assertRaises(FormError, extended_info, twice).var, FORM_TYPE)


class ValidationTests(SynchronousTestCase):
    def refused(self, *fields, definition=DEFINITION, **kw):
        """The FormError reading a submission of C{fields} against C{definition}."""
        return self.assertRaises(FormError, definition.read, submission(*fields), **kw)

    def assertNamed(self, error, var, condition="not-acceptable"):
        """C{error} names C{var} and carries C{condition}."""
        self.assertEqual((error.var, error.condition), (var, condition))
        self.assertIn(var or "", str(error))

    def test_each_field_names_itself(self):
        """A bad value of each typed field is refused with that field's var."""
        cases = (
            ("b", ["maybe"]), ("b", []), ("b", ["1", "0"]),
            ("js", ["not a jid@"]), ("js", ["a@b", "c@d"]),
            ("jm", ["a@example.org", "@bad"]),
            ("lm", ["x", "w"]), ("ls", ["30"]), ("ls", ["10", "20"]),
            ("tp", ["a", "b"]), ("ts", ["a", "b"]), ("h", ["a", "b"]),
        )
        for var, values in cases:
            self.assertNamed(self.refused(("js", ["a@b"]), (var, values)), var)

    def test_required(self):
        """A required field left out is refused naming it."""
        self.assertNamed(self.refused(("ts", ["x"])), "js")

    def test_partial_submission(self):
        """Fields left out are not in the result; fixed fields are never read."""
        self.assertEqual(DEFINITION.read(submission(("js", ["a@b"]), ("ts", ["hi"]))),
                         {"js": JID.parse("a@b"), "ts": "hi"})

    def test_empty_single_values(self):
        """A single-valued field sent without a value reads as None; a multi as ()."""
        self.assertEqual(DEFINITION.read(submission(("js", []), ("ts", []), ("tm", []))),
                         {"js": None, "ts": None, "tm": ()})

    def test_unknown_fields(self):
        """Unknown fields are ignored by default and refused, named, on request."""
        fields = (("js", ["a@b"]), ("x-client#extra", ["1"]))
        self.assertEqual(DEFINITION.read(submission(*fields)), {"js": JID.parse("a@b")})
        self.assertNamed(self.refused(*fields, unknown="error"), "x-client#extra",
                         "bad-request")

    def test_form_type(self):
        """Another FORM_TYPE is a bad-request naming FORM_TYPE; none at all is accepted."""
        error = self.assertRaises(FormError, DEFINITION.read,
                                  submission(("js", ["a@b"]), form_type="urn:other"))
        self.assertNamed(error, FORM_TYPE, "bad-request")
        self.assertEqual(DEFINITION.read(submission(("js", ["a@b"]), form_type=None)),
                         {"js": JID.parse("a@b")})

    def test_form_types(self):
        """Only the accepted form types are read; others are a bad-request for the form."""
        x = submission(("js", ["a@b"]), type_="result")
        error = self.assertRaises(FormError, DEFINITION.read, x)
        self.assertEqual((error.var, error.condition), (None, "bad-request"))
        x = submission(("js", ["a@b"]), type_=None)
        self.assertRaises(FormError, DEFINITION.read, x)
        self.assertEqual(DEFINITION.read(x, submit_types=("submit", None)),
                         {"js": JID.parse("a@b")})
        self.assertRaises(FormError, DEFINITION.read, element("urn:other", "x"))

    def test_convert(self):
        """A field's convert turns the typed value into the Python one, and its
        ValueError becomes a FormError naming the field; it replaces the option check."""
        def users(value):
            if value == "none":
                return None
            number = int(value)
            if not 1 <= number <= 500:
                raise ValueError("must be from 1 to 500 or none")
            return number
        definition = Form("form", NS_TEST, fields=(
            Field("max", "list-single", options=("10", "100", "none"), convert=users),))
        self.assertEqual(definition.read(submission(("max", ["42"]))), {"max": 42})
        self.assertEqual(definition.read(submission(("max", ["none"]))), {"max": None})
        error = self.refused(("max", ["501"]), definition=definition)
        self.assertNamed(error, "max")
        self.assertIn("from 1 to 500", error.reason)
        self.assertNamed(self.refused(("max", ["many"]), definition=definition), "max")

    def test_stanza_error(self):
        """FormError.stanza_error() is the StanzaError to answer, its text naming the
        field and the reason, with an optional application condition."""
        error = FormError("muc#roomconfig_maxusers", "must be a number")
        stanza_error = error.stanza_error()
        self.assertIsInstance(stanza_error, StanzaError)
        self.assertEqual((stanza_error.condition, stanza_error.text),
                         ("not-acceptable", "muc#roomconfig_maxusers: must be a number"))
        app = element("urn:app", "invalid-options")
        stanza_error = FormError(None, "bad form", "bad-request").stanza_error(app)
        self.assertEqual((stanza_error.condition, stanza_error.text, stanza_error.app_condition),
                         ("bad-request", "bad form", app))

    def test_one_namespace_constant(self):
        """The module names the namespace every form user imports."""
        self.assertEqual(forms.NS_DATA_FORMS, "jabber:x:data")
