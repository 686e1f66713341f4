# Imported by twistd's plugin scan: import nothing else here (see docs/architecture.md).
from twisted.application.service import ServiceMaker

jabberapp = ServiceMaker("jabberapp", "jabberapp.tap", "Pluggable XMPP server", "jabberapp")
