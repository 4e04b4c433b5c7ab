"""OCPP 2.0.1 security profile 2 on the wire (A00): TLS with the CSMS's certificate checked
against the CSMS root the station was given (``csms.ca_file``), Basic auth inside it, and
no connection to a CSMS whose certificate is not trusted or that offers only TLS older
than 1.2. A TLS terminator on loopback with a certificate made at test time
(tools/tls_proxy.py) in front of the test central system serving ``ocpp2.0.1``.
"""

import asyncio
import ssl
import warnings

from tests.harness import make_self_signed_cert, validate_agent_frames
from tools.tls_proxy import TlsProxy, server_context
from tests.link.test_moving_backend import Rig, until
from tests.ocpp201.test_octt_network import PASSWORD, PINNED, connection_data, get

PASSWORD_LINE = '\npassword = "%s"' % PASSWORD


async def proxy_for(cs, directory, maximum_version=None) -> TlsProxy:
    cert, key = make_self_signed_cert(directory)
    proxy = TlsProxy(cs.port, server_context(cert, key), cert)
    if maximum_version is not None:
        proxy.context.maximum_version = maximum_version
        with warnings.catch_warnings():  # old on purpose
            warnings.simplefilter("ignore", DeprecationWarning)
            proxy.context.minimum_version = ssl.TLSVersion.TLSv1
        proxy.context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let OpenSSL serve the old version at all
    await proxy.start()
    return proxy


async def booted_over_tls(rig, directory) -> tuple:
    """The agent on 2.0.1 with Basic auth, over TLS to a CSMS whose certificate is its
    ``ca_file``: (the TLS proxy, the station's handle) once BootNotification is Accepted."""
    cs = await rig.central(protocols=("ocpp2.0.1",), password=PASSWORD)
    proxy = await proxy_for(cs, directory)
    await rig.start(proxy.url, extra=PINNED + PASSWORD_LINE + '\nca_file = "%s"' % proxy.cert)
    handle = await cs.wait_for_station("CP001")
    await handle.wait_for("BootNotification")
    await until(lambda: rig.agent.client.online, what="BootNotification Accepted")
    return proxy, handle


async def test_tc_a_04_tls_with_a_trusted_server_certificate_and_basic_auth(tmp_path):
    """TC_A_04_CS: the station opens a TLS connection, checks the CSMS certificate against
    its CSMS root, sends Basic auth inside, and boots; SecurityCtrlr.SecurityProfile is 2."""
    rig = Rig(tmp_path)
    proxy, handle = await booted_over_tls(rig, tmp_path)
    try:
        assert proxy.handshakes >= 1 and handle.request_headers["Authorization"].startswith("Basic ")
        assert (await get(handle, "SecurityCtrlr", "SecurityProfile"))["attributeValue"] == "2"
        validate_agent_frames(handle)
    finally:
        await proxy.close()
        await rig.close()


async def test_tc_a_05_an_untrusted_server_certificate_gets_no_connection(tmp_path):
    """TC_A_05_CS: the CSMS's certificate is not signed by a root the station trusts: the
    station closes the TLS handshake, sends nothing and keeps trying (no BootNotification)."""
    rig = Rig(tmp_path)
    cs = await rig.central(protocols=("ocpp2.0.1",), password=PASSWORD)
    proxy = await proxy_for(cs, tmp_path)
    try:
        await rig.start(proxy.url, extra=PINNED + PASSWORD_LINE)  # no ca_file: the system's roots only
        await until(lambda: rig.agent.connection.failed_attempts >= 2, clock=rig.clock, step_s=1.0,
                    what="two refused handshakes")
        assert "TLS certificate verification failed" in rig.agent.connection.last_error
        assert "CP001" not in cs.stations and not rig.agent.client.online
    finally:
        await proxy.close()
        await rig.close()


async def test_tc_a_06_a_csms_offering_only_tls_1_1_gets_no_connection(tmp_path):
    """TC_A_06_CS: a CSMS that speaks at most TLS 1.1: the station refuses the handshake
    (TLS 1.2 or newer only, A00.FR.306) even though it trusts the certificate."""
    rig = Rig(tmp_path)
    cs = await rig.central(protocols=("ocpp2.0.1",), password=PASSWORD)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        proxy = await proxy_for(cs, tmp_path, maximum_version=ssl.TLSVersion.TLSv1_1)
    try:
        await rig.start(proxy.url, extra=PINNED + PASSWORD_LINE + '\nca_file = "%s"' % proxy.cert)
        await until(lambda: rig.agent.connection.failed_attempts >= 2, clock=rig.clock, step_s=1.0,
                    what="two refused handshakes")
        assert "CP001" not in cs.stations and not rig.agent.client.online
        assert rig.agent.connection.connect_count == 0
        assert "ConnectionResetError" in rig.agent.connection.last_error, rig.agent.connection.last_error
        # The control: a client that still allows TLS 1.1 gets through to the same server.
        old_client = ssl.create_default_context(cafile=proxy.cert)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            old_client.minimum_version = ssl.TLSVersion.TLSv1
        old_client.set_ciphers("DEFAULT:@SECLEVEL=0")
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port, ssl=old_client,
                                                       server_hostname="127.0.0.1")
        assert writer.get_extra_info("ssl_object").version() == "TLSv1.1"
        writer.close()
    finally:
        await proxy.close()
        await rig.close()


async def test_tc_a_22_a_network_profile_with_a_lower_security_profile_is_rejected(tmp_path):
    """TC_A_22_CS: on security profile 2 (TLS), SetNetworkProfile for another CSMS with security
    profile 1 is Rejected (B09.FR.04; AllowSecurityProfileDowngrade is not implemented), and
    nothing is stored; a profile-2 one for the same CSMS root is Accepted."""
    rig = Rig(tmp_path)
    proxy, handle = await booted_over_tls(rig, tmp_path)
    try:
        lower = connection_data("ws://127.0.0.1:9/ocpp", security_profile=1)
        assert await handle.call("SetNetworkProfile", configurationSlot=2, connectionData=lower) == {
            "status": "Rejected"}
        assert rig.agent.endpoint.profiles.slots == {}
        same = connection_data("wss://127.0.0.1:9/ocpp", security_profile=2)
        assert await handle.call("SetNetworkProfile", configurationSlot=2, connectionData=same) == {
            "status": "Accepted"}
        validate_agent_frames(handle)
    finally:
        await proxy.close()
        await rig.close()
