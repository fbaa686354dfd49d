#!/usr/bin/env bash
# What the test suite needs outside Python, installed through apt when missing:
#   - Debian's Chromium at /usr/bin/chromium: tests/service/test_browser.py drives it through Playwright
#     (no browser download: the network here reaches package registries only);
#   - a Java runtime 17+: tests/service/test_batch.py runs the Spark engine (PySpark needs Java).
# `make test` runs this first. When something is missing and cannot be installed (not root and no
# passwordless sudo, no apt-get, or apt-get fails) it exits 1 naming what is missing, so the suite
# never runs with those tests quietly skipped. (Under CI=true the tests themselves also fail, not
# skip, when a prerequisite is absent: harness/prereqs.py `need`.)
set -u

java_ok() {
  command -v java >/dev/null 2>&1 || return 1
  java -version 2>&1 | awk -F'"' '/version/ { split($2, v, "."); ok = (v[1] + 0 >= 17); exit !ok }'
}

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
java_ok || missing+=(default-jre-headless)
[ ${#missing[@]} -eq 0 ] && exit 0

fail() {
  echo "ensure_prereqs: $1" >&2
  echo "ensure_prereqs: the suite needs: ${missing[*]} (install with: apt-get install ${missing[*]})" >&2
  exit 1
}

sudo=()
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
  else
    fail "missing ${missing[*]}, and this user cannot install packages (not root, no passwordless sudo)"
  fi
fi
command -v apt-get >/dev/null 2>&1 || fail "missing ${missing[*]}, and apt-get is not available"

echo "ensure_prereqs: installing ${missing[*]} through apt (first run only)" >&2
"${sudo[@]}" apt-get update -qq || fail "apt-get update failed"
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  "${missing[@]}" >/dev/null || fail "apt-get install ${missing[*]} failed"

[ -x /usr/bin/chromium ] || fail "chromium installed but /usr/bin/chromium is not there"
java_ok || fail "no Java 17+ on PATH after installing default-jre-headless"
exit 0
