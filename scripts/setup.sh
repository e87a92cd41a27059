#!/usr/bin/env bash
# Prepares a Debian machine for berth: the container engine (installed and started when
# missing), the Python environment in .venv, and a small local image, berth/busybox:latest
# (from Debian's busybox-static), that the quick start and the tests use, so nothing needs a
# registry. With --test it also installs what only the tests need.
# Idempotent: every step checks before it acts, so running it again is cheap.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*" >&2; }

need_apt=()
command -v dockerd >/dev/null 2>&1 || need_apt+=(docker.io)
[ -x /bin/busybox ] || need_apt+=(busybox-static)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)  # the dashboard's front-end libraries
if [ "${1:-}" = "--test" ]; then
  command -v ssh >/dev/null 2>&1 || need_apt+=(openssh-client)
  command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)  # the private engine's bridge
  command -v ps >/dev/null 2>&1 || need_apt+=(procps)    # process listings searched for secrets
  # The suites' PostgreSQL pass starts its own server from these programs (no cluster of
  # the package's is needed).
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need_apt+=(postgresql)
  command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)  # the dashboard's browser tests
fi
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]} from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

engine_up() { curl -sf --max-time 3 --unix-socket /var/run/docker.sock http://engine/_ping >/dev/null 2>&1; }
if ! engine_up; then
  log "starting the Docker engine (log: /var/log/berth-dockerd.log)"
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl start docker || true
  fi
  if ! engine_up; then
    nohup dockerd >/var/log/berth-dockerd.log 2>&1 &
  fi
  for _ in $(seq 60); do engine_up && break; sleep 1; done
  engine_up || { log "the Docker engine did not come up; see /var/log/berth-dockerd.log"; exit 1; }
fi

bash scripts/venv.sh  # the Python environment, from the lock file
bash scripts/dashboard-assets.sh  # xterm.js for the dashboard, from package-lock.json

engine_api() { curl -sf --unix-socket /var/run/docker.sock "http://engine/v1.41$1" "${@:2}"; }
# import_busybox REPO [CHANGE...]: an image of Debian's busybox-static with every applet,
# root's home and a web root, with the given Dockerfile changes (URL-encoded).
import_busybox() {
  local root query=""
  root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/tmp" "$root/root" "$root/etc" "$root/var/www"
  cp /bin/busybox "$root/bin/busybox"
  for applet in $("$root/bin/busybox" --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
  printf 'root:x:0:\n' >"$root/etc/group"
  for change in "${@:2}"; do query="$query&changes=$change"; done
  tar -C "$root" -c . | engine_api "/images/create?fromSrc=-&repo=$1&tag=latest$query" \
    -X POST -H 'Content-Type: application/x-tar' --data-binary @- >/dev/null
  rm -rf "$root"
}
if ! engine_api /images/berth/busybox:latest/json >/dev/null; then
  log "building the local image berth/busybox:latest from Debian's busybox-static"
  import_busybox berth/busybox 'ENV%20PATH%3D%2Fbin' 'WORKDIR%20%2Froot'
fi
if [ "${1:-}" = "--test" ]; then
  if ! engine_api /images/berth-test/busybox:latest/json >/dev/null; then
    engine_api '/images/berth/busybox:latest/tag?repo=berth-test/busybox&tag=latest' -X POST >/dev/null
  fi
  # A sandbox image whose own command is a web server on 8080 (services with no command).
  if ! engine_api /images/berth-test/sandbox:latest/json >/dev/null; then
    log "building the test image berth-test/sandbox:latest (serves /var/www on 8080)"
    import_busybox berth-test/sandbox 'ENV%20PATH%3D%2Fbin' \
      'CMD%20%5B%22httpd%22%2C%22-f%22%2C%22-p%22%2C%228080%22%2C%22-h%22%2C%22%2Fvar%2Fwww%22%5D'
  fi
  # An image without /bin/sh: only the busybox binary, for the tests of argv-only commands.
  if ! engine_api /images/berth-test/nosh:latest/json >/dev/null; then
    log "building the test image berth-test/nosh:latest (no /bin/sh)"
    root=$(mktemp -d)
    mkdir -p "$root/bin" "$root/tmp"
    cp /bin/busybox "$root/bin/busybox"
    tar -C "$root" -c . | engine_api '/images/create?fromSrc=-&repo=berth-test/nosh&tag=latest&changes=ENV%20PATH%3D%2Fbin' \
      -X POST -H 'Content-Type: application/x-tar' --data-binary @- >/dev/null
    rm -rf "$root"
  fi
fi
