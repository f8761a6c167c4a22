//! `docker run …` text → compose YAML, then the compose reader and the planner on the result.
#![no_main]

use hearth_agent::apps::compose::{self, ComposeError, Vars};
use hearth_agent::apps::convert::docker_run_to_compose;
use hearth_agent::apps::plan::{self, AppSettings, DeviceSettings, PlanInput, PortStrategy};
use libfuzzer_sys::fuzz_target;
use std::collections::{BTreeMap, BTreeSet};

fuzz_target!(|data: &[u8]| {
    let Ok(command) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(converted) = docker_run_to_compose(command) else {
        return;
    };
    // What the converter promises: YAML with one service, and values that are literal (dollar
    // signs doubled), so interpolation neither fails nor finds a variable. A value the compose
    // reader refuses (a bad port, an empty key) is the user's input and a clear error later.
    match compose::parse(&converted.yaml, &Vars::new()) {
        Ok(parsed) => assert!(
            !parsed.warnings.iter().any(|w| w.starts_with("variable ")),
            "interpolation found a variable in the converter's output: {:?}\n{}",
            parsed.warnings,
            converted.yaml
        ),
        Err(ComposeError::Invalid { .. }) => {}
        Err(e) => panic!(
            "the converter wrote compose its reader cannot read: {e}\n{}",
            converted.yaml
        ),
    }
    let device = DeviceSettings::under("/fuzz");
    let settings = AppSettings::default();
    let (ports, names, env_files) = (BTreeSet::new(), BTreeSet::new(), BTreeMap::new());
    let _ = plan::plan(&PlanInput {
        compose: &converted.yaml,
        app_id: None,
        device: &device,
        settings: &settings,
        ports_in_use: &ports,
        names_in_use: &names,
        port_strategy: PortStrategy::Reassign,
        env_files: &env_files,
    });
});
