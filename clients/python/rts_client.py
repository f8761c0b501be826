"""A minimal client of the regional telemedicine hub (telemed-rts), in Python, without the TypeScript SDK.

Uses only Debian's packages: python3-qpid-proton (AMQP 1.0) and python3-jwcrypto (JOSE). It follows the wire
protocol of docs/messaging.md ("Message security"):

  * every envelope {id, type, version: 1, systemId, correlationId, time, payload} is wrapped in the claim set
    {iss, aud, iat, jti, msg}, signed as a compact JWS (ES256, header kid = RFC 7638 thumbprint of the signing
    key, typ 'rts-message+jwt'), and the JWS is encrypted as a compact JWE for the receiver
    (alg ECDH-ES+A256KW, enc A256GCM, header kid = the receiver's encryption key, cty 'JWT');
  * the JWE travels as the AMQP body (an AMQP value string), durable, with the envelope fields in
    application-properties (messageId, type, version, systemId, correlationId);
  * a system registers its two public keys over HTTP (POST /systems with `keys`), and reads the hub's from
    GET /.well-known/jwks.json.
"""
import json
import re
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone

from jwcrypto import jwe, jwk, jws
from proton import Message, SSLDomain
from proton.utils import BlockingConnection

KEY_MANAGEMENT_ALG = "ECDH-ES+A256KW"
CONTENT_ENCRYPTION = "A256GCM"
SIGNING_ALG = "ES256"
JWS_TYPE = "rts-message+jwt"
HUB = "hub"
CONTRACT_VERSION = 1


class SecurityError(Exception):
    """A message that must not be processed; `code` is one of the hub's reasons (bad_signature, ...)."""

    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code


def _public(key, use, alg):
    pub = key.export_public(as_dict=True)
    pub.update({"kid": key.thumbprint(), "use": use, "alg": alg})
    return pub


class PartyKeys:
    """A system's own key pairs: one to sign (ES256 on P-256), one to receive encrypted messages (P-256)."""

    def __init__(self, owner, signing=None, encryption=None):
        self.owner = owner
        self.signing = signing or jwk.JWK.generate(kty="EC", crv="P-256")
        self.encryption = encryption or jwk.JWK.generate(kty="EC", crv="P-256")

    @property
    def signing_kid(self):
        return self.signing.thumbprint()

    @property
    def encryption_kid(self):
        return self.encryption.thumbprint()

    def public_jwks(self):
        """What the system registers with the hub: its public signing and encryption keys, kid/use/alg set."""
        return [_public(self.signing, "sig", SIGNING_ALG), _public(self.encryption, "enc", KEY_MANAGEMENT_ALG)]

    def export(self):
        """The private keys as JSON (keep it secret)."""
        return {"owner": self.owner, "signing": json.loads(self.signing.export_private()), "encryption": json.loads(self.encryption.export_private())}

    @classmethod
    def load(cls, data):
        return cls(data["owner"], jwk.JWK(**data["signing"]), jwk.JWK(**data["encryption"]))


class HubHttp:
    """The hub's HTTP API, as far as a system needs it to join."""

    def __init__(self, base_url, headers=None):
        self.base_url = base_url.rstrip("/")
        self.headers = headers or {}

    def _call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = {"accept": "application/json", **self.headers}
        if data is not None:
            headers["content-type"] = "application/json"
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def register_system(self, system_id, name, area, keys):
        status, body = self._call("POST", "/systems", {"id": system_id, "name": name, "area": area, "keys": keys.public_jwks()})
        if status not in (200, 201):
            raise RuntimeError(f"POST /systems: HTTP {status} {body}")
        return body

    def jwks(self):
        status, body = self._call("GET", "/.well-known/jwks.json")
        if status != 200:
            raise RuntimeError(f"GET /.well-known/jwks.json: HTTP {status}")
        return body

    def get(self, path):
        return self._call("GET", path)


class JoseCodec:
    """Sign as `keys.owner` and encrypt for the hub; open what the hub sent us (decrypt, verify, check)."""

    def __init__(self, keys, hub_jwks):
        self.keys = keys
        self.hub_signing = {}
        self.hub_encryption = None
        for entry in hub_jwks["keys"]:
            key = jwk.JWK(**{k: v for k, v in entry.items() if not k.startswith("rts_")})
            if entry.get("use") == "sig":
                self.hub_signing[entry["kid"]] = key
            elif entry.get("use") == "enc" and "rts_retires_at" not in entry:
                self.hub_encryption = (entry["kid"], key)  # the last one listed is the newest
        if self.hub_encryption is None or not self.hub_signing:
            raise ValueError("the hub's JWKS has no signing or no encryption key")

    def encode(self, envelope):
        claims = {"iss": self.keys.owner, "aud": HUB, "iat": int(time.time()), "jti": envelope["id"], "msg": envelope}
        signed = jws.JWS(json.dumps(claims, separators=(",", ":")).encode("utf-8"))
        signed.add_signature(self.keys.signing, alg=SIGNING_ALG, protected=json.dumps({"alg": SIGNING_ALG, "kid": self.keys.signing_kid, "typ": JWS_TYPE}))
        inner = signed.serialize(compact=True)
        kid, key = self.hub_encryption
        protected = {"alg": KEY_MANAGEMENT_ALG, "enc": CONTENT_ENCRYPTION, "kid": kid, "cty": "JWT"}
        token = jwe.JWE(inner.encode("utf-8"), protected=json.dumps(protected))
        token.add_recipient(key)
        return token.serialize(compact=True)

    def decode(self, body):
        if not isinstance(body, str) or body.count(".") != 4:
            raise SecurityError("malformed_jose", "the body is not a compact JWE")
        outer = jwe.JWE()
        try:
            outer.deserialize(body)
        except Exception as error:  # noqa: BLE001
            raise SecurityError("malformed_jose", "the JWE could not be read") from error
        header = outer.jose_header
        if header.get("alg") != KEY_MANAGEMENT_ALG or header.get("enc") != CONTENT_ENCRYPTION:
            raise SecurityError("malformed_jose", "unexpected JWE algorithms")
        if header.get("kid") != self.keys.encryption_kid:
            raise SecurityError("not_for_us", "encrypted for a key that is not ours")
        try:
            outer.decrypt(self.keys.encryption)
        except Exception as error:  # noqa: BLE001
            raise SecurityError("bad_signature", "the encrypted message failed its integrity check") from error
        inner = jws.JWS()
        try:
            inner.deserialize(outer.payload.decode("utf-8"))
        except Exception as error:  # noqa: BLE001
            raise SecurityError("malformed_jose", "the content is not a compact JWS") from error
        signing_kid = inner.jose_header.get("kid")
        if signing_kid not in self.hub_signing:
            raise SecurityError("unknown_key", "the signing key is not one of the hub's")
        try:
            inner.verify(self.hub_signing[signing_kid], alg=SIGNING_ALG)
        except Exception as error:  # noqa: BLE001
            raise SecurityError("bad_signature", "the signature does not verify") from error
        claims = json.loads(inner.payload.decode("utf-8"))
        msg = claims.get("msg") or {}
        if claims.get("iss") != HUB:
            raise SecurityError("sender_mismatch", "not signed as the hub")
        if claims.get("aud") != self.keys.owner or msg.get("systemId") != self.keys.owner:
            raise SecurityError("not_for_us", "addressed to another system")
        return msg


def now_iso():
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def envelope(system_id, type_, payload, correlation_id=None, message_id=None):
    id_ = message_id or str(uuid.uuid4())
    return {"id": id_, "type": type_, "version": CONTRACT_VERSION, "systemId": system_id, "correlationId": correlation_id or id_, "time": now_iso(), "payload": payload}


def group_id(env):
    """The AMQP group-id for an uplink envelope: what it is about. With several hub processes, the broker hands
    the messages of one group to one hub, which applies them in order. None for a batch (many experts)."""
    type_, payload = env["type"], env["payload"]
    if type_ in ("expert.registered", "expert.changed", "expert.retired"):
        return "expert/%s:%s" % (payload.get("homeSystemId", env["systemId"]), payload["localExpertId"])
    if type_ == "system.join.requested":
        return "system/%s" % env["systemId"]
    if isinstance(payload.get("consultationId"), str):
        return "consultation/%s" % payload["consultationId"]
    return None


class RtsClient:
    """One AMQP connection: durable sends to the uplink queue, a receiver on this system's downlink queue."""

    def __init__(self, broker_url, system_id, codec, uplink="rts.uplink", downlink_prefix="rts.downlink.", ca_file=None, cert_file=None, key_file=None):
        """broker_url: amqp[s]://[user:password@]host:port (a user and password mean SASL PLAIN). With amqps:// the
        broker's certificate is verified against ca_file (a PEM file; else the system's CAs) and for the host name;
        Qpid Proton checks that name against the certificate's DNS names or CN, not its IP address entries.
        cert_file and key_file (PEM): this system's certificate, for a broker that asks for one (mutual TLS)."""
        self.system_id = system_id
        self.codec = codec
        ssl_domain = None
        if broker_url.startswith("amqps://"):
            ssl_domain = SSLDomain(SSLDomain.MODE_CLIENT)
            if ca_file:
                ssl_domain.set_trusted_ca_db(ca_file)
            if cert_file:
                ssl_domain.set_credentials(cert_file, key_file, None)
            ssl_domain.set_peer_authentication(SSLDomain.VERIFY_PEER_NAME)
        try:
            self.connection = BlockingConnection(broker_url, timeout=30, ssl_domain=ssl_domain)
        except Exception as error:  # noqa: BLE001 - proton's errors name the URL, password included
            raise ConnectionError(re.sub(r"//[^@/\s]*@", "//", str(error))) from None
        self.sender = self.connection.create_sender(uplink)
        self.receiver = None
        self.downlink = downlink_prefix + system_id
        self.seen = set()

    def send(self, type_, payload, correlation_id=None, message_id=None):
        env = envelope(self.system_id, type_, payload, correlation_id, message_id)
        properties = {"messageId": env["id"], "type": type_, "version": CONTRACT_VERSION, "systemId": self.system_id, "correlationId": env["correlationId"], "contentType": "application/jose", "codec": "jose"}
        # BlockingSender.send waits for the broker's disposition and raises unless it is accepted.
        self.sender.send(Message(body=self.codec.encode(env), durable=True, properties=properties, id=env["id"], correlation_id=env["correlationId"], subject=type_, group_id=group_id(env)))
        return env

    def receive(self, timeout=30):
        """The next downlink envelope (decoded and verified), accepted once returned; None on timeout.
        A message that fails the security checks is rejected (the hub's copy is not processed) and skipped."""
        if self.receiver is None:
            self.receiver = self.connection.create_receiver(self.downlink, credit=10)
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                message = self.receiver.receive(timeout=max(0.1, deadline - time.time()))
            except Exception:  # noqa: BLE001 - proton.utils.Timeout
                return None
            try:
                env = self.codec.decode(message.body)
            except SecurityError:
                self.receiver.reject()
                continue
            self.receiver.accept()
            if env["id"] in self.seen:
                continue  # a redelivery: dedupe on our envelope id, never the AMQP message-id
            self.seen.add(env["id"])
            return env
        return None

    def close(self):
        self.connection.close()
