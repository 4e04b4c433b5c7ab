"""TLS bench (issue 13 item 7): what security profiles 2 and 3 cost the agent, next to a
plain ws:// connection (profile 1) measured in the same run, all on loopback 127.0.0.1.

    python -m tools.bench_tls              # full run (20 connections a mode)
    python -m tools.bench_tls --quick      # a fast, coarse run (the smoke test uses it)
    python -m tools.bench_tls --json       # machine-readable results on stdout

The bench process runs a ``TestCentralSystem`` (tools/csms.py) and, for wss://, a TLS
terminator in front of it (asyncio, TLS 1.2+, a server certificate for 127.0.0.1 from a CA
made at start with ``cryptography``; for profile 3 it requires a client certificate from
that CA). Each mode runs in its own child process (``--worker MODE CONFIG``), so every
memory figure is clean:

1. profile 1: ws:// with Basic auth;
2. profile 2: wss:// with Basic auth, the server certificate checked against the CA root
   (``csms.ca_file``);
3. profile 3: wss:// with the charger's certificate (made before the run with
   ``agent.security.identity.ChargerIdentity`` in the agent's data directory, its CSR
   signed by the CA), no Basic auth.

The child imports the agent, reads its VmRSS (*before*), then starts an ``Agent`` (the
simulated board, real clock) and times from the start of its connection attempt to the
end of the websocket handshake (*connect*: TCP, TLS, HTTP upgrade) and to BootNotification
Accepted (*boot*); it reads VmRSS again once that first connection is up (*connected*).
It then stops the agent and repeats with a new ``Agent`` on the same data directory, N
times: medians and p95 over the N (the first, cold one shown apart). A fourth child
measures the import cost of ``cryptography``: VmRSS after the agent's imports, then
after ``import agent.security.certificates``.

A measurement, not a test: it exits 0 whatever the figures are (1 if it could not measure).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import ssl
import statistics
import sys
import tempfile
import time

from tools.bench import HOST, BenchError, Processes, _versions, read_line, rss_kib
from tools.tls_proxy import TlsProxy, server_context

MODES = ("ws", "wss", "wss_client")
MODE_TITLES = {"ws": "ws:// (profile 1)", "wss": "wss:// server cert (profile 2)",
               "wss_client": "wss:// client cert (profile 3)"}
STATION_ID = "BENCH-TLS"
PASSWORD = "bench-password-0123"
REPETITIONS = 20
QUICK_REPETITIONS = 3
WORKER_TIMEOUT_S = 120.0
BOOT_TIMEOUT_S = 20.0
AGENT_IMPORTS = ("agent.app.runner", "agent.app.config", "hal.sim", "ocpp.v16", "websockets.asyncio.client")


# --------------------------------------------------------------------------- the PKI

def _pki(directory: str) -> dict:
    """A root CA, a server certificate for 127.0.0.1 and the files the bench needs."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    import ipaddress

    now = datetime.datetime.now(datetime.timezone.utc)
    day = datetime.timedelta(days=1)

    def name(cn: str):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("Bench Root CA")).issuer_name(name("Bench Root CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - day).not_valid_after(now + 30 * day)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))

    def issue(public_key, subject, usage, san=None):
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca.subject).public_key(public_key)
                   .serial_number(x509.random_serial_number()).not_valid_before(now - day)
                   .not_valid_after(now + 7 * day)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        if san is not None:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(ca_key, hashes.SHA256())

    server_key = ec.generate_private_key(ec.SECP256R1())
    server = issue(server_key.public_key(), name(HOST), ExtendedKeyUsageOID.SERVER_AUTH,
                   [x509.IPAddress(ipaddress.ip_address(HOST))])
    pem = lambda c: c.public_bytes(serialization.Encoding.PEM).decode()  # noqa: E731
    files = {"ca": os.path.join(directory, "ca.pem"), "server_cert": os.path.join(directory, "server.crt"),
             "server_key": os.path.join(directory, "server.key")}
    with open(files["ca"], "w") as f:
        f.write(pem(ca))
    with open(files["server_cert"], "w") as f:
        f.write(pem(server))
    with open(files["server_key"], "wb") as f:
        f.write(server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()))

    def sign_csr(csr_pem: str) -> str:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
        return pem(issue(csr.public_key(), csr.subject, ExtendedKeyUsageOID.CLIENT_AUTH))

    return {"files": files, "ca_cert": ca, "sign_csr": sign_csr}


def _charger_certificate(data_dir: str, pki: dict) -> str:
    """The charger's key and certificate in ``data_dir``/security/identity, as the OCPP flow
    (SignCertificate, CertificateSigned) would leave them: its fingerprint."""
    from agent.security.identity import ChargerIdentity
    from hal.runtime.clock import Clock

    identity = ChargerIdentity(os.path.join(data_dir, "security", "identity"), Clock())
    problem = identity.accept_signed(pki["sign_csr"](identity.make_csr(STATION_ID)), [pki["ca_cert"]])
    if problem:
        raise BenchError("the charger certificate was refused: %s" % problem)
    return identity.latest


def terminator_context(files: dict, client_ca: bool = False) -> ssl.SSLContext:
    """The TLS terminator's context: the bench CA's server certificate (checking the
    charger's client certificate against the CA with ``client_ca``)."""
    context = server_context(files["server_cert"], files["server_key"])
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if client_ca:
        context.load_verify_locations(files["ca"])
        context.verify_mode = ssl.CERT_REQUIRED
    return context


# --------------------------------------------------------------------------- the worker (child process)

def _config(directory: str, url: str, extra: str) -> str:
    path = os.path.join(directory, "agent.toml")
    with open(path, "w") as f:
        f.write('[station]\nid = "%s"\ndata_dir = "%s"\n\n[csms]\nurl = "%s"\nocpp_version = "1.6"\n%s\n'
                'reconnect_initial_s = 0.1\nreconnect_max_s = 1.0\n\n[status_page]\nenabled = false\n\n'
                '[ocpp]\nWebSocketPingInterval = 0\n' % (STATION_ID, os.path.join(directory, "data"), url, extra))
    return path


async def _worker(config_path: str, repetitions: int) -> dict:
    import importlib

    for name in AGENT_IMPORTS:
        importlib.import_module(name)
    from agent.app.config import load_config
    from agent.app.runner import Agent
    from agent.link.connection import CsmsConnection

    marks: list = []
    plain_open = CsmsConnection.open

    async def timed_open(self):
        t0 = time.perf_counter()
        ws = await plain_open(self)
        marks.append((t0, time.perf_counter()))
        return ws

    CsmsConnection.open = timed_open
    rss_before = rss_kib(os.getpid())
    crypto_before = "cryptography" in sys.modules
    config = load_config(config_path)
    connect_s, boot_s, rss_connected, crypto_connected = [], [], 0, False
    for i in range(repetitions):
        marks.clear()
        agent = Agent(config)
        await agent.start()
        try:
            deadline = time.monotonic() + BOOT_TIMEOUT_S
            while not agent.client.online:
                if time.monotonic() > deadline:
                    raise BenchError("no BootNotification Accepted within %.0f s: %s"
                                     % (BOOT_TIMEOUT_S, agent.connection.last_error))
                await asyncio.sleep(0.0005)
            t_online = time.perf_counter()
            if agent.connection.failed_attempts or len(marks) != 1:
                raise BenchError("the connection needed more than one attempt: %s" % agent.connection.last_error)
            connect_s.append(marks[0][1] - marks[0][0])
            boot_s.append(t_online - marks[0][0])
            if i == 0:
                rss_connected, crypto_connected = rss_kib(os.getpid()), "cryptography" in sys.modules
        finally:
            await agent.stop()
    return {"rss_before_kib": rss_before, "rss_connected_kib": rss_connected,
            "cryptography_before": crypto_before, "cryptography_connected": crypto_connected,
            "connect_s": connect_s, "boot_s": boot_s}


def _imports_worker() -> dict:
    import importlib

    for name in AGENT_IMPORTS:
        importlib.import_module(name)
    loaded = "cryptography" in sys.modules
    before = rss_kib(os.getpid())
    importlib.import_module("agent.security.certificates")
    return {"rss_agent_kib": before, "rss_with_certificates_kib": rss_kib(os.getpid()),
            "cryptography_loaded_by_agent": loaded}


# --------------------------------------------------------------------------- the bench (parent)

def _stats(values: list) -> dict:
    ms = sorted(v * 1000 for v in values)
    warm = ms if len(values) == 1 else sorted(v * 1000 for v in values[1:])
    p95 = warm[min(len(warm) - 1, max(0, round(0.95 * len(warm) + 0.5) - 1))]
    return {"median_ms": statistics.median(warm), "p95_ms": p95, "first_ms": values[0] * 1000, "n": len(values)}


async def _run_worker(procs: Processes, *args: str) -> dict:
    proc = await procs.spawn("-m", "tools.bench_tls", "--worker", *args, stdout=True)
    try:
        line = await read_line(proc, "worker %s" % args[0], WORKER_TIMEOUT_S)
    finally:
        await procs.stop(proc)
    result = json.loads(line)
    if "error" in result:
        raise BenchError("worker %s: %s\n%s" % (args[0], result["error"], procs.log_tail(proc)))
    return result


async def _bench(opts) -> dict:
    from tools.csms import TestCentralSystem

    repetitions = opts.repetitions or (QUICK_REPETITIONS if opts.quick else REPETITIONS)
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as workdir:
        procs = Processes(workdir, bytecode_cache=True)
        pki = _pki(workdir)
        files = pki["files"]
        with_password = TestCentralSystem(quiet=True, password=PASSWORD)
        without_password = TestCentralSystem(quiet=True)
        await with_password.start()
        await without_password.start()
        proxies = [TlsProxy(with_password.port, terminator_context(files)),
                   TlsProxy(without_password.port, terminator_context(files, client_ca=True))]
        try:
            for p in proxies:
                await p.start()
            setups = {"ws": (with_password.url, 'password = "%s"' % PASSWORD),
                      "wss": (proxies[0].url, 'password = "%s"\nca_file = "%s"' % (PASSWORD, files["ca"])),
                      "wss_client": (proxies[1].url, 'security_profile = 3\nca_file = "%s"' % files["ca"])}
            warm = await procs.spawn("-c", "import %s, agent.security.identity, agent.security.certificates, "
                                     "tools.bench_tls" % ", ".join(AGENT_IMPORTS))
            await warm.wait()
            results = {}
            for mode in MODES:
                directory = os.path.join(workdir, mode)
                os.makedirs(os.path.join(directory, "data"))
                if mode == "wss_client":
                    _charger_certificate(os.path.join(directory, "data"), pki)
                url, extra = setups[mode]
                print("bench_tls: %s, %d connections" % (MODE_TITLES[mode], repetitions), file=sys.stderr)
                raw = await _run_worker(procs, mode, _config(directory, url, extra), str(repetitions))
                results[mode] = {"connect": _stats(raw["connect_s"]), "boot": _stats(raw["boot_s"]),
                                 "rss_before_mib": raw["rss_before_kib"] / 1024,
                                 "rss_connected_mib": raw["rss_connected_kib"] / 1024,
                                 "cryptography_before": raw["cryptography_before"],
                                 "cryptography_connected": raw["cryptography_connected"]}
            imports = await _run_worker(procs, "imports")
            if proxies[1].handshakes < repetitions:
                raise BenchError("profile 3 went past the TLS server")
        finally:
            for p in proxies:
                await p.close()
            await with_password.stop()
            await without_password.stop()
            await procs.stop_all()
    base = results["ws"]
    for mode in MODES:
        r = results[mode]
        r["rss_cost_mib"] = r["rss_connected_mib"] - r["rss_before_mib"]
        r["boot_ratio"] = r["boot"]["median_ms"] / base["boot"]["median_ms"]
        r["connect_ratio"] = r["connect"]["median_ms"] / base["connect"]["median_ms"]
        r["rss_connected_ratio"] = r["rss_connected_mib"] / base["rss_connected_mib"]
    return {"settings": {"quick": opts.quick, "repetitions": repetitions},
            "versions": {**_versions(), "openssl": ssl.OPENSSL_VERSION}, "modes": results,
            "cryptography_import": {"rss_agent_mib": imports["rss_agent_kib"] / 1024,
                                    "rss_with_certificates_mib": imports["rss_with_certificates_kib"] / 1024,
                                    "cost_mib": (imports["rss_with_certificates_kib"] - imports["rss_agent_kib"])
                                    / 1024, "loaded_by_agent": imports["cryptography_loaded_by_agent"]}}


def render(r: dict) -> str:
    n = r["settings"]["repetitions"]
    lines = ["TLS bench: %d connections a mode, each mode in its own process (median and p95 of the warm ones; "
             "the first, cold one apart)" % n, "",
             "%-32s %10s %10s %10s %7s  %10s %10s %10s %7s" % ("mode", "connect", "p95", "first", "ratio",
                                                              "+boot", "p95", "first", "ratio")]
    for mode in MODES:
        m = r["modes"][mode]
        c, b = m["connect"], m["boot"]
        lines.append("%-32s %7.2f ms %7.2f ms %7.2f ms %6.2fx  %7.2f ms %7.2f ms %7.2f ms %6.2fx" % (
            MODE_TITLES[mode], c["median_ms"], c["p95_ms"], c["first_ms"], m["connect_ratio"], b["median_ms"],
            b["p95_ms"], b["first_ms"], m["boot_ratio"]))
    lines += ["", "connect: TCP + TLS + websocket upgrade; +boot: the same until BootNotification Accepted; "
              "ratio: vs ws://", "",
              "%-32s %12s %12s %10s %7s  %s" % ("agent RSS", "before", "connected", "cost", "ratio",
                                               "cryptography loaded")]
    for mode in MODES:
        m = r["modes"][mode]
        lines.append("%-32s %8.1f MiB %8.1f MiB %6.1f MiB %6.2fx  %s" % (
            MODE_TITLES[mode], m["rss_before_mib"], m["rss_connected_mib"], m["rss_cost_mib"],
            m["rss_connected_ratio"], "yes" if m["cryptography_connected"] else "no"))
    ci = r["cryptography_import"]
    lines += ["", "before: the agent imported, no connection; connected: after the first BootNotification "
              "Accepted; cost: connected - before (the station's own start included, the same in every mode); "
              "ratio: connected vs ws://", "",
              "import agent.security.certificates (cryptography): %.1f MiB -> %.1f MiB (+%.1f MiB; the agent "
              "alone %s cryptography)" % (ci["rss_agent_mib"], ci["rss_with_certificates_mib"], ci["cost_mib"],
                                           "loads" if ci["loaded_by_agent"] else "does not load"),
              "", "versions: " + ", ".join("%s %s" % kv for kv in r["versions"].items())]
    return "\n".join(lines)


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench_tls", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="%d connections a mode" % QUICK_REPETITIONS)
    parser.add_argument("--repetitions", type=int, default=0, help="connections a mode (default %d)" % REPETITIONS)
    parser.add_argument("--json", action="store_true", help="results as JSON on stdout")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    if opts.worker:
        try:
            if opts.worker[0] == "imports":
                result = _imports_worker()
            else:
                result = asyncio.run(_worker(opts.worker[1], int(opts.worker[2])))
        except Exception as e:  # the parent reports it
            result = {"error": "%s: %s" % (type(e).__name__, e)}
        print(json.dumps(result), flush=True)
        return 0
    try:
        r = asyncio.run(_bench(opts))
    except BenchError as e:
        print("bench_tls: could not measure: %s" % e, file=sys.stderr)
        return 1
    print(json.dumps(r, indent=2) if opts.json else render(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
