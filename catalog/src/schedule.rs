//! Cron schedules and the wait for their next firing, for every scheduler
//! of lakehose (crawlers, ETL jobs, table maintenance).
//!
//! Two spellings are read: Glue's `cron(m h dom mon dow y)` (crawler
//! schedules, `?` for "any") and the Unix five fields `m h dom mon dow` (ETL
//! job headers, `--maintenance`, `--etl-every`; six or seven fields put
//! seconds first). A scheduler sleeps until the earliest next firing of its
//! schedules (or until its schedules change), never longer than
//! [`MAX_SLEEP`], and then runs what fired in the half-open window since it
//! last looked, so a firing is neither missed nor run twice when a sleep
//! ends late.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// The longest a scheduler sleeps without looking at the clock again (a
/// clock that jumps is noticed within it).
pub(crate) const MAX_SLEEP: Duration = Duration::from_secs(60);

/// A parsed schedule, with the text it was read from.
#[derive(Debug, Clone)]
pub struct Schedule {
    text: String,
    cron: cron::Schedule,
}

impl Schedule {
    /// Reads Glue's `cron(minutes hours day-of-month month day-of-week
    /// year)`.
    pub fn glue(expression: &str) -> Result<Self, String> {
        let inner = expression
            .trim()
            .strip_prefix("cron(")
            .and_then(|s| s.strip_suffix(')'))
            .ok_or_else(|| format!("schedule {expression:?} must look like cron(15 12 * * ? *)"))?;
        let fields: Vec<&str> = inner.split_whitespace().collect();
        if fields.len() != 6 {
            return Err(format!(
                "schedule {expression:?} needs 6 fields: minutes hours day-of-month month day-of-week year"
            ));
        }
        // The cron crate wants seconds first, and `*` where Glue writes `?`.
        let text = std::iter::once("0")
            .chain(fields.iter().map(|f| if *f == "?" { "*" } else { f }))
            .collect::<Vec<_>>()
            .join(" ");
        Self::parsed(expression, &text)
    }

    /// Reads Unix cron: five fields (minute first), or six or seven
    /// (seconds first).
    pub fn unix(expression: &str) -> Result<Self, String> {
        let text = match expression.split_whitespace().count() {
            5 => format!("0 {expression}"),
            6 | 7 => expression.to_string(),
            n => {
                return Err(format!(
                    "schedule {expression:?} has {n} fields; write 5 (minute hour day-of-month month day-of-week)"
                ));
            }
        };
        Self::parsed(expression, &text)
    }

    fn parsed(expression: &str, text: &str) -> Result<Self, String> {
        let cron =
            cron::Schedule::from_str(text).map_err(|e| format!("schedule {expression:?}: {e}"))?;
        Ok(Self {
            text: expression.trim().to_string(),
            cron,
        })
    }

    /// The expression as it was written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The first firing after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.after(&after).next()
    }

    /// Whether the schedule fires in `(after, until]`.
    pub fn fires_between(&self, after: DateTime<Utc>, until: DateTime<Utc>) -> bool {
        self.next_after(after).is_some_and(|t| t <= until)
    }
}

/// How long a scheduler that last looked at `now` sleeps: until the
/// earliest of `next` firings, at most [`MAX_SLEEP`], at least a
/// millisecond (a firing at `now` is run on the next look).
pub fn sleep_before(now: DateTime<Utc>, next: impl IntoIterator<Item = DateTime<Utc>>) -> Duration {
    next.into_iter()
        .min()
        .and_then(|t| (t - now).to_std().ok())
        .unwrap_or(MAX_SLEEP)
        .clamp(Duration::from_millis(1), MAX_SLEEP)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn glue_and_unix_spellings() {
        let glue = Schedule::glue("cron(15 12 * * ? *)").unwrap();
        let from = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(
            glue.next_after(from),
            Some(Utc.with_ymd_and_hms(2026, 1, 1, 12, 15, 0).unwrap())
        );
        assert_eq!(glue.text(), "cron(15 12 * * ? *)");
        assert!(Schedule::glue("rate(5 minutes)").is_err());
        assert!(Schedule::glue("cron(1 2 3)").is_err());
        let every_5 = Schedule::unix("*/5 * * * *").unwrap();
        assert!(every_5.fires_between(t("2026-11-23T10:04:59Z"), t("2026-11-23T10:05:00Z")));
        assert!(!every_5.fires_between(t("2026-11-23T10:05:00Z"), t("2026-11-23T10:09:59Z")));
        // Down from 10:00 to 10:20: 10:05 was missed.
        assert!(every_5.fires_between(t("2026-11-23T10:00:00Z"), t("2026-11-23T10:20:00Z")));
        let err = Schedule::unix("* * *").unwrap_err();
        assert!(err.contains("has 3 fields"), "{err}");
        assert!(Schedule::unix("61 * * * *").is_err());
    }

    #[test]
    fn sleeps_until_the_earliest_firing_within_bounds() {
        let now = t("2026-11-23T10:04:58Z");
        let every_5 = Schedule::unix("*/5 * * * *").unwrap();
        let hourly = Schedule::unix("0 * * * *").unwrap();
        let next = [&every_5, &hourly].map(|s| s.next_after(now).unwrap());
        assert_eq!(sleep_before(now, next), Duration::from_secs(2));
        assert_eq!(sleep_before(now, None), MAX_SLEEP);
        let yearly = Schedule::unix("0 0 1 1 *").unwrap();
        assert_eq!(sleep_before(now, yearly.next_after(now)), MAX_SLEEP);
        assert_eq!(sleep_before(now, Some(now)), Duration::from_millis(1));
    }
}
