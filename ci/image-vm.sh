# Shell helpers shared by ci/e2e, ci/e2e-ota, ci/e2e-arm64, ci/bench-image and ci/demo (sourced,
# not run): boot an image under QEMU through `hearth-image run`, wait for the agent, read the
# setup code, power off, cut the power. Expects HEARTH_IMAGE (the builder binary), RUN_DIR,
# BOARD, HTTPS_PORT, HTTP_PORT, SSH_PORT. The generic helpers (free_port, guest, hmp...) are in
# ci/lib.sh, sourced here.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# vm_start IMAGE [--reuse-disk] [--extra-disk FILE]: starts QEMU in the background; sets VM_PID
# and VM_STARTED. With VM_SECURE_BOOT=1, under Secure Boot with the development key set the
# builder signed with enrolled (`hearth-image run --secure-boot`).
vm_start() {
  local image=$1
  shift
  VM_STARTED=$(date +%s)
  "$HEARTH_IMAGE" run --board "$BOARD" --image "$image" --run-dir "$RUN_DIR" \
    --https-port "$HTTPS_PORT" --http-port "$HTTP_PORT" --ssh-port "$SSH_PORT" \
    ${VM_SECURE_BOOT:+--secure-boot} "$@" \
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
  strip_ansi <"$RUN_DIR/serial.log" | tail -30 >&2
  boot_diagnosis
  return 1
}

# boot_diagnosis: when the agent did not come up, what systemd knew (the agent's and the ESP's
# units, pending jobs, the whole journal of the boot) into $RUN_DIR/boot-diagnosis-TIME.txt,
# if SSH answers; its file name on stderr.
boot_diagnosis() {
  local file=$RUN_DIR/boot-diagnosis-$(date +%s).txt
  guest 'systemctl --no-pager status hearth-agent.service efi.mount efi.automount boot-config.mount;
    systemctl --no-pager list-jobs; journalctl -b --no-pager -o short-monotonic' >"$file" 2>&1 || true
  echo "systemd's view of that boot: $file" >&2
}

# agent_up SECONDS: wait_health without the body (for `check`/`require`).
agent_up() { wait_health "$1" >/dev/null; }

# setup_code: the last setup code the agent printed on the serial console.
setup_code() {
  strip_ansi <"$RUN_DIR/serial.log" |
    grep -aoi 'setup code: [0-9A-Z]\{4\}-[0-9A-Z]\{4\}' | tail -1 | awk '{print $3}'
}

# vm_poweroff SECONDS: ACPI power button through the QEMU monitor, then waits for QEMU; sets
# VM_POWEROFF_SECS (how long the guest took).
vm_poweroff() {
  hmp system_powerdown
  local deadline=$(($(date +%s) + $1))
  while vm_alive && [ "$(date +%s)" -lt "$deadline" ]; do sleep 2; done
  VM_POWEROFF_SECS=$(($(date +%s) - deadline + $1))
  if vm_alive; then
    echo "guest did not power off in $1 s; stopping QEMU" >&2
    kill "$VM_PID" 2>/dev/null || true
    wait "$VM_PID" 2>/dev/null || true
    return 1
  fi
  wait "$VM_PID" 2>/dev/null || true
}

# vm_power_cut: QEMU quits at once through its monitor (no shutdown: a power cut), then waits.
vm_power_cut() {
  hmp quit
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
