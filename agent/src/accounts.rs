//! Accounts: the device claim, users, login sessions and second factors. This is the service
//! layer the HTTP handlers call; it knows nothing of HTTP.
//!
//! Invariants: a session token and a device token are only ever stored hashed; the claim happens
//! at most once (a store transaction decides); at least one admin always exists after the claim;
//! login failures look the same whether the user exists or not.

use crate::auth::throttle::{Policy, Throttle};
use crate::auth::{password, tokens, totp};
use crate::clock::SharedClock;
use crate::error::{ServiceError, ServiceResult};
use crate::server::client_group;
use crate::store::{
    DeviceSettings, KnownDevice, Role, SessionRecord, Store, TotpState, UserRecord,
};
use crate::update::records::{ClaimUpdates, MaintenanceWindow, UpdatePolicy, window_problem};
use crate::validate;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;
use time::OffsetDateTime;

/// How long sessions live.
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    pub idle_timeout: Duration,
    pub max_age: Duration,
}

/// What a successful login or claim hands back to the HTTP layer.
#[derive(Debug, Clone)]
pub struct LoginOutcome {
    pub session_token: String,
    pub session: SessionRecord,
    pub user: UserRecord,
    /// A new known-device token to set as a cookie, if the browser had none for this user.
    pub new_device_token: Option<String>,
}

/// An authenticated request's session.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub token_hash: String,
    pub session: SessionRecord,
    pub user: UserRecord,
    pub expires_at: OffsetDateTime,
}

#[derive(Debug)]
pub struct ClaimInput {
    pub code: String,
    pub username: String,
    pub password: String,
    pub hostname: Option<String>,
    pub timezone: Option<String>,
    /// The wizard's update step; `None`: automatic with the default window.
    pub updates: Option<ClaimUpdates>,
}

#[derive(Debug, Default)]
pub struct UserUpdate {
    pub role: Option<Role>,
    pub password: Option<String>,
    pub app_logs: Option<bool>,
}

/// Channels a claim may choose besides the image's own (`update.channel`).
pub const KNOWN_CHANNELS: [&str; 2] = ["stable", "beta"];

pub struct Accounts {
    store: Store,
    clock: SharedClock,
    sessions: SessionPolicy,
    zoneinfo_dir: PathBuf,
    setup_code_file: PathBuf,
    /// The image's update channel (`update.channel`): the claim's default channel.
    update_channel: String,
    login_by_client: Throttle,
    login_by_account: Throttle,
    claim_by_client: Throttle,
    claim_global: Throttle,
    /// Checks of the current password by a signed-in user (password change, TOTP off): a
    /// stolen session must not become a password oracle.
    reauth_by_account: Throttle,
    /// Bounds the memory and CPU password hashing takes.
    hashing: password::HashGate,
    /// Serialises read-modify-write changes to users (the last-admin rule needs it).
    user_changes: Mutex<()>,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts").finish_non_exhaustive()
    }
}

const HOUR: Duration = Duration::from_secs(3600);

impl Accounts {
    pub fn new(
        store: Store,
        clock: SharedClock,
        sessions: SessionPolicy,
        setup_code_file: PathBuf,
    ) -> Self {
        let throttle = |free, base, max_secs, entries| {
            Throttle::new(Policy {
                free_failures: free,
                base_delay: Duration::from_secs(base),
                max_delay: Duration::from_secs(max_secs),
                forget_after: HOUR,
                max_entries: entries,
            })
        };
        Accounts {
            store,
            clock,
            sessions,
            zoneinfo_dir: PathBuf::from("/usr/share/zoneinfo"),
            setup_code_file,
            update_channel: "stable".into(),
            // A client may guess often, but is slowed to one try per 5 minutes at worst.
            login_by_client: throttle(10, 1, 300, 10_000),
            // The account cap is short so that an attacker cannot lock the owner out for long;
            // browsers that logged in as the user before are exempt from it altogether.
            login_by_account: throttle(5, 1, 30, 10_000),
            claim_by_client: throttle(5, 2, 300, 10_000),
            claim_global: throttle(20, 1, 60, 1),
            reauth_by_account: throttle(5, 1, 300, 10_000),
            hashing: password::HashGate::for_this_device(),
            user_changes: Mutex::new(()),
        }
    }

    /// Replaces the hashing bound (tests measure what a small device would do).
    pub fn with_hash_gate(mut self, gate: password::HashGate) -> Self {
        self.hashing = gate;
        self
    }

    /// The image's update channel, the default of the claim's update choice.
    pub fn with_update_channel(mut self, channel: String) -> Self {
        self.update_channel = channel;
        self
    }

    /// The channels the wizard may choose: the image's and the two every repository made
    /// by `hearth-ota publish` is expected to carry.
    pub fn known_channels(&self) -> Vec<String> {
        let mut v = vec![self.update_channel.clone()];
        for c in KNOWN_CHANNELS {
            if !v.iter().any(|k| k == c) {
                v.push(c.to_string());
            }
        }
        v
    }

    /// The update policy a claim stores (checked; nothing is stored on an error).
    fn claim_policy(&self, choice: Option<ClaimUpdates>) -> ServiceResult<UpdatePolicy> {
        let choice = choice.unwrap_or(ClaimUpdates {
            automatic: true,
            maintenance_window: None,
            channel: None,
        });
        let window = choice.maintenance_window.unwrap_or(MaintenanceWindow {
            start: "03:00".into(),
            end: "05:00".into(),
        });
        if let Some(problem) = window_problem(&window) {
            return Err(ServiceError::invalid("updates.maintenance_window", problem));
        }
        let channel = choice
            .channel
            .unwrap_or_else(|| self.update_channel.clone());
        let known = self.known_channels();
        if !known.contains(&channel) {
            return Err(ServiceError::invalid(
                "updates.channel",
                format!(
                    "Unknown update channel; choose one of: {}.",
                    known.join(", ")
                ),
            ));
        }
        Ok(UpdatePolicy::for_claim(&channel, choice.automatic, window))
    }

    pub fn with_zoneinfo_dir(mut self, dir: PathBuf) -> Self {
        self.zoneinfo_dir = dir;
        self
    }

    fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    // --- claim ---

    pub fn is_claimed(&self) -> ServiceResult<bool> {
        Ok(self.store.claimed_at()?.is_some())
    }

    /// Makes sure an unclaimed device has a setup code, stored and written to the setup-code
    /// file; returns it (None once claimed). The same code survives restarts until the claim.
    /// A file that cannot be written (its boot partition not mounted) is logged, not fatal: the
    /// code reaches the console too, and the dashboard must come up whatever that partition did.
    pub fn ensure_setup_code(&self) -> ServiceResult<Option<String>> {
        if self.is_claimed()? {
            remove_file_if_exists(&self.setup_code_file);
            return Ok(None);
        }
        let code = match self.store.setup_code()? {
            Some(code) => code,
            None => {
                let code = tokens::setup_code::generate();
                self.store.put_setup_code(&code)?;
                code
            }
        };
        if let Err(e) = self.write_setup_code_file(&code) {
            tracing::warn!(path = %self.setup_code_file.display(), error = %e, "cannot write the setup code file");
        }
        Ok(Some(code))
    }

    fn write_setup_code_file(&self, code: &str) -> std::io::Result<()> {
        if let Some(dir) = self.setup_code_file.parent() {
            crate::fsutil::ensure_dir(dir, 0o700)?;
        }
        let text = format!("Hearth setup code: {code}\n");
        crate::fsutil::write_atomic(&self.setup_code_file, text.as_bytes(), 0o600)
    }

    pub async fn claim(&self, input: ClaimInput, client: IpAddr) -> ServiceResult<LoginOutcome> {
        if self.is_claimed()? {
            return Err(ServiceError::AlreadyClaimed);
        }
        let now = self.now();
        let client_key = client_group(client).to_string();
        for (throttle, key) in [
            (&self.claim_global, "global"),
            (&self.claim_by_client, &client_key),
        ] {
            throttle
                .check(key, now)
                .map_err(|retry_after| ServiceError::Throttled { retry_after })?;
        }
        let expected = self
            .store
            .setup_code()?
            .ok_or(ServiceError::AlreadyClaimed)?;
        let given = tokens::setup_code::normalize(&input.code);
        if !tokens::secrets_equal(&given, &tokens::setup_code::normalize(&expected)) {
            self.claim_global.record_failure("global", now);
            self.claim_by_client.record_failure(&client_key, now);
            return Err(ServiceError::SetupCodeInvalid);
        }
        validate::username(&input.username).map_err(|m| ServiceError::invalid("username", m))?;
        password::check_policy(&input.password)
            .map_err(|m| ServiceError::invalid("password", m))?;
        if let Some(name) = &input.hostname {
            validate::hostname(name).map_err(|m| ServiceError::invalid("hostname", m))?;
        }
        let timezone = input.timezone.unwrap_or_else(|| "Etc/UTC".into());
        validate::timezone(&timezone, &self.zoneinfo_dir)?;
        let update_policy = self.claim_policy(input.updates)?;

        let admin = UserRecord {
            username: input.username,
            password_hash: self.hash(input.password).await?,
            role: Role::Admin,
            created_at: now,
            totp: None,
            app_logs: false,
        };
        let settings = DeviceSettings {
            hostname: input.hostname,
            timezone,
        };
        let stamp = now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        if !self
            .store
            .claim(&admin, &settings, &update_policy, &stamp)?
        {
            return Err(ServiceError::AlreadyClaimed);
        }
        self.claim_by_client.record_success(&client_key);
        remove_file_if_exists(&self.setup_code_file);
        tracing::info!(admin = %admin.username, "device claimed");
        self.start_session(admin, None)
    }

    // --- login and sessions ---

    /// Logs in. The order matters for an attacker racing it: the attempt is counted against
    /// the client and the account *before* the password is hashed (so parallel guesses cannot
    /// all pass the throttle), hashing waits for a turn (bounded memory), and the user record
    /// is read again under the user lock before anything is written (a demotion, deletion or
    /// password change that happened meanwhile wins; a TOTP code is spent once).
    pub async fn login(
        &self,
        username: &str,
        password_given: &str,
        totp_code: Option<&str>,
        client: IpAddr,
        device_token: Option<&str>,
    ) -> ServiceResult<LoginOutcome> {
        let now = self.now();
        let client_key = client_group(client).to_string();
        let account_key = username.to_ascii_lowercase();
        // The owner's browsers (known-device cookie) are exempt from the account throttle, so
        // that a stranger's guesses cannot lock the owner out; the client throttle still holds.
        let known_device = self.is_known_device(device_token, username)?;
        let throttled = |retry_after| ServiceError::Throttled { retry_after };
        self.login_by_client
            .reserve(&client_key, now)
            .map_err(throttled)?;
        if !known_device {
            self.login_by_account
                .reserve(&account_key, now)
                .map_err(throttled)?;
        }

        let user = self.store.user(username)?;
        let password_ok = self
            .verify(
                password_given.to_string(),
                user.as_ref().map(|u| u.password_hash.clone()),
            )
            .await?;
        let Some(checked) = user.filter(|_| password_ok) else {
            return Err(ServiceError::InvalidCredentials);
        };

        let user = {
            let _guard = self.user_changes.lock().unwrap_or_else(|e| e.into_inner());
            // Whatever changed while the hash ran is what counts.
            let mut user = match self.store.user(username)? {
                Some(u) if u.password_hash == checked.password_hash => u,
                _ => return Err(ServiceError::InvalidCredentials),
            };
            if let Some(state) = user.totp.as_mut().filter(|t| t.enabled) {
                let Some(code) = totp_code.filter(|c| !c.is_empty()) else {
                    // The password was right: the attempt does not count as a failure, but
                    // the reservation stays until the code comes (it is cleared on success).
                    return Err(ServiceError::TotpRequired);
                };
                let step = totp::verify(&state.secret, code, now.unix_timestamp(), state.last_step)
                    .ok_or(ServiceError::InvalidCredentials)?;
                state.last_step = Some(step);
                self.store.put_user(&user)?;
            }
            user
        };
        self.login_by_client.record_success(&client_key);
        self.login_by_account.record_success(&account_key);
        let keep_device = if known_device { device_token } else { None };
        self.start_session(user, keep_device)
    }

    fn is_known_device(&self, token: Option<&str>, username: &str) -> ServiceResult<bool> {
        let Some(token) = token else { return Ok(false) };
        Ok(self
            .store
            .known_device(&tokens::hash_token(token))?
            .is_some_and(|d| d.username == username))
    }

    fn start_session(
        &self,
        user: UserRecord,
        known_device: Option<&str>,
    ) -> ServiceResult<LoginOutcome> {
        let now = self.now();
        let session_token = tokens::new_token();
        let session = SessionRecord {
            id: tokens::new_id(),
            username: user.username.clone(),
            csrf_token: tokens::new_token(),
            created_at: now,
            last_seen: now,
        };
        self.store
            .put_session(&tokens::hash_token(&session_token), &session)?;
        let new_device_token = match known_device {
            Some(_) => None,
            None => {
                let token = tokens::new_token();
                let device = KnownDevice {
                    username: user.username.clone(),
                    created_at: now,
                };
                self.store
                    .put_known_device(&tokens::hash_token(&token), &device)?;
                Some(token)
            }
        };
        Ok(LoginOutcome {
            session_token,
            session,
            user,
            new_device_token,
        })
    }

    /// Resolves a session token; expired sessions are deleted and refused.
    pub fn authenticate(&self, token: &str) -> ServiceResult<Authenticated> {
        let token_hash = tokens::hash_token(token);
        let mut session = self
            .store
            .session(&token_hash)?
            .ok_or(ServiceError::Unauthenticated)?;
        let now = self.now();
        let expires_at = self.expires_at(&session);
        if now >= expires_at {
            self.store.delete_session(&token_hash)?;
            return Err(ServiceError::Unauthenticated);
        }
        let user = self
            .store
            .user(&session.username)?
            .ok_or(ServiceError::Unauthenticated)?;
        // Record activity at most once a minute: a write per request would wear SD cards.
        if now - session.last_seen > time::Duration::minutes(1) {
            session.last_seen = now;
            self.store.put_session(&token_hash, &session)?;
        }
        let expires_at = self.expires_at(&session);
        Ok(Authenticated {
            token_hash,
            session,
            user,
            expires_at,
        })
    }

    /// Whether the session stored under `token_hash` still exists and has not expired. Cheap and
    /// read-only: long-lived streams call it to end when their session is revoked.
    pub fn session_still_valid(&self, token_hash: &str) -> bool {
        match self.store.session(token_hash) {
            Ok(Some(session)) => self.now() < self.expires_at(&session),
            _ => false,
        }
    }

    /// Whether the session still exists, has not expired, and its user still has `role`.
    pub fn session_still_grants(&self, token_hash: &str, role: Role) -> bool {
        let Ok(Some(session)) = self.store.session(token_hash) else {
            return false;
        };
        self.now() < self.expires_at(&session)
            && matches!(self.store.user(&session.username), Ok(Some(u)) if u.role == role)
    }

    fn expires_at(&self, session: &SessionRecord) -> OffsetDateTime {
        (session.created_at + self.sessions.max_age)
            .min(session.last_seen + self.sessions.idle_timeout)
    }

    pub fn logout(&self, auth: &Authenticated) -> ServiceResult<()> {
        self.store.delete_session(&auth.token_hash)?;
        Ok(())
    }

    /// Number of live sessions (for metrics).
    pub fn session_count(&self) -> ServiceResult<usize> {
        Ok(self.store.sessions()?.len())
    }

    // --- users ---

    pub fn users(&self) -> ServiceResult<Vec<UserRecord>> {
        Ok(self.store.users()?)
    }

    pub async fn create_user(
        &self,
        username: String,
        password_given: String,
        role: Role,
    ) -> ServiceResult<UserRecord> {
        validate::username(&username).map_err(|m| ServiceError::invalid("username", m))?;
        password::check_policy(&password_given)
            .map_err(|m| ServiceError::invalid("password", m))?;
        let user = UserRecord {
            username: username.clone(),
            password_hash: self.hash(password_given).await?,
            role,
            created_at: self.now(),
            totp: None,
            app_logs: false,
        };
        if !self.store.insert_new_user(&user)? {
            return Err(ServiceError::UserExists(username));
        }
        tracing::info!(user = %user.username, ?role, "user created");
        Ok(user)
    }

    pub async fn update_user(
        &self,
        username: &str,
        update: UserUpdate,
    ) -> ServiceResult<UserRecord> {
        let new_hash = match update.password {
            Some(pw) => {
                password::check_policy(&pw).map_err(|m| ServiceError::invalid("password", m))?;
                Some(self.hash(pw).await?)
            }
            None => None,
        };
        let _guard = self.user_changes.lock().unwrap_or_else(|e| e.into_inner());
        let mut user = self
            .store
            .user(username)?
            .ok_or_else(|| ServiceError::NotFound(format!("user {username}")))?;
        if let Some(role) = update.role {
            if user.role == Role::Admin && role != Role::Admin && self.admin_count()? <= 1 {
                return Err(ServiceError::LastAdmin);
            }
            user.role = role;
        }
        if let Some(app_logs) = update.app_logs {
            user.app_logs = app_logs;
        }
        let password_changed = new_hash.is_some();
        if let Some(hash) = new_hash {
            user.password_hash = hash;
        }
        let role_changed = update.role.is_some();
        self.store.put_user(&user)?;
        if role_changed {
            tracing::info!(user = %username, role = ?user.role, "role changed");
        }
        if password_changed {
            self.store.delete_sessions_of(username, None)?;
        }
        Ok(user)
    }

    pub fn delete_user(&self, username: &str) -> ServiceResult<()> {
        let _guard = self.user_changes.lock().unwrap_or_else(|e| e.into_inner());
        let user = self
            .store
            .user(username)?
            .ok_or_else(|| ServiceError::NotFound(format!("user {username}")))?;
        if user.role == Role::Admin && self.admin_count()? <= 1 {
            return Err(ServiceError::LastAdmin);
        }
        self.store.delete_user(username)?;
        tracing::info!(user = %username, "user deleted");
        Ok(())
    }

    fn admin_count(&self) -> ServiceResult<usize> {
        Ok(self
            .store
            .users()?
            .iter()
            .filter(|u| u.role == Role::Admin)
            .count())
    }

    /// Changes the caller's own password; all their other sessions are revoked.
    pub async fn change_password(
        &self,
        auth: &Authenticated,
        current: String,
        new: String,
        client: IpAddr,
    ) -> ServiceResult<()> {
        password::check_policy(&new).map_err(|m| ServiceError::invalid("new_password", m))?;
        self.check_current_password(auth, current, client).await?;
        let new_hash = self.hash(new).await?;
        let _guard = self.user_changes.lock().unwrap_or_else(|e| e.into_inner());
        let mut user = self.current_user(auth)?;
        user.password_hash = new_hash;
        self.store.put_user(&user)?;
        self.store
            .delete_sessions_of(&user.username, Some(&auth.token_hash))?;
        Ok(())
    }

    /// The signed-in user's password, asked again before a sensitive change; throttled like a
    /// login (per client and per account, the attempt reserved before hashing).
    async fn check_current_password(
        &self,
        auth: &Authenticated,
        given: String,
        client: IpAddr,
    ) -> ServiceResult<()> {
        let now = self.now();
        let client_key = client_group(client).to_string();
        let account_key = auth.user.username.to_ascii_lowercase();
        let throttled = |retry_after| ServiceError::Throttled { retry_after };
        self.login_by_client
            .reserve(&client_key, now)
            .map_err(throttled)?;
        self.reauth_by_account
            .reserve(&account_key, now)
            .map_err(throttled)?;
        let stored = self.current_user(auth)?.password_hash;
        if !self.verify(given, Some(stored)).await? {
            return Err(ServiceError::InvalidCredentials);
        }
        self.login_by_client.record_success(&client_key);
        self.reauth_by_account.record_success(&account_key);
        Ok(())
    }

    async fn hash(&self, password_given: String) -> ServiceResult<String> {
        self.hashing
            .run(move || password::hash(&password_given))
            .await
            .map_err(|_| busy())
    }

    /// Verifies against `stored`, or spends the same time on a dummy hash when there is none.
    async fn verify(&self, password_given: String, stored: Option<String>) -> ServiceResult<bool> {
        self.hashing
            .run(move || match stored {
                Some(hash) => password::verify(&password_given, &hash),
                None => {
                    password::verify_dummy(&password_given);
                    false
                }
            })
            .await
            .map_err(|_| busy())
    }

    fn current_user(&self, auth: &Authenticated) -> ServiceResult<UserRecord> {
        self.store
            .user(&auth.user.username)?
            .ok_or(ServiceError::Unauthenticated)
    }

    // --- TOTP ---

    /// Starts (or restarts) enrolment; returns the new secret.
    pub fn totp_begin(&self, auth: &Authenticated) -> ServiceResult<String> {
        let _guard = self.user_changes.lock().unwrap_or_else(|e| e.into_inner());
        let mut user = self.current_user(auth)?;
        if user.totp_enabled() {
            return Err(ServiceError::Conflict(
                "Two-factor authentication is already on; turn it off first.".into(),
            ));
        }
        let secret = totp::new_secret();
        user.totp = Some(TotpState {
            secret: secret.clone(),
            enabled: false,
            last_step: None,
        });
        self.store.put_user(&user)?;
        Ok(secret)
    }

    pub fn totp_confirm(&self, auth: &Authenticated, code: &str) -> ServiceResult<()> {
        let _guard = self.user_changes.lock().unwrap_or_else(|e| e.into_inner());
        let mut user = self.current_user(auth)?;
        let now = self.now().unix_timestamp();
        let state = user.totp.as_mut().filter(|t| !t.enabled).ok_or_else(|| {
            ServiceError::Conflict("No two-factor enrolment is in progress.".into())
        })?;
        let step = totp::verify(&state.secret, code, now, state.last_step)
            .ok_or(ServiceError::TotpInvalid)?;
        state.enabled = true;
        state.last_step = Some(step);
        self.store.put_user(&user)?;
        Ok(())
    }

    pub async fn totp_disable(
        &self,
        auth: &Authenticated,
        password_given: String,
        client: IpAddr,
    ) -> ServiceResult<()> {
        self.check_current_password(auth, password_given, client)
            .await?;
        let _guard = self.user_changes.lock().unwrap_or_else(|e| e.into_inner());
        let mut user = self.current_user(auth)?;
        user.totp = None;
        self.store.put_user(&user)?;
        Ok(())
    }
}

/// Too many password checks waiting already: come back shortly.
fn busy() -> ServiceError {
    ServiceError::Throttled {
        retry_after: Duration::from_secs(2),
    }
}

fn remove_file_if_exists(path: &std::path::Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove setup code file")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use std::sync::Arc;

    fn accounts(dir: &std::path::Path, setup_code_file: PathBuf) -> Accounts {
        let store = Store::open(&dir.join("store")).expect("store");
        let sessions = SessionPolicy {
            idle_timeout: HOUR,
            max_age: HOUR,
        };
        Accounts::new(store, Arc::new(SystemClock), sessions, setup_code_file)
    }

    #[test]
    fn setup_code_is_written_to_its_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("efi/hearth-setup.txt");
        let code = accounts(dir.path(), file.clone())
            .ensure_setup_code()
            .expect("code")
            .expect("unclaimed");
        let text = std::fs::read_to_string(&file).expect("the file");
        assert_eq!(text, format!("Hearth setup code: {code}\n"));
    }

    /// The boot partition holding the file was not mounted (a read-only root beneath it): the
    /// agent once exited on this and never served the dashboard.
    #[test]
    fn an_unwritable_setup_code_file_still_gives_the_code() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A parent that is a file: neither it nor the file can be created, even as root.
        let blocker = dir.path().join("efi");
        std::fs::write(&blocker, "not a folder").expect("blocker");
        let accounts = accounts(dir.path(), blocker.join("hearth-setup.txt"));
        let code = accounts.ensure_setup_code().expect("no error");
        assert!(code.as_ref().is_some_and(|c| !c.is_empty()));
        // Stored all the same: the next start announces the same code.
        let again = accounts.ensure_setup_code().expect("no error");
        assert_eq!(again, code);
    }
}
