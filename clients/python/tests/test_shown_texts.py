"""Offline: a text people read that shows nothing is refused before it is sent, as the TypeScript SDK refuses it.

  cd clients/python && /usr/bin/python3 -m unittest discover -s tests -v

The hub dead-letters an uplink message whose expert profile, join name or consultation text holds something and shows
nothing (docs/messaging.md, Text: only white space, controls, format and other default-ignorable characters) as
bad_schema. The client sent it, and its user learnt of it from a dead letter later; now send() and join_with_experts
raise ContractViolation naming the fields (never their values) and send nothing. test/integration/python-client.int.spec.ts
compares shows_nothing with the hub's function on every code point.
"""
import os
import sys
import unittest
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from rts_client import ContractViolation, shows_nothing  # noqa: E402
from test_logging import Case  # noqa: E402


def expert(local_id, **changes):
    profile = {"localExpertId": local_id, "name": "Dr. Wang Li", "title": "Chief physician", "specialties": ["cardiology"],
               "location": {"city": "Chengdu", "hospital": "West China Hospital"}, "languages": ["zh"], "availability": "available"}
    return {**profile, **changes}


def profile_of(**changes):
    e = expert("e-1", **changes)
    del e["localExpertId"]
    return e


class ShownTexts(Case):
    def test_texts_of_invisible_characters_only_show_nothing(self):
        for text in ("\u200b", "\u200b\u200d", "\u00ad", "\u3164", "\ufe0f", " \u2060 ", "\u202e", "\U000e0041", "\x1c", "\x85", "\u034f", "\U00013439"):
            self.assertTrue(shows_nothing(text), ascii(text))
        # Visible, a prepended concatenation mark, or left to the field's own rule (empty or white space as trim() removes it).
        for text in ("a", "Hoved\u00adpine", "\u0600", "\u06dd", "\U000110bd", "", "   ", "\ufeff", "\t\n", "\u3000", "\U0001f468\u200d\u2695"):
            self.assertFalse(shows_nothing(text), ascii(text))

    def test_send_refuses_a_profile_text_that_shows_nothing_and_sends_nothing(self):
        client = self.client()
        payload = {"localExpertId": "e-1", "profile": profile_of(name="\u200b\u200b", specialties=["cardiology", "\u3164"], location={"city": "Chengdu", "hospital": "\u2060"})}
        with self.assertRaises(ContractViolation) as refused:
            client.send("expert.registered", payload)
        message = str(refused.exception)
        self.assertEqual([path for path, _ in refused.exception.problems], ["payload.profile.name", "payload.profile.specialties.1", "payload.profile.location.hospital"])
        self.assertIn("expert.registered breaks the message contract: payload.profile.name: must show a visible character", message)
        self.assertIsInstance(refused.exception, ValueError)
        self.assertEqual(self.world.sent, [])

    def test_send_refuses_consultation_texts_that_show_nothing(self):
        client = self.client()
        cid = str(uuid.uuid4())
        cases = [
            ("consultation.requested", {"consultationId": cid, "applicantClinician": "\u200e", "candidates": ["x:e-1"], "clinicalQuestion": "Q", "summary": "\u200b", "attachments": []},
             ["payload.applicantClinician", "payload.summary"]),
            ("consultation.report", {"consultationId": cid, "expertId": "x:e-1", "diagnosis": "\u00ad", "recommendations": "ok"}, ["payload.diagnosis"]),
            ("consultation.decline", {"consultationId": cid, "expertId": "x:e-1", "reason": "\u200c"}, ["payload.reason"]),
            ("consultation.cancel", {"consultationId": cid, "reason": "\u2063"}, ["payload.reason"]),
        ]
        for type_, payload, paths in cases:
            with self.assertRaises(ContractViolation, msg=type_) as refused:
                client.send(type_, payload)
            self.assertEqual([path for path, _ in refused.exception.problems], paths)
        self.assertEqual(self.world.sent, [])
        # Empty or white space only: sent (the hub's own rule for the field decides), as are visible texts.
        client.send("consultation.cancel", {"consultationId": cid, "reason": " "})
        client.send("consultation.report", {"consultationId": cid, "expertId": "x:e-1", "diagnosis": "Brugada\u200b pattern", "recommendations": ""})
        self.assertEqual(len(self.world.sent), 2)

    def test_a_join_with_one_expert_that_shows_nothing_sends_nothing_not_even_the_join_request(self):
        client = self.client()
        experts = [expert(f"e-{i}") for i in range(600)]
        experts[503] = expert("e-503", title="\u200b")
        with self.assertRaises(ContractViolation) as refused:
            client.join_with_experts(experts)
        self.assertEqual([path for path, _ in refused.exception.problems], ["payload.experts.3.title"])  # the second batch's fourth
        with self.assertRaises(ContractViolation) as refused:
            client.join_with_experts(experts[:2], name="\ufeff\u200b")
        self.assertEqual([path for path, _ in refused.exception.problems], ["payload.name"])
        self.assertEqual(self.world.sent, [])


if __name__ == "__main__":
    unittest.main()
