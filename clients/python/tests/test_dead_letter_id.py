"""Offline: the rts_dlq_id of the client's own dead letters is made of the original message, as the hub's is.

  cd clients/python && /usr/bin/python3 -m unittest discover -s tests -v

The client copies a message it cannot process to rts.dlq and accepts the original only once the broker accepted the
copy. When that accept is lost (the connection dropped after the broker took the copy), the original comes again and
is dead-lettered again: with a random rts_dlq_id (uuid4) that made two dead letters of one message, which the hub's
tools list, replay and discard as two. Made of the original (dead_letter_id_for, the hub's deadLetterIdFor), every
copy of one delivery carries the same id. test/integration/python-client.int.spec.ts compares it with the hub's.
"""
import os
import re
import sys
import unittest
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from proton import ConnectionException, Message  # noqa: E402

from rts_client import DeadLetter, dead_letter_id_for, envelope  # noqa: E402
from test_logging import SYSTEM, Case  # noqa: E402

V8 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def refuse(env, attempt):
    raise DeadLetter("bad_schema: payload.profile")


class DeadLetterId(Case):
    def hub_message(self, **properties):
        env = envelope("hub", "directory.expert.upserted", {"expertId": "other:e-1", "revision": 1}, message_id=str(uuid.uuid4()))
        env["systemId"] = SYSTEM
        self.hub_sends(env, **properties)
        return self.world.inbox[-1]

    def copies(self, client):
        return [m for a, m in self.world.sent if a == client.dead_letter_queue]

    def test_a_copy_sent_again_after_its_accept_was_lost_carries_the_same_id(self):
        client = self.client()
        original = self.hub_message()
        # The broker takes the first copy, and the connection is lost before its accept reaches us.
        self.world.send_outcomes = [ConnectionException("Connection aborted")]
        with self.capture():
            client.receive(refuse, timeout=1)
        # The original was not accepted: the broker delivers it again, its delivery-count one higher.
        again = Message(body=original.body, properties=dict(original.properties), id=original.id, delivery_count=1)
        self.world.inbox.append(again)
        with self.capture():
            client.receive(refuse, timeout=1)
        first, second = self.copies(client)
        self.assertEqual(second.properties["rts_dlq_id"], first.properties["rts_dlq_id"])
        self.assertRegex(first.properties["rts_dlq_id"], V8)

    def test_another_message_is_another_dead_letter(self):
        client = self.client()
        self.hub_message()
        self.hub_message()
        with self.capture():
            client.receive(refuse, timeout=1)
            client.receive(refuse, timeout=1)
        first, second = self.copies(client)
        self.assertNotEqual(first.properties["rts_dlq_id"], second.properties["rts_dlq_id"])

    def test_the_id_is_of_the_id_the_body_and_the_properties_not_of_a_dlq_id_the_sender_set(self):
        base = Message(body="eyJhbGciOi.x.y.z.w", id="m-1", properties={"type": "consultation.report", "version": 1})
        id_ = dead_letter_id_for(base)
        self.assertRegex(id_, V8)
        self.assertEqual(dead_letter_id_for(Message(body=base.body, id="m-1", properties={**base.properties, "rts_dlq_id": str(uuid.uuid4()), "rts_envelope_id": "e"})), id_)
        for other in (Message(body=base.body, id="m-2", properties=base.properties),
                      Message(body=base.body + "!", id="m-1", properties=base.properties),
                      Message(body=base.body, id="m-1", properties={**base.properties, "x-replay-count": 1}),
                      Message(body=base.body.encode("utf-8"), inferred=True, id="m-1", properties=base.properties)):
            self.assertNotEqual(dead_letter_id_for(other), id_)


if __name__ == "__main__":
    unittest.main()
