"""Offline: lost connections are not counted as failed attempts of the downlink messages the client held.

  cd clients/python && /usr/bin/python3 -m unittest discover -s tests -v

ActiveMQ raises the delivery-count of every message a connection held unsettled when it was lost, those only
prefetched (the receiver's credit is 10) included, one per loss. Counted as attempts, five lost connections
dead-lettered healthy messages as "max attempts exceeded (5 failed deliveries)" without one handling (an outside
review saw all six of a system's queued directory changes go so). The client takes off the losses it saw while it held
a message, as the TypeScript SDK does, at most MAX_EXCUSED_LOSSES per message.
"""
import collections
import os
import sys
import unittest
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import rts_client  # noqa: E402
from rts_client import envelope  # noqa: E402

MAX_EXCUSED_LOSSES = getattr(rts_client, "MAX_EXCUSED_LOSSES", 20)
from test_logging import Case, FakeConnection, FakeReceiver  # noqa: E402


class PrefetchingReceiver(FakeReceiver):
    """The queue's messages are all prefetched: the fetcher holds them, as proton's BlockingReceiver does."""

    @property
    def fetcher(self):
        return self._fetcher

    @fetcher.setter
    def fetcher(self, value):
        self._fetcher = value
        value.incoming = collections.deque((m, None) for m in self.world.inbox)


class LostConnections(Case):
    def setUp(self):
        super().setUp()
        original = FakeConnection.create_receiver
        FakeConnection.create_receiver = lambda conn, address, credit=None: PrefetchingReceiver(conn.world)
        self.addCleanup(setattr, FakeConnection, "create_receiver", original)

    def lose_connection(self, client):
        """The connection drops while the client holds what the broker prefetched to it; the broker counts it."""
        client.receiver = client.connection.create_receiver(client.downlink, credit=10)
        client.receiver.fetcher.incoming = collections.deque((m, None) for m in self.world.inbox)
        self.world.open = False
        for message in self.world.inbox:
            message.delivery_count = (message.delivery_count or 0) + 1
        client._reconnect(ConnectionError("connection reset"))

    def upserted(self):
        env = envelope("hub", "directory.expert.upserted", {"expertId": "other:e-1", "revision": 1}, message_id=str(uuid.uuid4()))
        env["systemId"] = rts_client.loggable(self.keys.owner)
        self.hub_sends(env)
        self.world.inbox[-1].id = env["id"]
        return env

    def test_five_lost_connections_do_not_dead_letter_a_prefetched_message(self):
        client = self.client()
        env = self.upserted()
        handled = []
        with self.capture():
            for _ in range(5):
                self.lose_connection(client)
            self.assertEqual(self.world.inbox[0].delivery_count, 5)
            got = client.receive(lambda e, attempt: handled.append((e["id"], attempt)), timeout=1)
        self.assertEqual(handled, [(env["id"], 1)])
        self.assertEqual(got["id"], env["id"])
        self.assertEqual([address for address, _ in self.world.sent if address == client.dead_letter_queue], [])

    def test_a_message_that_ends_the_connection_every_time_is_dead_lettered_in_the_end(self):
        client = self.client(max_attempts=5)
        self.upserted()
        handled = []
        with self.capture():
            for _ in range(MAX_EXCUSED_LOSSES + 5):
                self.lose_connection(client)
            client.receive(lambda e, attempt: handled.append(attempt), timeout=1)
        self.assertEqual(handled, [])
        dead = [m for address, m in self.world.sent if address == client.dead_letter_queue]
        self.assertEqual(len(dead), 1)
        self.assertEqual(dead[0].properties["x-dlq-reason"], "max attempts exceeded (5 failed deliveries)")


if __name__ == "__main__":
    unittest.main()
