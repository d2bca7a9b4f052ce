#!/usr/bin/env bash
# System packages the tests need, from Debian: PostGIS for PostgreSQL, Chromium
# for the browser tests, GDAL's command-line tools (ogrinfo) for interop checks.
# Installs only what is missing; needs root for that (prints what to run otherwise).
set -euo pipefail
want=()
pgver=$(ls /etc/postgresql 2>/dev/null | sort -n | tail -1)
pgver=${pgver:-15}
[ -f "/usr/share/postgresql/$pgver/extension/postgis.control" ] || want+=("postgresql-$pgver-postgis-3")
[ -x /usr/bin/chromium ] || want+=(chromium)
command -v ogrinfo >/dev/null || want+=(gdal-bin)
# the map's Chinese interface in headless Chromium needs CJK glyphs
[ -d /usr/share/fonts/opentype/noto ] && ls /usr/share/fonts/opentype/noto | grep -q CJK || want+=(fonts-noto-cjk)
if [ ${#want[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
    echo "setup_system: missing ${want[*]}; as root run: apt-get install -y ${want[*]}" >&2
    exit 1
fi
echo "setup_system: installing ${want[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends "${want[@]}" >/dev/null 2>&1 || {
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${want[@]}" >/dev/null
}
