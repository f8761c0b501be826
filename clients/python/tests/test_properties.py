"""Offline: the application-properties the client puts on an uplink message (no broker, no hub).

  cd clients/python && /usr/bin/python3 -m unittest discover -s tests -v
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from rts_client import envelope, uplink_properties  # noqa: E402


class Codec:
    name = "jose"
    content_type = "application/jose"


class UplinkProperties(unittest.TestCase):
    def test_a_consultation_message_says_it_reads_consultation_refused(self):
        env = envelope("py-city", "consultation.requested", {"consultationId": "3c9a7b52-8e41-4f0a-9d3b-6a1e2f4c8d10"})
        properties = uplink_properties(env, Codec())
        self.assertEqual(properties["rts_accepts"], "consultation.refused")
        self.assertEqual({k: properties[k] for k in ("messageId", "type", "systemId", "correlationId", "version")}, {"messageId": env["id"], "type": "consultation.requested", "systemId": "py-city", "correlationId": env["correlationId"], "version": 1})

    def test_a_directory_message_carries_no_rts_accepts(self):
        env = envelope("py-city", "expert.retired", {"localExpertId": "e-1"})
        self.assertNotIn("rts_accepts", uplink_properties(env, Codec()))


if __name__ == "__main__":
    unittest.main()
