"""TLS and basic auth from the web configuration file Prometheus exporters share (issue 12, part 1)."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ipaddress
import json
import os
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from monitor.config import load_config
from monitor.lab.demo import inventory_yaml
from monitor.runtime.service import Monitor
from tests.conftest import ScriptedSweeper, small_inventory

PASSWORD = "mật-khẩu-Ea-Kao-93"  # a test password: finding it anywhere else is a leak
PROMETHEUS = shutil.which("prometheus")


def _cert(tmp: Path, name: str, ca: tuple[Any, Any] | None = None, *, cn: str = "tslcd test") -> tuple[Any, Any]:
    """A key and certificate for 127.0.0.1 (signed by ``ca``, else a CA of its own), written as name.crt/.key."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + dt.timedelta(days=1)))
    if ca is None:
        builder = builder.issuer_name(subject).add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        signer = key
    else:
        builder = builder.issuer_name(ca[1].subject).add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        signer = ca[0]
    cert = builder.sign(signer, hashes.SHA256())
    (tmp / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / f"{name}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))
    return key, cert


def _setup(tmp: Path, *, tls: bool = True) -> tuple[Monitor, ssl.SSLContext]:
    ca = _cert(tmp, "ca", cn="tslcd test CA")
    _cert(tmp, "server", ca)
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    (tmp / "web.yml").write_text(
        ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS12\n" if tls else "")
        + f"basic_auth_users:\n  prometheus: {hashed}\n"
        "http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n", encoding="utf-8")
    inv = small_inventory()
    (tmp / "inv.yaml").write_text(inventory_yaml(inv.nodes), encoding="utf-8")
    (tmp / "config.yaml").write_text("province: Đắk Lắk\ninventory: inv.yaml\nweb:\n  listen: 127.0.0.1:0\n"
                                     "  config_file: web.yml\n", encoding="utf-8")
    cfg = load_config(tmp / "config.yaml")
    client = ssl.create_default_context(cafile=str(tmp / "ca.crt"))
    return Monitor(cfg, inv, ScriptedSweeper()), client  # type: ignore[arg-type]


def _get(url: str, ctx: ssl.SSLContext | None, auth: tuple[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    req = urllib.request.Request(url)
    if auth is not None:
        req.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


async def test_every_endpoint_but_healthz_needs_the_password_and_tls(tmp_path: Path, served: Any) -> None:
    mon, ctx = _setup(tmp_path)
    await mon.sweep_once()
    url = await served(mon)
    assert url.startswith("https://127.0.0.1:")
    for path in ("", "metrics", "api/status.json", "node/24133"):
        status, headers, body = await asyncio.to_thread(_get, url + path, ctx)
        assert status == 401 and headers.get("WWW-Authenticate") == 'Basic realm="tslcd"', path
        assert "127.0.0." not in body and "Đắk Lắk" not in body and "tslcd_node" not in body
        assert (await asyncio.to_thread(_get, url + path, ctx, ("prometheus", "wrong")))[0] == 401
        assert (await asyncio.to_thread(_get, url + path, ctx, ("nobody", PASSWORD)))[0] == 401
        status, headers, body = await asyncio.to_thread(_get, url + path, ctx, ("prometheus", PASSWORD))
        assert status == 200 and headers.get("X-Content-Type-Options") == "nosniff", path
        assert path not in ("metrics", "node/24133") or "127.0.0.3" in body  # addresses: to the authenticated
    status, _, body = await asyncio.to_thread(_get, url + "healthz", ctx)
    assert status == 200 and body.startswith("ok")
    # Plain HTTP to the TLS port fails cleanly, and the server goes on serving.
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        await asyncio.to_thread(_get, url.replace("https://", "http://") + "metrics", None, ("prometheus", PASSWORD))
    assert (await asyncio.to_thread(_get, url + "healthz", ctx))[0] == 200


async def test_basic_auth_without_tls_and_no_password_anywhere(tmp_path: Path, served: Any,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    mon, _ = _setup(tmp_path, tls=False)
    await mon.sweep_once()
    url = await served(mon)
    assert url.startswith("http://")
    assert (await asyncio.to_thread(_get, url + "metrics", None))[0] == 401
    status, _, body = await asyncio.to_thread(_get, url + "metrics", None, ("prometheus", PASSWORD))
    assert status == 200 and "tslcd_node_up" in body and PASSWORD not in body
    assert PASSWORD not in caplog.text and PASSWORD not in repr(mon.cfg.web_config)


async def test_the_certificate_is_reloaded_when_its_files_change(tmp_path: Path, served: Any) -> None:
    import exporters.web

    mon, ctx = _setup(tmp_path)
    url = await served(mon)
    netloc = urllib.parse.urlsplit(url)

    def served_cn() -> str:
        pem = ssl.get_server_certificate((netloc.hostname or "", netloc.port or 0))
        return str(x509.load_pem_x509_certificate(pem.encode()).subject.get_attributes_for_oid(
            NameOID.COMMON_NAME)[0].value)

    assert await asyncio.to_thread(served_cn) == "tslcd test"
    ca_key = serialization.load_pem_private_key((tmp_path / "ca.key").read_bytes(), None)
    ca = (ca_key, x509.load_pem_x509_certificate((tmp_path / "ca.crt").read_bytes()))
    _cert(tmp_path, "server", ca, cn="tslcd renewed")
    future = time.time() + 10  # a new mtime even on a filesystem with coarse timestamps
    for f in ("server.crt", "server.key"):
        os.utime(tmp_path / f, (future, future))
    deadline = time.monotonic() + 30
    while await asyncio.to_thread(served_cn) != "tslcd renewed":
        assert time.monotonic() < deadline, "the renewed certificate was not served within 30 s"
        await asyncio.sleep(0.5)
    assert (await asyncio.to_thread(_get, url + "metrics", ctx, ("prometheus", PASSWORD)))[0] == 200
    assert exporters.web.PUBLIC == frozenset({"/healthz"})


def test_web_config_errors_name_file_line_and_key(tmp_path: Path) -> None:
    from monitor.config import ConfigError, load_web_config

    (tmp_path / "web.yml").write_text("basic_auth_users:\n  alice: plaintext\ntls_server_config:\n"
                                      "  cert_file: a.crt\n  key_file: a.key\n"
                                      "  client_auth_type: RequireAnyClientCert\n"
                                      "  cipher_suites: [TLS_AES_128_GCM_SHA256]\n", encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_web_config(tmp_path / "web.yml")
    text = str(e.value)
    assert f"{tmp_path / 'web.yml'}:2: basic_auth_users.alice: expected a bcrypt hash" in text
    assert "plaintext" not in text  # a password written by mistake is not echoed
    assert f"{tmp_path / 'web.yml'}:6: tls_server_config.client_auth_type:" in text
    assert f"{tmp_path / 'web.yml'}:7: tls_server_config.cipher_suites: unknown key" in text


@pytest.fixture
def prometheus_bin() -> Iterator[str]:
    if PROMETHEUS is None:
        pytest.skip("prometheus missing: apt-get install prometheus (scripts/test.sh does, as root)")
    yield PROMETHEUS


async def test_a_real_prometheus_scrapes_over_tls_with_basic_auth(tmp_path: Path, served: Any,
                                                                  prometheus_bin: str) -> None:
    import socket

    mon, _ = _setup(tmp_path)
    await mon.sweep_once()
    url = await served(mon)
    target = urllib.parse.urlsplit(url).netloc
    (tmp_path / "password").write_text(PASSWORD, encoding="utf-8")
    (tmp_path / "prometheus.yml").write_text(json.dumps({
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [{"job_name": "tslcd", "scheme": "https", "static_configs": [{"targets": [target]}],
                            "tls_config": {"ca_file": str(tmp_path / "ca.crt")},
                            "basic_auth": {"username": "prometheus", "password_file": str(tmp_path / "password")}}],
    }), encoding="utf-8")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [prometheus_bin, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
    proc = await asyncio.to_thread(subprocess.Popen, argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        query = f"http://127.0.0.1:{port}/api/v1/query?query=" + urllib.parse.quote('tslcd_node_up{code="24133"}')
        result: list[Any] = []
        while not result:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "Prometheus got no tslcd series over TLS within 60 s"
            await asyncio.sleep(0.5)
            try:
                status, _, body = await asyncio.to_thread(_get, query, None)
            except (urllib.error.URLError, ConnectionError):
                continue
            result = json.loads(body)["data"]["result"] if status == 200 else []
        assert result[0]["value"][1] == "1"
        up = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/api/v1/query?query=up", None)
        assert json.loads(up[2])["data"]["result"][0]["value"][1] == "1"
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 30)


@pytest.mark.parametrize(("header", "gzip"), [
    ("gzip", True), ("gzip, deflate, br", True), ("br;q=1.0, gzip;q=0.5", True), ("*", True), ("x-gzip", True),
    ("gzip;q=0", False), ("gzip; q=0.0, *;q=1", False), ("identity", False), ("", False), ("*;q=0", False),
])
def test_gzip_only_when_accepted(header: str, gzip: bool) -> None:
    from exporters.web import accepts_gzip

    assert accepts_gzip(header) is gzip


async def test_pages_carry_security_headers_and_gzip_q0_gets_plain_text(tmp_path: Path, served: Any) -> None:
    from tests.test_exporter import make

    mon = make(tmp_path, ScriptedSweeper())
    await mon.sweep_once()
    url = await served(mon)

    def get(path: str, encoding: str) -> tuple[dict[str, str], bytes]:
        req = urllib.request.Request(url + path, headers={"Accept-Encoding": encoding})
        with urllib.request.urlopen(req, timeout=10) as r:
            return dict(r.headers), r.read()

    headers, _ = await asyncio.to_thread(get, "", "identity")
    assert headers["X-Content-Type-Options"] == "nosniff" and "default-src 'none'" in headers[
        "Content-Security-Policy"] and "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    headers, body = await asyncio.to_thread(get, "metrics", "gzip;q=0")
    assert "Content-Encoding" not in headers and body.startswith(b"# HELP")
    headers, body = await asyncio.to_thread(get, "metrics", "gzip")
    assert headers["Content-Encoding"] == "gzip" and body[:2] == b"\x1f\x8b"
