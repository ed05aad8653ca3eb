//! Time on charts, all in UTC: the civil calendar (no dependency), RFC 3339
//! text, label formats, and the ticks of time axes.

/// Milliseconds in a second.
pub(crate) const SECOND: i64 = 1_000;
/// Milliseconds in a minute.
pub(crate) const MINUTE: i64 = 60 * SECOND;
/// Milliseconds in an hour.
pub(crate) const HOUR: i64 = 60 * MINUTE;
/// Milliseconds in a day.
pub(crate) const DAY: i64 = 24 * HOUR;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// An instant broken down into its UTC calendar date and time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Civil {
    pub(crate) year: i64,
    /// 1 to 12.
    pub(crate) month: u32,
    /// 1 to 31.
    pub(crate) day: u32,
    pub(crate) hour: i64,
    pub(crate) minute: i64,
    pub(crate) second: i64,
    pub(crate) milli: i64,
}

impl Civil {
    /// Breaks down milliseconds since the Unix epoch.
    pub(crate) fn from_millis(ms: i64) -> Self {
        let days = ms.div_euclid(DAY);
        let in_day = ms.rem_euclid(DAY);
        let (year, month, day) = civil_from_days(days);
        Self {
            year,
            month,
            day,
            hour: in_day / HOUR,
            minute: in_day % HOUR / MINUTE,
            second: in_day % MINUTE / SECOND,
            milli: in_day % SECOND,
        }
    }

    fn month_name(&self) -> &'static str {
        let i = usize::try_from(self.month.saturating_sub(1)).unwrap_or(0);
        MONTHS.get(i).copied().unwrap_or("")
    }

    /// Months since year 0 (a linear month count).
    fn month_index(&self) -> i64 {
        self.year * 12 + i64::from(self.month) - 1
    }

    fn is_midnight(&self) -> bool {
        self.hour == 0 && self.minute == 0 && self.second == 0 && self.milli == 0
    }
}

/// Days since 1970-01-01 of a date of the proleptic Gregorian calendar.
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    // Years start in March here, so that the leap day ends a year.
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date (year, month 1–12, day 1–31) of a day counted from 1970-01-01.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // Both are small and positive by construction.
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

/// RFC 3339 in UTC: `2026-12-05T10:00:00Z` (`.250` before the `Z` when
/// the instant has milliseconds).
pub(crate) fn rfc3339(ms: i64) -> String {
    let c = Civil::from_millis(ms);
    let millis = if c.milli == 0 {
        String::new()
    } else {
        format!(".{:03}", c.milli)
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{millis}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// A tooltip's instant: `2026-12-05 10:00` (with seconds when it has
/// some), UTC.
pub(crate) fn human_time(ms: i64) -> String {
    let c = Civil::from_millis(ms);
    let fmt = if c.second == 0 && c.milli == 0 {
        TimeFmt::IsoDateClock
    } else {
        TimeFmt::IsoDateClockSec
    };
    format_time(ms, fmt)
}

/// How an instant is labelled on an axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeFmt {
    /// `2026`
    Year,
    /// `2026-12`
    Month,
    /// `Dec 05`
    Date,
    /// `2026-12-05`
    IsoDate,
    /// `10:00`
    Clock,
    /// `10:00:05`
    ClockSec,
    /// `10:00:05.250`
    ClockMilli,
    /// `Dec 05 10:00`
    DateClock,
    /// `Dec 05 10:00:05`
    DateClockSec,
    /// `2026-12-05 10:00`
    IsoDateClock,
    /// `2026-12-05 10:00:05`
    IsoDateClockSec,
}

/// Writes an instant in a label format.
pub(crate) fn format_time(ms: i64, fmt: TimeFmt) -> String {
    let c = Civil::from_millis(ms);
    let (y, mo, d, name) = (c.year, c.month, c.day, c.month_name());
    let (h, mi, s) = (c.hour, c.minute, c.second);
    match fmt {
        TimeFmt::Year => format!("{y:04}"),
        TimeFmt::Month => format!("{y:04}-{mo:02}"),
        TimeFmt::Date => format!("{name} {d:02}"),
        TimeFmt::IsoDate => format!("{y:04}-{mo:02}-{d:02}"),
        TimeFmt::Clock => format!("{h:02}:{mi:02}"),
        TimeFmt::ClockSec => format!("{h:02}:{mi:02}:{s:02}"),
        TimeFmt::ClockMilli => format!("{h:02}:{mi:02}:{s:02}.{:03}", c.milli),
        TimeFmt::DateClock => format!("{name} {d:02} {h:02}:{mi:02}"),
        TimeFmt::DateClockSec => format!("{name} {d:02} {h:02}:{mi:02}:{s:02}"),
        TimeFmt::IsoDateClock => format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}"),
        TimeFmt::IsoDateClockSec => format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}"),
    }
}

/// The shortest format that still tells a set of instants apart, for
/// instants used as categories (bars over days, months...).
pub(crate) fn format_for_instants(times: &[i64]) -> TimeFmt {
    let civil: Vec<Civil> = times.iter().map(|&t| Civil::from_millis(t)).collect();
    let all = |f: &dyn Fn(&Civil) -> bool| civil.iter().all(f);
    let first = civil.first();
    let one_year = first.is_some_and(|f| all(&|c| c.year == f.year));
    let one_day =
        first.is_some_and(|f| all(&|c| (c.year, c.month, c.day) == (f.year, f.month, f.day)));
    if all(&|c| c.is_midnight() && c.day == 1 && c.month == 1) {
        TimeFmt::Year
    } else if all(&|c| c.is_midnight() && c.day == 1) {
        TimeFmt::Month
    } else if all(&Civil::is_midnight) {
        if one_year {
            TimeFmt::Date
        } else {
            TimeFmt::IsoDate
        }
    } else if all(&|c| c.milli == 0 && c.second == 0) {
        if one_day {
            TimeFmt::Clock
        } else {
            TimeFmt::DateClock
        }
    } else if one_day {
        TimeFmt::ClockSec
    } else {
        TimeFmt::DateClockSec
    }
}

/// A step between the ticks of a time axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeStep {
    /// A fixed number of milliseconds; ticks at multiples of it after
    /// `offset` (which puts weeks on Mondays).
    Fixed {
        /// The step.
        ms: i64,
        /// Where the multiples start from.
        offset: i64,
    },
    /// Calendar months, ticks on the first of the month (every `n`th,
    /// counted from January).
    Months(i64),
    /// Calendar years, ticks on January 1st of years divisible by `n`.
    Years(i64),
}

/// 1970-01-05, the first Monday after the epoch: weeks start there.
const MONDAY: i64 = 4 * DAY;

const FIXED_STEPS: [i64; 24] = [
    1,
    2,
    5,
    10,
    20,
    50,
    100,
    200,
    500,
    SECOND,
    5 * SECOND,
    15 * SECOND,
    30 * SECOND,
    MINUTE,
    5 * MINUTE,
    15 * MINUTE,
    30 * MINUTE,
    HOUR,
    3 * HOUR,
    6 * HOUR,
    12 * HOUR,
    DAY,
    2 * DAY,
    7 * DAY,
];

/// The number of ticks a time axis aims at.
const TARGET_TICKS: i128 = 6;

/// The ticks of a time axis.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TimeTicks {
    /// The chosen step.
    pub(crate) step: TimeStep,
    /// Each tick's instant and label.
    pub(crate) ticks: Vec<(i64, String)>,
}

fn candidates() -> impl Iterator<Item = TimeStep> {
    let fixed = FIXED_STEPS.iter().map(|&ms| TimeStep::Fixed {
        ms,
        offset: if ms == 7 * DAY { MONDAY } else { 0 },
    });
    let months = [1, 3].into_iter().map(TimeStep::Months);
    let years = (0..10u32).flat_map(|e| {
        let p = 10i64.pow(e);
        [p, 2 * p, 5 * p]
    });
    fixed.chain(months).chain(years.map(TimeStep::Years))
}

/// Ticks for a time axis over `[min, max]`: the step from 1 ms up to
/// centuries (1, 5, 15, 30 min; 1, 3, 6, 12 h; 1, 2, 7 days; months;
/// years...) whose count of ticks is nearest six, labelled for the step.
pub(crate) fn time_ticks(min: i64, max: i64) -> TimeTicks {
    let (min, max) = (min.min(max), max.max(min));
    let mut best = TimeStep::Fixed { ms: DAY, offset: 0 };
    let mut best_score = i128::MAX;
    for step in candidates() {
        let count = tick_count(step, min, max);
        let score = (count - TARGET_TICKS).abs();
        // Ties go to the larger step (the later candidate): fewer labels.
        if count >= 2 && score <= best_score {
            best = step;
            best_score = score;
        }
    }
    let fmt = label_format(best, min, max);
    let ticks = tick_instants(best, min, max)
        .into_iter()
        .map(|t| (t, format_time(t, fmt)))
        .collect();
    TimeTicks { step: best, ticks }
}

fn label_format(step: TimeStep, min: i64, max: i64) -> TimeFmt {
    let (a, b) = (Civil::from_millis(min), Civil::from_millis(max));
    let many_days = (a.year, a.month, a.day) != (b.year, b.month, b.day);
    let many_years = a.year != b.year;
    match step {
        TimeStep::Fixed { ms, .. } if ms < SECOND => TimeFmt::ClockMilli,
        TimeStep::Fixed { ms, .. } if ms < MINUTE => {
            if many_days {
                TimeFmt::DateClockSec
            } else {
                TimeFmt::ClockSec
            }
        }
        TimeStep::Fixed { ms, .. } if ms < DAY => {
            if many_days {
                TimeFmt::DateClock
            } else {
                TimeFmt::Clock
            }
        }
        TimeStep::Fixed { .. } => {
            if many_years {
                TimeFmt::IsoDate
            } else {
                TimeFmt::Date
            }
        }
        TimeStep::Months(_) => TimeFmt::Month,
        TimeStep::Years(_) => TimeFmt::Year,
    }
}

/// How many ticks a step puts in `[min, max]`, without listing them.
fn tick_count(step: TimeStep, min: i64, max: i64) -> i128 {
    match step {
        TimeStep::Fixed { ms, offset } => {
            let (ms, offset) = (i128::from(ms), i128::from(offset));
            let first = ceil_div(i128::from(min) - offset, ms);
            let last = (i128::from(max) - offset).div_euclid(ms);
            last - first + 1
        }
        TimeStep::Months(n) => {
            let (first, last) = month_range(min, max);
            count_multiples(first, last, n)
        }
        TimeStep::Years(n) => {
            let (first, last) = year_range(min, max);
            count_multiples(first, last, n)
        }
    }
}

/// At most this many ticks are listed, whatever the step.
const MAX_TICKS: usize = 64;

fn tick_instants(step: TimeStep, min: i64, max: i64) -> Vec<i64> {
    match step {
        TimeStep::Fixed { ms, offset } => {
            let (ms, offset) = (i128::from(ms), i128::from(offset));
            let first = ceil_div(i128::from(min) - offset, ms);
            let last = (i128::from(max) - offset).div_euclid(ms);
            (first..=last)
                .take(MAX_TICKS)
                .filter_map(|k| i64::try_from(k * ms + offset).ok())
                .collect()
        }
        TimeStep::Months(n) => {
            let (first, last) = month_range(min, max);
            multiples(first, last, n)
                .filter_map(|m| month_start(m.div_euclid(12), m.rem_euclid(12)))
                .collect()
        }
        TimeStep::Years(n) => {
            let (first, last) = year_range(min, max);
            multiples(first, last, n)
                .filter_map(|y| month_start(y, 0))
                .collect()
        }
    }
}

/// The first and last month (as month indexes) that start in `[min, max]`.
fn month_range(min: i64, max: i64) -> (i64, i64) {
    let a = Civil::from_millis(min);
    let starts_month = a.day == 1 && a.is_midnight();
    let first = a.month_index() + i64::from(!starts_month);
    (first, Civil::from_millis(max).month_index())
}

/// The first and last year that start in `[min, max]`.
fn year_range(min: i64, max: i64) -> (i64, i64) {
    let a = Civil::from_millis(min);
    let starts_year = a.month == 1 && a.day == 1 && a.is_midnight();
    (
        a.year + i64::from(!starts_year),
        Civil::from_millis(max).year,
    )
}

fn count_multiples(first: i64, last: i64, n: i64) -> i128 {
    let (first, last, n) = (i128::from(first), i128::from(last), i128::from(n.max(1)));
    last.div_euclid(n) - ceil_div(first, n) + 1
}

fn multiples(first: i64, last: i64, n: i64) -> impl Iterator<Item = i64> {
    let n = n.max(1);
    let from = first.div_euclid(n) + i64::from(first.rem_euclid(n) != 0);
    let to = last.div_euclid(n);
    (from..=to)
        .take(MAX_TICKS)
        .map(move |k| k.saturating_mul(n))
}

/// Midnight UTC starting a month (`month0` from 0), when representable.
fn month_start(year: i64, month0: i64) -> Option<i64> {
    let month = u32::try_from(month0 + 1).ok()?;
    let days = days_from_civil(year, month, 1);
    days.checked_mul(DAY)
}

fn ceil_div(a: i128, b: i128) -> i128 {
    -((-a).div_euclid(b))
}
