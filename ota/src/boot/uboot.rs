//! U-Boot environment with redundant copies (the `fw_setenv` layout: CRC32 of the data, a flags
//! byte, then `name=value\0…\0\0` padded to the environment size). A change is written to the
//! older copy with a higher flags counter, then synced; the other copy stays intact, so a power
//! cut leaves either the old or the new environment.
//!
//! Variables as RAUC uses them: `BOOT_ORDER` ("A B") and `BOOT_A_LEFT` / `BOOT_B_LEFT`. Hearth's
//! boot script (docs/ota.md) walks `BOOT_ORDER` and boots the first slot whose `_LEFT` is unset
//! (committed: never counted) or above 0 (trial: decremented and saved before booting).
//! - unbootable: the slot leaves `BOOT_ORDER`, `_LEFT=0`.
//! - trial: the slot goes first in `BOOT_ORDER` with `_LEFT=3`.
//! - commit: the slot goes first and its `_LEFT` is removed.
use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use super::{BootControl, BootError, BootState, RebootRequest, Slot, TRIAL_TRIES};

const HEADER: usize = 5;

/// Where the two copies live (`fw_env.config`: device, offset; both copies the same size).
pub trait EnvStore {
    fn size(&self) -> usize;
    fn read_copy(&mut self, copy: usize) -> std::io::Result<Vec<u8>>;
    /// Writes one whole copy and makes it durable.
    fn write_copy(&mut self, copy: usize, bytes: &[u8]) -> std::io::Result<()>;
    fn describe(&self) -> String;
}

/// Copies in files or block devices at offsets.
pub struct FileEnvStore {
    pub copies: [(PathBuf, u64); 2],
    pub size: usize,
}

impl EnvStore for FileEnvStore {
    fn size(&self) -> usize {
        self.size
    }

    fn read_copy(&mut self, copy: usize) -> std::io::Result<Vec<u8>> {
        let (path, offset) = &self.copies[copy];
        let mut buf = vec![0u8; self.size];
        std::fs::File::open(path)?.read_exact_at(&mut buf, *offset)?;
        Ok(buf)
    }

    fn write_copy(&mut self, copy: usize, bytes: &[u8]) -> std::io::Result<()> {
        let (path, offset) = &self.copies[copy];
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        file.write_all_at(bytes, *offset)?;
        file.sync_all()
    }

    fn describe(&self) -> String {
        format!(
            "{} / {}",
            self.copies[0].0.display(),
            self.copies[1].0.display()
        )
    }
}

pub type Env = BTreeMap<String, String>;

/// Encodes one copy.
pub fn encode(env: &Env, size: usize, flags: u8) -> Option<Vec<u8>> {
    let mut data = Vec::new();
    for (k, v) in env {
        data.extend_from_slice(format!("{k}={v}").as_bytes());
        data.push(0);
    }
    data.push(0);
    if data.len() > size - HEADER {
        return None;
    }
    data.resize(size - HEADER, 0);
    let mut out = crc32fast::hash(&data).to_le_bytes().to_vec();
    out.push(flags);
    out.extend_from_slice(&data);
    Some(out)
}

/// Decodes one copy: `None` when its CRC does not match (torn or never written).
pub fn decode(bytes: &[u8]) -> Option<(u8, Env)> {
    if bytes.len() <= HEADER {
        return None;
    }
    let crc = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let data = &bytes[HEADER..];
    if crc32fast::hash(data) != crc {
        return None;
    }
    let mut env = Env::new();
    for item in data.split(|b| *b == 0).take_while(|s| !s.is_empty()) {
        let text = String::from_utf8_lossy(item);
        if let Some((k, v)) = text.split_once('=') {
            env.insert(k.to_string(), v.to_string());
        }
    }
    Some((bytes[4], env))
}

/// Is flags `a` newer than `b` (a counter that wraps, as `fw_env` treats it)?
fn newer(a: u8, b: u8) -> bool {
    match (a, b) {
        (0, 255) => true,
        (255, 0) => false,
        _ => a > b,
    }
}

pub struct UBootEnv<S: EnvStore> {
    store: S,
}

impl<S: EnvStore> UBootEnv<S> {
    pub fn new(store: S) -> Self {
        UBootEnv { store }
    }

    pub fn store(&mut self) -> &mut S {
        &mut self.store
    }

    fn io(&self) -> impl Fn(std::io::Error) -> BootError {
        let path = self.store.describe();
        move |source| BootError::Io {
            path: path.clone(),
            source,
        }
    }

    /// The current copy: (index, flags, env).
    fn current(&mut self) -> Result<(usize, u8, Env), BootError> {
        let a = self.store.read_copy(0).map_err(self.io())?;
        let b = self.store.read_copy(1).map_err(self.io())?;
        match (decode(&a), decode(&b)) {
            (Some((fa, ea)), Some((fb, eb))) => Ok(if newer(fb, fa) {
                (1, fb, eb)
            } else {
                (0, fa, ea)
            }),
            (Some((fa, ea)), None) => Ok((0, fa, ea)),
            (None, Some((fb, eb))) => Ok((1, fb, eb)),
            (None, None) => Err(BootError::Malformed {
                path: self.store.describe(),
                reason: "no copy of the environment has a valid CRC".into(),
            }),
        }
    }

    pub fn read_env(&mut self) -> Result<Env, BootError> {
        Ok(self.current()?.2)
    }

    /// Writes `env` over the older copy.
    pub fn write_env(&mut self, env: &Env) -> Result<(), BootError> {
        let (copy, flags) = match self.current() {
            Ok((i, f, _)) => (1 - i, f.wrapping_add(1)),
            Err(BootError::Malformed { .. }) => (0, 1),
            Err(e) => return Err(e),
        };
        let bytes = encode(env, self.store.size(), flags).ok_or_else(|| BootError::Malformed {
            path: self.store.describe(),
            reason: "environment too large".into(),
        })?;
        self.store.write_copy(copy, &bytes).map_err(self.io())
    }

    fn edit(&mut self, f: impl FnOnce(&mut Env)) -> Result<(), BootError> {
        let mut env = self.read_env()?;
        f(&mut env);
        self.write_env(&env)
    }

    /// What the boot script does at power-on.
    pub fn simulate_boot(&mut self) -> Result<Option<Slot>, BootError> {
        let mut env = self.read_env()?;
        for slot in order(&env) {
            match left(&env, slot) {
                None => return Ok(Some(slot)),
                Some(0) => continue,
                Some(n) => {
                    env.insert(left_var(slot), (n - 1).to_string());
                    self.write_env(&env)?;
                    return Ok(Some(slot));
                }
            }
        }
        Ok(None)
    }
}

fn left_var(slot: Slot) -> String {
    format!("BOOT_{}_LEFT", slot.upper())
}

fn order(env: &Env) -> Vec<Slot> {
    env.get("BOOT_ORDER")
        .map(|o| o.split_whitespace().filter_map(Slot::parse).collect())
        .unwrap_or_default()
}

fn left(env: &Env, slot: Slot) -> Option<u32> {
    env.get(&left_var(slot))
        .filter(|v| !v.is_empty())
        .map(|v| v.parse().unwrap_or(0))
}

fn set_order(env: &mut Env, slots: &[Slot]) {
    let text: Vec<&str> = slots.iter().map(|s| s.upper()).collect();
    env.insert("BOOT_ORDER".into(), text.join(" "));
}

impl<S: EnvStore> BootControl for UBootEnv<S> {
    fn state(&mut self) -> Result<BootState, BootError> {
        let env = self.read_env()?;
        let order = order(&env);
        let bootable = order
            .iter()
            .copied()
            .filter(|s| left(&env, *s) != Some(0))
            .collect();
        let primary = order.iter().copied().find(|s| left(&env, *s).is_none());
        let trial = order
            .iter()
            .copied()
            .find_map(|s| left(&env, s).map(|n| (s, n)));
        Ok(BootState {
            primary,
            trial,
            bootable,
        })
    }

    fn mark_unbootable(&mut self, slot: Slot) -> Result<(), BootError> {
        self.edit(|env| {
            let rest: Vec<Slot> = order(env).into_iter().filter(|s| *s != slot).collect();
            set_order(env, &rest);
            env.insert(left_var(slot), "0".into());
        })
    }

    fn set_trial(&mut self, slot: Slot, _version: &str) -> Result<RebootRequest, BootError> {
        self.edit(|env| {
            let rest: Vec<Slot> = order(env).into_iter().filter(|s| *s != slot).collect();
            set_order(env, &[&[slot], &rest[..]].concat());
            env.insert(left_var(slot), TRIAL_TRIES.to_string());
        })?;
        Ok(self.reboot_request())
    }

    fn commit(&mut self, slot: Slot) -> Result<(), BootError> {
        // A trial's last boot has `_LEFT=0` while it runs; a slot outside BOOT_ORDER never ran.
        if !order(&self.read_env()?).contains(&slot) {
            return Err(BootError::NotBootable(slot));
        }
        self.edit(|env| {
            let rest: Vec<Slot> = order(env).into_iter().filter(|s| *s != slot).collect();
            set_order(env, &[&[slot], &rest[..]].concat());
            env.remove(&left_var(slot));
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_round_trip_and_a_torn_copy_is_ignored() {
        let mut env = Env::new();
        env.insert("BOOT_ORDER".into(), "A B".into());
        let bytes = encode(&env, 256, 7).expect("fits");
        assert_eq!(decode(&bytes), Some((7, env.clone())));
        let mut torn = bytes.clone();
        torn[100] ^= 1;
        assert_eq!(decode(&torn), None);
        assert!(newer(0, 255) && newer(8, 7) && !newer(255, 0));
    }
}
