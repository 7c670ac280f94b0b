//! Accounts in the client: a password typed on the input line (masked)
//! when the server asks for one, `/register` to claim the name I use as a
//! guest, `/passwd` to change the password, and DMs the server keeps for
//! an offline account ("queued for bob" until bob comes back).
//!
//! A password typed here never enters the input history, never reaches a
//! typing signal, and is dropped from the state as soon as it is handed to
//! the network task.

use chat_shared::{ClientEvent, ConnectRefusal, ErrorCode, PasswordChange, check_password};

use super::outbox::set_delivery_where;
use super::{ConvId, Delivery, Effect, NetCommand, Request, State};
use crate::password::Password;

/// What the masked input line is asking for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secret {
    /// The account's password, to log in.
    Login,
    /// A new password for `/register`; `first` once typed once.
    Register { first: Option<Password> },
    /// `/passwd`: the current password, then the new one twice.
    Passwd {
        old: Option<Password>,
        new: Option<Password>,
    },
}

impl Secret {
    /// The input line's prompt.
    pub fn prompt(&self, me: &str) -> String {
        match self {
            Secret::Login => format!("password for {me}> "),
            Secret::Register { first: None } => format!("new password for {me}> "),
            Secret::Register { first: Some(_) } => "same password again> ".into(),
            Secret::Passwd { old: None, .. } => "current password> ".into(),
            Secret::Passwd { new: None, .. } => "new password> ".into(),
            Secret::Passwd { .. } => "new password again> ".into(),
        }
    }
}

impl State {
    /// Whether the input line is asking for a password (shown masked).
    pub fn asking_secret(&self) -> bool {
        self.secret.is_some()
    }
}

/// A refused connect that a password can fix: ask for it on the input
/// line. Returns whether it did.
pub(super) fn refused(state: &mut State, refusal: &ConnectRefusal) -> bool {
    let me = state.me.clone();
    let ask = match refusal.code {
        ErrorCode::AuthRequired => {
            state.toast(format!(
                "{}: type the password for {me} and press Enter (Esc: not now)",
                refusal.message
            ));
            Secret::Login
        }
        ErrorCode::BadCredentials => {
            state.toast(format!(
                "{}: type it again and press Enter (Esc: not now)",
                refusal.message
            ));
            Secret::Login
        }
        // Too many wrong passwords: the message says how long to wait.
        ErrorCode::RateLimited => {
            state.toast(format!("{}; then type the password again", refusal.message));
            Secret::Login
        }
        ErrorCode::WeakPassword => {
            state.toast(format!("{}: choose another password", refusal.message));
            Secret::Register { first: None }
        }
        _ => return false,
    };
    state.editor.input.clear();
    state.editor.cursor = 0;
    state.secret = Some(ask);
    true
}

/// Enter on the masked line.
pub(super) fn submit(state: &mut State, line: String, fx: &mut Vec<Effect>) {
    let Some(secret) = state.secret.take() else {
        return;
    };
    let typed = Password::new(line);
    match secret {
        Secret::Login => {
            if typed.expose().is_empty() {
                state.secret = Some(Secret::Login);
                return;
            }
            fx.push(Effect::Net(NetCommand::Login(typed)));
        }
        Secret::Register { first: None } => match check_password(typed.expose()) {
            Ok(()) => state.secret = Some(Secret::Register { first: Some(typed) }),
            Err(e) => {
                state.toast(format!("{e}: a password has 8-256 characters"));
                state.secret = Some(Secret::Register { first: None });
            }
        },
        Secret::Register { first: Some(first) } => {
            if first != typed {
                state.toast("the two passwords differ: type the new one again");
                state.secret = Some(Secret::Register { first: None });
                return;
            }
            let conv = state.active.clone();
            state.system(&conv, format!("registering {}…", state.me));
            fx.push(Effect::Net(NetCommand::Register(typed)));
        }
        Secret::Passwd { old: None, .. } => {
            state.secret = Some(Secret::Passwd {
                old: Some(typed),
                new: None,
            });
        }
        Secret::Passwd {
            old: Some(old),
            new: None,
        } => match check_password(typed.expose()) {
            Ok(()) => {
                state.secret = Some(Secret::Passwd {
                    old: Some(old),
                    new: Some(typed),
                })
            }
            Err(e) => {
                state.toast(format!("{e}: a password has 8-256 characters"));
                state.secret = Some(Secret::Passwd {
                    old: Some(old),
                    new: None,
                });
            }
        },
        Secret::Passwd {
            old: Some(old),
            new: Some(new),
        } => {
            if new != typed {
                state.toast("the two new passwords differ: type the new one again");
                state.secret = Some(Secret::Passwd {
                    old: Some(old),
                    new: None,
                });
                return;
            }
            let ev = ClientEvent::AccountPassword(PasswordChange {
                old: old.expose().to_owned(),
                new: new.expose().to_owned(),
            });
            fx.push(state.request(Request::Passwd(new), ev));
        }
    }
}

/// Esc on the masked line: nothing is sent.
pub(super) fn cancel(state: &mut State) {
    if state.secret.take().is_some() {
        state.editor.input.clear();
        state.editor.cursor = 0;
        state.toast("cancelled: nothing was sent");
    }
}

/// `/register`: claim the name I use as a guest (the session is kept).
pub(super) fn start_register(state: &mut State) {
    if !state.session.live {
        state.toast("not connected: /register needs the server");
        return;
    }
    state.secret = Some(Secret::Register { first: None });
}

/// `/passwd`: change the account's password.
pub(super) fn start_passwd(state: &mut State) {
    if !state.session.live {
        state.toast("not connected: /passwd needs the server");
        return;
    }
    state.secret = Some(Secret::Passwd {
        old: None,
        new: None,
    });
}

/// The ack of `account:password`.
pub(super) fn password_changed(state: &mut State, new: Password, fx: &mut Vec<Effect>) {
    let conv = state.active.clone();
    state.system(&conv, "password changed");
    // The next fresh login (after a long outage) needs the new one.
    fx.push(Effect::Net(NetCommand::SetPassword(new)));
}

/// `user` is online again: what the server kept for them has reached them.
pub(super) fn user_back(state: &mut State, user: &str) {
    let conv = ConvId::Dm(user.to_owned());
    set_delivery_where(
        state,
        &conv,
        |d| matches!(d, Delivery::Held(_)),
        Delivery::Sent,
    );
}
