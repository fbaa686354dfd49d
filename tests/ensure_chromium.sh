#!/usr/bin/env bash
# The browser test drives Debian's Chromium through Playwright (no browser download: the network
# reaches package registries only). Install it through apt when it is missing.
set -u
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null; then
  echo "ensure_chromium: /usr/bin/chromium is missing and apt-get is not usable here; the browser test will skip" >&2
  exit 0
fi
echo "ensure_chromium: installing Debian's chromium (first run only)" >&2
(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
  || echo "ensure_chromium: apt install failed; the browser test will skip" >&2
exit 0
