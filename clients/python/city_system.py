#!/usr/bin/env python3
"""A city system in Python: joins the hub, registers an expert, asks another system's expert for a
consultation and waits for the report, which it acknowledges. One JSON line per step on stdout. Exits 0 with the
report, 1 when the case ended unassigned, 2 when the hub refused the request (consultation.refused: a retired
candidate, say; the line `refused` has the reason and the fields at fault).

  RTS_TOKEN=<operator token> /usr/bin/python3 clients/python/city_system.py --hub http://127.0.0.1:8080 \
      --broker amqp://127.0.0.1:5673 --system py-city --candidate ts-experts:cardio-1

(5673: the local broker of `npm run broker:up`, scripts/activemq/broker.sh; give --broker again for each broker
to fail over to.)

The client's log (logger "rts_client": each message sent and handled, retries, dead letters, failover; ids only) goes
to stderr at --log-level (default $RTS_LOG_LEVEL, else info); see docs/messaging.md, "Logging".

Registering a system (POST /systems) is an operator's act: the token (--token, else $RTS_TOKEN) is an
operator's. In production the operator registers the system and its keys, and the system only uses AMQP.
"""
import argparse
import json
import logging
import os
import sys
import uuid

from rts_client import HubHttp, JoseCodec, PartyKeys, RtsClient


def say(event, **fields):
    print(json.dumps({"event": event, **fields}), flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--hub", required=True, help="the hub's HTTP base URL: https://, or http:// to this machine")
    parser.add_argument("--insecure-http", action="store_true", help="allow a plain http:// --hub on another machine (a network you control end to end)")
    parser.add_argument("--broker", required=True, action="append", help="amqp://host:port, or amqps://user:password@host:port for a broker with TLS and accounts (SASL PLAIN); repeat it for the brokers to fail over to, in order")
    parser.add_argument("--ca", default=None, help="PEM file of the CA that signed the broker's TLS certificate (amqps://; default: the system's CAs)")
    parser.add_argument("--cert", default=None, help="PEM file of this system's TLS certificate, for a broker that asks for one (mutual TLS)")
    parser.add_argument("--key", default=None, help="PEM file of that certificate's private key")
    parser.add_argument("--system", default="py-city")
    parser.add_argument("--candidate", required=True, help="expert id <homeSystemId>:<localExpertId> to ask")
    parser.add_argument("--question", default="Second opinion on an atypical ECG")
    parser.add_argument("--timeout", type=float, default=90)
    parser.add_argument("--token", default=os.environ.get("RTS_TOKEN"), help="bearer token for POST /systems (default $RTS_TOKEN)")
    parser.add_argument("--log-level", default=os.environ.get("RTS_LOG_LEVEL", "info"), help="the client's log level on stderr: debug, info, warning, error (default $RTS_LOG_LEVEL, else info)")
    args = parser.parse_args()
    # The application configures logging, not the library: rts_client only logs to its logger. Other libraries'
    # loggers (proton's info lines) stay at warnings.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("rts_client").setLevel(args.log_level.upper())

    hub = HubHttp(args.hub, {"authorization": f"Bearer {args.token}"} if args.token else None, insecure_http=args.insecure_http)
    keys = PartyKeys(args.system)
    hub.register_system(args.system, "Python City", "Hubei", keys)
    say("registered", system=args.system, kids=[k["kid"] for k in keys.public_jwks()])

    client = RtsClient(args.broker, args.system, JoseCodec(keys, hub.jwks), ca_file=args.ca, cert_file=args.cert, key_file=args.key)
    try:
        expert = {
            "localExpertId": "py-expert-1",
            "name": "Dr. Py Thon",
            "title": "Attending physician",
            "specialties": ["cardiology"],
            "location": {"city": "Wuhan", "hospital": "Python General"},
            "languages": ["en"],
            "availability": "available",
        }
        join = client.join_with_experts([expert], name="Python City")
        say("join_sent", batches=join["batches"], experts=join["experts"], expertId=f"{args.system}:py-expert-1")

        consultation_id = str(uuid.uuid4())
        requested = client.send(
            "consultation.requested",
            {
                "consultationId": consultation_id,
                "applicantClinician": "dr-python",
                "candidates": [args.candidate],
                "clinicalQuestion": args.question,
                "summary": "Resting ECG attached",
                "attachments": [],
            },
            correlation_id=consultation_id,
        )
        say("requested", consultationId=consultation_id, id=requested["id"])

        outcome = {}

        def handle(env, attempt):
            # Runs before the message is accepted: if it raises, the broker delivers the message again.
            say("received", type=env["type"], correlationId=env["correlationId"], attempt=attempt)
            if env["type"] == "consultation.report" and env["payload"]["consultationId"] == consultation_id:
                p = env["payload"]
                client.send("consultation.acknowledge", {"consultationId": consultation_id}, correlation_id=env["correlationId"])
                say("report", consultationId=consultation_id, expertId=p["expertId"], diagnosis=p["diagnosis"], correlationId=env["correlationId"])
                say("acknowledged", consultationId=consultation_id)
                outcome["code"] = 0
            elif env["type"] == "consultation.unassigned" and env["payload"]["consultationId"] == consultation_id:
                say("unassigned")
                outcome["code"] = 1
            elif env["type"] == "consultation.refused" and env["payload"]["refusedMessageId"] == requested["id"]:
                # The request was dead-lettered: nothing more comes about it. The detail names fields, never values.
                p = env["payload"]
                say("refused", consultationId=p["consultationId"], refusedMessageId=p["refusedMessageId"], refusedType=p["refusedType"], reason=p["reason"], detail=p["detail"])
                outcome["code"] = 2

        while "code" not in outcome:
            if client.receive(handle, timeout=args.timeout) is None:
                say("timeout")
                return 1
        return outcome["code"]
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
