//! Logging set-up (does I/O): `tracing` to stderr, as text or JSON lines, filtered by the
//! configured level (checked when the configuration is loaded: an invalid one is an error, never
//! a fallback). Writing a log line never panics: a closed stderr (`converged run | head`) or a
//! full disk drops the line and counts it (`converged_log_lines_dropped_total`), and a panic is
//! logged through the same path.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::{LogConfig, LogFormat};
use crate::error::DaemonError;

/// Log lines the process could not write, since it started.
static DROPPED_LINES: AtomicU64 = AtomicU64::new(0);

/// How many log lines could not be written since the process started.
pub fn dropped_lines() -> u64 {
    DROPPED_LINES.load(Ordering::Relaxed)
}

pub fn init(config: &LogConfig) -> Result<(), DaemonError> {
    let filter = EnvFilter::try_new(&config.level).map_err(|err| DaemonError::LogFilter {
        filter: config.level.clone(),
        message: err.to_string(),
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(Lossy::new(std::io::stderr, &DROPPED_LINES))
        // Its own report of a failed write is an `eprintln!`, which panics on a closed stderr.
        .log_internal_errors(false);
    let result = match config.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    match result {
        Ok(()) => std::panic::set_hook(Box::new(log_panic)),
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "logging was already initialised: {err}");
        }
    }
    Ok(())
}

/// Logs a panic as an error event instead of the default hook's message: one structured line,
/// in the configured format, through the writer that cannot panic.
fn log_panic(info: &std::panic::PanicHookInfo<'_>) {
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(a panic without a message)");
    let location = info
        .location()
        .map(|at| format!("{}:{}", at.file(), at.line()))
        .unwrap_or_default();
    let thread = std::thread::current();
    tracing::error!(
        panic = message,
        location,
        thread = thread.name().unwrap_or("unnamed"),
        "panicked"
    );
}

/// A `MakeWriter` whose writers report every write as done: a line the inner writer refuses
/// is counted in `dropped` instead.
pub struct Lossy<F> {
    make: F,
    dropped: &'static AtomicU64,
}

impl<F> Lossy<F> {
    pub fn new(make: F, dropped: &'static AtomicU64) -> Self {
        Self { make, dropped }
    }
}

impl<'a, F, W> MakeWriter<'a> for Lossy<F>
where
    F: Fn() -> W + 'a,
    W: Write,
{
    type Writer = LossyWriter<W>;

    fn make_writer(&'a self) -> Self::Writer {
        LossyWriter {
            inner: (self.make)(),
            dropped: self.dropped,
        }
    }
}

pub struct LossyWriter<W> {
    inner: W,
    dropped: &'static AtomicU64,
}

impl<W: Write> Write for LossyWriter<W> {
    /// The fmt layer hands over one whole event per call, so a failed call is one line lost.
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.inner.write_all(buf).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = self.inner.flush();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    /// A sink that takes `capacity` bytes, then fails like a full disk.
    #[derive(Clone)]
    struct Sink {
        written: Arc<Mutex<Vec<u8>>>,
        capacity: usize,
    }

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let mut written = self.written.lock().unwrap();
            if written.len() + buf.len() > self.capacity {
                return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
            }
            written.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
    }

    #[test]
    fn lines_that_cannot_be_written_are_counted_not_raised() {
        static DROPPED: AtomicU64 = AtomicU64::new(0);
        let sink = Sink {
            written: Arc::default(),
            capacity: 12,
        };
        let make = {
            let sink = sink.clone();
            Lossy::new(move || sink.clone(), &DROPPED)
        };
        let subscriber = tracing_subscriber::fmt()
            .with_writer(make)
            .with_ansi(false)
            .without_time()
            .with_level(false)
            .with_target(false)
            .log_internal_errors(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("first");
            tracing::info!("second, too long for the rest of the disk");
            tracing::info!("third");
        });
        assert_eq!(
            String::from_utf8(sink.written.lock().unwrap().clone()).unwrap(),
            "first\nthird\n"
        );
        assert_eq!(DROPPED.load(Ordering::Relaxed), 1);

        let failing_flush = Lossy::new(move || sink.clone(), &DROPPED);
        assert!(failing_flush.make_writer().flush().is_ok());
    }
}
