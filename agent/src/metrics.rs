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
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP hearth_build_info Agent version.\n# TYPE hearth_build_info gauge"
        );
        let _ = writeln!(out, "hearth_build_info{{version=\"{}\"}} 1", crate::VERSION);
        let _ = writeln!(
            out,
            "# HELP hearth_uptime_seconds Seconds since the agent started.\n# TYPE hearth_uptime_seconds gauge"
        );
        let _ = writeln!(out, "hearth_uptime_seconds {uptime_secs}");
        let _ = writeln!(
            out,
            "# HELP hearth_claimed Whether the device has been claimed.\n# TYPE hearth_claimed gauge"
        );
        let _ = writeln!(out, "hearth_claimed {}", u8::from(claimed));
        let _ = writeln!(
            out,
            "# HELP hearth_sessions Live login sessions.\n# TYPE hearth_sessions gauge"
        );
        let _ = writeln!(out, "hearth_sessions {sessions}");
        let _ = writeln!(
            out,
            "# HELP hearth_http_responses_total HTTP responses by status class.\n# TYPE hearth_http_responses_total counter"
        );
        for (i, counter) in self.responses.iter().enumerate() {
            let _ = writeln!(
                out,
                "hearth_http_responses_total{{class=\"{}xx\"}} {}",
                i + 1,
                counter.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP hearth_logins_total Login attempts by result.\n# TYPE hearth_logins_total counter"
        );
        let _ = writeln!(
            out,
            "hearth_logins_total{{result=\"success\"}} {}",
            self.login_success.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "hearth_logins_total{{result=\"failure\"}} {}",
            self.login_failure.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP hearth_claim_failures_total Wrong setup codes.\n# TYPE hearth_claim_failures_total counter"
        );
        let _ = writeln!(
            out,
            "hearth_claim_failures_total {}",
            self.claim_failure.load(Ordering::Relaxed)
        );
        out
    }
}
