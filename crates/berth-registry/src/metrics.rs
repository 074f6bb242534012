//! `/metrics` in the Prometheus text format: requests by method and status, bytes in and out,
//! and a latency histogram. Counters are atomics, updated once per request.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

/// The latency buckets, in seconds.
const BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    /// The sum of latencies, in microseconds.
    sum_us: AtomicU64,
}

impl Metrics {
    /// Count one finished request.
    pub fn record(&self, method: &str, status: u16, took: Duration, bytes_in: u64, bytes_out: u64) {
        {
            let mut r = self.requests.lock().unwrap_or_else(|e| e.into_inner());
            // the key is owned only the first time a method and status are seen
            match r.iter_mut().find(|((m, s), _)| m == method && *s == status) {
                Some((_, n)) => *n += 1,
                None => {
                    r.insert((method.to_string(), status), 1);
                }
            }
        }
        self.bytes_in.fetch_add(bytes_in, Relaxed);
        self.bytes_out.fetch_add(bytes_out, Relaxed);
        let secs = took.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.buckets[i].fetch_add(1, Relaxed);
            }
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_us.fetch_add(took.as_micros() as u64, Relaxed);
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP registry_http_requests_total HTTP requests served, by method and status.\n",
        );
        out.push_str("# TYPE registry_http_requests_total counter\n");
        for ((m, s), n) in self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            out.push_str(&format!(
                "registry_http_requests_total{{method=\"{m}\",code=\"{s}\"}} {n}\n"
            ));
        }
        for (name, help, v) in [
            (
                "registry_http_request_bytes_total",
                "Bytes received in request bodies.",
                &self.bytes_in,
            ),
            (
                "registry_http_response_bytes_total",
                "Bytes sent in response bodies.",
                &self.bytes_out,
            ),
        ] {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                v.load(Relaxed)
            ));
        }
        let h = "registry_http_request_duration_seconds";
        out.push_str(&format!(
            "# HELP {h} Time to answer a request (to its headers).\n# TYPE {h} histogram\n"
        ));
        for (i, b) in BUCKETS.iter().enumerate() {
            out.push_str(&format!(
                "{h}_bucket{{le=\"{b}\"}} {}\n",
                self.buckets[i].load(Relaxed)
            ));
        }
        let count = self.count.load(Relaxed);
        out.push_str(&format!("{h}_bucket{{le=\"+Inf\"}} {count}\n"));
        out.push_str(&format!(
            "{h}_sum {}\n",
            self.sum_us.load(Relaxed) as f64 / 1e6
        ));
        out.push_str(&format!("{h}_count {count}\n"));
        out
    }
}

/// A request body that counts the bytes read from it: a chunked upload (how docker and skopeo
/// push layers) has no `Content-Length` to count by.
pub struct CountedBody {
    inner: axum::body::Body,
    read: std::sync::Arc<AtomicU64>,
}

impl CountedBody {
    /// The body, and the count of its bytes read so far.
    pub fn wrap(inner: axum::body::Body) -> (axum::body::Body, std::sync::Arc<AtomicU64>) {
        let read = std::sync::Arc::new(AtomicU64::new(0));
        let body = axum::body::Body::new(CountedBody {
            inner,
            read: read.clone(),
        });
        (body, read)
    }
}

impl hyper::body::Body for CountedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, axum::Error>>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if let std::task::Poll::Ready(Some(Ok(f))) = &r {
            if let Some(d) = f.data_ref() {
                self.read.fetch_add(d.len() as u64, Relaxed);
            }
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_what_was_recorded() {
        let m = super::Metrics::default();
        m.record("GET", 200, std::time::Duration::from_micros(700), 0, 1000);
        m.record("PUT", 201, std::time::Duration::from_millis(30), 500, 0);
        let t = m.render();
        assert!(
            t.contains("registry_http_requests_total{method=\"GET\",code=\"200\"} 1\n"),
            "{t}"
        );
        assert!(t.contains("registry_http_response_bytes_total 1000\n"));
        assert!(t.contains("registry_http_request_bytes_total 500\n"));
        assert!(t.contains("registry_http_request_duration_seconds_bucket{le=\"0.001\"} 1\n"));
        assert!(t.contains("registry_http_request_duration_seconds_bucket{le=\"0.05\"} 2\n"));
        assert!(t.contains("registry_http_request_duration_seconds_count 2\n"));
    }

    #[tokio::test]
    async fn a_counted_body_counts_what_is_read_of_it() {
        use futures_util::stream;
        let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = vec![
            Ok(bytes::Bytes::from_static(b"abc")),
            Ok(bytes::Bytes::from_static(b"")),
            Ok(bytes::Bytes::from(vec![1u8; 5000])),
        ];
        let (body, read) =
            super::CountedBody::wrap(axum::body::Body::from_stream(stream::iter(chunks)));
        assert_eq!(read.load(super::Relaxed), 0);
        let all = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        assert_eq!(all.len(), 5003);
        assert_eq!(read.load(super::Relaxed), 5003);
    }
}
