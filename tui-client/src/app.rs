//! The terminal app: raw mode and the alternate screen, a panic hook that
//! restores the terminal, and one `tokio::select!` loop over the keyboard
//! and mouse (crossterm's `EventStream`), the network channel and a clock
//! tick. It draws only when something visible changed: at once after a
//! key, at most every [`NET_FRAME`] for network events alone (taking what
//! the network has ready first), so a flood makes ~30 draws a second.
//!
//! What only a terminal can do is done here, from the state's effects: the
//! bell and OSC 777/9 desktop notifications, switching mouse capture, and
//! re-writing the URLs on screen as OSC 8 hyperlinks after each draw. The
//! terminal's focus reports go to the state as [`Input::Focus`] (read
//! markers move only while the terminal has the focus).

use std::io::{self, Stdout};

use crossterm::event::{
    DisableBracketedPaste, DisableFocusChange, DisableMouseCapture, EnableBracketedPaste,
    EnableFocusChange, EnableMouseCapture, Event, EventStream, MouseEventKind,
};
use crossterm::execute;
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use futures_util::StreamExt;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::time::Instant;

use ratatui::style::Color;

use crate::client::{Core, TICK, wall_ms};
use crate::msg::{Effect, Notification};
use crate::net::{self, NetConfig};
use crate::state::{Input, State};
use crate::view::{self, Link};

/// What the terminal app does beyond the network settings.
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// Rooms to join once connected.
    pub autojoin: Vec<String>,
    pub notify: crate::state::NotifySettings,
    pub max_lines: usize,
    pub time_format: String,
    pub theme: crate::theme::Theme,
    pub mouse: bool,
    /// Re-emit URLs as OSC 8 hyperlinks.
    pub hyperlinks: bool,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            autojoin: Vec::new(),
            notify: crate::state::NotifySettings::default(),
            max_lines: crate::state::DEFAULT_MAX_LINES,
            time_format: "%H:%M".to_owned(),
            theme: crate::theme::Theme::default(),
            mouse: true,
            hyperlinks: true,
        }
    }
}

/// Puts `options` into a fresh state.
pub fn apply_options(state: &mut State, options: &AppOptions) {
    state.autojoin = options.autojoin.clone();
    state.notify = options.notify.clone();
    state.max_lines = options.max_lines.max(100);
    state.time_format = options.time_format.clone();
    state.theme = options.theme;
    state.viewport.mouse_capture = options.mouse;
}

/// The least time between two draws caused by the network alone: a burst
/// of a thousand messages a second makes thirty draws, not a thousand.
pub const NET_FRAME: std::time::Duration = std::time::Duration::from_millis(33);

/// A ratatui colour as crossterm writes it.
fn crossterm_colour(c: Color) -> crossterm::style::Color {
    use crossterm::style::Color as C;
    match c {
        Color::Reset => C::Reset,
        Color::Black => C::Black,
        Color::Red => C::DarkRed,
        Color::Green => C::DarkGreen,
        Color::Yellow => C::DarkYellow,
        Color::Blue => C::DarkBlue,
        Color::Magenta => C::DarkMagenta,
        Color::Cyan => C::DarkCyan,
        Color::Gray => C::Grey,
        Color::DarkGray => C::DarkGrey,
        Color::LightRed => C::Red,
        Color::LightGreen => C::Green,
        Color::LightYellow => C::Yellow,
        Color::LightBlue => C::Blue,
        Color::LightMagenta => C::Magenta,
        Color::LightCyan => C::Cyan,
        Color::White => C::White,
        Color::Rgb(r, g, b) => C::Rgb { r, g, b },
        Color::Indexed(i) => C::AnsiValue(i),
    }
}

/// Strips what could end an escape sequence early.
fn osc_safe(text: &str, max: usize) -> String {
    text.chars()
        .filter(|c| !c.is_control() && *c != ';')
        .take(max)
        .collect()
}

/// The bytes that ring the bell and raise a desktop notification: OSC 777
/// (rxvt, foot, kitty, WezTerm…) and OSC 9 (iTerm2, Windows Terminal…);
/// terminals that know neither ignore them.
pub fn notification_bytes(n: &Notification) -> String {
    let mut out = String::new();
    if n.desktop {
        let title = osc_safe(&n.title, 80);
        let body = osc_safe(&n.body, 200);
        out.push_str(&format!("\x1b]777;notify;{title};{body}\x1b\\"));
        out.push_str(&format!("\x1b]9;{title}: {body}\x1b\\"));
    }
    if n.bell {
        out.push('\x07');
    }
    out
}

/// Writes the URLs on screen again, at their place and in their style, as
/// OSC 8 hyperlinks (the terminal shows the same text, now clickable).
fn emit_links(out: &mut impl io::Write, links: &[Link], colour: Color) -> io::Result<()> {
    use crossterm::style::{Attribute, SetAttribute, SetForegroundColor};
    if links.is_empty() {
        return Ok(());
    }
    let fg = crossterm_colour(colour);
    for l in links {
        let url: String = l.url.chars().filter(|c| !c.is_control()).collect();
        crossterm::queue!(
            out,
            crossterm::cursor::MoveTo(l.x, l.y),
            SetForegroundColor(fg),
            SetAttribute(Attribute::Underlined)
        )?;
        write!(out, "\x1b]8;;{url}\x1b\\{}\x1b]8;;\x1b\\", l.text)?;
        crossterm::queue!(out, SetAttribute(Attribute::Reset))?;
    }
    out.flush()
}

/// Puts the terminal back as it was. Safe to call more than once.
pub fn restore_terminal() {
    let _ = disable_raw_mode();
    let _ = execute!(
        io::stdout(),
        DisableMouseCapture,
        DisableBracketedPaste,
        DisableFocusChange,
        LeaveAlternateScreen
    );
    let _ = execute!(io::stdout(), crossterm::cursor::Show);
}

fn setup_terminal(mouse: bool) -> io::Result<Terminal<CrosstermBackend<Stdout>>> {
    // A panic of the app itself (the main thread) ends it: restore the
    // terminal first, then let the default hook print the message on a
    // usable terminal. A panic in a task on a worker thread does not end the
    // app (tokio catches it): one in the Socket.IO library's reader (its
    // random ack ids can collide, see the library notes) only ends that
    // connection, which the liveness check notices and replaces. Printing
    // it would scribble over the screen and restoring the terminal would
    // break the app that goes on, so it goes to the log file only.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().name() == Some("main") {
            restore_terminal();
            previous(info);
        } else {
            tracing::error!("a task panicked (the app goes on): {info}");
        }
    }));
    enable_raw_mode()?;
    // Focus reports (v3 read markers): a conversation is marked read only
    // while the terminal has the focus. A terminal that sends none counts
    // as focused.
    execute!(
        io::stdout(),
        EnterAlternateScreen,
        EnableBracketedPaste,
        EnableFocusChange
    )?;
    if mouse {
        execute!(io::stdout(), EnableMouseCapture)?;
    }
    Terminal::new(CrosstermBackend::new(io::stdout()))
}

/// Runs the client in this terminal until the user quits.
pub async fn run(config: NetConfig) -> io::Result<()> {
    run_with(config, AppOptions::default()).await.map(|_| ())
}

/// How the user left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Quit,
    /// (v3) `/logout`: the saved login is to be revoked and forgotten.
    Logout,
}

/// [`run`] with the settings of a configuration file.
pub async fn run_with(config: NetConfig, options: AppOptions) -> io::Result<Exit> {
    let mut terminal = setup_terminal(options.mouse)?;
    let result = event_loop(&mut terminal, config, options).await;
    restore_terminal();
    result
}

async fn event_loop(
    terminal: &mut Terminal<CrosstermBackend<Stdout>>,
    config: NetConfig,
    options: AppOptions,
) -> io::Result<Exit> {
    let (net_tx, mut net_rx) = net::spawn(config.clone());
    let core = Core::new(net_tx);
    let mut state = State::new(&config.username, &config.url, Instant::now(), wall_ms());
    apply_options(&mut state, &options);
    state.utc_offset_secs = chrono::Local::now().offset().local_minus_utc();
    let mut events = EventStream::new();
    let mut tick = tokio::time::interval(TICK);
    let mut last_draw = Instant::now() - NET_FRAME;
    // Set by a key: draw at once, whatever the network does.
    let mut urgent = true;
    let mut exit = Exit::Quit;
    loop {
        if state.dirty && (urgent || last_draw.elapsed() >= NET_FRAME) {
            let mut report = None;
            terminal.draw(|frame| report = Some(view::draw(frame, &state)))?;
            if let Some(r) = report {
                view::after_draw(&mut state, &r);
                if options.hyperlinks && !r.links.is_empty() {
                    emit_links(terminal.backend_mut(), &r.links, state.theme.link)?;
                    // Back to the input line, where the draw left the cursor.
                    if let Some(at) = r.cursor {
                        execute!(
                            terminal.backend_mut(),
                            crossterm::cursor::MoveTo(at.x, at.y)
                        )?;
                    }
                }
            }
            state.dirty = false;
            urgent = false;
            last_draw = Instant::now();
        }
        // A pending draw that waits for its frame wakes the loop in time.
        let frame_due = last_draw + NET_FRAME;
        let input = tokio::select! {
            _ = tokio::time::sleep_until(frame_due), if state.dirty => None,
            ev = events.next() => match ev {
                Some(Ok(Event::Key(key))) => {
                    urgent = true;
                    Some(Input::Key(key))
                }
                Some(Ok(Event::Paste(text))) => {
                    urgent = true;
                    Some(Input::Paste(text))
                }
                Some(Ok(Event::Mouse(m))) => match m.kind {
                    MouseEventKind::ScrollUp => Some(Input::Wheel(1)),
                    MouseEventKind::ScrollDown => Some(Input::Wheel(-1)),
                    _ => None,
                },
                Some(Ok(Event::FocusGained)) => Some(Input::Focus(true)),
                Some(Ok(Event::FocusLost)) => Some(Input::Focus(false)),
                Some(Ok(Event::Resize(..))) => {
                    terminal.autoresize()?;
                    state.dirty = true;
                    urgent = true;
                    None
                }
                // The terminal is gone: nothing more to read.
                Some(Err(_)) | None => {
                    state.quit = true;
                    None
                }
            },
            ev = net_rx.recv() => ev.map(Input::Net),
            _ = tick.tick() => Some(Input::Tick { now: Instant::now(), wall_ms: wall_ms() }),
        };
        if let Some(input) = input {
            let local = core.apply(&mut state, input);
            if local.contains(&Effect::Logout) {
                exit = Exit::Logout;
            }
            terminal_effects(terminal, local)?;
        }
        if matches!(state.conn, crate::state::Conn::Connected) && state.dirty && !urgent {
            // Take whatever else the network has ready before drawing.
            let mut n = 0;
            while n < 256 {
                let Ok(ev) = net_rx.try_recv() else { break };
                let local = core.apply(&mut state, Input::Net(ev));
                terminal_effects(terminal, local)?;
                n += 1;
            }
        }
        if state.quit {
            core.shutdown();
            // Give the network task a moment to say goodbye to the server.
            let _ = tokio::time::timeout(std::time::Duration::from_millis(500), async {
                while net_rx.recv().await.is_some() {}
            })
            .await;
            return Ok(exit);
        }
    }
}

fn terminal_effects(
    terminal: &mut Terminal<CrosstermBackend<Stdout>>,
    effects: Vec<Effect>,
) -> io::Result<()> {
    use std::io::Write;
    for e in effects {
        match e {
            Effect::Notify(n) => {
                let out = terminal.backend_mut();
                out.write_all(notification_bytes(&n).as_bytes())?;
                out.flush()?;
            }
            Effect::MouseCapture(true) => execute!(terminal.backend_mut(), EnableMouseCapture)?,
            Effect::MouseCapture(false) => execute!(terminal.backend_mut(), DisableMouseCapture)?,
            Effect::Net(_) | Effect::Quit | Effect::Logout => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_are_bell_and_osc_sequences_without_injected_escapes() {
        let n = Notification {
            bell: true,
            desktop: true,
            title: "@bob".into(),
            body: "hi;\x1b]0;pwned\x07".into(),
        };
        let bytes = notification_bytes(&n);
        assert_eq!(
            bytes,
            "\x1b]777;notify;@bob;hi]0pwned\x1b\\\x1b]9;@bob: hi]0pwned\x1b\\\x07"
        );
        let quiet = Notification {
            bell: true,
            desktop: false,
            ..n
        };
        assert_eq!(notification_bytes(&quiet), "\x07");
    }
}
