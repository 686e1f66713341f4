"""The subscription forms (XEP-0060 §6.3 options, §8.6 authorization), read and built with
jabberapp.forms."""
from twisted.trial.unittest import SynchronousTestCase

from jabberapp import forms
from jabberapp.errors import StanzaError
from jabberapp.extensions.pubsub.subscription_forms import (
    SUBSCRIBE_AUTHORIZATION, SUBSCRIBE_OPTIONS, authorization_form, find_authorization,
    read_authorization, read_subscribe_options, subscribe_options_form)
from jabberapp.jid import JID
from jabberapp.testing import parse

NS_DATA = "jabber:x:data"
NS_ERRORS = "http://jabber.org/protocol/pubsub#errors"


def _x(fields, type_="submit", form_type=SUBSCRIBE_OPTIONS):
    hidden = (f"<field var='FORM_TYPE' type='hidden'><value>{form_type}</value></field>"
              if form_type else "")
    body = "".join(f"<field var='{var}'>" + "".join(f"<value>{v}</value>" for v in values)
                   + "</field>" for var, values in fields)
    return f"<x xmlns='{NS_DATA}' type='{type_}'>{hidden}{body}</x>"


class SubscribeOptionsTests(SynchronousTestCase):
    """pubsub#subscribe_options: what a subscriber may set, and the form it is shown."""

    def read(self, fields, **kwargs):
        return read_subscribe_options(parse(f"<options>{_x(fields, **kwargs)}</options>"))

    def refused(self, fields, **kwargs):
        error = self.assertRaises(StanzaError, self.read, fields, **kwargs)
        self.assertEqual((error.condition, error.app_condition.tag),
                         ("bad-request", f"{{{NS_ERRORS}}}invalid-options"))
        return error

    def test_round_trip(self):
        """The form shown for some options reads back as those options."""
        options = {"deliver": False, "show_values": ["away", "dnd"]}
        x = subscribe_options_form(options)
        self.assertEqual(forms.parse(x).form_type, SUBSCRIBE_OPTIONS)
        x.set("type", "submit")
        self.assertEqual(read_subscribe_options(_wrap(x)), options)

    def test_values(self):
        """deliver is a boolean; show-values a sorted set of presence states; a form
        without FORM_TYPE is accepted."""
        self.assertEqual(self.read([("pubsub#deliver", ["true"]),
                                    ("pubsub#show-values", ["xa", "chat", "xa"])],
                                   form_type=None),
                         {"deliver": True, "show_values": ["chat", "xa"]})
        self.assertEqual(self.read([]), {})

    def test_refusals_name_the_field(self):
        """An unknown option, a bad value, another FORM_TYPE or no form at all is
        invalid-options; the text names the field at fault."""
        self.assertIn("pubsub#digest", self.refused([("pubsub#digest", ["1"])]).text)
        self.assertIn("pubsub#deliver", self.refused([("pubsub#deliver", ["maybe"])]).text)
        self.assertIn("pubsub#show-values",
                      self.refused([("pubsub#show-values", ["busy"])]).text)
        self.refused([], form_type="urn:other")
        error = self.assertRaises(StanzaError, read_subscribe_options, parse("<options/>"))
        self.assertEqual(error.text, "No options form")


def _wrap(x):
    parent = parse("<options/>")
    parent.append(x)
    return parent


class AuthorizationTests(SynchronousTestCase):
    """pubsub#subscribe_authorization: the form owners get and what they send back."""

    def form(self, **values):
        fields = [(f"pubsub#{k}", [v]) for k, v in values.items()]
        return parse(_x(fields, form_type=SUBSCRIBE_AUTHORIZATION))

    def test_offered_form(self):
        """The offered form carries the request and pubsub#allow 'false' (§8.6)."""
        x = authorization_form("club", JID.parse("bob@example.org/r"), "s1")
        self.assertEqual(forms.parse(x).values(), {
            "FORM_TYPE": [SUBSCRIBE_AUTHORIZATION], "pubsub#subid": ["s1"],
            "pubsub#node": ["club"], "pubsub#subscriber_jid": ["bob@example.org/r"],
            "pubsub#allow": ["false"]})
        message = parse("<message xmlns='jabber:client'/>")
        message.append(x)
        self.assertIs(find_authorization(message), x)

    def test_read(self):
        """A submission gives node, JID, allow and subid (None without one, '' empty)."""
        self.assertEqual(read_authorization(self.form(
            node="club", subscriber_jid="bob@example.org", allow="1", subid="s1")),
            ("club", JID.parse("bob@example.org"), True, "s1"))
        self.assertEqual(read_authorization(self.form(
            node="club", subscriber_jid="bob@example.org", allow="false"))[2:],
            (False, None))
        x = self.form(node="club", subscriber_jid="bob@example.org", allow="true")
        x.append(parse(f"<field xmlns='{NS_DATA}' var='pubsub#subid'/>"))
        self.assertEqual(read_authorization(x)[3], "")

    def test_malformed(self):
        """A bad JID is jid-malformed; a missing field, a bad boolean or a form that is
        not a submission is bad-request."""
        error = self.assertRaises(StanzaError, read_authorization, self.form(
            node="club", subscriber_jid="@bad@", allow="true"))
        self.assertEqual(error.condition, "jid-malformed")
        for x in (self.form(node="club", allow="true"),
                  self.form(node="club", subscriber_jid="bob@example.org", allow="yes"),
                  parse(_x([("pubsub#node", ["club"]),
                            ("pubsub#subscriber_jid", ["bob@example.org"]),
                            ("pubsub#allow", ["1"])], type_="form",
                           form_type=SUBSCRIBE_AUTHORIZATION))):
            error = self.assertRaises(StanzaError, read_authorization, x)
            self.assertEqual(error.condition, "bad-request")
