"""The two extensions of this package, for jabberapp/plugins/jabberapp_builtin.py."""
from jabberapp.extensions.pubsub.pep import pep
from jabberapp.extensions.pubsub.service import pubsub_service

__all__ = ["pep", "pubsub_service"]
