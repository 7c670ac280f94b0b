//! Redraw and ingest costs of the TUI with a very long conversation, on an
//! off-screen terminal (no terminal I/O): the figures of BENCHMARKS.md.
//!
//! `cargo bench -p chat-tui --bench redraw` prints, for a conversation of
//! 100 000 lines (the in-memory cap raised to hold them all):
//! - a key press and the redraw after it, at the bottom and 50 000 lines up;
//! - a burst of 1 000 incoming messages (one second at 1 000/s) applied to
//!   the state, and the ~30 redraws the app makes of them in that second,
//!   as the share of one core they take;
//! - for comparison, wrapping the whole conversation, which every draw did
//!   before.

use std::time::{Duration, Instant};

use chat_shared::ServerEvent;
use chat_tui::msg::{Input, NetEvent};
use chat_tui::state::{State, update};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use serde_json::json;

const LINES: usize = 100_000;
const T0: u64 = 1_763_800_000_000;
const WIDTH: u16 = 120;
const HEIGHT: u16 = 40;

fn message(id: usize, text: &str) -> Input {
    let v = json!({"id": id.to_string(), "ts": T0 + id as u64 * 1000, "from": if id.is_multiple_of(3) { "bob" } else { "carol" },
                   "room": "#big", "text": text});
    Input::Net(NetEvent::Server(
        ServerEvent::parse("room:message", v).expect("contract payload"),
    ))
}

fn text_of(i: usize) -> String {
    // Lines of varied length, some wrapping, some with a URL or wide text.
    match i % 5 {
        0 => format!("short line {i}"),
        1 => format!(
            "a longer line {i} that goes on for a while so that it wraps over two rows at this width, more or less, with some words"
        ),
        2 => format!("see https://example.org/issues/{i} for the details"),
        3 => format!("日本語のテキスト {i} 🎉"),
        _ => format!("line {i}: ok"),
    }
}

fn busy_state() -> State {
    let mut s = State::new("alice", "http://bench", tokio::time::Instant::now(), T0);
    s.max_lines = LINES;
    let session = json!({"sid": "s", "username": "alice", "session": "t", "recovered": false,
                         "rooms": ["#big"], "missed": 0, "truncated": false});
    update(
        &mut s,
        Input::Net(NetEvent::Server(
            ServerEvent::parse("session", session).expect("session"),
        )),
    );
    update(
        &mut s,
        Input::Key(KeyEvent::new(KeyCode::Char('2'), KeyModifiers::ALT)),
    );
    for i in 1..=LINES {
        update(&mut s, message(i, &text_of(i)));
    }
    assert_eq!(s.active_conv().entries.len(), LINES);
    s
}

fn draw(terminal: &mut Terminal<TestBackend>, s: &mut State) {
    let mut report = None;
    terminal
        .draw(|f| report = Some(chat_tui::view::draw(f, s)))
        .expect("draw");
    if let Some(r) = report {
        chat_tui::view::after_draw(s, &r);
    }
    s.dirty = false;
}

struct Stats {
    median: Duration,
    p99: Duration,
    max: Duration,
}

fn stats(mut v: Vec<Duration>) -> Stats {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    Stats {
        median: at(0.5),
        p99: at(0.99),
        max: *v.last().expect("samples"),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn key_and_redraw(s: &mut State, terminal: &mut Terminal<TestBackend>, rounds: usize) -> Stats {
    let mut samples = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let c = if i.is_multiple_of(2) { 'x' } else { 'y' };
        let t = Instant::now();
        update(
            s,
            Input::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)),
        );
        draw(terminal, s);
        samples.push(t.elapsed());
        // Keep the line short: Backspace without measuring.
        if i % 40 == 39 {
            update(
                s,
                Input::Key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL)),
            );
        }
    }
    stats(samples)
}

fn main() {
    let t = Instant::now();
    let mut s = busy_state();
    let fill = t.elapsed();
    let mut terminal = Terminal::new(TestBackend::new(WIDTH, HEIGHT)).expect("terminal");
    draw(&mut terminal, &mut s);
    println!("chat-tui redraw bench: {LINES} lines in #big, {WIDTH}x{HEIGHT} off-screen terminal");
    println!(
        "  filling {LINES} messages through update(): {} ({:.2} µs per message)",
        ms(fill),
        fill.as_secs_f64() * 1e6 / LINES as f64
    );

    let bottom = key_and_redraw(&mut s, &mut terminal, 2_000);
    println!(
        "  key press + redraw, at the bottom: median {}, p99 {}, max {}",
        ms(bottom.median),
        ms(bottom.p99),
        ms(bottom.max)
    );

    // 50 000 lines up (PgUp until there).
    let id = s.active.clone();
    if let Some(c) = s.convs.iter_mut().find(|c| c.id == id) {
        c.scroll = 50_000;
    }
    s.max_scroll = usize::MAX;
    draw(&mut terminal, &mut s);
    let up = key_and_redraw(&mut s, &mut terminal, 300);
    println!(
        "  key press + redraw, 50 000 lines up: median {}, p99 {}, max {}",
        ms(up.median),
        ms(up.p99),
        ms(up.max)
    );
    if let Some(c) = s.convs.iter_mut().find(|c| c.id == id) {
        c.scroll = 0;
    }
    draw(&mut terminal, &mut s);

    // One second of 1 000 messages/s: the state takes each, the app draws
    // at most every 33 ms (30 frames).
    let mut next = LINES + 1;
    let mut ingest = Vec::new();
    let mut frames = Vec::new();
    let mut cpu = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        for k in 0..1_000 {
            let t1 = Instant::now();
            update(&mut s, message(next, &text_of(next)));
            next += 1;
            ingest.push(t1.elapsed());
            if k % 33 == 32 {
                let t2 = Instant::now();
                draw(&mut terminal, &mut s);
                frames.push(t2.elapsed());
            }
        }
        cpu.push(t.elapsed());
    }
    let ingest = stats(ingest);
    let frames = stats(frames);
    let cpu = stats(cpu);
    println!(
        "  1 000 incoming messages: per message median {}, p99 {}; redraw during the burst median {}, p99 {}",
        ms(ingest.median),
        ms(ingest.p99),
        ms(frames.median),
        ms(frames.p99)
    );
    println!(
        "  one second at 1 000 messages/s (1 000 updates + 30 redraws): {} of work = {:.1}% of a core (median of 5)",
        ms(cpu.median),
        cpu.median.as_secs_f64() * 100.0
    );
    let after = key_and_redraw(&mut s, &mut terminal, 500);
    println!(
        "  key press + redraw after the bursts (cap held at {LINES} lines): median {}, p99 {}",
        ms(after.median),
        ms(after.p99)
    );

    let t = Instant::now();
    let lines = chat_tui::view::conversation_lines(&s, s.active_conv(), WIDTH as usize - 42);
    println!(
        "  for comparison, wrapping the whole conversation (what every draw did before): {} for {} rows",
        ms(t.elapsed()),
        lines.len()
    );
}
