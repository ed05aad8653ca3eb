//! The x values of series as categories: one band per distinct x, in the
//! order they first appear, with their labels and `data-x` texts.

use std::collections::HashMap;

use super::format::plain_number;
use super::time::{format_for_instants, format_time, rfc3339};
use super::{Series, XValue};

/// An x value that can be compared and hashed (numbers by their bits,
/// `-0` as `0`); not-a-number x values have none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum XKey<'a> {
    /// An instant, ms.
    Time(i64),
    /// A number's bits.
    Number(u64),
    /// A label.
    Category(&'a str),
}

impl<'a> XKey<'a> {
    /// The key of an x value; `None` for a number that is not finite.
    pub(crate) fn of(x: &'a XValue) -> Option<Self> {
        match x {
            XValue::Time(t) => Some(Self::Time(*t)),
            // Adding 0 turns -0 into 0.
            XValue::Number(v) if v.is_finite() => Some(Self::Number((v + 0.0).to_bits())),
            XValue::Number(_) => None,
            XValue::Category(c) => Some(Self::Category(c)),
        }
    }

    /// The x as `data-x` holds it: the label, the number, or the instant
    /// in RFC 3339 (UTC).
    pub(crate) fn data_x(self) -> String {
        match self {
            Self::Time(t) => rfc3339(t),
            Self::Number(bits) => plain_number(f64::from_bits(bits)),
            Self::Category(c) => c.to_owned(),
        }
    }
}

/// The distinct x values of some series (of points with a finite value).
#[derive(Debug, Clone, Default)]
pub(crate) struct Categories<'a> {
    index: HashMap<XKey<'a>, usize>,
    /// Each category's axis label (instants in the shortest format that
    /// tells them apart).
    pub(crate) labels: Vec<String>,
    /// Each category's `data-x`.
    pub(crate) data_x: Vec<String>,
}

impl<'a> Categories<'a> {
    /// Collects the categories of series, in order of first appearance.
    pub(crate) fn collect(series: &'a [Series]) -> Self {
        let mut index = HashMap::new();
        let mut keys = Vec::new();
        let valid = series
            .iter()
            .flat_map(|s| &s.points)
            .filter(|p| p.y.is_finite())
            .filter_map(|p| XKey::of(&p.x));
        for key in valid {
            index.entry(key).or_insert_with(|| {
                keys.push(key);
                keys.len() - 1
            });
        }
        let times: Vec<i64> = keys
            .iter()
            .filter_map(|k| match k {
                XKey::Time(t) => Some(*t),
                _ => None,
            })
            .collect();
        let time_fmt = format_for_instants(&times);
        let labels = keys
            .iter()
            .map(|k| match k {
                XKey::Time(t) => format_time(*t, time_fmt),
                other => other.data_x(),
            })
            .collect();
        let data_x = keys.iter().map(|k| k.data_x()).collect();
        Self {
            index,
            labels,
            data_x,
        }
    }

    /// The index of an x value's category.
    pub(crate) fn position(&self, x: &XValue) -> Option<usize> {
        XKey::of(x).and_then(|k| self.index.get(&k).copied())
    }

    /// How many categories.
    pub(crate) fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are none.
    pub(crate) fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// A tooltip: `series · x: value`, or `x: value` for an unnamed series.
pub(crate) fn tooltip(series: &str, x: &str, value: &str) -> String {
    if series.is_empty() {
        format!("{x}: {value}")
    } else {
        format!("{series} · {x}: {value}")
    }
}
