"""
XEP-0060 Publish-Subscribe (the service at pubsub.<host>) and XEP-0163 Personal Eventing
Protocol (on every account), sharing one protocol engine and one node store.

See L{jabberapp.extensions.pubsub.engine} for what is implemented, and
L{jabberapp.extensions.pubsub.interfaces} for the storage contract.
"""
