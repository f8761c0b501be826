"""Offline unit tests of how the client treats the hub's HTTP API and JWKS as trust material: no broker, no hub.

  cd clients/python && /usr/bin/python3 -m unittest discover -s tests -v

  * the hub URL: https://, or http:// only on a loopback host, unless insecure_http=True (HubHttp, JoseCodec);
  * no redirect followed, and the JWKS read with cache-control: no-cache (a tiny http.server on 127.0.0.1);
  * the timed re-read: keys older than max_age are read again before the next encode or decode uses them, so a
    hub key the JWKS no longer lists (revoked) stops being trusted.
"""
import http.server
import json
import os
import socket
import sys
import threading
import unittest
import urllib.request
from unittest import mock

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from jwcrypto import jwe  # noqa: E402

import rts_client  # noqa: E402
from rts_client import HubHttp, JoseCodec, PartyKeys, RedirectRefused, check_hub_url, envelope  # noqa: E402
from test_codec import Clock, Jwks, hub_jwks, hub_message, new_key, reason, upsert  # noqa: E402


class LocalServer:
    """An http.server on 127.0.0.1 answering `routes[path]` = (status, headers, body), recording each request's path
    and headers (lower-cased names) in `requests`."""

    def __init__(self, routes):
        self.routes = routes
        self.requests = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self):
                server.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                status, headers, body = server.routes.get(self.path, (404, {}, b'{"error":"not_found"}'))
                self.send_response(status)
                for name, value in {"content-type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer  # noqa: N815

            def log_message(self, *args):
                pass

        self.http = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_port}"
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    def paths(self):
        return [path for path, _ in self.requests]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.http.shutdown()
        self.http.server_close()


def jwks_body(jwks):
    return 200, {"cache-control": "public, max-age=300"}, json.dumps(jwks).encode("utf-8")


def redirect(code, location):
    return code, {"location": location}, b""


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


class HubRequests(unittest.TestCase):
    """No redirect is followed; the JWKS is asked for with cache-control: no-cache; HTTP_TIMEOUT bounds a call."""

    def setUp(self):
        self.hub_sig, self.hub_enc = new_key(), new_key()
        self.keys = PartyKeys("city-a")
        self.jwks = hub_jwks(self.hub_sig, [self.hub_enc])

    def test_hub_http_refuses_every_redirect_and_does_not_go_there(self):
        for code in (301, 302, 303, 307, 308):
            with self.subTest(code=code), LocalServer({}) as server:
                server.routes["/elsewhere"] = jwks_body(self.jwks)
                server.routes["/.well-known/jwks.json"] = redirect(code, f"{server.url}/elsewhere")
                server.routes["/systems"] = redirect(code, f"{server.url}/elsewhere")
                hub = HubHttp(server.url, {"authorization": "Bearer operator-token"})
                with self.assertRaises(RedirectRefused) as refused:
                    hub.jwks()
                self.assertIn(f"HTTP {code}", str(refused.exception))
                self.assertIn("redirects are not followed", str(refused.exception))
                with self.assertRaises(RedirectRefused):
                    hub.register_system("city-a", "City A", "Hubei", self.keys)
                self.assertEqual(server.paths(), ["/.well-known/jwks.json", "/systems"])

    def test_a_jwks_url_that_redirects_is_refused_at_construction_and_on_a_re_read(self):
        with LocalServer({}) as server:
            server.routes["/plain"] = jwks_body(self.jwks)
            server.routes["/.well-known/jwks.json"] = redirect(302, f"{server.url}/plain")
            with self.assertRaises(RedirectRefused) as refused:
                JoseCodec(self.keys, f"{server.url}/.well-known/jwks.json")
            self.assertIn("HTTP 302", str(refused.exception))
            # Served at first; then the hub's URL answers with a redirect to a JWKS holding a key it does not list.
            server.routes["/.well-known/jwks.json"] = jwks_body(self.jwks)
            codec = JoseCodec(self.keys, f"{server.url}/.well-known/jwks.json", clock=Clock())
            planted = new_key()
            server.routes["/plain"] = jwks_body(hub_jwks(planted, [self.hub_enc]))
            server.routes["/.well-known/jwks.json"] = redirect(307, f"{server.url}/plain")
            message = hub_message(upsert("city-a"), planted, self.keys.encryption, "city-a")
            self.assertEqual(reason(codec, message), "unknown_key")
            self.assertNotIn("/plain", server.paths()[1:])
            self.assertEqual(reason(codec, hub_message(upsert("city-a"), self.hub_sig, self.keys.encryption, "city-a")), "accepted")

    def test_the_jwks_is_asked_for_with_cache_control_no_cache(self):
        with LocalServer({"/.well-known/jwks.json": jwks_body(self.jwks)}) as server:
            HubHttp(server.url).jwks()
            codec = JoseCodec(self.keys, f"{server.url}/.well-known/jwks.json", clock=Clock())
            self.assertEqual(reason(codec, hub_message(upsert("city-a"), new_key(), self.keys.encryption, "city-a")), "unknown_key")  # a re-read
            self.assertEqual(len(server.requests), 3)
            for _, headers in server.requests:
                self.assertEqual(headers.get("cache-control"), "no-cache")

    def test_a_loopback_hub_is_reached_directly_never_through_the_environments_proxy(self):
        # http:// is allowed to loopback because it never leaves the machine; urllib would hand it (the operator's
        # token, the JWKS every hub message is verified against) to $http_proxy in clear, and take the proxy's answer.
        with LocalServer({}) as proxy, LocalServer({"/.well-known/jwks.json": jwks_body(self.jwks)}) as hub:
            proxy.routes["http://hub.invalid/.well-known/jwks.json"] = jwks_body(self.jwks)
            with mock.patch.dict(os.environ, {"http_proxy": proxy.url, "https_proxy": proxy.url, "no_proxy": ""}):
                proxied = urllib.request.build_opener(rts_client._RefuseRedirects)  # as built in a process started so
            with mock.patch.object(rts_client, "_OPENER", proxied), mock.patch.dict(os.environ, {"http_proxy": proxy.url, "no_proxy": ""}):
                for url in (hub.url, hub.url.replace("127.0.0.1", "localhost")):
                    HubHttp(url, {"authorization": "Bearer operator-token"}).jwks()
                JoseCodec(self.keys, f"{hub.url}/.well-known/jwks.json")
                self.assertEqual(len(hub.requests), 3)
                self.assertEqual(proxy.requests, [])
                # Another host (plain http only with insecure_http=True) still goes through the proxy, as configured.
                HubHttp("http://hub.invalid", insecure_http=True).jwks()
                self.assertEqual(proxy.paths(), ["http://hub.invalid/.well-known/jwks.json"])

    def test_an_answer_larger_than_hub_answer_max_bytes_or_not_json_is_refused_naming_the_call(self):
        self.assertEqual(rts_client.HUB_ANSWER_MAX_BYTES, 1024 * 1024)
        with LocalServer({}) as server, mock.patch.object(rts_client, "HUB_ANSWER_MAX_BYTES", 1000):
            server.routes["/.well-known/jwks.json"] = (200, {}, b'{"keys":[' + b" " * 1000 + b"]}")
            server.routes["/systems"] = (503, {}, b'{"detail":"' + b"x" * 1000 + b'"}')
            hub = HubHttp(server.url)
            with self.assertRaises(RuntimeError) as raised:
                hub.jwks()
            self.assertEqual(str(raised.exception), "GET /.well-known/jwks.json: the answer is larger than 1000 bytes")
            with self.assertRaises(RuntimeError) as raised:
                JoseCodec(self.keys, f"{server.url}/.well-known/jwks.json")
            self.assertIn("the answer is larger than 1000 bytes", str(raised.exception))
            with self.assertRaises(RuntimeError) as raised:  # an error status's answer too
                hub.register_system("city-a", "City A", "Hubei", self.keys)
            self.assertEqual(str(raised.exception), "POST /systems: the answer is larger than 1000 bytes")
            server.routes["/.well-known/jwks.json"] = (200, {"content-type": "text/html"}, b"<html>proxy error</html>")
            with self.assertRaises(RuntimeError) as raised:
                hub.jwks()
            self.assertEqual(str(raised.exception), "GET /.well-known/jwks.json: the answer is not JSON")
            server.routes["/.well-known/jwks.json"] = jwks_body(self.jwks)
            self.assertEqual(hub.jwks(), self.jwks)  # at the limit's side of it, taken

    def test_a_call_waits_http_timeout_seconds_at_most(self):
        self.assertEqual(rts_client.HTTP_TIMEOUT, 10)
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # takes the connection, never answers
        try:
            with mock.patch.object(rts_client, "HTTP_TIMEOUT", 0.3):
                with self.assertRaises(OSError) as raised:  # socket.timeout (TimeoutError), or URLError around it
                    HubHttp(f"http://127.0.0.1:{silent.getsockname()[1]}").jwks()
            error = raised.exception
            self.assertTrue(isinstance(error, TimeoutError) or isinstance(getattr(error, "reason", None), TimeoutError), repr(error))
        finally:
            silent.close()


class HubKeysMaxAge(unittest.TestCase):
    """Keys read more than max_age seconds ago are re-read before the next encode or decode uses them."""

    def setUp(self):
        self.hub_sig, self.hub_enc = new_key(), new_key()
        self.keys = PartyKeys("city-a")
        self.jwks = Jwks(hub_jwks(self.hub_sig, [self.hub_enc]))
        self.clock = Clock()
        self.codec = JoseCodec(self.keys, self.jwks, refresh_interval=30, clock=self.clock, max_age=300)

    def message(self, signing):
        return hub_message(upsert("city-a"), signing, self.keys.encryption, "city-a")

    def send(self, codec=None):
        """What encode encrypted for: the kid of the hub's encryption key it used."""
        token = jwe.JWE()
        token.deserialize((codec or self.codec).encode(envelope("city-a", "expert.retired", {"localExpertId": "e-1"})))
        return token.jose_header["kid"]

    def test_the_default_max_age_is_300_seconds_and_the_read_time_is_exposed_read_only(self):
        codec = JoseCodec(self.keys, self.jwks, clock=self.clock)
        self.assertEqual(codec.max_age, 300.0)
        self.assertEqual(codec.hub_keys_read_at, 1000.0)
        with self.assertRaises(AttributeError):
            codec.hub_keys_read_at = 0

    def test_keys_younger_than_max_age_are_not_re_read(self):
        self.clock.now += 299
        for _ in range(5):
            self.assertEqual(reason(self.codec, self.message(self.hub_sig)), "accepted")
            self.send()
        self.assertEqual(self.jwks.reads, 1)
        self.assertEqual(self.codec.hub_keys_read_at, 1000.0)

    def test_older_keys_are_re_read_before_a_decode_then_not_again_until_max_age(self):
        self.clock.now += 301
        self.assertEqual(reason(self.codec, self.message(self.hub_sig)), "accepted")
        self.assertEqual(self.jwks.reads, 2)
        self.assertEqual(self.codec.hub_keys_read_at, 1301.0)
        self.clock.now += 299
        self.assertEqual(reason(self.codec, self.message(self.hub_sig)), "accepted")
        self.assertEqual(self.jwks.reads, 2)
        self.clock.now += 2
        self.send()
        self.assertEqual(self.jwks.reads, 3)

    def test_a_dropped_hub_signing_key_is_refused_after_the_timed_re_read(self):
        # The hub revoked its signing key (it may have leaked): its JWKS lists only a new one. No message signed with
        # an unknown kid comes, so only the timed re-read can notice.
        replacement = new_key()
        self.assertEqual(reason(self.codec, self.message(self.hub_sig)), "accepted")
        self.jwks.current = hub_jwks(replacement, [self.hub_enc])
        self.clock.now += 200
        self.assertEqual(reason(self.codec, self.message(self.hub_sig)), "accepted")  # not yet max_age
        self.clock.now += 101
        self.assertEqual(reason(self.codec, self.message(self.hub_sig)), "unknown_key")
        self.assertEqual(self.jwks.reads, 2)  # the timed re-read; the unknown kid right after it reads nothing more
        self.assertEqual(reason(self.codec, self.message(replacement)), "accepted")
        self.assertEqual(self.jwks.reads, 2)

    def test_a_dropped_hub_encryption_key_is_no_longer_encrypted_for_after_the_timed_re_read(self):
        replacement = new_key()
        self.jwks.current = hub_jwks(self.hub_sig, [replacement])
        self.clock.now += 299
        self.assertEqual(self.send(), self.hub_enc.thumbprint())
        self.clock.now += 2
        self.assertEqual(self.send(), replacement.thumbprint())  # read before encode used the key
        self.assertEqual(self.jwks.reads, 2)

    def test_a_failed_timed_re_read_keeps_the_keys_and_the_message_goes_on(self):
        self.jwks.fail = True
        self.clock.now += 301
        self.assertEqual(reason(self.codec, self.message(self.hub_sig)), "accepted")
        self.assertEqual(self.send(), self.hub_enc.thumbprint())
        self.assertEqual(self.jwks.reads, 2)
        self.assertEqual(self.codec.hub_keys_read_at, 1000.0)  # the last SUCCESSFUL read: the keys are stale
        self.jwks.current = {"keys": []}  # a JWKS without keys is a failed read too
        self.jwks.fail = False
        self.clock.now += 30
        self.assertEqual(reason(self.codec, self.message(self.hub_sig)), "accepted")
        self.assertTrue(self.codec.wait_for_key_reads(5))  # after a failed read, the next runs beside the message
        self.assertEqual(self.jwks.reads, 3)
        self.assertEqual(self.codec.hub_keys_read_at, 1000.0)

    def test_timed_re_reads_are_rate_limited_by_refresh_interval(self):
        self.jwks.fail = True
        self.clock.now += 301
        for _ in range(20):
            self.send()
            self.assertEqual(reason(self.codec, self.message(self.hub_sig)), "accepted")
            self.assertEqual(reason(self.codec, self.message(new_key())), "unknown_key")
        self.assertEqual(self.jwks.reads, 3)  # one timed and one for an unknown kid, for all of them
        self.clock.now += 29
        self.send()
        self.assertEqual(self.jwks.reads, 3)
        self.clock.now += 1
        self.jwks.fail = False
        self.send()
        self.assertTrue(self.codec.wait_for_key_reads(5))  # after a failed read, the next runs beside the message
        self.assertEqual(self.jwks.reads, 4)
        self.assertEqual(self.codec.hub_keys_read_at, 1331.0)
        # The timed re-read made the keys fresh: no timed read follows, only the unknown kid's (its own interval).
        self.clock.now += 10
        self.assertEqual(reason(self.codec, self.message(new_key())), "unknown_key")
        self.assertEqual(self.jwks.reads, 5)
        self.assertEqual(reason(self.codec, self.message(self.hub_sig)), "accepted")
        self.send()
        self.assertEqual(self.jwks.reads, 5)

    def test_after_a_failed_read_a_hub_that_never_answers_stalls_no_message(self):
        answered = threading.Event()
        rotated = new_key()
        calls = []

        def slow():
            calls.append(1)
            if len(calls) == 1:
                return self.jwks.current  # the first read, at the start
            if len(calls) == 2:
                raise OSError("the hub is unreachable")
            answered.wait(10)  # the hub took the request and does not answer (until told to)
            return hub_jwks(rotated, [self.hub_enc])

        codec = JoseCodec(self.keys, slow, refresh_interval=30, clock=self.clock, max_age=300)
        self.clock.now += 301
        self.assertEqual(reason(codec, self.message(self.hub_sig)), "accepted")  # the read failed: the keys kept
        self.clock.now += 30
        self.assertEqual(reason(codec, self.message(self.hub_sig)), "accepted")  # not held by the read in flight
        self.assertFalse(codec.wait_for_key_reads(0.05))  # in flight after the message was answered: not waited for
        answered.set()
        self.assertTrue(codec.wait_for_key_reads(5))
        self.assertEqual(codec.hub_keys_read_at, self.clock.now)
        self.assertEqual(reason(codec, self.message(self.hub_sig)), "unknown_key")  # the dropped key, once read

    def test_a_read_that_failed_long_ago_does_not_let_a_revoked_key_through_beside_the_next_read(self):
        # The hub restarts to drop a leaked signing key; a read while it is down fails. Then no message for an hour:
        # the next one, forged under the leaked key, must wait for the read (the JWKS is reachable again).
        self.jwks.fail = True
        self.clock.now += 301
        self.assertEqual(reason(self.codec, self.message(self.hub_sig)), "accepted")  # the read failed: kept
        self.jwks.fail = False
        self.jwks.current = hub_jwks(new_key(), [self.hub_enc])
        self.clock.now += 3600
        self.assertEqual(reason(self.codec, self.message(self.hub_sig)), "unknown_key")
        self.assertEqual(self.jwks.reads, 3)

    def test_a_slow_background_read_answering_last_does_not_put_back_the_keys_a_later_read_replaced(self):
        # After a failed read the timed one runs in a thread; the hub rotates its signing key meanwhile and its first
        # message under the new key re-reads in the caller's thread, which answers first. The thread's older answer,
        # when it comes, must not put the old keys back (the new key unknown again until the next re-read).
        rotated = new_key()
        old = hub_jwks(self.hub_sig, [self.hub_enc])
        asked, release = threading.Event(), threading.Event()
        calls = []

        def fetch():
            calls.append(threading.current_thread().name)
            if len(calls) == 1:
                return old
            if len(calls) == 2:
                raise OSError("the hub is unreachable")
            if threading.current_thread().name == "rts-hub-jwks":
                asked.set()
                release.wait(10)  # the hub's answer to the thread (its keys before the rotation) comes late
                return old
            return hub_jwks(rotated, [self.hub_enc], previous_signing=[self.hub_sig])

        codec = JoseCodec(self.keys, fetch, refresh_interval=30, clock=self.clock, max_age=300)
        self.clock.now += 301
        self.assertEqual(reason(codec, self.message(self.hub_sig)), "accepted")  # the read failed: kept
        self.clock.now += 30
        self.assertEqual(reason(codec, self.message(self.hub_sig)), "accepted")  # the timed read, in the thread
        self.assertTrue(asked.wait(5))
        self.assertEqual(reason(codec, self.message(rotated)), "accepted")  # its own read, begun later, answered first
        self.assertEqual(calls[2:], ["rts-hub-jwks", threading.current_thread().name])
        release.set()
        self.assertTrue(codec.wait_for_key_reads(5))
        self.clock.now += 1
        self.assertEqual(reason(codec, self.message(rotated)), "accepted")
        self.assertEqual(len(calls), 4)
        self.assertEqual(codec.hub_keys_read_at, 1331.0)

    def test_a_timed_re_read_does_not_hold_off_the_re_read_for_the_hubs_new_signing_key(self):
        # The hub restarts with a new signing key: while it is down, a timed re-read fails; 5 s later it is back,
        # lists its new signing key and signs with it. The message must be taken, not dead-lettered as unknown_key
        # for the rest of refresh_interval.
        rotated = new_key()
        self.jwks.fail = True
        self.clock.now += 301
        self.send()
        self.assertEqual(self.jwks.reads, 2)
        self.jwks.fail = False
        self.jwks.current = hub_jwks(rotated, [self.hub_enc])
        self.clock.now += 5
        self.assertEqual(reason(self.codec, self.message(rotated)), "accepted")
        self.assertEqual(self.jwks.reads, 3)

    def test_a_successful_timed_re_read_does_not_hold_off_it_either(self):
        rotated = new_key()
        self.clock.now += 301
        self.send()  # timed re-read, the hub not rotated yet
        self.assertEqual(self.jwks.reads, 2)
        self.jwks.current = hub_jwks(rotated, [self.hub_enc])
        self.clock.now += 10
        self.assertEqual(reason(self.codec, self.message(rotated)), "accepted")
        self.assertEqual(self.jwks.reads, 3)

    def test_an_unknown_kid_re_read_also_resets_the_age(self):
        self.clock.now += 250
        self.assertEqual(reason(self.codec, self.message(new_key())), "unknown_key")
        self.assertEqual(self.jwks.reads, 2)
        self.assertEqual(self.codec.hub_keys_read_at, 1250.0)
        self.clock.now += 299
        self.send()
        self.assertEqual(self.jwks.reads, 2)

    def test_max_age_none_never_re_reads_by_time(self):
        jwks = Jwks(hub_jwks(self.hub_sig, [self.hub_enc]))
        codec = JoseCodec(self.keys, jwks, refresh_interval=30, clock=self.clock, max_age=None)
        jwks.current = hub_jwks(new_key(), [new_key()])
        self.clock.now += 10 ** 7
        self.assertEqual(reason(codec, self.message(self.hub_sig)), "accepted")
        self.assertEqual(self.send(codec), self.hub_enc.thumbprint())
        self.assertEqual(jwks.reads, 1)
        self.assertEqual(codec.hub_keys_read_at, 1000.0)

    def test_a_jwks_given_as_a_dict_is_never_re_read_by_time(self):
        codec = JoseCodec(self.keys, hub_jwks(self.hub_sig, [self.hub_enc]), clock=self.clock, max_age=1)
        self.assertIsNone(codec.hub_keys_read_at)
        self.clock.now += 10 ** 7
        self.assertEqual(reason(codec, self.message(self.hub_sig)), "accepted")
        self.assertEqual(self.send(codec), self.hub_enc.thumbprint())
        self.assertEqual(codec.jwks_reads, 1)
        self.assertIsNone(codec.hub_keys_read_at)


if __name__ == "__main__":
    unittest.main()
