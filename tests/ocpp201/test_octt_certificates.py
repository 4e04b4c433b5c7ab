"""OCPP 2.0.1 security on the wire, by OCTT test case: certificate management (M block),
the station's own certificate (A02/A03: TC_A_11, A_14, A_15, A_23), security profile 3 with
a client certificate (TC_A_07), and raising the security profile through network profiles
(TC_A_19, A_20, A_21). Real TLS on loopback with certificates made at test time
(tests/pki.py, tests/tls_rig.py); the station's frames are checked against the schemas.
"""

import datetime
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp

from hal.runtime.clock import VirtualClock
from tests import pki
from tests.harness import validate_agent_frames
from tests.link.test_moving_backend import Rig, actions, until
from tests.ocpp16.test_octt_security import expected_hash, same
from tests.ocpp201.test_octt_network import PINNED, central, connection_data, get, reset_and_restart, set_priority, \
    variable
from tests.tls_rig import tls_backend

PASSWORD = "first-password-1234"


def secure_rig(tmp_path) -> Rig:
    return Rig(tmp_path, clock=VirtualClock(start=time.time()))


async def booted(rig, cs):
    handle = await cs.wait_for_station("CP001")
    await handle.wait_for("BootNotification")
    await until(lambda: rig.agent.client.online, what="BootNotification Accepted")
    return handle


async def on_profile_1(rig):
    """The station on 2.0.1 at a plain ws:// CSMS: its handle once booted."""
    cs = await central(rig)
    await rig.start(cs.url, extra=PINNED)
    return await rig.booted(cs)


async def install(h, kind: str, authority) -> dict:
    return await h.call("InstallCertificate", certificateType=kind, certificate=authority.pem)


async def ids(h, *kinds) -> dict:
    return await h.call("GetInstalledCertificateIds", **({"certificateType": list(kinds)} if kinds else {}))


def listed(answer: dict, kind: str, cert) -> bool:
    return any(e["certificateType"] == kind and same(e["certificateHashData"], expected_hash(cert))
               for e in answer.get("certificateHashDataChain", ()))


async def trigger_signing(h, authority, *, answer=None) -> dict:
    """TriggerMessage SignChargingStationCertificate: the SignCertificateRequest (its CSR checked);
    with ``answer`` (a callable(csr) -> chain) the CertificateSigned reply is returned."""
    m = len(h.messages)
    assert await h.call("TriggerMessage", requestedMessage="SignChargingStationCertificate") == {
        "status": "Accepted"}
    request = await h.wait_for("SignCertificate", start_index=m)
    assert request["certificateType"] == "ChargingStationCertificate"
    csr = x509.load_pem_x509_csr(request["csr"].encode())
    assert csr.is_signature_valid
    assert csr.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "CP001"
    if answer is None:
        return request
    return await h.call("CertificateSigned", certificateChain=answer(request["csr"]),
                        certificateType="ChargingStationCertificate")


async def test_tc_m_01_m_02_m_12_m_13_m_17_m_18_m_19_install_and_list_root_certificates(tmp_path):
    """TC_M_01/M_02: a CSMSRootCertificate and a ManufacturerRootCertificate Accepted. TC_M_12/13:
    each listed under its type; TC_M_17: both asked together; TC_M_18: certificateType omitted
    lists both; TC_M_19: MORootCertificate not installed: NotFound without a chain."""
    rig = secure_rig(tmp_path)
    csms_root, maker_root = pki.Authority("CSMS Root"), pki.Authority("Manufacturer Root")
    try:
        h = await on_profile_1(rig)
        assert await install(h, "CSMSRootCertificate", csms_root) == {"status": "Accepted"}
        assert await install(h, "ManufacturerRootCertificate", maker_root) == {"status": "Accepted"}
        only_csms = await ids(h, "CSMSRootCertificate")
        assert only_csms["status"] == "Accepted" and listed(only_csms, "CSMSRootCertificate", csms_root.cert)
        assert not listed(only_csms, "ManufacturerRootCertificate", maker_root.cert)
        assert listed(await ids(h, "ManufacturerRootCertificate"), "ManufacturerRootCertificate", maker_root.cert)
        both = await ids(h, "CSMSRootCertificate", "ManufacturerRootCertificate")
        every = await ids(h)
        for answer in (both, every):
            assert listed(answer, "CSMSRootCertificate", csms_root.cert)
            assert listed(answer, "ManufacturerRootCertificate", maker_root.cert)
        assert await ids(h, "MORootCertificate") == {"status": "NotFound"}
        assert await ids(h, "V2GCertificateChain") == {"status": "NotFound"}
        assert (await get(h, "SecurityCtrlr", "CertificateEntries"))["attributeValue"] == "2"
        validate_agent_frames(h)
    finally:
        await rig.close()


async def test_tc_m_07_an_expired_csms_root_is_rejected_and_not_listed(tmp_path):
    """TC_M_07_CS: InstallCertificate with an expired CSMSRootCertificate: Rejected, not listed,
    and a critical security event InvalidCsmsCertificate pushed to the CSMS."""
    rig = secure_rig(tmp_path)
    now = pki.now()
    expired = pki.Authority("Old Root", not_before=now - datetime.timedelta(days=60),
                            not_after=now - datetime.timedelta(days=1))
    valid = pki.Authority("CSMS Root")
    try:
        h = await on_profile_1(rig)
        assert await install(h, "CSMSRootCertificate", valid) == {"status": "Accepted"}
        m = len(h.messages)
        assert await install(h, "CSMSRootCertificate", expired) == {"status": "Rejected"}
        answer = await ids(h, "CSMSRootCertificate")
        assert answer["status"] == "Accepted" and not listed(answer, "CSMSRootCertificate", expired.cert)
        await h.wait_for("SecurityEventNotification", lambda p: p["type"] == "InvalidCsmsCertificate",
                         start_index=m)
        validate_agent_frames(h)
    finally:
        await rig.close()


async def test_tc_m_20_m_22_delete_a_certificate_and_one_not_found(tmp_path):
    """TC_M_20_CS: DeleteCertificate with the hash data GetInstalledCertificateIds gave:
    Accepted, no longer listed. TC_M_22_CS: the same again: NotFound."""
    rig = secure_rig(tmp_path)
    root = pki.Authority("CSMS Root")
    try:
        h = await on_profile_1(rig)
        assert await install(h, "CSMSRootCertificate", root) == {"status": "Accepted"}
        entry = (await ids(h, "CSMSRootCertificate"))["certificateHashDataChain"][0]["certificateHashData"]
        assert await h.call("DeleteCertificate", certificateHashData=entry) == {"status": "Accepted"}
        assert await ids(h, "CSMSRootCertificate") == {"status": "NotFound"}
        assert await h.call("DeleteCertificate", certificateHashData=entry) == {"status": "NotFound"}
        validate_agent_frames(h)
    finally:
        await rig.close()


async def on_profile_2(rig, tmp_path, root, **backend):
    """The station on 2.0.1, security profile 2 at a CSMS behind TLS whose certificate ``root``
    signed (its first CSMS root from csms.ca_file): (CSMS, proxy, handle)."""
    cs = await central(rig)
    proxy = await tls_backend(cs, tmp_path, root, **backend)
    ca_file = pki.write_pem(tmp_path, "csms-root.pem", root.cert)
    await rig.start(proxy.url, extra=PINNED + '\npassword = "%s"\nca_file = "%s"' % (PASSWORD, ca_file))
    return cs, proxy, await booted(rig, cs)


async def test_tc_a_11_a_14_a_15_the_station_certificate_by_request_of_the_csms(tmp_path):
    """TC_A_15_CS: SignCertificateResponse Rejected: nothing more is sent. TC_A_14_CS: a chain
    for another key is Rejected with a critical InvalidChargingStationCertificate event.
    TC_A_11_CS: the chain the CSMS's CA signed for the CSR (O = SecurityCtrlr.OrganizationName)
    is Accepted and stored, its key file private."""
    rig = secure_rig(tmp_path)
    root = pki.Authority("CSMS Root")
    sub = pki.Authority("CSO Sub-CA", parent=root)
    try:
        cs, proxy, h = await on_profile_2(rig, tmp_path, root)
        got = await h.call("SetVariables", setVariableData=[variable("SecurityCtrlr", "OrganizationName", "CSO Ltd")])
        assert got["setVariableResult"][0]["attributeStatus"] == "Accepted"
        assert await install(h, "CSMSRootCertificate", root) == {"status": "Accepted"}

        h.handlers["SignCertificate"] = lambda _p: {"status": "Rejected"}
        signs_before = len(actions(h, "SignCertificate"))
        await trigger_signing(h, sub)
        await rig.clock.advance(200)  # far past CertSigningWaitMinimum: a Rejected request is not resent
        assert len([p for p in actions(h, "SignCertificate")]) == signs_before + 1
        del h.handlers["SignCertificate"]

        def another_key(_csr):
            return sub.chain_pem(sub.issue(pki.new_key().public_key(), pki.name("CP001"), server=False, client=True))

        m = len(h.messages)
        assert await trigger_signing(h, sub, answer=another_key) == {"status": "Rejected"}
        await h.wait_for("SecurityEventNotification", lambda p: p["type"] == "InvalidChargingStationCertificate",
                         start_index=m)

        assert await trigger_signing(h, sub, answer=lambda csr: sub.chain_pem(sub.sign_csr(csr))) == {
            "status": "Accepted"}
        fingerprint = rig.agent.security.latest_certificate()
        leaf = rig.agent.security.identity.certificate(fingerprint)
        assert leaf.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)[0].value == "CSO Ltd"
        validate_agent_frames(h)
        await proxy.close()
    finally:
        await rig.close()


async def test_tc_a_23_sign_certificate_resent_when_no_certificate_comes(tmp_path):
    """TC_A_23_CS: CertSigningWaitMinimum 30 s, CertSigningRepeatTimes 1: without a
    CertificateSigned the SignCertificateRequest is sent again after 30 s, then after 60 s;
    the CertificateSigned that follows is Accepted, and nothing more is sent."""
    rig = secure_rig(tmp_path)
    root = pki.Authority("CSMS Root")
    try:
        cs, proxy, h = await on_profile_2(rig, tmp_path, root)
        got = await h.call("SetVariables", setVariableData=[
            variable("SecurityCtrlr", "CertSigningWaitMinimum", "30"),
            variable("SecurityCtrlr", "CertSigningRepeatTimes", "1")])
        assert [r["attributeStatus"] for r in got["setVariableResult"]] == ["Accepted", "Accepted"]
        assert await install(h, "CSMSRootCertificate", root) == {"status": "Accepted"}
        first = len(actions(h, "SignCertificate"))
        await trigger_signing(h, root)
        await rig.clock.advance(29)
        assert len(actions(h, "SignCertificate")) == first + 1
        await rig.clock.advance(2)
        await until(lambda: len(actions(h, "SignCertificate")) == first + 2, what="the first resend")
        await rig.clock.advance(58)  # the first resend went out at 30 s: the next is due at 90 s
        assert len(actions(h, "SignCertificate")) == first + 2
        await rig.clock.advance(2)
        await until(lambda: len(actions(h, "SignCertificate")) == first + 3, what="the second resend")
        csr = actions(h, "SignCertificate")[-1]["csr"]
        assert await h.call("CertificateSigned", certificateChain=root.chain_pem(root.sign_csr(csr))) == {
            "status": "Accepted"}
        await rig.clock.advance(1000)
        assert len(actions(h, "SignCertificate")) == first + 3
        validate_agent_frames(h)
        await proxy.close()
    finally:
        await rig.close()


async def test_tc_a_20_a_21_a_higher_profile_without_what_it_needs_is_refused(tmp_path):
    """TC_A_20_CS: on profile 1 without a CSMS root, a slot with profile 2 is stored, but the
    priority that would use it is Rejected. TC_A_21_CS: with a CSMS root but no station
    certificate, a slot with profile 3 likewise."""
    rig = secure_rig(tmp_path)
    root = pki.Authority("CSMS Root")
    try:
        h = await on_profile_1(rig)
        assert await h.call("SetNetworkProfile", configurationSlot=2, connectionData=connection_data(
            "wss://127.0.0.1:9/ocpp", security_profile=2)) == {"status": "Accepted"}
        assert (await set_priority(h, "2,1"))["attributeStatus"] == "Rejected"
        assert await install(h, "CSMSRootCertificate", root) == {"status": "Accepted"}
        assert await h.call("SetNetworkProfile", configurationSlot=3, connectionData=connection_data(
            "wss://127.0.0.1:9/ocpp", security_profile=3)) == {"status": "Accepted"}
        assert (await set_priority(h, "3,1"))["attributeStatus"] == "Rejected"
        assert (await set_priority(h, "2,1"))["attributeStatus"] == "RebootRequired"  # now it has its root
        validate_agent_frames(h)
    finally:
        await rig.close()


async def test_tc_a_19_upgrade_from_profile_1_to_2_and_tc_a_07_to_3(tmp_path):
    """TC_A_19_CS: on profile 1 the CSMS installs its root, sets a network profile with
    securityProfile 2 and the priority; after the reset the station connects over TLS,
    reports SecurityProfile 2, and profile 1's slot has left the priority. Then the same to
    profile 3 (TC_A_07_CS: the TLS server checks the station's client certificate; no Basic
    auth); a downgrade to 2 is refused (TC_A_22's rule, AllowSecurityProfileDowngrade false)."""
    rig = secure_rig(tmp_path)
    root = pki.Authority("CSMS Root")
    try:
        plain = await central(rig)
        tls_cs = await central(rig)
        proxy = await tls_backend(tls_cs, tmp_path, root, client_ca=root)
        await rig.start(plain.url, extra=PINNED + '\npassword = "%s"' % PASSWORD)
        h1 = await rig.booted(plain)
        assert (await get(h1, "SecurityCtrlr", "SecurityProfile"))["attributeValue"] == "1"
        assert await install(h1, "CSMSRootCertificate", root) == {"status": "Accepted"}
        assert await h1.call("SetNetworkProfile", configurationSlot=2, connectionData=connection_data(
            proxy.url, security_profile=2)) == {"status": "Accepted"}
        assert (await set_priority(h1, "2,1"))["attributeStatus"] == "RebootRequired"
        await reset_and_restart(rig, h1)
        h2 = await booted(rig, tls_cs)
        assert proxy.handshakes >= 1 and h2.request_headers["Authorization"].startswith("Basic ")
        assert (await get(h2, "SecurityCtrlr", "SecurityProfile"))["attributeValue"] == "2"
        assert "1" not in (await get(h2, "OCPPCommCtrlr", "NetworkConfigurationPriority"))["attributeValue"]

        # To profile 3: a station certificate first, then a slot with profile 3 at the same CSMS.
        assert await trigger_signing(h2, root, answer=lambda csr: root.chain_pem(root.sign_csr(csr))) == {
            "status": "Accepted"}
        assert await h2.call("SetNetworkProfile", configurationSlot=3, connectionData=connection_data(
            proxy.url, security_profile=3)) == {"status": "Accepted"}
        assert (await set_priority(h2, "3,2"))["attributeStatus"] == "RebootRequired"
        await reset_and_restart(rig, h2)
        h3 = await booted(rig, tls_cs)
        await until(lambda: rig.agent.endpoint.current.level == 3 and rig.agent.client.online,
                    what="online on profile 3")
        assert proxy.peer_certs[-1] is not None and "Authorization" not in h3.request_headers
        assert (await get(h3, "SecurityCtrlr", "SecurityProfile"))["attributeValue"] == "3"
        assert await h3.call("SetNetworkProfile", configurationSlot=4, connectionData=connection_data(
            proxy.url, security_profile=2)) == {"status": "Rejected"}
        for h in (h1, h2, h3):
            validate_agent_frames(h)
        await proxy.close()
    finally:
        await rig.close()


async def test_tc_m_23_the_station_certificate_cannot_be_deleted(tmp_path):
    """TC_M_23_CS: DeleteCertificate with the hash data of the station's own certificate is
    Failed (M04.FR.06); it stays."""
    rig = secure_rig(tmp_path)
    root = pki.Authority("CSMS Root")
    try:
        cs, proxy, h = await on_profile_2(rig, tmp_path, root)
        assert await install(h, "CSMSRootCertificate", root) == {"status": "Accepted"}
        assert await trigger_signing(h, root, answer=lambda csr: root.chain_pem(root.sign_csr(csr))) == {
            "status": "Accepted"}
        leaf = rig.agent.security.identity.certificate(rig.agent.security.latest_certificate())
        request = ocsp.OCSPRequestBuilder().add_certificate(leaf, root.cert, hashes.SHA256()).build()
        own = {"hashAlgorithm": "SHA256", "issuerNameHash": request.issuer_name_hash.hex(),
               "issuerKeyHash": request.issuer_key_hash.hex(), "serialNumber": "%x" % request.serial_number}
        assert (await h.call("DeleteCertificate", certificateHashData=own))["status"] in ("Failed", "NotFound")
        assert rig.agent.security.latest_certificate() is not None
        validate_agent_frames(h)
        await proxy.close()
    finally:
        await rig.close()


async def test_tc_b_50_migrate_to_a_new_csms_trusted_through_a_new_csms_root(tmp_path):
    """TC_B_50_CS: on profile 2, the CSMS installs a second CSMS root; a network profile for a
    new CSMS whose certificate that root signed, the priority, a reset: the station validates
    the new CSMS's certificate with the installed root and boots there. TC_B_49_CS alike,
    failing: the new slot's CSMS is not reachable over TLS: after NetworkProfileConnectionAttempts
    the station is back on the slot that worked."""
    rig = secure_rig(tmp_path)
    old_root, new_root = pki.Authority("CSMS Root 1"), pki.Authority("CSMS Root 2")
    try:
        cs1, proxy1, h1 = await on_profile_2(rig, tmp_path, old_root)
        cs2 = await central(rig)
        proxy2 = await tls_backend(cs2, tmp_path, new_root, stem="server2")
        assert await install(h1, "CSMSRootCertificate", new_root) == {"status": "Accepted"}
        assert await h1.call("SetNetworkProfile", configurationSlot=2, connectionData=connection_data(
            proxy2.url, security_profile=2)) == {"status": "Accepted"}
        assert (await set_priority(h1, "2,1"))["attributeStatus"] == "RebootRequired"
        await reset_and_restart(rig, h1)
        h2 = await booted(rig, cs2)
        assert proxy2.handshakes >= 1 and rig.agent.endpoint.profiles.active == 2

        # TC_B_49: slot 3 at a TLS port that is gone; one attempt allowed, then back to slot 2.
        got = await h2.call("SetVariables", setVariableData=[
            variable("OCPPCommCtrlr", "NetworkProfileConnectionAttempts", "1")])
        assert got["setVariableResult"][0]["attributeStatus"] == "Accepted"
        gone = proxy1.url
        await proxy1.close()
        assert await h2.call("SetNetworkProfile", configurationSlot=3, connectionData=connection_data(
            gone, security_profile=2)) == {"status": "Accepted"}
        assert (await set_priority(h2, "3,2"))["attributeStatus"] == "RebootRequired"
        boots = len(actions(h2, "BootNotification"))
        await reset_and_restart(rig, h2)
        await until(lambda: len(actions(h2, "BootNotification")) == boots + 1 and rig.agent.client.online,
                    clock=rig.clock, step_s=0.5, timeout_s=20, what="back at slot 2")
        assert rig.agent.endpoint.profiles.active == 2 and rig.agent.endpoint.current.url == proxy2.url
        for h in (h1, h2):
            validate_agent_frames(h)
        await proxy2.close()
    finally:
        await rig.close()


async def test_a_raise_to_profile_3_the_csms_refuses_falls_back_to_profile_2(tmp_path):
    """A05 with B10.FR.07: the station has a certificate and a slot with profile 3, but the
    CSMS's TLS server does not trust the CA that signed it: after NetworkProfileConnectionAttempts
    failed attempts the station is back on profile 2 at the slot that worked, the refusal in its
    security log (FailedToAuthenticateAtCsms) and the rollback reported."""
    rig = secure_rig(tmp_path)
    root, stranger = pki.Authority("CSMS Root"), pki.Authority("Another CA")
    try:
        cs, proxy, h = await on_profile_2(rig, tmp_path, root, client_ca=stranger)
        assert await install(h, "CSMSRootCertificate", root) == {"status": "Accepted"}
        assert await trigger_signing(h, root, answer=lambda csr: root.chain_pem(root.sign_csr(csr))) == {
            "status": "Accepted"}
        got = await h.call("SetVariables", setVariableData=[
            variable("OCPPCommCtrlr", "NetworkProfileConnectionAttempts", "2")])
        assert got["setVariableResult"][0]["attributeStatus"] == "Accepted"
        assert await h.call("SetNetworkProfile", configurationSlot=2, connectionData=connection_data(
            proxy.url, security_profile=3)) == {"status": "Accepted"}
        assert (await set_priority(h, "2,1"))["attributeStatus"] == "RebootRequired"
        boots = len(actions(h, "BootNotification"))
        await reset_and_restart(rig, h)
        await until(lambda: len(actions(h, "BootNotification")) == boots + 1 and rig.agent.client.online,
                    clock=rig.clock, step_s=0.5, timeout_s=20, what="back on profile 2")
        assert rig.agent.endpoint.current.level == 2 and rig.agent.endpoint.profiles.active == 1
        assert (await get(h, "SecurityCtrlr", "SecurityProfile"))["attributeValue"] == "2"
        kinds = [e.kind for e in rig.agent.security.log.events()]
        assert "failed_to_authenticate_at_csms" in kinds
        await h.wait_for("SecurityEventNotification", lambda p: p["type"] == "ReconfigurationOfSecurityParameters")
        validate_agent_frames(h)
        await proxy.close()
    finally:
        await rig.close()
