use super::*;
use time::OffsetDateTime;

fn user(name: &str, role: Role) -> UserRecord {
    UserRecord {
        username: name.into(),
        password_hash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into(),
        role,
        created_at: OffsetDateTime::UNIX_EPOCH,
        totp: None,
        app_logs: false,
    }
}

fn session(name: &str, id: &str) -> SessionRecord {
    SessionRecord {
        id: id.into(),
        username: name.into(),
        csrf_token: "csrf".into(),
        created_at: OffsetDateTime::UNIX_EPOCH,
        last_seen: OffsetDateTime::UNIX_EPOCH,
    }
}

#[test]
fn claim_succeeds_once_and_destroys_the_setup_code() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path()).expect("open");
    store.put_setup_code("ABCD-EFGH").expect("code");
    let settings = DeviceSettings {
        hostname: Some("box".into()),
        timezone: "Europe/Berlin".into(),
    };
    use crate::update::records::{MaintenanceWindow, UpdatePolicy};
    let window = |start: &str| MaintenanceWindow {
        start: start.into(),
        end: "05:00".into(),
    };
    let chosen = UpdatePolicy::for_claim("stable", true, window("02:00"));
    assert_eq!(store.update_policy().expect("policy"), None);
    assert!(
        store
            .claim(&user("alice", Role::Admin), &settings, &chosen, "t1")
            .expect("claim")
    );
    let other = UpdatePolicy::for_claim("beta", false, window("01:00"));
    assert!(
        !store
            .claim(&user("mallory", Role::Admin), &settings, &other, "t2")
            .expect("claim")
    );
    assert_eq!(
        store.update_policy().expect("policy"),
        Some(chosen),
        "the winner's update choice is stored with the claim, the loser's is not"
    );
    assert_eq!(store.setup_code().expect("code"), None);
    assert!(store.user("mallory").expect("get").is_none());
    assert_eq!(store.device_settings().expect("settings"), settings);
    assert_eq!(store.claimed_at().expect("claimed").as_deref(), Some("t1"));
}

#[test]
fn deleting_a_user_removes_their_sessions_and_devices_only() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path()).expect("open");
    store.put_user(&user("alice", Role::Admin)).expect("put");
    store.put_user(&user("bob", Role::Member)).expect("put");
    store.put_session("h1", &session("bob", "s1")).expect("put");
    store
        .put_session("h2", &session("alice", "s2"))
        .expect("put");
    let device = KnownDevice {
        username: "bob".into(),
        created_at: OffsetDateTime::UNIX_EPOCH,
    };
    store.put_known_device("d1", &device).expect("put");
    assert!(store.delete_user("bob").expect("delete"));
    assert!(store.session("h1").expect("get").is_none());
    assert!(store.known_device("d1").expect("get").is_none());
    assert!(store.session("h2").expect("get").is_some());
    assert!(!store.delete_user("bob").expect("delete again"));
}

#[test]
fn insert_new_user_refuses_an_existing_name() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path()).expect("open");
    assert!(
        store
            .insert_new_user(&user("alice", Role::Admin))
            .expect("insert")
    );
    assert!(
        !store
            .insert_new_user(&user("alice", Role::Member))
            .expect("insert")
    );
    assert_eq!(
        store.user("alice").expect("get").map(|u| u.role),
        Some(Role::Admin)
    );
}

#[test]
fn revoking_other_sessions_keeps_the_current_one() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path()).expect("open");
    for (key, id) in [("h1", "s1"), ("h2", "s2"), ("h3", "s3")] {
        store.put_session(key, &session("alice", id)).expect("put");
    }
    assert_eq!(
        store
            .delete_sessions_of("alice", Some("h2"))
            .expect("revoke"),
        2
    );
    let left: Vec<String> = store
        .sessions()
        .expect("list")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(left, vec!["h2".to_string()]);
}

#[test]
fn version_one_store_is_migrated_to_device_settings() {
    let dir = tempfile::tempdir().expect("tmp");
    {
        let store = Store::open(dir.path()).expect("open");
        store.set_schema_version(1).expect("downgrade marker");
        store
            .put_raw(Table::Meta, "hostname", b"attic")
            .expect("raw");
        store
            .put_raw(Table::Meta, "timezone", b"Europe/Paris")
            .expect("raw");
    }
    let store = Store::open(dir.path()).expect("reopen migrates");
    assert_eq!(store.schema_version().expect("version"), CURRENT_VERSION);
    let settings = store.device_settings().expect("settings");
    assert_eq!(settings.hostname.as_deref(), Some("attic"));
    assert_eq!(settings.timezone, "Europe/Paris");
    store.verify().expect("migrated store verifies");
}

#[test]
fn a_store_from_a_newer_agent_is_refused_untouched() {
    let dir = tempfile::tempdir().expect("tmp");
    {
        let store = Store::open(dir.path()).expect("open");
        store
            .set_schema_version(CURRENT_VERSION + 1)
            .expect("future");
    }
    match Store::open(dir.path()) {
        Err(StoreError::SchemaTooNew { found, .. }) => assert_eq!(found, CURRENT_VERSION + 1),
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[test]
fn verify_reports_a_corrupt_record() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path()).expect("open");
    store
        .put_raw(Table::Users, "eve", b"{not json")
        .expect("raw");
    assert!(matches!(
        store.verify(),
        Err(StoreError::Corrupt { table: "users", .. })
    ));
}

#[test]
fn version_three_shared_folder_becomes_a_share_granting_every_member_write() {
    let dir = tempfile::tempdir().expect("tmp");
    {
        let store = Store::open(dir.path()).expect("open");
        assert_eq!(
            store
                .share("shared")
                .expect("share")
                .map(|s| s.grants.len()),
            Some(0),
            "a new store starts with the shared folder and no grants"
        );
        // A version-3 store: no shares tree contents, two members and an admin.
        store.delete_share("shared").expect("delete");
        store.set_schema_version(3).expect("downgrade marker");
        for u in [
            user("admin", Role::Admin),
            user("bob", Role::Member),
            user("carol", Role::Member),
        ] {
            store.put_user(&u).expect("user");
        }
    }
    let store = Store::open(dir.path()).expect("reopen migrates");
    assert_eq!(store.schema_version().expect("version"), CURRENT_VERSION);
    let shared = store.share("shared").expect("read").expect("migrated");
    assert_eq!(shared.folder, "shared", "the folder stays where it was");
    assert_eq!(
        shared.grants.into_iter().collect::<Vec<_>>(),
        vec![
            ("bob".to_string(), Access::Write),
            ("carol".to_string(), Access::Write)
        ]
    );
    store.verify().expect("migrated store verifies");
    // Deleting a user takes their grants with them.
    store.delete_user("bob").expect("delete");
    let shared = store.share("shared").expect("read").expect("share");
    assert_eq!(shared.grants.keys().collect::<Vec<_>>(), ["carol"]);
}
