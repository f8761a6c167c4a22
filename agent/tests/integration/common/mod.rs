//! Test harness: runs the real `hearth-agent` binary in `--dev` mode on a free loopback port and
//! talks to it over HTTPS, trusting only the CA the agent created. The agent is ready when it
//! says `READY=1` on the `sd_notify` socket the harness hands it (after every listener is bound),
//! the same handshake systemd waits for on a device.

#![allow(dead_code)]

pub mod dbus_mock;
pub mod inproc;
pub mod nm_mock;

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const PASSWORD: &str = "correct horse battery";

pub struct Agent {
    pub dir: PathBuf,
    pub port: u16,
    child: Option<Child>,
    pub extra_args: Vec<String>,
    /// A command the agent runs under (e.g. `prlimit --nofile=1024`), which must exec it.
    pub wrapper: Vec<String>,
    /// The temporary directory `dir` is in, when the agent owns it (`claimed_agent`): removed
    /// after the agent is killed.
    tmp: Option<tempfile::TempDir>,
}

pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

impl Agent {
    /// Starts an agent with its state in `dir` (kept, so a test can restart on it).
    pub fn start(dir: &Path) -> Agent {
        Self::start_with(dir, &[])
    }

    pub fn start_with(dir: &Path, extra_args: &[&str]) -> Agent {
        let mut agent = Agent {
            dir: dir.to_path_buf(),
            port: free_port(),
            child: None,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            wrapper: Vec::new(),
            tmp: None,
        };
        agent.spawn();
        agent
    }

    /// Starts an agent under `wrapper` (a command that execs the agent, keeping its pid).
    pub fn start_under(dir: &Path, wrapper: &[&str]) -> Agent {
        let mut agent = Agent {
            dir: dir.to_path_buf(),
            port: free_port(),
            child: None,
            extra_args: Vec::new(),
            wrapper: wrapper.iter().map(|s| s.to_string()).collect(),
            tmp: None,
        };
        agent.spawn();
        agent
    }

    fn spawn(&mut self) {
        let ready = ReadySocket::new();
        let bin = env!("CARGO_BIN_EXE_hearth-agent");
        let mut command = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let child = command
            .args(["--dev", "--data-dir"])
            .arg(&self.dir)
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .args(["--config-dir"])
            .arg(self.dir.join("agent.d"))
            .args(&self.extra_args)
            .env("RUST_LOG", "warn")
            .env("NOTIFY_SOCKET", &ready.name)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start hearth-agent");
        self.child = Some(child);
        self.wait_ready(&ready);
    }

    /// Waits for the agent's `READY=1`; fails at once if the agent exits first.
    fn wait_ready(&mut self, ready: &ReadySocket) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut buf = [0u8; 512];
        loop {
            match ready.socket.recv(&mut buf) {
                Ok(n) if buf[..n].split(|b| *b == b'\n').any(|l| l == b"READY=1") => return,
                Ok(_) => {}
                // The read timeout only lets us notice an agent that died before it was ready.
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if let Some(status) = self
                        .child
                        .as_mut()
                        .and_then(|c| c.try_wait().expect("wait"))
                    {
                        panic!("the agent exited before it was ready: {status}");
                    }
                    assert!(
                        Instant::now() < deadline,
                        "the agent on port {} was not ready in 60 s",
                        self.port
                    );
                }
                Err(e) => panic!("notify socket: {e}"),
            }
        }
    }

    /// The agent's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Peak resident memory of the agent so far (`VmHWM` from /proc), in bytes.
    pub fn peak_rss(&self) -> u64 {
        let pid = self.pid().expect("agent runs");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmHWM")
            * 1024
    }

    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.terminate();
        self.spawn();
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{}", self.port, path)
    }

    pub fn setup_code(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("setup-code")).expect("setup code file");
        text.trim().rsplit(' ').next().expect("code").to_string()
    }

    /// A client that trusts only this agent's CA.
    pub fn client(&self) -> Client {
        let pem = std::fs::read(self.dir.join("tls/ca.crt")).expect("ca.crt");
        Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("pem"))
            .tls_built_in_root_certs(false)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
    }

    pub fn session(&self) -> Session {
        Session {
            client: self.client(),
            base: self.url(""),
            cookie: None,
            device_cookie: None,
            csrf: None,
        }
    }

    /// Claims the device as `admin` and returns the logged-in session.
    pub async fn claim(&self) -> Session {
        let mut s = self.session();
        let (status, body) = s
            .send(
                Method::POST,
                "/api/v1/setup/claim",
                // "Ask me first": no test device installs or reboots by itself because its
                // run happens to fall in the default maintenance window (claim.rs tests the
                // default).
                Some(
                    json!({"code": self.setup_code(), "username": "admin", "password": PASSWORD,
                            "updates": {"automatic": false}}),
                ),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "claim failed: {body}");
        s
    }
}

/// A claimed agent in a fresh temporary directory (removed when the agent is dropped) and the
/// logged-in session of its admin: where most HTTPS tests start.
pub async fn claimed_agent() -> (Agent, Session) {
    claimed_agent_with(&[]).await
}

/// [`claimed_agent`] with extra command-line arguments.
pub async fn claimed_agent_with(extra_args: &[&str]) -> (Agent, Session) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut agent = Agent::start_with(dir.path(), extra_args);
    agent.tmp = Some(dir);
    let admin = agent.claim().await;
    (agent, admin)
}

/// The `sd_notify` socket one agent start reports readiness on: an abstract Unix datagram
/// socket (no file to clean up), unique in this process.
struct ReadySocket {
    socket: UnixDatagram,
    /// `$NOTIFY_SOCKET` for the agent (`@` marks an abstract name).
    name: String,
}

impl ReadySocket {
    fn new() -> ReadySocket {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "hearth-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract name");
        let socket = UnixDatagram::bind_addr(&addr).expect("bind the notify socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("read timeout");
        ReadySocket {
            socket,
            name: format!("@{name}"),
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A browser-like client: keeps the session cookie and sends the CSRF token.
pub struct Session {
    pub client: Client,
    pub base: String,
    pub cookie: Option<String>,
    pub device_cookie: Option<String>,
    pub csrf: Option<String>,
}

fn set_cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

impl Session {
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Value>,
        extra: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, String) {
        let mut req = self
            .client
            .request(method, format!("{}{}", self.base, path));
        let mut cookies = Vec::new();
        if let Some(c) = &self.cookie {
            cookies.push(format!("__Host-hearth_session={c}"));
        }
        if let Some(c) = &self.device_cookie {
            cookies.push(format!("__Host-hearth_device={c}"));
        }
        if !cookies.is_empty() {
            req = req.header("cookie", cookies.join("; "));
        }
        if let Some(csrf) = &self.csrf {
            req = req.header(
                "x-csrf-token",
                HeaderValue::from_str(csrf).expect("csrf header"),
            );
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        if let Some(v) = set_cookie_value(&headers, "__Host-hearth_session") {
            self.cookie = Some(v).filter(|v| !v.is_empty());
        }
        if let Some(v) = set_cookie_value(&headers, "__Host-hearth_device") {
            self.device_cookie = Some(v);
        }
        if let Ok(json) = serde_json::from_str::<Value>(&text)
            && let Some(csrf) = json.get("csrf_token").and_then(Value::as_str)
        {
            self.csrf = Some(csrf.to_string());
        }
        (status, headers, text)
    }

    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (status, _, text) = self.request(method, path, body, &[]).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn login(&mut self, username: &str, password: &str) -> (StatusCode, Value) {
        self.send(
            Method::POST,
            "/api/v1/session",
            Some(json!({"username": username, "password": password})),
        )
        .await
    }
}

pub fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}
