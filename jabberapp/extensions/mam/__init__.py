"""
XEP-0313 Message Archive Management for user accounts (``urn:xmpp:mam:2`` and
``#extended``), with XEP-0359 stanza ids, XEP-0441 preferences and XEP-0431 full-text
search.

The package is split by layer:

```
plugin.py     the extension: options, install (hooks, IQ handlers, timers, service)
archiving.py  the hooks: a local user's message archived for the recipient on arrival
              (stanza-id stamped) and for the sender when sent
  rules.py      what is archived (message kinds, hints) and what the preferences say
  stanzaid.py   archive ids: unpredictable, and recognisable as ours when they come back
  prefs.py      XEP-0441 preferences: the value, its XML, the per-host book
  writer.py     appends coalesced into batches, one transaction each
protocol.py   the IQs: query (and its form), metadata, prefs; results and <fin/>
  query.py      a <query/> read into an ArchiveQuery (form fields, RSM, flip-page)
  ratelimit.py  queries per session, delayed past the rate
retention.py  expiry of old messages on a timer
disco.py      the MAM features in the owner's disco#info of their bare JID
```

Storage is IMessageArchive (jabberapp.interfaces), ``host.storage.message_archive()``.
The package ``__init__`` imports none of its modules.
"""
