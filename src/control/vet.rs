//! What a viewer may ask of the engine, checked on the io thread before a
//! command is forwarded: nothing refused here reaches the engine.
//!
//! - Without a token the endpoint is loopback-only, so a viewer may only
//!   make the engine listen on loopback: an IP literal (127.0.0.0/8, ::1)
//!   or `localhost:PORT`, never a name that could resolve elsewhere.
//! - Strings are capped (an address is a few dozen bytes), and so are
//!   target lists, whatever the message size allows.

use crate::protocol::{Command, MAX_WATCHED, Targets};
use std::net::SocketAddr;

/// The longest `Listen` address accepted.
pub const MAX_ADDR: usize = 256;
/// The most connections one command may name.
pub const MAX_TARGETS: usize = 65_536;
/// The most rules a scenario sent by a viewer may have.
pub const MAX_RULES: usize = 4096;
/// How much of a refused address is echoed back.
const SHOWN_ADDR: usize = 64;

#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A `Listen` the viewer is told about (the address as shown, why).
    Listen { addr: String, why: String },
    /// Something an honest viewer may ask but a remote one may not: it is
    /// told so by this event.
    Told(crate::protocol::EventKind),
    /// Something no honest viewer sends: the viewer is closed.
    Abuse(String),
}

pub fn vet(cmd: &Command, has_token: bool) -> Result<(), Refusal> {
    match cmd {
        Command::Listen { addr } => vet_listen(addr, has_token),
        Command::SetConnScenario {
            scenario: Some(file),
            ..
        } if file.rules.len() > MAX_RULES => Err(Refusal::Abuse(format!(
            "a scenario may have at most {MAX_RULES} rules"
        ))),
        Command::Kick { targets, .. }
        | Command::Inject { targets, .. }
        | Command::SetConnScenario { targets, .. }
        | Command::SetReadPaused { targets, .. }
        | Command::SetFaults {
            scope: crate::protocol::FaultScope::Conns(targets),
            ..
        } => match targets {
            Targets::Conns(ids) if ids.len() > MAX_TARGETS => Err(Refusal::Abuse(format!(
                "a command may name at most {MAX_TARGETS} connections"
            ))),
            _ => Ok(()),
        },
        // A viewer watches what it shows: a screenful of rows.
        Command::Watch { conns, .. } if conns.len() > MAX_WATCHED => Err(Refusal::Abuse(format!(
            "a viewer may watch at most {MAX_WATCHED} connections"
        ))),
        Command::SetScenario(Some(file)) | Command::TryScenario { scenario: file, .. }
            if file.rules.len() > MAX_RULES =>
        {
            Err(Refusal::Abuse(format!(
                "a scenario may have at most {MAX_RULES} rules"
            )))
        }
        // Fault values are made safe by the engine (`Faults::sanitized`),
        // whoever sends them; a scenario is compiled (regexes with their
        // size limits) on the engine, which refuses a bad one whole; the
        // message size bounds a try-out's input.
        // A path chosen by a viewer would let it write any file the server
        // may write.
        Command::StartRecording { .. } | Command::StopRecording => Err(Refusal::Told(
            crate::protocol::EventKind::RecordingStopped {
                why: "a remote viewer cannot start or stop the server's recording: start the server with --record FILE".to_owned(),
            },
        )),
        Command::SetScenario(_)
        | Command::TryScenario { .. }
        | Command::SetMode(_)
        | Command::StopListening
        | Command::Inspect { .. }
        | Command::Watch { .. }
        | Command::SetFaults { .. }
        | Command::SetAcceptFault(_) => Ok(()),
    }
}

fn vet_listen(addr: &str, has_token: bool) -> Result<(), Refusal> {
    let refuse = |why: String| {
        Err(Refusal::Listen {
            addr: shown(addr),
            why,
        })
    };
    if addr.len() > MAX_ADDR {
        return refuse(format!(
            "refused: a listen address is at most {MAX_ADDR} bytes"
        ));
    }
    if !has_token && !is_loopback(addr) {
        return refuse(
            "refused: without --token a viewer may only listen on loopback \
             (127.0.0.1:PORT, [::1]:PORT or localhost:PORT)"
                .to_owned(),
        );
    }
    Ok(())
}

/// An IP literal on loopback, or `localhost:PORT`.
pub fn is_loopback(addr: &str) -> bool {
    if let Ok(sa) = addr.parse::<SocketAddr>() {
        return sa.ip().is_loopback();
    }
    addr.rsplit_once(':').is_some_and(|(host, port)| {
        host.eq_ignore_ascii_case("localhost") && port.parse::<u16>().is_ok()
    })
}

/// The start of `addr`, cut at a character boundary.
fn shown(addr: &str) -> String {
    if addr.len() <= SHOWN_ADDR {
        return addr.to_owned();
    }
    let mut end = SHOWN_ADDR;
    while !addr.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &addr[..end], addr.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ConnId, KickMode};

    fn listen(addr: &str) -> Command {
        Command::Listen {
            addr: addr.to_owned(),
        }
    }

    #[test]
    fn loopback_only_without_a_token() {
        for ok in [
            "127.0.0.1:0",
            "127.1.2.3:80",
            "[::1]:9",
            "localhost:8800",
            "LOCALHOST:1",
        ] {
            assert_eq!(vet(&listen(ok), false), Ok(()), "{ok}");
        }
        for bad in [
            "0.0.0.0:1",
            "[::]:1",
            "10.0.0.1:1",
            "localhost",
            "localhost:99999",
            "localhost.evil:1",
            "evil.example:1",
            "9000",
            "",
        ] {
            assert!(
                matches!(vet(&listen(bad), false), Err(Refusal::Listen { .. })),
                "{bad}"
            );
            assert_eq!(
                vet(&listen(bad), true),
                Ok(()),
                "{bad} is the token holder's call"
            );
        }
    }

    #[test]
    fn long_addresses_and_target_lists_are_refused() {
        let long = format!("127.0.0.1:{}", "1".repeat(MAX_ADDR));
        let Err(Refusal::Listen { addr, why }) = vet(&listen(&long), true) else {
            panic!()
        };
        assert!(addr.len() < 100 && why.contains("256"), "{addr} {why}");
        let many = Command::Kick {
            targets: Targets::Conns((0..=MAX_TARGETS as u64).map(ConnId).collect()),
            mode: KickMode::Reset,
        };
        assert!(matches!(vet(&many, true), Err(Refusal::Abuse(_))));
        let watch = |n: u64| Command::Watch {
            viewer: 1,
            conns: (0..n).map(ConnId).collect(),
        };
        assert_eq!(vet(&watch(MAX_WATCHED as u64), false), Ok(()));
        assert!(matches!(
            vet(&watch(MAX_WATCHED as u64 + 1), true),
            Err(Refusal::Abuse(_))
        ));
    }
}
