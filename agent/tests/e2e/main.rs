//! End-to-end scenarios against a Hearth image booted under QEMU: API and guest checks in
//! Rust, orchestration in shell. `ci/e2e` and `ci/e2e-ota` build the images, start, stop and
//! power-cut QEMU and serve the update repository; between those steps they run one ignored
//! test of this binary per phase (`image::first_boot`, `image::after_reboot`, `ota::v1_claim`
//! …) against the VM that is up at that moment. All tests here are `#[ignore]`d: a plain
//! `cargo test` has no VM.
//!
//! The protocol with the shell (see `ci/lib.sh` and docs/testing.md):
//! - in: `HEARTH_E2E_URL` (the agent's HTTPS base), `HEARTH_E2E_HTTP_URL` (its plain HTTP
//!   port), `HEARTH_E2E_SSH` (an executable that runs its arguments in the guest over SSH),
//!   `HEARTH_E2E_RUN_DIR` (QEMU's run folder: serial.log, qemu.pid; state kept between phases),
//!   `HEARTH_E2E_REPORT` (the report file), plus the variables a phase names in its module;
//! - out: one line per check, `ok   NAME` or `FAIL NAME: why`, on stdout and appended to the
//!   report; notes (timings, sizes) likewise; the test fails when any check failed; a failed
//!   check the rest of the run depends on also creates `$HEARTH_E2E_RUN_DIR/e2e-stop`.

#[path = "../integration/common/mod.rs"]
mod common;
mod demo;
mod harness;
mod image;
mod ota;
