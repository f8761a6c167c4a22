# Shell helpers shared by ci/e2e, ci/e2e-arm64 and ci/demo (sourced, not run): boot an image
# under QEMU through `hearth-image run`, wait for the agent, read the setup code, power off.
# Expects HEARTH_IMAGE (the builder binary), RUN_DIR, BOARD, HTTPS_PORT, HTTP_PORT, SSH_PORT.

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# vm_start IMAGE [--reuse-disk]: starts QEMU in the background; sets VM_PID and VM_STARTED.
vm_start() {
  local image=$1
  shift
  VM_STARTED=$(date +%s)
  "$HEARTH_IMAGE" run --board "$BOARD" --image "$image" --run-dir "$RUN_DIR" \
    --https-port "$HTTPS_PORT" --http-port "$HTTP_PORT" --ssh-port "$SSH_PORT" "$@" \
    >"$RUN_DIR/run.out" 2>&1 &
  VM_PID=$!
}

vm_alive() { kill -0 "$VM_PID" 2>/dev/null; }

# wait_health SECONDS: waits until GET /api/health answers; prints the body.
wait_health() {
  local deadline=$(($(date +%s) + $1)) body
  while [ "$(date +%s)" -lt "$deadline" ]; do
    if ! vm_alive; then
      echo "QEMU exited early:" >&2
      tail -20 "$RUN_DIR/run.out" >&2
      return 1
    fi
    if body=$(curl -sk --max-time 5 "https://127.0.0.1:$HTTPS_PORT/api/health"); then
      echo "$body"
      return 0
    fi
    sleep 3
  done
  echo "the agent did not answer within $1 s; last serial lines:" >&2
  sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g' "$RUN_DIR/serial.log" | tail -30 >&2
  return 1
}

# setup_code: the last setup code the agent printed on the serial console.
setup_code() {
  sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g' "$RUN_DIR/serial.log" |
    grep -aoi 'setup code: [0-9A-Z]\{4\}-[0-9A-Z]\{4\}' | tail -1 | awk '{print $3}'
}

# vm_poweroff SECONDS: ACPI power button through the QEMU monitor, then waits for QEMU.
vm_poweroff() {
  python3 - "$RUN_DIR/monitor.sock" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
time.sleep(0.3)
s.sendall(b"system_powerdown\n")
time.sleep(0.5)
PY
  local deadline=$(($(date +%s) + $1))
  while vm_alive && [ "$(date +%s)" -lt "$deadline" ]; do sleep 2; done
  if vm_alive; then
    echo "guest did not power off in $1 s; stopping QEMU" >&2
    kill "$VM_PID" 2>/dev/null || true
    wait "$VM_PID" 2>/dev/null || true
    return 1
  fi
  wait "$VM_PID" 2>/dev/null || true
}

vm_stop() {
  if [ -n "${VM_PID:-}" ] && vm_alive; then
    kill "$VM_PID" 2>/dev/null || true
    wait "$VM_PID" 2>/dev/null || true
  fi
  # Killing `hearth-image run` leaves its QEMU child running: stop it by its pid file.
  local qpid
  qpid=$(cat "$RUN_DIR/qemu.pid" 2>/dev/null || true)
  if [ -n "$qpid" ] && grep -q "^qemu" "/proc/$qpid/comm" 2>/dev/null; then
    kill "$qpid" 2>/dev/null || true
  fi
}

# guest CMD...: runs a command in the guest over SSH (the e2e image enables SSH with its key).
hmp() { # hmp COMMAND: one command on the QEMU monitor
  python3 - "$RUN_DIR/monitor.sock" "$1" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
time.sleep(0.3)
s.sendall(sys.argv[2].encode() + b"\n")
time.sleep(0.5)
PY
}

# guest_docker_socket PATH: forward the guest's Docker socket to PATH on the host over SSH (the
# image has Docker's engine, not its CLI; the host's CLI drives it with DOCKER_HOST=unix://PATH).
# The forwarding ends with the VM.
guest_docker_socket() {
  rm -f "$1"
  ssh -q -f -N -i "$RUN_DIR/id_ed25519" -p "$SSH_PORT" -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null -o ConnectTimeout=10 -o ExitOnForwardFailure=yes \
    -L "$1:/run/docker.sock" root@127.0.0.1
}

guest() {
  ssh -q -i "$RUN_DIR/id_ed25519" -p "$SSH_PORT" -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null -o ConnectTimeout=10 root@127.0.0.1 "$@"
}
