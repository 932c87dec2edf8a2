#!/usr/bin/env bash
# Installs what the browser tests need on a fresh Debian machine, idempotently and quietly:
#   Debian's chromium (apt), Playwright's Python package in the given venv (it drives the system
#   chromium: no browser download), and the pinned npm packages of the official-client test.
# Usage: tests/browser/install.sh VENV_PYTHON
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${1:?usage: install.sh VENV_PYTHON}"

if [ ! -x /usr/bin/chromium ]; then
    echo "installing chromium (apt)"
    if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi

if ! "$python" -c "import playwright.sync_api" 2>/dev/null; then
    echo "installing playwright (python package only)"
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 "$python" -m pip install --quiet --disable-pip-version-check "playwright>=1.40"
fi

client="$here/official_client"
if [ ! -x "$client/node_modules/.bin/esbuild" ] || [ "$client/package-lock.json" -nt "$client/node_modules/.package-lock.json" ]; then
    echo "installing the official client's npm packages (npm ci)"
    (cd "$client" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
