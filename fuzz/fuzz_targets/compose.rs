//! Compose text → interpolation, the typed model and the planner (which runs the policy).
//! Any panic is a finding; errors are the expected answer to bad input.
#![no_main]

use hearth_agent::apps::compose::{self, Vars};
use hearth_agent::apps::plan::{
    self, AppSettings, DeviceSettings, PlanError, PlanInput, PortStrategy,
};
use libfuzzer_sys::fuzz_target;
use std::collections::{BTreeMap, BTreeSet};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let vars: Vars = [
        ("A", "a"),
        ("EMPTY", ""),
        ("DOLLAR", "$x"),
        ("WEBUI_PORT", "8080"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    // The interpolation grammar on its own: every input is a possible string value.
    let _ = compose::interpolate(text, &vars);

    let device = DeviceSettings::under("/fuzz");
    let settings = AppSettings {
        vars,
        ..AppSettings::default()
    };
    let ports = BTreeSet::from([(8080, plan::Protocol::Tcp)]);
    let names = BTreeSet::from(["taken".to_string()]);
    let env_files = BTreeMap::from([(".env".to_string(), "A=1\nB=${A}\n".to_string())]);
    let mut input = PlanInput {
        compose: text,
        app_id: None,
        device: &device,
        settings: &settings,
        ports_in_use: &ports,
        names_in_use: &names,
        port_strategy: PortStrategy::Reassign,
        env_files: &env_files,
    };
    // The file's own `name` first; files without one are planned under a fixed id.
    if let Err(PlanError::MissingAppId | PlanError::InvalidAppId(_)) = plan::plan(&input) {
        input.app_id = Some("fuzz-app");
        input.port_strategy = PortStrategy::Exact;
        let _ = plan::plan(&input);
    }
});
