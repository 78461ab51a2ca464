"""HTTP basic auth for the metrics endpoint, from a file of hashed passwords.

prometheus-client has no server-side authentication, so `server.serve` wraps the
metrics WSGI app in `BasicAuth.wrap`: a request without valid credentials gets 401
and a `WWW-Authenticate: Basic realm="irqtune"` challenge. The file has one
`USER:HASH` per line (blank lines and `#` comments ignored; a user named twice is an
error), HASH one of:

    $2b$..., $2y$..., $2a$...   bcrypt: `htpasswd -nbB USER PASS` (apache2-utils), or
                                python3 -c 'import bcrypt; print(bcrypt.hashpw(b"PASS", bcrypt.gensalt()).decode())'
    $5$... / $6$...             SHA-256/512-crypt (salted): `openssl passwd -5 PASS`
    sha256:HEX                  plain SHA-256 of the password: `printf %s PASS | sha256sum`
                                (unsalted: only for long random passwords)

bcrypt uses the Python `bcrypt` module when installed, else the system's libcrypt
(libxcrypt's crypt_rn through ctypes, which lets go of the GIL while it hashes, or
the standard `crypt` module on Python <= 3.12); `$5$`/`$6$` use libcrypt too. A hash
this Python cannot check is refused when the file is loaded, not at the first request.

Checks are constant-time. An unknown user is checked against the hash of the user whose
scheme costs the median (so it takes as long as that user's failed check), not the first
user's. A check that succeeded is remembered for `CACHE_TTL` seconds (keyed by a keyed
hash of user and password), so a scraper does not pay bcrypt every scrape. The slow
checks (bcrypt, SHA-crypt) are capped: one at a time per client address and
`slow_slots` at once in all (half the CPUs); a request over the cap gets 429 at once,
so a flood of wrong passwords cannot starve the scrapes. Mixing schemes lets a timing
observer tell a fast-hash user from an unknown one: use one scheme for every user.
Without TLS the password crosses the network in clear text: use both.
"""

from __future__ import annotations

import base64
import binascii
import ctypes
import functools
import hashlib
import hmac
import logging
import os
import re
import stat
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..fileio import open_regular

log = logging.getLogger(__name__)

REALM = "irqtune"
CACHE_TTL = 300.0  # seconds a successful check is remembered
CACHE_SIZE = 256  # credentials remembered at most; the oldest is forgotten first
SLOW_WAIT = 1.0  # seconds a slow check waits for a free slot before the request gets 429
FAST = 1e-4  # estimated seconds under which a check is not capped (sha256:)
_BCRYPT = ("$2a$", "$2b$", "$2y$")
_CRYPT = ("$5$", "$6$")
_PROBE = {  # the cheapest setting of each scheme: does this libcrypt know it?
    **{prefix: prefix + "04$" + "." * 22 for prefix in _BCRYPT},
    **{prefix: prefix + "rounds=1000$irqtune$" for prefix in _CRYPT},
}
_CRYPT_DATA = 32768  # sizeof(struct crypt_data) in libxcrypt


class AuthFileError(ValueError):
    """The basic-auth file cannot be used; the message names the file and line."""


class AuthBusy(Exception):
    """Too many slow password checks in progress (for this client or in all): answer 429."""


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


@functools.cache
def _crypt_function() -> Callable[[str, str], str | None] | None:
    """crypt(3) as (password, setting) -> hash, None when the scheme is unknown: libxcrypt's crypt_rn through
    ctypes when there is one (ctypes lets go of the GIL for the call, so a check does not stall the scrapes
    for its whole 0.1-0.5 s as the crypt module does), else the crypt module, else None."""
    try:
        crypt_rn = ctypes.CDLL("libcrypt.so.1").crypt_rn
    except (OSError, AttributeError):
        return _module_crypt(module) if (module := _crypt_module()) is not None else None
    crypt_rn.restype = ctypes.c_char_p
    crypt_rn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]

    def crypt(password: str, setting: str) -> str | None:
        result = crypt_rn(password.encode(), setting.encode(), ctypes.create_string_buffer(_CRYPT_DATA), _CRYPT_DATA)
        return result.decode("ascii", "replace") if result else None

    return crypt


def _module_crypt(module: Any) -> Callable[[str, str], str | None]:
    """The crypt module's crypt (it holds the GIL while it hashes), None for an unknown scheme."""

    def crypt(password: str, setting: str) -> str | None:
        try:
            return module.crypt(password, setting)
        except OSError:  # Python >= 3.9 raises where crypt(3) fails
            return None

    return crypt


def _crypt_checker(stored: str) -> Callable[[str], bool] | None:
    crypt = _crypt_function()
    prefix = next((p for p in _PROBE if stored.startswith(p)), None)
    if crypt is None or prefix is None or not (crypt("", _PROBE[prefix]) or "*").startswith(prefix):
        return None  # this libcrypt does not know the scheme (it answers None, or "*0" through the module)
    expected = stored.encode()
    return lambda password: (
        "\0" not in password and hmac.compare_digest((crypt(password, stored) or "").encode(), expected)
    )


def _checker(stored: str) -> Callable[[str], bool] | None:
    """A password check for one stored hash, or None when this Python cannot verify it."""
    if stored.startswith("sha256:"):
        digest = stored[len("sha256:") :].lower().encode()
        return lambda password: hmac.compare_digest(hashlib.sha256(password.encode()).hexdigest().encode(), digest)
    if stored.startswith(_BCRYPT) and (bcrypt := _bcrypt_module()) is not None:
        return functools.partial(_bcrypt_check, bcrypt, stored.encode())
    if stored.startswith(_BCRYPT + _CRYPT):
        return _crypt_checker(stored)
    return None


def _bcrypt_check(bcrypt: Any, stored: bytes, password: str) -> bool:
    """The bcrypt module's check (it lets go of the GIL while it hashes); a malformed hash never matches."""
    try:
        return "\0" not in password and bcrypt.checkpw(password.encode(), stored)
    except ValueError:
        return False


def _cost(stored: str) -> float:
    """Estimated seconds of one check: ranks the users' schemes, and caps the slow ones."""
    if stored.startswith(_BCRYPT):
        return 2 ** int(stored[4:6]) * 1e-4 if stored[4:6].isdigit() else 0.1
    if stored.startswith(_CRYPT):
        rounds = re.match(r"\$[56]\$rounds=(\d+)\$", stored)
        return (int(rounds.group(1)) if rounds else 5000) * (3e-7 if stored.startswith("$5$") else 4e-7)
    return 1e-6


@dataclass(frozen=True, slots=True)
class StoredHash:
    """One user's hash: its check and what that check costs."""

    check: Callable[[str], bool]
    cost: float

    @property
    def slow(self) -> bool:
        return self.cost > FAST


def _slow_slots() -> int:
    return max(1, (os.cpu_count() or 2) // 2)


def _credentials(header: str | None) -> tuple[str, str] | None:
    """(user, password) from an `Authorization: Basic ...` header, or None."""
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        user, colon, password = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if colon else None


class BasicAuth:
    """The users of one auth file, the cache of recent successful checks and the cap on slow checks."""

    def __init__(self, users: dict[str, StoredHash], slow_slots: int | None = None) -> None:
        if not users:
            raise ValueError("BasicAuth needs at least one user")
        self.users = users
        ranked = sorted(users.values(), key=lambda h: h.cost)
        self._median = ranked[len(ranked) // 2]  # unknown users pay for this one's check
        self._key = os.urandom(32)
        self._lock = threading.Lock()
        self._verified: dict[bytes, float] = {}  # keyed hash of user and password -> when it expires
        self._checking: set[str] = set()  # client addresses with a slow check running or waiting
        self._slots = threading.BoundedSemaphore(slow_slots or _slow_slots())

    @classmethod
    def from_lines(cls, lines: Iterable[str], source: str = "<basic auth>") -> BasicAuth:
        users: dict[str, StoredHash] = {}
        where: dict[str, int] = {}
        for number, line in enumerate(lines, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            user, colon, stored = text.partition(":")
            if not colon or not user or not stored:
                raise AuthFileError(f"{source}:{number}: expected USER:HASH")
            if user in where:
                raise AuthFileError(f"{source}:{number}: user {user!r} is already on line {where[user]}")
            if stored.startswith("sha256:") and len(stored) != 7 + 64:
                raise AuthFileError(f"{source}:{number}: sha256: needs 64 hex digits")
            check = _checker(stored)
            if check is None:
                what = "bcrypt hashes need the Python bcrypt module or a libcrypt that knows bcrypt"
                if stored.startswith(_CRYPT):
                    what = "SHA-crypt hashes need libcrypt (libxcrypt) or the crypt module (Python <= 3.12)"
                elif not stored.startswith(_BCRYPT):
                    what = "unknown hash; use $2b$ (bcrypt), $5$/$6$ (openssl passwd -5/-6) or sha256:HEX"
                raise AuthFileError(f"{source}:{number}: user {user!r}: {what}")
            users[user], where[user] = StoredHash(check, _cost(stored)), number
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

    def check(self, header: str | None, client: str = "") -> bool:
        """True for an `Authorization: Basic ...` header with a known user and the right password. Raises
        AuthBusy when the check would be a slow one and `client` (or everyone) already has too many."""
        credentials = _credentials(header)
        if credentials is None:
            return False
        user, password = credentials
        token = hmac.digest(self._key, f"{len(user)}:{user}:{password}".encode(), "sha256")
        if self._remembered(token):
            return True
        known = self.users.get(user)
        ok = self._verify(known or self._median, password, client) and known is not None
        if ok:
            self._remember(token)
        return ok

    def _verify(self, stored: StoredHash, password: str, client: str) -> bool:
        if not stored.slow:
            return stored.check(password)
        with self._slot(client):
            return stored.check(password)

    @contextmanager
    def _slot(self, client: str) -> Iterator[None]:
        """One slow check at a time per client, `slow_slots` in all; over that, AuthBusy."""
        with self._lock:
            if client in self._checking:
                raise AuthBusy(client)
            self._checking.add(client)
        try:
            if not self._slots.acquire(timeout=SLOW_WAIT):
                raise AuthBusy(client)
            try:
                yield
            finally:
                self._slots.release()
        finally:
            with self._lock:
                self._checking.discard(client)

    def _remembered(self, token: bytes) -> bool:
        with self._lock:
            expires = self._verified.get(token)
            if expires is not None and expires <= time.monotonic():
                del self._verified[token]
                expires = None
            return expires is not None

    def _remember(self, token: bytes) -> None:
        with self._lock:
            self._verified.pop(token, None)
            self._verified[token] = time.monotonic() + CACHE_TTL
            while len(self._verified) > CACHE_SIZE:
                del self._verified[next(iter(self._verified))]

    def wrap(self, app: Callable) -> Callable:
        """The WSGI app behind a basic-auth check."""

        def guarded(environ: dict, start_response: Callable) -> Iterable[bytes]:
            try:
                ok = self.check(environ.get("HTTP_AUTHORIZATION"), environ.get("REMOTE_ADDR", ""))
            except AuthBusy:
                start_response(
                    "429 Too Many Requests", [("Retry-After", "1"), ("Content-Type", "text/plain; charset=utf-8")]
                )
                return [b"429 Too Many Requests: too many password checks in progress; try again\n"]
            if ok:
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
