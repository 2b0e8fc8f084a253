//! The demo's narration: a line when each step starts and ends, a spinner while a quiet step
//! runs on a terminal, and a "still ..." line every few seconds when the output is not a
//! terminal, so whoever watches the demo is never left at a silent prompt.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often a step that is not on a terminal says it is still running.
const STILL_RUNNING_EVERY: Duration = Duration::from_secs(5);

/// The steps of one demo run, timed from its start.
pub struct Steps {
    started: Instant,
    terminal: bool,
}

/// One running step; say `done` when it ends (dropping it ends the spinner and the ticker).
pub struct Step {
    started: Instant,
    spinner: Option<ProgressBar>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

/// Whether a step prints its own output (tables, a progress bar) while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Nothing is printed until it ends: a spinner shows it is alive.
    Quiet,
    /// It prints as it goes: no spinner, which would fight with its lines.
    Own,
}

impl Steps {
    /// Starts the clock of the demo.
    pub fn start() -> Steps {
        Steps {
            started: Instant::now(),
            terminal: std::io::stderr().is_terminal(),
        }
    }

    /// Time since the demo started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Announces a step and starts showing that it runs.
    pub fn begin(&self, what: &str, output: Output) -> Step {
        crate::output::emit(&format!("==> {what}\n"));
        let spinner = (self.terminal && output == Output::Quiet).then(|| {
            let spinner = ProgressBar::new_spinner();
            spinner.set_style(
                ProgressStyle::with_template("    {spinner} {msg} [{elapsed}]")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            spinner.set_message(what.to_string());
            spinner.enable_steady_tick(Duration::from_millis(120));
            spinner
        });
        let ticker = (!self.terminal).then(|| {
            let what = what.to_string();
            let started = Instant::now();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(STILL_RUNNING_EVERY);
                every.tick().await;
                loop {
                    every.tick().await;
                    crate::output::emit(&format!(
                        "    still {} ({})\n",
                        lowercase_first(&what),
                        seconds(started.elapsed())
                    ));
                }
            })
        });
        Step {
            started: Instant::now(),
            spinner,
            ticker,
        }
    }
}

impl Step {
    /// Ends the step with the time it took.
    pub fn done(self) {
        let line = format!("    done in {}\n", seconds(self.started.elapsed()));
        drop(self);
        crate::output::emit(&line);
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        if let Some(spinner) = self.spinner.take() {
            spinner.finish_and_clear();
        }
        if let Some(ticker) = self.ticker.take() {
            ticker.abort();
        }
    }
}

/// `12.3 s`: a duration as people read it.
pub fn seconds(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_still_running_line_reads_as_a_sentence() {
        assert_eq!(
            lowercase_first("Starting the controller"),
            "starting the controller"
        );
        assert_eq!(lowercase_first(""), "");
        assert_eq!(seconds(Duration::from_millis(12_345)), "12.3 s");
    }
}
