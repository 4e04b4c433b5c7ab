"""Central systems behind TLS for the security tests: a TLS terminator on loopback
(tools/tls_proxy.py) in front of a test central system, with a server
certificate from a CA made at test time (tests/pki.py) — valid, expired, for
another host, self-signed — and, for security profile 3, client certificates
checked against a CA of the test's choice.
"""

import ssl

from tests import pki
from tools.tls_proxy import TlsProxy, server_context


async def tls_backend(cs, directory, authority=None, *, server=None, client_ca=None,
                      require_client_cert: bool = False, stem: str = "server", port: int = 0) -> TlsProxy:
    """A started TlsProxy for ``cs``. ``server``: (certificate, key) to serve (default: one
    for 127.0.0.1 from ``authority``); ``client_ca``: an Authority whose client certificates
    are checked when presented (required with ``require_client_cert``); ``port``: listen
    there (a central system restarted where its stations know it), 0 for a free one."""
    if server is None:
        server = authority.server()
    cert, key = server
    chain = authority.chain()[1:] if authority is not None and authority.parent is not None else ()
    cert_path, key_path = pki.write_pair(directory, stem, cert, key, chain=[c for c in chain if c.issuer != c.subject])
    proxy = TlsProxy(cs.port, server_context(cert_path, key_path), cert_path)
    if client_ca is not None:
        proxy.context.load_verify_locations(cadata=client_ca.root().pem)
        proxy.context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    await proxy.start(port)
    return proxy
