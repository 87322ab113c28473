#!/usr/bin/env python3
"""A stand-in for a Headscale server: GET /api/v1/node answers from recorded responses.

usage: standin.py API_KEY RESPONSES_JSON [CERT KEY]

Listens on a free port of 127.0.0.1 (with TLS when given a certificate and its key) and prints
it as the first line of stdout. RESPONSES_JSON
maps a scenario name to {"status": N, "body": TEXT} or {"sleep": SECONDS} (answers nothing until
then). `POST /_scenario/NAME` selects the scenario (default: the first). A request without
`Authorization: Bearer API_KEY` gets 401, as Headscale answers, whatever the scenario. Every
request to the API is counted; `GET /_requests` returns the count.
"""

import http.server
import json
import ssl
import sys
import threading
import time

API_KEY, RESPONSES = sys.argv[1], json.load(open(sys.argv[2]))
state = {"scenario": next(iter(RESPONSES)), "requests": 0}
lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        sys.stderr.write("standin: " + (fmt % args) + "\n")

    def send(self, status, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        if self.path.startswith("/_scenario/"):
            name = self.path[len("/_scenario/"):]
            if name not in RESPONSES:
                return self.send(404, '{"error":"no such scenario"}')
            with lock:
                state["scenario"] = name
            return self.send(200, "{}")
        self.send(404, "{}")

    def do_GET(self):
        if self.path == "/_requests":
            with lock:
                return self.send(200, json.dumps({"requests": state["requests"]}))
        if self.path != "/api/v1/node":
            return self.send(404, '{"code":5,"message":"Not Found"}')
        with lock:
            state["requests"] += 1
            scenario = RESPONSES[state["scenario"]]
        if self.headers.get("Authorization") != "Bearer " + API_KEY:
            return self.send(401, "Unauthorized")
        if "sleep" in scenario:
            time.sleep(scenario["sleep"])
            try:
                return self.send(200, '{"nodes": []}')
            except OSError:
                return  # the client gave up, as it should
        self.send(scenario["status"], scenario["body"])


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
if len(sys.argv) > 4:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[3], sys.argv[4])
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
