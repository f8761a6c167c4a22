//! Acknowledged writes survive `kill -9`: a writer process stores records through the agent's
//! store and acknowledges each one after the write call returns; it is killed at random moments
//! many times, and after every kill each acknowledged record must be there and the whole store
//! must decode.

use hearth_agent::store::Store;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const ROUNDS: u64 = 30;

fn writer_round(dir: &std::path::Path, from: u64, kill_after: Duration) -> Option<u64> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hearth-agent"))
        .args(["--dev", "--data-dir"])
        .arg(dir)
        .args(["--config-dir"])
        .arg(dir.join("agent.d"))
        .args(["debug", "store-writer", "--from", &from.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start writer");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(n) = line
                .strip_prefix("ack ")
                .and_then(|n| n.parse::<u64>().ok())
            {
                let _ = tx.send(n);
            }
        }
    });
    std::thread::sleep(kill_after);
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    reader.join().expect("reader");
    rx.try_iter().last()
}

#[test]
fn acknowledged_writes_survive_kill_9_at_random_moments() {
    let dir = tempfile::tempdir().expect("tmp");
    let seed = Instant::now().elapsed().as_nanos() as u64 ^ u64::from(std::process::id());
    println!("seed {seed}");
    let mut rng = seed | 1;
    let mut next = 0u64;
    let mut acked_total = 0u64;
    for round in 0..ROUNDS {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let kill_after = Duration::from_millis(30 + rng % 300);
        let last_acked = writer_round(dir.path(), next, kill_after);
        let store = Store::open(&dir.path().join("store"))
            .unwrap_or_else(|e| panic!("round {round}: store does not open after kill -9: {e}"));
        let records = store
            .verify()
            .unwrap_or_else(|e| panic!("round {round}: store corrupt after kill -9: {e}"));
        if let Some(last) = last_acked {
            for n in 0..=last {
                let user = store.user(&format!("w{n}")).expect("read");
                assert!(
                    user.is_some(),
                    "round {round}: acknowledged record w{n} lost (acked up to {last})"
                );
            }
            acked_total += last + 1 - next;
            next = last + 1;
        }
        assert!(
            records as u64 >= next,
            "round {round}: fewer records than acknowledged"
        );
    }
    println!("{acked_total} acknowledged writes over {ROUNDS} kills");
    assert!(
        acked_total >= ROUNDS,
        "the writer must make progress between kills: {acked_total}"
    );
}
