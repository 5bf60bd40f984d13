"""Kraken private REST auth: the documented signature vectors, nonces that only go up (across
restarts and clock steps, never behind the wall clock), and API keys that are never shown."""

from __future__ import annotations

import base64
import os
import subprocess
import sys

import pytest

from mm_core.adapters.kraken.auth import NonceError, NonceSource, api_sign, encode_body
from mm_core.adapters.kraken.credentials import (ApiCredentials, CredentialsError, Secret, check_key_file,
                                                 load_credentials, windows_acl_problem)
from mm_core.adapters.kraken.rest import KrakenApiError, parse_response, prepare_private
from mm_core.trading.records import OutcomeKind

DOC_SECRET = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
DOC_BODY = "nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25"
DOC_SIGN = "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="


def test_signature_matches_krakens_documented_vector() -> None:
    assert api_sign("/0/private/AddOrder", 1616492376594, DOC_BODY, base64.b64decode(DOC_SECRET)) == DOC_SIGN


def test_signature_matches_the_vector_in_krakens_sdk() -> None:
    # krakenfx/kraken-api-sdk rust/src/auth/signer.rs: 32 x 0x01 secret, ns-scale nonce, Balance
    got = api_sign("/0/private/Balance", 1_700_000_000_000_000_000, "nonce=1700000000000000000", bytes([1] * 32))
    assert got == "6i7+cpXVLDDnDOekgsRcgFQhkYFyPDSSxhSVA8OrA6vjziXcy2K1DP3n7f9B/Kgni71WjBSQusZKxduRsdF20Q=="


def test_prepared_request_signs_its_own_body_and_hides_headers() -> None:
    creds = ApiCredentials(Secret("public-key-abc"), Secret(DOC_SECRET), "test")
    req = prepare_private(creds, "/0/private/AddOrder", {"ordertype": "limit", "pair": "XBTUSD", "price": 37500,
                                                         "type": "buy", "volume": "1.25"}, 1616492376594)
    assert req.body == DOC_BODY  # nonce first, then the params in order
    assert req.headers["API-Sign"] == DOC_SIGN
    assert req.headers["API-Key"] == "public-key-abc"
    assert "public-key-abc" not in repr(req) and DOC_SIGN not in repr(req)
    assert encode_body({"a": True, "b": None, "c": 1}) == "a=true&c=1"


def test_rest_errors_map_to_outcome_kinds() -> None:
    with pytest.raises(KrakenApiError) as e:
        parse_response("/0/private/GetWebSocketsToken", 200, b'{"error":["EAPI:Invalid nonce"]}')
    assert e.value.kind is OutcomeKind.AUTH and "Invalid nonce" in str(e.value)
    assert parse_response("/x", 200, b'{"error":[],"result":{"token":"t"}}') == {"token": "t"}


# ----------------------------------------------------------------------------- nonces


class FakeClock:
    def __init__(self, ns: int) -> None:
        self.ns = ns

    def __call__(self) -> int:
        return self.ns


def test_nonces_strictly_increase_within_one_tick_and_when_the_clock_steps_back() -> None:
    clock = FakeClock(1_700_000_000_000 * 1_000_000)
    src = NonceSource(clock_ns=clock)
    a, b, c = src.next(), src.next(), src.next()
    assert a == 1_700_000_000_000 and b == a + 1 and c == a + 2  # same ms: counter
    clock.ns -= 5_000 * 1_000_000  # NTP steps the clock back 5 s
    assert src.next() == c + 1
    clock.ns += 60_000 * 1_000_000
    assert src.next() == clock.ns // 1_000_000  # back on the wall clock, never behind it


def test_nonces_survive_a_restart_and_are_never_behind_the_wall_clock(tmp_path) -> None:
    path = tmp_path / "nonce"
    clock = FakeClock(1_700_000_000_000 * 1_000_000)
    first = NonceSource(path, clock_ns=clock)
    issued = [first.next() for _ in range(2000)]  # 2000 in the same millisecond: runs ahead
    assert issued == sorted(set(issued))
    writes = first.writes
    assert writes <= 3, "the mark is reserved ahead: not one disk write per nonce"
    # "kill -9": a new process starts at the same wall-clock instant
    second = NonceSource(path, clock_ns=clock)
    n = second.next()
    assert n > issued[-1]
    assert n >= clock.ns // 1_000_000
    assert not (tmp_path / "nonce.tmp").exists()


def test_nonce_file_unit_change_from_us_to_ms_is_refused(tmp_path) -> None:
    path = tmp_path / "nonce"
    NonceSource(path, unit="us").next()
    with pytest.raises(NonceError, match="microsecond"):
        NonceSource(path, unit="ms")
    ms_path = tmp_path / "nonce-ms"
    clock = FakeClock(1_700_000_000_000 * 1_000_000)
    last = NonceSource(ms_path, clock_ns=clock).next()
    assert NonceSource(ms_path, unit="us", clock_ns=clock).next() > last * 1000


def test_a_damaged_nonce_file_is_a_clear_error(tmp_path) -> None:
    path = tmp_path / "nonce"
    path.write_text("12ab")
    with pytest.raises(NonceError, match="damaged"):
        NonceSource(path)


# ----------------------------------------------------------------------------- keys

KEY = "K" * 56
SECRET = base64.b64encode(b"s3cr3t-bytes-" * 5).decode()


def test_secret_never_shows_itself() -> None:
    s = Secret("hunter2")
    assert "hunter2" not in repr(s) + str(s) + f"{s}" + f"{s!r}"
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(s)
    creds = ApiCredentials(Secret(KEY), Secret(SECRET), "env")
    assert KEY not in repr(creds) and SECRET not in repr(creds) and KEY not in str(creds)


def test_credentials_from_the_environment() -> None:
    creds = load_credentials(env={"MM_KRAKEN_API_KEY": KEY, "MM_KRAKEN_API_SECRET": SECRET})
    assert creds.key.reveal() == KEY and creds.secret_bytes() == base64.b64decode(SECRET)
    with pytest.raises(CredentialsError, match="MM_KRAKEN_API_SECRET is not set"):
        load_credentials(env={"MM_KRAKEN_API_KEY": KEY})
    with pytest.raises(CredentialsError, match="no Kraken API key"):
        load_credentials(env={})


def test_a_bad_secret_is_refused_without_echoing_it() -> None:
    with pytest.raises(CredentialsError) as e:
        load_credentials(env={"MM_KRAKEN_API_KEY": KEY, "MM_KRAKEN_API_SECRET": "not*base64!"})
    assert "not*base64!" not in str(e.value) and "not valid base64" in str(e.value)


def _key_file(tmp_path, mode: int, text: str | None = None):
    path = tmp_path / "kraken.toml"
    path.write_text(text if text is not None else f'api_key = "{KEY}"\napi_secret = "{SECRET}"\n')
    os.chmod(path, mode)
    return path


@pytest.mark.skipif(sys.platform.startswith("win"), reason="POSIX permission bits")
def test_key_file_readable_by_others_is_refused_with_the_fix(tmp_path) -> None:
    path = _key_file(tmp_path, 0o644)
    with pytest.raises(CredentialsError) as e:
        load_credentials(path, env={})
    assert "readable by others (mode 0644)" in str(e.value) and "chmod 600" in str(e.value)
    os.chmod(path, 0o640)
    with pytest.raises(CredentialsError, match="0640"):
        load_credentials(path, env={})
    os.chmod(path, 0o600)
    creds = load_credentials(path, env={})
    assert creds.key.reveal() == KEY and str(path) in creds.source
    os.chmod(path, 0o400)
    assert load_credentials(None, env={"MM_KRAKEN_KEY_FILE": str(path)}).secret.reveal() == SECRET


@pytest.mark.skipif(sys.platform.startswith("win"), reason="POSIX permission bits")
def test_key_file_errors_name_the_file_not_the_content(tmp_path) -> None:
    path = _key_file(tmp_path, 0o600, f'api_key = "{KEY}"\napi_secret = {SECRET}\n')  # unquoted: not TOML
    with pytest.raises(CredentialsError) as e:
        load_credentials(path, env={})
    assert SECRET not in str(e.value) and "not valid TOML" in str(e.value)
    with pytest.raises(CredentialsError, match="does not exist"):
        load_credentials(tmp_path / "missing.toml", env={})


class FakeIcacls:
    def __init__(self, stdout: str, rc: int = 0, exc: Exception | None = None) -> None:
        self.stdout, self.rc, self.exc = stdout, rc, exc

    def __call__(self, args, **kw):
        if self.exc:
            raise self.exc
        return subprocess.CompletedProcess(args, self.rc, self.stdout, "")


def test_windows_acl_check_refuses_broad_groups(tmp_path) -> None:
    path = _key_file(tmp_path, 0o600)
    owner_only = f"{path} DESKTOP-1\\alice:(R)\n\nSuccessfully processed 1 files; Failed processing 0 files\n"
    assert windows_acl_problem(path, FakeIcacls(owner_only)) is None
    check_key_file(path, acl_runner=FakeIcacls(owner_only), platform="win32")
    inherited = f"{path} BUILTIN\\Users:(I)(RX)\n    DESKTOP-1\\alice:(I)(F)\n"
    with pytest.raises(CredentialsError, match="broad group.*icacls"):
        check_key_file(path, acl_runner=FakeIcacls(inherited), platform="win32")
    with pytest.raises(CredentialsError, match="Everyone"):
        check_key_file(path, acl_runner=FakeIcacls(f"{path} Everyone:(R)\n"), platform="win32")
    with pytest.raises(CredentialsError, match="cannot check"):
        check_key_file(path, acl_runner=FakeIcacls("", exc=FileNotFoundError()), platform="win32")
