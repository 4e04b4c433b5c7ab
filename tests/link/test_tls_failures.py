"""A central system whose TLS the charger must refuse (issue 13): an expired server
certificate, one for another host, a self-signed one, a server speaking only TLS 1.1, and
one offering only a cipher suite the security specs do not allow. For OCPP 1.6 and 2.0.1
alike the agent, trusting the test CA's root through ``csms.ca_file``, never gets to a
BootNotification and records the right security event once per streak of failures; with a
valid certificate it boots and records none. Last, the story's end: a 2.0.1 station whose
CSMS comes back with a bad certificate, then with TLS 1.1, then fixed, delivers the critical
events it could not send while it was cut off (queued durably, sent later).

Real TLS on loopback (tests/tls_rig.py, certificates made at test time by tests/pki.py) in
front of a test central system; virtual time for the reconnection back-off. The servers that
refuse the handshake themselves (TLS 1.1 only, no shared cipher) are ``RefusingTlsServer``: an
asyncio TLS server (TlsProxy) aborts its socket on a failed handshake before its alert is
written, so the charger would only see a reset; real servers send the alert, and so does this one.
"""

import asyncio
import datetime
import ssl
import time
import warnings

import pytest

from hal.runtime.clock import VirtualClock
from agent.ocpp201.security_words import event_type, is_critical
from tests import pki
from tests.harness import validate_agent_frames
from tests.link.test_moving_backend import Rig, until
from tests.tls_rig import tls_backend
from tools.csms import IN

TLS_KINDS = ("invalid_csms_certificate", "invalid_tls_version", "invalid_tls_cipher_suite",
             "failed_to_authenticate_at_csms")
SUBPROTOCOL = {"1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1"}
ATTEMPTS = 3  # refused handshakes to watch: the event is recorded once for all of them


def expired(root):
    now = pki.now()
    return root.server(not_before=now - datetime.timedelta(days=30), not_after=now - datetime.timedelta(days=1))


def other_host(root):
    return root.server(hosts=("other.example",))


def self_signed(_root):
    return pki.self_signed()


def only_tls_1_1(context: ssl.SSLContext) -> None:
    """A server that speaks at most TLS 1.1 (OpenSSL lets it only at security level 0)."""
    with warnings.catch_warnings():  # old on purpose
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")


def only_cbc_ecdsa(context: ssl.SSLContext) -> None:
    """TLS 1.2 only, and only a CBC suite (not among those the specs allow) for its EC key."""
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("ECDHE-ECDSA-AES128-SHA256")


def only_cbc_rsa(context: ssl.SSLContext) -> None:
    """TLS 1.2 only, and only plain-RSA/ECDHE-RSA CBC suites for its RSA key."""
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("ECDHE-RSA-AES128-SHA256:AES128-SHA")


class RefusingTlsServer:
    """A TLS server on 127.0.0.1 that does the handshake over memory BIOs and, when it fails,
    sends the alert OpenSSL made before closing, as a real server does. A handshake that
    succeeds (it must not, here) is counted in ``accepted`` and closed."""

    def __init__(self, cert, key, tmp_path, restrict) -> None:
        cert_path, key_path = pki.write_pair(tmp_path, "refusing", cert, key)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert_path, key_path)
        restrict(self.context)
        self.handshakes = 0
        self.refused: list = []  # the server side's reasons
        self.accepted = 0
        self._server = None
        self._handlers: set = set()

    @property
    def url(self) -> str:
        return "wss://127.0.0.1:%d/ocpp" % self._server.sockets[0].getsockname()[1]

    async def start(self, port: int = 0) -> "RefusingTlsServer":
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", port)
        return self

    async def close(self) -> None:
        self._server.close()
        await self._server.wait_closed()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _handle(self, reader, writer) -> None:
        self._handlers.add(asyncio.current_task())
        self.handshakes += 1
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = self.context.wrap_bio(incoming, outgoing, server_side=True)
        try:
            while True:
                try:
                    tls.do_handshake()
                    self.accepted += 1
                    return
                except ssl.SSLWantReadError:
                    writer.write(outgoing.read())
                    data = await reader.read(65536)
                    if not data:
                        return
                    incoming.write(data)
        except ssl.SSLError as e:
            self.refused.append(e.reason)
        finally:
            try:
                writer.write(outgoing.read())  # the alert
                await writer.drain()
            except OSError:
                pass
            writer.close()
            self._handlers.discard(asyncio.current_task())


# case: (the server certificate made from the root, None for a valid one; the restriction of the
# server's TLS context, None for none; the security event expected)
CASES = {
    "expired certificate": (expired, None, "invalid_csms_certificate"),
    "certificate for another host": (other_host, None, "invalid_csms_certificate"),
    "self-signed certificate": (self_signed, None, "invalid_csms_certificate"),
    "TLS 1.1 only": (None, only_tls_1_1, "invalid_tls_version"),
    "CBC cipher suite only (EC key)": (None, only_cbc_ecdsa, "invalid_tls_cipher_suite"),
    "CBC cipher suites only (RSA key)": (lambda root: root.server(rsa=True), only_cbc_rsa,
                                         "invalid_tls_cipher_suite"),
}


def secure_rig(tmp_path) -> Rig:
    """A rig whose virtual clock starts now: the certificates made at test time are valid."""
    return Rig(tmp_path, clock=VirtualClock(start=time.time()))


def config(version: str, ca_file: str) -> str:
    return '\nocpp_version = "%s"\nca_file = "%s"' % (version, ca_file)


async def booted(rig, cs):
    """The station on ``cs`` once BootNotification was Accepted."""
    handle = await cs.wait_for_station("CP001", timeout_s=5)
    await handle.wait_for("BootNotification", timeout_s=5)
    await until(lambda: rig.agent.client.online, what="BootNotification Accepted over TLS")
    return handle


def tls_events(rig) -> list:
    return [e for e in rig.agent.security.log.events() if e.kind in TLS_KINDS]


async def tls_server(cs, tmp_path, root, make_server=None, restrict=None, port: int = 0):
    """``cs`` behind TLS with the server certificate ``make_server`` makes (default: a valid
    one); a server whose context is restricted (``restrict``) refuses the handshake itself."""
    server = make_server(root) if make_server else None
    if restrict is None:
        return await tls_backend(cs, tmp_path, root, server=server, port=port)
    return await RefusingTlsServer(*(server or root.server()), tmp_path, restrict).start(port)


async def backend(rig, tmp_path, root, version: str, make_server=None, restrict=None):
    """A central system for ``version`` behind TLS: (central system, TLS server)."""
    cs = await rig.central(protocols=(SUBPROTOCOL[version],))
    return cs, await tls_server(cs, tmp_path, root, make_server, restrict)


@pytest.fixture(params=["1.6", "2.0.1"])
def version(request) -> str:
    return request.param


@pytest.mark.parametrize("case", list(CASES))
async def test_a_bad_tls_server_gets_no_boot_and_one_security_event(tmp_path, version, case):
    make_server, restrict, kind = CASES[case]
    rig = secure_rig(tmp_path)
    root = pki.Authority("CSMS Root")
    proxy = None
    try:
        cs, proxy = await backend(rig, tmp_path, root, version, make_server, restrict)
        await rig.start(proxy.url, extra=config(version, pki.write_pem(tmp_path, "csms-root.pem", root.cert)))
        await until(lambda: rig.agent.connection.failed_attempts >= ATTEMPTS, clock=rig.clock, step_s=1.0,
                    timeout_s=20, what="%d refused handshakes" % ATTEMPTS)
        assert rig.agent.connection.connect_count == 0 and not rig.agent.client.online
        assert "CP001" not in cs.stations and cs.rejections == []
        events = tls_events(rig)
        assert [e.kind for e in events] == [kind], (events, rig.agent.connection.last_error)
        assert proxy.url in events[0].tech_info
        assert getattr(proxy, "accepted", 0) == 0
    finally:
        if proxy is not None:
            await proxy.close()
        await rig.close()


async def test_a_valid_certificate_boots_without_a_security_event(tmp_path, version):
    rig = secure_rig(tmp_path)
    root = pki.Authority("CSMS Root")
    proxy = None
    try:
        cs, proxy = await backend(rig, tmp_path, root, version)
        await rig.start(proxy.url, extra=config(version, pki.write_pem(tmp_path, "csms-root.pem", root.cert)))
        handle = await booted(rig, cs)
        assert proxy.handshakes >= 1 and rig.agent.connection.connect_count == 1
        assert handle.version == version
        assert tls_events(rig) == []
        validate_agent_frames(handle)
    finally:
        if proxy is not None:
            await proxy.close()
        await rig.close()


async def test_events_from_a_csms_with_bad_tls_reach_it_once_it_is_fixed(tmp_path):
    """2.0.1, profile 2, booted. The CSMS restarts with an expired certificate, then with TLS
    1.1 only: the station cannot connect and records InvalidCsmsCertificate, then
    InvalidTLSVersion (both critical in 2.0.1, neither deliverable now). The station is
    restarted while cut off (its first refused handshake after that starts a new streak: one
    more InvalidTLSVersion). Once the CSMS is back with a valid certificate the station
    reconnects and sends every critical event it logged meanwhile, each once, in order."""
    rig = secure_rig(tmp_path)
    root = pki.Authority("CSMS Root")
    proxies = []
    try:
        cs, proxy = await backend(rig, tmp_path, root, "2.0.1")
        proxies.append(proxy)
        port = proxy.port
        await rig.start(proxy.url, extra=config("2.0.1", pki.write_pem(tmp_path, "csms-root.pem", root.cert)))
        handle = await booted(rig, cs)
        log = rig.agent.security.log
        await until(lambda: not log.undelivered(is_critical), clock=rig.clock, step_s=1.0,
                    what="the boot's own events delivered")
        m, since_seq = len(handle.messages), log.last_seq

        async def restart(make_server=None, restrict=None):
            await proxies[-1].close()
            proxies.append(await tls_server(cs, tmp_path, root, make_server, restrict, port=port))

        for make_server, restrict, kind in ((expired, None, "invalid_csms_certificate"),
                                            (None, only_tls_1_1, "invalid_tls_version")):
            await restart(make_server, restrict)
            await until(lambda: kind in [e.kind for e in tls_events(rig)], clock=rig.clock, step_s=1.0,
                        timeout_s=20, what=kind)
            assert not rig.agent.client.online
        assert [e.kind for e in tls_events(rig)] == ["invalid_csms_certificate", "invalid_tls_version"]
        await rig.restart()  # a power cut while cut off: the events wait on disk
        await until(lambda: len(tls_events(rig)) == 3, clock=rig.clock, step_s=1.0, timeout_s=20,
                    what="a refused handshake after the restart")
        await restart()
        await until(lambda: rig.agent.client.online, clock=rig.clock, step_s=1.0, timeout_s=20,
                    what="back online")
        owed = [event_type(e.kind) for e in rig.agent.security.log.events(since_seq=since_seq)
                if is_critical(e.kind)]  # the log as the restarted agent reads it
        assert owed[:2] == ["InvalidCsmsCertificate", "InvalidTLSVersion"] and "InvalidTLSVersion" in owed[2:]

        def sent() -> list:
            return [msg.payload["type"] for msg in handle.messages[m:]
                    if msg.action == "SecurityEventNotification" and msg.direction == IN]

        await until(lambda: len(sent()) >= len(owed), clock=rig.clock, step_s=1.0, timeout_s=20,
                    what="SecurityEventNotification %s" % owed)
        for _ in range(5):  # a moment more: a duplicate would show
            await rig.clock.advance(1.0)
            await asyncio.sleep(0.01)
        assert sent() == owed
        assert not rig.agent.security.log.undelivered(is_critical)
        validate_agent_frames(handle)
    finally:
        for proxy in proxies:
            await proxy.close()
        await rig.close()
