//! A generator of realistic web/app log records, as a fleet of containers
//! would ship them. Used by `lakehose demo` and the benchmarks.

use chrono::{DateTime, SecondsFormat, Utc};
use rand::Rng;
use rand::rngs::StdRng;
use serde_json::json;

/// A service of the simulated fleet: its name and the paths it serves.
struct Service {
    name: &'static str,
    paths: &'static [(&'static str, &'static str)],
    /// Median latency in ms.
    latency_ms: f64,
}

const SERVICES: &[Service] = &[
    Service {
        name: "web",
        paths: &[
            ("GET", "/"),
            ("GET", "/products"),
            ("GET", "/products/{id}"),
            ("GET", "/static/app.js"),
        ],
        latency_ms: 18.0,
    },
    Service {
        name: "api",
        paths: &[
            ("GET", "/api/v1/items"),
            ("GET", "/api/v1/items/{id}"),
            ("POST", "/api/v1/items"),
            ("DELETE", "/api/v1/items/{id}"),
        ],
        latency_ms: 35.0,
    },
    Service {
        name: "checkout",
        paths: &[
            ("POST", "/checkout"),
            ("GET", "/cart"),
            ("PUT", "/cart/items/{id}"),
        ],
        latency_ms: 120.0,
    },
    Service {
        name: "auth",
        paths: &[
            ("POST", "/login"),
            ("POST", "/logout"),
            ("POST", "/token/refresh"),
        ],
        latency_ms: 45.0,
    },
    Service {
        name: "search",
        paths: &[("GET", "/search"), ("GET", "/suggest")],
        latency_ms: 80.0,
    },
    Service {
        name: "payments",
        paths: &[
            ("POST", "/payments"),
            ("GET", "/payments/{id}"),
            ("POST", "/refunds"),
        ],
        latency_ms: 250.0,
    },
];

/// Generates log records for one container.
pub struct LogGenerator {
    rng: StdRng,
    service: &'static Service,
    container: String,
    users: u32,
}

impl LogGenerator {
    /// A container of service number `index` (wrapping over the built-in
    /// services), seeded for reproducibility.
    pub fn new(index: usize, seed: u64) -> Self {
        let service = &SERVICES[index % SERVICES.len()];
        Self {
            rng: rand::SeedableRng::seed_from_u64(seed ^ (index as u64).wrapping_mul(0x9E37_79B9)),
            service,
            container: format!(
                "{}-{:05x}",
                service.name,
                seed.wrapping_add(index as u64) & 0xfffff
            ),
            users: 5000,
        }
    }

    /// Names of the built-in services.
    pub fn service_names() -> impl Iterator<Item = &'static str> {
        SERVICES.iter().map(|s| s.name)
    }

    /// The same generator with a population of `users` distinct users
    /// (`u-00001` …); the default is 5,000.
    pub fn with_users(mut self, users: u32) -> Self {
        self.users = users.max(1);
        self
    }

    /// The container this generator plays.
    pub fn container(&self) -> &str {
        &self.container
    }

    /// The service this generator plays.
    pub fn service(&self) -> &'static str {
        self.service.name
    }

    /// The fields of one record (everything but time, service and container).
    pub fn fields(&mut self) -> LogFields {
        let rng = &mut self.rng;
        let (method, path) = self.service.paths[rng.random_range(0..self.service.paths.len())];
        let path = path.replace("{id}", &rng.random_range(1..100_000).to_string());
        let roll: f64 = rng.random();
        let status: u16 = if roll < 0.85 {
            if method == "POST" { 201 } else { 200 }
        } else if roll < 0.88 {
            304
        } else if roll < 0.92 {
            404
        } else if roll < 0.95 {
            400
        } else if roll < 0.97 {
            401
        } else if roll < 0.99 {
            500
        } else {
            503
        };
        let level = match status {
            500.. => "ERROR",
            400.. => "WARN",
            _ if rng.random::<f64>() < 0.02 => "DEBUG",
            _ => "INFO",
        };
        // Log-normal-ish latency: median times e^(N(0, 0.6)).
        let normal: f64 = (0..6).map(|_| rng.random::<f64>()).sum::<f64>() - 3.0;
        let mut latency = self.service.latency_ms * (0.6 * normal).exp();
        if status >= 500 {
            latency *= 4.0;
        }
        let bytes: u32 = match status {
            200 | 201 => rng.random_range(200..48_000),
            304 => 0,
            _ => rng.random_range(40..600),
        };
        let user_id = format!("u-{:05}", rng.random_range(1..=self.users));
        let trace_id = format!("{:016x}{:016x}", rng.random::<u64>(), rng.random::<u64>());
        let message = match status {
            500 => {
                format!("unhandled error while serving {method} {path}: upstream connection reset")
            }
            503 => "service unavailable: connection pool exhausted".to_string(),
            401 => "authentication required: token expired".to_string(),
            404 => format!("no route or resource for {path}"),
            400 => "request validation failed: missing field".to_string(),
            _ => format!("{method} {path} completed"),
        };
        LogFields {
            level,
            method,
            path,
            status,
            latency_ms: (latency * 100.0).round() / 100.0,
            bytes,
            user_id,
            trace_id,
            message,
        }
    }

    /// One record at time `at`, as a JSON object.
    pub fn record(&mut self, at: DateTime<Utc>) -> serde_json::Value {
        let f = self.fields();
        json!({
            "timestamp": at.to_rfc3339_opts(SecondsFormat::Millis, true),
            "service": self.service.name,
            "container": self.container,
            "level": f.level,
            "method": f.method,
            "path": f.path,
            "status": f.status,
            "latency_ms": f.latency_ms,
            "bytes": f.bytes,
            "user_id": f.user_id,
            "trace_id": f.trace_id,
            "message": f.message,
        })
    }
}

/// One generated record's fields.
#[derive(Debug, Clone, PartialEq)]
pub struct LogFields {
    /// `DEBUG`, `INFO`, `WARN` or `ERROR` (by status).
    pub level: &'static str,
    /// HTTP method.
    pub method: &'static str,
    /// Request path, ids filled in.
    pub path: String,
    /// HTTP status.
    pub status: u16,
    /// Latency in ms, two decimals.
    pub latency_ms: f64,
    /// Response size.
    pub bytes: u32,
    /// `u-NNNNN`.
    pub user_id: String,
    /// 32 hex digits.
    pub trace_id: String,
    /// A human-readable line.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_realistic() {
        let mut g = LogGenerator::new(2, 7);
        let at = Utc::now();
        let mut errors = 0;
        for _ in 0..1000 {
            let r = g.record(at);
            assert_eq!(r["service"], "checkout");
            let status = r["status"].as_u64().unwrap();
            assert!((200..600).contains(&status));
            assert!(r["latency_ms"].as_f64().unwrap() > 0.0);
            assert_eq!(r["trace_id"].as_str().unwrap().len(), 32);
            if r["level"] == "ERROR" {
                errors += 1;
            }
        }
        assert!((5..60).contains(&errors), "{errors}");
    }
}
