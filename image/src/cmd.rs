//! Runs external programs from an argv (never a shell string), keeps their output in the
//! build log, and turns a failure into an error naming the program and its last lines.
use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    #[error(
        "cannot start {program}: {source} (is it installed? ci/image-deps installs the build tools)"
    )]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{program} failed ({status}); its last lines:\n{tail}")]
    Failed {
        program: String,
        status: String,
        tail: String,
    },
    #[error("{program} printed something that is not UTF-8")]
    NotUtf8 { program: String },
}

const TAIL_LINES: usize = 25;

/// Runs commands, appending everything they print to one log file.
#[derive(Debug, Clone)]
pub struct Runner {
    log: Option<Arc<Mutex<File>>>,
    /// Echo the output of every program to the terminal.
    pub verbose: bool,
}

impl Runner {
    pub fn new(log_path: Option<&Path>, verbose: bool) -> std::io::Result<Runner> {
        let log = match log_path {
            Some(p) => Some(Arc::new(Mutex::new(
                File::options().create(true).append(true).open(p)?,
            ))),
            None => None,
        };
        Ok(Runner { log, verbose })
    }

    fn log_line(&self, line: &str) {
        if let Some(log) = &self.log
            && let Ok(mut f) = log.lock()
        {
            let _ = writeln!(f, "{line}");
        }
    }

    /// Runs to completion; output goes to the log (and the terminal when `echo` or verbose).
    pub fn run(&self, cmd: &mut Command, echo: bool) -> Result<(), CmdError> {
        self.run_inner(cmd, None, echo, false).map(|_| ())
    }

    /// Runs with `input` on standard input.
    pub fn run_with_input(&self, cmd: &mut Command, input: &[u8]) -> Result<(), CmdError> {
        self.run_inner(cmd, Some(input), false, false).map(|_| ())
    }

    /// Runs and returns standard output (standard error goes to the log).
    pub fn output(&self, cmd: &mut Command) -> Result<String, CmdError> {
        self.run_inner(cmd, None, false, true)
    }

    fn run_inner(
        &self,
        cmd: &mut Command,
        input: Option<&[u8]>,
        echo: bool,
        capture: bool,
    ) -> Result<String, CmdError> {
        let program = describe(cmd);
        self.log_line(&format!("$ {program}"));
        cmd.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|source| CmdError::Spawn {
            program: program.clone(),
            source,
        })?;
        if let (Some(bytes), Some(mut stdin)) = (input, child.stdin.take()) {
            let _ = stdin.write_all(bytes);
        }
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let echo = echo || self.verbose;
        let err_reader = child.stderr.take().map(|stderr| {
            let (runner, tail) = (self.clone(), tail.clone());
            std::thread::spawn(move || runner.pump(stderr, &tail, echo))
        });
        let mut captured = Vec::new();
        if let Some(mut stdout) = child.stdout.take() {
            if capture {
                let _ = stdout.read_to_end(&mut captured);
            } else {
                self.pump(stdout, &tail, echo);
            }
        }
        if let Some(handle) = err_reader {
            let _ = handle.join();
        }
        let status = child.wait().map_err(|source| CmdError::Spawn {
            program: program.clone(),
            source,
        })?;
        if !status.success() {
            let tail = tail
                .lock()
                .map(|t| t.iter().cloned().collect::<Vec<String>>().join("\n"))
                .unwrap_or_default();
            return Err(CmdError::Failed {
                program,
                status: status.to_string(),
                tail,
            });
        }
        String::from_utf8(captured).map_err(|_| CmdError::NotUtf8 { program })
    }

    fn pump(&self, stream: impl Read, tail: &Mutex<VecDeque<String>>, echo: bool) {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if echo {
                eprintln!("    {line}");
            }
            self.log_line(&line);
            if let Ok(mut t) = tail.lock() {
                if t.len() == TAIL_LINES {
                    t.pop_front();
                }
                t.push_back(line);
            }
        }
    }
}

/// The command as one line for logs and errors (not for execution).
pub fn describe(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

/// Finds `program` on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}
