//! Checking the repository: fetch the channel's signed index, accept it against the device's
//! trust (root key, key-list floor, anti-replay) and decide whether it offers an update.

use super::device::DeviceInfo;
use super::machine::Event;
use super::records::*;
use super::{Service, UpdateError, rfc3339};
use hearth_ota::format::Trust;

impl Service {
    pub(super) fn trust(&self, device: &DeviceInfo) -> Result<Trust, UpdateError> {
        let mut t = Trust::new(device.root);
        t.keylist_floor = self.store.update_trust()?.keylist_floor;
        Ok(t)
    }

    pub(super) fn client(&self) -> Result<reqwest::Client, UpdateError> {
        let mut b = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(20))
            .redirect(reqwest::redirect::Policy::limited(5));
        for path in &self.config.ca_files {
            let pem = std::fs::read(path)
                .map_err(|e| UpdateError::NotConfigured(format!("{}: {e}", path.display())))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| UpdateError::NotConfigured(format!("{}: {e}", path.display())))?;
            b = b.add_root_certificate(cert);
        }
        b.build().map_err(|e| UpdateError::Internal(e.to_string()))
    }

    /// Checks the repository: fetch and accept the index, decide. A refused index is recorded
    /// as the last check's error and returned.
    pub async fn check(&self) -> Result<(), UpdateError> {
        let device = self.device()?;
        {
            let mut live = self.live();
            if !live.state.is_idle() {
                return Err(UpdateError::Busy);
            }
            let _ = live.state.apply(Event::CheckStarted);
        }
        // Back to idle even when the caller goes away mid-check (the future is dropped).
        struct Finished<'a>(&'a Service);
        impl Drop for Finished<'_> {
            fn drop(&mut self) {
                let _ = self.0.live().state.apply(Event::CheckFinished);
            }
        }
        let finished = Finished(self);
        let result = self.check_inner(&device).await;
        drop(finished);
        let policy = self.policy()?;
        let now = self.clock.now();
        let record = match &result {
            Ok((available, latest)) => CheckRecord {
                last: LastCheck {
                    at: rfc3339(now),
                    result: if available.is_some() {
                        CheckResult::Available
                    } else {
                        CheckResult::UpToDate
                    },
                    error: None,
                },
                channel: policy.channel.clone(),
                available: available.clone(),
                latest: latest.clone(),
            },
            Err(e) => {
                // A failed check keeps what an earlier one found (an offline device can still
                // install what it already knows about).
                let old = self
                    .store
                    .update_check()?
                    .filter(|c| c.channel == policy.channel);
                CheckRecord {
                    last: LastCheck {
                        at: rfc3339(now),
                        result: CheckResult::Error,
                        error: Some(e.info()),
                    },
                    channel: policy.channel.clone(),
                    available: old.as_ref().and_then(|o| o.available.clone()),
                    latest: old.and_then(|o| o.latest),
                }
            }
        };
        self.store.put_update_check(&record)?;
        result.map(|_| ())
    }

    async fn check_inner(
        &self,
        device: &DeviceInfo,
    ) -> Result<(Option<AvailableUpdate>, Option<hearth_ota::index::Latest>), UpdateError> {
        let base = self.config.repo_url.clone().unwrap_or_default();
        let policy = self.policy()?;
        let client = self.client()?;
        let url = hearth_ota::http::index_url_for(
            &base,
            &policy.channel,
            &device.release.board,
            self.config.bundle_format,
        );
        let bytes = hearth_ota::http::fetch_index(&client, &url)
            .await
            .map_err(|e| UpdateError::RepoUnreachable(e.to_string()))?;
        let mut trust_rec = self.store.update_trust()?;
        let trust = self.trust(device)?;
        let accepted = hearth_ota::index::accept(
            &bytes,
            &trust,
            &policy.channel,
            &device.release.board,
            self.clock.now(),
            trust_rec.seen.get(&policy.channel),
        )
        .map_err(UpdateError::IndexInvalid)?;
        let dev = hearth_ota::decide::Device {
            board: device.release.board.clone(),
            arch: device.release.arch.clone(),
            version_number: device.release.version_number,
        };
        let decision =
            hearth_ota::decide::decide(&dev, &accepted.index).map_err(UpdateError::IndexInvalid)?;
        trust_rec
            .seen
            .insert(policy.channel.clone(), accepted.seen.clone());
        trust_rec.keylist_floor = trust_rec.keylist_floor.max(accepted.keylist_serial);
        self.store.put_update_trust(&trust_rec)?;
        let l = &accepted.index.latest;
        Ok(match decision {
            hearth_ota::decide::Decision::UpToDate => (None, None),
            hearth_ota::decide::Decision::Update => (
                Some(AvailableUpdate {
                    version: l.version.clone(),
                    version_number: l.version_number,
                    size: l.size,
                    notes: l.release_notes.clone(),
                    published: rfc3339(accepted.index.created),
                }),
                Some(l.clone()),
            ),
        })
    }
}
