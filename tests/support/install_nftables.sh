#!/usr/bin/env bash
# Installs Debian's nftables, which the blackout tests use to drop UDP inside their own network
# namespace (`unshare -n`); never used on the host's namespace. Idempotent and quiet.
set -euo pipefail
if command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ]; then
    exit 0
fi
echo "installing nftables (apt)"
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
if ! apt-cache policy nftables 2>/dev/null | grep -q "Candidate: [0-9]"; then
    $sudo apt-get update -qq
fi
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nftables >/dev/null
