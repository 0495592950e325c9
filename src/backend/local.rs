//! An engine running in this process, on its own thread.

use super::{Backend, BackendStatus, drain_with};
use crate::engine::{EngineConfig, EngineHandle};
use crate::monitor::Monitor;
use crate::protocol::Command;
use std::io;
use std::time::Duration;

#[derive(Debug)]
pub struct LocalBackend {
    engine: EngineHandle,
}

impl LocalBackend {
    pub fn spawn(config: EngineConfig) -> io::Result<Self> {
        Ok(LocalBackend {
            engine: EngineHandle::spawn(config)?,
        })
    }

    pub fn engine(&self) -> &EngineHandle {
        &self.engine
    }
}

impl Backend for LocalBackend {
    fn drain_into(&mut self, monitor: &mut Monitor, budget: Duration) -> bool {
        let batches = self.engine.batches();
        drain_with(monitor, budget, || batches.try_recv().ok())
    }

    fn send(&mut self, cmd: Command) {
        self.engine.send(cmd);
    }

    fn status(&self) -> BackendStatus {
        BackendStatus::InProcess
    }
}
