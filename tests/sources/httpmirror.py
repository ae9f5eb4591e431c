"""A real HTTP mirror for tests: http.server on 127.0.0.1 over a mirror directory.

`break_after` makes the server send the full Content-Length header but only half of the body of
files whose path ends with one of the given suffixes, then either close the connection ("close")
or hang ("hang") — the two ways a transfer dies mid-file.
"""
from __future__ import annotations

import contextlib
import functools
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _Handler(SimpleHTTPRequestHandler):
    break_suffixes: tuple[str, ...] = ()
    break_mode = "close"
    requests: list[str]

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        self.requests.append(self.path)
        if self.break_suffixes and self.path.endswith(self.break_suffixes):
            data = Path(self.translate_path(self.path)).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            if self.break_mode == "hang":
                time.sleep(60)
            self.close_connection = True
            return
        super().do_GET()


@contextlib.contextmanager
def serve(directory: Path, break_suffixes: tuple[str, ...] = (), break_mode: str = "close"):
    """Yields (base URL, list of request paths)."""
    requests: list[str] = []
    handler = type("Handler", (_Handler,), {"break_suffixes": break_suffixes, "break_mode": break_mode,
                                            "requests": requests})
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(directory)))
    server.daemon_threads = True
    server.block_on_close = False
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()
