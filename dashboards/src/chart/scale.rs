//! Numeric scales and "nice" ticks (steps of 1, 2 or 5 × 10^k).

/// Values are clamped to this magnitude before they are laid out, so that
/// spans and sums of extreme values stay finite.
pub(crate) const MAX_MAGNITUDE: f64 = 1e300;

/// Clamps a finite value into `±MAX_MAGNITUDE`.
pub(crate) fn clamp_magnitude(v: f64) -> f64 {
    v.clamp(-MAX_MAGNITUDE, MAX_MAGNITUDE)
}

/// The smallest step of the form 1, 2 or 5 × 10^k that is at least `raw`;
/// `None` when `raw` is not a positive finite number (or too small to
/// have one).
pub(crate) fn nice_step(raw: f64) -> Option<f64> {
    if !(raw.is_finite() && raw > 0.0) {
        return None;
    }
    let power = 10f64.powf(raw.log10().floor());
    if !(power.is_finite() && power > 0.0) {
        return None;
    }
    let fraction = raw / power;
    let multiple = [1.0, 2.0, 5.0]
        .into_iter()
        .find(|m| fraction <= m * (1.0 + 1e-9))
        .unwrap_or(10.0);
    let step = multiple * power;
    (step.is_finite() && step > 0.0).then_some(step)
}

/// The next nice step after `step` (1 → 2 → 5 → 10...).
pub(crate) fn next_nice_step(step: f64) -> Option<f64> {
    nice_step(step * 1.5)
}

/// Ticks of a numeric axis.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Ticks {
    /// The axis's lower end (the first tick, a multiple of the step).
    pub(crate) lo: f64,
    /// The axis's upper end (the last tick).
    pub(crate) hi: f64,
    /// The distance between two ticks.
    pub(crate) step: f64,
    /// The ticks' values, from `lo` to `hi`.
    pub(crate) values: Vec<f64>,
}

/// At most this many ticks, whatever the data.
const MAX_TICKS: usize = 100;

/// About `target` nice ticks covering `[min, max]`; the axis extends to the
/// ticks just outside the data. A span of zero is widened (`0` to `0..1`,
/// other values by 10% each side).
pub(crate) fn nice_ticks(min: f64, max: f64, target: usize) -> Ticks {
    let (min, max) = widen(clamp_magnitude(min.min(max)), clamp_magnitude(max.max(min)));
    let span = max - min;
    let Some(step) = nice_step(span / target.max(1) as f64) else {
        return Ticks {
            lo: min,
            hi: max,
            step: span,
            values: vec![min, max],
        };
    };
    let lo = (min / step).floor() * step;
    let hi = (max / step).ceil() * step;
    let count = ((hi - lo) / step).round();
    let count = if count.is_finite() && count >= 0.0 {
        (count as usize).min(MAX_TICKS)
    } else {
        1
    };
    let values = (0..=count)
        .map(|i| {
            let v = lo + i as f64 * step;
            if v.abs() < step * 1e-9 { 0.0 } else { v }
        })
        .collect();
    Ticks {
        lo,
        hi,
        step,
        values,
    }
}

/// Nice ticks inside `[min, max]`, the axis spanning exactly the data
/// (widened when its span is zero): for x axes, where the data should
/// reach the plot's edges.
pub(crate) fn ticks_within(min: f64, max: f64, target: usize) -> Ticks {
    let (min, max) = widen(clamp_magnitude(min.min(max)), clamp_magnitude(max.max(min)));
    let mut ticks = nice_ticks(min, max, target);
    let slack = ticks.step.abs() * 1e-9;
    ticks
        .values
        .retain(|v| *v >= min - slack && *v <= max + slack);
    ticks.lo = min;
    ticks.hi = max;
    ticks
}

fn widen(min: f64, max: f64) -> (f64, f64) {
    if min < max {
        (min, max)
    } else if min == 0.0 {
        (0.0, 1.0)
    } else {
        let pad = min.abs() * 0.1;
        (min - pad, max + pad)
    }
}

/// Maps a domain linearly onto a range of pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Linear {
    d0: f64,
    d1: f64,
    r0: f64,
    r1: f64,
}

impl Linear {
    /// Maps `domain.0` to `range.0` and `domain.1` to `range.1`.
    pub(crate) fn new(domain: (f64, f64), range: (f64, f64)) -> Self {
        Self {
            d0: domain.0,
            d1: domain.1,
            r0: range.0,
            r1: range.1,
        }
    }

    /// Where `v` is drawn; the middle of the range for an empty domain.
    pub(crate) fn map(&self, v: f64) -> f64 {
        let span = self.d1 - self.d0;
        if span == 0.0 || !span.is_finite() {
            return f64::midpoint(self.r0, self.r1);
        }
        self.r0 + (v - self.d0) / span * (self.r1 - self.r0)
    }
}
