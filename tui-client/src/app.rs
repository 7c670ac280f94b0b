//! The terminal app: raw mode and the alternate screen, a panic hook that
//! restores the terminal, and one `tokio::select!` loop over the keyboard
//! and mouse (crossterm's `EventStream`), the network channel and a clock
//! tick. It draws only when something visible changed.

use std::io::{self, Stdout};

use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture, Event,
    EventStream, MouseEventKind,
};
use crossterm::execute;
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use futures_util::StreamExt;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::time::Instant;

use crate::client::{Core, TICK, wall_ms};
use crate::net::{self, NetConfig};
use crate::state::{Input, State};
use crate::view;

/// Puts the terminal back as it was. Safe to call more than once.
pub fn restore_terminal() {
    let _ = disable_raw_mode();
    let _ = execute!(
        io::stdout(),
        DisableMouseCapture,
        DisableBracketedPaste,
        LeaveAlternateScreen
    );
    let _ = execute!(io::stdout(), crossterm::cursor::Show);
}

fn setup_terminal() -> io::Result<Terminal<CrosstermBackend<Stdout>>> {
    // Restore first, then let the default hook print the panic message on a
    // usable terminal.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        previous(info);
    }));
    enable_raw_mode()?;
    execute!(
        io::stdout(),
        EnterAlternateScreen,
        EnableBracketedPaste,
        EnableMouseCapture
    )?;
    Terminal::new(CrosstermBackend::new(io::stdout()))
}

/// Runs the client in this terminal until the user quits.
pub async fn run(config: NetConfig) -> io::Result<()> {
    let mut terminal = setup_terminal()?;
    let result = event_loop(&mut terminal, config).await;
    restore_terminal();
    result
}

async fn event_loop(
    terminal: &mut Terminal<CrosstermBackend<Stdout>>,
    config: NetConfig,
) -> io::Result<()> {
    let (net_tx, mut net_rx) = net::spawn(config.clone());
    let core = Core::new(net_tx);
    let mut state = State::new(&config.username, &config.url, Instant::now(), wall_ms());
    state.utc_offset_secs = chrono::Local::now().offset().local_minus_utc();
    let mut events = EventStream::new();
    let mut tick = tokio::time::interval(TICK);
    loop {
        if state.dirty {
            let mut report = None;
            terminal.draw(|frame| report = Some(view::draw(frame, &state)))?;
            if let Some(r) = report {
                state.max_scroll = r.max_scroll;
                state.page = r.page;
            }
            state.dirty = false;
        }
        let input = tokio::select! {
            ev = events.next() => match ev {
                Some(Ok(Event::Key(key))) => Some(Input::Key(key)),
                Some(Ok(Event::Paste(text))) => Some(Input::Paste(text)),
                Some(Ok(Event::Mouse(m))) => match m.kind {
                    MouseEventKind::ScrollUp => Some(Input::Wheel(1)),
                    MouseEventKind::ScrollDown => Some(Input::Wheel(-1)),
                    _ => None,
                },
                Some(Ok(Event::Resize(..))) => {
                    terminal.autoresize()?;
                    state.dirty = true;
                    None
                }
                Some(Ok(_)) => None,
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
            core.apply(&mut state, input);
        }
        if state.quit {
            core.shutdown();
            // Give the network task a moment to say goodbye to the server.
            let _ = tokio::time::timeout(std::time::Duration::from_millis(500), async {
                while net_rx.recv().await.is_some() {}
            })
            .await;
            return Ok(());
        }
    }
}
