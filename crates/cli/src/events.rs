//! The one printer of the commands' events: output on stdout, diagnostics
//! on stderr, and between events a ticker for what runs or is awaited
//! ([`swh_deploy_util::progress::Progress`]).

use swh_deploy_util::progress::Progress;

/// What goes on after an event until the next one, and the clock of its
/// lines.
pub enum Tick {
    /// Something runs (a script in the toolbox pod).
    Run((String, std::time::Instant)),
    /// A wait (`cluster wait`, `release wait`, the Argo CD waits of
    /// `cluster migrate --disable`, `chart rollback` and `recover`).
    Wait((String, std::time::Instant)),
}

/// Prints a command's events as they come (`cluster wait`, `cluster
/// migrate`, `chart promote`, `chart rollback`, `release wait`, `recover`):
/// output on stdout, diagnostics on stderr; while a script runs or a wait
/// goes on, a ticker on stderr (a live line on a terminal, a "still
/// running"/"still waiting" line per 30 s otherwise) until the next event.
#[derive(Default)]
pub struct EventPrinter {
    ticker: Option<Progress<std::io::Stderr>>,
}

impl EventPrinter {
    /// Prints `text` (on stderr when `diagnostic`), then ticks `tick`.
    pub fn show(&mut self, diagnostic: bool, text: &dyn std::fmt::Display, tick: Option<Tick>) {
        use std::io::IsTerminal;
        // Ends the last ticker (and clears its live line) first.
        self.ticker = None;
        if diagnostic {
            eprintln!("{text}")
        } else {
            println!("{text}")
        }
        let Some(tick) = tick else {
            return;
        };
        let stderr = std::io::stderr();
        let tty = stderr.is_terminal();
        let ((what, since), waiting) = match tick {
            Tick::Run(t) => (t, false),
            Tick::Wait(t) => (t, true),
        };
        let p = Progress::new(stderr, tty).since(since);
        if waiting {
            p.waiting(&what)
        } else {
            p.running(&what)
        }
        self.ticker = Some(p);
    }
}
