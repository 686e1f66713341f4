# The drop-in file: no jabberapp/__init__.py or jabberapp/plugins/__init__.py beside it.
from acme_web import web  # noqa: F401
