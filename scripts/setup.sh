#!/usr/bin/env bash
# Installs or starts what scrapefarm needs on a Debian machine, and says clearly what it did.
#   scripts/setup.sh            Chromium + chromedriver, PostgreSQL and RabbitMQ
#   scripts/setup.sh --browser  Chromium + chromedriver only (the embedded default needs no servers)
set -euo pipefail

want_services=1
[ "${1:-}" = "--browser" ] && want_services=0

say() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: ERROR: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "need root to run: $* (install it yourself or run as root)"
  fi
}

apt_updated=0
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install $* with your package manager"
  if [ "$apt_updated" = 0 ]; then
    say "apt-get update"
    as_root apt-get update -qq || die "apt-get update failed"
    apt_updated=1
  fi
  say "installing $* from Debian's packages"
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
    || die "apt-get install $* failed"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # port name seconds
  for _ in $(seq 1 "$3"); do port_open "$1" && return 0; sleep 1; done
  die "$2 did not start listening on 127.0.0.1:$1 within $3 s"
}

# --- Chromium ---------------------------------------------------------------------------------
# The browser (chromedriver drives it) and its headless shell (what the CDP renderer launches by
# default, see src/render/build.rs): two packages of the same Chromium version.
shell_bin="${CHROME_HEADLESS_SHELL_BIN:-/usr/lib/chromium/chromium-headless-shell}"
if [ -x "${CHROME_BIN:-/usr/bin/chromium}" ] && command -v chromedriver >/dev/null 2>&1 && [ -x "$shell_bin" ]; then
  say "Chromium: $("${CHROME_BIN:-/usr/bin/chromium}" --version 2>/dev/null || echo present); headless shell at $shell_bin"
else
  apt_install chromium chromium-driver chromium-headless-shell fonts-liberation
fi

[ "$want_services" = 1 ] || exit 0

# --- PostgreSQL -------------------------------------------------------------------------------
if port_open 5432; then
  say "PostgreSQL: listening on 127.0.0.1:5432"
else
  installed_pg=0
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    apt_install postgresql
    installed_pg=1
  fi
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  if [ "$installed_pg" = 1 ]; then
    # Tests connect as postgres without a password from loopback only.
    hba="/etc/postgresql/$version/main/pg_hba.conf"
    say "allowing passwordless loopback connections in $hba"
    as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  fi
  say "starting PostgreSQL $version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_port 5432 PostgreSQL 60
fi

# --- RabbitMQ ---------------------------------------------------------------------------------
if port_open 5672; then
  say "RabbitMQ: listening on 127.0.0.1:5672"
else
  command -v rabbitmq-server >/dev/null 2>&1 || apt_install rabbitmq-server
  say "starting RabbitMQ"
  as_root rabbitmq-server -detached || true
  wait_port 5672 RabbitMQ 120
fi
# The management API gives `status` the unacked count and live consumers (AMQP does not).
# Enabling an enabled plugin is a no-op, so this is safe to run again on a running node.
if command -v rabbitmq-plugins >/dev/null 2>&1; then
  if as_root rabbitmq-plugins list -e -m 2>/dev/null | grep -qx rabbitmq_management; then
    say "RabbitMQ: management plugin enabled"
  else
    say "RabbitMQ: enabling the management plugin (http://127.0.0.1:15672)"
    as_root rabbitmq-plugins enable rabbitmq_management >/dev/null \
      || say "WARNING: could not enable rabbitmq_management; status shows unacked as unknown"
  fi
fi
say "ready"
