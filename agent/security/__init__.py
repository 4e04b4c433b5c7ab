"""The charger's security core, shared by every OCPP version: its key pairs and
certificate (identity.py), the root certificates it trusts (certificates.py),
the TLS contexts built from them (tls.py), the rules for security profiles
(profiles.py) and the persistent security event log (events.py).

Protocol-neutral: the adapters translate OCPP's certificate messages and
security events to and from these objects. The modules wrapping the
``cryptography`` package and ``ssl`` are CPython-only.
"""
