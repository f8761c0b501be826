#!/usr/bin/env python3
"""Checks the reference client's wire rules against a real broker and hub (run by
test/integration/python-client.int.spec.ts; one JSON line per step on stdout):

  * failover: the first broker URL is dead, the client takes the next;
  * a body over the broker's 1 MiB costs the sender its connection (measured with a raw send); the client refuses
    such a body itself (MessageTooLarge), and its next send reconnects;
  * a join of experts with long Chinese profiles is cut by size (UTF-8, compact JSON), each body under 1 MiB;
  * downlink: a message whose handler raised comes again with its attempt counted (modified, delivery-failed);
    one that fails the security checks, or is not an AMQP string, goes to rts.dlq with the x-dlq-* properties.

--feeder: a broker URL of an account that may write this system's downlink queue (the hub's), to put on it the
two messages that must be dead-lettered.

The client's log lines (logger "rts_client", info) go to stderr: the test reads the failover, the reconnect, the
handler's failure and the dead letters there too.
"""
import argparse
import json
import logging
import os
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from proton import Message, SSLDomain  # noqa: E402
from proton.utils import BlockingConnection  # noqa: E402

from rts_client import MAX_BODY_BYTES, HubHttp, JoseCodec, MessageTooLarge, PartyKeys, RtsClient, to_json  # noqa: E402


def say(event, **fields):
    print(json.dumps({"event": event, **fields}), flush=True)


class MeasuringCodec(JoseCodec):
    """The client's codec, noting the size of every body it writes."""

    sizes = []

    def encode(self, envelope):
        body = super().encode(envelope)
        self.sizes.append((envelope["type"], len(body.encode("utf-8")), len(to_json(envelope["payload"]).encode("utf-8"))))
        return body


def big_expert(i):
    """An expert whose profile is as long as the contract allows, in Chinese (3 bytes a character in UTF-8)."""
    return {
        "localExpertId": f"big-{i}",
        "name": "张" * 200,
        "title": "主任医师" * 25,
        "specialties": [("心血管内科" * 20)[:100] for _ in range(20)],
        "location": {"city": "武汉" * 50, "hospital": "华中科技大学同济医学院附属协和医院" * 11},
        "languages": ["zh", "en"],
        "availability": "available",
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--hub", required=True)
    parser.add_argument("--broker", required=True, action="append")
    parser.add_argument("--feeder", required=True)
    parser.add_argument("--ca")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--feeder-cert")
    parser.add_argument("--feeder-key")
    parser.add_argument("--system", default="py-big")
    parser.add_argument("--experts", type=int, default=150)
    parser.add_argument("--token", default=os.environ.get("RTS_TOKEN"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("rts_client").setLevel(logging.INFO)

    hub = HubHttp(args.hub, {"authorization": f"Bearer {args.token}"})
    keys = PartyKeys(args.system)
    hub.register_system(args.system, "Python Big City", "Hubei", keys)

    # Two messages no handler must see, first on the downlink queue.
    domain = SSLDomain(SSLDomain.MODE_CLIENT)
    domain.set_trusted_ca_db(args.ca)
    domain.set_credentials(args.feeder_cert, args.feeder_key, None)
    domain.set_peer_authentication(SSLDomain.VERIFY_PEER_NAME)
    feeder = BlockingConnection(args.feeder, timeout=30, ssl_domain=domain)
    poison = feeder.create_sender(f"rts.downlink.{args.system}")
    forged = {"malformed": str(uuid.uuid4()), "data": str(uuid.uuid4())}
    poison.send(Message(body="eyJhbGciOiJub25lIn0.forged.not.a.jwe", durable=True, properties={"messageId": forged["malformed"], "type": "system.joined", "systemId": args.system}))
    poison.send(Message(body=b'{"type":"system.joined"}', inferred=True, durable=True, properties={"messageId": forged["data"], "type": "system.joined", "systemId": args.system}))
    feeder.close()
    say("poison_sent", **forged)

    codec = MeasuringCodec(keys, hub.jwks)
    client = RtsClient(args.broker, args.system, codec, ca_file=args.ca, cert_file=args.cert, key_file=args.key, backoff=0.2)
    say("connected", urls=len(args.broker))

    # What the broker does with a message over its frame limit: it closes the sender's whole connection.
    try:
        client.sender.send(Message(body="x" * (1100 * 1024), durable=True))
        say("oversize_accepted")
    except Exception as error:  # noqa: BLE001
        say("oversize_refused", error=type(error).__name__, detail=str(error)[:300])
    try:
        client.send("experts.batch", {"batchIndex": 0, "batchCount": 1, "experts": [big_expert(i) for i in range(200)]})
        say("too_large_sent")
    except MessageTooLarge as error:
        say("too_large_refused", detail=str(error), limit=MAX_BODY_BYTES)

    experts = [big_expert(i) for i in range(args.experts)]
    codec.sizes.clear()
    started = time.time()
    join = client.join_with_experts(experts, name="Python Big City")
    batches = [s for s in codec.sizes if s[0] == "experts.batch"]
    say("join_sent", batches=join["batches"], experts=join["experts"], reconnects=client.reconnects, seconds=round(time.time() - started, 2),
        largestBodyBytes=max(s[1] for s in batches), largestPayloadBytes=max(s[2] for s in batches),
        asciiEscapedBytes=len(json.dumps(experts).encode("utf-8")), utf8Bytes=len(to_json(experts).encode("utf-8")))

    seen_ids = []
    state = {"joined": False, "parts": set(), "count": None}

    def handle(env, attempt):
        first = env["id"] not in seen_ids
        seen_ids.append(env["id"])
        payload = env["payload"]
        fields = {"type": env["type"], "id": env["id"], "attempt": attempt}
        if env["type"] == "directory.snapshot":
            fields.update(batchIndex=payload["batchIndex"], batchCount=payload["batchCount"], homes=sorted({e["homeSystemId"] for e in payload["experts"]}))
        if first and len(seen_ids) == 1:
            say("handler_failed", **fields)
            raise RuntimeError("simulated failure before the commit")
        say("handled", **fields)
        if env["type"] == "system.joined" and payload["systemId"] == args.system:
            state["joined"] = True
        if env["type"] == "directory.snapshot":
            state["parts"].add(payload["batchIndex"])
            state["count"] = payload["batchCount"]

    deadline = time.time() + 60
    while time.time() < deadline and not (state["joined"] and state["count"] is not None and len(state["parts"]) == state["count"]):
        client.receive(handle, timeout=max(1, deadline - time.time()))
    client.close()
    say("done", joined=state["joined"], parts=len(state["parts"]))
    return 0 if state["joined"] else 1


if __name__ == "__main__":
    sys.exit(main())
