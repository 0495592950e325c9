//! An engine running in this process, on its own thread.

use super::{Backend, BackendStatus, drain_with};
use crate::engine::{EngineConfig, EngineHandle};
use crate::monitor::Monitor;
use crate::protocol::Command;
use crossbeam_channel::TryRecvError;
use std::io;
use std::time::Duration;

#[derive(Debug)]
pub struct LocalBackend {
    engine: EngineHandle,
    /// Set once the engine thread is gone, with the reason.
    failure: Option<String>,
}

impl LocalBackend {
    pub fn spawn(config: EngineConfig) -> io::Result<Self> {
        Ok(LocalBackend {
            engine: EngineHandle::spawn(config)?,
            failure: None,
        })
    }

    pub fn engine(&self) -> &EngineHandle {
        &self.engine
    }
}

impl Backend for LocalBackend {
    fn drain_into(&mut self, monitor: &mut Monitor, budget: Duration) -> bool {
        let batches = self.engine.batches();
        let mut gone = false;
        let more = drain_with(monitor, budget, || match batches.try_recv() {
            Ok(batch) => Some(batch),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => {
                gone = true;
                None
            }
        });
        if gone && self.failure.is_none() {
            self.failure = self.engine.failure();
            if let Some(why) = &self.failure {
                log::error!("{why}");
            }
        }
        more
    }

    fn send(&mut self, cmd: Command) {
        self.engine.send(cmd);
    }

    fn status(&self) -> BackendStatus {
        match &self.failure {
            None => BackendStatus::InProcess,
            Some(error) => BackendStatus::Disconnected {
                url: "in-process engine".to_owned(),
                error: format!("{error}. Your layout is kept; save it and restart muxscope."),
            },
        }
    }
}
