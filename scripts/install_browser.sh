#!/usr/bin/env bash
# Install the headless browser used by the report's browser check (tests/test_browser*.py), plus
# fonts so screenshots show the Chinese identity probes instead of empty boxes.
# Idempotent: does nothing when Debian's chromium is at /usr/bin/chromium and a CJK font exists.
# Playwright drives this system browser (it cannot download its own browsers offline).
set -euo pipefail

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
have_cjk_font() { command -v fc-list >/dev/null 2>&1 && fc-list :lang=zh 2>/dev/null | grep -q .; }

if [ -x "$CHROMIUM" ] && have_cjk_font; then
    echo "chromium present: $CHROMIUM"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "error: chromium or fonts missing and not root; run: apt-get install -y chromium fonts-noto-cjk" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core fonts-noto-cjk fontconfig >/dev/null
echo "chromium installed: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
