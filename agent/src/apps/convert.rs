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
    let mut it = run_arguments(command)?;
    let mut draft = Draft::default();
    while let Some(tok) = it.next() {
        if draft.image.is_some() {
            draft.args.push(tok);
            continue;
        }
        if tok == "--" {
            draft.image = it.next();
            continue;
        }
        let Some((flag, inline)) = draft.split_flag(tok)? else {
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
                draft
                    .warnings
                    .push(format!("--{flag}={v}: unexpected value, ignored"));
            }
            String::new()
        };
        draft.apply(&flag, &value, on, takes_value)?;
    }
    draft.finish()
}

/// The tokens after `[sudo] docker run` (or `podman`, or `container run`), split with shell
/// rules.
fn run_arguments(
    command: &str,
) -> Result<std::iter::Peekable<std::vec::IntoIter<String>>, ConvertError> {
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
    Ok(it)
}

/// The service being written while the flags are read.
#[derive(Default)]
struct Draft {
    svc: Mapping,
    top_networks: Mapping,
    warnings: Vec<String>,
    health: Mapping,
    name: Option<String>,
    image: Option<String>,
    args: Vec<String>,
    interactive: bool,
    tty: bool,
}

impl Draft {
    /// Splits a token into (flag, inline value); `None` when it is the image name (taken).
    /// Bundled short booleans (`-it`) are applied here, all but the last one.
    fn split_flag(
        &mut self,
        tok: String,
    ) -> Result<Option<(String, Option<String>)>, ConvertError> {
        if let Some(long) = tok.strip_prefix("--") {
            return Ok(Some(match long.split_once('=') {
                Some((f, v)) => (f.to_string(), Some(v.to_string())),
                None => (long.to_string(), None),
            }));
        }
        let Some(short) = tok.strip_prefix('-').filter(|x| !x.is_empty()) else {
            self.image = Some(tok);
            return Ok(None);
        };
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
                "interactive" => self.interactive = true,
                "tty" => self.tty = true,
                "detach" => {}
                other => self.warnings.push(format!("-{other} is ignored")),
            }
        }
        Ok(Some((last.to_string(), inline)))
    }

    /// Maps one flag and its value (empty for a boolean; `on` is false for `--flag=false`).
    fn apply(
        &mut self,
        flag: &str,
        v: &str,
        on: bool,
        takes_value: bool,
    ) -> Result<(), ConvertError> {
        let svc = &mut self.svc;
        match flag {
            "detach" | "d" => {}
            "rm" => self.warnings.push(
                "--rm is ignored: an installed app keeps its container until uninstalled".into(),
            ),
            "interactive" => self.interactive = on,
            "tty" => self.tty = on,
            "publish" => list_push(svc, "ports", s(v)),
            "publish-all" => self
                .warnings
                .push("-P/--publish-all has no Compose form: publish the ports with -p".into()),
            "expose" => list_push(svc, "expose", s(v)),
            "volume" => list_push(svc, "volumes", s(v)),
            "mount" => self.mount(v),
            "tmpfs" => list_push(svc, "tmpfs", s(v)),
            "env" => self.env(v),
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
            "name" => self.name = Some(v.to_string()),
            "restart" => set(svc, "restart", s(v)),
            "network" | "net" => self.network(v),
            "cap-add" => list_push(svc, "cap_add", s(v)),
            "cap-drop" => list_push(svc, "cap_drop", s(v)),
            "device" => list_push(svc, "devices", s(v)),
            "privileged" => set(svc, "privileged", Value::Bool(on)),
            "init" => set(svc, "init", Value::Bool(on)),
            "read-only" => set(svc, "read_only", Value::Bool(on)),
            "user" => set(svc, "user", s(v)),
            "workdir" => set(svc, "working_dir", s(v)),
            "hostname" => set(svc, "hostname", s(v)),
            "domainname" => set(svc, "domainname", s(v)),
            "label" => {
                let (k, val) = kv(v);
                map_insert(svc, "labels", k, s(val));
            }
            "entrypoint" => set(svc, "entrypoint", Value::Sequence(vec![s(v)])),
            "shm-size" => set(svc, "shm_size", s(v)),
            "ulimit" => ulimit(svc, v),
            "sysctl" => {
                let (k, val) = kv(v);
                map_insert(svc, "sysctls", k, s(val));
            }
            f if f.starts_with("health-") || f == "no-healthcheck" => {
                self.health_flag(f, v, takes_value);
            }
            "add-host" => list_push(svc, "extra_hosts", s(v)),
            "dns" => list_push(svc, "dns", s(v)),
            "security-opt" => list_push(svc, "security_opt", s(v)),
            "memory" => set(svc, "mem_limit", s(v)),
            "memory-reservation" => set(svc, "mem_reservation", s(v)),
            "cpus" => set(svc, "cpus", s(v)),
            "cpu-shares" => set(svc, "cpu_shares", number_or_string(v)),
            "pid" => set(svc, "pid", s(v)),
            "ipc" => set(svc, "ipc", s(v)),
            "uts" => set(svc, "uts", s(v)),
            "userns" => set(svc, "userns_mode", s(v)),
            // Carried over so the policy judges them (`cgroup: host`, device rules).
            "cgroupns" => set(svc, "cgroup", s(v)),
            "device-cgroup-rule" => list_push(svc, "device_cgroup_rules", s(v)),
            "stop-timeout" => set(svc, "stop_grace_period", s(&format!("{v}s"))),
            "stop-signal" => set(svc, "stop_signal", s(v)),
            "log-driver" => {
                if let Some(m) = logging(svc) {
                    set(m, "driver", s(v));
                }
            }
            "log-opt" => {
                let (k, val) = kv(v);
                if let Some(m) = logging(svc) {
                    map_insert(m, "options", k, s(val));
                }
            }
            "platform" => set(svc, "platform", s(v)),
            "pull" => set(svc, "pull_policy", s(v)),
            "runtime" => set(svc, "runtime", s(v)),
            "group-add" => list_push(svc, "group_add", s(v)),
            "mac-address" => set(svc, "mac_address", s(v)),
            "gpus" => self.gpus(v),
            f => self.unknown(f, v, takes_value),
        }
        Ok(())
    }

    fn unknown(&mut self, f: &str, v: &str, takes_value: bool) {
        if takes_value {
            self.warnings
                .push(format!("--{f} {v} has no Compose form here: ignored"));
        } else {
            self.warnings.push(format!(
                "--{f} is not known: ignored (if it takes a value, check the image name)"
            ));
        }
    }

    fn mount(&mut self, v: &str) {
        let mut m = Mapping::new();
        for part in v.split(',') {
            let (k, val) = kv(part);
            match k {
                "type" => set(&mut m, "type", s(val)),
                "source" | "src" => set(&mut m, "source", s(val)),
                "target" | "destination" | "dst" => set(&mut m, "target", s(val)),
                "readonly" | "ro" => set(&mut m, "read_only", Value::Bool(val != "false")),
                other => self
                    .warnings
                    .push(format!("--mount option {other} is ignored")),
            }
        }
        if !m.contains_key("type") {
            set(&mut m, "type", Value::from("volume"));
        }
        list_push(&mut self.svc, "volumes", Value::Mapping(m));
    }

    fn env(&mut self, v: &str) {
        let (k, val) = match v.split_once('=') {
            Some(p) => p,
            None => {
                self.warnings.push(format!(
                    "-e {v} takes the value from the caller's environment: set to empty, edit it"
                ));
                (v, "")
            }
        };
        map_insert(&mut self.svc, "environment", k, s(val));
    }

    fn network(&mut self, v: &str) {
        match v {
            "bridge" | "default" => {}
            "host" | "none" => set(&mut self.svc, "network_mode", s(v)),
            m if m.starts_with("container:") || m.starts_with("service:") => {
                set(&mut self.svc, "network_mode", s(m))
            }
            n => {
                list_push(&mut self.svc, "networks", s(n));
                self.top_networks
                    .insert(s(n), Value::Mapping(Mapping::new()));
                self.warnings.push(format!(
                    "network {n}: the app gets its own network of that name; to join an \
                     existing one mark it `external: true`"
                ));
            }
        }
    }

    /// `--health-*` and `--no-healthcheck`; any other `health-` flag is unknown.
    fn health_flag(&mut self, f: &str, v: &str, takes_value: bool) {
        let health = &mut self.health;
        match f {
            "health-cmd" => set(
                health,
                "test",
                Value::Sequence(vec![Value::from("CMD-SHELL"), s(v)]),
            ),
            "health-interval" => set(health, "interval", s(v)),
            "health-timeout" => set(health, "timeout", s(v)),
            "health-start-period" => set(health, "start_period", s(v)),
            "health-start-interval" => set(health, "start_interval", s(v)),
            "health-retries" => set(health, "retries", number_or_string(v)),
            "no-healthcheck" => set(health, "disable", Value::Bool(true)),
            f => self.unknown(f, v, takes_value),
        }
    }

    fn gpus(&mut self, v: &str) {
        let mut dev = Mapping::new();
        set(&mut dev, "driver", Value::from("nvidia"));
        if v == "all" {
            set(&mut dev, "count", Value::from("all"));
        } else if let Ok(n) = v.parse::<i64>() {
            set(&mut dev, "count", Value::from(n));
        } else {
            self.warnings
                .push(format!("--gpus {v}: only `all` or a number is converted"));
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
            &mut self.svc,
            "deploy",
            Value::Mapping(Mapping::from_iter([(
                Value::from("resources"),
                Value::Mapping(res),
            )])),
        );
    }

    /// The compose file: the service (image first, then the keys in the order given), its
    /// networks, and the warnings of the conversion and of reading the result back.
    fn finish(self) -> Result<Converted, ConvertError> {
        let Draft {
            mut svc,
            top_networks,
            mut warnings,
            health,
            name,
            image,
            args,
            interactive,
            tty,
        } = self;
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
}

/// `--ulimit name=soft[:hard]`.
fn ulimit(svc: &mut Mapping, v: &str) {
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

/// The service's `logging` mapping, created on first use.
fn logging(svc: &mut Mapping) -> Option<&mut Mapping> {
    match svc
        .entry(Value::from("logging"))
        .or_insert_with(|| Value::Mapping(Mapping::new()))
    {
        Value::Mapping(m) => Some(m),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
