//! The network task's loop: one attempt after another, with the back-off
//! between them, the next server of a cluster when one cannot be reached,
//! and what each way an attempt ends leads to (a refusal, a lost
//! connection, a new name or password).

use std::time::Duration;

use chat_shared::{ConnectRefusal, ErrorCode};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::attempt::connect_once;
use super::requests::refuse_offline;
use super::{NetConfig, Outcome, Resume};
use crate::msg::{NetCommand, NetEvent};
use crate::password::Password;

impl NetConfig {
    /// The wait before attempt `attempt` (1-based) after a failure.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(16);
        self.backoff_min
            .saturating_mul(factor)
            .min(self.backoff_max)
    }
}

/// What the loop does after an attempt.
enum Then {
    /// The task ends.
    Stop,
    /// The next attempt, at once.
    Now,
    /// The next attempt after this long.
    Wait(Duration),
}

/// The task's state across attempts.
struct Run {
    config: NetConfig,
    cmds: mpsc::UnboundedReceiver<NetCommand>,
    events: mpsc::UnboundedSender<NetEvent>,
    resume: Resume,
    attempt: u32,
    servers: Vec<String>,
    current: usize,
    /// Servers that failed in a row: once all have, wait before the next round.
    failed_in_round: usize,
    /// A `/register` in progress: the password this client had before it.
    claiming: Option<Option<Password>>,
}

pub(super) async fn run(
    config: NetConfig,
    cmds: mpsc::UnboundedReceiver<NetCommand>,
    events: mpsc::UnboundedSender<NetEvent>,
) {
    let servers: Vec<String> = std::iter::once(config.url.clone())
        .chain(config.fallbacks.iter().cloned())
        .collect();
    let mut run = Run {
        config,
        cmds,
        events,
        resume: Resume::default(),
        attempt: 0,
        servers,
        current: 0,
        failed_in_round: 0,
        claiming: None,
    };
    loop {
        let outcome = run.attempt().await;
        match run.then(outcome).await {
            Then::Stop => return,
            Then::Now => continue,
            Then::Wait(wait) => {
                if !run.wait(wait).await {
                    return;
                }
            }
        }
    }
}

impl Run {
    async fn attempt(&mut self) -> Outcome {
        self.attempt += 1;
        let _ = self.events.send(NetEvent::Connecting {
            attempt: self.attempt,
            last_contact: self.resume.last_contact,
        });
        self.resume.established = false;
        let outcome = connect_once(
            &mut self.config,
            &mut self.resume,
            &mut self.cmds,
            &self.events,
        )
        .await;
        if self.resume.established {
            // The account exists now: from here on it is a plain login.
            self.config.register = false;
            self.claiming = None;
            self.failed_in_round = 0;
        }
        outcome
    }

    async fn then(&mut self, outcome: Outcome) -> Then {
        match outcome {
            Outcome::Quit => Then::Stop,
            Outcome::Refused(refusal) => self.after_refusal(refusal).await,
            Outcome::Lost { was_live: true } => {
                self.attempt = 0;
                // Right away the first time: the server may simply be fine.
                Then::Wait(Duration::from_millis(100))
            }
            Outcome::Lost { was_live: false } => self.after_unreachable(),
            Outcome::Renamed(name) => {
                rename(&mut self.config, &mut self.resume, name);
                self.attempt = 0;
                Then::Now
            }
            Outcome::Retry => {
                self.attempt = 0;
                Then::Now
            }
            Outcome::Claim(password, old) => {
                self.claiming = Some(self.config.password.replace(password));
                self.config.register = true;
                // Kept open (not disconnected, which would end the session)
                // until the server closes it for the new connection.
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    drop(old);
                });
                self.attempt = 0;
                Then::Now
            }
            Outcome::Ended(refusal) => {
                // The server said why (the app shows it); coming back by
                // itself would hide that, or hit the ban again and again.
                let _ = self.events.send(NetEvent::Refused {
                    refusal,
                    retrying: false,
                });
                self.after_fix().await
            }
        }
    }

    /// Waits for the user: a name, a password, or `/reconnect`.
    async fn after_fix(&mut self) -> Then {
        match wait_for_fix(&mut self.config, &mut self.cmds, &self.events).await {
            None => Then::Stop,
            Some(fix) => {
                apply_fix(&mut self.config, &mut self.resume, fix);
                self.attempt = 0;
                Then::Now
            }
        }
    }

    async fn after_refusal(&mut self, refusal: ConnectRefusal) -> Then {
        if let Some(before) = self.claiming.take() {
            // The claim was refused: the session is still mine; go back to
            // it as I was.
            self.config.register = false;
            self.config.password = before;
            let _ = self.events.send(NetEvent::Refused {
                refusal,
                retrying: true,
            });
            self.attempt = 0;
            return Then::Now;
        }
        let refusal = if self.config.register && refusal.code == ErrorCode::UsernameTaken {
            // Registering a name that has an account: maybe mine.
            self.config.register = false;
            ConnectRefusal::new(
                ErrorCode::AuthRequired,
                format!("{}: log in with its password instead", refusal.message),
            )
        } else {
            refusal
        };
        let retrying = matches!(
            refusal.code,
            ErrorCode::UsernameTaken | ErrorCode::ServerFull
        );
        let _ = self.events.send(NetEvent::Refused {
            refusal: refusal.clone(),
            retrying,
        });
        if refusal.code == ErrorCode::InvalidSession {
            // The token is not mine to use: try again without it.
            self.resume.session = None;
            self.resume.offset = None;
        } else if !retrying {
            // Stop: only the user can fix this (a password, a name).
            return self.after_fix().await;
        }
        Then::Wait(self.config.backoff_max)
    }

    /// No session came of the attempt.
    fn after_unreachable(&mut self) -> Then {
        if self.servers.len() > 1 {
            // This node cannot be reached: the next one, at once while
            // there are others to try in this round.
            self.current = (self.current + 1) % self.servers.len();
            self.config.url = self.servers[self.current].clone();
            tracing::info!(url = %self.config.url, "trying the next server");
            self.failed_in_round += 1;
            if self.failed_in_round < self.servers.len() {
                return Then::Now;
            }
            self.failed_in_round = 0;
        }
        Then::Wait(self.config.backoff(self.attempt))
    }

    /// Waits before the next attempt; a new name or password ends the wait
    /// early. False at shutdown.
    async fn wait(&mut self, wait: Duration) -> bool {
        let until = Instant::now() + wait;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return true,
                cmd = self.cmds.recv() => match cmd {
                    None | Some(NetCommand::Shutdown) => return false,
                    Some(cmd @ (NetCommand::Rename(_) | NetCommand::Login(_) | NetCommand::Register(_) | NetCommand::Reconnect)) => {
                        apply_fix(&mut self.config, &mut self.resume, cmd);
                        self.attempt = 0;
                        return true;
                    }
                    Some(NetCommand::SetPassword(p)) => self.config.password = Some(p),
                    Some(NetCommand::UseName(name)) => self.config.username = name,
                    Some(cmd) => refuse_offline(cmd, &self.events),
                },
            }
        }
    }
}

/// Waits for a command that may fix a refusal (a name, a password,
/// `/reconnect`), or `None` at shutdown; refuses requests meanwhile.
async fn wait_for_fix(
    config: &mut NetConfig,
    cmds: &mut mpsc::UnboundedReceiver<NetCommand>,
    events: &mpsc::UnboundedSender<NetEvent>,
) -> Option<NetCommand> {
    while let Some(cmd) = cmds.recv().await {
        match cmd {
            NetCommand::Shutdown => return None,
            NetCommand::Rename(_)
            | NetCommand::Login(_)
            | NetCommand::Register(_)
            | NetCommand::Reconnect => {
                return Some(cmd);
            }
            NetCommand::SetPassword(p) => config.password = Some(p),
            NetCommand::UseName(name) => config.username = name,
            other => refuse_offline(other, events),
        }
    }
    None
}

/// Applies a new name or password to the next attempts.
fn apply_fix(config: &mut NetConfig, resume: &mut Resume, fix: NetCommand) {
    match fix {
        NetCommand::Rename(name) => rename(config, resume, name),
        NetCommand::Login(p) | NetCommand::SetPassword(p) => config.password = Some(p),
        NetCommand::Register(p) => {
            config.password = Some(p);
            config.register = true;
        }
        _ => {}
    }
}

/// The next attempts connect as `name`, without the old name's session.
fn rename(config: &mut NetConfig, resume: &mut Resume, name: String) {
    config.username = name;
    resume.session = None;
    resume.offset = None;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_session_the_server_ended_waits_for_the_user_to_reconnect() {
        let (cmd_tx, cmds) = mpsc::unbounded_channel();
        let (events, mut seen) = mpsc::unbounded_channel();
        let mut run = Run {
            config: NetConfig::new("http://x", "alice"),
            cmds,
            events,
            resume: Resume::default(),
            attempt: 1,
            servers: vec!["http://x".into()],
            current: 0,
            failed_in_round: 0,
            claiming: None,
        };
        let kicked = ConnectRefusal::new(ErrorCode::Kicked, "kicked by mod");
        let next = {
            let then = run.then(Outcome::Ended(kicked.clone()));
            tokio::pin!(then);
            // A minute passes: no attempt, whatever the back-off.
            tokio::select! {
                _ = &mut then => panic!("connected again by itself"),
                _ = tokio::time::sleep(Duration::from_secs(60)) => {}
            }
            assert_eq!(
                seen.recv().await,
                Some(NetEvent::Refused {
                    refusal: kicked,
                    retrying: false
                })
            );
            cmd_tx.send(NetCommand::UseName("ally".into())).unwrap();
            cmd_tx.send(NetCommand::Reconnect).unwrap();
            then.await
        };
        assert!(matches!(next, Then::Now), "/reconnect: at once");
        assert_eq!(run.config.username, "ally", "with the name the server gave");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let c = NetConfig::new("http://x", "a");
        assert_eq!(c.backoff(1), Duration::from_millis(500));
        assert_eq!(c.backoff(2), Duration::from_secs(1));
        assert_eq!(c.backoff(5), Duration::from_secs(8));
        assert_eq!(c.backoff(6), Duration::from_secs(10));
        assert_eq!(c.backoff(u32::MAX), Duration::from_secs(10));
    }
}
