#!/usr/bin/env python3
"""A test double for ClickHouse's HTTP interface backed by chDB: the current ClickHouse engine, in-process.

Only what LangSight's client uses: `GET /ping`; a POST whose body is the query; `?query=INSERT ... FORMAT X` with the
rows in the body (run as `INSERT ... FROM INFILE`); gzip request bodies; errors as HTTP 4xx/5xx with ClickHouse's
`Code: N. DB::Exception` text. Output defaults to TabSeparated, as ClickHouse's HTTP interface does.

Usage: ch_shim.py DATA_DIR PORT   (prints nothing; answers /ping once ready)
"""
import gzip
import os
import re
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from chdb import session

DATA, PORT = sys.argv[1], int(sys.argv[2])
SESSION = session.Session(DATA)
LOCK = threading.Lock()
INSERT_WITH_BODY = re.compile(r"(?is)\s*(INSERT\s+INTO\s+\S+(?:\s*\([^)]*\))?)\s+FORMAT\s+(\w+)\s*$")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, body):
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urlparse(self.path)
        if url.path in ("/ping", "/"):
            return self.reply(200, b"Ok.\n")
        self.run(parse_qs(url.query).get("query", [""])[0], b"")

    def do_POST(self):
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        query = parse_qs(url.query).get("query", [None])[0]
        if query is None:
            self.run(body.decode("utf-8"), b"")
        else:
            self.run(query, body)

    def run(self, query, data):
        try:
            with LOCK:
                if data:
                    m = INSERT_WITH_BODY.match(query)
                    if not m:
                        return self.reply(400, b"Code: 62. DB::Exception: shim: a body is only taken for INSERT ... FORMAT X")
                    with tempfile.NamedTemporaryFile(delete=False, suffix=".data") as f:
                        f.write(data)
                        path = f.name
                    try:
                        result = SESSION.query(f"{m.group(1)} FROM INFILE '{path}' FORMAT {m.group(2)}", "TabSeparated")
                    finally:
                        os.unlink(path)
                else:
                    result = SESSION.query(query, "TabSeparated")
            self.reply(200, result.bytes() if result is not None else b"")
        except Exception as e:  # chDB raises with ClickHouse's own message
            text = str(e).encode("utf-8", "replace")
            self.reply(404 if text.startswith(b"Code: 60.") else 500, text)


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
