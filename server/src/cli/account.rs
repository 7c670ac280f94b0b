//! `chat-server account add|passwd|remove|list|role`: the operator's account
//! commands, on the same store as the server (`--data-dir`).
//!
//! They open the store without starting it as a server would (no
//! start-up, no heartbeat, no shutdown marker), so they are safe to run
//! while a server uses the same directory: every write is one short SQLite
//! transaction, and the server reads accounts from the store at each
//! login, so it sees the change at the next one.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;

use chat_shared::{check_password, is_valid_username, username_key};

use crate::auth::{HashError, hash_now};
use crate::config::{AccountAction, Config, StoreKind};
use crate::store::{AccountChange, AccountRecord, SqliteStore, Store, StoreError};

/// Where passwords come from: the terminal (asked twice, no echo) or
/// standard input (one line each, for scripts).
pub enum PasswordSource<R> {
    Terminal,
    Lines(R),
}

impl<R: BufRead> PasswordSource<R> {
    fn read(&mut self, name: &str) -> Result<String, String> {
        match self {
            PasswordSource::Terminal => {
                let first = rpassword::prompt_password(format!("password for {name}: "))
                    .map_err(|e| format!("cannot read the password: {e}"))?;
                let again = rpassword::prompt_password("again: ")
                    .map_err(|e| format!("cannot read the password: {e}"))?;
                if first != again {
                    return Err("the two passwords differ: nothing changed".into());
                }
                Ok(first)
            }
            PasswordSource::Lines(r) => {
                let mut line = String::new();
                r.read_line(&mut line)
                    .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
                let line = line.strip_suffix('\n').unwrap_or(&line);
                let line = line.strip_suffix('\r').unwrap_or(line);
                Ok(line.to_owned())
            }
        }
    }
}

/// The password source for this process: the terminal when standard input
/// is one.
pub fn stdin_source() -> PasswordSource<std::io::StdinLock<'static>> {
    if std::io::stdin().is_terminal() {
        PasswordSource::Terminal
    } else {
        PasswordSource::Lines(std::io::stdin().lock())
    }
}

fn open(config: &Config) -> Result<Arc<dyn Store>, String> {
    if let Some(url) = &config.redis_url {
        // A cluster's accounts are in its Redis.
        return crate::store::RedisStore::open(url, "account-cli")
            .map(|s| Arc::new(s) as Arc<dyn Store>)
            .map_err(|e| e.to_string());
    }
    match config.store {
        StoreKind::Memory => Err(
            "accounts live in the on-disk store: run without --store memory (and with the server's --data-dir)"
                .into(),
        ),
        StoreKind::Sqlite => SqliteStore::open(&config.data_dir)
            .map(|s| Arc::new(s) as Arc<dyn Store>)
            .map_err(|e| e.to_string()),
    }
}

fn checked_name(name: &str) -> Result<String, String> {
    if is_valid_username(name) {
        Ok(username_key(name))
    } else {
        Err(format!(
            "{name:?} is not a username: 1-32 characters of A-Z a-z 0-9 _ . -"
        ))
    }
}

fn new_password<R: BufRead>(source: &mut PasswordSource<R>, name: &str) -> Result<String, String> {
    let password = source.read(name)?;
    check_password(&password).map_err(|e| format!("{e}: nothing changed"))?;
    hash_now(&password).map_err(|e| match e {
        HashError::Busy => "busy".into(),
        HashError::Internal(why) => why,
    })
}

async fn committed(write: Result<crate::store::Committed, StoreError>) -> Result<(), StoreError> {
    write?.await
}

/// Runs one account command; `out` gets what it reports. An `Err` is the
/// message for standard error (exit status 1).
pub async fn run<R: BufRead>(
    config: &Config,
    action: &AccountAction,
    mut passwords: PasswordSource<R>,
    out: &mut impl Write,
) -> Result<(), String> {
    let store = open(config)?;
    let say = |out: &mut dyn Write, line: String| {
        writeln!(out, "{line}").map_err(|e| format!("cannot write: {e}"))
    };
    match action {
        AccountAction::Add { name } => {
            let key = checked_name(name)?;
            if store
                .account(&key)
                .await
                .map_err(|e| e.to_string())?
                .is_some()
            {
                return Err(format!(
                    "{name} already has an account (use `account passwd {name}`)"
                ));
            }
            let hash = new_password(&mut passwords, name)?;
            let account = AccountRecord::new(name, hash);
            committed(store.create_account(&account).await)
                .await
                .map_err(|e| match e {
                    StoreError::AccountExists(_) => format!("{name} already has an account"),
                    e => e.to_string(),
                })?;
            say(out, format!("account {name} created"))
        }
        AccountAction::Passwd { name } => {
            let key = checked_name(name)?;
            if store
                .account(&key)
                .await
                .map_err(|e| e.to_string())?
                .is_none()
            {
                return Err(format!("{name} has no account"));
            }
            let hash = new_password(&mut passwords, name)?;
            committed(
                store
                    .update_account(&key, AccountChange::Password(hash))
                    .await,
            )
            .await
            .map_err(|e| e.to_string())?;
            say(out, format!("password of {name} changed"))
        }
        AccountAction::Remove { name } => {
            let key = checked_name(name)?;
            let Some(account) = store.account(&key).await.map_err(|e| e.to_string())? else {
                return Err(format!("{name} has no account"));
            };
            committed(store.delete_account(&key).await)
                .await
                .map_err(|e| e.to_string())?;
            say(out, format!("account {} removed", account.username))
        }
        AccountAction::Role { name, role } => {
            let key = checked_name(name)?;
            let role = chat_shared::Role::parse_account_role(role)
                .ok_or_else(|| format!("{role:?} is not a role: user, moderator or admin"))?;
            let Some(account) = store.account(&key).await.map_err(|e| e.to_string())? else {
                return Err(format!("{name} has no account"));
            };
            let value = (role != chat_shared::Role::User).then(|| role.as_str().to_owned());
            committed(
                store
                    .put_setting(crate::chat::ROLES_SCOPE, &key, value)
                    .await,
            )
            .await
            .map_err(|e| e.to_string())?;
            say(out, format!("{} is now {role}", account.username))
        }
        AccountAction::List => {
            let accounts = store.accounts().await.map_err(|e| e.to_string())?;
            let roles = crate::chat::Policy::from_settings(
                store.settings().await.map_err(|e| e.to_string())?,
            );
            if accounts.is_empty() {
                return say(out, "no accounts".into());
            }
            for a in accounts {
                let created =
                    std::time::UNIX_EPOCH + std::time::Duration::from_millis(a.created_ms);
                let rooms = if a.rooms.is_empty() {
                    "-".to_owned()
                } else {
                    a.rooms.join(" ")
                };
                say(
                    out,
                    format!(
                        "{}\t{}\tcreated {}\trooms {}",
                        a.username,
                        roles.account_role(&username_key(&a.username)),
                        humantime::format_rfc3339_seconds(created),
                        rooms
                    ),
                )?;
            }
            Ok(())
        }
    }
}
