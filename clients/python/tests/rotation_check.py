#!/usr/bin/env python3
"""Rotates a system's encryption key against a real broker and hub, in the order of docs/messaging.md ("Rotation
without downtime"), while hub messages encrypted for the old key are still queued (run by
test/integration/python-client.int.spec.ts; one JSON line per step on stdout):

  1. the system joins and does not read its downlink queue: the hub's system.joined and directory.snapshot wait
     there, encrypted for the key registered at the join;
  2. it accepts a new encryption key beside the old one (PartyKeys.rotate_encryption), then registers it
     (POST /systems/<id>/keys);
  3. a peer system joins with an expert: the hub's news of it comes encrypted for the new key;
  4. the system reads its queue: every message opens, those for the old key and those for the new one; then it
     retires the old key at the hub and drops it.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from jwcrypto import jwe  # noqa: E402
from proton import Timeout  # noqa: E402
from proton.reactor import Copy  # noqa: E402

from rts_client import HubHttp, JoseCodec, PartyKeys, RtsClient  # noqa: E402


def say(event, **fields):
    print(json.dumps({"event": event, **fields}), flush=True)


class KidNotingCodec(JoseCodec):
    """The client's codec, noting which of our keys each hub message was encrypted for."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.kids = {}

    def decode(self, body):
        env = super().decode(body)
        token = jwe.JWE()
        token.deserialize(body)
        self.kids[env["id"]] = token.jose_header["kid"]
        return env


def queued(connection, address):
    """How many messages wait on `address`: browsed (distribution-mode copy), so none is taken."""
    browser = connection.create_receiver(address, credit=100, options=Copy())
    count = 0
    try:
        while True:
            browser.receive(timeout=1)
            browser.accept()
            count += 1
    except Timeout:
        pass
    finally:
        browser.close()
    return count


def expert(local_id, name):
    return {"localExpertId": local_id, "name": name, "title": "Attending physician", "specialties": ["cardiology"],
            "location": {"city": "Wuhan", "hospital": "Python General"}, "languages": ["en"], "availability": "available"}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--hub", required=True)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--peer-broker", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--peer-cert")
    parser.add_argument("--peer-key")
    parser.add_argument("--system", default="py-rot")
    parser.add_argument("--peer", default="py-rot-peer")
    parser.add_argument("--token", default=os.environ.get("RTS_TOKEN"))
    args = parser.parse_args()

    hub = HubHttp(args.hub, {"authorization": f"Bearer {args.token}"})
    keys = PartyKeys(args.system)
    hub.register_system(args.system, "Python Rotating City", "Hubei", keys)
    codec = KidNotingCodec(keys, hub.jwks)
    client = RtsClient(args.broker, args.system, codec, ca_file=args.ca, cert_file=args.cert, key_file=args.key, backoff=0.2)
    client.join_with_experts([expert("rot-1", "Dr. Old Key")], name="Python Rotating City")
    deadline = time.time() + 60
    waiting = 0
    while time.time() < deadline and waiting < 2:  # system.joined and the snapshot
        waiting = queued(client.connection, client.downlink)
    say("joined_unread", waiting=waiting, kid=keys.encryption_kid)

    old_kid = keys.encryption_kid
    new_kid = keys.rotate_encryption()  # first accept the new key beside the old one...
    answer = hub.add_keys(args.system, keys)  # ...then register it: the hub encrypts for it from now on
    say("rotated", old=old_kid, new=new_kid, registered=answer.get("registered"), repeated=answer.get("repeated"))

    peer_keys = PartyKeys(args.peer)
    hub.register_system(args.peer, "Python Peer City", "Hubei", peer_keys)
    peer = RtsClient(args.peer_broker, args.peer, JoseCodec(peer_keys, hub.jwks), ca_file=args.ca, cert_file=args.peer_cert, key_file=args.peer_key, backoff=0.2)
    peer.join_with_experts([expert("peer-1", "Dr. New Key")], name="Python Peer City")
    peer.close()
    say("peer_joined", system=args.peer)

    handled = []

    def handle(env, attempt):
        handled.append(env)
        say("handled", type=env["type"], id=env["id"], kid=codec.kids[env["id"]], attempt=attempt,
            about=env["payload"].get("systemId") or env["payload"].get("expertId"))

    deadline = time.time() + 60
    while time.time() < deadline and not any(e["type"] == "directory.expert.upserted" for e in handled):
        client.receive(handle, timeout=max(1, deadline - time.time()))
    # The hub publishes news after its other messages; give anything queued behind the upsert a moment too.
    while client.receive(handle, timeout=2) is not None:
        pass

    hub.retire_key(args.system, old_kid)  # nothing is queued for the old key any more
    keys.drop_decryption_key(old_kid)
    client.close()
    say("done", handled=len(handled), kids=sorted({codec.kids[e["id"]] for e in handled}), decryption=keys.decryption_kids)
    return 0


if __name__ == "__main__":
    sys.exit(main())
