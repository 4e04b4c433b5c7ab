"""OCPP 1.6 security whitepaper (edition 3) on the wire, by OCTT 1.6 test case: certificates
installed, listed and deleted (TC_075/076), invalid certificates refused with a security event
(TC_077/078), the charger's own certificate through SignCertificate and CertificateSigned
(TC_074), security profiles 2 and 3 over real TLS with certificates made at test time
(TC_086/087), raising the profile and never lowering it (TC_083/084), and a raise that the
central system then refuses, undone by itself.
"""

import base64
import datetime
import os
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp

from hal.runtime.clock import VirtualClock
from tests import pki
from tests.harness import validate_agent_frames
from tests.link.test_moving_backend import Rig, actions, until
from tests.tls_rig import tls_backend

PASSWORD = "0123456789abcdef0123"
PINNED = '\nocpp_version = "1.6"'


def secure_rig(tmp_path) -> Rig:
    """A rig whose virtual clock starts now: the certificates made at test time are valid."""
    return Rig(tmp_path, clock=VirtualClock(start=time.time()))


def expected_hash(cert, algorithm=hashes.SHA256()) -> dict:
    """CertificateHashData as the OCTT computes it (RFC 6960 CertID), camelCase."""
    request = ocsp.OCSPRequestBuilder().add_certificate(cert, cert, algorithm).build()
    return {"hashAlgorithm": algorithm.name.upper(), "issuerNameHash": request.issuer_name_hash.hex(),
            "issuerKeyHash": request.issuer_key_hash.hex(), "serialNumber": "%x" % request.serial_number}


def same(a: dict, b: dict) -> bool:
    return {k: str(v).lower().lstrip("0") for k, v in a.items()} == {k: str(v).lower().lstrip("0")
                                                                     for k, v in b.items()}


async def on_tls(rig, tmp_path, root, checks_password: bool = True, **backend):
    """The agent on profile 2 with a password at a central system behind TLS whose server
    certificate ``root`` signed, trusting it through csms.ca_file: (central system, proxy,
    handle) once booted. A central system for profile 3 (``checks_password`` False) lets the
    TLS server check the charger's certificate and takes a connection without Basic auth."""
    cs = await rig.central(password=PASSWORD if checks_password else None)
    proxy = await tls_backend(cs, tmp_path, root, **backend)
    ca_file = pki.write_pem(tmp_path, "csms-root.pem", root.cert)
    await rig.start(proxy.url, extra=PINNED + '\npassword = "%s"\nca_file = "%s"' % (PASSWORD, ca_file))
    handle = await cs.wait_for_station("CP001")
    await handle.wait_for("BootNotification")
    await until(lambda: rig.agent.client.online, what="BootNotification Accepted over TLS")
    return cs, proxy, handle


async def signed_certificate(handle, authority, chain_pem=None) -> dict:
    """ExtendedTriggerMessage SignChargePointCertificate; the CSR signed by ``authority`` (or
    ``chain_pem(csr)``) sent back as CertificateSigned: its answer."""
    m = len(handle.messages)
    assert await handle.call("ExtendedTriggerMessage", requestedMessage="SignChargePointCertificate") == {
        "status": "Accepted"}
    request = await handle.wait_for("SignCertificate", start_index=m)
    csr = x509.load_pem_x509_csr(request["csr"].encode())
    assert csr.is_signature_valid and csr.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "CP001"
    chain = chain_pem(request["csr"]) if chain_pem else authority.chain_pem(authority.sign_csr(request["csr"]))
    return await handle.call("CertificateSigned", certificateChain=chain)


async def test_tc_085_basic_authentication_with_a_valid_password(tmp_path):
    """TC_085_CS: security profile 1: the handshake carries HTTP Basic auth with the station id
    as user name and the AuthorizationKey as password; the central system checks both and the
    charger boots. GetConfiguration SecurityProfile is 1; AuthorizationKey reads empty."""
    rig = secure_rig(tmp_path)
    try:
        cs = await rig.central(password=PASSWORD, check_username=True)
        await rig.start(cs.url, extra=PINNED + '\npassword = "%s"' % PASSWORD)
        h = await rig.booted(cs)
        assert h.request_headers["Authorization"] == "Basic " + base64.b64encode(
            ("CP001:" + PASSWORD).encode()).decode()
        got = await h.call("GetConfiguration", key=["SecurityProfile", "AuthorizationKey"])
        values = {k["key"]: k.get("value") for k in got["configurationKey"]}
        assert values["SecurityProfile"] == "1" and not values.get("AuthorizationKey")
        validate_agent_frames(h)
    finally:
        await rig.close()


async def test_tc_086_tls_with_a_valid_server_certificate(tmp_path):
    """TC_086_CS: security profile 2: TLS 1.2 or newer to a server whose certificate a CA the
    charger trusts signed, host name checked, Basic auth inside; the charger boots."""
    rig = secure_rig(tmp_path)
    root = pki.Authority("CSMS Root")
    try:
        cs, proxy, h = await on_tls(rig, tmp_path, root)
        assert proxy.handshakes >= 1 and h.request_headers["Authorization"].startswith("Basic ")
        assert (await h.call("GetConfiguration", key=["SecurityProfile"]))["configurationKey"][0]["value"] == "2"
        validate_agent_frames(h)
        await proxy.close()
    finally:
        await rig.close()


async def test_tc_075_1_install_a_manufacturer_root_certificate(tmp_path):
    """TC_075_1_CS: InstallCertificate ManufacturerRootCertificate Accepted;
    GetInstalledCertificateIds lists it with the hash data the OCTT computes."""
    rig = secure_rig(tmp_path)
    root = pki.Authority("Manufacturer Root")
    try:
        cs = await rig.central()
        await rig.start(cs.url, extra=PINNED)
        h = await rig.booted(cs)
        assert await h.call("InstallCertificate", certificateType="ManufacturerRootCertificate",
                            certificate=root.pem) == {"status": "Accepted"}
        got = await h.call("GetInstalledCertificateIds", certificateType="ManufacturerRootCertificate")
        assert got["status"] == "Accepted"
        assert any(same(entry, expected_hash(root.cert)) for entry in got["certificateHashData"])
        # A CSMS root is listed under its own type only.
        assert (await h.call("GetInstalledCertificateIds", certificateType="CentralSystemRootCertificate"))[
            "status"] == "NotFound"
        validate_agent_frames(h)
    finally:
        await rig.close()


async def test_tc_075_2_install_a_central_system_root_certificate_and_tc_076_delete_it(tmp_path):
    """TC_075_2_CS then TC_076_CS: a CentralSystemRootCertificate installed and listed, then
    deleted by its hash data (SHA256 as listed, and another one by SHA384): gone from the list."""
    rig = secure_rig(tmp_path)
    first, second = pki.Authority("CSMS Root A"), pki.Authority("CSMS Root B")
    try:
        cs = await rig.central()
        await rig.start(cs.url, extra=PINNED)
        h = await rig.booted(cs)
        for root in (first, second):
            assert await h.call("InstallCertificate", certificateType="CentralSystemRootCertificate",
                                certificate=root.pem) == {"status": "Accepted"}
        listed = (await h.call("GetInstalledCertificateIds", certificateType="CentralSystemRootCertificate"))[
            "certificateHashData"]
        assert len(listed) == 2 and any(same(e, expected_hash(first.cert)) for e in listed)
        target = next(e for e in listed if same(e, expected_hash(first.cert)))
        assert await h.call("DeleteCertificate", certificateHashData=target) == {"status": "Accepted"}
        listed = (await h.call("GetInstalledCertificateIds", certificateType="CentralSystemRootCertificate"))[
            "certificateHashData"]
        assert len(listed) == 1 and same(listed[0], expected_hash(second.cert))
        assert await h.call("DeleteCertificate", certificateHashData=target) == {"status": "NotFound"}
        assert await h.call("DeleteCertificate", certificateHashData=expected_hash(
            second.cert, hashes.SHA384())) == {"status": "Accepted"}
        assert (await h.call("GetInstalledCertificateIds", certificateType="CentralSystemRootCertificate"))[
            "status"] == "NotFound"
        kinds = [e.kind for e in rig.agent.security.log.events()]
        assert kinds.count("reconfiguration_of_security_parameters") >= 4  # two installed, two deleted
        validate_agent_frames(h)
    finally:
        await rig.close()


async def test_tc_078_an_expired_central_system_root_is_rejected_with_a_security_event(tmp_path):
    """TC_078_CS: InstallCertificate CentralSystemRootCertificate with an expired certificate:
    Rejected, and SecurityEventNotification InvalidCentralSystemCertificate. A leaf (not a CA)
    is refused the same way; neither is installed."""
    rig = secure_rig(tmp_path)
    now = pki.now()
    expired = pki.Authority("Old Root", not_before=now - datetime.timedelta(days=30),
                            not_after=now - datetime.timedelta(days=1))
    leaf, _key = pki.Authority("Some CA").server()
    try:
        cs = await rig.central()
        await rig.start(cs.url, extra=PINNED)
        h = await rig.booted(cs)
        m = len(h.messages)
        assert await h.call("InstallCertificate", certificateType="CentralSystemRootCertificate",
                            certificate=expired.pem) == {"status": "Rejected"}
        event = await h.wait_for("SecurityEventNotification",
                                 lambda p: p["type"] == "InvalidCentralSystemCertificate", start_index=m)
        assert "expired" in event["techInfo"] or "valid" in event["techInfo"]
        assert await h.call("InstallCertificate", certificateType="CentralSystemRootCertificate",
                            certificate=pki.pem(leaf)) == {"status": "Rejected"}
        assert (await h.call("GetInstalledCertificateIds", certificateType="CentralSystemRootCertificate"))[
            "status"] == "NotFound"
        validate_agent_frames(h)
    finally:
        await rig.close()


async def test_tc_074_charger_certificate_by_request_and_tc_077_an_invalid_one_rejected(tmp_path):
    """TC_074_CS: ExtendedTriggerMessage SignChargePointCertificate; the charger makes a key
    pair and a CSR (CN the station id, O its CpoName), SignCertificate, and accepts the
    CertificateSigned chain the CSMS's CA made. TC_077_CS: a chain for another key is
    Rejected with SecurityEventNotification InvalidChargePointCertificate."""
    rig = secure_rig(tmp_path)
    root = pki.Authority("CSMS Root")
    sub = pki.Authority("CSO Sub-CA", parent=root)
    try:
        cs, proxy, h = await on_tls(rig, tmp_path, root)
        assert await h.call("ChangeConfiguration", key="CpoName", value="Open Charging Co") == {"status": "Accepted"}
        assert await h.call("InstallCertificate", certificateType="CentralSystemRootCertificate",
                            certificate=root.pem) == {"status": "Accepted"}

        def for_another_key(_csr: str) -> str:
            other = pki.new_key()
            return sub.chain_pem(sub.issue(other.public_key(), pki.name("CP001"), server=False, client=True))

        m = len(h.messages)
        assert await signed_certificate(h, sub, for_another_key) == {"status": "Rejected"}
        await h.wait_for("SecurityEventNotification", lambda p: p["type"] == "InvalidChargePointCertificate",
                         start_index=m)

        m = len(h.messages)
        assert await signed_certificate(h, sub) == {"status": "Accepted"}
        csr = x509.load_pem_x509_csr((await h.wait_for("SignCertificate", start_index=m))["csr"].encode())
        assert csr.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)[0].value == "Open Charging Co"
        fingerprint = rig.agent.security.latest_certificate()
        assert fingerprint is not None
        chain_file, key_file = rig.agent.security.certificate_files(fingerprint)
        assert os.stat(key_file).st_mode & 0o777 == 0o600
        # On profile 2 the new certificate is kept for later: the connection stays as it is.
        assert rig.agent.endpoint.current.level == 2 and h.connected
        validate_agent_frames(h)
        await proxy.close()
    finally:
        await rig.close()


async def test_tc_083_upgrade_to_profile_3_tc_087_client_certificate_and_tc_084_no_downgrade(tmp_path):
    """TC_083_CS: on profile 2 with a CSMS root installed and a charger certificate, the
    CSMS raises SecurityProfile to 3: Accepted, the charger reconnects presenting its
    certificate (TC_087_CS: the TLS server checks it against its CA) without Basic auth and
    boots. TC_084_CS: SecurityProfile 2 (lower) is then Rejected, and so is 3 again."""
    rig = secure_rig(tmp_path)
    root = pki.Authority("CSMS Root")
    sub = pki.Authority("CSO Sub-CA", parent=root)
    try:
        cs, proxy, h = await on_tls(rig, tmp_path, root, checks_password=False, client_ca=root)
        assert (await h.call("GetConfiguration", key=["SecurityProfile"]))["configurationKey"][0]["value"] == "2"
        # Not yet: no charger certificate (A05.FR.04).
        assert await h.call("ChangeConfiguration", key="SecurityProfile", value="3") == {"status": "Rejected"}
        assert await h.call("InstallCertificate", certificateType="CentralSystemRootCertificate",
                            certificate=root.pem) == {"status": "Accepted"}
        assert await signed_certificate(h, sub) == {"status": "Accepted"}
        assert proxy.peer_certs[-1] is None  # profile 2: no client certificate presented

        m = len(h.messages)
        assert await h.call("ChangeConfiguration", key="SecurityProfile", value="3") == {"status": "Accepted"}
        await until(lambda: rig.agent.endpoint.current.level == 3, what="profile 3 in use")
        await h.wait_for("BootNotification", start_index=m, timeout_s=10)
        await until(lambda: rig.agent.client.online and rig.agent.endpoint.state.pending is None,
                    what="accepted on profile 3")
        presented = proxy.peer_certs[-1]
        assert presented is not None and dict(x[0] for x in presented["subject"])["commonName"] == "CP001"
        assert "Authorization" not in h.request_headers  # profile 3: the certificate says who it is
        assert (await h.call("GetConfiguration", key=["SecurityProfile"]))["configurationKey"][0]["value"] == "3"

        for lower in ("2", "1", "3"):
            assert await h.call("ChangeConfiguration", key="SecurityProfile", value=lower) == {"status": "Rejected"}
        kinds = [e.kind for e in rig.agent.security.log.events()]
        assert "reconfiguration_of_security_parameters" in kinds
        validate_agent_frames(h)
        await proxy.close()
    finally:
        await rig.close()


async def test_a_profile_3_the_central_system_refuses_falls_back_to_profile_2(tmp_path):
    """Whitepaper A05.FR.08: the raise to 3 is Accepted, but the TLS server does not trust the
    CA that signed the charger's certificate: the charger cannot connect, and after the
    fallback time it is back on profile 2 with Basic auth, the failure in its security log."""
    rig = secure_rig(tmp_path)
    root = pki.Authority("CSMS Root")
    sub = pki.Authority("CSO Sub-CA", parent=root)
    stranger = pki.Authority("Another CA")
    try:
        cs, proxy, h = await on_tls(rig, tmp_path, root, checks_password=False, client_ca=stranger)
        assert await h.call("InstallCertificate", certificateType="CentralSystemRootCertificate",
                            certificate=root.pem) == {"status": "Accepted"}
        assert await signed_certificate(h, sub) == {"status": "Accepted"}
        assert await h.call("ChangeConfiguration", key="SecurityProfile", value="3") == {"status": "Accepted"}
        await until(lambda: rig.agent.endpoint.current.level == 3, what="trying profile 3")
        await until(lambda: rig.agent.endpoint.state.rollback is not None, clock=rig.clock, step_s=5,
                    timeout_s=30, what="the rollback")
        assert rig.agent.endpoint.current.level == 2
        await until(lambda: rig.agent.client.online, what="back online on profile 2")
        assert h.request_headers["Authorization"].startswith("Basic ")
        kinds = [e.kind for e in rig.agent.security.log.events()]
        assert "failed_to_authenticate_at_csms" in kinds, kinds
        await proxy.close()
    finally:
        await rig.close()


async def test_a_certificate_about_to_expire_is_renewed_by_the_charger(tmp_path):
    """A03 (the charger's own initiative): a charger certificate with 10 days left gets a new CSR
    at the next daily check, and the certificate the CSMS signs replaces it."""
    rig = secure_rig(tmp_path)
    root = pki.Authority("CSMS Root")
    try:
        cs, proxy, h = await on_tls(rig, tmp_path, root)
        assert await h.call("InstallCertificate", certificateType="CentralSystemRootCertificate",
                            certificate=root.pem) == {"status": "Accepted"}
        short = pki.now() + datetime.timedelta(days=10)
        assert await signed_certificate(h, root, lambda csr: root.chain_pem(root.sign_csr(csr, not_after=short))) == {
            "status": "Accepted"}
        first = rig.agent.security.latest_certificate()
        m = len(h.messages)
        h.handlers["SignCertificate"] = lambda _p: {"status": "Accepted"}
        await rig.clock.advance(86400)
        request = await h.wait_for("SignCertificate", start_index=m)
        year = pki.now() + datetime.timedelta(days=365)
        assert await h.call("CertificateSigned", certificateChain=root.chain_pem(
            root.sign_csr(request["csr"], not_after=year))) == {"status": "Accepted"}
        assert rig.agent.security.latest_certificate() not in (None, first)
        signs = len(actions(h, "SignCertificate"))
        await rig.clock.advance(3 * 86400)  # the new one has a year: nothing more is asked
        assert len(actions(h, "SignCertificate")) == signs
        validate_agent_frames(h)
        await proxy.close()
    finally:
        await rig.close()


async def test_the_installed_root_verifies_the_server_and_the_last_one_cannot_be_deleted(tmp_path):
    """The CSMS root installed over OCPP is what verifies the server once csms.ca_file is gone
    (the owner clears it: the charger reconnects trusting only the installed root); then the
    last CSMS root, which the connection relies on, cannot be deleted (Failed), while a second
    one can."""
    rig = secure_rig(tmp_path)
    root, spare = pki.Authority("CSMS Root"), pki.Authority("Spare Root")
    try:
        cs, proxy, h = await on_tls(rig, tmp_path, root)
        for r in (root, spare):
            assert await h.call("InstallCertificate", certificateType="CentralSystemRootCertificate",
                                certificate=r.pem) == {"status": "Accepted"}
        handshakes = proxy.handshakes
        await rig.agent.admin.csms_set(None, ca_file="")
        await until(lambda: proxy.handshakes > handshakes and rig.agent.client.online
                    and rig.agent.endpoint.state.pending is None, what="reconnected without csms.ca_file")
        h = await cs.wait_for_station("CP001")
        assert rig.agent.endpoint.current.ca_file == "" and rig.agent.endpoint.current.level == 2
        assert await h.call("DeleteCertificate", certificateHashData=expected_hash(spare.cert)) == {
            "status": "Accepted"}
        assert await h.call("DeleteCertificate", certificateHashData=expected_hash(root.cert)) == {
            "status": "Failed"}
        listed = await h.call("GetInstalledCertificateIds", certificateType="CentralSystemRootCertificate")
        assert [same(e, expected_hash(root.cert)) for e in listed["certificateHashData"]] == [True]
        validate_agent_frames(h)
        await proxy.close()
    finally:
        await rig.close()
