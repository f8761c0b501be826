"""A minimal client of the regional telemedicine hub (telemed-rts), in Python, without the TypeScript SDK.

Uses only Debian's packages: python3-qpid-proton (AMQP 1.0) and python3-jwcrypto (JOSE). It follows the wire
protocol of docs/messaging.md ("Message security"):

  * every envelope {id, type, version: 1, systemId, correlationId, time, payload} is wrapped in the claim set
    {iss, aud, iat, jti, msg}, signed as a compact JWS (ES256; the hub's may be EdDSA, an Ed25519 key, which is
    verified too; header kid = RFC 7638 thumbprint of the signing key, typ 'rts-message+jwt'; aud a string, or an
    array of the one receiver), and the JWS is encrypted as a compact JWE for the receiver
    (alg ECDH-ES+A256KW, enc A256GCM, header kid = the receiver's encryption key, cty 'JWT');
  * the JWE travels as the AMQP body (an AMQP value string), durable, with the envelope fields in
    application-properties (messageId, type, version, systemId, correlationId);
  * a system registers its two public keys over HTTP (POST /systems with `keys`), and reads the hub's from
    GET /.well-known/jwks.json;
  * the hub's HTTP API is trust material (its JWKS is what every hub message is verified against; the calls carry
    an operator's token): its URL must be https://, or http:// only on a loopback host (localhost, 127.0.0.0/8,
    ::1), else HubHttp and JoseCodec refuse it (ValueError) unless given insecure_http=True; no redirect is
    followed (RedirectRefused); the JWKS is asked for with cache-control: no-cache, so that a caching proxy
    revalidates it; a request waits HTTP_TIMEOUT (10) seconds at most;
  * the receiver checks in the order of docs/messaging.md and dead-letters with its reasons, as the TypeScript
    SDK does (a downlink envelope whose systemId is not ours is sender_mismatch; a JWE for none of our keys, or
    claims whose aud is not us, not_for_us);
  * rotation without downtime: PartyKeys decrypts with any of its current and previous encryption keys, by the
    JWE's kid (rotate_encryption, then HubHttp.add_keys, later retire_key and drop_decryption_key); JoseCodec
    re-reads the hub's JWKS when a hub message is signed with a kid it does not know and verifies once more before
    it refuses the message as unknown_key, and re-reads it before a message once the keys are more than max_age
    (300) seconds old, so that a key the hub no longer lists (revoked) stops being trusted; each at most once per
    refresh_interval (30) seconds (separately: a timed re-read does not hold off the one for the hub's new signing
    key), and a failed re-read keeps the keys it had.

And the rules of docs/messaging.md around it:

  * JSON is written compact and UTF-8 (ensure_ascii=False): Chinese text takes 3 bytes a character, not 6;
  * a body must stay under the broker's 1 MiB (wireFormat.maxFrameSize=1048576): a larger one makes the broker close
    the sender's whole connection. send() refuses one over MAX_BODY_BYTES (MessageTooLarge), and join_with_experts
    cuts experts.batch messages at 500 experts and at 384 KiB of the experts' JSON (with message security the body
    is about 16/9 of that);
  * a downlink message is accepted only after the caller's handler returned; a handler that raises hands it back
    as modified with delivery-failed (the broker redelivers it and counts the attempt); one that cannot be
    processed (a security check failed, not an AMQP string, DeadLetter raised, too many attempts) is copied to
    rts.dlq with the x-dlq-* properties and an rts_dlq_id made of the message as the hub makes its own
    (dead_letter_id_for: a copy sent again after its accept was lost is the same dead letter), and accepted once the
    copy is;
  * a text people read (an expert profile's, a join's name, a consultation's: docs/messaging.md, "Text") that holds
    something and shows nothing is refused before it is sent (ContractViolation, naming the fields as the TypeScript
    SDK does), where the hub would dead-letter the message as bad_schema;
  * a lost connection is reconnected with backoff, over the list of broker URLs given (failover), and a send that
    was not accepted is sent again with the same envelope id, a bounded number of times;
  * consultation messages say they read `consultation.refused` (application property rts_accepts): when the hub
    refuses one for good (dead-letters it), it sends that notice to our downlink queue, and receive() hands it to
    the handler like any other type (payload: consultationId, refusedType, refusedMessageId, reason, detail).

It logs through the standard logging module, logger "rts_client", at the events and levels the TypeScript SDK logs
(docs/messaging.md, "Logging"): each send, each consultation message handled, retries, dead letters, connection loss
and failover, named by ids only (never a CPR number, a name, a text, a body, a token or a key). It adds no handler:
the application configures logging (city_system.py calls logging.basicConfig).
"""
import collections
import hashlib
import ipaddress
import json
import logging
import re
import threading
import time
import unicodedata
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone
from urllib.parse import urlsplit

from jwcrypto import jwe, jwk, jws
from proton import ConnectionException, Delivery, Endpoint, LinkException, Message, SSLDomain, Timeout, Url, int32, timestamp
from proton.utils import BlockingConnection

KEY_MANAGEMENT_ALG = "ECDH-ES+A256KW"
CONTENT_ENCRYPTION = "A256GCM"
SIGNING_ALG = "ES256"
JWS_TYPE = "rts-message+jwt"
HUB = "hub"
CONTRACT_VERSION = 1
MAX_BATCH_EXPERTS = 500
# As the hub's MAX_BATCH_JSON_BYTES (src/application/directory/directory-messages.ts): with message security the
# body is about 16/9 of the JSON (a JWS, base64url, inside a JWE, base64url again): 384 KiB is ~680 KiB on the wire.
MAX_BATCH_JSON_BYTES = 384 * 1024
# The broker closes the connection of a sender whose message exceeds wireFormat.maxFrameSize (1 MiB, as deployed);
# the rest of the 1 MiB is left for the properties and the AMQP framing.
MAX_BODY_BYTES = 1024 * 1024 - 32 * 1024
DEAD_LETTER_QUEUE = "rts.dlq"
# Lost connections excused per message (the TypeScript SDK's MAX_EXCUSED_LOSSES), and messages remembered so.
MAX_EXCUSED_LOSSES = 20
MAX_EXCUSED_MESSAGES = 10_000
# The downlink types beyond the first contract this client reads, as the application property rts_accepts of its
# consultation messages: the hub sends consultation.refused only to a sender that says so (an older client would
# not know the type). receive() passes every type to the handler, so a handler that ignores it is enough.
ACCEPTS_PROPERTY = "rts_accepts"
ACCEPTED_EXTRA_TYPES = "consultation.refused"

# ---- texts that must show something ------------------------------------------------------------------------------
# As the hub's showsNothing (src/domain/shared/text-limits.ts): a text people read where it is shown that holds
# something must show something. Blank: nothing left of it without white space (White_Space, Zs, Zl, Zp), controls
# (Cc), format characters (Cf) and the other default-ignorable code points, the prepended concatenation marks (Cf, but
# drawn) being visible. A text that trimmed as JavaScript trims (String.prototype.trim) is empty is left to the hub's
# own rule for the field (refused where one is required; an empty title, summary or reason says there is none).
# unicodedata knows the Unicode of this Python (3.11: 14.0), the hub's Node its ICU's (17.0): the characters below are
# listed, not read from unicodedata, so that a Python older than the hub's Unicode refuses what the hub refuses (the
# Cf characters assigned since 14.0, the Egyptian hieroglyph format controls U+13439-U+1343F of Unicode 15, are listed
# with the default-ignorable ones); test/integration/python-client.int.spec.ts compares every code point with the
# hub's function, so a Unicode after 17 that assigns more shows there.
_JS_TRIMMED = frozenset("\t\n\x0b\x0c\r \xa0\u1680\u2028\u2029\u202f\u205f\u3000\ufeff" + "".join(chr(c) for c in range(0x2000, 0x200B)))
_PREPENDED_CONCATENATION_MARKS = frozenset(chr(c) for c in (*range(0x0600, 0x0606), 0x06DD, 0x070F, 0x0890, 0x0891, 0x08E2, 0x110BD, 0x110CD))
_INVISIBLE_CATEGORIES = frozenset(("Cc", "Cf", "Zs", "Zl", "Zp"))
# Default_Ignorable_Code_Point (DerivedCoreProperties.txt, Unicode 17) that is not Cf in every Unicode since 14.0.
_IGNORABLE_RANGES = ((0x034F, 0x034F), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F), (0x2065, 0x2065), (0x3164, 0x3164),
                     (0xFE00, 0xFE0F), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF))
# The Cf characters of Unicode 17 that Python 3.11's unicodedata (Unicode 14.0) does not know.
_ASSIGNED_SINCE_14 = ((0x13439, 0x1343F),)


def _invisible(c):
    n = ord(c)
    return (unicodedata.category(c) in _INVISIBLE_CATEGORIES or any(lo <= n <= hi for lo, hi in _IGNORABLE_RANGES)
            or any(lo <= n <= hi for lo, hi in _ASSIGNED_SINCE_14))


def is_blank_text(text):
    """The hub's isBlankText: nothing is left of `text` without the characters that show nothing (empty is blank)."""
    return all(_invisible(c) for c in text) and not any(c in _PREPENDED_CONCATENATION_MARKS for c in text)


def shows_nothing(text):
    """The hub's showsNothing: `text` holds something (JavaScript's trim() leaves something) and shows nothing."""
    return any(c not in _JS_TRIMMED for c in text) and is_blank_text(text)


INVISIBLE_TEXT_MESSAGE = "must show a visible character: it holds only white space, format or other invisible characters (zero-width, bidi controls, soft hyphen, ...)"
_PROFILE_TEXTS = (("name",), ("title",), ("specialties", "*"), ("location", "city"), ("location", "hospital"))
# The texts shown to people, by message type, as paths in the payload ("*": each item of a list): docs/messaging.md, Text.
SHOWN_TEXTS = {
    "system.join.requested": (("name",),),
    "experts.batch": tuple(("experts", "*", *path) for path in _PROFILE_TEXTS),
    "expert.registered": tuple(("profile", *path) for path in _PROFILE_TEXTS),
    "expert.changed": tuple(("profile", *path) for path in _PROFILE_TEXTS),
    "consultation.requested": (("applicantClinician",), ("clinicalQuestion",), ("summary",)),
    "consultation.decline": (("reason",),),
    "consultation.cancel": (("reason",),),
    "consultation.report": (("diagnosis",), ("recommendations",)),
}


def _texts_at(value, path, at):
    if not path:
        if isinstance(value, str):
            yield at, value
        return
    head, rest = path[0], path[1:]
    if head == "*":
        for index, item in enumerate(value if isinstance(value, list) else ()):
            yield from _texts_at(item, rest, f"{at}.{index}")
    elif isinstance(value, dict) and head in value:
        yield from _texts_at(value[head], rest, f"{at}.{head}")


class ContractViolation(ValueError):
    """A message that breaks the message contract (the TypeScript SDK's ContractViolationError): the hub would
    dead-letter it as bad_schema, so it is not sent. `problems`: (path, message) pairs, naming fields, never values."""

    def __init__(self, type_, problems):
        self.type, self.problems = type_, list(problems)
        super().__init__(f"{type_} breaks the message contract: " + "; ".join(f"{path}: {message}" for path, message in self.problems))


def invisible_texts(type_, payload):
    """The payload paths (payload.profile.name, payload.experts.3.specialties.0, ...) of the texts shown to people that
    show nothing (shows_nothing), for an uplink message of `type_`."""
    return [at for path in SHOWN_TEXTS.get(type_, ()) for at, text in _texts_at(payload, path, "payload") if shows_nothing(text)]


def check_shown_texts(type_, payload):
    """Raises ContractViolation when a text people read (docs/messaging.md, Text) shows nothing: sent, the hub would
    dead-letter the message (bad_schema) instead."""
    problems = invisible_texts(type_, payload)
    if problems:
        raise ContractViolation(type_, [(path, INVISIBLE_TEXT_MESSAGE) for path in problems])


# ---- logging ---------------------------------------------------------------------------------------------------
# The library only logs; the application decides where to (logging.basicConfig, a handler of its own). No handler
# is added here, as Python's logging HOWTO asks of a library. Every line is the SDK's message followed by its
# fields as key=value (so a plain formatter shows the ids), and the same fields as attributes of the LogRecord
# (extra=), for a JSON formatter.
log = logging.getLogger("rts_client")

# "May hold a CPR number", as the hub's mayHoldCprDigits (src/domain/monitoring/cpr-like.ts), the rule its
# message-trace.ts applies to what a sender set before it logs it: numbers are maximal runs of ASCII digits with
# 1-3 separators between two digits; one holds a CPR number when ten (or twelve) of its digits, starting at any of
# them, make ddmmyy ssss, ddmmyyyy ssss or yyyymmdd ssss with separators only between those groups (or one
# anywhere among ten digits) and a real calendar date. The hub's own random ids (a UUID of RFC 9562, its OID
# 2.25.<n>, p + 32 hex digits, patient- + 12 hex digits) are not looked into. test/integration/python-client.int.spec.ts
# checks this port against the TypeScript function on the same values.
_SEPARATOR = "[-._:/+\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff\u00ad\u034f\u061c\u180e\u200b-\u200f\u2060-\u2064\u2010-\u2015\u2212\u301c\u30fc\ufe58\ufe63\uff0d\uff5e]"
_NUMBER = re.compile(f"[0-9]+(?:{_SEPARATOR}{{1,3}}[0-9]+)*")
_IS_SEPARATOR = re.compile(f"{_SEPARATOR}")
_HEX = "[0-9a-fA-F]"
_UUID_TEXT = f"{_HEX}{{8}}-{_HEX}{{4}}-[1-8]{_HEX}{{3}}-[89abAB]{_HEX}{{3}}-{_HEX}{{12}}"
_HUB_ID = re.compile(f"(?<![0-9A-Za-z.])(?:{_UUID_TEXT}|p[0-9a-f]{{32}}|patient-[0-9a-f]{{12}}|2\\.25\\.(?:0|[1-9][0-9]{{0,38}}))(?![0-9A-Za-z]|\\.[0-9])")
_CPR_FORMS = ((2, 2, 2, 4), (2, 2, 4, 4), (4, 2, 2, 4))  # ddmmyy ssss, ddmmyyyy ssss, yyyymmdd ssss


def _is_uuid_oid(oid):
    n = int(oid[5:])
    if n >= 1 << 128:
        return False
    version = (n >> 76) & 0xF
    return 1 <= version <= 8 and ((n >> 62) & 0x3) == 0x2


def _is_calendar_date(year, month, day):
    if not (1000 <= year <= 9999 and 1 <= month <= 12 and day >= 1):
        return False
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    return day <= (29 if leap else 28) if month == 2 else day <= (30 if month in (4, 6, 9, 11) else 31)


def _real_date(form, parts):
    if form == (2, 2, 2, 4):
        day, month, yy = parts[0], parts[1], parts[2]
        return _is_calendar_date(2000 + yy, month, day) or _is_calendar_date(1900 + yy, month, day)
    year, month, day = (parts[2], parts[1], parts[0]) if form == (2, 2, 4, 4) else (parts[0], parts[1], parts[2])
    return 1800 <= year <= 2099 and _is_calendar_date(year, month, day)


def _cpr_at(digits, gap_before, start):
    for form in _CPR_FORMS:
        length = sum(form)
        if start + length > len(digits):
            continue
        boundaries = {sum(form[: i + 1]) for i in range(len(form) - 1)}
        gaps = [k for k in range(1, length) if gap_before[start + k]]
        if not (all(k in boundaries for k in gaps) or (length == 10 and len(gaps) == 1)):
            continue
        parts, at = [], start
        for size in form:
            parts.append(int(digits[at:at + size]))
            at += size
        if _real_date(form, parts):
            return True
    return False


def _number_holds_cpr(number):
    digits, gap_before, gap = "", [], False
    for c in number:
        if "0" <= c <= "9":
            digits += c
            gap_before.append(gap)
            gap = False
        elif _IS_SEPARATOR.fullmatch(c):
            gap = True
    return len(digits) >= 10 and any(_cpr_at(digits, gap_before, start) for start in range(len(digits) - 9))


def may_hold_cpr_digits(text):
    """Whether `text` may hold a CPR number anywhere, also glued inside a longer run of digits (the hub's
    mayHoldCprDigits: a chance match costs a value left out of a log line, never a refusal)."""
    # full-width and Arabic-Indic digits
    text = "".join(chr(48 + (ord(c) & 0xF)) if "\uff10" <= c <= "\uff19" or "\u0660" <= c <= "\u0669" or "\u06f0" <= c <= "\u06f9" else c for c in text)
    if sum(1 for c in text if "0" <= c <= "9") < 10:
        return False
    masked = _HUB_ID.sub(lambda m: m.group(0) if m.group(0).startswith("2.25.") and not _is_uuid_oid(m.group(0)) else "#" * len(m.group(0)), text)
    return any(_number_holds_cpr(m.group(0)) for m in _NUMBER.finditer(masked))


def loggable(value):
    """`value` when it may go into a log line: an id's characters only (1-100 of A-Z a-z 0-9 . _ : / -) and nothing
    that may hold a CPR number, as the hub's message-trace.ts decides; else None (the field is left out)."""
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9._:/-]{1,100}", value) and not may_hold_cpr_digits(value):
        return str(value)
    return None


def _envelope_id_of(body):
    """Our envelope id as readable from a body that is plain JSON with an `id` string (message-trace.ts's
    envelopeIdOf); None for a JWE, a data section, anything else."""
    if not isinstance(body, str) or len(body) > 8 * 1024 * 1024:
        return None
    try:
        value = json.loads(body)
    except ValueError:
        return None
    id_ = value.get("id") if isinstance(value, dict) else None
    return id_ if isinstance(id_, str) and re.fullmatch(r"[A-Za-z0-9._:-]{1,100}", id_) else None


def message_trace(message):
    """What names a downlink message in its retry and dead letter lines, where its envelope may never have been read
    (a bad signature, not JSON): the application properties messageId (else the body's id when it is plain JSON),
    type, systemId, correlationId and consultationId as the sender set them, each only when loggable. The
    SDK's and the hub's messageTraceOf, with the same names as the lines of a message that was read."""
    props = message.properties or {}
    trace = {
        "id": loggable(props.get("messageId")) or loggable(_envelope_id_of(message.body)),
        "type": loggable(props.get("type")),
        "systemId": loggable(props.get("systemId")),
        "correlationId": loggable(props.get("correlationId")),
        "consultationId": loggable(props.get("consultationId")),
    }
    return {k: v for k, v in trace.items() if v is not None}


def consultation_id_of(env):
    """The consultation an envelope is about (its payload's consultationId), for consultation.* types only, when
    loggable."""
    if not isinstance(env.get("type"), str) or not env["type"].startswith("consultation."):
        return None
    payload = env.get("payload")
    return loggable(payload.get("consultationId")) if isinstance(payload, dict) else None


def _shown(value):
    text = value if isinstance(value, str) else json.dumps(value)
    return text if re.fullmatch(r'[^\s"=\\]+', text) else json.dumps(text, ensure_ascii=False)


def _log(level, event, **fields):
    """One line: `event` (the SDK's message), then the fields that are not None as key=value."""
    if not log.isEnabledFor(level):
        return
    fields = {k: v for k, v in fields.items() if v is not None}
    log.log(level, event + " %s", " ".join(f"{k}={_shown(v)}" for k, v in fields.items()), extra=fields)


def _endpoint(url):
    """host:port of a broker URL, without the user and password before its @."""
    try:
        parts = urlsplit(url)
        return f"{parts.hostname}:{parts.port or (5671 if parts.scheme == 'amqps' else 5672)}"
    except ValueError:
        return _without_password(url)


class DeadLetter(Exception):
    """A message that can never be processed: raise it from a downlink handler to have the message copied to the dead
    letter queue with `reason` (as `<code>: <detail>`; name fields, never their values) instead of retried."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


class SecurityError(DeadLetter):
    """A message that must not be processed; `code` is one of the hub's reasons (bad_signature, ...)."""

    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code


class MessageTooLarge(ValueError):
    """A body over MAX_BODY_BYTES: not sent, since the broker would close the whole connection for it."""


def to_json(value):
    """The JSON text as the hub writes it: compact, non-ASCII as itself (the AMQP string is UTF-8 on the wire)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def partition_experts(experts, max_count=MAX_BATCH_EXPERTS, max_bytes=MAX_BATCH_JSON_BYTES):
    """Experts cut into batches of at most max_count experts and max_bytes of their UTF-8 JSON, in order (an expert
    larger than max_bytes alone is a batch of its own). The same experts give the same batches, so a join can be
    sent again with the same ids. Counts as the hub's partitionExperts does: each expert's JSON plus its comma."""
    batches, batch, size = [], [], 0
    for expert in experts:
        expert_bytes = len(to_json(expert).encode("utf-8")) + 1
        if batch and (len(batch) >= max_count or size + expert_bytes > max_bytes):
            batches.append(batch)
            batch, size = [], 0
        batch.append(expert)
        size += expert_bytes
    if batch:
        batches.append(batch)
    return batches


def _public(key, use, alg):
    pub = key.export_public(as_dict=True)
    pub.update({"kid": key.thumbprint(), "use": use, "alg": alg})
    return pub


class PartyKeys:
    """A system's own key pairs: one to sign (ES256 on P-256), and the keys it decrypts with (P-256): the current
    encryption key, the one it registers and the hub encrypts for, plus the previous ones it still accepts while a
    rotation is under way (messages encrypted for them may still be queued). A message is decrypted with the key
    its JWE's kid names.

    Rotating the encryption key without losing a message (docs/messaging.md, "Rotation without downtime"):

        keys.rotate_encryption()          # 1. the new key is current, the old one stays a decryption key
        save(keys.export())               #    (and load it in every process that reads the downlink queue)
        hub.add_keys(system_id, keys)     # 2. register it: from now on the hub encrypts for the new key
        ...                               # 3. once nothing encrypted for the old key is left in the queue:
        hub.retire_key(system_id, old_kid); keys.drop_decryption_key(old_kid)
    """

    def __init__(self, owner, signing=None, encryption=None, previous_encryption=()):
        self.owner = owner
        self.signing = signing or jwk.JWK.generate(kty="EC", crv="P-256")
        self.encryption = encryption or jwk.JWK.generate(kty="EC", crv="P-256")
        self.previous_encryption = list(previous_encryption)  # oldest first; still accepted, no longer registered anew

    @property
    def signing_kid(self):
        return self.signing.thumbprint()

    @property
    def encryption_kid(self):
        return self.encryption.thumbprint()

    @property
    def decryption_kids(self):
        """The kids a message to this system may be encrypted for: the previous keys, then the current one."""
        return [key.thumbprint() for key in self.previous_encryption] + [self.encryption_kid]

    def decryption_key(self, kid):
        """Our private key whose kid is `kid` (current or previous), or None."""
        for key in [self.encryption, *self.previous_encryption]:
            if key.thumbprint() == kid:
                return key
        return None

    def rotate_encryption(self, new_key=None):
        """Rotation, step 1: `new_key` (default: a new P-256 key) becomes the current encryption key; the current one
        is kept as a previous decryption key. Register the new one (HubHttp.add_keys) only after this, in every
        process that reads the downlink queue. Returns the new key's kid."""
        self.previous_encryption.append(self.encryption)
        self.encryption = new_key or jwk.JWK.generate(kty="EC", crv="P-256")
        return self.encryption_kid

    def drop_decryption_key(self, kid):
        """Rotation, last step: stop accepting a previous key (nothing is queued for it any more). The current key
        cannot be dropped."""
        if kid == self.encryption_kid:
            raise ValueError("the current encryption key cannot be dropped: rotate first")
        kept = [key for key in self.previous_encryption if key.thumbprint() != kid]
        if len(kept) == len(self.previous_encryption):
            raise KeyError(kid)
        self.previous_encryption = kept

    def public_jwks(self):
        """What the system registers with the hub: its public signing and current encryption keys, kid/use/alg set."""
        return [_public(self.signing, "sig", SIGNING_ALG), _public(self.encryption, "enc", KEY_MANAGEMENT_ALG)]

    def export(self):
        """The private keys as JSON (keep it secret)."""
        return {
            "owner": self.owner,
            "signing": json.loads(self.signing.export_private()),
            "encryption": json.loads(self.encryption.export_private()),
            "previousEncryption": [json.loads(key.export_private()) for key in self.previous_encryption],
        }

    @classmethod
    def load(cls, data):
        return cls(data["owner"], jwk.JWK(**data["signing"]), jwk.JWK(**data["encryption"]), [jwk.JWK(**key) for key in data.get("previousEncryption", [])])


# ---- the hub's HTTP API: trust material -------------------------------------------------------------------------
# Its JWKS is what every hub message is verified against, and its calls carry an operator's bearer token: so plain
# http only to this machine, no redirect followed (one could lead an https request to plain http or to another
# host), and a JWKS read that a caching proxy must revalidate (the hub serves it with max-age=300).
HTTP_TIMEOUT = 10.0
_IPV4_LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
_IPV6_LOOPBACK = ipaddress.ip_address("::1")


def _is_loopback(host):
    """localhost, an address of 127.0.0.0/8, or ::1 (urlsplit's hostname: lower case, without the brackets)."""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address in _IPV4_LOOPBACK if address.version == 4 else address == _IPV6_LOOPBACK


def check_hub_url(url, insecure_http=False):
    """Raises ValueError unless `url` may be used for the hub's HTTP API: https://, or http:// when the host is
    loopback (localhost, 127.0.0.0/8, ::1) or insecure_http=True. The error names the scheme and the host, never the
    rest of the URL (it may hold a password)."""
    try:
        parts = urlsplit(url)
        scheme, host = parts.scheme.lower(), parts.hostname
    except (AttributeError, ValueError) as error:
        raise ValueError(f"the hub URL cannot be read as a URL ({error})") from None
    if not host:
        raise ValueError(f"the hub URL (scheme {scheme!r}) names no host")
    if scheme == "https" or (scheme == "http" and (insecure_http or _is_loopback(host))):
        return
    if scheme == "http":
        raise ValueError(f"the hub URL's scheme 'http' with host {host!r} is refused: the hub's HTTP API (its JWKS, which "
                         "every hub message is verified against, and calls that carry an operator's token) must be https://, "
                         "or http:// only on a loopback host (localhost, 127.0.0.0/8, ::1); to accept plain http to this host "
                         "anyway, pass insecure_http=True")
    raise ValueError(f"the hub URL's scheme {scheme!r} with host {host!r} is refused: the hub's HTTP API must be https:// "
                     "(or http:// on a loopback host, or with insecure_http=True)")


class RedirectRefused(urllib.error.URLError):
    """The hub's HTTP API answered with a redirect: not followed (it could lead an https request to plain http or to
    another host)."""

    def __init__(self, code, location):
        target = urlsplit(location or "")
        where = f" to {target.scheme}://{target.hostname}" if target.scheme and target.hostname else ""
        super().__init__(f"HTTP {code} (a redirect{where}) from the hub's HTTP API: redirects are not followed")
        self.code = code

    def __str__(self):
        return self.reason


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    def http_error_302(self, req, fp, code, msg, headers):
        fp.close()
        raise RedirectRefused(code, headers.get("location"))

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


_OPENER = urllib.request.build_opener(_RefuseRedirects)
# A loopback hub is reached directly, never through $http_proxy/$https_proxy: urllib applies them to 127.0.0.1 and
# localhost too (unless $no_proxy names them), which would carry the plain-http request, with an operator's token,
# across the network to the proxy, and take the proxy's JWKS as the hub's: the reason plain http is allowed there
# (it never leaves the machine) would not hold.
_DIRECT_OPENER = urllib.request.build_opener(_RefuseRedirects, urllib.request.ProxyHandler({}))


def _open(request):
    """The hub's answer to `request`: no redirect followed (RedirectRefused), HTTP_TIMEOUT seconds at most; to a
    loopback host directly (no proxy)."""
    opener = _DIRECT_OPENER if _is_loopback(urlsplit(request.full_url).hostname or "") else _OPENER
    return opener.open(request, timeout=HTTP_TIMEOUT)


# The most an answer of the hub's HTTP API (its JWKS, POST /systems, ...) may hold; the hub's JWKS of a few keys is a
# few KB. A larger answer is refused before it is all in memory (a proxy or a broken hub answering without end).
HUB_ANSWER_MAX_BYTES = 1024 * 1024


def _read_json(response, what):
    """The JSON of an answer (null for an empty one), read up to HUB_ANSWER_MAX_BYTES; RuntimeError naming `what` when
    it is larger or not JSON."""
    body = response.read(HUB_ANSWER_MAX_BYTES + 1)
    if len(body) > HUB_ANSWER_MAX_BYTES:
        raise RuntimeError(f"{what}: the answer is larger than {HUB_ANSWER_MAX_BYTES} bytes")
    try:
        return json.loads(body or b"null")
    except ValueError:
        raise RuntimeError(f"{what}: the answer is not JSON") from None


# A JWKS read asks a caching proxy on the way to revalidate with the hub rather than answer from its cache.
_JWKS_HEADERS = {"accept": "application/json", "cache-control": "no-cache"}


class HubHttp:
    """The hub's HTTP API, as far as a system needs it to join.

    base_url: https://, or http:// only on a loopback host (localhost, 127.0.0.0/8, ::1); any other is refused here
    (ValueError) unless insecure_http=True, since the calls carry an operator's token and jwks() is what the hub's
    messages are verified against. A redirect is never followed (RedirectRefused); each call waits HTTP_TIMEOUT (10)
    seconds at most."""

    def __init__(self, base_url, headers=None, insecure_http=False):
        check_hub_url(base_url, insecure_http)
        self.base_url = base_url.rstrip("/")
        self.headers = headers or {}

    def _call(self, method, path, body=None, headers=None):
        data = None if body is None else to_json(body).encode("utf-8")
        headers = {"accept": "application/json", **self.headers, **(headers or {})}
        if data is not None:
            headers["content-type"] = "application/json"
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        what = f"{method} {path}"
        try:
            with _open(request) as response:
                return response.status, _read_json(response, what)
        except urllib.error.HTTPError as error:
            with error:
                return error.code, _read_json(error, what)

    def register_system(self, system_id, name, area, keys):
        status, body = self._call("POST", "/systems", {"id": system_id, "name": name, "area": area, "keys": keys.public_jwks()})
        if status not in (200, 201):
            raise RuntimeError(f"POST /systems: HTTP {status} {body}")
        return body

    def jwks(self):
        """The hub's public keys (asking a caching proxy to revalidate: cache-control no-cache). Give the method
        itself to JoseCodec (JoseCodec(keys, hub.jwks)): it re-reads them when a hub message names a signing key it
        does not know (the hub rotated), and when they are older than its max_age (the hub revoked one)."""
        status, body = self._call("GET", "/.well-known/jwks.json", headers=_JWKS_HEADERS)
        if status != 200:
            raise RuntimeError(f"GET /.well-known/jwks.json: HTTP {status}")
        return body

    def add_keys(self, system_id, keys):
        """POST /systems/<id>/keys with the system's public keys (PartyKeys: its signing and current encryption
        key; the hub answers which kids are new and which it had). Rotation, step 2: the hub encrypts for the new
        encryption key from now on, so the receiver must accept it first (PartyKeys.rotate_encryption)."""
        status, body = self._call("POST", f"/systems/{system_id}/keys", {"keys": keys.public_jwks()})
        if status not in (200, 201):
            raise RuntimeError(f"POST /systems/{system_id}/keys: HTTP {status} {body}")
        return body

    def retire_key(self, system_id, kid, at=None):
        """POST /systems/<id>/keys/<kid>/retire: the hub refuses the key from `at` (ISO-8601; default now) on."""
        status, body = self._call("POST", f"/systems/{system_id}/keys/{kid}/retire", {} if at is None else {"at": at})
        if status != 200:
            raise RuntimeError(f"POST /systems/{system_id}/keys/<kid>/retire: HTTP {status} {body}")
        return body

    def get(self, path):
        return self._call("GET", path)


def _read_jwks_url(url):
    """GET a JWKS URL (the hub's is public: no token), as HubHttp.jwks() does: no redirect, no cached answer."""
    request = urllib.request.Request(url, headers=_JWKS_HEADERS)
    with _open(request) as response:
        return _read_json(response, "GET " + url)


def _instant(text):
    """An ISO-8601 instant as seconds since the epoch; None for one that cannot be read."""
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


class JoseCodec:
    """Sign as `keys.owner` and encrypt for the hub; open what the hub sent us (decrypt, verify, check).

    hub_jwks: where the hub's public keys come from, one of
      * a callable that returns the JWKS, e.g. HubHttp(...).jwks;
      * the JWKS's URL, e.g. "https://hub.example/.well-known/jwks.json": https://, or http:// only on a loopback
        host (localhost, 127.0.0.0/8, ::1), else ValueError here unless insecure_http=True (the JWKS is what every
        hub message is verified against); read without following a redirect and asking a caching proxy to
        revalidate (cache-control: no-cache), HTTP_TIMEOUT seconds at most;
      * the JWKS itself (a dict): then it is never re-read, and once the hub rotates its signing key every hub
        message is dead-lettered as unknown_key. Give a callable or the URL.
    Read once here. When a hub message is signed with a kid we do not know (or whose rts_retires_at has come), the
    JWKS is read again and the message verified once more before it is refused as unknown_key: the hub rotated
    (docs/messaging.md, "Registering your keys"). Such re-reads are at most one per `refresh_interval` seconds, so
    that a run of messages with a kid the hub does not publish costs the hub one request, not one each; a message
    with an unknown kid that comes sooner after a re-read is refused without one. A re-read also picks up the hub's
    newest encryption key for what we send. A re-read that fails (the hub is unreachable) counts as one, and keeps
    the keys we had.

    A key the hub stopped listing was revoked, and must stop being trusted even if no message with an unknown kid
    comes: once the keys were last read successfully more than `max_age` seconds ago (default 300, the hub's
    cache-control max-age), the JWKS is re-read before the next encode or decode uses them, through the same
    re-read, rate-limited by refresh_interval on its own (so that it does not hold off the re-read for an unknown
    kid: the hub's new signing key right after it is taken). A timed re-read that fails keeps
    the keys and the message goes on with them (the hub's HTTP API being down does not stop messaging); the next
    try is refresh_interval later. For max_age seconds after a failed re-read (timed or for an unknown kid) the next
    timed one runs in a thread of its own beside the messages (wait_for_key_reads), so that a hub that takes
    connections and never answers stalls none of them; the messages meanwhile are checked with the keys held, so a
    revoked key may be trusted that read's time (HTTP_TIMEOUT at most) longer. After an older failure the timed
    re-read is waited for again. Of overlapping re-reads (the thread's, one for an unknown kid), one that answers
    after a re-read begun later is dropped. max_age=None: no timed re-read. A JWKS given as a dict is never re-read.
    `hub_keys_read_at`: the clock's time of the last successful read (None for a dict), for a health check that
    wants to see keys gone stale. `clock`: monotonic seconds (tests give their own). `jwks_reads`: how many times
    the keys were taken from a JWKS."""

    name = "jose"
    content_type = "application/jose"

    def __init__(self, keys, hub_jwks, refresh_interval=30.0, clock=time.monotonic, insecure_http=False, max_age=300.0):
        self.keys = keys
        if callable(hub_jwks):
            self._fetch = hub_jwks
        elif isinstance(hub_jwks, str):
            check_hub_url(hub_jwks, insecure_http)
            self._fetch = lambda: _read_jwks_url(hub_jwks)
        else:
            self._fetch = None
        self.refresh_interval = refresh_interval
        self.max_age = max_age
        self._clock = clock
        self._last_refresh = None  # the first read, here, is not a re-read: an unknown kid right after it re-reads
        self._last_timed = None  # nor does a timed re-read hold off one for an unknown kid (the hub's new signing key)
        self._read_at = None  # the last successful read (the clock's seconds); None for a JWKS given as a dict
        self._failed_at = None  # when the last read, if it failed, was tried: then a timed re-read may run beside
        self._background = None  # the messages, in a thread of its own
        self._lock = threading.Lock()  # the keys, taken from one read at a time (the thread's or the caller's)
        self._attempts = 0  # reads begun
        self._concluded = 0  # the latest read begun whose answer (keys or failure) was taken
        self.jwks_reads = 0
        self.hub_signing = {}
        self.hub_encryption = None
        if self._fetch is None:
            self._use_jwks(hub_jwks)
        else:
            self._read(self._clock())

    @property
    def hub_keys_read_at(self):
        """When the hub's keys were last read successfully, in the clock's seconds (None: never, a dict JWKS)."""
        return self._read_at

    def _read(self, now):
        """Reads the JWKS and takes its keys; `now`, the clock's time of the attempt, becomes hub_keys_read_at."""
        self._use_jwks(self._fetch())
        self._read_at = now

    def _use_jwks(self, hub_jwks):
        """Takes the hub's keys from a JWKS: every signing key (with its rts_retires_at, if any), and the last
        encryption key listed that is not retired (the newest). Raises ValueError, keeping the keys we had, for a
        JWKS without either."""
        signing, encryption = {}, None
        for entry in hub_jwks["keys"]:
            key = jwk.JWK(**{k: v for k, v in entry.items() if not k.startswith("rts_")})
            if entry.get("use") == "sig":
                retires_at = entry.get("rts_retires_at")
                # A date that cannot be read retires the key now: better refused than trusted past its date.
                signing[entry["kid"]] = (key, None if retires_at is None else (_instant(retires_at) or 0.0))
            elif entry.get("use") == "enc" and "rts_retires_at" not in entry:
                encryption = (entry["kid"], key)  # the last one listed is the newest
        if encryption is None or not signing:
            raise ValueError("the hub's JWKS has no signing or no encryption key")
        self.hub_signing, self.hub_encryption = signing, encryption
        self.jwks_reads += 1

    def _hub_signing_key(self, kid):
        """The hub's public signing key named `kid`, or None when it is unknown or retired."""
        key, retires_at = self.hub_signing.get(kid, (None, None))
        if key is None or (retires_at is not None and time.time() >= retires_at):
            return None
        return key

    def refresh_hub_keys(self):
        """Reads the hub's JWKS again (for an unknown kid), unless such a re-read was tried less than
        refresh_interval seconds ago. True when it was read. A failed read (the hub unreachable, a redirect, a JWKS
        without keys) counts as a read and keeps the keys, and leaves hub_keys_read_at as it was. A timed re-read
        (max_age) has its own refresh_interval: one that failed while the hub restarted, or came just before the
        hub took a new signing key, must not get the hub's first messages under it dead-lettered as unknown_key."""
        return self._re_read("_last_refresh")

    def _re_read(self, last):
        """refresh_hub_keys, rate-limited by the attribute `last` (the time of the last try for that cause).

        The background thread's read and one for an unknown kid in the caller's thread may overlap: the answer of a
        read begun earlier that comes after a later one's is dropped, else it put back the keys the later one
        replaced (the hub's new signing key lost until the next re-read, or a revoked key trusted again)."""
        if self._fetch is None:
            return False
        with self._lock:
            now = self._clock()
            tried = getattr(self, last)
            if tried is not None and now - tried < self.refresh_interval:
                return False
            setattr(self, last, now)
            self._attempts += 1
            attempt = self._attempts
        try:
            answer = self._fetch()
        except Exception:  # noqa: BLE001 - the keys we had stay in use
            answer = None
        with self._lock:
            if attempt < self._concluded:
                return False  # a read begun later answered first: its word is the newer one
            self._concluded = attempt
            try:
                if answer is None:
                    raise ValueError("the hub's JWKS could not be read")
                self._use_jwks(answer)
            except Exception:  # noqa: BLE001 - a failed read, or a JWKS without keys: the keys we had stay in use
                self._failed_at = now
                return False
            self._read_at = now
            self._failed_at = None
            return True

    def _refresh_if_old(self):
        """Re-reads the JWKS (rate-limited) when the keys were last read more than max_age seconds ago: a key the
        hub no longer lists (revoked) must stop being trusted without waiting for a message with an unknown kid.
        True when the keys were read just now (then an unknown kid needs no other read)."""
        if self._fetch is None or self.max_age is None or self._read_at is None:
            return False
        if self._clock() - self._read_at <= self.max_age:
            return False
        failed = self._failed_at
        if failed is None or not 0 <= self._clock() - failed < self.max_age:
            return self._re_read("_last_timed")
        # The last read failed (the hub's HTTP API down, or not answering within HTTP_TIMEOUT): the message goes on
        # with the keys held, as it would after this read failed too, and the read runs beside it. Else a hub that
        # takes connections and never answers stalled every message HTTP_TIMEOUT seconds once per refresh_interval.
        # Only for max_age after that failed read was tried: a message that goes on beside the read is checked with
        # the keys held, and a failure long ago (the hub restarting to drop a leaked key, then no message for an
        # hour) would let the next message under that key through however long after the revocation it came.
        tried = self._last_timed
        if tried is not None and self._clock() - tried < self.refresh_interval:
            return False  # tried not long ago: no thread for a read that would not be made
        if self._background is None or not self._background.is_alive():
            self._background = threading.Thread(target=self._re_read, args=("_last_timed",), name="rts-hub-jwks", daemon=True)
            self._background.start()
        return False

    def wait_for_key_reads(self, timeout=None):
        """Waits for a re-read of the hub's JWKS running in the background (after a failed one), if any: for tests,
        and for a shutdown that wants it done. True when none is running any more."""
        thread = self._background
        if thread is not None:
            thread.join(timeout)
        return thread is None or not thread.is_alive()

    def encode(self, envelope):
        self._refresh_if_old()  # before the hub's encryption key is used
        claims = {"iss": self.keys.owner, "aud": HUB, "iat": int(time.time()), "jti": envelope["id"], "msg": envelope}
        signed = jws.JWS(to_json(claims).encode("utf-8"))
        signed.add_signature(self.keys.signing, alg=SIGNING_ALG, protected=json.dumps({"alg": SIGNING_ALG, "kid": self.keys.signing_kid, "typ": JWS_TYPE}))
        inner = signed.serialize(compact=True)
        kid, key = self.hub_encryption
        protected = {"alg": KEY_MANAGEMENT_ALG, "enc": CONTENT_ENCRYPTION, "kid": kid, "cty": "JWT"}
        token = jwe.JWE(inner.encode("utf-8"), protected=json.dumps(protected))
        token.add_recipient(key)
        return token.serialize(compact=True)

    def decode(self, body):
        """The envelope of a hub message, or SecurityError with the reason of docs/messaging.md's checks, in their
        order (the TypeScript SDK's JoseCodec answers the same)."""
        if not isinstance(body, str) or body.count(".") != 4:
            raise SecurityError("malformed_jose", "the body is not a compact JWE")
        outer = jwe.JWE()
        try:
            outer.deserialize(body)
        except Exception as error:  # noqa: BLE001
            raise SecurityError("malformed_jose", "the JWE could not be read") from error
        header = outer.jose_header
        if header.get("alg") != KEY_MANAGEMENT_ALG or header.get("enc") != CONTENT_ENCRYPTION or not isinstance(header.get("kid"), str):
            raise SecurityError("malformed_jose", "the JWE must use ECDH-ES+A256KW with A256GCM and name its kid")
        if "zip" in header:
            raise SecurityError("malformed_jose", "the JWE must not be compressed (zip is not part of the profile)")
        ours = self.keys.decryption_key(header["kid"])
        if ours is None:
            raise SecurityError("not_for_us", "the message is encrypted for a key that is not ours")
        try:
            outer.decrypt(ours)
        except Exception as error:  # noqa: BLE001
            raise SecurityError("bad_signature", "the encrypted message failed its integrity check") from error
        inner = jws.JWS()
        try:
            inner.deserialize(outer.payload.decode("utf-8"))
        except Exception as error:  # noqa: BLE001
            raise SecurityError("malformed_jose", "the content is not a compact JWS") from error
        signing_kid = inner.jose_header.get("kid")
        if not isinstance(signing_kid, str):
            raise SecurityError("malformed_jose", "the JWS must name its kid")
        just_read = self._refresh_if_old()  # before the hub's signing keys are used
        key = self._hub_signing_key(signing_kid)
        if key is None and not just_read and self.refresh_hub_keys():
            key = self._hub_signing_key(signing_kid)  # the hub rotated: verify once more with what it publishes now
        if key is None:
            raise SecurityError("unknown_key", "the signing key is not one of the hub's, or was retired")
        try:
            # The hub signs with ES256 (P-256) or EdDSA (Ed25519), as its key is (docs/messaging.md): only ES256 was
            # verified, so a hub given an Ed25519 signing key had every message dead-lettered here as bad_signature.
            inner.verify(key, alg=_signing_alg_of(key))
        except Exception as error:  # noqa: BLE001
            raise SecurityError("bad_signature", "the signature does not verify") from error
        try:
            claims = json.loads(inner.payload.decode("utf-8"))
        except ValueError as error:
            raise SecurityError("malformed_jose", "the claims are not JSON") from error
        if not isinstance(claims, dict):
            raise SecurityError("malformed_jose", "the signed payload lacks iss, aud or msg")
        msg = claims.get("msg")
        # RFC 7519 4.1.3 lets aud be an array of strings (.NET's and jose4j's libraries write one): one receiver either
        # way, as the hub and the TypeScript SDK take it.
        if isinstance(claims.get("aud"), list) and len(claims["aud"]) == 1:
            claims["aud"] = claims["aud"][0]
        if not isinstance(claims.get("iss"), str) or not isinstance(claims.get("aud"), str) or not isinstance(msg, dict) or not isinstance(msg.get("systemId"), str) or not isinstance(msg.get("id"), str):
            raise SecurityError("malformed_jose", "the signed payload lacks iss, aud or msg")
        # As the hub and the SDK check, after the signature: the JWS says what it is, and its jti is the envelope's
        # id (the id receivers dedupe on), so a signed token of another kind, or one whose jti was made for another
        # message, is not taken for a message.
        if inner.jose_header.get("typ") != JWS_TYPE:
            raise SecurityError("malformed_jose", "the JWS typ must be " + JWS_TYPE)
        if claims.get("jti") != msg["id"]:
            raise SecurityError("malformed_jose", "the JWS jti must be the envelope's id")
        if claims["iss"] != HUB:
            raise SecurityError("sender_mismatch", "the claimed sender does not own the signing key")
        if claims["aud"] != self.keys.owner:
            raise SecurityError("not_for_us", "the message is addressed to another party")
        if msg["systemId"] != self.keys.owner:
            raise SecurityError("sender_mismatch", "the envelope's systemId is not the receiving system")
        return msg


def _signing_alg_of(key):
    """The JWS alg a public signing key verifies: ES256 for P-256, EdDSA for Ed25519; ValueError for another kind."""
    kind = (key.get("kty"), key.get("crv"))
    if kind == ("EC", "P-256"):
        return "ES256"
    if kind == ("OKP", "Ed25519"):
        return "EdDSA"
    raise ValueError("not a signing key of the profile (P-256 or Ed25519)")


def now_iso():
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def envelope(system_id, type_, payload, correlation_id=None, message_id=None):
    id_ = message_id or str(uuid.uuid4())
    return {"id": id_, "type": type_, "version": CONTRACT_VERSION, "systemId": system_id, "correlationId": correlation_id or id_, "time": now_iso(), "payload": payload}


def group_id(env):
    """The AMQP group-id for an uplink envelope: what it is about. With several hub processes, the broker hands
    the messages of one group to one hub, which applies them in order. A batch goes by its system, as the join
    request does: the batches of one join then reach one hub, one at a time."""
    type_, payload = env["type"], env["payload"]
    if type_ in ("expert.registered", "expert.changed", "expert.retired"):
        return "expert/%s:%s" % (payload.get("homeSystemId", env["systemId"]), payload["localExpertId"])
    if type_ in ("system.join.requested", "experts.batch"):
        return "system/%s" % env["systemId"]
    if isinstance(payload.get("consultationId"), str):
        return "consultation/%s" % payload["consultationId"]
    return None


def uplink_properties(env, codec):
    """The application-properties of an uplink message: the envelope's fields (the body's copy for routing and
    dead-letter records), the codec, and on a consultation message the downlink types we read besides the first
    contract's (rts_accepts)."""
    # version as an AMQP int (docs/messaging.md; JMS getIntProperty refuses a long): a Python int goes as a long.
    properties = {"messageId": env["id"], "type": env["type"], "version": int32(CONTRACT_VERSION), "systemId": env["systemId"], "correlationId": env["correlationId"], "contentType": codec.content_type, "codec": codec.name}
    if env["type"].startswith("consultation."):
        properties[ACCEPTS_PROPERTY] = ACCEPTED_EXTRA_TYPES
    return properties


def batch_message_id(system_id, base, label):
    """A deterministic envelope id: the same join (base) sent again has the same ids, and the hub ignores repeats."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"rts:{system_id}:{base}/{label}"))


# A lost connection or link, or no outcome in time: reconnect, then send again (same envelope id).
_CONNECTION_LOST = (ConnectionException, LinkException, Timeout, OSError)


def message_key(message):
    """What a redelivery of `message` is known by: its AMQP message-id (the hub sets the envelope id), else a hash of
    its body and application-properties."""
    if message.id is not None:
        return "id:" + str(message.id)
    digest = hashlib.sha256(repr((message.body, sorted((message.properties or {}).items(), key=lambda kv: str(kv[0])))).encode("utf-8"))
    return "sha256:" + digest.hexdigest()


DEAD_LETTER_ID = "rts_dlq_id"
READ_ENVELOPE_ID = "rts_envelope_id"


def _json(value):
    """JSON as JavaScript's JSON.stringify writes it (compact, UTF-8), for the values AMQP properties hold: a timestamp
    as Date's ISO text, an integral float without its .0 (a JavaScript number), bytes (binary) as rhea's Buffer."""
    def plain(v):
        if isinstance(v, bool) or v is None or isinstance(v, str):
            return v
        if isinstance(v, timestamp):
            return datetime.fromtimestamp(int(v) / 1000, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        if isinstance(v, int):
            return v
        if isinstance(v, float):
            return int(v) if v.is_integer() and abs(v) < 2 ** 53 else v
        if isinstance(v, (bytes, bytearray)):
            return {"type": "Buffer", "data": list(v)}
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return str(v)
    return json.dumps(plain(value), ensure_ascii=False, separators=(",", ":"))


def dead_letter_id_for(message):
    """The rts_dlq_id of the dead letter copies of one delivery: a UUID (version 8) made of the SHA-256 of what the
    broker gives again each time the message comes (its message-id, user-id, body and application-properties, a
    sender's own rts_dlq_id and rts_envelope_id left out), so a copy sent again after the broker's accept of the first
    was lost is the same dead letter. The hub's deadLetterIdFor (src/adapters/messaging/amqp-uplink-consumer.ts), bit
    for bit for a message-id that is a string, a number, a UUID or binary, a body that is an AMQP string (every hub
    message), binary or data sections, and properties of strings, numbers, booleans and nulls; other values are hashed
    in a form of their own, the same for every copy (test/integration/python-client.int.spec.ts compares the two)."""
    h = hashlib.sha256(b"rts_dlq_id/1\n")
    user_id = message.user_id or None  # proton reads an absent user-id as b""
    for id_ in (message.id, user_id):
        if id_ is None:
            text = ""
        elif isinstance(id_, (bytes, bytearray)):
            text = "b" + bytes(id_).hex()
        elif isinstance(id_, uuid.UUID):
            text = "b" + id_.hex  # rhea reads an AMQP uuid as a 16-byte Buffer
        elif isinstance(id_, bool):
            text = f"boolean:{str(id_).lower()}"
        elif isinstance(id_, int):
            text = f"number:{int(id_)}"
        elif isinstance(id_, str):
            text = f"string:{id_}"
        else:
            text = f"{type(id_).__name__}:{id_}"
        h.update(f"{len(text.encode('utf-16-le')) // 2}:{text}\n".encode("utf-8"))
    body = message.body
    if isinstance(body, str):
        h.update(b"s" + body.encode("utf-8"))
    elif isinstance(body, (bytes, bytearray)) and message.inferred:
        h.update(f"d117\nb{len(body)}:".encode("utf-8") + bytes(body))  # one data section (rhea: a Section)
    elif isinstance(body, (bytes, bytearray)):
        h.update(b"b" + bytes(body))
    else:
        h.update(("j" + _json(body)).encode("utf-8"))
    properties = message.properties or {}
    keys = sorted((key for key in properties if key not in (DEAD_LETTER_ID, READ_ENVELOPE_ID)), key=lambda k: str(k).encode("utf-16-be"))
    h.update(("\n" + _json([[key, properties[key]] for key in keys])).encode("utf-8"))
    digits = list(h.hexdigest()[:32])
    digits[12] = "8"
    digits[16] = "%x" % ((int(digits[16], 16) & 0x3) | 0x8)
    return str(uuid.UUID("".join(digits)))


class NotAccepted(Exception):
    """The broker settled a send as rejected, released or modified: not sent."""


def _send_accepted(sender, message):
    """Sends and waits for the broker's outcome; returns only if it is accepted.

    BlockingSender.send alone is not enough: it raises only for rejected and released, returns for modified, and
    returns with no outcome at all when the connection was closed under it (the broker closes the connection of a
    sender whose message is over its frame limit)."""
    delivery = sender.send(message, error_states=[])
    if delivery.remote_state == Delivery.ACCEPTED:
        return
    if delivery.remote_state in (Delivery.REJECTED, Delivery.RELEASED, Delivery.MODIFIED):
        raise NotAccepted(f"the broker settled it as {delivery.remote_state}")
    raise ConnectionException("no outcome from the broker: the connection was lost")


def _without_password(text):
    """proton's errors name the URL, password included."""
    return re.sub(r"//[^@/\s]*@", "//", text)


def _credentials_apart(url):
    """The broker URL without its user and password, and those as BlockingConnection's `user` and `password` (SASL
    PLAIN as before). proton logs the URL it connects to (logger "proton", info: "Connecting to Url(...)"), so a
    password left in it would be in every log that shows proton's info lines."""
    parsed = Url(url)
    credentials = {key: value for key, value in (("user", parsed.username), ("password", parsed.password)) if value}
    parsed.username = parsed.password = None
    return str(parsed), credentials


class RtsClient:
    """One AMQP connection: durable sends to the uplink queue, a receiver on this system's downlink queue.

    Reconnects by itself: a send or receive that finds the connection lost opens a new one (the broker URLs in turn,
    with backoff between rounds) and carries on; a send not accepted is sent again with the same envelope id, up to
    send_attempts times, and then raises. Deliveries not yet settled when the connection was lost come again (the
    broker redelivers them), so a handler may see a message twice: it is deduplicated on the envelope id."""

    def __init__(self, broker_url, system_id, codec, uplink="rts.uplink", downlink_prefix="rts.downlink.", ca_file=None, cert_file=None, key_file=None,
                 dead_letter_queue=DEAD_LETTER_QUEUE, max_attempts=5, send_attempts=5, reconnect_rounds=5, backoff=0.5, max_backoff=10.0):
        """broker_url: amqp[s]://[user:password@]host:port (a user and password mean SASL PLAIN), or a list of them
        (failover: tried in order). With amqps:// the broker's certificate is verified against ca_file (a PEM file;
        else the system's CAs) and for the host name; Qpid Proton checks that name against the certificate's DNS
        names or CN, not its IP address entries. cert_file and key_file (PEM): this system's certificate, for a
        broker that asks for one (mutual TLS). max_attempts: deliveries of one downlink message before it is
        dead-lettered. send_attempts: tries of one send. reconnect_rounds: rounds over the URLs after a loss,
        backoff (doubling up to max_backoff) seconds apart."""
        self.urls = [broker_url] if isinstance(broker_url, str) else list(broker_url)
        self.system_id = system_id
        self.codec = codec
        self.uplink = uplink
        self.downlink = downlink_prefix + system_id
        self.dead_letter_queue = dead_letter_queue
        self.max_attempts = max_attempts
        self.send_attempts = send_attempts
        self.reconnect_rounds = reconnect_rounds
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.ssl_domain = None
        if any(url.startswith("amqps://") for url in self.urls):
            self.ssl_domain = SSLDomain(SSLDomain.MODE_CLIENT)
            if ca_file:
                self.ssl_domain.set_trusted_ca_db(ca_file)
            if cert_file:
                self.ssl_domain.set_credentials(cert_file, key_file, None)
            self.ssl_domain.set_peer_authentication(SSLDomain.VERIFY_PEER_NAME)
        self.seen = set()  # processed envelope ids; keep them durably in a real system (docs/messaging.md)
        # ActiveMQ raises the delivery-count of every message a lost connection held unsettled, prefetched ones too
        # (credit 10), one per loss: counted as failed attempts, five losses dead-lettered healthy messages as
        # "max attempts exceeded" without one handling. Losses seen here while holding a message are taken off its
        # count, as the TypeScript SDK does (README, "Attempts and lost connections"): key -> losses.
        self.excused_losses = collections.OrderedDict()
        self._holding = None  # the message being handled (taken from the receiver, not settled yet)
        self.reconnects = 0
        self.connection = self.sender = self.receiver = self.dlq_sender = None
        self.endpoint = None
        self._connect()
        self._log(logging.INFO, "connected to the hub broker", endpoint=self.endpoint, connectionCount=1)

    def _log(self, level, event, **fields):
        """A line of this client's: the SDK's message, systemId first (a message's own systemId, in the lines that
        name a message by what its sender set, replaces ours, as in the SDK's lines)."""
        _log(level, event, **{"systemId": loggable(self.system_id), **fields})

    def _connect(self):
        """One round over the broker URLs; the first that takes us is used."""
        errors = []
        for url in self.urls:
            try:
                target, credentials = _credentials_apart(url)
                self.connection = BlockingConnection(target, timeout=30, ssl_domain=self.ssl_domain, **credentials)
                break
            except Exception as error:  # noqa: BLE001 - name and reason only, never the password
                errors.append(_without_password(str(error)))
                self._log(logging.WARNING, "hub broker connection failed", endpoint=_endpoint(url), error=errors[-1])
        else:
            raise ConnectionError("; ".join(errors)) from None
        self.endpoint = _endpoint(url)
        self.sender = self.connection.create_sender(self.uplink)
        self.receiver = self.dlq_sender = None

    def _alive(self):
        """False once the connection was closed by either side (proton does not reopen it)."""
        state = self.connection.conn.state
        return not (state & Endpoint.LOCAL_CLOSED or state & Endpoint.REMOTE_CLOSED or self.connection.disconnected)

    def _excuse_held(self):
        """The connection is lost: each message it held unsettled (the one being handled and those prefetched) comes
        again with its delivery-count one higher, through no fault of its own; remember one more excused loss."""
        held = []
        if self.receiver is not None:
            held = [message for message, _ in getattr(self.receiver.fetcher, "incoming", ())]
        if self._holding is not None:
            held.append(self._holding)
            self._holding = None
        for message in held:
            key = message_key(message)
            losses = self.excused_losses.pop(key, 0) + 1
            self.excused_losses[key] = losses  # last: the least recently lost are forgotten first
        while len(self.excused_losses) > MAX_EXCUSED_MESSAGES:
            self.excused_losses.popitem(last=False)

    def failed_deliveries(self, message):
        """The broker's delivery-count less the losses this client excused for the message (at most
        MAX_EXCUSED_LOSSES: one whose handling itself ends the connection is still dead-lettered in the end)."""
        count = message.delivery_count or 0
        if count == 0 or not self.excused_losses:
            return count
        return max(0, count - min(self.excused_losses.get(message_key(message), 0), MAX_EXCUSED_LOSSES))

    def _reconnect(self, error=None):
        """After a loss: close what is left, then rounds over the URLs with backoff until one takes us. `error`: what
        showed the loss (None: the connection was found closed)."""
        self._excuse_held()
        self._log(logging.WARNING, "disconnected from the hub broker", endpoint=self.endpoint, reconnecting=True,
                  error=_without_password(str(error)) if error is not None else "the connection was closed")
        try:
            self.connection.close()
        except Exception:  # noqa: BLE001 - it is already gone
            pass
        delay = self.backoff
        for round_ in range(self.reconnect_rounds):
            try:
                self._connect()
                self.reconnects += 1
                self._log(logging.INFO, "connected to the hub broker", endpoint=self.endpoint, connectionCount=self.reconnects + 1)
                return
            except ConnectionError as failed:
                if round_ == self.reconnect_rounds - 1:
                    self._log(logging.ERROR, "hub broker unreachable: gave up reconnecting", rounds=self.reconnect_rounds, error=str(failed))
                    raise
            time.sleep(delay)
            delay = min(delay * 2, self.max_backoff)

    def send(self, type_, payload, correlation_id=None, message_id=None):
        """Sends one envelope and returns it once the broker accepted it (it is in its store then). Not accepted
        (released, modified, rejected, no outcome, connection lost): sent again, same envelope id, up to
        send_attempts times, then the last error is raised. Raises MessageTooLarge before sending a body over
        MAX_BODY_BYTES, and ContractViolation before sending a text people read that shows nothing (check_shown_texts:
        the hub would dead-letter the message as bad_schema)."""
        check_shown_texts(type_, payload)
        env = envelope(self.system_id, type_, payload, correlation_id, message_id)
        body = self.codec.encode(env)
        size = len(body.encode("utf-8"))
        if size > MAX_BODY_BYTES:
            raise MessageTooLarge(f"{type_} {env['id']}: a body of {size} bytes is over {MAX_BODY_BYTES}: the broker would close the connection (split the batch)")
        properties = uplink_properties(env, self.codec)
        message = Message(body=body, durable=True, properties=properties, id=env["id"], correlation_id=env["correlationId"], subject=type_, group_id=group_id(env))
        # Named by its ids only: the caller's correlation id or consultation id is left out if it may hold a CPR
        # number (the hub refuses such a message, and its line must not carry it either).
        trace = {"id": loggable(env["id"]), "type": loggable(type_), "correlationId": loggable(env["correlationId"]), "consultationId": consultation_id_of(env)}
        delay = self.backoff
        for attempt in range(1, self.send_attempts + 1):
            try:
                if not self._alive():
                    self._reconnect()
                _send_accepted(self.sender, message)
                self._log(logging.INFO, "uplink message sent", **trace, queue=self.uplink, attempts=attempt)
                return env
            except NotAccepted as error:
                if attempt == self.send_attempts:
                    self._log(logging.ERROR, "uplink message not accepted", id=trace["id"], type=trace["type"], attempts=attempt, reason="not_accepted", error=str(error))
                    raise
                self._log(logging.DEBUG, "uplink send not accepted, resending", id=trace["id"], type=trace["type"], attempts=attempt, error=str(error))
                time.sleep(delay)
                delay = min(delay * 2, self.max_backoff)
            except _CONNECTION_LOST as error:
                if attempt == self.send_attempts:
                    self._log(logging.ERROR, "uplink message not accepted", id=trace["id"], type=trace["type"], attempts=attempt, reason="connection_lost", error=_without_password(str(error)))
                    raise
                self._log(logging.DEBUG, "uplink send lost, resending", id=trace["id"], type=trace["type"], attempts=attempt, error=_without_password(str(error)))
                self._reconnect(error)
        raise AssertionError("unreachable")

    def join_with_experts(self, experts, name=None, message_id=None, correlation_id=None):
        """The batching join: system.join.requested (accepted before any batch), then experts.batch messages of at
        most 500 experts and 384 KiB of their JSON. Experts are {localExpertId, name, title, specialties, location,
        languages, availability}. Raises ContractViolation, sending nothing, when a text of any expert (or the name)
        shows nothing (check_shown_texts; the paths name the expert by its index in its batch). With message_id every envelope id is deterministic: after an error, call again
        with the same message_id and experts to finish the join (the hub ignores repeats)."""
        batches = partition_experts(experts)
        # Every batch checked before the join request goes: a text that shows nothing in the last batch would
        # otherwise leave a join the hub waits for and never completes.
        for batch in batches:
            check_shown_texts("experts.batch", {"experts": batch})
        if name is not None:
            check_shown_texts("system.join.requested", {"name": name})
        base = message_id or str(uuid.uuid4())
        request_id = batch_message_id(self.system_id, base, "join")
        correlation_id = correlation_id or request_id
        join = {"expectedBatches": len(batches), "expectedExperts": len(experts)}
        if name is not None:
            join["name"] = name
        self.send("system.join.requested", join, correlation_id=correlation_id, message_id=request_id)
        batch_ids = []
        for index, batch in enumerate(batches):
            batch_id = batch_message_id(self.system_id, base, f"batch/{index}/of/{len(batches)}")
            self.send("experts.batch", {"batchIndex": index, "batchCount": len(batches), "experts": batch}, correlation_id=correlation_id, message_id=batch_id)
            batch_ids.append(batch_id)
        self._log(logging.INFO, "join uploaded", correlationId=loggable(correlation_id), batches=len(batches), experts=len(experts))
        return {"correlationId": correlation_id, "requestId": request_id, "batchIds": batch_ids, "batches": len(batches), "experts": len(experts)}

    def receive(self, handler, timeout=30):
        """Hands the next new downlink envelope to handler(envelope, attempt) and settles the message by the result:
          returns       -> accepted (so return only once the effect is committed);
          raises        -> modified with delivery-failed: the broker delivers it again and counts the attempt; on
                           the max_attempts-th attempt it is dead-lettered instead;
          DeadLetter    -> copied to the dead letter queue with the reason, then accepted.
        A message that fails the security checks or is not an AMQP string is dead-lettered without calling the
        handler; one whose envelope id was processed already is accepted without. Returns the envelope handled, or
        None when none was by the timeout."""
        deadline = time.time() + timeout
        losses = 0
        while time.time() < deadline:
            if losses > self.reconnect_rounds:
                raise ConnectionError(f"{self.downlink}: the connection or the link was lost {losses} times in a row")
            try:
                if not self._alive():
                    self._reconnect()
                if self.receiver is None:
                    self.receiver = self.connection.create_receiver(self.downlink, credit=10)
                message = self.receiver.receive(timeout=max(0.1, deadline - time.time()))
            except Timeout:
                return None
            except _CONNECTION_LOST as error:
                losses += 1
                time.sleep(min(self.backoff * losses, self.max_backoff))
                self._reconnect(error)  # what was unsettled comes again
                continue
            losses = 0
            try:
                env = self._process(message, handler)
            except _CONNECTION_LOST as error:
                self._reconnect(error)
                continue
            if env is not None:
                return env
        return None

    def _process(self, message, handler):
        receiver = self.receiver  # a handler's send may reconnect: settle on the link the message came from
        self._holding = message
        attempt = self.failed_deliveries(message) + 1
        if attempt > self.max_attempts:
            self._dead_letter(receiver, message, f"max attempts exceeded ({attempt - 1} failed deliveries)", attempt - 1)
            return None
        if not isinstance(message.body, str):
            self._dead_letter(receiver, message, "body is not an AMQP value string", attempt)
            return None
        try:
            env = self.codec.decode(message.body)
        except DeadLetter as refusal:
            self._dead_letter(receiver, message, refusal.reason, attempt)
            return None
        if env.get("id") in self.seen:
            self._settle(receiver, Delivery.ACCEPTED)  # a redelivery: dedupe on our envelope id, never the AMQP message-id
            self._log(logging.DEBUG, "downlink message seen before: acknowledged without calling the handler", id=loggable(env.get("id")))
            return None
        try:
            handler(env, attempt)
        except DeadLetter as refusal:
            self._dead_letter(receiver, message, refusal.reason, attempt)
            return None
        except Exception as error:  # noqa: BLE001 - any failure of the handler is a retry
            reason = f"handler threw: {type(error).__name__}"  # the name only: a message might quote patient data
            if attempt >= self.max_attempts:
                self._dead_letter(receiver, message, f"retry limit ({self.max_attempts}) reached: {reason}", attempt)
            else:
                self._settle(receiver, Delivery.MODIFIED)
                self._log(logging.WARNING, "downlink message handed back for redelivery", **message_trace(message), queue=self.downlink, attempt=attempt, reason=reason)
            return None
        self.seen.add(env.get("id"))
        self._settle(receiver, Delivery.ACCEPTED)
        # A consultation's messages (a few per case) at info: the system's record that it took them, by the ids of
        # the hub's 'downlink message sent' line. Directory messages (every change of every system) at debug, as
        # the hub logs their sending.
        consultation_id = consultation_id_of(env)
        self._log(logging.INFO if consultation_id is not None else logging.DEBUG, "downlink message handled",
                  id=loggable(env.get("id")), type=loggable(env.get("type")), correlationId=loggable(env.get("correlationId")), consultationId=consultation_id, attempt=attempt)
        return env

    def _settle(self, receiver, outcome):
        """Settles the message taken last from `receiver`, unless the connection was replaced meanwhile (its
        deliveries cannot be settled any more: the broker delivers them again).

        MODIFIED is sent with delivery-failed=true and undeliverable-here=false: the broker raises its delivery-count
        and delivers it again. BlockingReceiver.release(delivered=True) would settle it modified WITHOUT
        delivery-failed (not counted as an attempt), so the flag is set on the delivery itself: the oldest unsettled
        one, which BlockingReceiver.settle settles next (one message is handled at a time)."""
        if receiver is not self.receiver:
            return
        if self._holding is not None:
            if outcome == Delivery.ACCEPTED:
                self.excused_losses.pop(message_key(self._holding), None)  # off the queue for good
            self._holding = None
        if outcome == Delivery.MODIFIED:
            delivery = receiver.fetcher.unsettled[0]
            delivery.local.failed = True
            delivery.local.undeliverable = False
        receiver.settle(outcome)

    def _dead_letter(self, receiver, message, reason, attempts):
        """Copies the message to the dead letter queue (body and properties unchanged, plus x-dlq-*, as the hub's
        QueueConsumer does), waits until the broker accepted the copy, then accepts the original. A copy that is
        not accepted hands the original back (modified, delivery-failed) to try again. rts_dlq_id is made of the
        original (dead_letter_id_for), so a copy sent again because the accept of the first was lost (the original
        came back) is the same dead letter, not a second one."""
        properties = dict(message.properties or {})
        properties.update({"x-dlq-reason": reason, "x-dlq-source-queue": self.downlink, "x-dlq-attempts": int32(attempts), "x-dlq-at": now_iso(), DEAD_LETTER_ID: dead_letter_id_for(message)})
        copy = Message(body=message.body, inferred=message.inferred, durable=True, properties=properties, id=message.id, correlation_id=message.correlation_id,
                       subject=message.subject, content_type=message.content_type, group_id=message.group_id)
        try:
            if self.dlq_sender is None:
                self.dlq_sender = self.connection.create_sender(self.dead_letter_queue)
            _send_accepted(self.dlq_sender, copy)
        except NotAccepted as error:
            self._settle(receiver, Delivery.MODIFIED)
            self._log(logging.WARNING, "downlink message handed back for redelivery", **message_trace(message), queue=self.downlink, attempt=attempts,
                      reason=f"its dead letter copy was not accepted ({error}): {reason}")
            return
        self._settle(receiver, Delivery.ACCEPTED)
        self._log(logging.WARNING, "downlink message dead-lettered", **message_trace(message), queue=self.downlink, attempt=attempts, reason=reason)

    def close(self):
        try:
            self.connection.close()
        except _CONNECTION_LOST:
            pass
