//! What the update agent is doing now, as one state with asserted transitions (zincati's
//! `UpdateAgentState` is the model). Only the in-memory activity is here; what survives a
//! restart (an install waiting for its reboot, a trial) is in the store and the boot loader,
//! and [`super::reconcile::decide`] reads it. See the diagram in ARCHITECTURE.md:
//!
//! ```text
//!   Idle ──CheckStarted──▶ Checking ──CheckFinished──▶ Idle
//!   Idle ──InstallStarted──▶ Downloading ──Phase(sync|verify|activate)──▶ Installing
//!   Downloading ──Phase(mark_unbootable|index|write)──▶ Downloading
//!   Installing ──Phase(sync|verify|activate)──▶ Installing
//!   Downloading | Installing ──InstallFinished──▶ Idle
//! ```
//!
//! Anything else is a bug in the caller: [`AgentState::apply`] panics in debug builds and
//! refuses it (state unchanged, logged) in release builds. A check or install asked for while
//! the agent is busy is not a transition: callers ask [`AgentState::is_idle`] first and answer
//! `update_busy`.

use hearth_ota::install::Phase;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentState {
    /// Nothing running.
    Idle,
    /// A repository check is running.
    Checking,
    /// An install job is fetching and writing the inactive slot (the engine's phase, once it
    /// reported one).
    Downloading(Option<Phase>),
    /// An install job is syncing, verifying and activating the written slot.
    Installing(Phase),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    CheckStarted,
    CheckFinished,
    InstallStarted,
    /// The install engine reports a phase (they come in order).
    Phase(Phase),
    /// The install job ended (installed or failed).
    InstallFinished,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the update agent in state {from:?} cannot take {event:?}")]
pub struct InvalidTransition {
    pub from: AgentState,
    pub event: Event,
}

/// Phases that fetch and write (before the written slot is synced).
fn writing(p: Phase) -> bool {
    matches!(p, Phase::MarkUnbootable | Phase::Index | Phase::Write)
}

impl AgentState {
    /// The state after `event`, or why it cannot happen now.
    pub fn next(self, event: Event) -> Result<AgentState, InvalidTransition> {
        use AgentState as S;
        use Event as E;
        Ok(match (self, event) {
            (S::Idle, E::CheckStarted) => S::Checking,
            (S::Checking, E::CheckFinished) => S::Idle,
            (S::Idle, E::InstallStarted) => S::Downloading(None),
            (S::Downloading(_), E::Phase(p)) if writing(p) => S::Downloading(Some(p)),
            (S::Downloading(_) | S::Installing(_), E::Phase(p)) if !writing(p) => S::Installing(p),
            (S::Downloading(_) | S::Installing(_), E::InstallFinished) => S::Idle,
            (from, event) => return Err(InvalidTransition { from, event }),
        })
    }

    /// Takes `event`. An invalid transition is a bug: a panic in debug builds; in release
    /// builds it is logged and refused, the state unchanged.
    pub fn apply(&mut self, event: Event) -> Result<(), InvalidTransition> {
        match self.next(event) {
            Ok(to) => {
                *self = to;
                Ok(())
            }
            Err(e) => {
                debug_assert!(false, "{e}");
                tracing::error!(error = %e, "invalid update state transition refused");
                Err(e)
            }
        }
    }

    pub fn is_idle(self) -> bool {
        self == AgentState::Idle
    }

    pub fn is_installing(self) -> bool {
        matches!(self, AgentState::Downloading(_) | AgentState::Installing(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AgentState as S;
    use Event as E;

    const PHASES: [Phase; 6] = [
        Phase::MarkUnbootable,
        Phase::Index,
        Phase::Write,
        Phase::Sync,
        Phase::Verify,
        Phase::Activate,
    ];

    #[test]
    fn a_check_and_an_install_run_their_course() {
        let mut s = S::Idle;
        s.apply(E::CheckStarted).expect("check");
        assert_eq!(s, S::Checking);
        s.apply(E::CheckFinished).expect("done");
        s.apply(E::InstallStarted).expect("install");
        assert_eq!(s, S::Downloading(None));
        for p in PHASES {
            s.apply(E::Phase(p)).expect("phase");
        }
        assert_eq!(s, S::Installing(Phase::Activate));
        s.apply(E::InstallFinished).expect("finished");
        assert!(s.is_idle());
        // A failed install ends from any of its states.
        for at in [S::Downloading(None), S::Downloading(Some(Phase::Write))] {
            assert_eq!(at.next(E::InstallFinished), Ok(S::Idle));
        }
    }

    #[test]
    fn every_transition_not_in_the_diagram_is_refused() {
        let states = [
            S::Idle,
            S::Checking,
            S::Downloading(None),
            S::Downloading(Some(Phase::Write)),
            S::Installing(Phase::Verify),
        ];
        let events: Vec<Event> = [E::CheckStarted, E::CheckFinished, E::InstallStarted]
            .into_iter()
            .chain(PHASES.map(E::Phase))
            .chain([E::InstallFinished])
            .collect();
        let mut allowed = 0;
        for from in states {
            for event in &events {
                let valid = match (from, *event) {
                    (S::Idle, E::CheckStarted | E::InstallStarted) => true,
                    (S::Checking, E::CheckFinished) => true,
                    (S::Downloading(_), E::Phase(_) | E::InstallFinished) => true,
                    (S::Installing(_), E::Phase(p)) => !writing(p),
                    (S::Installing(_), E::InstallFinished) => true,
                    _ => false,
                };
                assert_eq!(from.next(*event).is_ok(), valid, "{from:?} {event:?}");
                allowed += usize::from(valid);
            }
        }
        // 2 from idle, 1 from checking, 7 from each downloading, 3 + 1 from installing.
        assert_eq!(allowed, 2 + 1 + 7 + 7 + 4);
        // Going back to writing after the slot was synced would report a wrong state.
        assert_eq!(
            S::Installing(Phase::Sync).next(E::Phase(Phase::Write)),
            Err(InvalidTransition {
                from: S::Installing(Phase::Sync),
                event: E::Phase(Phase::Write)
            })
        );
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "cannot take InstallStarted")]
    fn an_invalid_transition_panics_in_debug_builds() {
        let mut s = S::Checking;
        let _ = s.apply(E::InstallStarted);
    }
}
