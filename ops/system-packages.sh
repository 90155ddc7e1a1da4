#!/usr/bin/env bash
# Debian packages the test suite needs, installed only when missing (make test runs this once;
# a stamp file remembers it ran):
#   - chromium and chromium-driver: the dashboard's browser tests drive a real headless
#     Chromium (no browser is downloaded from anywhere else);
#   - promtool, from Debian's prometheus package: unpacked into TOOLS_DIR/bin rather than
#     installed, so no Prometheus server is set up or started. Skipped, with a note, where
#     Debian offers no prometheus package (the rule tests then skip promtool).
# `apt-get update` runs only when a package has no install candidate or a download fails.
set -euo pipefail
tools_dir=${1:-build/tools}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep "install ok installed" >/dev/null; }
has_candidate() { apt-cache policy "$1" 2>/dev/null | grep "Candidate: [^(]" >/dev/null; }
updated=0
update_once() {
  if [ "$updated" = 0 ]; then
    echo "system packages: apt-get update"
    apt-get update -qq
    updated=1
  fi
}

missing=()
for package in chromium chromium-driver; do
  installed "$package" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "system packages: ${missing[*]} missing; install them as root (apt-get install ${missing[*]})" >&2
    exit 1
  fi
  for package in "${missing[@]}"; do has_candidate "$package" || update_once; done
  echo "system packages: apt-get install ${missing[*]}"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    update_once  # stale package lists: their files moved on the mirror
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

if ! command -v promtool >/dev/null && [ ! -x "$tools_dir/bin/promtool" ]; then
  has_candidate prometheus || update_once
  if has_candidate prometheus; then
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    echo "system packages: unpacking promtool from Debian's prometheus package into $tools_dir/bin"
    if ! (cd "$work" && apt-get download -qq prometheus 2>/dev/null); then
      update_once
      (cd "$work" && apt-get download -qq prometheus 2>/dev/null)
    fi
    dpkg-deb -x "$work"/prometheus_*.deb "$work/root"
    mkdir -p "$tools_dir/bin"
    install -m 0755 "$work/root/usr/bin/promtool" "$tools_dir/bin/promtool"
  else
    echo "system packages: Debian offers no prometheus package here; alert rules are checked without promtool"
  fi
fi
