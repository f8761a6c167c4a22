//! hearth-ota: the update bundle format, signing and verification, the static update
//! repository, slot and boot control, streaming install and delta downloads.
//!
//! A library first (used by `hearth-image` to make bundles and by `hearth-agent` to install
//! them); the `hearth-ota` binary is a thin command line over it. Nothing here is written yet:
//! the over-the-air update issue fills it in.
