#!/usr/bin/env bash
# System packages that make cadsearch faster or its tests complete, installed only when missing and only where
# we may (root with apt-get, as on our CI). Nothing here is required to run: without libLLVM 19 the ray tracer
# falls back to Mitsuba's slower scalar variant, and without Chromium the browser test skips with a reason.
set -u
want=()
ldconfig -p 2>/dev/null | grep -q 'libLLVM\.so\.19\|libLLVM-19' || want+=(libllvm19)
[ -x /usr/bin/chromium ] || want+=(chromium)
[ ${#want[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "note: optional system packages missing (${want[*]}); install them with apt-get for the full setup" >&2
    exit 0
fi
echo "installing system packages: ${want[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || true
apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null 2>&1 \
    || echo "note: apt-get could not install ${want[*]}; continuing without" >&2
exit 0
