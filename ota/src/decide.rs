//! Whether a device may and should install what an index or bundle offers. Pure functions.
use serde::{Deserialize, Serialize};

use crate::format::VerifyError;
use crate::index::Index;
use crate::manifest::Manifest;

/// What the running system is.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Device {
    pub board: String,
    pub arch: String,
    pub version_number: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    UpToDate,
    Update,
}

fn check(
    device: &Device,
    board: &str,
    arch: &str,
    number: u64,
    min: u64,
) -> Result<(), VerifyError> {
    if board != device.board {
        return Err(VerifyError::WrongBoard {
            expected: device.board.clone(),
            found: board.to_string(),
        });
    }
    if arch != device.arch {
        return Err(VerifyError::WrongArch {
            expected: device.arch.clone(),
            found: arch.to_string(),
        });
    }
    if number <= device.version_number {
        return Err(VerifyError::Downgrade {
            current: device.version_number,
            offered: number,
        });
    }
    if min > device.version_number {
        return Err(VerifyError::TooOld {
            current: device.version_number,
            min,
        });
    }
    Ok(())
}

/// May this verified bundle be installed on `device`?
pub fn check_manifest(device: &Device, m: &Manifest) -> Result<(), VerifyError> {
    check(
        device,
        &m.board,
        &m.arch,
        m.version_number,
        m.min_version_number,
    )
}

/// Does an accepted index offer an update? The same version is "up to date", not an error;
/// an older one in the index is refused as a downgrade.
pub fn decide(device: &Device, index: &Index) -> Result<Decision, VerifyError> {
    let l = &index.latest;
    if index.board == device.board
        && l.arch == device.arch
        && l.version_number == device.version_number
    {
        return Ok(Decision::UpToDate);
    }
    check(
        device,
        &index.board,
        &l.arch,
        l.version_number,
        l.min_version_number,
    )?;
    Ok(Decision::Update)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> Device {
        Device {
            board: "rpi4".into(),
            arch: "aarch64".into(),
            version_number: 10,
        }
    }

    #[test]
    fn refuses_each_mismatch_with_its_own_error() {
        let d = device();
        assert!(check(&d, "rpi4", "aarch64", 11, 10).is_ok());
        assert!(matches!(
            check(&d, "rpi5", "aarch64", 11, 10),
            Err(VerifyError::WrongBoard { .. })
        ));
        assert!(matches!(
            check(&d, "rpi4", "x86_64", 11, 10),
            Err(VerifyError::WrongArch { .. })
        ));
        assert!(matches!(
            check(&d, "rpi4", "aarch64", 10, 1),
            Err(VerifyError::Downgrade { .. })
        ));
        assert!(matches!(
            check(&d, "rpi4", "aarch64", 9, 1),
            Err(VerifyError::Downgrade { .. })
        ));
        assert!(matches!(
            check(&d, "rpi4", "aarch64", 12, 11),
            Err(VerifyError::TooOld { .. })
        ));
    }
}
