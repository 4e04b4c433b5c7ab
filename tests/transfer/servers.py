"""Servers on 127.0.0.1 for the transfer tests: an HTTP server that records what is
PUT or POSTed (``HttpSink``), one that serves files with Range requests and can break a
download off (``FileServer``), an FTP server with one user (``FtpSink``, pyftpdlib) and
a port nothing listens on (``dead_port``). Each runs in a thread
of its own and is stopped by ``close()``."""

import http.server
import os
import socket
import threading

USER, PASSWORD = "uploader", "s3cret:pw"


class HttpSink:
    """Records (method, path, headers, body) of each request; ``put_status`` is the answer
    to a PUT (405: take POSTs only), ``status`` to the rest."""

    def __init__(self, put_status: int = 201, status: int = 200, tls=None) -> None:
        self.requests: list = []
        self.hold = threading.Event()  # cleared: each answer waits for it (an upload that hangs)
        self.hold.set()
        self.put_status, self.status = put_status, status
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _take(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sink.requests.append((self.command, self.path, dict(self.headers), body))
                sink.hold.wait(10)
                self.send_response(sink.put_status if self.command == "PUT" else sink.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_PUT = do_POST = _take

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:  # an ssl.SSLContext: serve HTTPS
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.scheme = "https" if tls is not None else "http"
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/upload/") -> str:
        return "%s://127.0.0.1:%d%s" % (self.scheme, self.port, path)

    def close(self) -> None:
        self.hold.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class FileServer:
    """Serves the files of ``directory`` (GET, with ``Range: bytes=N-``); ``cut_after``: the
    next answer stops after that many bytes of the body (a download broken off), once.
    ``requests``: (path, Range header) of each GET."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.cut_after: int | None = None
        self.requests: list = []
        files = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = os.path.join(files.directory, os.path.basename(self.path))
                files.requests.append((self.path, self.headers.get("Range")))
                if not os.path.isfile(path):
                    self.send_error(404)
                    return
                with open(path, "rb") as f:
                    data = f.read()
                start = 0
                wanted = self.headers.get("Range", "")
                if wanted.startswith("bytes=") and wanted.endswith("-"):
                    start = int(wanted[6:-1])
                    self.send_response(206)
                    self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body, cut = data[start:], files.cut_after
                if cut is not None:
                    files.cut_after = None
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)  # broken off mid-body
                    return
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return "http://127.0.0.1:%d/%s" % (self.port, name)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class FtpSink:
    """An FTP server with ``USER``/``PASSWORD`` (write access to ``root``)."""

    def __init__(self, root) -> None:
        from pyftpdlib.authorizers import DummyAuthorizer  # imported here: only FTP tests pay for it
        from pyftpdlib.handlers import FTPHandler
        from pyftpdlib.servers import FTPServer

        self.root = root
        authorizer = DummyAuthorizer()
        authorizer.add_user(USER, PASSWORD, str(root), perm="elradfmw")
        handler = type("Handler", (FTPHandler,), {"authorizer": authorizer, "passive_ports": None})
        handler.log_prefix = "ftp"
        self.server = FTPServer(("127.0.0.1", 0), handler)
        self.port = self.server.address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"timeout": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str = "/", user: str = USER, password: str = PASSWORD) -> str:
        from urllib.parse import quote

        return "ftp://%s:%s@127.0.0.1:%d%s" % (quote(user, safe=""), quote(password, safe=""), self.port, path)

    def close(self) -> None:
        self.server.close_all()
        self.thread.join(5)


def dead_port() -> int:
    """A port on 127.0.0.1 that refuses connections."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
