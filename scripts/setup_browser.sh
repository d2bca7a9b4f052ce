#!/usr/bin/env bash
# Headless Chromium from Debian for the browser tests (Playwright drives it
# through executable_path; Playwright's own browser download is not used).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" = 0 ]; then
    echo "setup_browser: installing Debian chromium"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
else
    echo "setup_browser: /usr/bin/chromium missing; as root run: apt-get install -y chromium" >&2
    exit 1
fi
