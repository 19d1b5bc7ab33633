"""Signing out ends the session on the server too: a copied cookie is refused afterwards."""

from __future__ import annotations

from serving import session
from serving.session import SESSION_S, Signer


def test_a_revoked_session_is_refused_and_others_are_not() -> None:
    signer = Signer()
    mine, other = signer.issue(now=1000.0), signer.issue(now=1000.0)
    assert signer.revoke(mine, now=1001.0) is True
    assert signer.valid(mine, now=1002.0) is False
    assert signer.valid(other, now=1002.0) is True
    # Revoking again, or revoking a forged or empty token, changes nothing.
    assert signer.revoke(mine, now=1003.0) is False
    assert signer.revoke("1.2.3", now=1003.0) is False
    assert signer.revoke(None, now=1003.0) is False
    assert signer.valid(other, now=1004.0) is True


def test_expired_revocations_are_forgotten_and_the_list_is_bounded(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(session, "MAX_REVOKED", 3)
    signer = Signer()
    old = [signer.issue(now=0.0) for _ in range(2)]
    for token in old:
        signer.revoke(token, now=1.0)
    # Past their expiry they need not be remembered: expired tokens are refused anyway.
    fresh = [signer.issue(now=SESSION_S + 10.0) for _ in range(5)]
    for token in fresh:
        signer.revoke(token, now=SESSION_S + 11.0)
    assert len(signer._revoked) <= 3
    assert all(not signer.valid(t, now=SESSION_S + 12.0) for t in old)
