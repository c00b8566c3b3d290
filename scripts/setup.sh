#!/usr/bin/env bash
# Installs the Debian packages the project needs, only those missing.
# Idempotent and quiet when everything is there; both `make demo` and
# `make test` call it.
set -euo pipefail

pkgs=(build-essential cmake pkg-config clang llvm libclang-rt-14-dev libcmocka-dev libbpf-dev libxdp-dev
      libelf-dev zlib1g-dev iproute2 ethtool ucx-utils zookeeper libzookeeper-mt-dev)
# peers of the KV benchmark and the memcached conformance test
pkgs+=(redis-server memcached libmemcached-tools)
# the PNG plot of `farm bench recovery` (optional: the tool prints the curve without it)
pkgs+=(gnuplot-nox)

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "setup: missing packages: ${missing[*]}" >&2
	echo "setup: run as root (or: sudo apt-get install ${missing[*]})" >&2
	exit 1
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Refresh the lists only when they are missing or older than a day.
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mtime -1 2>/dev/null | head -n1)" ]; then
	apt-get update -qq
fi
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
