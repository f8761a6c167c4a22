//! The systemd1, login1, hostname1 and timedate1 clients against services on a private
//! `dbus-daemon` that implement the used subset with the real names and signatures, driven
//! through the agent's HTTP API.

use crate::common;

use common::dbus_mock::private_bus;
use common::inproc::{Browser, Harness, code};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_are_listed_and_controlled_within_the_allow_list() {
    let bus = private_bus().await;
    let address = bus.address.clone();
    let h = Harness::with_config(|c| c.system_bus_address = Some(address)).await;
    let mut admin = h.admin().await;

    let r = h.call(&mut admin, "GET", "/api/v1/services", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    let docker = r
        .body
        .as_array()
        .expect("list")
        .iter()
        .find(|u| u["name"] == "docker.service")
        .cloned()
        .expect("docker");
    assert_eq!(
        (
            docker["active_state"].as_str(),
            docker["sub_state"].as_str()
        ),
        (Some("active"), Some("running"))
    );
    let agent = r
        .body
        .as_array()
        .expect("list")
        .iter()
        .find(|u| u["name"] == "hearth-agent.service")
        .cloned()
        .expect("agent");
    assert_eq!(agent["actions"], json!(["restart"]));

    assert_eq!(
        h.call(
            &mut admin,
            "POST",
            "/api/v1/services/docker.service/stop",
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    let r = h.call(&mut admin, "GET", "/api/v1/services", None).await;
    let docker = r
        .body
        .as_array()
        .expect("list")
        .iter()
        .find(|u| u["name"] == "docker.service")
        .cloned()
        .expect("docker");
    assert_eq!(docker["active_state"], "inactive");
    assert_eq!(
        h.call(
            &mut admin,
            "POST",
            "/api/v1/services/smbd.service/start",
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );

    for (path, status, want) in [
        (
            "/api/v1/services/hearth-agent.service/stop",
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            "/api/v1/services/sshd.service/start",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "/api/v1/services/docker.service%3Breboot/start",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "/api/v1/services/docker.service/kill",
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            "/api/v1/services/ssh.service/start",
            StatusCode::CONFLICT,
            "system_refused",
        ),
    ] {
        let r = h.call(&mut admin, "POST", path, None).await;
        assert_eq!((r.status, code(&r)), (status, want), "{path}: {}", r.raw);
    }
    let calls = bus.calls.lock().expect("lock").clone();
    assert_eq!(
        calls,
        vec![
            "stop docker.service replace",
            "start smbd.service replace",
            "start ssh.service replace"
        ],
        "only allowed actions reached systemd"
    );

    let mut member = Browser::default();
    h.call(
        &mut admin,
        "POST",
        "/api/v1/users",
        Some(json!({"username": "kid", "password": common::inproc::PASSWORD, "role": "member"})),
    )
    .await;
    h.login(&mut member, "kid", common::inproc::PASSWORD).await;
    assert_eq!(
        h.call(&mut member, "GET", "/api/v1/services", None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        h.call(
            &mut member,
            "POST",
            "/api/v1/services/docker.service/start",
            None
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_and_power_go_through_hostname1_timedate1_and_login1() {
    let bus = private_bus().await;
    let address = bus.address.clone();
    let h = Harness::with_config(|c| c.system_bus_address = Some(address)).await;
    let mut admin = h.admin().await;
    let r = h
        .call(&mut admin, "GET", "/api/v1/system/settings", None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    assert_eq!(
        (r.body["timezone"].as_str(), r.body["ntp"].as_bool()),
        (Some("Etc/UTC"), Some(true))
    );

    let r = h
        .call(
            &mut admin,
            "PATCH",
            "/api/v1/system/settings",
            Some(json!({"hostname": "attic", "timezone": "Europe/Berlin", "ntp": false})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    assert_eq!(
        (
            r.body["hostname"].as_str(),
            r.body["timezone"].as_str(),
            r.body["ntp"].as_bool()
        ),
        (Some("attic"), Some("Europe/Berlin"), Some(false))
    );
    let status = h
        .call(&mut admin, "GET", "/api/v1/system/status", None)
        .await;
    assert_eq!(
        status.body["hostname"], "attic",
        "the agent uses the new name too"
    );

    for bad in [
        json!({"hostname": "Bad_Name"}),
        json!({"timezone": "../../etc/shadow"}),
        json!({"hostname": "ok", "extra": 1}),
    ] {
        let r = h
            .call(
                &mut admin,
                "PATCH",
                "/api/v1/system/settings",
                Some(bad.clone()),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let r = h
        .call(&mut admin, "GET", "/api/v1/system/settings", None)
        .await;
    assert_eq!(
        r.body["hostname"], "attic",
        "refused changes change nothing"
    );

    let r = h
        .call(
            &mut admin,
            "POST",
            "/api/v1/system/reboot",
            Some(json!({"confirm": false})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        h.call(
            &mut admin,
            "POST",
            "/api/v1/system/reboot",
            Some(json!({"confirm": true}))
        )
        .await
        .status,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        h.call(
            &mut admin,
            "POST",
            "/api/v1/system/poweroff",
            Some(json!({"confirm": true}))
        )
        .await
        .status,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        h.call(
            &mut admin,
            "POST",
            "/api/v1/system/selfdestruct",
            Some(json!({"confirm": true}))
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    let calls = bus.calls.lock().expect("lock").clone();
    assert_eq!(calls, vec!["reboot false", "poweroff false"]);
}

#[tokio::test]
async fn a_missing_system_bus_is_reported_as_unavailable() {
    let h =
        Harness::with_config(|c| c.system_bus_address = Some("unix:path=/nonexistent/bus".into()))
            .await;
    let mut admin = h.admin().await;
    let r = h.call(&mut admin, "GET", "/api/v1/services", None).await;
    assert_eq!(
        (r.status, code(&r)),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    );
    let r = h
        .call(
            &mut admin,
            "PATCH",
            "/api/v1/system/settings",
            Some(json!({"hostname": "x"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    let r = h
        .call(&mut admin, "GET", "/api/v1/system/status", None)
        .await;
    assert_ne!(r.body["hostname"], "x", "nothing was stored");
}
