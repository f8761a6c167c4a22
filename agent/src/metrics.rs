//! Prometheus counters kept in memory and rendered in the text exposition format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Metrics {
    responses: [AtomicU64; 5],
    pub login_success: AtomicU64,
    pub login_failure: AtomicU64,
    pub claim_failure: AtomicU64,
}

impl Metrics {
    pub fn count_response(&self, status: u16) {
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.responses[class].fetch_add(1, Ordering::Relaxed);
    }

    pub fn render(&self, uptime_secs: u64, sessions: usize, claimed: bool) -> String {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        let version = format!("{{version=\"{}\"}}", crate::VERSION);
        family(
            &mut out,
            "hearth_build_info",
            "Agent version.",
            "gauge",
            &[(&version, 1)],
        );
        family(
            &mut out,
            "hearth_uptime_seconds",
            "Seconds since the agent started.",
            "gauge",
            &[("", uptime_secs)],
        );
        family(
            &mut out,
            "hearth_claimed",
            "Whether the device has been claimed.",
            "gauge",
            &[("", u64::from(claimed))],
        );
        family(
            &mut out,
            "hearth_sessions",
            "Live login sessions.",
            "gauge",
            &[("", sessions as u64)],
        );
        let classes: Vec<(String, u64)> = self
            .responses
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("{{class=\"{}xx\"}}", i + 1), load(c)))
            .collect();
        let classes: Vec<(&str, u64)> = classes.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        family(
            &mut out,
            "hearth_http_responses_total",
            "HTTP responses by status class.",
            "counter",
            &classes,
        );
        let logins = [
            ("{result=\"success\"}", load(&self.login_success)),
            ("{result=\"failure\"}", load(&self.login_failure)),
        ];
        family(
            &mut out,
            "hearth_logins_total",
            "Login attempts by result.",
            "counter",
            &logins,
        );
        family(
            &mut out,
            "hearth_claim_failures_total",
            "Wrong setup codes.",
            "counter",
            &[("", load(&self.claim_failure))],
        );
        out
    }
}

/// One metric family in the text exposition format: HELP, TYPE, then `name{labels} value` lines.
fn family(out: &mut String, name: &str, help: &str, kind: &str, samples: &[(&str, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_prometheus_text() {
        let m = super::Metrics::default();
        m.count_response(200);
        m.count_response(404);
        m.count_response(404);
        let text = m.render(5, 2, true);
        assert!(text.contains("# TYPE hearth_http_responses_total counter\n"));
        assert!(text.contains("hearth_http_responses_total{class=\"4xx\"} 2\n"));
        assert!(text.contains("hearth_sessions 2\n"));
        assert!(text.contains("hearth_claimed 1\n"));
    }
}
