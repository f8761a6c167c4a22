# Shell helpers shared by the ci/ scripts (sourced, not run; the caller has `cd`-ed to the
# repository root): free ports, step headers, the report and its checks, waiting, SSH into a
# test VM, the QEMU monitor, and running the Rust end-to-end scenarios phase by phase.
# ci/image-vm.sh (starting and stopping QEMU) sources this file too.

# free_port: a TCP port on 127.0.0.1 that nothing listens on right now, chosen below the
# kernel's ephemeral range: a port from that range (what bind to port 0 gives) can be taken by
# any outgoing connection before the caller binds it, minutes later in ci/e2e-ota (its update
# repository's port is baked into the v1 image; one run lost it to another test's connection).
free_port() {
  python3 - <<'PY'
import random, socket
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
for _ in range(200):
    port = random.randrange(10000, max(low, 10001))
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    break
else:
    raise SystemExit("no free port below the ephemeral range")
PY
}

# A drop-in folder for a `hearth-agent --dev` run configured as on a device: the image's drop-in
# (overlays/base/usr/lib/hearth/agent.d) names the bundled CasaOS store, here the repository's.
# Prints the folder, for --config-dir.
device_config() { # DIR
  mkdir -p "$1"
  printf '[apps]\ndefault_store_dir = "%s"\n' "$PWD/stores/casaos" >"$1/10-store.toml"
  echo "$1"
}

# step TEXT: a heading, with the minutes and seconds since the script started (CI's log then
# shows where a run's time went).
step() { printf '\n==> [%d:%02d] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }

# note TEXT: one line on stdout and in $REPORT (when set).
note() {
  if [ -n "${REPORT:-}" ]; then echo "$*" | tee -a "$REPORT"; else echo "$*"; fi
}

# The checks' tally: `check` and `run_phase` add to it, `checks_summary` prints it.
CHECKS_OK=${CHECKS_OK:-0}
failures=${failures:-0}

# check NAME CMD...: runs CMD; one line `ok   NAME` or `FAIL NAME: why` (in $REPORT too). Returns
# 0 either way (scripts run under `set -e`); the failure is counted.
check() {
  local name=$1 rc=0
  shift
  "$@" || rc=$?
  if [ "$rc" = 0 ]; then
    note "ok   $name"
    CHECKS_OK=$((CHECKS_OK + 1))
  else
    note "FAIL $name: \`$*\` exited with $rc"
    failures=$((failures + 1))
  fi
  return 0
}

# require NAME CMD...: a check the rest of the run depends on; when it fails, calls the
# script's `stop_run` (which reports and exits).
require() {
  local before=$failures
  check "$@"
  if [ "$failures" != "$before" ]; then
    note "stopping after a failed prerequisite: $1"
    stop_run
  fi
}

# checks_summary LABEL: `LABEL: N checks, M failed` (or all passed); fails when any check did.
checks_summary() {
  local total=$((CHECKS_OK + failures))
  if [ "$failures" -ne 0 ]; then
    echo "$1: $failures of $total check(s) failed"
    return 1
  fi
  echo "$1: all $total checks passed"
}

# wait_for SECONDS CMD...: runs CMD every 2 s until it succeeds; fails after SECONDS.
wait_for() {
  local deadline=$(($(date +%s) + $1))
  shift
  while [ "$(date +%s)" -lt "$deadline" ]; do
    if "$@"; then return 0; fi
    sleep 2
  done
  return 1
}

# build_steps MANIFEST: the builder's step times from a build's manifest.json, on one line
# (`prepare root 21.3 s, seal root 18.0 s, …`), for the report.
build_steps() {
  jq -r '[.steps[] | "\(.step) \(.seconds * 10 | round / 10) s"] | join(", ")' "$1"
}

# bundle_payloads HEARTH_OTA BUNDLE ROOT_KEY DIR: the bundle's payloads as plain files DIR/root and DIR/uki,
# or DIR/kernel and DIR/initrd (hearth-ota installs the bundle into them, every chunk checked). The
# sealed root does not carry the kernel and initramfs (NOT_SHIPPED in image/src/seal.rs): scripts
# that compare payloads take them from here.
bundle_payloads() {
  local p
  mkdir -p "$4/boot-state"
  for p in root kernel initrd uki; do : >"$4/$p"; done
  "$1" install "$2" --key "$3" --target "root=$4/root" --target "kernel=$4/kernel" \
    --target "initrd=$4/initrd" --target "uki=$4/uki" --boot-dir "$4/boot-state" >/dev/null
  # A bundle carries kernel and initrd or a UKI: the others stay empty.
  find "$4" -maxdepth 1 -type f -empty -delete
}
# payload_names DIR: the payloads bundle_payloads wrote into DIR, one name per line.
payload_names() { find "$1" -maxdepth 1 -type f -printf '%P\n' | sort; }

# strip_ansi: removes terminal escapes (the serial console's colours) from stdin.
strip_ansi() { sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g'; }

# SSH into a test VM: root@127.0.0.1 on $SSH_PORT with the key $SSH_KEY (default
# $RUN_DIR/id_ed25519; the e2e images enable SSH only because their build passed --ssh-key).
ssh_opts() {
  printf '%s\n' -q -i "${SSH_KEY:-$RUN_DIR/id_ed25519}" -p "$SSH_PORT" -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null -o ConnectTimeout=10
}

# guest CMD...: runs a command in the guest over SSH.
guest() {
  local opts
  mapfile -t opts < <(ssh_opts)
  ssh "${opts[@]}" root@127.0.0.1 "$@"
}

# guest_started_up: waits (at most 20 minutes, the health gate's own limit) until the guest's
# boot has no start-up job left: the agent answers before the rest of start-up (Docker, the
# health gate), so a unit's state read earlier may be that of a queued job.
guest_started_up() {
  guest 'timeout 1200 systemctl is-system-running --wait >/dev/null' || true
}

# guest_ssh_script PATH: writes an executable that runs its arguments in the guest (`PATH CMD`),
# for programs that take a command rather than a shell function (the Rust scenarios).
guest_ssh_script() {
  local opts
  mapfile -t opts < <(ssh_opts)
  {
    echo '#!/bin/sh'
    printf 'exec ssh'
    printf ' %q' "${opts[@]}" root@127.0.0.1
    echo ' "$@"'
  } >"$1"
  chmod +x "$1"
}

# guest_docker_socket PATH: forward the guest's Docker socket to PATH on the host over SSH (the
# image has Docker's engine, not its CLI: the host's CLI drives it with DOCKER_HOST=unix://PATH).
# The forwarding ends with the VM.
guest_docker_socket() {
  local opts
  mapfile -t opts < <(ssh_opts)
  rm -f "$1"
  ssh "${opts[@]}" -f -N -o ExitOnForwardFailure=yes -L "$1:/run/docker.sock" root@127.0.0.1
}

# hmp COMMAND: one command on the QEMU monitor ($RUN_DIR/monitor.sock).
hmp() {
  python3 - "$RUN_DIR/monitor.sock" "$1" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
time.sleep(0.3)
s.sendall(sys.argv[2].encode() + b"\n")
time.sleep(0.5)
PY
}

# --- the Rust end-to-end scenarios (agent/tests/e2e) ---------------------------------------------
# The orchestration stays in shell (building images, starting, stopping and power-cutting QEMU,
# the update repository); the API and guest checks are ignored Rust tests in
# agent/tests/e2e/, one test per phase, run against the VM that is up at that moment. The
# protocol (docs/testing.md): the shell exports the HEARTH_E2E_* variables below; a phase
# appends `ok   NAME` / `FAIL NAME: why` lines and notes to $HEARTH_E2E_REPORT, keeps what later
# phases need in $HEARTH_E2E_RUN_DIR, fails when any check failed, and creates
# $HEARTH_E2E_RUN_DIR/e2e-stop when a check the rest of the run depends on failed.

# e2e_build: builds the scenarios' test binary once; sets E2E_BIN.
e2e_build() {
  E2E_BIN=$(cargo test --locked -p hearth-agent --test e2e --no-run --message-format=json |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "e2e" and m.get("executable"):
        print(m["executable"])')
  test -x "$E2E_BIN"
}

# e2e_export: the variables every phase reads (the VM's ports, SSH, report, run folder).
e2e_export() {
  guest_ssh_script "$RUN_DIR/guest-ssh"
  export HEARTH_E2E_URL="https://127.0.0.1:$HTTPS_PORT"
  export HEARTH_E2E_HTTP_URL="http://127.0.0.1:$HTTP_PORT"
  export HEARTH_E2E_SSH="$RUN_DIR/guest-ssh"
  export HEARTH_E2E_RUN_DIR="$RUN_DIR"
  export HEARTH_E2E_REPORT="$REPORT"
}

# run_phase TEST: runs one scenario phase (e.g. image::first_boot) and adds its checks to the
# tally. A phase that fails without a FAIL line (a panic in the harness) counts as one failure.
run_phase() {
  local before ok failed rc=0 t0=$SECONDS
  before=$(wc -l <"$REPORT")
  echo "-- phase $1"
  set +e
  RUST_BACKTRACE=0 "$E2E_BIN" --ignored --exact --nocapture --test-threads=1 --quiet "$1" 2>&1 | tee "$RUN_DIR/phase-$1.out"
  rc=${PIPESTATUS[0]}
  set -e
  note "phase $1: $((SECONDS - t0)) s"
  ok=$(tail -n +"$((before + 1))" "$REPORT" | grep -c '^ok   ' || true)
  failed=$(tail -n +"$((before + 1))" "$REPORT" | grep -c '^FAIL ' || true)
  CHECKS_OK=$((CHECKS_OK + ok))
  failures=$((failures + failed))
  if [ "$rc" != 0 ] && [ "$failed" = 0 ]; then
    note "FAIL phase $1: the test binary exited with $rc without a failed check (its output is above)"
    failures=$((failures + 1))
  fi
  return "$rc"
}

# e2e_stopped: whether a phase asked the run to stop (a prerequisite failed).
e2e_stopped() { test -e "$RUN_DIR/e2e-stop"; }

# --- a local update repository (ci/e2e-ota, ci/demo) --------------------------------------------
# ota_keys DIR: a fresh OTA root key, release key and root-signed key list (serial 1) in DIR
# (`$HEARTH_OTA keygen`/`delegate`); sets OTA_KEY_ARGS, the builder's arguments that sign
# with them (--ota-release-key, --ota-keylist, --ota-root-pub).
ota_keys() {
  "$HEARTH_OTA" keygen --out "$1/root.pem" >/dev/null
  "$HEARTH_OTA" keygen --out "$1/release.pem" >/dev/null
  "$HEARTH_OTA" delegate --root "$1/root.pem" --release "$1/release.pem.pub" --serial 1 \
    --out "$1/keys.json" >/dev/null
  OTA_KEY_ARGS=(--ota-release-key "$1/release.pem" --ota-keylist "$1/keys.json"
    --ota-root-pub "$1/root.pem.pub")
}

# ota_publish REPO KEYDIR BUNDLE NOTES: `hearth-ota publish` of BUNDLE into the repository
# folder REPO (channel stable), signed with the keys ota_keys made in KEYDIR.
ota_publish() {
  "$HEARTH_OTA" publish --repo "$1" --channel stable "$3" --key "$2/release.pem" \
    --keys "$2/keys.json" --root "$2/root.pem.pub" --notes "$4"
}

# repo_serve REPO PORT DIR: serves the folder REPO on 127.0.0.1:PORT with nginx (Range
# requests; the guest reaches it as http://10.0.2.2:PORT/), in the background: its
# configuration, pid file and logs in DIR (access log DIR/nginx-access.log, one line per
# request: `METHOD URI STATUS BYTES "RANGE"`). Sets REPO_SERVER_PID; waits until it answers.
repo_serve() {
  local repo=$1 port=$2 dir=$3
  cat >"$dir/nginx.conf" <<CONF
worker_processes 1; pid $dir/nginx.pid; error_log $dir/nginx-error.log; daemon off;
events { worker_connections 64; }
http { log_format bytes '\$request_method \$uri \$status \$body_bytes_sent "\$http_range"';
  access_log $dir/nginx-access.log bytes; client_body_temp_path $dir; proxy_temp_path $dir;
  fastcgi_temp_path $dir; uwsgi_temp_path $dir; scgi_temp_path $dir;
  types { application/json json; } default_type application/octet-stream;
  server { listen 127.0.0.1:$port; root $repo; } }
CONF
  nginx -c "$dir/nginx.conf" &
  REPO_SERVER_PID=$!
  wait_for 30 sh -c "curl -s -o /dev/null http://127.0.0.1:$port/ || ! kill -0 $REPO_SERVER_PID"
  kill -0 "$REPO_SERVER_PID" 2>/dev/null || {
    echo "nginx did not start: $(tail -3 "$dir/nginx-error.log" 2>/dev/null)" >&2
    return 1
  }
}

# repo_stop: stops the repository server repo_serve started (if any).
repo_stop() {
  if [ -n "${REPO_SERVER_PID:-}" ]; then
    kill "$REPO_SERVER_PID" 2>/dev/null || true
    wait "$REPO_SERVER_PID" 2>/dev/null || true
    REPO_SERVER_PID=
  fi
}
