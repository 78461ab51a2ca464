"""HTTP basic auth for the metrics endpoint, from a file of hashed passwords.

prometheus-client has no server-side authentication, so `server.serve` wraps its
WSGI app (`make_wsgi_app`) in `BasicAuth.wrap`: a request without valid credentials
gets 401 and a `WWW-Authenticate: Basic realm="irqtune"` challenge. The file has one
`USER:HASH` per line (blank lines and `#` comments ignored), HASH one of:

    $2b$..., $2y$..., $2a$...   bcrypt: `htpasswd -nbB USER PASS` (apache2-utils), or
                                python3 -c 'import bcrypt; print(bcrypt.hashpw(b"PASS", bcrypt.gensalt()).decode())'
    $5$... / $6$...             SHA-256/512-crypt (salted): `openssl passwd -5 PASS`
    sha256:HEX                  plain SHA-256 of the password: `printf %s PASS | sha256sum`
                                (unsalted: only for long random passwords)

bcrypt uses the Python `bcrypt` module when installed, else the system's libcrypt
through the standard `crypt` module (Python <= 3.12; Debian's libcrypt knows bcrypt);
`$5$`/`$6$` use `crypt`. A hash this Python cannot check is refused when the file
is loaded, not at the first request. Checks are constant-time; a bcrypt/crypt check
that succeeded is remembered (by a SHA-256 of the credentials) so scrapes stay cheap.
Without TLS the password crosses the network in clear text: use both.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import stat
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..fileio import open_regular

log = logging.getLogger(__name__)

REALM = "irqtune"
_BCRYPT = ("$2a$", "$2b$", "$2y$")
_CRYPT = ("$5$", "$6$")


class AuthFileError(ValueError):
    """The basic-auth file cannot be used; the message names the file and line."""


def _crypt_module() -> Any | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt  # deprecated stdlib module (gone in 3.13): only for crypt(3) hashes

            return crypt
        except ImportError:
            return None


def _bcrypt_module() -> Any | None:
    try:
        import bcrypt  # optional dependency

        return bcrypt
    except ImportError:
        return None


def _checker(stored: str) -> Callable[[str], bool] | None:
    """A password check for one stored hash, or None when this Python cannot verify it."""
    if stored.startswith("sha256:"):
        digest = stored[len("sha256:") :].lower()
        return lambda password: hmac.compare_digest(hashlib.sha256(password.encode()).hexdigest(), digest)
    if stored.startswith(_BCRYPT) and (bcrypt := _bcrypt_module()) is not None:
        return lambda password: bcrypt.checkpw(password.encode(), stored.encode())
    if stored.startswith(_BCRYPT + _CRYPT) and (crypt := _crypt_module()) is not None:
        return lambda password: hmac.compare_digest(crypt.crypt(password, stored) or "", stored)
    return None


@dataclass
class BasicAuth:
    users: dict[str, Callable[[str], bool]]
    _verified: set[bytes] = field(default_factory=set)

    @classmethod
    def from_lines(cls, lines: Iterable[str], source: str = "<basic auth>") -> BasicAuth:
        users: dict[str, Callable[[str], bool]] = {}
        for number, line in enumerate(lines, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            user, colon, stored = text.partition(":")
            if not colon or not user or not stored:
                raise AuthFileError(f"{source}:{number}: expected USER:HASH")
            if stored.startswith("sha256:") and len(stored) != 7 + 64:
                raise AuthFileError(f"{source}:{number}: sha256: needs 64 hex digits")
            check = _checker(stored)
            if check is None:
                what = "bcrypt hashes need the Python bcrypt module or the crypt module (Python <= 3.12)"
                if not stored.startswith(_BCRYPT + _CRYPT):
                    what = "unknown hash; use $2b$ (bcrypt), $5$/$6$ (openssl passwd -5/-6) or sha256:HEX"
                raise AuthFileError(f"{source}:{number}: user {user!r}: {what}")
            users[user] = check
        if not users:
            raise AuthFileError(f"{source}: no USER:HASH line")
        return cls(users)

    @classmethod
    def from_file(cls, path: str) -> BasicAuth:
        try:
            with open_regular(path, "basic-auth") as f:  # a FIFO would hang the command; size capped
                mode = os.fstat(f.fileno()).st_mode
                lines = f.read().splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise AuthFileError(f"{path}: {getattr(err, 'strerror', None) or err}") from None
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            log.warning("%s is readable by other users; chmod 600 it", path)
        return cls.from_lines(lines, path)

    def check(self, header: str | None) -> bool:
        """True for an `Authorization: Basic ...` header with a known user and the right password."""
        if not header or header[:6].lower() != "basic ":
            return False
        try:
            user, colon, password = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        if not colon:
            return False
        token = hashlib.sha256(f"{len(user)}:{user}:{password}".encode()).digest()
        if token in self._verified:
            return True
        check = self.users.get(user)
        if check is None:  # spend the time a known user would, so timing does not tell users apart
            next(iter(self.users.values()))(password)
            return False
        ok = check(password)
        if ok:
            self._verified.add(token)
        return ok

    def wrap(self, app: Callable) -> Callable:
        """The WSGI app behind a basic-auth check."""

        def guarded(environ: dict, start_response: Callable) -> Iterable[bytes]:
            if self.check(environ.get("HTTP_AUTHORIZATION")):
                return app(environ, start_response)
            start_response(
                "401 Unauthorized",
                [
                    ("WWW-Authenticate", f'Basic realm="{REALM}", charset="UTF-8"'),
                    ("Content-Type", "text/plain; charset=utf-8"),
                ],
            )
            return [b"401 Unauthorized: irqtune metrics need basic auth\n"]

        return guarded
