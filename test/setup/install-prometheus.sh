#!/usr/bin/env bash
# Installs Debian's `prometheus` package (which ships `promtool`) when promtool is missing.
# Used by CI and by test/deploy (promtool check/test) and the real-Prometheus smoke test.
# The package's own prometheus service is stopped and disabled: the tests run their own
# Prometheus on a free loopback port with a temporary config and storage directory.
# Usage: .ci/install-prometheus.sh            (idempotent; does nothing when promtool exists)
set -euo pipefail

if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
  echo "install-prometheus: promtool already installed ($(command -v promtool))"
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo -n)
else
  echo "install-prometheus: need root (or sudo) to apt-get install prometheus; install it by hand:" >&2
  echo "  apt-get update && apt-get install -y --no-install-recommends prometheus" >&2
  exit 1
fi

# Keep the package's postinst from starting a service (sysvinit / invoke-rc.d honour policy-rc.d).
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | "${as_root[@]}" tee "$policy" >/dev/null
  "${as_root[@]}" chmod +x "$policy"
  created_policy=1
fi
cleanup() { if [ "$created_policy" -eq 1 ]; then "${as_root[@]}" rm -f "$policy"; fi; }
trap cleanup EXIT

"${as_root[@]}" apt-get update
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus

# Stop and disable whatever service the package may have started anyway (systemd or sysvinit).
if command -v systemctl >/dev/null 2>&1; then
  if [ -d /run/systemd/system ]; then
    "${as_root[@]}" systemctl stop prometheus.service >/dev/null 2>&1 || true
  fi
  # `disable` also works without a running systemd (it removes the wants/ symlink).
  "${as_root[@]}" systemctl disable prometheus.service >/dev/null 2>&1 || true
fi
if [ -x /etc/init.d/prometheus ]; then
  "${as_root[@]}" /etc/init.d/prometheus stop >/dev/null 2>&1 || true
  if command -v update-rc.d >/dev/null 2>&1; then
    "${as_root[@]}" update-rc.d prometheus disable >/dev/null 2>&1 || true
  fi
fi

command -v promtool >/dev/null 2>&1 || { echo "install-prometheus: promtool still missing after install" >&2; exit 1; }
echo "install-prometheus: installed $(promtool --version 2>&1 | head -n 1)"
