"""
XEP-0045 namespaces and qualified element names, shared by the MUC protocol modules. The
FORM_TYPEs of the room's data forms come from config.py, which defines those forms.
"""
from jabberapp.xml.ns import NS_CLIENT, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PING

NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = NS_MUC + "#user"
NS_MUC_ADMIN = NS_MUC + "#admin"
NS_MUC_OWNER = NS_MUC + "#owner"
# XEP-0410 §3.3: rooms answer self-pings themselves and say so in their disco#info.
NS_SELF_PING_OPTIMIZATION = NS_MUC + "#self-ping-optimization"
NS_OCCUPANT_ID = "urn:xmpp:occupant-id:0"
NS_DELAY = "urn:xmpp:delay"
NS_REGISTER = "jabber:iq:register"
NS_VCARD = "vcard-temp"
ROOMUSER_NODE = "x-roomuser-item"    # XEP-0045 §7.12: disco node of one's reserved nick

MUC_X = f"{{{NS_MUC}}}x"
MUC_USER_X = f"{{{NS_MUC_USER}}}x"
OCCUPANT_ID = f"{{{NS_OCCUPANT_ID}}}occupant-id"
SUBJECT = f"{{{NS_CLIENT}}}subject"
BODY = f"{{{NS_CLIENT}}}body"
STATUS = f"{{{NS_CLIENT}}}status"
DISCO_INFO_QUERY = f"{{{NS_DISCO_INFO}}}query"
DISCO_ITEMS_QUERY = f"{{{NS_DISCO_ITEMS}}}query"
PING = f"{{{NS_PING}}}ping"
ADMIN_QUERY = f"{{{NS_MUC_ADMIN}}}query"
OWNER_QUERY = f"{{{NS_MUC_OWNER}}}query"
REGISTER_QUERY = f"{{{NS_REGISTER}}}query"
VCARD = f"{{{NS_VCARD}}}vCard"
