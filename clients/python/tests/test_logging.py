"""Offline: what the client logs (logger "rts_client"), with a stand-in for proton's BlockingConnection: no broker.

  cd clients/python && /usr/bin/python3 -m unittest discover -s tests -v

Each line names a message by its ids, as the TypeScript SDK's and the hub's lines do (README, "Tracing a consultation
or a message"), and never carries a CPR number, a name, a clinical text, a body, a password or a key: the messages
here carry all of those, and every record (its text and its attributes) is searched for them.
"""
import json
import logging
import os
import sys
import types
import unittest
import uuid
from unittest import mock

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from jwcrypto import jwk  # noqa: E402
from proton import ConnectionException, Delivery, Message  # noqa: E402

import rts_client  # noqa: E402
from rts_client import DeadLetter, JoseCodec, PartyKeys, RtsClient, envelope, loggable, may_hold_cpr_digits  # noqa: E402
from test_codec import hub_jwks, hub_message  # noqa: E402

CPR = "251248-1234"
PATIENT = "Søren Kierkegaard Jensen"
QUESTION = f"Patient {PATIENT}, CPR {CPR}: atypical chest pain, troponin borderline"
SUMMARY = f"Male, 58, CPR {CPR.replace('-', '')}; ECG attached"
PASSWORD = "py-secret-password"
SYSTEM = "py-city"


class FakeDelivery:
    def __init__(self, remote_state):
        self.remote_state = remote_state
        self.local = types.SimpleNamespace(failed=False, undeliverable=False)


class FakeSender:
    def __init__(self, world, address):
        self.world, self.address = world, address

    def send(self, message, error_states=None):
        self.world.sent.append((self.address, message))
        outcome = self.world.send_outcomes.pop(0) if self.world.send_outcomes else Delivery.ACCEPTED
        if isinstance(outcome, Exception):
            self.world.open = False
            raise outcome
        return FakeDelivery(outcome)


class FakeReceiver:
    def __init__(self, world):
        self.world = world
        self.fetcher = types.SimpleNamespace(unsettled=[])

    def receive(self, timeout=None):
        if not self.world.inbox:
            raise rts_client.Timeout("nothing queued")
        self.fetcher.unsettled = [FakeDelivery(None)]
        self.world.delivered.append(self.world.inbox[0])
        return self.world.inbox.pop(0)

    def settle(self, outcome):
        self.world.settled.append((outcome, self.fetcher.unsettled[0].local.failed))


class FakeConnection:
    """Just what RtsClient uses of BlockingConnection; `world` is shared by the connections of one test."""

    def __init__(self, world, url, credentials):
        if any(host in url for host in world.refused):
            raise ConnectionException(f"Connection {url} disconnected: Connection refused")
        self.world = world
        world.open = True
        world.connected.append((url, credentials))

    @property
    def conn(self):
        return types.SimpleNamespace(state=0 if self.world.open else rts_client.Endpoint.REMOTE_CLOSED)

    @property
    def disconnected(self):
        return not self.world.open

    def create_sender(self, address):
        return FakeSender(self.world, address)

    def create_receiver(self, address, credit=None):
        return FakeReceiver(self.world)

    def close(self):
        self.world.open = False


class World:
    def __init__(self, refused=()):
        self.refused = set(refused)
        self.sent, self.inbox, self.settled, self.connected, self.send_outcomes = [], [], [], [], []
        self.delivered = []  # every message put on the downlink queue, to search the lines for their bodies
        self.open = False


class Case(unittest.TestCase):
    def setUp(self):
        self.keys = PartyKeys(SYSTEM)
        self.hub_signing = jwk.JWK.generate(kty="EC", crv="P-256")
        self.hub_encryption = jwk.JWK.generate(kty="EC", crv="P-256")
        self.codec = JoseCodec(self.keys, hub_jwks(self.hub_signing, [self.hub_encryption]))
        self.world = World()

    def client(self, urls=(f"amqps://{SYSTEM}:{PASSWORD}@broker-a.example:5671",), **options):
        def connect(url, timeout=None, ssl_domain=None, **credentials):
            return FakeConnection(self.world, url, credentials)

        with mock.patch.object(rts_client, "BlockingConnection", connect):
            client = RtsClient(list(urls), SYSTEM, self.codec, backoff=0, **options)
        patcher = mock.patch.object(rts_client, "BlockingConnection", connect)
        patcher.start()
        self.addCleanup(patcher.stop)
        return client

    def capture(self):
        return self.assertLogs("rts_client", level="DEBUG")

    def hub_sends(self, env, **properties):
        """A hub message on our downlink queue: signed and encrypted for us, with the application properties the hub
        sets (consultationId on a consultation message)."""
        props = {"messageId": env["id"], "type": env["type"], "version": 1, "systemId": env["systemId"], "correlationId": env["correlationId"], "codec": "jose", **properties}
        self.world.inbox.append(Message(body=hub_message(env, self.hub_signing, self.keys.encryption, aud=SYSTEM), properties=props, delivery_count=properties.pop("_delivery_count", 0)))

    def forbidden(self):
        """What no line may hold: the patient's data, the texts, the bodies on the wire, the password, the keys."""
        keys = self.keys.export()
        secret_parts = [keys["signing"]["d"], keys["encryption"]["d"], json.loads(self.hub_signing.export_private())["d"]]
        messages = [m for _, m in self.world.sent] + self.world.delivered + self.world.inbox
        bodies = [m.body for m in messages if isinstance(m.body, str)]
        return [CPR, CPR.replace("-", ""), PATIENT, "Kierkegaard", "troponin", "ECG attached", "Brugada", "Ajmaline", PASSWORD, *secret_parts, *bodies]

    def assert_clean(self, records):
        for record in records:
            text = record.getMessage() + " " + repr(vars(record))
            for value in self.forbidden():
                for part in {value, value[-40:]}:  # a body whole, or the end of its ciphertext
                    self.assertNotIn(part, text, f"{record.getMessage()!r} holds something it must not")

    @staticmethod
    def lines(records, event, level=None):
        return [r for r in records if r.msg.startswith(event + " ") and (level is None or r.levelno == level)]


class Sending(Case):
    def test_a_consultation_request_is_one_info_line_with_its_ids_and_none_of_its_texts(self):
        client = self.client()
        consultation_id = str(uuid.uuid4())
        payload = {"consultationId": consultation_id, "applicantClinician": PATIENT, "candidates": ["ts-experts:cardio-1"], "clinicalQuestion": QUESTION, "summary": SUMMARY, "attachments": []}
        with self.capture() as logs:
            sent = client.send("consultation.requested", payload, correlation_id=consultation_id)
        [line] = self.lines(logs.records, "uplink message sent", logging.INFO)
        self.assertEqual({k: getattr(line, k) for k in ("systemId", "id", "type", "correlationId", "consultationId", "queue", "attempts")},
                         {"systemId": SYSTEM, "id": sent["id"], "type": "consultation.requested", "correlationId": consultation_id, "consultationId": consultation_id, "queue": "rts.uplink", "attempts": 1})
        self.assertEqual(line.getMessage(), f"uplink message sent systemId={SYSTEM} id={sent['id']} type=consultation.requested correlationId={consultation_id} consultationId={consultation_id} queue=rts.uplink attempts=1")
        self.assert_clean(logs.records)

    def test_an_id_that_may_hold_a_cpr_number_is_left_out_of_the_line(self):
        client = self.client()
        with self.capture() as logs:
            sent = client.send("consultation.cancel", {"consultationId": f"cons-{CPR.replace('-', '')}", "reason": QUESTION}, correlation_id=f"ticket-{CPR}")
        [line] = self.lines(logs.records, "uplink message sent", logging.INFO)
        self.assertEqual(line.id, sent["id"])
        self.assertFalse(hasattr(line, "correlationId") or hasattr(line, "consultationId"), line.getMessage())
        self.assert_clean(logs.records)

    def test_a_directory_message_names_no_consultation_and_a_join_says_how_many(self):
        client = self.client()
        expert = {"localExpertId": "e-1", "name": PATIENT, "title": "Attending", "specialties": ["cardiology"], "location": {"city": "Wuhan", "hospital": "General"}, "languages": ["en"], "availability": "available"}
        with self.capture() as logs:
            join = client.join_with_experts([expert], name="Python City")
        sent = self.lines(logs.records, "uplink message sent", logging.INFO)
        self.assertEqual([(r.type, r.correlationId) for r in sent], [("system.join.requested", join["correlationId"]), ("experts.batch", join["correlationId"])])
        self.assertFalse(any(hasattr(r, "consultationId") for r in sent))
        [uploaded] = self.lines(logs.records, "join uploaded", logging.INFO)
        self.assertEqual((uploaded.correlationId, uploaded.batches, uploaded.experts), (join["correlationId"], 1, 1))
        self.assert_clean(logs.records)

    def test_a_send_cut_off_by_a_lost_connection_is_a_warning_a_reconnect_and_the_line_of_the_second_attempt(self):
        client = self.client()
        self.world.send_outcomes = [ConnectionException(f"Connection amqps://{SYSTEM}:{PASSWORD}@broker-a.example:5671 disconnected")]
        with self.capture() as logs:
            sent = client.send("consultation.acknowledge", {"consultationId": str(uuid.uuid4())})
        [lost] = self.lines(logs.records, "disconnected from the hub broker", logging.WARNING)
        self.assertEqual((lost.endpoint, lost.reconnecting), ("broker-a.example:5671", True))
        [connected] = self.lines(logs.records, "connected to the hub broker", logging.INFO)
        self.assertEqual(connected.connectionCount, 2)
        [line] = self.lines(logs.records, "uplink message sent", logging.INFO)
        self.assertEqual((line.id, line.attempts), (sent["id"], 2))
        self.assert_clean(logs.records)

    def test_a_send_the_broker_never_accepts_is_an_error_line(self):
        client = self.client(send_attempts=3)
        self.world.send_outcomes = [Delivery.RELEASED] * 3
        with self.capture() as logs, self.assertRaises(rts_client.NotAccepted):
            client.send("consultation.report", {"consultationId": str(uuid.uuid4()), "expertId": "py-city:e-1", "diagnosis": "Brugada pattern", "recommendations": "Ajmaline test"})
        [failed] = self.lines(logs.records, "uplink message not accepted", logging.ERROR)
        self.assertEqual((failed.type, failed.attempts, failed.reason), ("consultation.report", 3, "not_accepted"))
        self.assertEqual(self.lines(logs.records, "uplink message sent"), [])
        self.assert_clean(logs.records)


class Receiving(Case):
    def offered(self, **payload):
        consultation_id = str(uuid.uuid4())
        env = envelope(SYSTEM, "consultation.offered", {"consultationId": consultation_id, "expertId": "py-city:e-1", "offerIndex": 0, "offeredAt": "2026-11-23T01:30:00.120Z", "expiresAt": "2026-11-23T02:30:00.120Z",
                                                         "applicantSystemId": "chengdu", "applicantClinician": "dr-wang", "clinicalQuestion": QUESTION, "summary": SUMMARY, "attachments": [], **payload}, correlation_id=consultation_id)
        return env, consultation_id

    def test_a_consultation_message_handled_is_an_info_line_with_the_ids_of_the_hubs_line(self):
        client = self.client()
        env, consultation_id = self.offered()
        self.hub_sends(env, consultationId=consultation_id)
        with self.capture() as logs:
            self.assertEqual(client.receive(lambda e, attempt: None, timeout=1)["id"], env["id"])
        [line] = self.lines(logs.records, "downlink message handled", logging.INFO)
        self.assertEqual({k: getattr(line, k) for k in ("systemId", "id", "type", "correlationId", "consultationId", "attempt")},
                         {"systemId": SYSTEM, "id": env["id"], "type": "consultation.offered", "correlationId": consultation_id, "consultationId": consultation_id, "attempt": 1})
        self.assert_clean(logs.records)

    def test_a_directory_message_is_handled_at_debug_only(self):
        client = self.client()
        env = envelope(SYSTEM, "directory.expert.upserted", {"expert": {"name": PATIENT}})
        self.hub_sends(env)
        with self.capture() as logs:
            client.receive(lambda e, attempt: None, timeout=1)
        self.assertEqual([r.levelno for r in self.lines(logs.records, "downlink message handled")], [logging.DEBUG])
        self.assertEqual([r for r in logs.records if r.levelno >= logging.INFO], [])
        self.assert_clean(logs.records)

    def test_a_handler_that_raises_is_a_warning_naming_the_message_and_the_exception_type_only(self):
        client = self.client()
        env, consultation_id = self.offered()
        self.hub_sends(env, consultationId=consultation_id)

        def handler(e, attempt):
            raise ValueError(f"cannot store {e['payload']['clinicalQuestion']}")

        with self.capture() as logs:
            client.receive(handler, timeout=1)
        self.assertEqual(self.world.settled, [(Delivery.MODIFIED, True)])
        [line] = self.lines(logs.records, "downlink message handed back for redelivery", logging.WARNING)
        self.assertEqual({k: getattr(line, k) for k in ("id", "type", "correlationId", "consultationId", "queue", "attempt", "reason")},
                         {"id": env["id"], "type": "consultation.offered", "correlationId": consultation_id, "consultationId": consultation_id, "queue": "rts.downlink.py-city", "attempt": 1, "reason": "handler threw: ValueError"})
        self.assertEqual(self.lines(logs.records, "downlink message handled"), [])
        self.assert_clean(logs.records)

    def test_the_last_attempt_and_a_dead_letter_from_the_handler_are_dead_letter_warnings(self):
        client = self.client()
        env, consultation_id = self.offered()
        self.hub_sends(env, consultationId=consultation_id, _delivery_count=4)
        refused, refused_id = self.offered()
        self.hub_sends(refused, consultationId=refused_id)

        def handler(e, attempt):
            if e["id"] == refused["id"]:
                raise DeadLetter("bad_schema: payload.summary")
            raise RuntimeError(QUESTION)

        with self.capture() as logs:
            client.receive(handler, timeout=1)
        lines = self.lines(logs.records, "downlink message dead-lettered", logging.WARNING)
        self.assertEqual([(r.id, r.consultationId, r.attempt, r.reason) for r in lines],
                         [(env["id"], consultation_id, 5, "retry limit (5) reached: handler threw: RuntimeError"), (refused["id"], refused_id, 1, "bad_schema: payload.summary")])
        self.assertEqual([address for address, _ in self.world.sent], ["rts.dlq", "rts.dlq"])
        self.assert_clean(logs.records)

    def test_a_message_that_cannot_be_opened_is_named_by_the_ids_its_sender_set_without_one_that_may_hold_a_cpr_number(self):
        client = self.client()
        forged = envelope(SYSTEM, "consultation.offered", {"consultationId": str(uuid.uuid4()), "clinicalQuestion": QUESTION})
        # Plain JSON where a JWE belongs, its correlation id a CPR number: malformed_jose, named by the body's id.
        self.world.inbox.append(Message(body=json.dumps({**forged, "correlationId": CPR}), properties={"type": "consultation.offered", "correlationId": CPR, "consultationId": forged["payload"]["consultationId"]}))
        # A data section, not an AMQP string: no id to read in the body, the property's only.
        self.world.inbox.append(Message(body=QUESTION.encode("utf-8"), properties={"messageId": "m-1", "correlationId": f"x{CPR}"}))
        with self.capture() as logs:
            client.receive(lambda e, attempt: self.fail("handled"), timeout=1)
        lines = self.lines(logs.records, "downlink message dead-lettered", logging.WARNING)
        self.assertEqual([(getattr(r, "id", None), getattr(r, "consultationId", None), hasattr(r, "correlationId")) for r in lines],
                         [(forged["id"], forged["payload"]["consultationId"], False), ("m-1", None, False)])
        self.assertTrue(lines[0].reason.startswith("malformed_jose: "), lines[0].reason)
        self.assertEqual(lines[1].reason, "body is not an AMQP value string")
        self.assert_clean(logs.records)


class Connecting(Case):
    def test_failover_names_each_broker_by_host_and_port_never_its_password(self):
        dead = f"amqps://{SYSTEM}:{PASSWORD}@broker-a.example:5671"
        self.world.refused.add("broker-a.example")
        with self.capture() as logs:
            self.client(urls=(dead, f"amqps://{SYSTEM}:{PASSWORD}@broker-b.example:5671"))
        [failed] = self.lines(logs.records, "hub broker connection failed", logging.WARNING)
        self.assertEqual(failed.endpoint, "broker-a.example:5671")
        self.assertIn("Connection refused", failed.error)
        [connected] = self.lines(logs.records, "connected to the hub broker", logging.INFO)
        self.assertEqual((connected.endpoint, connected.connectionCount, connected.systemId), ("broker-b.example:5671", 1, SYSTEM))
        self.assert_clean(logs.records)

    def test_proton_gets_the_password_apart_from_the_url_it_logs(self):
        self.client(urls=(f"amqps://{SYSTEM}:{PASSWORD.replace('-', '%2D')}@broker-a.example:5671",))
        self.assertEqual(self.world.connected, [("amqps://broker-a.example:5671", {"user": SYSTEM, "password": PASSWORD})])

    def test_what_proton_itself_logs_about_a_connection_holds_no_password(self):
        # The real BlockingConnection, to a port nobody listens on: proton logs "Connecting to Url(...)" at info.
        with self.assertLogs("proton", level="DEBUG") as logs, self.assertRaises(ConnectionError):
            RtsClient([f"amqp://{SYSTEM}:{PASSWORD}@127.0.0.1:1"], SYSTEM, self.codec)
        self.assertTrue(any("127.0.0.1:1" in r.getMessage() for r in logs.records), [r.getMessage() for r in logs.records])
        self.assertFalse([r.getMessage() for r in logs.records if PASSWORD in r.getMessage()])

    def test_the_library_adds_no_handler_of_its_own(self):
        self.client()
        logger = logging.getLogger("rts_client")
        self.assertEqual(logger.handlers, [])
        self.assertTrue(logger.propagate)
        self.assertEqual(logger.level, logging.NOTSET)


class LoggableIds(unittest.TestCase):
    """The hub's rule for a value a sender set (message-trace.ts): an id's characters, no CPR number anywhere in it.
    test/integration/python-client.int.spec.ts compares may_hold_cpr_digits with the hub's on many more values."""

    def test_ids_pass_and_what_may_hold_a_cpr_number_or_is_no_id_is_left_out(self):
        for value in ["3c9a7b52-8e41-4f0a-9d3b-6a1e2f4c8d10", "cons-0001", "2.25.329800735698586629295641978511506172918", "ticket:2026/17", "3201481234"]:
            self.assertEqual(loggable(value), value)
        for value in [CPR, "2512481234", f"ticket-{CPR}", "25.12.48-1234", "19481225-1234", "12512481234", "２５１２４８-１２３４", "a b", "x" * 101, "", None, 42]:
            self.assertIsNone(loggable(value), value)
        self.assertTrue(may_hold_cpr_digits("患者２５１２４８－１２３４，胸痛"))


if __name__ == "__main__":
    unittest.main()
