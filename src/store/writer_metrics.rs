//! What the writer thread measures about its group commits, as Prometheus histograms that
//! the app registers with its `/metrics` registry. Unregistered histograms cost one
//! atomic add per observation, so the writer records whether or not anyone scrapes.

use prometheus::{Histogram, HistogramOpts};

/// Commands per transaction and the time each transaction took (BEGIN to COMMIT, fsync
/// included). Clones share the same series.
#[derive(Clone)]
pub struct WriterMetrics {
    /// `tidings_writer_batch_size`: commands folded into one transaction.
    pub batch_size: Histogram,
    /// `tidings_writer_commit_seconds`: one transaction, from BEGIN until COMMIT returned.
    pub commit_seconds: Histogram,
}

impl WriterMetrics {
    pub fn new() -> Self {
        WriterMetrics {
            batch_size: histogram(
                "tidings_writer_batch_size",
                "Commands folded into one group-commit transaction.",
                vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0],
            ),
            commit_seconds: histogram(
                "tidings_writer_commit_seconds",
                "Time of one group-commit transaction, BEGIN to COMMIT (fsync included).",
                vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ],
            ),
        }
    }
}

impl Default for WriterMetrics {
    fn default() -> Self {
        Self::new()
    }
}

fn histogram(name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    // Only a malformed name or bucket list fails, and these are constants (unit-tested).
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
        .unwrap_or_else(|e| unreachable!("constant histogram options are valid: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_histograms_are_valid_and_record() {
        let m = WriterMetrics::new();
        m.batch_size.observe(3.0);
        m.commit_seconds.observe(0.002);
        assert_eq!(m.batch_size.get_sample_count(), 1);
        assert_eq!(m.commit_seconds.get_sample_count(), 1);
    }
}
