"""Benchmark: what pysnmp's USM costs per new agent SNMP engine, stock and as the poller runs it.

    .venv/bin/python bench/usm_engines.py [--engines 20000] [--stock-max 4000] [--budget-s 300]

In a real network every commune router is its own SNMP engine. At the first v3 exchange
with an engine, pysnmp's USM copies the user's usmUserTable row for it (keys localized to
that engine) and, because the table changed, rebuilds its (engine ID, security name) ->
user map by walking every row at the next request. This script replays, with no network,
exactly the calls pysnmp's USM makes at the first contact with each of ``--engines``
engines (two lookups that miss, the copy, then the lookups of the answer), on:

- ``pysnmp``: pysnmp's own SnmpUSMSecurityModel (stopped at ``--stock-max`` engines or
  ``--budget-s`` seconds of CPU: it is quadratic), and
- ``tslcd``: monitor.probes.snmp.pysnmp_patches.PeerKeysUsm, which keeps the per-engine entries in dicts.

It prints the CPU per new engine at each tenth of the run and the total.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pysnmp.entity import config as pysnmp_config  # noqa: E402
from pysnmp.hlapi.v3arch.asyncio import SnmpEngine  # noqa: E402
from pysnmp.proto import rfc1902  # noqa: E402
from pysnmp.proto.secmod.rfc3414.service import SnmpUSMSecurityModel  # noqa: E402
from pysnmp.smi.error import NoSuchInstanceError  # noqa: E402

from monitor.probes.snmp.pysnmp_patches import PeerKeysUsm  # noqa: E402

M = "_SnmpUSMSecurityModel__"


def run(usm: SnmpUSMSecurityModel, engines: int, budget_s: float) -> tuple[int, float, list[tuple[int, float]]]:
    engine = SnmpEngine()
    pysnmp_config.add_v3_user(engine, "bench", pysnmp_config.USM_AUTH_HMAC96_SHA, "bench-auth-key",
                              pysnmp_config.USM_PRIV_CFB128_AES, "bench-priv-key")
    engine.security_models[SnmpUSMSecurityModel.SECURITY_MODEL_ID] = usm
    mic = engine.message_dispatcher.mib_instrum_controller
    sec2usr, get_info, clone = (getattr(usm, M + m) for m in ("sec2usr", "get_user_info", "clone_user_info"))
    name = rfc1902.OctetString(b"bench")
    wildcard = usm.wildcard_security_engine_id
    marks: list[tuple[int, float]] = []
    step = max(1, engines // 10)
    t0 = last = time.process_time()
    done = 0
    for i in range(engines):
        peer = rfc1902.OctetString(b"\x80\x00\x1f\x88\x04" + b"router-%08d" % i)
        # The request towards a new engine (generate_request_message, 3.1.1b): both lookups miss, then the copy.
        for engine_id in (peer, wildcard):
            try:
                get_info(mic, engine_id, sec2usr(engine, name, engine_id))
                raise AssertionError("a new engine was already known")
            except NoSuchInstanceError:
                pass
        clone(engine, peer, sec2usr(engine, name))
        # The answer (process_incoming_message) and the next request find it.
        get_info(mic, peer, name)
        get_info(mic, peer, sec2usr(engine, name, peer))
        done = i + 1
        now = time.process_time()
        if done % step == 0:
            marks.append((done, (now - last) / step * 1000))
            last = now
        if now - t0 > budget_s:
            break
    return done, time.process_time() - t0, marks


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engines", type=int, default=20_000, help="agent SNMP engines met for the first time")
    ap.add_argument("--stock-max", type=int, default=4_000, help="engines at most for pysnmp's own USM")
    ap.add_argument("--budget-s", type=float, default=300.0, help="CPU seconds at most per run")
    args = ap.parse_args()
    print("| USM | engines | CPU s | ms per new engine, at each tenth of the run |")
    print("|---|---:|---:|---|")
    for label, usm, n in (("pysnmp SnmpUSMSecurityModel", SnmpUSMSecurityModel(), min(args.engines, args.stock_max)),
                          ("tslcd PeerKeysUsm", PeerKeysUsm(), args.engines)):
        done, cpu, marks = run(usm, n, args.budget_s)
        stopped = "" if done == n else f" (stopped at the {args.budget_s:.0f} s budget)"
        print(f"| {label} | {done:,}{stopped} | {cpu:.1f} | "
              + ", ".join(f"{k:,}: {ms:.2f}" for k, ms in marks) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
