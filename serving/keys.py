"""API keys: from settings only (CITYPIPE_API_KEYS or CITYPIPE_API_KEYS_FILE), compared in
constant time. No key configured means no API: ``citypipe serve`` refuses to start."""

from __future__ import annotations

import hmac
import re

from common.settings import Settings

# Short keys can be guessed; 16 characters of a random token are plenty and easy to generate
# (`python -c "import secrets; print(secrets.token_urlsafe(24))"`).
MIN_KEY_CHARS = 16
_SEPARATORS = re.compile(r"[,\s]+")


class NoApiKeys(ValueError):
    """The API has no usable key configured."""


def parse_keys(text: str) -> tuple[str, ...]:
    """Keys separated by commas, spaces or lines; lines starting with # are comments."""
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    return tuple(k for k in _SEPARATORS.split("\n".join(lines)) if k)


def load_keys(settings: Settings) -> tuple[str, ...]:
    """The configured keys, or :class:`NoApiKeys` with what to do about it."""
    secret = settings.api_keys
    keys = parse_keys(secret.get_secret_value()) if secret is not None else ()
    if not keys:
        raise NoApiKeys(
            "no API key configured: set CITYPIPE_API_KEYS (comma-separated) or"
            " CITYPIPE_API_KEYS_FILE (one key a line); the API never runs without keys"
        )
    short = [k for k in keys if len(k) < MIN_KEY_CHARS]
    if short:
        raise NoApiKeys(
            f"{len(short)} API key(s) shorter than {MIN_KEY_CHARS} characters; use random"
            " tokens, e.g. python -c 'import secrets; print(secrets.token_urlsafe(24))'"
        )
    return keys


def presented_key(x_api_key: str | None, authorization: str | None) -> str | None:
    """The key a request presents: ``X-API-Key``, else ``Authorization: Bearer <key>``."""
    if x_api_key:
        return x_api_key.strip()
    if authorization:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return None


def key_matches(presented: str | None, keys: tuple[str, ...]) -> bool:
    """Constant-time: every key is compared (no early exit), each with hmac.compare_digest."""
    given = (presented or "").encode("utf-8", "surrogateescape")
    found = False
    for key in keys:
        found |= hmac.compare_digest(given, key.encode("utf-8"))
    return found and presented is not None
