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

# serial_has TEXT: the VM's serial console ($RUN_DIR/serial.log, colours stripped) contains
# TEXT (a grep pattern); false while the log does not exist yet. grep -c reads the whole log:
# with -q, grep quits at the first match and sed dies of SIGPIPE (exit 141 under pipefail).
serial_has() { strip_ansi 2>/dev/null <"$RUN_DIR/serial.log" | grep -ac -- "$1" >/dev/null; }

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

# secure_boot_refusals IMAGE ART [VM_START_ARGS...]: on the VM's disk (booted once from IMAGE,
# powered off), slot a's UKI re-signed with another key set, then with its command line edited
# (`panic=10` → `panic=99`, its own signature kept): each boot must end in the firmware's
# refusal with nothing of Linux run (`check` lines; files in ART). Needs VM_SECURE_BOOT=1.
sb_refused() { # sb_refused WHAT: boots the disk, waits for the refusal on the serial console
  local refusal='error loading .*hearth-a[^ ]*\.efi: \(access denied\|security violation\)'
  rm -f "$RUN_DIR/serial.log" # the last boot's console must not answer for this one
  vm_start "$SB_IMAGE" --reuse-disk "${SB_VM_ARGS[@]}"
  local deadline=$(($(date +%s) + 300)) said=0
  while [ "$(date +%s)" -lt "$deadline" ] && vm_alive; do
    if strip_ansi <"$RUN_DIR/serial.log" 2>/dev/null | grep -aci "$refusal" >/dev/null; then
      said=1
      break
    fi
    sleep 3
  done
  sleep 5
  note "Secure Boot, $1: $(strip_ansi <"$RUN_DIR/serial.log" | grep -aoi "$refusal" | head -1) ($(($(date +%s) - VM_STARTED)) s)"
  local linux
  linux=$(strip_ansi <"$RUN_DIR/serial.log" | grep -ac 'Linux version' || true)
  vm_stop
  [ "$said" = 1 ] && [ "$linux" = 0 ]
}
secure_boot_refusals() {
  SB_IMAGE=$1 SB_ART=$2
  shift 2
  SB_VM_ARGS=("$@")
  local esp uki_name
  esp=$RUN_DIR/disk.img@@$(($(sfdisk -J "$RUN_DIR/disk.img" | python3 -c 'import json,sys
print(next(p["start"] for p in json.load(sys.stdin)["partitiontable"]["partitions"] if p.get("name") == "esp"))') * 512))
  uki_name=$(MTOOLS_SKIP_CHECK=1 mdir -b -i "$esp" ::/EFI/Linux | sed 's|.*/||' | grep -i '^hearth-a.*\.efi$' | head -1)
  MTOOLS_SKIP_CHECK=1 mcopy -n -i "$esp" "::/EFI/Linux/$uki_name" "$SB_ART/uki-signed.efi"
  local OTHER=$SB_ART/sb-other # another release's keys
  rm -rf "$OTHER" "$SB_ART/uki-tampered.efi"
  mkdir -p "$OTHER"
  "$HEARTH_IMAGE" keygen --out "$OTHER/key" >/dev/null
  cp "$SB_ART/uki-signed.efi" "$SB_ART/uki-unsigned.efi"
  sbattach --remove "$SB_ART/uki-unsigned.efi" >/dev/null
  sbsign --key "$OTHER/key.secureboot/db.key" --cert "$OTHER/key.secureboot/db.crt" \
    --output "$SB_ART/uki-tampered.efi" "$SB_ART/uki-unsigned.efi" 2>/dev/null
  MTOOLS_SKIP_CHECK=1 mcopy -o -n -i "$esp" "$SB_ART/uki-tampered.efi" "::/EFI/Linux/$uki_name"
  check "Secure Boot: slot a's UKI signed by another key set is refused by the firmware" sb_refused "foreign signature"
  # The same UKI with its command line edited (panic=10 → panic=99, same length), its own
  # signature kept: the signature no longer matches.
  perl -pe 's/panic=10 /panic=99 /' "$SB_ART/uki-signed.efi" >"$SB_ART/uki-tampered.efi"
  check "the edit changed the UKI" test "$(cmp -l "$SB_ART/uki-signed.efi" "$SB_ART/uki-tampered.efi" | wc -l)" -gt 0
  MTOOLS_SKIP_CHECK=1 mcopy -o -n -i "$esp" "$SB_ART/uki-tampered.efi" "::/EFI/Linux/$uki_name"
  check "Secure Boot: slot a's UKI with an edited command line is refused by the firmware" sb_refused "edited command line"
}
