"""
XEP-0227: Portable Import/Export Format for XMPP-IM Servers -- ``jabberappctl import`` and
``jabberappctl export``, the way in from Prosody and ejabberd and the way out.

Modules: ``pie`` (the format's names, MigrationError, the conversions both directions
share), ``reader`` (a streaming, validating reader of XEP-0227 files, XInclude), ``user``
(one <user/> checked and converted, under the extensions' limits), ``credentials`` (SCRAM
material from its text forms), ``importer`` (the two passes of an import) and ``exporter``
(a streaming writer of one host's data).

What travels, and where it lives here: accounts (SCRAM material in the IAccountStore; a
plaintext password is turned into SCRAM material and forgotten), rosters with pending
subscription requests (the roster extension's document, key-value store "roster"),
vCards ("vcard"), private XML ("private") and offline messages (archive "offline"). This
package therefore knows the storage formats of those extensions: like ``tap``, it sits
above them, and nothing imports it but ``jabberapp.admin.cli``.
"""
