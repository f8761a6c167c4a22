//! Apps: CasaOS-compatible stores, the Compose model, the planner, the one container policy, the
//! container runtime boundary and the app lifecycle.
//!
//! Data flows one way: compose text → [`compose`] (typed model, interpolation) → [`plan`] (pure
//! install plan, judged by [`policy`]) → the lifecycle, which is the only part that talks to a
//! container runtime. Nothing before the lifecycle touches Docker or the disk.

pub mod casaos;
pub mod catalog;
pub mod compose;
pub mod convert;
pub mod fetch;
pub mod labels;
pub mod lifecycle;
pub mod media;
pub mod names;
pub mod plan;
pub mod policy;
pub mod record;
pub mod runtime;
pub mod source;
pub mod store_zip;
