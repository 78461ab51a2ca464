"""Basic auth for the exporter: the auth file, timing of unknown users, the cache, and the cap on slow checks."""

from __future__ import annotations

import base64
import hashlib
import statistics
import threading
import time
import urllib.error
import urllib.request
import warnings

import pytest
from conftest import fixture_text, make_root, require

from irqtune.export import AuthFileError, BasicAuth, IrqtuneCollector, serve
from irqtune.host import Host

LAPTOP = {
    "proc/interrupts": "interrupts-node_exporter-x86-laptop-4cpu-IR-legacy.txt",
    "proc/softirqs": "softirqs-node_exporter.txt",
}


def header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def crypt_hash(password: str, setting: str) -> str:
    """A crypt(3) hash from the crypt module (Python <= 3.12), independent of the code under test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt

            stored = crypt.crypt(password, setting)
        except (ImportError, OSError):
            stored = None
    require(bool(stored) and stored.startswith(setting[:3]), f"no crypt(3) for {setting[:3]} in this Python")
    assert stored is not None
    return stored


def bcrypt_hash(password: str, cost: int) -> str:
    """A bcrypt hash: from the bcrypt module when installed, else from the crypt module."""
    try:
        import bcrypt

        return bcrypt.hashpw(password.encode(), bcrypt.gensalt(cost)).decode()
    except ImportError:
        return crypt_hash(password, f"$2b${cost:02d}$" + "abcdefghijklmnopqrstuv")


def sha256_line(user: str, password: str) -> str:
    return f"{user}:sha256:{hashlib.sha256(password.encode()).hexdigest()}"


def fastest(check, tries: int = 3) -> float:
    """The shortest of a few timings of `check()`: the least disturbed by other processes."""
    times = []
    for _ in range(tries):
        started = time.perf_counter()
        check()
        times.append(time.perf_counter() - started)
    return min(times)


# -- the auth file ------------------------------------------------------------------------------------


def test_a_user_named_twice_is_refused_with_file_and_line():
    lines = ["# scrapers", sha256_line("prom", "a"), "", sha256_line("grafana", "b"), sha256_line("prom", "c")]
    with pytest.raises(AuthFileError, match=r"^users:5: user 'prom' is already on line 2$"):
        BasicAuth.from_lines(lines, "users")


def test_hashes_that_cannot_be_checked_are_refused_at_load():
    with pytest.raises(AuthFileError, match=r"users:1: user 'x': unknown hash"):
        BasicAuth.from_lines(["x:$1$md5$nope"], "users")
    with pytest.raises(AuthFileError, match="users:1: sha256: needs 64 hex digits"):
        BasicAuth.from_lines(["x:sha256:abc"], "users")


@pytest.mark.parametrize("libxcrypt", [True, False], ids=["crypt_rn", "crypt-module"])
def test_sha_crypt_through_libxcrypt_or_the_crypt_module(monkeypatch, libxcrypt):
    from irqtune.export import auth as auth_module

    stored = crypt_hash("pw", "$5$rounds=1000$pepper")
    if not libxcrypt:
        monkeypatch.setattr(auth_module.ctypes, "CDLL", lambda name: (_ for _ in ()).throw(OSError(name)))
    auth_module._crypt_function.cache_clear()
    try:
        auth = BasicAuth.from_lines([f"ops:{stored}"])
        assert auth.check(header("ops", "pw")) and not auth.check(header("ops", "pw\0"))
        assert not auth.check(header("ops", "wrong"))
    finally:
        auth_module._crypt_function.cache_clear()


# -- timing: an unknown user costs what a known one does ---------------------------------------------


def test_unknown_users_cost_the_median_users_check_not_the_first_users():
    """The first user has a fast hash and the others a slow one: an unknown user must cost a slow check, or
    its quick 401 tells it apart from the (slow) known users."""
    slow = "$5$rounds=30000$"
    lines = [sha256_line("first", "pw0"), f"ops:{crypt_hash('pw1', slow + 'salt1')}",
             f"prom:{crypt_hash('pw2', slow + 'salt2')}"]  # fmt: skip
    auth = BasicAuth.from_lines(lines)
    known = fastest(lambda: auth.check(header("ops", "wrong")))
    unknown = fastest(lambda: auth.check(header("nobody", "wrong")))
    print(f"\nfailed check of a known SHA-crypt user {known * 1000:.1f} ms, of an unknown user {unknown * 1000:.1f} ms")
    assert unknown >= 0.5 * known, (unknown, known)
    assert not auth.check(header("nobody", "pw1")) and not auth.check(header("nobody", "pw2"))
    assert auth.check(header("ops", "pw1")) and auth.check(header("first", "pw0"))


# -- the cache and the cap -------------------------------------------------------------------------------


class Gate:
    """A slow scheme whose checks block until released; counts them."""

    def __init__(self) -> None:
        self.open, self.calls, self.started = threading.Event(), 0, threading.Semaphore(0)

    def __call__(self, password: str) -> bool:
        self.calls += 1
        self.started.release()
        assert self.open.wait(10)
        return password == "right"


def gated_auth(slots: int) -> tuple[BasicAuth, Gate]:
    from irqtune.export.auth import StoredHash

    gate = Gate()
    return BasicAuth({"ops": StoredHash(gate, cost=0.2)}, slow_slots=slots), gate


def test_successful_checks_are_remembered_for_a_while(monkeypatch):
    from irqtune.export import auth as auth_module

    auth, gate = gated_auth(slots=1)
    gate.open.set()
    assert auth.check(header("ops", "right")) and auth.check(header("ops", "right"))
    assert gate.calls == 1
    assert not auth.check(header("ops", "wrong")) and not auth.check(header("ops", "wrong"))
    assert gate.calls == 3  # failures are never remembered
    later = time.monotonic() + auth_module.CACHE_TTL + 1
    monkeypatch.setattr(auth_module.time, "monotonic", lambda: later)
    assert auth.check(header("ops", "right"))
    assert gate.calls == 4


def test_slow_checks_are_capped_per_client_and_in_all(monkeypatch):
    from irqtune.export import auth as auth_module
    from irqtune.export.auth import AuthBusy

    monkeypatch.setattr(auth_module, "SLOW_WAIT", 0.1)
    auth, gate = gated_auth(slots=2)
    results: list[bool] = []
    running = [threading.Thread(target=lambda c=c: results.append(auth.check(header("ops", "wrong"), c)))
               for c in ("10.0.0.1", "10.0.0.2")]  # fmt: skip
    for thread in running:
        thread.start()
        assert gate.started.acquire(timeout=5)
    with pytest.raises(AuthBusy):  # this client already has a check running: no waiting
        auth.check(header("ops", "right"), "10.0.0.1")
    started = time.monotonic()
    with pytest.raises(AuthBusy):  # both slots taken: a short wait, then busy
        auth.check(header("ops", "right"), "10.0.0.3")
    assert time.monotonic() - started < 5
    gate.open.set()
    for thread in running:
        thread.join(timeout=5)
    assert results == [False, False]
    assert auth.check(header("ops", "right"), "10.0.0.1")  # slots free again


# -- over HTTP: a flood of wrong bcrypt passwords ----------------------------------------------------------


def get_status(url: str, user: str, password: str) -> int:
    request = urllib.request.Request(url, headers={"Authorization": header(user, password)})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


@pytest.mark.slow
def test_a_flood_of_wrong_bcrypt_passwords_does_not_starve_valid_scrapes(tmp_path):
    root = make_root(tmp_path, {rel: fixture_text(name) for rel, name in LAPTOP.items()})
    auth = BasicAuth.from_lines([f"prom:{bcrypt_hash('s3cret', 12)}"])
    server = serve(IrqtuneCollector(Host(str(root))), "127.0.0.1:0", auth=auth)
    stop = threading.Event()
    answers: list[int] = []

    def flood() -> None:
        while not stop.is_set():
            answers.append(get_status(server.url, "prom", "guess"))

    try:
        assert get_status(server.url, "prom", "s3cret") == 200  # the scraper's first, uncontended check
        quiet = fastest(lambda: get_status(server.url, "prom", "s3cret"))
        flooders = [threading.Thread(target=flood) for _ in range(4)]
        for thread in flooders:
            thread.start()
        time.sleep(1.0)
        latencies = []
        for _ in range(10):
            started = time.perf_counter()
            assert get_status(server.url, "prom", "s3cret") == 200
            latencies.append(time.perf_counter() - started)
        stop.set()
        for thread in flooders:
            thread.join(timeout=60)
    finally:
        stop.set()
        server.close()
    median = statistics.median(latencies)
    print(f"\nvalid scrape alone {quiet * 1000:.0f} ms; during a flood of {len(answers)} wrong bcrypt passwords "
          f"({answers.count(401)} x 401, {answers.count(429)} x 429): median {median * 1000:.0f} ms, "
          f"max {max(latencies) * 1000:.0f} ms")  # fmt: skip
    assert set(answers) <= {401, 429}
    assert median <= 0.3
    assert max(latencies) <= 2.0
