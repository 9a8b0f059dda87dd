//! `--tui`: the live dashboard. A [`Reporter`] like the plain and JSON ones: it gets
//! the same per-interval stats and alert events, and hands them to a thread that owns
//! the terminal, reads the keys and redraws ([`view::draw`]). Log lines and alerts
//! go into the dashboard's events panel instead of over it; the other sinks (log
//! files, webhooks) get everything as usual. On exit the terminal is restored (on a
//! panic too) and the final totals are printed as in plain mode.

use std::{
    io::{self, Write},
    sync::{
        Arc, Mutex,
        mpsc::{self, Receiver, Sender},
    },
    thread::JoinHandle,
    time::Duration,
};

use anyhow::{Context as _, Result};
use monitor_common::GlobalCounters;
use ratatui::{
    Terminal,
    backend::CrosstermBackend,
    crossterm::{
        cursor,
        event::{self, Event, KeyCode, KeyEventKind, KeyModifiers},
        execute,
        terminal::{self, EnterAlternateScreen, LeaveAlternateScreen},
    },
};
use tokio::sync::Notify;

use crate::{
    model::{alert::AlertEvent, capture::CaptureDone},
    report::{Reporter, RunInfo, human::HumanReporter},
    stats::IntervalStats,
};

pub mod view;

use view::{Dashboard, EventLine};

/// What the reporter (on the polling loop) tells the terminal thread.
enum UiEvent {
    Start(RunInfo),
    Interval(Box<IntervalStats>, Duration),
    Alerts(Vec<AlertEvent>),
    Note(String),
    Stop,
}

/// Where log lines go while the dashboard owns the terminal (see [`LogPipe`]).
static LOG_SINK: Mutex<Option<Sender<UiEvent>>> = Mutex::new(None);

/// A log target (for `env_logger`'s `Target::Pipe`): into the dashboard's events panel
/// while it runs, to stderr before and after.
#[derive(Default)]
pub struct LogPipe {
    line: Vec<u8>,
}

impl Write for LogPipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(buf);
        while let Some(end) = self.line.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.line.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line).trim_end().to_owned();
            let sink = LOG_SINK
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match &*sink {
                Some(sender) if sender.send(UiEvent::Note(text.clone())).is_ok() => {}
                _ => eprintln!("{text}"),
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub struct TuiReporter {
    events: Sender<UiEvent>,
    thread: Option<JoinHandle<()>>,
    started: Option<std::time::Instant>,
    colour: bool,
}

/// Takes over the terminal (alternate screen, raw mode) and starts the thread that
/// draws. `quit` is notified when the operator asks to quit.
pub fn start(filter: Option<String>, colour: bool, quit: Arc<Notify>) -> Result<TuiReporter> {
    check_terminal()?;
    terminal::enable_raw_mode().context("failed to put the terminal in raw mode")?;
    execute!(io::stdout(), EnterAlternateScreen, cursor::Hide)
        .context("failed to switch to the alternate screen")?;
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        previous(info);
    }));
    let terminal = match Terminal::new(CrosstermBackend::new(io::stdout())) {
        Ok(terminal) => terminal,
        Err(err) => {
            restore_terminal();
            return Err(err).context("failed to start the dashboard");
        }
    };
    let (sender, receiver) = mpsc::channel();
    *LOG_SINK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(sender.clone());
    let thread = std::thread::Builder::new()
        .name("dashboard".into())
        .spawn(move || {
            let dashboard = Dashboard {
                filter,
                ..Default::default()
            };
            run_ui(terminal, receiver, dashboard, &quit);
            // Later log lines go to stderr again.
            *LOG_SINK
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
            restore_terminal();
        })
        .context("failed to start the dashboard thread")?;
    Ok(TuiReporter {
        events: sender,
        thread: Some(thread),
        started: None,
        colour,
    })
}

/// Fails with one line when stdout is not a terminal: checked before anything starts.
pub fn check_terminal() -> Result<()> {
    use std::io::IsTerminal as _;
    if !io::stdout().is_terminal() {
        anyhow::bail!("--tui needs a terminal on stdout; use the plain or --json output instead");
    }
    Ok(())
}

fn restore_terminal() {
    let _ = terminal::disable_raw_mode();
    let _ = execute!(io::stdout(), LeaveAlternateScreen, cursor::Show);
}

/// How long the thread waits for a key before looking at the queue again.
const TICK: Duration = Duration::from_millis(100);

#[expect(
    clippy::needless_pass_by_value,
    reason = "the thread owns the receiver: dropping it as the thread ends tells the senders"
)]
fn run_ui(
    mut terminal: Terminal<CrosstermBackend<io::Stdout>>,
    events: Receiver<UiEvent>,
    mut live: Dashboard,
    quit: &Notify,
) {
    // While paused the screen shows this copy; `live` keeps counting.
    let mut frozen: Option<Dashboard> = None;
    let mut dirty = true;
    loop {
        loop {
            match events.try_recv() {
                Ok(UiEvent::Stop) | Err(mpsc::TryRecvError::Disconnected) => return,
                Ok(event) => {
                    apply(&mut live, event);
                    dirty = true;
                }
                Err(mpsc::TryRecvError::Empty) => break,
            }
        }
        if dirty {
            let shown = frozen.as_ref().unwrap_or(&live);
            if let Err(err) = terminal.draw(|f| view::draw(f, shown)) {
                log::error!("failed to draw the dashboard: {err}");
                return;
            }
            dirty = false;
        }
        let Ok(true) = event::poll(TICK) else {
            continue;
        };
        let Ok(event) = event::read() else {
            continue;
        };
        match event {
            Event::Key(key) if key.kind == KeyEventKind::Press => {
                let ctrl_c =
                    key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL);
                match key.code {
                    KeyCode::Char('q') | KeyCode::Esc => request_quit(&mut live, quit),
                    _ if ctrl_c => request_quit(&mut live, quit),
                    KeyCode::Char('p' | ' ') => {
                        live.paused = !live.paused;
                        frozen = live.paused.then(|| live.clone());
                    }
                    KeyCode::Char('s') => live.sort = live.sort.next(),
                    KeyCode::Char('?' | 'h') => live.help = !live.help,
                    _ => {}
                }
                if let Some(frozen) = &mut frozen {
                    // Display choices apply to the frozen screen too.
                    frozen.sort = live.sort;
                    frozen.help = live.help;
                    frozen.stopping = live.stopping;
                }
                dirty = true;
            }
            Event::Resize(..) => {
                let _ = terminal.autoresize();
                dirty = true;
            }
            _ => {}
        }
    }
}

fn request_quit(live: &mut Dashboard, quit: &Notify) {
    live.stopping = true;
    quit.notify_one();
}

fn apply(d: &mut Dashboard, event: UiEvent) {
    match event {
        UiEvent::Start(run) => {
            d.description = run.description;
            d.backend = run.backend.to_owned();
            d.iface = run.iface;
        }
        UiEvent::Interval(stats, elapsed) => d.interval(&stats, elapsed),
        UiEvent::Alerts(events) => d.alerts(&events),
        UiEvent::Note(text) => d.note(EventLine {
            text,
            severity: None,
        }),
        UiEvent::Stop => {}
    }
}

impl TuiReporter {
    fn send(&self, event: UiEvent) {
        // The thread is gone only after Stop or a failure it logged.
        let _ = self.events.send(event);
    }

    /// Restores the terminal: the thread finishes and is joined.
    fn stop(&mut self) {
        self.send(UiEvent::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for TuiReporter {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Reporter for TuiReporter {
    fn start(&mut self, run: &RunInfo) {
        self.started = Some(std::time::Instant::now());
        self.send(UiEvent::Start(run.clone()));
    }

    fn interval(&mut self, _run: &RunInfo, stats: &IntervalStats) {
        let elapsed = self.started.map(|s| s.elapsed()).unwrap_or_default();
        self.send(UiEvent::Interval(Box::new(stats.clone()), elapsed));
    }

    fn alerts(&mut self, _run: &RunInfo, events: &[AlertEvent]) {
        if !events.is_empty() {
            self.send(UiEvent::Alerts(events.to_vec()));
        }
    }

    fn capture(&mut self, _run: &RunInfo, done: &CaptureDone) {
        self.send(UiEvent::Note(crate::report::human::capture_line(done)));
    }

    fn finish(&mut self, run: &RunInfo, totals: &GlobalCounters, elapsed: Duration) {
        self.stop();
        HumanReporter::new(io::stdout(), self.colour).finish(run, totals, elapsed);
    }
}
