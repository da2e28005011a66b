"""The seed's express example in Python's standard library: a web server on APIFY_CONTAINER_PORT.

It answers ``Hello World!`` on ``/`` (and, beyond the seed, says how many bytes a POST carried) and
stays up for an hour; the platform proxies it at the run's
unguessable container URL (APIFY_CONTAINER_URL), reachable from Jupyter with the user's login.
"""

import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port = int(os.environ["APIFY_CONTAINER_PORT"])


class Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"Hello World!"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        size = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(size)
        body = f"Received {size} bytes".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


server = ThreadingHTTPServer(("0.0.0.0", port), Hello)
threading.Thread(target=server.serve_forever, daemon=True).start()
print(f"Web server is listening and can be accessed at {os.environ['APIFY_CONTAINER_URL']}!", flush=True)
time.sleep(60 * 60)  # let the actor run for an hour
