#!/usr/bin/env bash
# Set up (first time) and run the monitor on the shipped config.yaml:
# the demo inventory of Đắk Lắk on loopback, status page on http://127.0.0.1:9750/.
# Extra arguments go to `tslcd run` (e.g. --listen 0.0.0.0:9750).
set -euo pipefail
# (An explicit "" : `source` would otherwise hand this script's arguments, --listen ..., to setup.sh as extras.)
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh" ""
exec .venv/bin/tslcd run --config config.yaml "$@"
