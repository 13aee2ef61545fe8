"""docs/install.md as a person would follow it: its `sh` blocks run in a temporary prefix (issue 12, part 3),
then the installed tslcd serves over TLS behind the password the blocks set up."""

from __future__ import annotations

import base64
import os
import re
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "install.md"


def blocks(kind: str) -> list[str]:
    return re.findall(rf"^```{kind}\n(.*?)^```$", DOC.read_text(encoding="utf-8"), flags=re.S | re.M)


def test_the_doc_marks_what_it_does_not_run() -> None:
    """The systemd steps are the only ones a test cannot run (they need systemd as PID 1); all else is `sh`."""
    assert len(blocks("sh")) >= 4
    assert all("systemctl" not in b and "useradd" not in b for b in blocks("sh"))
    assert any("systemctl enable --now tslcd" in b for b in blocks("systemd"))


@pytest.mark.skipif(os.geteuid() != 0, reason="tslcd run needs raw ICMP sockets: root or CAP_NET_RAW (CI is root)")
@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl missing")
def test_the_install_guide_gives_a_running_authenticated_service(tmp_path: Path) -> None:
    env = {**os.environ, "PREFIX": str(tmp_path / "opt"), "ETC": str(tmp_path / "etc"),
           "STATE": str(tmp_path / "state"), "SRC": str(ROOT), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("VIRTUAL_ENV", None)
    script = "set -euo pipefail\n" + "\n".join(blocks("sh"))
    r = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "tslcd installed in" in r.stdout and "OK: " in r.stdout
    etc = tmp_path / "etc"
    assert (tmp_path / "opt" / "share" / "tslcd-monitor" / "deploy" / "systemd" / "tslcd.service").is_file()
    # What systemd would start; the port is this test's own.
    config = (etc / "config.yaml").read_text(encoding="utf-8").replace("listen: 127.0.0.1:9750", "listen: 127.0.0.1:0")
    (etc / "config.yaml").write_text(config, encoding="utf-8")
    log = tmp_path / "tslcd.log"
    with log.open("w") as out:
        proc = subprocess.Popen([str(tmp_path / "opt" / "bin" / "tslcd"), "run", "--config", str(etc / "config.yaml")],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        url = None
        while url is None:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            m = re.search(r"status page (https://\S+/)", log.read_text())
            url = m.group(1) if m else None
            time.sleep(0.2)
        ctx = ssl.create_default_context(cafile=str(etc / "tslcd.crt"))
        password = (etc / "prometheus.password").read_text().strip()
        auth = "Basic " + base64.b64encode(f"prometheus:{password}".encode()).decode()
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(url + "metrics", context=ctx, timeout=10)
        assert e.value.code == 401
        req = urllib.request.Request(url + "metrics", headers={"Authorization": auth})
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            body = resp.read().decode()
        assert 'tslcd_communes{area="",province="Đắk Lắk"} 102.0' in body
        assert password not in log.read_text()
    finally:
        proc.terminate()
        proc.wait(30)
