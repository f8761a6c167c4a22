//! `docker run ...` → compose YAML. The command is split with shell rules (`shlex`, no shell
//! runs), then every flag is mapped to its Compose key; flags without a faithful Compose form
//! become warnings, and `--env-file` (which reads a file on the device) is refused. Dollar signs
//! are doubled so Compose interpolation leaves the values as typed. The result is ordinary
//! compose YAML: installing it goes through the same planner and policy as any other.

use serde_yaml_ng::{Mapping, Value};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Converted {
    pub yaml: String,
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConvertError {
    #[error("{0}")]
    Invalid(String),
}

fn invalid(m: impl Into<String>) -> ConvertError {
    ConvertError::Invalid(m.into())
}

/// Flags that take a value (mapped or not), long names without dashes.
const VALUE_FLAGS: &[&str] = &[
    "publish",
    "volume",
    "env",
    "env-file",
    "name",
    "restart",
    "network",
    "net",
    "network-alias",
    "cap-add",
    "cap-drop",
    "device",
    "user",
    "workdir",
    "hostname",
    "label",
    "entrypoint",
    "tmpfs",
    "shm-size",
    "ulimit",
    "sysctl",
    "health-cmd",
    "health-interval",
    "health-timeout",
    "health-retries",
    "health-start-period",
    "health-start-interval",
    "add-host",
    "dns",
    "dns-search",
    "dns-option",
    "security-opt",
    "memory",
    "memory-reservation",
    "cpus",
    "cpu-shares",
    "pid",
    "ipc",
    "uts",
    "userns",
    "stop-timeout",
    "stop-signal",
    "log-driver",
    "log-opt",
    "platform",
    "pull",
    "gpus",
    "mount",
    "expose",
    "group-add",
    "runtime",
    "mac-address",
    "domainname",
    "label-file",
    "cidfile",
    "attach",
    "memory-swap",
    "cpuset-cpus",
    "blkio-weight",
    "link",
    "volumes-from",
    "ip",
    "ip6",
    "storage-opt",
    "cgroupns",
    "cgroup-parent",
    "device-cgroup-rule",
    "kernel-memory",
    "oom-score-adj",
    "pids-limit",
    "isolation",
    "detach-keys",
    "volume-driver",
];

fn short_long(c: char) -> Option<&'static str> {
    Some(match c {
        'p' => "publish",
        'v' => "volume",
        'e' => "env",
        'u' => "user",
        'w' => "workdir",
        'h' => "hostname",
        'l' => "label",
        'm' => "memory",
        'c' => "cpu-shares",
        'a' => "attach",
        'd' => "detach",
        'i' => "interactive",
        't' => "tty",
        'P' => "publish-all",
        _ => return None,
    })
}

fn s(v: &str) -> Value {
    Value::String(v.replace('$', "$$"))
}

fn list_push(m: &mut Mapping, key: &str, v: Value) {
    let e = m
        .entry(Value::from(key))
        .or_insert_with(|| Value::Sequence(Vec::new()));
    if let Value::Sequence(seq) = e {
        seq.push(v);
    }
}

fn map_insert(m: &mut Mapping, key: &str, k: &str, v: Value) {
    let e = m
        .entry(Value::from(key))
        .or_insert_with(|| Value::Mapping(Mapping::new()));
    if let Value::Mapping(inner) = e {
        inner.insert(s(k), v);
    }
}

fn set(m: &mut Mapping, key: &str, v: Value) {
    m.insert(Value::from(key), v);
}

/// `k=v` split (a missing `=` gives an empty value).
fn kv(v: &str) -> (&str, &str) {
    v.split_once('=').unwrap_or((v, ""))
}

fn number_or_string(v: &str) -> Value {
    v.parse::<i64>().map(Value::from).unwrap_or_else(|_| s(v))
}

/// A service/project name from `--name` or the image.
fn name_from(raw: &str) -> String {
    let id = super::names::app_id_from(raw);
    let id = id.trim_matches(|c: char| c == '-' || c == '_').to_string();
    if id.is_empty() { "app".into() } else { id }
}

/// Converts one `docker run` command line.
pub fn docker_run_to_compose(command: &str) -> Result<Converted, ConvertError> {
    // Characters, not bytes: the limit the API document states (`maxLength`).
    if command.chars().count() > 16 * 1024 {
        return Err(invalid("the command is longer than 16,384 characters"));
    }
    let joined = command.replace("\\\r\n", " ").replace("\\\n", " ");
    let tokens =
        shlex::split(&joined).ok_or_else(|| invalid("unbalanced quotes in the command"))?;
    let mut it = tokens.into_iter().peekable();
    if it.peek().is_some_and(|t| t == "sudo") {
        it.next();
    }
    match (it.next().as_deref(), it.next().as_deref()) {
        (Some("docker" | "podman"), Some("run")) => {}
        (Some("docker" | "podman"), Some("container")) => {
            if it.next().as_deref() != Some("run") {
                return Err(invalid("expected `docker run ...`"));
            }
        }
        _ => return Err(invalid("expected `docker run ...`")),
    }
    let mut svc = Mapping::new();
    let mut top_networks = Mapping::new();
    let mut warnings = Vec::new();
    let mut health = Mapping::new();
    let mut name: Option<String> = None;
    let mut image: Option<String> = None;
    let mut args: Vec<String> = Vec::new();
    let mut interactive = false;
    let mut tty = false;
    while let Some(tok) = it.next() {
        if image.is_some() {
            args.push(tok);
            continue;
        }
        if tok == "--" {
            image = it.next();
            continue;
        }
        // Split into (flag, inline value).
        let (flag, inline): (String, Option<String>) = if let Some(long) = tok.strip_prefix("--") {
            match long.split_once('=') {
                Some((f, v)) => (f.to_string(), Some(v.to_string())),
                None => (long.to_string(), None),
            }
        } else if let Some(short) = tok.strip_prefix('-').filter(|x| !x.is_empty()) {
            let mut chars = short.chars();
            let mut flags = Vec::new();
            let mut inline = None;
            while let Some(c) = chars.next() {
                let long = short_long(c).ok_or_else(|| invalid(format!("unknown flag -{c}")))?;
                if VALUE_FLAGS.contains(&long) {
                    let rest: String = chars.collect();
                    inline = (!rest.is_empty()).then_some(rest);
                    flags.push(long);
                    break;
                }
                flags.push(long);
            }
            // All but the last are booleans.
            let last = flags.pop().unwrap_or("detach");
            for f in flags {
                match f {
                    "interactive" => interactive = true,
                    "tty" => tty = true,
                    "detach" => {}
                    other => warnings.push(format!("-{other} is ignored")),
                }
            }
            (last.to_string(), inline)
        } else {
            image = Some(tok);
            continue;
        };
        let takes_value = VALUE_FLAGS.contains(&flag.as_str());
        let on = inline.as_deref() != Some("false");
        let value = if takes_value {
            match inline {
                Some(v) => v,
                None => it
                    .next()
                    .ok_or_else(|| invalid(format!("--{flag} needs a value")))?,
            }
        } else {
            if let Some(v) = &inline
                && !matches!(v.as_str(), "true" | "false")
            {
                warnings.push(format!("--{flag}={v}: unexpected value, ignored"));
            }
            String::new()
        };
        let v = value.as_str();
        match flag.as_str() {
            "detach" | "d" => {}
            "rm" => warnings.push(
                "--rm is ignored: an installed app keeps its container until uninstalled".into(),
            ),
            "interactive" => interactive = on,
            "tty" => tty = on,
            "publish" => list_push(&mut svc, "ports", s(v)),
            "publish-all" => warnings
                .push("-P/--publish-all has no Compose form: publish the ports with -p".into()),
            "expose" => list_push(&mut svc, "expose", s(v)),
            "volume" => list_push(&mut svc, "volumes", s(v)),
            "mount" => {
                let mut m = Mapping::new();
                for part in v.split(',') {
                    let (k, val) = kv(part);
                    match k {
                        "type" => set(&mut m, "type", s(val)),
                        "source" | "src" => set(&mut m, "source", s(val)),
                        "target" | "destination" | "dst" => set(&mut m, "target", s(val)),
                        "readonly" | "ro" => set(&mut m, "read_only", Value::Bool(val != "false")),
                        other => warnings.push(format!("--mount option {other} is ignored")),
                    }
                }
                if !m.contains_key("type") {
                    set(&mut m, "type", Value::from("volume"));
                }
                list_push(&mut svc, "volumes", Value::Mapping(m));
            }
            "tmpfs" => list_push(&mut svc, "tmpfs", s(v)),
            "env" => {
                let (k, val) = match v.split_once('=') {
                    Some(p) => p,
                    None => {
                        warnings.push(format!(
                            "-e {v} takes the value from the caller's environment: set to empty, edit it"
                        ));
                        (v, "")
                    }
                };
                map_insert(&mut svc, "environment", k, s(val));
            }
            "env-file" => {
                return Err(invalid(
                    "--env-file reads a file on the device: give the variables with -e instead",
                ));
            }
            "label-file" => {
                return Err(invalid(
                    "--label-file reads a file on the device: give the labels with -l instead",
                ));
            }
            "name" => name = Some(v.to_string()),
            "restart" => set(&mut svc, "restart", s(v)),
            "network" | "net" => match v {
                "bridge" | "default" => {}
                "host" | "none" => set(&mut svc, "network_mode", s(v)),
                m if m.starts_with("container:") || m.starts_with("service:") => {
                    set(&mut svc, "network_mode", s(m))
                }
                n => {
                    list_push(&mut svc, "networks", s(n));
                    top_networks.insert(s(n), Value::Mapping(Mapping::new()));
                    warnings.push(format!(
                        "network {n}: the app gets its own network of that name; to join an \
                         existing one mark it `external: true`"
                    ));
                }
            },
            "cap-add" => list_push(&mut svc, "cap_add", s(v)),
            "cap-drop" => list_push(&mut svc, "cap_drop", s(v)),
            "device" => list_push(&mut svc, "devices", s(v)),
            "privileged" => set(&mut svc, "privileged", Value::Bool(on)),
            "init" => set(&mut svc, "init", Value::Bool(on)),
            "read-only" => set(&mut svc, "read_only", Value::Bool(on)),
            "user" => set(&mut svc, "user", s(v)),
            "workdir" => set(&mut svc, "working_dir", s(v)),
            "hostname" => set(&mut svc, "hostname", s(v)),
            "domainname" => set(&mut svc, "domainname", s(v)),
            "label" => {
                let (k, val) = kv(v);
                map_insert(&mut svc, "labels", k, s(val));
            }
            "entrypoint" => set(&mut svc, "entrypoint", Value::Sequence(vec![s(v)])),
            "shm-size" => set(&mut svc, "shm_size", s(v)),
            "ulimit" => {
                let (k, val) = kv(v);
                let limit = match val.split_once(':') {
                    Some((soft, hard)) => {
                        let mut m = Mapping::new();
                        set(&mut m, "soft", number_or_string(soft));
                        set(&mut m, "hard", number_or_string(hard));
                        Value::Mapping(m)
                    }
                    None => number_or_string(val),
                };
                let e = svc
                    .entry(Value::from("ulimits"))
                    .or_insert_with(|| Value::Mapping(Mapping::new()));
                if let Value::Mapping(m) = e {
                    m.insert(Value::from(k), limit);
                }
            }
            "sysctl" => {
                let (k, val) = kv(v);
                map_insert(&mut svc, "sysctls", k, s(val));
            }
            "health-cmd" => set(
                &mut health,
                "test",
                Value::Sequence(vec![Value::from("CMD-SHELL"), s(v)]),
            ),
            "health-interval" => set(&mut health, "interval", s(v)),
            "health-timeout" => set(&mut health, "timeout", s(v)),
            "health-start-period" => set(&mut health, "start_period", s(v)),
            "health-start-interval" => set(&mut health, "start_interval", s(v)),
            "health-retries" => set(&mut health, "retries", number_or_string(v)),
            "no-healthcheck" => set(&mut health, "disable", Value::Bool(true)),
            "add-host" => list_push(&mut svc, "extra_hosts", s(v)),
            "dns" => list_push(&mut svc, "dns", s(v)),
            "security-opt" => list_push(&mut svc, "security_opt", s(v)),
            "memory" => set(&mut svc, "mem_limit", s(v)),
            "memory-reservation" => set(&mut svc, "mem_reservation", s(v)),
            "cpus" => set(&mut svc, "cpus", s(v)),
            "cpu-shares" => set(&mut svc, "cpu_shares", number_or_string(v)),
            "pid" => set(&mut svc, "pid", s(v)),
            "ipc" => set(&mut svc, "ipc", s(v)),
            "uts" => set(&mut svc, "uts", s(v)),
            "userns" => set(&mut svc, "userns_mode", s(v)),
            // Carried over so the policy judges them (`cgroup: host`, device rules).
            "cgroupns" => set(&mut svc, "cgroup", s(v)),
            "device-cgroup-rule" => list_push(&mut svc, "device_cgroup_rules", s(v)),
            "stop-timeout" => set(&mut svc, "stop_grace_period", s(&format!("{v}s"))),
            "stop-signal" => set(&mut svc, "stop_signal", s(v)),
            "log-driver" => {
                let e = svc
                    .entry(Value::from("logging"))
                    .or_insert_with(|| Value::Mapping(Mapping::new()));
                if let Value::Mapping(m) = e {
                    set(m, "driver", s(v));
                }
            }
            "log-opt" => {
                let (k, val) = kv(v);
                let e = svc
                    .entry(Value::from("logging"))
                    .or_insert_with(|| Value::Mapping(Mapping::new()));
                if let Value::Mapping(m) = e {
                    map_insert(m, "options", k, s(val));
                }
            }
            "platform" => set(&mut svc, "platform", s(v)),
            "pull" => set(&mut svc, "pull_policy", s(v)),
            "runtime" => set(&mut svc, "runtime", s(v)),
            "group-add" => list_push(&mut svc, "group_add", s(v)),
            "mac-address" => set(&mut svc, "mac_address", s(v)),
            "gpus" => {
                let mut dev = Mapping::new();
                set(&mut dev, "driver", Value::from("nvidia"));
                if v == "all" {
                    set(&mut dev, "count", Value::from("all"));
                } else if let Ok(n) = v.parse::<i64>() {
                    set(&mut dev, "count", Value::from(n));
                } else {
                    warnings.push(format!("--gpus {v}: only `all` or a number is converted"));
                    set(&mut dev, "count", Value::from("all"));
                }
                set(
                    &mut dev,
                    "capabilities",
                    Value::Sequence(vec![Value::from("gpu")]),
                );
                let mut res = Mapping::new();
                set(
                    &mut res,
                    "reservations",
                    Value::Mapping(Mapping::from_iter([(
                        Value::from("devices"),
                        Value::Sequence(vec![Value::Mapping(dev)]),
                    )])),
                );
                set(
                    &mut svc,
                    "deploy",
                    Value::Mapping(Mapping::from_iter([(
                        Value::from("resources"),
                        Value::Mapping(res),
                    )])),
                );
            }
            f if takes_value => {
                warnings.push(format!("--{f} {v} has no Compose form here: ignored"))
            }
            f => warnings.push(format!(
                "--{f} is not known: ignored (if it takes a value, check the image name)"
            )),
        }
    }
    let image = image.ok_or_else(|| invalid("no image named in the command"))?;
    if image.starts_with('-') || image.is_empty() {
        return Err(invalid(format!("{image:?} is not an image name")));
    }
    if interactive {
        set(&mut svc, "stdin_open", Value::Bool(true));
    }
    if tty {
        set(&mut svc, "tty", Value::Bool(true));
    }
    if !health.is_empty() {
        set(&mut svc, "healthcheck", Value::Mapping(health));
    }
    if !args.is_empty() {
        set(
            &mut svc,
            "command",
            Value::Sequence(args.iter().map(|a| s(a)).collect()),
        );
    }
    let base = name.clone().unwrap_or_else(|| {
        let last = image.rsplit('/').next().unwrap_or(&image);
        last.split([':', '@']).next().unwrap_or(last).to_string()
    });
    let service = name_from(&base);
    // Image first, then the rest in the order given.
    let mut ordered = Mapping::new();
    set(&mut ordered, "image", s(&image));
    if let Some(n) = &name {
        set(&mut ordered, "container_name", s(n));
    }
    for (k, v) in svc {
        ordered.insert(k, v);
    }
    let mut root = Mapping::new();
    set(&mut root, "name", Value::from(service.clone()));
    set(
        &mut root,
        "services",
        Value::Mapping(Mapping::from_iter([(
            Value::from(service),
            Value::Mapping(ordered),
        )])),
    );
    if !top_networks.is_empty() {
        set(&mut root, "networks", Value::Mapping(top_networks));
    }
    let yaml = serde_yaml_ng::to_string(&Value::Mapping(root))
        .map_err(|e| invalid(format!("cannot write YAML: {e}")))?;
    // The result must read back as compose.
    let parsed = super::compose::parse(&yaml, &super::compose::Vars::default())
        .map_err(|e| invalid(format!("the converted file does not parse: {e}")))?;
    warnings.extend(parsed.warnings);
    Ok(Converted { yaml, warnings })
}

#[cfg(test)]
mod tests;
