use super::*;

fn yaml(cmd: &str) -> (Value, Vec<String>) {
    let c = docker_run_to_compose(cmd).unwrap_or_else(|e| panic!("{cmd}: {e}"));
    (serde_yaml_ng::from_str(&c.yaml).expect("yaml"), c.warnings)
}

fn svc<'a>(v: &'a Value, name: &str) -> &'a Value {
    &v["services"][name]
}

#[test]
fn the_common_flags_map_to_compose() {
    let (v, w) = yaml(
        "docker run -d -p 8080:80 -p 127.0.0.1:53:53/udp -v /x:/y -v data:/data:ro -e A=B \
         -e 'C=with space' --name n --restart unless-stopped --cap-add NET_ADMIN \
         --device /dev/ttyUSB0:/dev/ttyUSB0 -u 1000:1000 -w /app --hostname box -l a.b=c \
         --tmpfs /run --shm-size 1g --ulimit nofile=1024:4096 --ulimit nproc=65535 \
         --sysctl net.ipv4.ip_forward=1 image:tag serve --port 80",
    );
    assert_eq!(v["name"], "n");
    let s = svc(&v, "n");
    assert_eq!(s["image"], "image:tag");
    assert_eq!(s["container_name"], "n");
    assert_eq!(s["ports"][0], "8080:80");
    assert_eq!(s["ports"][1], "127.0.0.1:53:53/udp");
    assert_eq!(s["volumes"][1], "data:/data:ro");
    assert_eq!(s["environment"]["A"], "B");
    assert_eq!(s["environment"]["C"], "with space");
    assert_eq!(s["restart"], "unless-stopped");
    assert_eq!(s["cap_add"][0], "NET_ADMIN");
    assert_eq!(s["devices"][0], "/dev/ttyUSB0:/dev/ttyUSB0");
    assert_eq!(s["user"], "1000:1000");
    assert_eq!(s["working_dir"], "/app");
    assert_eq!(s["hostname"], "box");
    assert_eq!(s["labels"]["a.b"], "c");
    assert_eq!(s["tmpfs"][0], "/run");
    assert_eq!(s["shm_size"], "1g");
    assert_eq!(s["ulimits"]["nofile"]["soft"], 1024);
    assert_eq!(s["ulimits"]["nproc"], 65535);
    assert_eq!(s["sysctls"]["net.ipv4.ip_forward"], "1");
    assert_eq!(
        s["command"],
        serde_yaml_ng::from_str::<Value>("[serve, --port, '80']").expect("y")
    );
    assert!(w.is_empty(), "{w:?}");
}

#[test]
fn real_world_commands_convert() {
    // Portainer (docs).
    let (v, _) = yaml(
        "docker run -d -p 8000:8000 -p 9443:9443 --name portainer --restart=always \
         -v /var/run/docker.sock:/var/run/docker.sock -v portainer_data:/data \
         portainer/portainer-ce:latest",
    );
    assert_eq!(svc(&v, "portainer")["restart"], "always");
    // Home Assistant (docs): host network, privileged, equals forms.
    let (v, _) = yaml(
        "docker run -d \\\n  --name homeassistant \\\n  --privileged \\\n  --restart=unless-stopped \\\n  \
         -e TZ=Europe/Berlin \\\n  -v /PATH_TO_YOUR_CONFIG:/config \\\n  -v /run/dbus:/run/dbus:ro \\\n  \
         --network=host \\\n  ghcr.io/home-assistant/home-assistant:stable",
    );
    let s = svc(&v, "homeassistant");
    assert_eq!(s["network_mode"], "host");
    assert_eq!(s["privileged"], true);
    // Pi-hole: udp ports, dns, cap, health.
    let (v, _) = yaml(
        "docker run -d --name pihole -p 53:53/tcp -p 53:53/udp -p 80:80 -e TZ=America/Chicago \
         -e WEBPASSWORD=\"$ecret\" --dns=127.0.0.1 --dns=1.1.1.1 --cap-add=NET_ADMIN \
         --health-cmd 'dig +short @127.0.0.1 pi.hole || exit 1' --health-interval=30s \
         --health-retries 3 --no-healthcheck=false pihole/pihole",
    );
    let s = svc(&v, "pihole");
    assert_eq!(
        s["environment"]["WEBPASSWORD"], "$$ecret",
        "dollar kept literally"
    );
    assert_eq!(s["dns"][1], "1.1.1.1");
    assert_eq!(s["healthcheck"]["test"][0], "CMD-SHELL");
    assert_eq!(s["healthcheck"]["retries"], 3);
    // Interactive one-off with entrypoint and combined short flags; no --name.
    let (v, w) = yaml("sudo docker run --rm -it --entrypoint /bin/sh alpine:3.20 -c 'echo hi'");
    let s = svc(&v, "alpine");
    assert_eq!(s["entrypoint"][0], "/bin/sh");
    assert_eq!(
        (s["stdin_open"].clone(), s["tty"].clone()),
        (Value::Bool(true), Value::Bool(true))
    );
    assert_eq!(s["command"][1], "echo hi");
    assert!(w.iter().any(|x| x.contains("--rm")), "{w:?}");
    // Jellyfin with a GPU, a mount and a user network.
    let (v, w) = yaml(
        "docker run -d --name jellyfin --user 1000:1000 --net=media --gpus all \
         --mount type=bind,source=/srv/media,target=/media,readonly \
         --memory 2g --cpus 1.5 --log-opt max-size=10m jellyfin/jellyfin",
    );
    let s = svc(&v, "jellyfin");
    assert_eq!(s["networks"][0], "media");
    assert!(v["networks"]["media"].is_mapping());
    assert_eq!(s["volumes"][0]["read_only"], true);
    assert_eq!(
        s["deploy"]["resources"]["reservations"]["devices"][0]["driver"],
        "nvidia"
    );
    assert_eq!(s["mem_limit"], "2g");
    assert_eq!(s["logging"]["options"]["max-size"], "10m");
    assert!(w.iter().any(|x| x.contains("network media")), "{w:?}");
    // A registry with a port and a digest; the service name comes from the repository.
    let (v, _) = yaml("docker container run -p8080:80 registry.local:5000/team/web-app@sha256:abc");
    assert_eq!(svc(&v, "web-app")["ports"][0], "8080:80");
}

#[test]
fn unknown_and_unconvertible_flags_warn() {
    let (_, w) = yaml("docker run -P --volumes-from other --frobnicate nginx");
    assert!(w.iter().any(|x| x.contains("publish-all")), "{w:?}");
    assert!(
        w.iter().any(|x| x.contains("--volumes-from other")),
        "{w:?}"
    );
    assert!(
        w.iter().any(|x| x.contains("--frobnicate is not known")),
        "{w:?}"
    );
}

#[test]
fn bad_commands_are_refused_with_a_reason() {
    for (cmd, want) in [
        ("docker run --env-file ./.env nginx", "--env-file"),
        ("docker run -d -p 80:80", "no image"),
        ("docker run -e 'A=unclosed nginx", "unbalanced"),
        ("ls -la", "docker run"),
        ("docker ps", "docker run"),
        ("docker run --name", "needs a value"),
        ("docker run -Z nginx", "unknown flag -Z"),
    ] {
        let err = docker_run_to_compose(cmd).expect_err(cmd).to_string();
        assert!(err.contains(want), "{cmd}: {err}");
    }
}

#[test]
fn the_result_plans_like_any_compose_file() {
    let c = docker_run_to_compose(
        "docker run -d -p 18080:80 -v /DATA/AppData/web/html:/usr/share/nginx/html --privileged nginx:1.27",
    )
    .expect("converts");
    let dir = tempfile::tempdir().expect("tempdir");
    let device = crate::apps::plan::DeviceSettings::under(dir.path());
    let (plan, _) = crate::apps::plan::plan(&crate::apps::plan::PlanInput {
        compose: &c.yaml,
        app_id: None,
        device: &device,
        settings: &Default::default(),
        ports_in_use: &Default::default(),
        names_in_use: &Default::default(),
        port_strategy: crate::apps::plan::PortStrategy::Exact,
        env_files: &Default::default(),
    })
    .expect("plans");
    assert_eq!(plan.app_id, "nginx");
    assert!(
        plan.findings.iter().any(|f| f.id.starts_with("privileged")),
        "{:?}",
        plan.findings
    );
}

#[test]
fn host_cgroup_and_device_rules_are_carried_over_for_the_policy() {
    let (v, w) = yaml("docker run --cgroupns host --device-cgroup-rule 'b 8:* rwm' busybox");
    let s = svc(&v, "busybox");
    assert_eq!(s["cgroup"], "host", "{w:?}");
    assert_eq!(s["device_cgroup_rules"][0], "b 8:* rwm");
}
