"""
XEP-0060 Publish-Subscribe (the service at pubsub.<host>) and XEP-0163 Personal Eventing
Protocol (on every account), sharing one protocol layer and one node store.

See L{jabberapp.extensions.pubsub.protocol} for what is implemented and how a request
travels through the layers, and L{jabberapp.extensions.pubsub.interfaces} for the storage
contract.
"""
