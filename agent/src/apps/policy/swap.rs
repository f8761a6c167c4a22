//! The bind-source invariant that makes symlink swaps impossible.
//!
//! Docker resolves a bind mount's source path on the host at every start of the container,
//! following symlinks — its own restarts (restart policy, dockerd restart, reboot) included,
//! which Hearth does not see. A container that can write a folder that *contains* another bind
//! source can replace that source (or a folder on its path) with a symlink to `/`, and the next
//! start mounts the host's root. So:
//!
//! **No bind source of any container of any app lies strictly inside a folder that some
//! container (of any app) mounts writable.**
//!
//! With that, no container can create, rename or replace any component of any bind source
//! below its zone root; the zone roots and their parents are not mounted writable by anyone
//! (binding them is a finding at least, and a writable one breaks this invariant for every
//! other source). Hearth creates the sources itself without following symlinks and re-checks
//! them before each start it makes (`lifecycle::host`), which covers what changed while the
//! app was stopped (a user, the file manager). `check` runs on every plan (inside the app) and
//! against every other installed app before install, update and settings edits.

use crate::apps::plan::{ContainerSpec, Mount, Plan, normalize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// One bind source of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindSource {
    pub app: String,
    pub service: String,
    pub path: PathBuf,
    pub writable: bool,
    /// Where the container mounts it.
    pub target: String,
    /// Every mount target of the container (to tell whether a folder is a mount point in it).
    pub mounted_at: BTreeSet<String>,
}

fn clean(t: &str) -> &str {
    match t.trim_end_matches('/') {
        "" => "/",
        t => t,
    }
}

/// A bind source another container could swap.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{inner} (mounted by {inner_app}/{inner_service}) lies inside {outer}, which \
     {writer_app}/{writer_service} mounts writable: that container could replace it with a link \
     to any host folder. Mount the folders side by side, or the outer one read-only"
)]
pub struct Swappable {
    pub inner: String,
    pub inner_app: String,
    pub inner_service: String,
    pub outer: String,
    pub writer_app: String,
    pub writer_service: String,
}

/// Every bind source of `plan`: bind mounts, and `local` volumes that bind a host folder
/// (`driver_opts: {o: bind, device: ...}`), writable if any container mounts them writable.
pub fn bind_sources(plan: &Plan) -> Vec<BindSource> {
    let mut out = Vec::new();
    for c in &plan.containers {
        let mounted_at: BTreeSet<String> = c
            .mounts
            .iter()
            .map(|m| clean(m.target()).to_string())
            .collect();
        for m in &c.mounts {
            match m {
                Mount::Bind {
                    source,
                    read_only,
                    target,
                } => out.push(BindSource {
                    app: plan.app_id.clone(),
                    service: c.service.clone(),
                    path: source.clone(),
                    writable: !read_only,
                    target: target.clone(),
                    mounted_at: mounted_at.clone(),
                }),
                Mount::Volume {
                    name: Some(n),
                    read_only,
                    target,
                } => {
                    let Some(v) = plan.volumes.iter().find(|v| &v.name == n) else {
                        continue;
                    };
                    let bind = v
                        .driver_opts
                        .get("o")
                        .is_some_and(|o| o.split(',').any(|x| x == "bind" || x == "rbind"));
                    if let (true, Some(dev)) = (bind, v.driver_opts.get("device")) {
                        out.push(BindSource {
                            app: plan.app_id.clone(),
                            service: c.service.clone(),
                            path: normalize(std::path::Path::new(dev)),
                            writable: !read_only,
                            target: target.clone(),
                            mounted_at: mounted_at.clone(),
                        });
                    }
                }
                Mount::Volume { .. } | Mount::Tmpfs { .. } => {}
            }
        }
    }
    out
}

/// Whether the writer's container has a mount on every folder from `outer` (exclusive) down to
/// `inner` (inclusive), at the place each appears inside its writable mount: each is then a
/// mount point in its own namespace, which the kernel refuses to rename or remove (`EBUSY`), so
/// it cannot swap `inner`.
fn pinned(outer: &BindSource, inner: &Path) -> bool {
    let mut p = inner;
    while p != outer.path {
        let Ok(rel) = p.strip_prefix(&outer.path) else {
            return false;
        };
        let at = format!(
            "{}/{}",
            clean(&outer.target).trim_end_matches('/'),
            rel.display()
        );
        if !outer.mounted_at.contains(&at) {
            return false;
        }
        match p.parent() {
            Some(parent) => p = parent,
            None => return false,
        }
    }
    true
}

/// Checks the invariant over `ours` together with `theirs` (other apps' sources, which are
/// assumed to satisfy it among themselves). A source inside a writable mount of the same
/// container is fine when that container pins it (see [`pin_nested_sources`]).
pub fn check(ours: &[BindSource], theirs: &[BindSource]) -> Result<(), Box<Swappable>> {
    check_sides(ours, theirs, true)
}

/// Like [`check`], but only where `ours` is the side that could be swapped (an installed app
/// re-checked at start-up: holding the app whose source could be swapped is what keeps the
/// host safe; the writer beside it gains nothing from its own restarts).
pub fn check_inner(ours: &[BindSource], theirs: &[BindSource]) -> Result<(), Box<Swappable>> {
    check_sides(ours, theirs, false)
}

fn check_sides(
    ours: &[BindSource],
    theirs: &[BindSource],
    ours_as_writer: bool,
) -> Result<(), Box<Swappable>> {
    let all: Vec<(&BindSource, bool)> = ours
        .iter()
        .map(|b| (b, true))
        .chain(theirs.iter().map(|b| (b, false)))
        .collect();
    for (outer, outer_ours) in &all {
        if !outer.writable {
            continue;
        }
        for (inner, inner_ours) in &all {
            if !(*inner_ours || (ours_as_writer && *outer_ours)) {
                continue;
            }
            if inner.path != outer.path
                && inner.path.starts_with(&outer.path)
                && !pinned(outer, &inner.path)
            {
                return Err(Box::new(Swappable {
                    inner: inner.path.display().to_string(),
                    inner_app: inner.app.clone(),
                    inner_service: inner.service.clone(),
                    outer: outer.path.display().to_string(),
                    writer_app: outer.app.clone(),
                    writer_service: outer.service.clone(),
                }));
            }
        }
    }
    Ok(())
}

/// Within one app: every container that mounts a folder writable also mounts, at the matching
/// place inside it, each bind source of the app that lies inside that folder and every folder
/// on the way to it. The container sees the same files, but in its mount namespace each of
/// those folders is now a mount point, and the kernel refuses to rename or remove a mount point
/// of the caller's own namespace (`EBUSY`): `./:/app` beside `./data:/data` can no longer turn
/// `data` into a link. (Other apps' containers are not re-created for a new app, so across apps
/// such nesting is refused instead.)
pub fn pin_nested_sources(plan: &mut Plan) {
    let sources: BTreeSet<PathBuf> = bind_sources(plan).into_iter().map(|b| b.path).collect();
    for c in &mut plan.containers {
        pin_container(c, &sources);
    }
}

fn pin_container(c: &mut ContainerSpec, sources: &BTreeSet<PathBuf>) {
    let writable: Vec<(PathBuf, String)> = c
        .mounts
        .iter()
        .filter_map(|m| match m {
            Mount::Bind {
                source,
                target,
                read_only: false,
            } => Some((source.clone(), target.clone())),
            _ => None,
        })
        .collect();
    for (outer, target) in writable {
        for s in sources
            .iter()
            .filter(|s| **s != outer && s.starts_with(&outer))
        {
            let mut chain = Vec::new();
            let mut p = s.as_path();
            while p != outer {
                chain.push(p.to_path_buf());
                match p.parent() {
                    Some(parent) => p = parent,
                    None => break,
                }
            }
            for p in chain.into_iter().rev() {
                let Ok(rel) = p.strip_prefix(&outer) else {
                    continue;
                };
                let t = format!("{}/{}", clean(&target).trim_end_matches('/'), rel.display());
                if !c.mounts.iter().any(|m| clean(m.target()) == t) {
                    c.mounts.push(Mount::Bind {
                        source: p,
                        target: t,
                        read_only: false,
                    });
                }
            }
        }
    }
}
