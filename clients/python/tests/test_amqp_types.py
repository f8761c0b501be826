"""Offline: the AMQP types of the numbers the client puts in application-properties, as they go on the wire.

  cd clients/python && /usr/bin/python3 -m unittest discover -s tests -v

docs/messaging.md asks every sender to set `version` as an AMQP int, and says the dead letter properties' numbers are
AMQP ints (`x-dlq-attempts`: JMS `getIntProperty`, which refuses a long). Python's `int` goes on the wire as an AMQP
long, so the client sent `version` and `x-dlq-attempts` as longs: a JMS tool reading them with `getIntProperty`
threw MessageFormatException, and the dead letters kept the long. Each message is encoded and decoded here as proton
puts it on the wire and reads it back.
"""
import os
import sys
import unittest
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from proton import Message, int32  # noqa: E402

from rts_client import DeadLetter, envelope  # noqa: E402
from test_logging import SYSTEM, Case  # noqa: E402


def on_the_wire(message):
    """The message as a receiver decodes it: proton gives an AMQP int as int32 and an AMQP long as a plain int."""
    back = Message()
    back.decode(message.encode())
    return back


class AmqpTypes(Case):
    def test_an_uplink_message_carries_version_as_an_amqp_int(self):
        client = self.client()
        client.send("consultation.cancel", {"consultationId": str(uuid.uuid4()), "reason": "transferred"})
        [(address, message)] = [(a, m) for a, m in self.world.sent if a == "rts.uplink"]
        version = on_the_wire(message).properties["version"]
        self.assertIs(type(version), int32)
        self.assertEqual(version, 1)

    def test_a_dead_letter_copy_carries_x_dlq_attempts_as_an_amqp_int_and_keeps_the_hubs_int_version(self):
        client = self.client()
        env = envelope("hub", "directory.expert.upserted", {"expertId": "other:e-1", "revision": 1}, message_id=str(uuid.uuid4()))
        env["systemId"] = SYSTEM
        self.hub_sends(env)
        self.world.inbox[-1].properties["version"] = int32(1)  # as the hub sends it

        def refuse(e, attempt):
            raise DeadLetter("bad_schema: payload.profile")

        with self.capture():
            client.receive(refuse, timeout=1)
        [copy] = [m for a, m in self.world.sent if a == client.dead_letter_queue]
        properties = on_the_wire(copy).properties
        self.assertIs(type(properties["x-dlq-attempts"]), int32)
        self.assertEqual(properties["x-dlq-attempts"], 1)
        self.assertIs(type(properties["version"]), int32)


if __name__ == "__main__":
    unittest.main()
