//! The setup hotspot: an unclaimed device with Wi-Fi but no network, some seconds after start,
//! opens a WPA2 access point `Hearth-setup-XXXX` so a phone can reach the claim wizard, and
//! closes it once the device is claimed. The network name and password are printed with the
//! setup code and written to the setup-code file.
//!
//! It never starts on a claimed device or one that is already online, and never keeps running
//! after the claim.

use super::NetworkControl;
use crate::state::AppState;
use std::time::Duration;

/// Crockford's base32 (no I, L, O or U), as in setup codes.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

fn random_text<const N: usize>() -> String {
    crate::auth::tokens::random_bytes::<N>()
        .iter()
        .map(|b| ALPHABET[usize::from(b & 31)] as char)
        .collect()
}

/// A fresh network name and a 16-character WPA2 password.
pub fn credentials() -> (String, String) {
    (
        format!("Hearth-setup-{}", random_text::<4>()),
        random_text::<16>(),
    )
}

/// Starts the hotspot task if the configuration allows it.
pub fn spawn(state: AppState) -> Option<tokio::task::JoinHandle<()>> {
    state
        .config
        .setup_hotspot
        .then(|| tokio::spawn(async move { run(&state).await }))
}

fn claimed(state: &AppState) -> bool {
    state.accounts.is_claimed().unwrap_or(false)
}

async fn run(state: &AppState) {
    tokio::time::sleep(state.config.setup_hotspot_delay).await;
    if claimed(state) {
        return;
    }
    let network: &dyn NetworkControl = state.network.as_ref();
    match network.connectivity().await {
        Ok(c) if c.has_wifi && !c.online => {}
        Ok(c) => {
            tracing::info!(?c, "no setup hotspot needed");
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot check the network; no setup hotspot");
            return;
        }
    }
    let (ssid, password) = credentials();
    let handle = match network.start_hotspot(&ssid, &password).await {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the setup hotspot");
            return;
        }
    };
    announce(state, &ssid, &password);
    while !claimed(state) {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    match network.stop_hotspot(&handle).await {
        Ok(()) => tracing::info!(%ssid, "device claimed; setup hotspot stopped"),
        Err(e) => tracing::warn!(error = %e, "cannot stop the setup hotspot"),
    }
}

fn announce(state: &AppState, ssid: &str, password: &str) {
    let code = match state.accounts.ensure_setup_code() {
        Ok(Some(code)) => code,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the setup code");
            return;
        }
    };
    let text = format!(
        "Hearth setup code: {code}\nSetup Wi-Fi: {ssid}\nSetup Wi-Fi password: {password}\n"
    );
    if let Err(e) =
        crate::fsutil::write_atomic(&state.config.setup_code_file, text.as_bytes(), 0o600)
    {
        tracing::warn!(error = %e, "cannot write the setup-code file");
    }
    tracing::info!(%ssid, "setup hotspot started");
    println!(
        "Hearth setup Wi-Fi: {ssid}  password: {password}  (join it, then open https://10.42.0.1/)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_have_the_documented_shape() {
        let (ssid, password) = credentials();
        assert!(
            ssid.starts_with("Hearth-setup-") && ssid.len() == 17,
            "{ssid}"
        );
        assert_eq!(password.len(), 16);
        assert!(super::super::validate::wpa_password(&password).is_ok());
        assert_ne!(credentials().1, password);
    }
}
