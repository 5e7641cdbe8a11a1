#!/usr/bin/env bash
# The system programs Outpost's demo and tests run, installed with apt-get when missing
# (issue [install], item 6). Used by `npm run demo` (predemo), `npm test` (pretest) and .ci/run.
#
#   scripts/ensure-deps.sh [test|demo]
#
#   test (default)  nats-server, mosquitto, mosquitto_pub/_sub, openssl, chromium (+ chromedriver)
#   demo            nats-server, openssl
#
# Everything present: exits 0 at once, printing nothing (it runs before every `npm test`).
# Something missing: as root, or with sudo, it says what it installs and runs
# `apt-get install`; otherwise (no root, no usable sudo, no apt-get, or OUTPOST_NO_INSTALL=1)
# it prints the exact command to run and exits 1.
set -euo pipefail

profile="${1:-test}"

# command -> Debian/Ubuntu package(s) that provide it.
case "$profile" in
  demo) wanted=(nats-server openssl) ;;
  test) wanted=(nats-server mosquitto mosquitto_pub mosquitto_sub openssl chromium chromedriver) ;;
  *)
    echo "ensure-deps: unknown profile '$profile' (use: test or demo)" >&2
    exit 2
    ;;
esac

package_of() {
  case "$1" in
    # The MQTT interop tests publish and subscribe with mosquitto's own clients.
    mosquitto_pub | mosquitto_sub) echo mosquitto-clients ;;
    # The dashboard tests drive /usr/bin/chromium headless through playwright-core (no browser
    # download); .ci/run has always installed the driver beside it.
    chromium) echo chromium ;;
    chromedriver) echo chromium-driver ;;
    # nats-server, mosquitto, and openssl (the throwaway certificates of the TLS tests and the
    # demo): the package has the command's name.
    *) echo "$1" ;;
  esac
}

# Daemons live in sbin, which a non-root user's PATH often lacks; the test harness and the demo
# look there too (tests/src/harness/nats-server.ts, mosquitto.ts: SBIN_DIRS). The variable is
# for tests/src/integration/ensure-deps.test.ts, which hides programs to play a fresh machine.
search_path="${PATH:-}:${ENSURE_DEPS_SBIN_DIRS-/usr/local/sbin:/usr/sbin:/sbin}"
missing_packages=()
missing_commands=()
for cmd in "${wanted[@]}"; do
  if PATH="$search_path" command -v "$cmd" >/dev/null 2>&1; then continue; fi
  missing_commands+=("$cmd")
  pkg="$(package_of "$cmd")"
  case " ${missing_packages[*]-} " in
    *" $pkg "*) ;;
    *) missing_packages+=("$pkg") ;;
  esac
done
((${#missing_commands[@]} == 0)) && exit 0

install_line="sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing_packages[*]}"
what="ensure-deps: missing ${missing_commands[*]} (Debian/Ubuntu packages: ${missing_packages[*]})"

give_up() {
  echo "$what" >&2
  echo "ensure-deps: $1; install them with:" >&2
  echo "" >&2
  echo "  $install_line" >&2
  echo "" >&2
  exit 1
}

[[ "${OUTPOST_NO_INSTALL:-}" == 1 ]] && give_up "OUTPOST_NO_INSTALL=1, not installing"
command -v apt-get >/dev/null 2>&1 || give_up "no apt-get here (not Debian/Ubuntu?), so not installing; on Debian/Ubuntu"

as_root=()
if [[ "$(id -u)" != 0 ]]; then
  if ! command -v sudo >/dev/null 2>&1; then
    give_up "not root and no sudo"
  elif sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  elif [[ -t 0 ]]; then
    # sudo will ask for the password on this terminal.
    as_root=(sudo)
  else
    give_up "not root, and sudo needs a password but there is no terminal to ask on"
  fi
fi

echo "$what" >&2
echo "ensure-deps: installing ${missing_packages[*]} with ${as_root[*]:+${as_root[*]} }apt-get" >&2
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing_packages[@]}"

# Installed but still not found (a package that names its program differently): say so now,
# not as a test failure later.
still=()
for cmd in "${missing_commands[@]}"; do
  PATH="$search_path" command -v "$cmd" >/dev/null 2>&1 || still+=("$cmd")
done
if ((${#still[@]})); then
  echo "ensure-deps: installed ${missing_packages[*]}, but ${still[*]} still not found on PATH or in sbin" >&2
  exit 1
fi
echo "ensure-deps: installed ${missing_packages[*]}" >&2
