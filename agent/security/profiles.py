"""Security profiles (OCPP 1.6 security whitepaper §2, OCPP 2.0.1 A00) and the rules
for changing them over OCPP (1.6 A05, 2.0.1 A05 and B09 with the 2025 errata).

0 no TLS and no password (1.6 only), 1 HTTP Basic auth without TLS, 2 TLS with
Basic auth, 3 TLS with the charger's own client certificate (no password).

Portable: pure functions.
"""

NONE, BASIC, TLS_BASIC, TLS_CLIENT = 0, 1, 2, 3
LEVELS = (NONE, BASIC, TLS_BASIC, TLS_CLIENT)
WORDS = {NONE: "0 (no TLS, no password)", BASIC: "1 (Basic authentication without TLS)",
         TLS_BASIC: "2 (TLS with Basic authentication)", TLS_CLIENT: "3 (TLS with a charger certificate)"}


def level_of(url: str, password: str, explicit: int = 0) -> int:
    """The profile of a connection: ``explicit`` when set (1-3), else what the URL and
    the password give (wss:// 2, ws:// 1 with a password, 0 without)."""
    if explicit:
        return explicit
    if url.startswith("wss://"):
        return TLS_BASIC
    return BASIC if password else NONE


def with_scheme(url: str, level: int) -> str:
    """``url`` with the scheme ``level`` needs (wss:// from profile 2 on)."""
    _scheme, _sep, rest = url.partition("://")
    return ("wss://" if level >= TLS_BASIC else "ws://") + rest


def scheme_problem(url: str, level: int) -> str:
    """Why ``url`` cannot carry profile ``level`` ("" if it can)."""
    tls = url.startswith("wss://")
    if level >= TLS_BASIC and not tls:
        return "security profile %d needs a wss:// URL" % level
    if level in (NONE, BASIC) and tls and level:
        return "security profile %d is without TLS: it needs a ws:// URL" % level
    return ""


def change_problem(new: int, current: int, *, has_password: bool, has_csms_root: bool, has_certificate: bool,
                   equal_ok: bool = False, allow_downgrade: bool = False) -> str:
    """Why the central system may not move the charger from profile ``current`` to
    ``new`` ("" if it may). Lower is refused (1.6 A05.FR.01, 2.0.1 B09.FR.04), but for
    3 to 2 when ``allow_downgrade`` (2.0.1 errata: AllowSecurityProfileDowngrade);
    equal is refused by 1.6's SecurityProfile key (A05.FR.01), fine elsewhere
    (``equal_ok``). The new profile needs its prerequisites: a password for 1 and 2
    (A05.FR.02), a CSMS root certificate for 2 and 3 (A05.FR.03), the charger's
    certificate for 3 (A05.FR.04)."""
    if new not in LEVELS or new == NONE:
        return "unknown security profile %r" % (new,)
    if new < current and not (allow_downgrade and current == TLS_CLIENT and new == TLS_BASIC):
        return "security profile %d is lower than the %d in use" % (new, current)
    if new == current and not equal_ok:
        return "security profile %d is the one in use" % new
    if new in (BASIC, TLS_BASIC) and not has_password:
        return "security profile %d needs a Basic auth password (AuthorizationKey / BasicAuthPassword)" % new
    if new >= TLS_BASIC and not has_csms_root:
        return "security profile %d needs a CSMS root certificate installed" % new
    if new == TLS_CLIENT and not has_certificate:
        return "security profile 3 needs a valid charger certificate (SignCertificate first)"
    return ""
