use super::*;
use crate::apps::plan::{self, AppSettings, PlanInput, PortStrategy};

fn plan_of(compose: &str) -> Plan {
    let device = DeviceSettings::under("/hearth");
    plan::plan(&PlanInput {
        compose,
        app_id: Some("risky"),
        device: &device,
        settings: &AppSettings::default(),
        ports_in_use: &Default::default(),
        names_in_use: &Default::default(),
        port_strategy: PortStrategy::Reassign,
        env_files: &Default::default(),
    })
    .expect("plans")
    .0
}

fn kinds(p: &Plan) -> Vec<(FindingKind, String)> {
    p.findings
        .iter()
        .map(|f| (f.kind, f.subject.clone()))
        .collect()
}

#[test]
fn every_risky_setting_is_a_finding() {
    let p = plan_of(
        r#"
services:
  a:
    image: x
    privileged: true
    network_mode: host
    pid: host
    ipc: host
    devices: ["/dev/dri:/dev/dri"]
    cap_add: [NET_ADMIN, CAP_SYS_ADMIN]
    security_opt: ["apparmor:unconfined", "seccomp=unconfined", "no-new-privileges:true"]
    volumes:
      - /var/run/docker.sock:/var/run/docker.sock
      - /run/dbus:/run/dbus:ro
      - /etc/localtime:/etc/localtime:ro
      - /DATA/AppData/risky/ok:/ok
      - /DATA/Media:/media
    deploy:
      resources:
        reservations:
          devices: [{driver: nvidia, count: all, capabilities: [gpu]}]
"#,
    );
    let k = kinds(&p);
    for want in [
        (FindingKind::Privileged, ""),
        (FindingKind::HostNetwork, ""),
        (FindingKind::HostPid, ""),
        (FindingKind::HostIpc, ""),
        (FindingKind::Device, "/dev/dri"),
        (FindingKind::Gpu, ""),
        (FindingKind::CapAdd, "NET_ADMIN"),
        (FindingKind::CapAdd, "SYS_ADMIN"),
        (FindingKind::SecurityOpt, "apparmor:unconfined"),
        (FindingKind::SecurityOpt, "seccomp=unconfined"),
        (FindingKind::HostSocket, "/var/run/docker.sock"),
        (FindingKind::HostSocket, "/run/dbus"),
        (FindingKind::HostPath, "/etc/localtime"),
    ] {
        assert!(
            k.contains(&(want.0, want.1.to_string())),
            "missing {want:?} in {k:?}"
        );
    }
    assert_eq!(k.len(), 13, "{k:?}");
    let sock = p
        .findings
        .iter()
        .find(|f| f.subject.ends_with("docker.sock"))
        .expect("sock");
    assert!(sock.message.contains("full control"));
}

#[test]
fn an_ordinary_app_has_no_findings() {
    let p = plan_of(
        "services:\n  a:\n    image: x\n    cap_drop: [ALL]\n    security_opt: [no-new-privileges]\n    \
         volumes: [/DATA/AppData/risky/data:/data, ./rel:/rel, named:/n]\n    ipc: shareable\n\
         volumes: {named: {}}\n",
    );
    assert!(p.findings.is_empty(), "{:?}", p.findings);
}

#[test]
fn namespaces_shared_inside_the_app_are_fine_outside_are_findings() {
    let p = plan_of(
        "services:\n  a: {image: x}\n  b: {image: x, network_mode: 'service:a', pid: 'container:risky-a-1'}\n  \
         c: {image: x, network_mode: 'container:elsewhere'}\n",
    );
    assert_eq!(
        kinds(&p),
        [(FindingKind::SharedNamespace, "elsewhere".to_string())]
    );
}

#[test]
fn consent_covers_findings_by_stable_id() {
    let compose = "services:\n  a: {image: x, privileged: true, cap_add: [NET_ADMIN]}\n";
    let p = plan_of(compose);
    let ids: Vec<&str> = p.findings.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids, ["cap_add:a:NET_ADMIN", "privileged:a"]);
    let partial: BTreeSet<String> = ["privileged:a".to_string()].into();
    let left = unconsented(&p.findings, &partial);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, "cap_add:a:NET_ADMIN");
    let all: BTreeSet<String> = ids.iter().map(|s| s.to_string()).collect();
    assert!(unconsented(&plan_of(compose).findings, &all).is_empty());
}
