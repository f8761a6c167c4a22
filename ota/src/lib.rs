//! hearth-ota: the update bundle format, signing and verification, the static update
//! repository, delta planning, streaming install and boot control.
//!
//! A library first (used by `hearth-image` to make bundles and by `hearth-agent` to install
//! them); the `hearth-ota` binary is a thin command line over it. The byte layout is specified
//! in `docs/ota-bundle.md`; the design in `docs/ota.md`.
//!
//! Invariants: no byte of a key list, manifest or index is decoded before its signature has
//! verified; no chunk reaches a slot before its hash has; a slot is marked bootable only after
//! its whole content has been read back and verified.
pub mod boot;
pub mod bundle;
pub mod chunker;
pub mod decide;
pub mod delta;
pub mod format;
pub mod fs_extent;
pub mod fsutil;
pub mod hexutil;
pub mod http;
pub mod index;
pub mod install;
pub mod keylist;
pub mod keys;
pub mod manifest;
pub mod pages;
pub mod release;
pub mod repo;
pub mod source;
pub mod storage;

pub use format::VerifyError;
