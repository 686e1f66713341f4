"""
XEP-0077: In-Band Registration -- create an account from the client, change its password,
delete it.

Before authentication (c2s, through IHost.add_preauth_iq_handler, so only on a stream that
meets [c2s] require_encryption):

- with ``allow_registration`` (off by default: an open server attracts spam accounts) the
  stream features offer <register xmlns='http://jabber.org/features/iq-register'/> (§8);
  a get is answered with <instructions/>, <username/> and <password/> (§3.1), and a set
  with both creates the account. The username is prepared as a localpart (RFC 7622 §3.3);
  the password becomes SCRAM material in a thread (host.auth.make_credentials).
  Errors: a field missing or empty, or a password PRECIS refuses: <not-acceptable/> (§3.1);
  a username that is no valid localpart: <jid-malformed/> (as ejabberd; RFC 6120 §8.3.3.8
  covers a JID "or aspect thereof" a client provides); a taken one: <conflict/> (§3.1).
- Rate limit per client address: after an account was registered from an IP address,
  another registration from it is refused for ``min_seconds_between_registrations``,
  before any other check, with <resource-constraint/> of type 'wait' (RFC 6120 §8.3.3.18:
  "the server ... is busy"; 'wait': retry later), as ejabberd's mod_register answers
  registrations that come too quickly. XEP-0077 §3.1.1 leaves the limit to local
  provisioning. Prosody answers <policy-violation/> (RFC 6120 §8.3.3.12), closer in
  meaning, but that condition is new in RFC 6120 and clients built on RFC 3920's list do
  not know it: slixmpp 1.17 cannot even parse the error, and its request just times out.
  Failed attempts do not count.
- Without ``allow_registration`` no feature is offered and a registration IQ gets
  <service-unavailable/> (§3.1: "If the host does not support In-Band Registration, it
  MUST return a <service-unavailable/> error"); the stream stays up for authentication.

After authentication (always available; to the host JID, the user's own bare JID, or
without 'to'):

- get: <registered/> and <username/> (§3.1).
- set with <username/> and <password/>: password change (§3.3). The username must be the
  user's own, and an empty password changes nothing (§3.3 MUST): both <bad-request/>;
  a password PRECIS refuses: <not-acceptable/>; on a stream without TLS (possible only
  with require_encryption off): <not-authorized/> (§3.3). The old password stops working
  and the account's other sessions end with <reset/> (IHost.password_changed).
- set with <remove/> as its only child: account deletion (§3.2). IStorage.delete_user
  removes the account and all its data in one transaction; then the result is sent, every
  session of the account -- the requesting one included -- is closed with a
  <not-authorized/> stream error (§3.2: "the server SHOULD then return a <not-authorized/>
  stream error and terminate all active sessions for the entity"), USER_DELETED is fired
  (host.user_deleted), and what the session ends made extensions store for the user is
  swept with a second delete_user. Cancelling the roster subscriptions (§3.2) is the
  roster extension's part, on USER_DELETED.
"""
from collections import OrderedDict

from twisted.plugin import IPlugin
from zope.interface import implementer

from jabberapp import stanza as st
from jabberapp.config import Option, int_range
from jabberapp.dispatch import parse_jid_attr
from jabberapp.errors import StanzaError, StreamError
from jabberapp.interfaces import IExtension, IStreamFeature
from jabberapp.jid import InvalidJID, prep_localpart
from jabberapp.sasl.scram import DEFAULT_ITERATIONS
from jabberapp.specs import Spec
from jabberapp.storage import AccountExists, NoSuchAccount
from jabberapp.xml import element

NS_REGISTER = "jabber:iq:register"
NS_REGISTER_FEATURE = "http://jabber.org/features/iq-register"
QUERY = f"{{{NS_REGISTER}}}query"
USERNAME = f"{{{NS_REGISTER}}}username"
PASSWORD = f"{{{NS_REGISTER}}}password"
REMOVE = f"{{{NS_REGISTER}}}remove"
WEEK = 7 * 86400


@implementer(IPlugin, IExtension)
class InBandRegistration:
    """Account registration before authentication; password change and deletion after."""

    name = "register"
    specs = (Spec("XEP-0077", "2.4", "In-Band Registration",
                  "off by default, rate-limited per client address; password change and "
                  "account removal always"),)
    depends = ()
    options = (
        Option("allow_registration", bool, default=False,
               doc="Let anyone create an account from their client (XEP-0077 in-band "
                   "registration). Changing one's password and deleting one's account are "
                   "always possible."),
        Option("min_seconds_between_registrations", int_range(0, WEEK), default=300,
               doc="After an account was registered from an IP address, seconds before "
                   "that address may register another (refused meanwhile with "
                   "resource-constraint); 0: no limit."),
    )

    def install(self, host):
        """Declare jabber:iq:register, offer the stream feature and own the IQs."""
        registrar = Registrar(host)
        host.add_feature(NS_REGISTER)
        host.add_stream_feature(RegisterFeature(host.config["allow_registration"]))
        host.add_preauth_iq_handler(NS_REGISTER, registrar.unauthenticated)
        host.iq_handler("get", NS_REGISTER, "query", registrar.get, to="any")
        host.iq_handler("set", NS_REGISTER, "query", registrar.set, to="any")


@implementer(IStreamFeature)
class RegisterFeature:
    """The <register/> stream feature (§8): offered before authentication when enabled."""

    namespace = NS_REGISTER_FEATURE

    def __init__(self, enabled):
        self.enabled = enabled

    def advertise(self, stream):
        """<register/> before authentication with registration on; nothing otherwise."""
        if not self.enabled or stream.username is not None:
            return None
        return element(NS_REGISTER_FEATURE, "register")

    def handle(self, stream, element):
        """The feature is negotiated with IQs: a nonza in its namespace is a violation."""
        raise StreamError("unsupported-stanza-type")


class Registrar:
    """The jabber:iq:register handlers of one host."""

    def __init__(self, host):
        self.host = host
        self.enabled = host.config["allow_registration"]
        self.limit = AddressLimit(host.clock, host.config["min_seconds_between_registrations"])
        settings = host.settings
        self.iterations = (settings.auth.scram_iterations if settings is not None
                           else DEFAULT_ITERATIONS)

    # -- before authentication: registration (§3.1) -------------------------------------

    async def unauthenticated(self, iq, stream):
        """A jabber:iq:register IQ on a stream that has not authenticated."""
        if not self.enabled:
            raise StanzaError("service-unavailable")
        if iq.get("type") == "get":
            query = element(NS_REGISTER, "query")
            query.append(element(NS_REGISTER, "instructions",
                                 text=f"Choose a username and a password for your account "
                                      f"on {self.host.domain}."))
            query.append(element(NS_REGISTER, "username"))
            query.append(element(NS_REGISTER, "password"))
            return query
        query = _query(iq)
        if query.find(REMOVE) is not None:
            raise StanzaError("registration-required", "Log in to remove your account")
        username, password = query.findtext(USERNAME), query.findtext(PASSWORD)
        if not username or not password:
            raise StanzaError("not-acceptable", "A username and a password are required")
        try:
            username = prep_localpart(username)
        except InvalidJID:
            raise StanzaError("jid-malformed", "This username is not allowed") from None
        release = self.limit.reserve(stream.peer_address)
        try:
            await self._create(username, password)
        except BaseException:
            release()
            raise
        self.host.log.info("registered {user}@{host} in-band from {address}", user=username,
                           host=self.host.domain, address=stream.peer_address)
        return None

    async def _create(self, username, password):
        accounts = self.host.storage.accounts
        # Checked first only to spare the key derivation; create() decides, atomically.
        if await accounts.exists(self.host.domain, username):
            raise StanzaError("conflict", "This username is taken")
        credentials = await self._credentials(password)
        try:
            await accounts.create(self.host.domain, username, credentials)
        except AccountExists:
            raise StanzaError("conflict", "This username is taken") from None

    async def _credentials(self, password):
        """SCRAM material for C{password}, derived in a thread; not-acceptable when PRECIS
        refuses it (the reason never contains the password)."""
        try:
            return await self.host.auth.make_credentials(password, self.iterations)
        except ValueError as exc:
            raise StanzaError("not-acceptable", str(exc)) from None

    # -- after authentication: the user's own account ----------------------------------

    def get(self, iq):
        """§3.1: an authenticated user is told it is registered, and as whom."""
        sender = self._own_account(iq)
        query = element(NS_REGISTER, "query")
        query.append(element(NS_REGISTER, "registered"))
        query.append(element(NS_REGISTER, "username", text=sender.local))
        return query

    async def set(self, iq):
        """§3.2 removal or §3.3 password change of the sender's own account."""
        sender = self._own_account(iq)
        query = _query(iq)
        if query.find(REMOVE) is not None:
            if len(query) != 1:
                raise StanzaError("bad-request", "<remove/> must be the only child")
            return await self._remove(iq, sender)
        return await self._change_password(sender, query)

    def _own_account(self, iq):
        """The sender's JID when it is a local user addressing its own account or the
        host; otherwise nobody here registers it (service-unavailable)."""
        sender, to = parse_jid_attr(iq, "from"), parse_jid_attr(iq, "to")
        if (sender is None or sender.local is None or sender.domain != self.host.domain
                or to not in (self.host.jid, sender.bare())):
            raise StanzaError("service-unavailable")
        return sender

    async def _change_password(self, sender, query):
        username, password = query.findtext(USERNAME), query.findtext(PASSWORD)
        if not username or not password:
            # §3.3: an empty password MUST NOT replace the existing one.
            raise StanzaError("bad-request", "A username and a new password are required")
        try:
            mine = prep_localpart(username) == sender.local
        except InvalidJID:
            mine = False
        if not mine:
            raise StanzaError("bad-request", "This is not your username")
        session = self.host.sessions.get(sender)
        if session is not None and not getattr(session, "secure", True):
            raise StanzaError("not-authorized", "Change your password over TLS only")
        credentials = await self._credentials(password)
        try:
            await self.host.storage.accounts.set_credentials(self.host.domain, sender.local,
                                                             credentials)
        except NoSuchAccount:
            raise StanzaError("registration-required") from None
        self.host.log.info("{user} changed the password of {jid}", user=sender,
                           jid=sender.bare())
        self.host.password_changed(sender.bare(), keep=session)
        return None

    async def _remove(self, iq, sender):
        bare, storage = sender.bare(), self.host.storage
        # Account, credentials and data go in one transaction; no login works after it.
        if not await storage.delete_user(self.host.domain, sender.local):
            raise StanzaError("registration-required")
        self.host.log.info("{user} deleted the account {jid}", user=sender, jid=bare)
        # The result goes out first, then every session ends (§3.2); the dispatcher's own
        # empty result that follows finds no session bound and is dropped.
        self.host.send(st.reply(iq))
        for session in self.host.sessions.resources(bare):
            session.close(StreamError("not-authorized", "Account deleted"))
        self.host.user_deleted(bare)
        # Session ends make extensions write for the user (last activity's logoff time):
        # sweep it, after those writes in the storage's queue.
        try:
            await storage.delete_user(self.host.domain, sender.local)
        except Exception:
            self.host.log.failure("removing what was stored for {jid} after its deletion",
                                  jid=bare)
        return None


class AddressLimit:
    """
    At most one registration per client address every C{interval} seconds: reserve()
    before the work, the returned release() when it failed (failures do not count).
    Entries older than the interval are dropped, so memory follows recent activity.
    """

    def __init__(self, clock, interval):
        self.clock = clock
        self.interval = interval
        self._last = OrderedDict()   # address -> time of its last registration, oldest first

    def reserve(self, address):
        """Take the address's slot, or raise resource-constraint; return release()."""
        if not self.interval:
            return lambda: None
        now = self.clock.seconds()
        while self._last and now - next(iter(self._last.values())) >= self.interval:
            self._last.popitem(last=False)
        if address in self._last:
            raise StanzaError("resource-constraint", "Too many registrations from your "
                              "address; try again later")
        self._last[address] = now
        return lambda: self._last.pop(address, None)


def _query(iq):
    return iq.find(QUERY)


register = InBandRegistration()   # re-exported by jabberapp/plugins/jabberapp_builtin.py
