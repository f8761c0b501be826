"""Offline unit tests of the client's message security (JoseCodec, PartyKeys): no broker, no hub; a few seconds.

  cd clients/python && /usr/bin/python3 -m unittest discover -s tests -v

(test/integration/python-client.int.spec.ts runs them too, in `npm test`.) The hub's messages are made here with
jwcrypto as the hub makes them (docs/messaging.md, "The profile"), and docs/messaging.md's examples, which the
hub's own TypeScript codec made, are opened as well.
"""
import http.server
import json
import os
import re
import sys
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from jwcrypto import jwe, jwk, jws  # noqa: E402

from rts_client import JoseCodec, PartyKeys, SecurityError, _public, envelope  # noqa: E402

GUIDE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "docs", "messaging.md")


def new_key():
    return jwk.JWK.generate(kty="EC", crv="P-256")


def alg_of(signing):
    return "EdDSA" if signing.get("kty") == "OKP" else "ES256"


def hub_jwks(signing, encryption, previous_signing=(), retires_at=None):
    """The hub's JWKS as GET /.well-known/jwks.json serves it: previous signing keys (each with rts_retires_at when
    given), the current signing key, then the encryption keys, newest last."""
    keys = [{**_public(k, "sig", alg_of(k)), **({"rts_retires_at": retires_at} if retires_at else {})} for k in previous_signing]
    keys.append(_public(signing, "sig", alg_of(signing)))
    keys.extend(_public(k, "enc", "ECDH-ES+A256KW") for k in encryption)
    return {"keys": keys}


def hub_message(env, signing, receiver_encryption, aud, iss="hub", typ="rts-message+jwt", jti=None, alg=None):
    """What the hub puts on a system's downlink queue: the claims signed with `signing`, encrypted for
    `receiver_encryption` (a key of the receiver; only its public part is used)."""
    claims = {"iss": iss, "aud": aud, "iat": int(time.time()), "jti": env.get("id") if jti is None else jti, "msg": env}
    signed = jws.JWS(json.dumps(claims).encode("utf-8"))
    alg = alg or alg_of(signing)
    signed.add_signature(signing, alg=alg, protected=json.dumps({"alg": alg, "kid": signing.thumbprint(), "typ": typ}))
    public = jwk.JWK(**json.loads(receiver_encryption.export_public()))
    token = jwe.JWE(signed.serialize(compact=True).encode("utf-8"), protected=json.dumps({"alg": "ECDH-ES+A256KW", "enc": "A256GCM", "kid": receiver_encryption.thumbprint(), "cty": "JWT"}))
    token.add_recipient(public)
    return token.serialize(compact=True)


class Jwks:
    """A fetch callable for JoseCodec: serves `current`, counts the reads; `fail` makes a read raise."""

    def __init__(self, current):
        self.current = current
        self.reads = 0
        self.fail = False

    def __call__(self):
        self.reads += 1
        if self.fail:
            raise OSError("the hub is unreachable")
        return self.current


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def upsert(system_id):
    return envelope(system_id, "directory.expert.upserted", {"expertId": "other:e-1", "homeSystemId": "other", "profile": {}, "revision": 1})


def reason(codec, body):
    try:
        codec.decode(body)
    except SecurityError as refusal:
        return refusal.code
    return "accepted"


class DecryptionKeys(unittest.TestCase):
    """A city rotates its own encryption key: the messages already encrypted for the old one still open."""

    def setUp(self):
        self.hub_sig, self.hub_enc = new_key(), new_key()
        self.keys = PartyKeys("city-a")
        self.codec = JoseCodec(self.keys, hub_jwks(self.hub_sig, [self.hub_enc]))

    def test_a_message_encrypted_for_the_previous_key_is_opened_after_rotation(self):
        old = self.keys.encryption
        in_flight = hub_message(upsert("city-a"), self.hub_sig, old, "city-a")  # queued before the hub knew the new key
        new_kid = self.keys.rotate_encryption()
        after = hub_message(upsert("city-a"), self.hub_sig, self.keys.encryption, "city-a")  # once it is registered
        self.assertNotEqual(new_kid, old.thumbprint())
        self.assertEqual(self.keys.decryption_kids, [old.thumbprint(), new_kid])
        self.assertEqual(self.codec.decode(in_flight)["systemId"], "city-a")
        self.assertEqual(self.codec.decode(after)["systemId"], "city-a")
        # The system registers its current keys: the new encryption key, never the previous one.
        self.assertEqual([k["kid"] for k in self.keys.public_jwks()], [self.keys.signing_kid, new_kid])

    def test_a_dropped_key_and_a_stranger_key_are_not_for_us(self):
        old = self.keys.encryption
        in_flight = hub_message(upsert("city-a"), self.hub_sig, old, "city-a")
        self.keys.rotate_encryption()
        self.keys.drop_decryption_key(old.thumbprint())
        self.assertEqual(reason(self.codec, in_flight), "not_for_us")
        self.assertEqual(reason(self.codec, hub_message(upsert("city-a"), self.hub_sig, new_key(), "city-a")), "not_for_us")
        with self.assertRaises(ValueError):
            self.keys.drop_decryption_key(self.keys.encryption_kid)

    def test_the_previous_keys_are_saved_and_loaded(self):
        old = self.keys.encryption
        self.keys.rotate_encryption()
        again = PartyKeys.load(json.loads(json.dumps(self.keys.export())))
        self.assertEqual(again.decryption_kids, self.keys.decryption_kids)
        codec = JoseCodec(again, hub_jwks(self.hub_sig, [self.hub_enc]))
        self.assertEqual(codec.decode(hub_message(upsert("city-a"), self.hub_sig, old, "city-a"))["systemId"], "city-a")
        # A file saved before previous keys existed still loads.
        saved = self.keys.export()
        del saved["previousEncryption"]
        self.assertEqual(PartyKeys.load(saved).decryption_kids, [self.keys.encryption_kid])

    def test_the_guide_s_examples_made_by_the_hub_s_codec_open_with_a_previous_key(self):
        with open(GUIDE, encoding="utf-8") as handle:
            guide = handle.read()
        blocks = {m.group(1): json.loads(m.group(2))["keys"] for m in re.finditer(r"`([a-z-]+)` \(private JWKs[^\n]*\n\n```jwks\n([\s\S]*?)```", guide)}
        examples = re.findall(r"#### `([a-z.]+)` \(downlink: hub to chengdu\)\n\n```json\n[\s\S]*?```\n\n```jwe\n(\S+)\n```", guide)
        self.assertGreaterEqual(len(examples), 4)
        chengdu = {k["use"]: jwk.JWK(**k) for k in blocks["chengdu"]}
        hub = {k["use"]: jwk.JWK(**k) for k in blocks["hub"]}
        keys = PartyKeys("chengdu", chengdu["sig"], chengdu["enc"])
        keys.rotate_encryption()  # the examples were encrypted for what is now the previous key
        codec = JoseCodec(keys, hub_jwks(hub["sig"], [hub["enc"]]))
        for type_, body in examples:
            self.assertEqual(codec.decode(body)["type"], type_)


class HubKeyRefresh(unittest.TestCase):
    """The hub rotates its signing key: the client re-reads the JWKS once, rate-limited, then verifies again."""

    def setUp(self):
        self.hub_sig, self.hub_enc = new_key(), new_key()
        self.keys = PartyKeys("city-a")
        self.jwks = Jwks(hub_jwks(self.hub_sig, [self.hub_enc]))
        self.clock = Clock()
        self.codec = JoseCodec(self.keys, self.jwks, refresh_interval=30, clock=self.clock)

    def message(self, signing):
        return hub_message(upsert("city-a"), signing, self.keys.encryption, "city-a")

    def test_a_signing_kid_not_seen_yet_triggers_one_re_read_and_is_accepted(self):
        self.assertEqual(self.jwks.reads, 1)
        self.assertEqual(reason(self.codec, self.message(self.hub_sig)), "accepted")
        self.assertEqual(self.jwks.reads, 1)  # a known kid reads nothing
        rotated = new_key()
        self.jwks.current = hub_jwks(rotated, [self.hub_enc], previous_signing=[self.hub_sig])
        for _ in range(72):  # the tester's run: every hub message after the rotation
            self.assertEqual(reason(self.codec, self.message(rotated)), "accepted")
        self.assertEqual(self.jwks.reads, 2)  # one re-read for all of them
        self.assertEqual(reason(self.codec, self.message(self.hub_sig)), "accepted")  # the previous key, still listed

    def test_a_kid_the_refreshed_jwks_does_not_hold_is_refused_and_reads_are_rate_limited(self):
        stranger = new_key()
        self.assertEqual(reason(self.codec, self.message(stranger)), "unknown_key")
        self.assertEqual(self.jwks.reads, 2)  # re-read once, then refused
        self.clock.now += 29
        for _ in range(10):
            self.assertEqual(reason(self.codec, self.message(new_key())), "unknown_key")
        self.assertEqual(self.jwks.reads, 2)  # not again within the interval
        # Within the interval a kid is refused without a re-read, even one the hub has started to publish.
        rotated = new_key()
        self.jwks.current = hub_jwks(rotated, [self.hub_enc], previous_signing=[self.hub_sig])
        self.assertEqual(reason(self.codec, self.message(rotated)), "unknown_key")
        self.assertEqual(self.jwks.reads, 2)
        self.clock.now += 1  # 30 s after the last re-read
        self.assertEqual(reason(self.codec, self.message(rotated)), "accepted")
        self.assertEqual(self.jwks.reads, 3)
        self.assertEqual(reason(self.codec, self.message(stranger)), "unknown_key")
        self.assertEqual(self.jwks.reads, 3)

    def test_a_failed_re_read_counts_as_one_and_keeps_the_keys(self):
        self.jwks.fail = True
        self.assertEqual(reason(self.codec, self.message(new_key())), "unknown_key")
        self.assertEqual(self.jwks.reads, 2)
        self.assertEqual(reason(self.codec, self.message(new_key())), "unknown_key")
        self.assertEqual(self.jwks.reads, 2)
        self.assertEqual(reason(self.codec, self.message(self.hub_sig)), "accepted")
        self.jwks.fail = False
        self.jwks.current = {"keys": []}  # a JWKS without keys is a failed read too
        self.clock.now += 30
        self.assertEqual(reason(self.codec, self.message(new_key())), "unknown_key")
        self.assertEqual(self.jwks.reads, 3)
        self.assertEqual(reason(self.codec, self.message(self.hub_sig)), "accepted")

    def test_a_re_read_takes_the_hub_s_newest_encryption_key_for_what_we_send(self):
        newer_enc, rotated = new_key(), new_key()
        self.jwks.current = hub_jwks(rotated, [self.hub_enc, newer_enc], previous_signing=[self.hub_sig])
        self.assertEqual(reason(self.codec, self.message(rotated)), "accepted")
        header = jwe.JWE()
        header.deserialize(self.codec.encode(envelope("city-a", "expert.retired", {"localExpertId": "e-1"})))
        self.assertEqual(header.jose_header["kid"], newer_enc.thumbprint())

    def test_a_retired_hub_signing_key_is_refused_from_its_date_on(self):
        retired, current = new_key(), new_key()
        past = JoseCodec(self.keys, hub_jwks(current, [self.hub_enc], previous_signing=[retired], retires_at="2020-01-01T00:00:00Z"))
        self.assertEqual(reason(past, self.message(retired)), "unknown_key")
        self.assertEqual(reason(past, self.message(current)), "accepted")
        future = JoseCodec(self.keys, hub_jwks(current, [self.hub_enc], previous_signing=[retired], retires_at="2999-01-01T00:00:00.000Z"))
        self.assertEqual(reason(future, self.message(retired)), "accepted")

    def test_a_jwks_given_as_a_dict_is_never_re_read(self):
        codec = JoseCodec(self.keys, hub_jwks(self.hub_sig, [self.hub_enc]))
        self.assertFalse(codec.refresh_hub_keys())
        self.assertEqual(reason(codec, self.message(new_key())), "unknown_key")

    def test_a_jwks_url_is_read_over_http(self):
        served = {"jwks": hub_jwks(self.hub_sig, [self.hub_enc]), "reads": 0}

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                served["reads"] += 1
                body = json.dumps(served["jwks"]).encode("utf-8")
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            codec = JoseCodec(self.keys, f"http://127.0.0.1:{server.server_port}/.well-known/jwks.json", clock=self.clock)
            rotated = new_key()
            served["jwks"] = hub_jwks(rotated, [self.hub_enc], previous_signing=[self.hub_sig])
            self.assertEqual(reason(codec, self.message(rotated)), "accepted")
            self.assertEqual(served["reads"], 2)
        finally:
            server.shutdown()
            server.server_close()


class Reasons(unittest.TestCase):
    """The reasons of docs/messaging.md's checks, as the TypeScript SDK answers them."""

    def setUp(self):
        self.hub_sig, self.hub_enc = new_key(), new_key()
        self.keys = PartyKeys("city-a")
        self.codec = JoseCodec(self.keys, hub_jwks(self.hub_sig, [self.hub_enc]))

    def test_a_downlink_envelope_for_another_system_is_sender_mismatch(self):
        self.assertEqual(reason(self.codec, hub_message(upsert("city-b"), self.hub_sig, self.keys.encryption, "city-a")), "sender_mismatch")

    def test_claims_for_another_party_are_not_for_us_and_another_issuer_is_sender_mismatch(self):
        self.assertEqual(reason(self.codec, hub_message(upsert("city-a"), self.hub_sig, self.keys.encryption, "city-b")), "not_for_us")
        self.assertEqual(reason(self.codec, hub_message(upsert("city-a"), self.hub_sig, self.keys.encryption, "city-a", iss="city-b")), "sender_mismatch")

    def test_a_jws_of_another_typ_or_with_another_jti_is_malformed_though_signed(self):
        # The hub and the SDK refuse these (docs/messaging.md, malformed_jose); the client took them.
        self.assertEqual(reason(self.codec, hub_message(upsert("city-a"), self.hub_sig, self.keys.encryption, "city-a")), "accepted")
        self.assertEqual(reason(self.codec, hub_message(upsert("city-a"), self.hub_sig, self.keys.encryption, "city-a", typ="JWT")), "malformed_jose")
        self.assertEqual(reason(self.codec, hub_message(upsert("city-a"), self.hub_sig, self.keys.encryption, "city-a", jti=str(uuid.uuid4()))), "malformed_jose")

    def test_claims_without_an_envelope_are_malformed(self):
        env = upsert("city-a")
        del env["id"]
        self.assertEqual(reason(self.codec, hub_message(env, self.hub_sig, self.keys.encryption, "city-a")), "malformed_jose")
        self.assertEqual(reason(self.codec, "a.b.c.d.e"), "malformed_jose")
        self.assertEqual(reason(self.codec, str(uuid.uuid4())), "malformed_jose")


class TheProfile(unittest.TestCase):
    """What docs/messaging.md's profile allows the hub to send: an EdDSA (Ed25519) signing key, and aud as an array of
    the one receiver (RFC 7519 4.1.3). The client verified ES256 only and took aud as a string only (found by the
    Python integrator's review)."""

    def setUp(self):
        self.hub_enc = new_key()
        self.keys = PartyKeys("city-a")

    def test_a_hub_signing_with_ed25519_is_accepted(self):
        hub_sig = jwk.JWK.generate(kty="OKP", crv="Ed25519")
        codec = JoseCodec(self.keys, hub_jwks(hub_sig, [self.hub_enc]))
        self.assertEqual(reason(codec, hub_message(upsert("city-a"), hub_sig, self.keys.encryption, "city-a")), "accepted")

    def test_aud_as_an_array_of_the_one_receiver_is_taken_and_of_two_is_malformed(self):
        hub_sig = new_key()
        codec = JoseCodec(self.keys, hub_jwks(hub_sig, [self.hub_enc]))
        self.assertEqual(reason(codec, hub_message(upsert("city-a"), hub_sig, self.keys.encryption, ["city-a"])), "accepted")
        self.assertEqual(reason(codec, hub_message(upsert("city-a"), hub_sig, self.keys.encryption, ["city-b"])), "not_for_us")
        self.assertEqual(reason(codec, hub_message(upsert("city-a"), hub_sig, self.keys.encryption, ["city-a", "city-b"])), "malformed_jose")


if __name__ == "__main__":
    unittest.main()
