#!/usr/bin/env python3
"""A LeadRank webhook receiver that verifies every delivery (standard library only).

    LEADRANK_WEBHOOK_SECRET=whsec_... python3 tests/examples/webhook_receiver.py --port 9000

Register http://127.0.0.1:9000/ as an endpoint (with
LEADRANK_WEBHOOK_ALLOW_HTTP_LOCALHOST=true on a development server; https in
production). Each delivery is a JSON POST with these headers:

    LeadRank-Event-Id     the event's id: the same on every retry, so de-duplicate by it
    LeadRank-Event-Type   e.g. lead.tier_changed
    LeadRank-Timestamp    Unix seconds when this attempt was signed
    LeadRank-Signature    v1=<hex HMAC-SHA256 of "{timestamp}.{raw body}" with the secret>

Verify over the raw bytes of the body, before parsing it; compare in
constant time; refuse old timestamps so a captured request cannot be
replayed. Answer 2xx quickly: anything else, or no answer within the
server's timeout, is retried with backoff.
"""

import argparse
import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

TOLERANCE_SECONDS = 300


def verify(secret: str, timestamp: str, body: bytes, signature: str, now: float) -> bool:
    if not signature.startswith("v1=") or not timestamp.isdigit():
        return False
    if abs(now - int(timestamp)) > TOLERANCE_SECONDS:
        return False
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature[3:])


def handler(secret: str, seen: set):
    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            event_id = self.headers.get("LeadRank-Event-Id", "")
            ok = verify(
                secret,
                self.headers.get("LeadRank-Timestamp", ""),
                body,
                self.headers.get("LeadRank-Signature", ""),
                time.time(),
            )
            if not ok:
                print(f"rejected {event_id}: bad signature or stale timestamp", flush=True)
                self.send_response(400)
                self.end_headers()
                return
            if event_id in seen:
                print(f"duplicate {event_id}", flush=True)
            else:
                seen.add(event_id)
                event = json.loads(body)
                print(f"verified {event_id} {event['type']}", flush=True)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    return Receiver


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9000, help="0 picks a free port")
    args = parser.parse_args()
    secret = os.environ.get("LEADRANK_WEBHOOK_SECRET")
    if not secret:
        print("set LEADRANK_WEBHOOK_SECRET to the endpoint's signing secret", file=sys.stderr)
        return 2
    server = HTTPServer(("127.0.0.1", args.port), handler(secret, set()))
    print(f"listening on {server.server_port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
