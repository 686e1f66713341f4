"""
A client-side SCRAM (RFC 5802) for tests, written from the RFC's formulas and independent of
jabberapp.sasl.scram: the unit tests drive the mechanism with it, the end-to-end tests log in
with it over a real socket (tests/e2e/rawclient.py).

    SaltedPassword  := Hi(Normalize(password), salt, i)
    ClientKey       := HMAC(SaltedPassword, "Client Key")
    StoredKey       := H(ClientKey)
    AuthMessage     := client-first-message-bare + "," + server-first-message + "," +
                       client-final-message-without-proof
    ClientSignature := HMAC(StoredKey, AuthMessage)
    ClientProof     := ClientKey XOR ClientSignature
    ServerKey       := HMAC(SaltedPassword, "Server Key")
    ServerSignature := HMAC(ServerKey, AuthMessage)

The password is used as given (UTF-8): pass it already prepared (ASCII or NFC text without
special spaces is unchanged by the OpaqueString profile).
"""
import base64
import hashlib
import hmac


class ScramError(Exception):
    """The server's final message is an error or does not prove knowledge of the password."""


def hi(name, password, salt, iterations):
    """Hi(str, salt, i) of RFC 5802 §2.2, by the definition (no hashlib.pbkdf2_hmac)."""
    u = hmac.new(password, salt + b"\x00\x00\x00\x01", name).digest()
    result = int.from_bytes(u, "big")
    for _ in range(iterations - 1):
        u = hmac.new(password, u, name).digest()
        result ^= int.from_bytes(u, "big")
    return result.to_bytes(len(u), "big")


class Client:
    """A SCRAM client: builds client-first and client-final, checks the server signature.

    C{name} is a hashlib name ('sha1', 'sha256', 'sha512'); C{gs2_header} is 'n,,', 'y,,' or
    'p=<cb-name>,,' (with an optional authzid), and C{cb_data} the channel-binding data that
    goes into c= after it. The keyword arguments of L{final} let tests forge messages.
    """

    def __init__(self, name, username, password, nonce="clientnonce+/", gs2_header="n,,",
                 cb_data=b"", first_ext=""):
        self.name = name
        self.username = username
        self.password = password
        self.nonce = nonce
        self.gs2_header = gs2_header
        self.cb_data = cb_data
        self.first_ext = first_ext
        self.expected_verifier = None

    def first(self):
        """The client-first-message."""
        name = self.username.replace("=", "=3D").replace(",", "=2C")
        self.first_bare = f"n={name},r={self.nonce}{self.first_ext}"
        return (self.gs2_header + self.first_bare).encode("utf-8")

    def final(self, server_first, c=None, nonce=None, proof=None, final_ext=""):
        """The client-final-message answering C{server_first}; remembers the server's proof."""
        text = server_first.decode("utf-8")
        attrs = dict(a.split("=", 1) for a in text.split(","))
        if not attrs["r"].startswith(self.nonce):
            raise ScramError("the server nonce does not extend the client nonce")
        salt = base64.b64decode(attrs["s"])
        salted = hi(self.name, self.password.encode("utf-8"), salt, int(attrs["i"]))
        client_key = hmac.new(salted, b"Client Key", self.name).digest()
        stored_key = hashlib.new(self.name, client_key).digest()
        if c is None:
            c = base64.b64encode(self.gs2_header.encode("utf-8") + self.cb_data).decode()
        without_proof = f"c={c},r={attrs['r'] if nonce is None else nonce}{final_ext}"
        auth_message = f"{self.first_bare},{text},{without_proof}".encode("utf-8")
        signature = hmac.new(stored_key, auth_message, self.name).digest()
        if proof is None:
            proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, signature))).decode()
        server_key = hmac.new(salted, b"Server Key", self.name).digest()
        self.expected_verifier = b"v=" + base64.b64encode(
            hmac.new(server_key, auth_message, self.name).digest())
        return f"{without_proof},p={proof}".encode("utf-8")

    def verify(self, server_final):
        """Check the server-final-message; raise L{ScramError} unless it carries our v=."""
        if server_final.startswith(b"e="):
            raise ScramError(f"server error {server_final[2:].decode('utf-8', 'replace')}")
        if self.expected_verifier is None or not hmac.compare_digest(
                server_final, self.expected_verifier):
            raise ScramError("the server signature does not match")
