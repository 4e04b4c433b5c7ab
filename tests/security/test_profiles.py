"""The security profile rules (agent/security/profiles.py), as the specifications state them."""

import pytest

from agent.security import profiles as p

HAS_ALL = dict(has_password=True, has_csms_root=True, has_certificate=True)


def test_the_profile_a_connection_has():
    assert p.level_of("ws://h/ocpp", "") == p.NONE
    assert p.level_of("ws://h/ocpp", "pw") == p.BASIC
    assert p.level_of("wss://h/ocpp", "") == p.TLS_BASIC
    assert p.level_of("wss://h/ocpp", "pw", explicit=3) == p.TLS_CLIENT


def test_the_scheme_follows_the_profile():
    assert p.with_scheme("ws://h:8080/ocpp", 2) == "wss://h:8080/ocpp"
    assert p.with_scheme("wss://h/ocpp", 1) == "ws://h/ocpp"
    assert p.scheme_problem("ws://h/ocpp", 3) and p.scheme_problem("wss://h/ocpp", 1)
    assert not p.scheme_problem("wss://h/ocpp", 3) and not p.scheme_problem("ws://h/ocpp", 0)


@pytest.mark.parametrize("new, current, has, problem", [
    (2, 1, HAS_ALL, ""),
    (3, 2, HAS_ALL, ""),
    (1, 2, HAS_ALL, "lower"),  # 1.6 A05.FR.01, 2.0.1 B09.FR.04
    (2, 2, HAS_ALL, "in use"),  # 1.6: equal is Rejected too
    (2, 1, dict(HAS_ALL, has_password=False), "password"),  # 1.6 A05.FR.02
    (2, 1, dict(HAS_ALL, has_csms_root=False), "CSMS root"),  # A05.FR.03
    (3, 2, dict(HAS_ALL, has_csms_root=False), "CSMS root"),
    (3, 2, dict(HAS_ALL, has_certificate=False), "charger certificate"),  # A05.FR.04
    (0, 1, HAS_ALL, "unknown"),
])
def test_what_a_change_over_ocpp_needs(new, current, has, problem):
    found = p.change_problem(new, current, **has)
    assert (problem in found) if problem else found == ""


def test_only_3_to_2_may_be_allowed_downwards():
    assert p.change_problem(2, 3, allow_downgrade=True, **HAS_ALL) == ""
    assert "lower" in p.change_problem(1, 3, allow_downgrade=True, **HAS_ALL)  # never to 1 (errata A00.FR.005)
    assert "lower" in p.change_problem(1, 2, allow_downgrade=True, **HAS_ALL)
    assert p.change_problem(2, 2, equal_ok=True, **HAS_ALL) == ""
