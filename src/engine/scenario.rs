//! The loop's side of scenarios: which one runs, and what happens to the
//! open connections when it changes. The per-connection work is in
//! `script_io`.

use super::event_loop::EventLoop;
use crate::protocol::{EventKind, FaultScope, ScenarioStatus, Targets};
use crate::scenario::{Scenario, ScenarioFile};
use std::sync::Arc;

impl EventLoop {
    /// Compile and run `file` (`None` lifts the scenario). One that does
    /// not compile is refused whole; the running one stays.
    pub(super) fn set_scenario(&mut self, file: Option<ScenarioFile>) {
        match file.map(|f| Scenario::compile(&f)) {
            None => self.run_scenario(None, true),
            Some(Ok(scenario)) => self.run_scenario(Some(Arc::new(scenario)), true),
            Some(Err(why)) => self.emit(None, EventKind::ScenarioRefused { why }),
        }
    }

    /// Make `scenario` the one every connection runs. Open connections
    /// start its script afresh (their connect rules do not fire: they
    /// connected before it). Its fallback becomes the mode, and with
    /// `its_faults` its faults, if it has any, act on new and open
    /// connections (at start the config already holds the faults chosen).
    pub(super) fn run_scenario(&mut self, scenario: Option<Arc<Scenario>>, its_faults: bool) {
        self.rule_tallies.clear();
        self.scenario = scenario.clone();
        let (name, rules) = scenario.as_ref().map_or((String::new(), 0), |s| {
            (
                s.file()
                    .name
                    .clone()
                    .unwrap_or_else(|| "unnamed".to_owned()),
                s.rule_count().min(u16::MAX as usize) as u16,
            )
        });
        self.emit(None, EventKind::ScenarioSet { name, rules });
        self.stats.force();
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.with_conn(key, |io, conn| io.run_script(conn, scenario.as_ref()));
        }
        let Some(scenario) = scenario else {
            return;
        };
        let mode = crate::protocol::Mode::from(scenario.otherwise());
        if mode != self.mode {
            self.set_mode(mode);
        }
        let faults = scenario.faults();
        if its_faults && !faults.is_none() {
            self.set_faults(FaultScope::New, faults.clone());
            self.set_faults(FaultScope::Conns(Targets::All), faults.clone());
        }
    }

    /// Run `file` on these connections alone (`None`: on none of them);
    /// the scenario new connections get stays. Its faults, if it has any,
    /// act on them too.
    pub(super) fn set_conn_scenario(&mut self, targets: &Targets, file: Option<ScenarioFile>) {
        let scenario = match file.map(|f| Scenario::compile(&f)) {
            None => None,
            Some(Ok(scenario)) => Some(Arc::new(scenario)),
            Some(Err(why)) => {
                self.emit(None, EventKind::ScenarioRefused { why });
                return;
            }
        };
        for (id, key) in self.targets(targets) {
            self.with_conn_id(id, key, |io, conn| io.run_script(conn, scenario.as_ref()));
        }
        if let Some(s) = &scenario
            && !s.faults().is_none()
        {
            self.set_faults(FaultScope::Conns(targets.clone()), s.faults().clone());
        }
    }

    /// Answer a `TryScenario`: what `input` would do under `file`.
    pub(super) fn try_scenario(&mut self, file: &ScenarioFile, input: &[u8]) {
        let answer = Scenario::compile(file).map(|s| s.try_input(input, 0));
        self.publisher.tried(answer);
    }

    /// The running scenario and its rules' counts, for the stats.
    pub(super) fn scenario_status(&self) -> Option<Box<ScenarioStatus>> {
        let scenario = self.scenario.as_ref()?;
        let mut fired = self.rule_tallies.clone();
        fired.resize(scenario.rule_count(), Default::default());
        Some(Box::new(ScenarioStatus {
            file: scenario.file().clone(),
            fired,
        }))
    }
}
