//! How numbers are written: values by [`Unit`] (`12.3k`, `1.5 KiB`,
//! `850 ms`, `12.5%`), tick labels at a step's precision, and the plain
//! numbers of `data-y` attributes.

use super::Unit;
use super::scale::clamp_magnitude;

/// Written in place of a value that is not a finite number.
const NOT_A_NUMBER: &str = "n/a";

/// One rung of a unit's ladder: magnitudes from `div` up are written
/// divided by it, followed by `suffix`.
struct Rung {
    div: f64,
    suffix: &'static str,
}

const NUMBER: &[Rung] = &[
    Rung {
        div: 1.0,
        suffix: "",
    },
    Rung {
        div: 1e3,
        suffix: "k",
    },
    Rung {
        div: 1e6,
        suffix: "M",
    },
    Rung {
        div: 1e9,
        suffix: "B",
    },
    Rung {
        div: 1e12,
        suffix: "T",
    },
];

const PERCENT: &[Rung] = &[Rung {
    div: 1.0,
    suffix: "%",
}];

const MILLISECONDS: &[Rung] = &[
    Rung {
        div: 1.0,
        suffix: " ms",
    },
    Rung {
        div: 1e3,
        suffix: " s",
    },
    Rung {
        div: 6e4,
        suffix: " min",
    },
    Rung {
        div: 3.6e6,
        suffix: " h",
    },
    Rung {
        div: 8.64e7,
        suffix: " d",
    },
];

const KIB: f64 = 1024.0;

const BYTES: &[Rung] = &[
    Rung {
        div: 1.0,
        suffix: " B",
    },
    Rung {
        div: KIB,
        suffix: " KiB",
    },
    Rung {
        div: KIB * KIB,
        suffix: " MiB",
    },
    Rung {
        div: KIB * KIB * KIB,
        suffix: " GiB",
    },
    Rung {
        div: KIB * KIB * KIB * KIB,
        suffix: " TiB",
    },
    Rung {
        div: KIB * KIB * KIB * KIB * KIB,
        suffix: " PiB",
    },
];

/// Writes a value the way a reader expects it for its unit.
///
/// - [`Unit::Number`]: `950`, `12.3k`, `4.5M`, `1.2B`, `3T`;
///   small numbers keep three significant digits (`1.23`, `0.0123`).
/// - [`Unit::Percent`]: the value is a fraction, `0.125` → `12.5%`.
/// - [`Unit::Milliseconds`]: `850 ms`, `1.2 s`, `2.5 min`, `1.5 h`, `2 d`.
/// - [`Unit::Bytes`] (binary multiples): `512 B`, `1.5 KiB`, `3.2 MiB`,
///   `1.1 GiB`.
///
/// A value that is not finite is written `n/a`.
#[must_use]
pub fn format_value(v: f64, unit: Unit) -> String {
    format_scaled(v, unit, None)
}

/// Writes a tick's value with just the decimals its axis's step needs, so
/// that neighbouring ticks never read the same (`1k`, `1.05k`, `1.1k`).
pub(crate) fn format_tick(v: f64, unit: Unit, step: f64) -> String {
    let step = (step.is_finite() && step > 0.0).then_some(step);
    format_scaled(v, unit, step)
}

/// Writes a number of an axis that has no unit (years, ids, sizes):
/// in full up to a million, with the step's decimals.
pub(crate) fn format_plain_tick(v: f64, step: f64) -> String {
    if !v.is_finite() {
        return NOT_A_NUMBER.to_owned();
    }
    if v.abs() >= 1e6 {
        return format_tick(v, Unit::Number, step);
    }
    let decimals = if step.is_finite() && step > 0.0 {
        decimals_for_step(step)
    } else {
        significant_decimals(v.abs())
    };
    fixed_trimmed(v, decimals)
}

/// The number as a plain decimal (`1234.5`, `-3`, `0.001`), exactly (the
/// shortest text that reads back as the same number): what `data-y` and
/// `data-x` attributes hold. Like JavaScript, magnitudes from 1e21 up or
/// below 1e-6 are written in exponent form (`1.5e300`). Numbers that are
/// not finite never get here; they would be written `0`, never `NaN`.
pub(crate) fn plain_number(v: f64) -> String {
    if !v.is_finite() || v == 0.0 {
        return "0".to_owned();
    }
    let magnitude = v.abs();
    if (1e-6..1e21).contains(&magnitude) {
        v.to_string()
    } else {
        format!("{v:e}")
    }
}

fn ladder(unit: Unit) -> &'static [Rung] {
    match unit {
        Unit::Number => NUMBER,
        Unit::Percent => PERCENT,
        Unit::Milliseconds => MILLISECONDS,
        Unit::Bytes => BYTES,
    }
}

fn format_scaled(v: f64, unit: Unit, step: Option<f64>) -> String {
    if !v.is_finite() {
        return NOT_A_NUMBER.to_owned();
    }
    let factor = if unit == Unit::Percent { 100.0 } else { 1.0 };
    // Clamped so that a percentage of a huge number stays finite.
    let magnitude = (clamp_magnitude(v) * factor).abs();
    let step = step.map(|s| s * factor);
    let rungs = ladder(unit);
    let sign = if v < 0.0 { "-" } else { "" };
    let mut at = rungs.iter().rposition(|r| magnitude >= r.div).unwrap_or(0);
    loop {
        let Some(rung) = rungs.get(at) else {
            return NOT_A_NUMBER.to_owned();
        };
        let scaled = magnitude / rung.div;
        let last = at + 1 == rungs.len();
        if let Some(text) = exponent_form(scaled, at == 0, last, step.is_some()) {
            return format!("{sign}{text}{}", rung.suffix);
        }
        let decimals = match step {
            Some(step) => decimals_for_step(step / rung.div),
            None if at == 0 => significant_decimals(scaled),
            None => usize::from(scaled < 100.0),
        };
        let rounded = round_to(scaled, decimals);
        let promote = rungs
            .get(at + 1)
            .is_some_and(|next| rounded * rung.div >= next.div);
        if promote {
            at += 1;
            continue;
        }
        let digits = fixed_trimmed(rounded, decimals);
        let sign = if digits == "0" { "" } else { sign };
        return format!("{sign}{digits}{}", rung.suffix);
    }
}

/// Very large (past the ladder's last rung) and very small magnitudes are
/// written in exponent form, `1.2e20`, `5.0e-7`.
fn exponent_form(scaled: f64, first: bool, last: bool, tick: bool) -> Option<String> {
    let huge = last && scaled >= 1e4;
    let tiny = first && !tick && scaled != 0.0 && scaled < 1e-3;
    (huge || tiny).then(|| format!("{scaled:.1e}"))
}

/// Decimals that keep three significant digits, at most six.
fn significant_decimals(magnitude: f64) -> usize {
    if magnitude == 0.0 || !magnitude.is_finite() {
        return 0;
    }
    let digits = 2.0 - magnitude.log10().floor();
    clamp_decimals(digits, 6)
}

/// Decimals that tell apart multiples of a step (0.5 → 1, 0.05 → 2, 20 → 0).
pub(crate) fn decimals_for_step(step: f64) -> usize {
    if !(step.is_finite() && step > 0.0) {
        return 0;
    }
    clamp_decimals((-step.log10() - 1e-9).ceil(), 9)
}

fn clamp_decimals(d: f64, max: usize) -> usize {
    if d.is_finite() && d > 0.0 {
        // At most `max` (a few), so the conversion is exact.
        (d as usize).min(max)
    } else {
        0
    }
}

fn round_to(v: f64, decimals: usize) -> f64 {
    let p = 10f64.powi(i32::try_from(decimals).unwrap_or(0));
    let r = (v * p).round() / p;
    if r.is_finite() { r } else { v }
}

/// `v` with `decimals` decimals, trailing zeros (and a bare point) dropped;
/// never `-0`.
pub(crate) fn fixed_trimmed(v: f64, decimals: usize) -> String {
    let mut s = format!("{v:.decimals$}");
    if s.contains('.') {
        let kept = s.trim_end_matches('0').trim_end_matches('.').len();
        s.truncate(kept);
    }
    if s == "-0" {
        s.remove(0);
    }
    s
}
