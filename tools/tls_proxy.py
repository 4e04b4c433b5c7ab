"""A TLS terminator on 127.0.0.1: takes TLS connections with a given ``ssl`` server
context and forwards the bytes to a plain TCP port (a test central system). Tests and
benchmarks put it in front of tools/csms.py to play a ``wss://`` central system whose
certificate, TLS versions, cipher suites and client-certificate checks they choose.
"""

import asyncio
import ssl

HOST = "127.0.0.1"


def server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A TLS server context serving ``cert_file`` (chain) and ``key_file``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context


class TlsProxy:
    """Terminates TLS on 127.0.0.1 and forwards the bytes to ``target_port``."""

    def __init__(self, target_port: int, context: ssl.SSLContext, cert: str = "") -> None:
        self.target_port = target_port
        self.context = context  # used for each new connection: may be changed after start
        self.cert = cert  # the certificate file served (for tests that trust it)
        self.handshakes = 0  # TLS connections that got through to the handler
        self.peer_certs: list = []  # per connection: the client's certificate (ssl's dict form) or None
        self._server = None
        self._conns: dict = {}  # handler task -> writers

    @property
    def port(self) -> int:
        return self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        """The central system's URL through the proxy."""
        return "wss://%s:%d/ocpp" % (HOST, self.port)

    async def start(self, port: int = 0) -> None:
        """Listen on ``port`` (0: a free one)."""
        self._server = await asyncio.start_server(self._handle, HOST, port, ssl=self.context)

    async def close(self) -> None:
        self._server.close()
        await self._server.wait_closed()
        conns, self._conns = self._conns, {}
        for writers in conns.values():
            for w in writers:
                w.transport.abort()
        await asyncio.gather(*conns, return_exceptions=True)

    async def _handle(self, reader, writer) -> None:
        self.handshakes += 1
        self.peer_certs.append(writer.get_extra_info("peercert"))
        writers = self._conns[asyncio.current_task()] = [writer]
        try:
            up_reader, up_writer = await asyncio.open_connection(HOST, self.target_port)
            writers.append(up_writer)
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except OSError:
            pass
        finally:
            self._conns.pop(asyncio.current_task(), None)
            for w in writers:
                w.transport.abort()

    @staticmethod
    async def _pipe(reader, writer) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, ssl.SSLError):
            pass
        finally:
            writer.transport.abort()
