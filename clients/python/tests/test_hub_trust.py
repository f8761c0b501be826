"""Offline unit tests of how the client treats the hub's HTTP API and JWKS as trust material: no broker, no hub.

  cd clients/python && /usr/bin/python3 -m unittest discover -s tests -v

  * the hub URL: https://, or http:// only on a loopback host, unless insecure_http=True (HubHttp, JoseCodec).
"""
import os
import sys
import unittest
from unittest import mock

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import rts_client  # noqa: E402
from rts_client import HubHttp, JoseCodec, PartyKeys, check_hub_url  # noqa: E402
from test_codec import hub_jwks, new_key  # noqa: E402


class HubUrlRule(unittest.TestCase):
    """https://, or http:// on a loopback host; any other refused at construction unless insecure_http=True."""

    ALLOWED = ["https://hub.example", "https://hub.example:8443/", "HTTPS://HUB.EXAMPLE/", "https://10.0.0.5",
               "http://127.0.0.1:8080", "http://127.5.6.7", "http://localhost:8080", "HTTP://LocalHost/",
               "http://[::1]:8080", "http://[::1]"]
    REFUSED = ["http://hub:8080", "http://10.0.0.5:8080", "http://localhost.evil.example", "http://127.0.0.1.evil.example",
               "http://[::2]", "http://[::ffff:127.0.0.1]", "http://0.0.0.0:8080", "http://128.0.0.1"]

    def test_https_and_loopback_http_are_accepted(self):
        for url in self.ALLOWED:
            with self.subTest(url=url):
                check_hub_url(url)
                self.assertEqual(HubHttp(url).base_url, url.rstrip("/"))

    def test_plain_http_to_another_host_is_refused_naming_scheme_and_host_and_the_opt_out(self):
        for url in self.REFUSED:
            with self.subTest(url=url):
                with self.assertRaises(ValueError) as refused:
                    HubHttp(url, {"authorization": "Bearer t"})
                self.assertIn("'http'", str(refused.exception))
                self.assertIn(repr(rts_client.urlsplit(url).hostname), str(refused.exception))
                self.assertIn("insecure_http=True", str(refused.exception))
        with self.assertRaises(ValueError) as refused:
            HubHttp("http://hub:8080")
        self.assertIn("scheme 'http' with host 'hub'", str(refused.exception))

    def test_insecure_http_allows_plain_http_to_any_host_but_no_other_scheme(self):
        for url in self.REFUSED:
            with self.subTest(url=url):
                self.assertEqual(HubHttp(url, insecure_http=True).base_url, url)
        for url in ["ftp://hub.example/", "file:///etc/jwks.json", "hub.example:8080", "https://", "//hub.example/"]:
            with self.subTest(url=url):
                with self.assertRaises(ValueError):
                    HubHttp(url, insecure_http=True)

    def test_the_message_never_carries_a_password_from_the_url(self):
        with self.assertRaises(ValueError) as refused:
            HubHttp("http://operator:s3cret@hub:8080/")
        self.assertNotIn("s3cret", str(refused.exception))
        self.assertIn("'hub'", str(refused.exception))

    def test_a_jwks_url_follows_the_same_rule_before_anything_is_read(self):
        jwks = hub_jwks(new_key(), [new_key()])
        read = mock.Mock(return_value=jwks)
        with mock.patch.object(rts_client, "_read_jwks_url", read):
            for url in ["https://hub.example/.well-known/jwks.json", "http://127.0.0.1:8080/.well-known/jwks.json",
                        "http://localhost/.well-known/jwks.json", "http://[::1]:8080/.well-known/jwks.json"]:
                with self.subTest(url=url):
                    JoseCodec(PartyKeys("city-a"), url)
                    read.assert_called_with(url)
            read.reset_mock()
            with self.assertRaises(ValueError) as refused:
                JoseCodec(PartyKeys("city-a"), "http://hub:8080/.well-known/jwks.json")
            self.assertIn("scheme 'http' with host 'hub'", str(refused.exception))
            self.assertIn("insecure_http=True", str(refused.exception))
            read.assert_not_called()
            codec = JoseCodec(PartyKeys("city-a"), "http://hub:8080/.well-known/jwks.json", insecure_http=True)
            read.assert_called_once_with("http://hub:8080/.well-known/jwks.json")
            self.assertEqual(codec.jwks_reads, 1)


if __name__ == "__main__":
    unittest.main()
