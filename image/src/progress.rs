//! Step-by-step progress on the terminal and the timing summary at the end of a build.
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub struct Progress {
    total: usize,
    done: Vec<(String, Duration, String)>,
    current: Option<(String, Instant)>,
}

impl Progress {
    pub fn new(total: usize) -> Self {
        Progress {
            total,
            ..Progress::default()
        }
    }

    /// Starts a step, finishing the previous one.
    pub fn step(&mut self, name: &str) {
        self.finish("");
        eprintln!("[{}/{}] {name} …", self.done.len() + 1, self.total);
        self.current = Some((name.to_string(), Instant::now()));
    }

    /// Finishes the current step with a short note (e.g. "cached", a size).
    pub fn finish(&mut self, note: &str) {
        if let Some((name, start)) = self.current.take() {
            let took = start.elapsed();
            eprintln!("      done in {:.1}s {note}", took.as_secs_f64());
            self.done.push((name, took, note.to_string()));
        }
    }

    pub fn steps(&self) -> &[(String, Duration, String)] {
        &self.done
    }

    pub fn summary(&self) -> String {
        let mut out = String::from("step                  time\n");
        let mut total = Duration::ZERO;
        for (name, took, note) in &self.done {
            total += *took;
            out.push_str(&format!(
                "{name:<20} {:>6.1}s  {note}\n",
                took.as_secs_f64()
            ));
        }
        out.push_str(&format!("{:<20} {:>6.1}s\n", "total", total.as_secs_f64()));
        out
    }
}
