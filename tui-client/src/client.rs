//! The app-and-network stack without a terminal: [`Core`] applies inputs to
//! the state and carries out the effects (the terminal app uses it too), and
//! [`Client`] runs a core in a task so that tests can type lines and read
//! the state, exactly as a user would, only without a screen.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossterm::event::{KeyEvent, KeyModifiers};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::msg::{Effect, Input, NetCommand, NetEvent, Notification};
use crate::net::{self, NetConfig};
use crate::state::{State, update};

/// How often the clock input ticks.
pub const TICK: Duration = Duration::from_millis(250);

/// Wall-clock milliseconds since the Unix epoch.
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Carries out effects: the way from the state to the network task.
pub struct Core {
    net: mpsc::UnboundedSender<NetCommand>,
}

impl Core {
    pub fn new(net: mpsc::UnboundedSender<NetCommand>) -> Core {
        Core { net }
    }

    /// Applies one input to `state` and carries out its network effects;
    /// returns those for the terminal (notifications, mouse capture).
    pub fn apply(&self, state: &mut State, input: Input) -> Vec<Effect> {
        let mut local = Vec::new();
        for effect in update(state, input) {
            match effect {
                Effect::Net(cmd) => {
                    // The task only goes away at shutdown; nothing to do then.
                    let _ = self.net.send(cmd);
                }
                Effect::Quit => state.quit = true,
                other => local.push(other),
            }
        }
        local
    }

    /// Moves the state's clock to now.
    pub fn tick(&self, state: &mut State) {
        let _ = self.apply(
            state,
            Input::Tick {
                now: Instant::now(),
                wall_ms: wall_ms(),
            },
        );
    }

    /// Asks the network task to disconnect cleanly.
    pub fn shutdown(&self) {
        let _ = self.net.send(NetCommand::Shutdown);
    }
}

pub use crossterm::event::KeyCode;

/// A key press without modifiers.
pub fn key(code: KeyCode) -> Input {
    Input::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

/// Ctrl and a letter.
pub fn ctrl(c: char) -> Input {
    Input::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
}

/// Alt and a character (Alt-1..9 switch conversations).
pub fn alt(c: char) -> Input {
    Input::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::ALT))
}

/// The keys that type `line` and press Enter.
pub fn keys_for_line(line: &str) -> Vec<Input> {
    let mut keys: Vec<Input> = line
        .chars()
        .map(|c| Input::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)))
        .collect();
    keys.push(Input::Key(KeyEvent::new(
        KeyCode::Enter,
        KeyModifiers::NONE,
    )));
    keys
}

/// A running headless client.
pub struct Client {
    state: Arc<Mutex<State>>,
    notified: Arc<Mutex<Vec<Notification>>>,
    inputs: mpsc::UnboundedSender<Input>,
    task: tokio::task::JoinHandle<()>,
}

impl Client {
    /// Starts the network task and the loop for `config`.
    pub fn start(config: NetConfig) -> Client {
        Client::start_with(config, |_| {})
    }

    /// Like [`Client::start`], with `setup` applied to the fresh state (the
    /// settings a configuration file would give: rooms to join, limits).
    pub fn start_with(config: NetConfig, setup: impl FnOnce(&mut State)) -> Client {
        Client::start_on_screen(config, setup, None)
    }

    /// Like [`Client::start_with`], drawing every change on an off-screen
    /// terminal of `(width, height)` as the app would: scrolling is then
    /// bounded by what is drawn, and reaching the top fetches history.
    pub fn start_on_screen(
        config: NetConfig,
        setup: impl FnOnce(&mut State),
        screen: Option<(u16, u16)>,
    ) -> Client {
        let (net_tx, net_rx) = net::spawn(config.clone());
        let mut state = State::new(&config.username, &config.url, Instant::now(), wall_ms());
        setup(&mut state);
        let shared = Arc::new(Mutex::new(state));
        let notified = Arc::new(Mutex::new(Vec::new()));
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run_headless(
            shared.clone(),
            notified.clone(),
            net_tx,
            net_rx,
            in_rx,
            screen,
        ));
        Client {
            state: shared,
            notified,
            inputs: in_tx,
            task,
        }
    }

    /// Feeds one input, as if the user had pressed a key or pasted.
    pub fn input(&self, input: Input) {
        let _ = self.inputs.send(input);
    }

    /// Types a line and presses Enter.
    pub fn type_line(&self, line: &str) {
        for k in keys_for_line(line) {
            self.input(k);
        }
    }

    /// Reads the state.
    pub fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        let guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&guard)
    }

    /// The notifications (bell, desktop) the client raised so far.
    pub fn notifications(&self) -> Vec<Notification> {
        self.notified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits until `f` holds of the state, or `limit` passes.
    pub async fn wait_for(&self, limit: Duration, mut f: impl FnMut(&State) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if self.read(&mut f) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Quits (Ctrl-C, and yes if it asks about unsent lines) and waits
    /// for the loop to end.
    pub async fn quit(self) {
        self.input(Input::Key(KeyEvent::new(
            KeyCode::Char('c'),
            KeyModifiers::CONTROL,
        )));
        self.input(key(KeyCode::Char('y')));
        let _ = tokio::time::timeout(Duration::from_secs(3), self.task).await;
    }
}

async fn run_headless(
    shared: Arc<Mutex<State>>,
    notified: Arc<Mutex<Vec<Notification>>>,
    net_tx: mpsc::UnboundedSender<NetCommand>,
    mut net_rx: mpsc::UnboundedReceiver<NetEvent>,
    mut inputs: mpsc::UnboundedReceiver<Input>,
    screen: Option<(u16, u16)>,
) {
    let core = Core::new(net_tx);
    let mut terminal = screen
        .and_then(|(w, h)| ratatui::Terminal::new(ratatui::backend::TestBackend::new(w, h)).ok());
    let mut tick = tokio::time::interval(TICK);
    loop {
        let input = tokio::select! {
            Some(input) = inputs.recv() => input,
            ev = net_rx.recv() => match ev {
                Some(ev) => Input::Net(ev),
                None => break,
            },
            _ = tick.tick() => Input::Tick { now: Instant::now(), wall_ms: wall_ms() },
        };
        let quit = {
            let mut state = shared.lock().unwrap_or_else(|e| e.into_inner());
            let local = core.apply(&mut state, input);
            if let Some(t) = terminal.as_mut()
                && state.dirty
            {
                let mut report = None;
                let _ = t.draw(|f| report = Some(crate::view::draw(f, &state)));
                if let Some(r) = report {
                    crate::view::after_draw(&mut state, &r);
                }
                state.dirty = false;
            }
            notified.lock().unwrap_or_else(|e| e.into_inner()).extend(
                local.into_iter().filter_map(|e| match e {
                    Effect::Notify(n) => Some(n),
                    _ => None,
                }),
            );
            state.quit
        };
        if quit {
            core.shutdown();
            break;
        }
    }
}
