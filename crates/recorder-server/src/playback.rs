//! Timing for terminal playback of a recording.
//!
//! Playback writes each output (`o`) event's text when its time comes, with the time between
//! events divided by a speed factor and each pause capped (like asciinema's idle time limit), so
//! a session left idle for an hour replays in a moment. Input (`i`) events are not shown: what a
//! user typed appears in the output when the terminal echoed it. The clock is not read here; the
//! caller sleeps for the returned delay, which keeps this testable.

use std::time::Duration;

use castfmt::CastEvent;

/// Playback settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlaybackOptions {
    /// How many times faster than real time to play; must be positive.
    pub speed: f64,
    /// The longest pause between two outputs, after the speed is applied.
    pub max_wait: Option<Duration>,
}

impl Default for PlaybackOptions {
    fn default() -> Self {
        Self {
            speed: 1.0,
            max_wait: Some(Duration::from_secs(2)),
        }
    }
}

/// What to do for one event.
#[derive(Debug, Clone, PartialEq)]
pub enum PlaybackStep<'a> {
    /// Wait, then write the text.
    Output {
        /// How long to wait first.
        wait: Duration,
        /// The text to write.
        text: &'a str,
    },
    /// The terminal was resized to `cols` x `rows`.
    Resize {
        /// Columns.
        cols: u32,
        /// Rows.
        rows: u32,
    },
    /// Nothing to show (input, markers, unknown codes).
    Skip,
}

/// The playback clock; see the module docs.
#[derive(Debug, Clone)]
pub struct Playback {
    options: PlaybackOptions,
    /// Recording time of the last output written.
    shown_until: f64,
}

impl Playback {
    /// Starts playback at recording time 0.
    pub fn new(options: PlaybackOptions) -> Self {
        Self {
            options,
            shown_until: 0.0,
        }
    }

    /// Decides what to do for the next event.
    pub fn step<'a>(&mut self, event: &'a CastEvent) -> PlaybackStep<'a> {
        match event.code.as_str() {
            "o" => {
                let gap = (event.time - self.shown_until).max(0.0);
                self.shown_until = self.shown_until.max(event.time);
                let speed = if self.options.speed > 0.0 {
                    self.options.speed
                } else {
                    1.0
                };
                let mut wait = Duration::try_from_secs_f64(gap / speed).unwrap_or(Duration::MAX);
                if let Some(max) = self.options.max_wait {
                    wait = wait.min(max);
                }
                PlaybackStep::Output {
                    wait,
                    text: &event.data,
                }
            }
            "r" => match event.resize() {
                Some((cols, rows)) => PlaybackStep::Resize { cols, rows },
                None => PlaybackStep::Skip,
            },
            _ => PlaybackStep::Skip,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(time: f64, code: &str, data: &str) -> CastEvent {
        CastEvent {
            time,
            code: code.into(),
            data: data.into(),
        }
    }

    #[test]
    fn divides_gaps_by_speed_and_caps_them() {
        let mut playback = Playback::new(PlaybackOptions {
            speed: 2.0,
            max_wait: Some(Duration::from_secs(1)),
        });
        let events = [
            event(1.0, "o", "a"),
            event(1.5, "i", "typed"),
            event(2.0, "o", "b"),
            event(100.0, "o", "c"),
            event(100.5, "r", "80x24"),
            event(99.0, "o", "late"),
        ];
        let steps: Vec<_> = events.iter().map(|e| playback.step(e)).collect();
        assert_eq!(
            steps[0],
            PlaybackStep::Output {
                wait: Duration::from_millis(500),
                text: "a"
            }
        );
        assert_eq!(steps[1], PlaybackStep::Skip);
        assert_eq!(
            steps[2],
            PlaybackStep::Output {
                wait: Duration::from_millis(500),
                text: "b"
            }
        );
        assert_eq!(
            steps[3],
            PlaybackStep::Output {
                wait: Duration::from_secs(1),
                text: "c"
            }
        );
        assert_eq!(steps[4], PlaybackStep::Resize { cols: 80, rows: 24 });
        assert_eq!(
            steps[5],
            PlaybackStep::Output {
                wait: Duration::ZERO,
                text: "late"
            }
        );
    }
}
