#!/usr/bin/env bash
# Set up (first time) and run the whole test suite. As root it installs the Debian
# packages the tests use for real: chromium (pages), fping (ICMP benchmark peer),
# iproute2 (test namespaces), prometheus and prometheus-alertmanager (promtool, amtool,
# and a real Prometheus scraping tslcd), snmpd and snmp (net-snmp's agent for SNMPv3
# tests, snmpget for the benchmark), systemd (systemd-analyze checks the unit), python3
# (Debian's, world-readable: the monitor runs as nobody) and postgresql (the store suites run on
# a PostgreSQL server the tests start in a temporary folder) and nftables (outage causes: echoes
# dropped in a test's own network namespace). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
debs=(chromium fping iproute2 util-linux procps time prometheus prometheus-alertmanager snmpd snmp systemd python3
      postgresql nftables)
if [ "$(id -u)" = 0 ]; then
  missing=()
  for p in "${debs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "== apt-get install ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
else
  echo "tslcd: not root: Debian packages (${debs[*]}) are not installed and tests that need root or them are skipped" >&2
fi
source scripts/setup.sh test
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
