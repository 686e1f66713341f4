"""
The core's contracts: every zope interface that plugin authors and the core code against,
importable from here (``from jabberapp.interfaces import IHost``) whichever module of this
package declares it.

Nothing in this package imports the rest of jabberapp, so every module may import it.
"""
from jabberapp.interfaces.host import IDiscoProvider, IExtension, IHost
from jabberapp.interfaces.session import IClientSession, IRouter, ISession, ISessionRegistry
from jabberapp.interfaces.stream import (IAuthProvider, IClientStream, IFramedTransport,
                                        ISASLMechanism, IStreamFeature, ITransport)
from jabberapp.interfaces.storage import (IAccountStore, IArchiveStore, IBulkImport,
                                         IKeyValueStore, IMessageArchive, IStorage,
                                         IStorageBackend)

__all__ = [
    "IExtension",
    "IHost",
    "IDiscoProvider",
    "ISession",
    "IClientSession",
    "ISessionRegistry",
    "IRouter",
    "IStreamFeature",
    "IClientStream",
    "ITransport",
    "IFramedTransport",
    "ISASLMechanism",
    "IAuthProvider",
    "IStorage",
    "IBulkImport",
    "IStorageBackend",
    "IAccountStore",
    "IKeyValueStore",
    "IArchiveStore",
    "IMessageArchive",
]
