# The drop-in file: no jabberapp/__init__.py or jabberapp/plugins/__init__.py beside it.
from acme_echo import echo  # noqa: F401
