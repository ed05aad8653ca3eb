//! Tests of the chart renderer: every kind of chart's marks and their
//! data, geometry, axes and ticks, number formats, hostile input, and that
//! every document is well-formed XML (checked by a small parser here).

use super::format::format_tick;
use super::scale::nice_ticks;
use super::time::{
    DAY, HOUR, MINUTE, TimeFmt, TimeStep, civil_from_days, days_from_civil, format_for_instants,
    format_time, rfc3339, time_ticks,
};
use super::*;

/// 2026-12-05T10:00:00Z.
const T0: i64 = 1_796_464_800_000;
/// 2026-12-05T00:00:00Z.
const DEC_5: i64 = 1_796_428_800_000;
/// 2026-07-01T00:00:00Z.
const JUL_1: i64 = 1_782_864_000_000;
/// 2026-12-31T00:00:00Z.
const DEC_31: i64 = 1_798_675_200_000;

// ---------------------------------------------------------------- helpers

/// An element of a parsed document.
#[derive(Debug, Clone)]
struct Elem {
    name: String,
    attrs: Vec<(String, String)>,
    /// The text directly inside it (entities left as written).
    text: String,
}

impl Elem {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn num(&self, name: &str) -> f64 {
        let v = self
            .attr(name)
            .unwrap_or_else(|| panic!("no {name} on {self:?}"));
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
    }

    fn has_class(&self, class: &str) -> bool {
        self.attr("class")
            .is_some_and(|c| c.split_whitespace().any(|x| x == class))
    }
}

/// Checks that `svg` is well-formed XML (one root, balanced tags, quoted
/// attributes without `<` and without duplicates, no raw `<` or stray `&`
/// in text) and returns its elements in document order.
fn parse(svg: &str) -> Vec<Elem> {
    let mut stack: Vec<usize> = Vec::new();
    let mut elems: Vec<Elem> = Vec::new();
    let mut rest = svg;
    let mut roots = 0;
    while let Some(lt) = rest.find('<') {
        let text = &rest[..lt];
        check_text(text);
        if stack.is_empty() {
            assert!(text.trim().is_empty(), "text outside the root: {text:?}");
        } else if let Some(&top) = stack.last() {
            elems[top].text.push_str(text);
        }
        rest = &rest[lt + 1..];
        let gt = rest.find('>').expect("a tag is not closed");
        let tag = &rest[..gt];
        rest = &rest[gt + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack.pop().expect("a closing tag without an opening one");
            assert_eq!(elems[open].name, name, "mismatched closing tag");
            continue;
        }
        let (body, self_closing) = match tag.strip_suffix('/') {
            Some(body) => (body, true),
            None => (tag, false),
        };
        let name_end = body.find(char::is_whitespace).unwrap_or(body.len());
        let name = &body[..name_end];
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
            "bad element name {name:?}"
        );
        if stack.is_empty() {
            roots += 1;
        }
        elems.push(Elem {
            name: name.to_owned(),
            attrs: parse_attrs(&body[name_end..]),
            text: String::new(),
        });
        if !self_closing {
            stack.push(elems.len() - 1);
        }
    }
    check_text(rest);
    assert!(rest.trim().is_empty(), "text after the root");
    assert!(stack.is_empty(), "unclosed elements");
    assert_eq!(roots, 1, "exactly one root element");
    elems
}

fn parse_attrs(mut s: &str) -> Vec<(String, String)> {
    let mut attrs: Vec<(String, String)> = Vec::new();
    loop {
        let trimmed = s.trim_start();
        if trimmed.is_empty() {
            return attrs;
        }
        assert!(
            trimmed.len() < s.len(),
            "attributes must be separated by spaces: {s:?}"
        );
        let eq = trimmed.find('=').expect("an attribute without a value");
        let name = &trimmed[..eq];
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ':'),
            "bad attribute name {name:?}"
        );
        let after = trimmed[eq + 1..]
            .strip_prefix('"')
            .expect("attribute values are quoted");
        let end = after.find('"').expect("an attribute value is not closed");
        let value = &after[..end];
        assert!(!value.contains('<'), "raw < in an attribute: {value:?}");
        check_entities(value);
        assert!(
            attrs.iter().all(|(n, _)| n != name),
            "duplicate attribute {name}"
        );
        attrs.push((name.to_owned(), value.to_owned()));
        s = &after[end + 1..];
    }
}

fn check_text(text: &str) {
    assert!(!text.contains('<'));
    check_entities(text);
}

fn check_entities(s: &str) {
    for (i, _) in s.match_indices('&') {
        let entity = &s[i..];
        let ok = ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;", "&apos;"]
            .iter()
            .any(|e| entity.starts_with(e));
        assert!(ok, "a stray & in {s:?}");
    }
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// Geometry attributes whose numbers must have at most two decimals.
const GEOMETRY: [&str; 13] = [
    "x",
    "y",
    "width",
    "height",
    "cx",
    "cy",
    "r",
    "x1",
    "y1",
    "x2",
    "y2",
    "d",
    "transform",
];

/// Renders and checks what every document must satisfy: well-formed, no
/// `NaN` or infinity, coordinates with at most two decimals, the root as
/// specified.
fn render_checked(data: &ChartData, opts: &RenderOptions) -> (String, Vec<Elem>) {
    let svg = render(data, opts);
    let elems = parse(&svg);
    assert!(!svg.contains("NaN"), "NaN in the SVG");
    let root = &elems[0];
    assert_eq!(root.name, "svg");
    assert_eq!(root.attr("xmlns"), Some("http://www.w3.org/2000/svg"));
    assert_eq!(root.attr("class"), Some("lh-chart"));
    assert_eq!(root.attr("width"), Some("100%"));
    assert_eq!(root.attr("role"), Some("img"));
    assert!(root.attr("viewBox").is_some_and(|v| v.starts_with("0 0 ")));
    assert_eq!(elems[1].name, "title");
    for e in &elems {
        for (name, value) in &e.attrs {
            if GEOMETRY.contains(&name.as_str()) {
                check_numbers(value);
            }
            if name == "data-y" || name == "data-x-end" {
                assert!(
                    value.parse::<f64>().is_ok_and(f64::is_finite),
                    "{name}={value}"
                );
            }
        }
    }
    (svg, elems)
}

/// Every number in a geometry attribute: finite, at most two decimals.
fn check_numbers(value: &str) {
    let tokens = value
        .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .filter(|t| !t.is_empty());
    for t in tokens {
        assert!(t.parse::<f64>().is_ok(), "not a number: {t} in {value}");
        if let Some((_, decimals)) = t.split_once('.') {
            assert!(decimals.len() <= 2, "more than 2 decimals: {t} in {value}");
        }
    }
    assert!(!value.contains("inf"), "infinity in {value}");
}

fn marks(elems: &[Elem]) -> Vec<&Elem> {
    elems.iter().filter(|e| e.has_class("lh-mark")).collect()
}

fn opts() -> RenderOptions {
    RenderOptions {
        width: 640,
        height: 320,
        title: "Test chart".to_owned(),
    }
}

fn point(x: XValue, y: f64) -> Point {
    Point { x, y, link: None }
}

fn cat(s: &str) -> XValue {
    XValue::Category(s.to_owned())
}

fn series(name: &str, points: Vec<Point>) -> Series {
    Series {
        name: name.to_owned(),
        points,
    }
}

fn cat_series(name: &str, values: &[(&str, f64)]) -> Series {
    series(
        name,
        values.iter().map(|(c, v)| point(cat(c), *v)).collect(),
    )
}

fn line(series: Vec<Series>) -> ChartData {
    ChartData::Line {
        series,
        area: false,
        stacked: false,
        unit: Unit::Number,
    }
}

fn bars(series: Vec<Series>, stacked: bool, horizontal: bool) -> ChartData {
    ChartData::Bar {
        series,
        stacked,
        horizontal,
        unit: Unit::Number,
    }
}

fn slice(label: &str, value: f64) -> Slice {
    Slice {
        label: label.to_owned(),
        value,
        link: None,
    }
}

fn pie(slices: Vec<Slice>, donut: bool) -> ChartData {
    ChartData::Pie {
        slices,
        donut,
        unit: Unit::Number,
    }
}

fn kpi(value: Option<f64>, previous: Option<f64>, higher_is_better: bool) -> ChartData {
    ChartData::Kpi {
        value,
        previous,
        higher_is_better,
        unit: Unit::Number,
    }
}

fn cell(x: usize, y: usize, value: f64) -> Cell {
    Cell {
        x,
        y,
        value,
        link: None,
    }
}

fn xy(x: f64, y: f64) -> XY {
    XY { x, y, link: None }
}

fn zero_line(elems: &[Elem]) -> &Elem {
    elems
        .iter()
        .find(|e| e.name == "line" && e.has_class("lh-zero"))
        .expect("a zero line")
}

fn tick_labels(elems: &[Elem]) -> Vec<String> {
    elems
        .iter()
        .filter(|e| e.name == "text" && e.has_class("lh-tick"))
        .map(|e| unescape(&e.text))
        .collect()
}

// ------------------------------------------------------------ line charts

#[test]
fn line_marks_carry_series_time_and_value() {
    let data = line(vec![
        series(
            "alpha",
            vec![
                point(XValue::Time(T0), 1234.5),
                point(XValue::Time(T0 + HOUR), 10.0),
                point(XValue::Time(T0 + 2 * HOUR), -3.0),
            ],
        ),
        series(
            "beta",
            vec![
                point(XValue::Time(T0), 1.0),
                point(XValue::Time(T0 + HOUR), 2.0),
                point(XValue::Time(T0 + 2 * HOUR), 3.0),
            ],
        ),
    ]);
    let (svg, elems) = render_checked(&data, &opts());
    let marks = marks(&elems);
    assert_eq!(marks.len(), 6);
    assert!(marks.iter().all(|m| m.name == "circle"));
    let first = marks[0];
    assert_eq!(first.attr("data-series"), Some("alpha"));
    assert_eq!(first.attr("data-x"), Some("2026-12-05T10:00:00Z"));
    assert_eq!(first.attr("data-y"), Some("1234.5"));
    assert!(first.has_class("lh-s0"));
    assert_eq!(marks[4].attr("data-x"), Some("2026-12-05T11:00:00Z"));
    assert_eq!(marks[4].attr("data-series"), Some("beta"));
    assert!(marks[4].has_class("lh-s1"));
    let lines: Vec<&Elem> = elems
        .iter()
        .filter(|e| e.name == "path" && e.has_class("lh-line"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[1].has_class("lh-s1"));
    assert!(svg.contains("<title>alpha · 2026-12-05 10:00: 1.2k</title>"));
    // Two series: a legend with both names.
    let legend: Vec<&Elem> = elems.iter().filter(|e| e.has_class("lh-swatch")).collect();
    assert_eq!(legend.len(), 2);
    assert!(svg.contains(">alpha</text>") && svg.contains(">beta</text>"));
    // The x axis is a time axis (a 2 h span: 30 min steps).
    let labels = tick_labels(&elems);
    assert!(labels.contains(&"10:30".to_owned()), "{labels:?}");
    assert!(!svg.contains("<a "));
}

#[test]
fn a_single_series_has_no_legend() {
    let data = line(vec![cat_series("only", &[("a", 1.0), ("b", 2.0)])]);
    let (_, elems) = render_checked(&data, &opts());
    assert!(!elems.iter().any(|e| e.has_class("lh-swatch")));
    assert_eq!(marks(&elems).len(), 2);
}

#[test]
fn line_points_without_a_value_are_gaps() {
    let data = line(vec![series(
        "s",
        vec![
            point(XValue::Number(1.0), 1.0),
            point(XValue::Number(2.0), f64::NAN),
            point(XValue::Number(3.0), 3.0),
            point(XValue::Number(f64::NAN), 4.0),
            point(XValue::Number(4.0), f64::INFINITY),
            point(XValue::Number(5.0), 5.0),
        ],
    )]);
    let (svg, elems) = render_checked(&data, &opts());
    let marks = marks(&elems);
    let xs: Vec<&str> = marks.iter().filter_map(|m| m.attr("data-x")).collect();
    assert_eq!(xs, ["1", "3", "5"]);
    let path = elems
        .iter()
        .find(|e| e.has_class("lh-line"))
        .and_then(|e| e.attr("d"))
        .expect("a line");
    assert_eq!(path.matches('M').count(), 3, "{path}");
    assert!(!svg.contains("inf"));
}

#[test]
fn category_lines_put_points_on_band_centres() {
    let data = line(vec![cat_series(
        "s",
        &[("mon", 1.0), ("tue", 2.0), ("wed", 3.0)],
    )]);
    let (_, elems) = render_checked(&data, &opts());
    let marks = marks(&elems);
    let xs: Vec<&str> = marks.iter().filter_map(|m| m.attr("data-x")).collect();
    assert_eq!(xs, ["mon", "tue", "wed"]);
    let cx: Vec<f64> = marks.iter().map(|m| m.num("cx")).collect();
    assert!((cx[1] - cx[0] - (cx[2] - cx[1])).abs() < 0.02);
    assert!(tick_labels(&elems).contains(&"tue".to_owned()));
}

#[test]
fn areas_fill_under_lines_and_stack() {
    let s = |name: &str| cat_series(name, &[("a", 1.0), ("b", 1.0)]);
    let data = ChartData::Line {
        series: vec![s("low"), s("high")],
        area: true,
        stacked: true,
        unit: Unit::Number,
    };
    let (_, elems) = render_checked(&data, &opts());
    let areas = elems
        .iter()
        .filter(|e| e.name == "path" && e.has_class("lh-area"))
        .count();
    assert_eq!(areas, 2);
    let marks = marks(&elems);
    assert_eq!(marks.len(), 4);
    // Data values are the points' own; positions are cumulative.
    assert!(marks.iter().all(|m| m.attr("data-y") == Some("1")));
    let zero = zero_line(&elems).num("y1");
    let (low, high) = (marks[0].num("cy"), marks[2].num("cy"));
    assert!(
        (zero - high - 2.0 * (zero - low)).abs() < 0.05,
        "{zero} {low} {high}"
    );
}

#[test]
fn areas_without_stacking_start_at_zero() {
    let data = ChartData::Line {
        series: vec![cat_series("s", &[("a", 10.0), ("b", 20.0)])],
        area: true,
        stacked: false,
        unit: Unit::Number,
    };
    let (_, elems) = render_checked(&data, &opts());
    assert!(tick_labels(&elems).contains(&"0".to_owned()));
}

#[test]
fn mixed_x_values_become_categories() {
    let data = line(vec![series(
        "s",
        vec![
            point(XValue::Time(T0), 1.0),
            point(cat("other"), 2.0),
            point(XValue::Number(2.5), 3.0),
        ],
    )]);
    let (_, elems) = render_checked(&data, &opts());
    let xs: Vec<&str> = marks(&elems)
        .iter()
        .filter_map(|m| m.attr("data-x"))
        .collect();
    assert_eq!(xs, ["2026-12-05T10:00:00Z", "other", "2.5"]);
}

// -------------------------------------------------------------- bar charts

#[test]
fn grouped_bars_are_proportional_and_side_by_side() {
    let data = bars(
        vec![
            cat_series("x", &[("a", 1.0), ("b", 2.0)]),
            cat_series("y", &[("a", 4.0), ("b", 8.0)]),
        ],
        false,
        false,
    );
    let (_, elems) = render_checked(&data, &opts());
    let marks = marks(&elems);
    assert_eq!(marks.len(), 4);
    assert!(marks.iter().all(|m| m.name == "rect"));
    let (xa, ya) = (marks[0], marks[2]);
    assert_eq!(xa.attr("data-x"), Some("a"));
    assert_eq!(ya.attr("data-series"), Some("y"));
    assert_eq!(ya.attr("data-y"), Some("4"));
    assert!((ya.num("height") / xa.num("height") - 4.0).abs() < 0.01);
    assert!(ya.num("x") >= xa.num("x") + xa.num("width") - 0.02);
    let bottom = |m: &Elem| m.num("y") + m.num("height");
    assert!((bottom(xa) - bottom(ya)).abs() < 0.02);
    assert!((bottom(xa) - zero_line(&elems).num("y1")).abs() < 0.02);
}

#[test]
fn stacked_bars_add_up() {
    let data = bars(
        vec![
            cat_series("first", &[("a", 1.0), ("b", 2.0)]),
            cat_series("second", &[("a", 3.0), ("b", 4.0)]),
        ],
        true,
        false,
    );
    let (_, elems) = render_checked(&data, &opts());
    let marks = marks(&elems);
    assert_eq!(marks.len(), 4);
    let (a1, b1, a2, b2) = (marks[0], marks[1], marks[2], marks[3]);
    for (below, above) in [(a1, a2), (b1, b2)] {
        // Same column, the second series right on top of the first.
        assert!((below.num("x") - above.num("x")).abs() < 0.01);
        assert!((below.num("width") - above.num("width")).abs() < 0.01);
        let top_of_above = above.num("y") + above.num("height");
        assert!((top_of_above - below.num("y")).abs() < 0.02);
    }
    assert!((a2.num("height") / a1.num("height") - 3.0).abs() < 0.01);
    assert!((b2.num("height") / b1.num("height") - 2.0).abs() < 0.01);
    // The tallest stack (6) sets the axis: 0 up to a nice 6.
    let zero = zero_line(&elems).num("y1");
    let total = zero - b2.num("y");
    let unit = a1.num("height");
    assert!((total / unit - 6.0).abs() < 0.01);
    assert_eq!(b2.attr("data-y"), Some("4"));
}

#[test]
fn negative_bars_hang_below_zero() {
    let data = bars(
        vec![cat_series(
            "s",
            &[
                ("up", 5.0),
                ("down", -5.0),
                ("nan", f64::NAN),
                ("inf", f64::NEG_INFINITY),
            ],
        )],
        false,
        false,
    );
    let (_, elems) = render_checked(&data, &opts());
    let zero = zero_line(&elems).num("y1");
    let marks = marks(&elems);
    let (up, down) = (marks[0], marks[1]);
    assert!((up.num("y") + up.num("height") - zero).abs() < 0.02);
    assert!((down.num("y") - zero).abs() < 0.02);
    assert!(down.num("height") > 0.0);
    assert!((up.num("height") - down.num("height")).abs() < 0.02);
    assert_eq!(down.attr("data-y"), Some("-5"));
    assert_eq!(marks.len(), 2);
    // The categories of skipped values get no band either.
    assert!(!tick_labels(&elems).contains(&"nan".to_owned()));
}

#[test]
fn stacked_negative_bars_stack_downwards() {
    let data = bars(
        vec![
            cat_series("a", &[("c", -1.0)]),
            cat_series("b", &[("c", 2.0)]),
            cat_series("d", &[("c", -2.0)]),
        ],
        true,
        false,
    );
    let (_, elems) = render_checked(&data, &opts());
    let zero = zero_line(&elems).num("y1");
    let marks = marks(&elems);
    let (a, b, d) = (marks[0], marks[1], marks[2]);
    assert!((a.num("y") - zero).abs() < 0.02);
    assert!((b.num("y") + b.num("height") - zero).abs() < 0.02);
    assert!((d.num("y") - (a.num("y") + a.num("height"))).abs() < 0.02);
}

#[test]
fn horizontal_bars_grow_right_from_zero() {
    let data = bars(
        vec![cat_series(
            "s",
            &[("first", 2.0), ("second", 4.0), ("third", -1.0)],
        )],
        false,
        true,
    );
    let (_, elems) = render_checked(&data, &opts());
    let zero = zero_line(&elems).num("x1");
    let marks = marks(&elems);
    let (first, second, third) = (marks[0], marks[1], marks[2]);
    assert!((first.num("x") - zero).abs() < 0.02);
    assert!((second.num("width") / first.num("width") - 2.0).abs() < 0.01);
    assert!(second.num("y") > first.num("y"), "categories go down");
    assert!((third.num("x") + third.num("width") - zero).abs() < 0.02);
    let labels = tick_labels(&elems);
    assert!(labels.contains(&"second".to_owned()), "{labels:?}");
}

#[test]
fn bars_over_days_are_labelled_by_date() {
    let data = bars(
        vec![series(
            "s",
            (0..3)
                .map(|d| point(XValue::Time(DEC_5 + d * DAY), 1.0))
                .collect(),
        )],
        false,
        false,
    );
    let (_, elems) = render_checked(&data, &opts());
    assert_eq!(tick_labels(&elems)[..3].len(), 3);
    assert!(tick_labels(&elems).contains(&"Dec 06".to_owned()));
    let marks = marks(&elems);
    assert_eq!(marks[1].attr("data-x"), Some("2026-12-06T00:00:00Z"));
}

#[test]
fn ten_thousand_categories_render_with_thinned_labels() {
    let points = (0..10_000)
        .map(|i| point(cat(&format!("category {i}")), f64::from(i)))
        .collect();
    let data = bars(vec![series("s", points)], false, false);
    let (svg, elems) = render_checked(&data, &opts());
    assert_eq!(marks(&elems).len(), 10_000);
    let labels = tick_labels(&elems);
    // 5 or 6 value ticks plus a few dozen category labels.
    assert!(labels.len() < 200, "{} labels", labels.len());
    assert!(labels.iter().any(|l| l.starts_with("categ")));
    assert!(svg.contains("rotate(-45"));
}

#[test]
fn crowded_category_labels_are_rotated_and_truncated() {
    let names: Vec<String> = (0..30)
        .map(|i| format!("a rather long category name {i}"))
        .collect();
    let values: Vec<(&str, f64)> = names.iter().map(|n| (n.as_str(), 1.0)).collect();
    let data = bars(vec![cat_series("s", &values)], false, false);
    let (svg, elems) = render_checked(&data, &opts());
    assert!(svg.contains("rotate(-45"));
    let labels = tick_labels(&elems);
    assert!(labels.iter().any(|l| l.ends_with('…')), "{labels:?}");
    assert!(labels.iter().all(|l| l.chars().count() <= 18));
}

// -------------------------------------------------------------------- pies

#[test]
fn pie_slices_follow_input_order_and_skip_zero() {
    let data = pie(
        vec![
            slice("a", 1.0),
            slice("zero", 0.0),
            slice("b", 3.0),
            slice("neg", -2.0),
            slice("nan", f64::NAN),
            slice("inf", f64::INFINITY),
        ],
        false,
    );
    let (svg, elems) = render_checked(&data, &opts());
    let marks = marks(&elems);
    assert_eq!(marks.len(), 2);
    assert_eq!(marks[0].attr("data-series"), Some("a"));
    assert_eq!(marks[1].attr("data-series"), Some("b"));
    assert_eq!(marks[1].attr("data-y"), Some("3"));
    assert!(marks[0].has_class("lh-s0") && marks[1].has_class("lh-s2"));
    assert!(svg.contains("<title>b: 3 (75%)</title>"));
    // The first slice starts at 12 o'clock: its arc starts straight above
    // the centre.
    let d = marks[0].attr("d").unwrap_or_default();
    let (centre, first_point) = d.trim_start_matches('M').split_once('L').expect("a sector");
    let cx = centre.split(',').next().unwrap_or_default();
    assert!(first_point.starts_with(&format!("{cx},")), "{d}");
    // A legend, even for a pie of one series.
    assert_eq!(elems.iter().filter(|e| e.has_class("lh-swatch")).count(), 2);
}

#[test]
fn a_single_slice_is_a_full_disc() {
    for donut in [false, true] {
        let (_, elems) = render_checked(&pie(vec![slice("all", 42.0)], donut), &opts());
        let marks = marks(&elems);
        assert_eq!(marks.len(), 1);
        let d = marks[0].attr("d").unwrap_or_default();
        let arcs = d.matches('A').count();
        assert_eq!(arcs, if donut { 4 } else { 2 }, "{d}");
        // Two half circles: the arc ends differ from their starts.
        assert!(d.contains(" 0 1 1 "));
    }
}

#[test]
fn donuts_have_a_hole_and_a_total() {
    let data = pie(vec![slice("a", 1.0), slice("b", 1.0)], true);
    let (svg, elems) = render_checked(&data, &opts());
    let marks = marks(&elems);
    assert_eq!(marks.len(), 2);
    for m in &marks {
        assert_eq!(m.attr("d").unwrap_or_default().matches('A').count(), 2);
    }
    assert!(svg.contains("class=\"lh-total\""));
    assert!(svg.contains(">2</text>"));
}

// --------------------------------------------------------------- heat maps

#[test]
fn heat_map_cells_are_coloured_from_min_to_max() {
    let data = ChartData::HeatMap {
        x: vec!["00h".into(), "01h".into()],
        y: vec!["Mon".into(), "Tue".into()],
        cells: vec![
            cell(0, 0, 0.0),
            cell(1, 0, 5.0),
            cell(0, 1, 10.0),
            cell(5, 0, 1.0),
            cell(1, 1, f64::NAN),
        ],
        unit: Unit::Number,
    };
    let (svg, elems) = render_checked(&data, &opts());
    let marks = marks(&elems);
    assert_eq!(marks.len(), 3);
    assert_eq!(marks[0].attr("style"), Some("fill:#fff3b2"));
    assert_eq!(marks[2].attr("style"), Some("fill:#253494"));
    assert_eq!(marks[1].attr("style"), Some("fill:#41b6c4"));
    assert_eq!(marks[2].attr("data-series"), Some("Tue"));
    assert_eq!(marks[2].attr("data-x"), Some("00h"));
    assert_eq!(marks[2].attr("data-y"), Some("10"));
    assert!(svg.contains("<title>Tue · 00h: 10</title>"));
    // The colour scale shows min and max.
    let labels = tick_labels(&elems);
    assert!(labels.contains(&"0".to_owned()) && labels.contains(&"10".to_owned()));
    assert!(elems.iter().any(|e| e.has_class("lh-scale-step")));
}

// -------------------------------------------------------------- histograms

#[test]
fn histogram_bars_are_adjacent() {
    let data = ChartData::Histogram {
        bins: vec![
            Bin {
                lo: 0.0,
                hi: 10.0,
                count: 3,
                link: None,
            },
            Bin {
                lo: 10.0,
                hi: 20.0,
                count: 6,
                link: Some("/drill?b=1".into()),
            },
            Bin {
                lo: 20.0,
                hi: 30.0,
                count: 0,
                link: None,
            },
        ],
        unit: Unit::Milliseconds,
    };
    let (svg, elems) = render_checked(&data, &opts());
    let marks = marks(&elems);
    assert_eq!(marks.len(), 3);
    assert_eq!(marks[1].attr("data-x"), Some("10"));
    assert_eq!(marks[1].attr("data-x-end"), Some("20"));
    assert_eq!(marks[1].attr("data-y"), Some("6"));
    assert_eq!(marks[1].attr("data-series"), Some(""));
    assert!((marks[1].num("height") / marks[0].num("height") - 2.0).abs() < 0.01);
    let gap = marks[1].num("x") - (marks[0].num("x") + marks[0].num("width"));
    assert!((0.0..=1.01).contains(&gap), "gap {gap}");
    assert!(svg.contains("<a href=\"/drill?b=1\">"));
    assert!(tick_labels(&elems).iter().any(|l| l.ends_with(" ms")));
}

// ------------------------------------------------------------ scatter plots

#[test]
fn scatter_points_are_circles_on_numeric_axes() {
    let data = ChartData::Scatter {
        series: vec![
            ScatterSeries {
                name: "a".into(),
                points: vec![xy(1.0, 2.0), xy(3.0, 4.0), xy(f64::NAN, 1.0)],
            },
            ScatterSeries {
                name: "b".into(),
                points: vec![xy(2.0, 0.25)],
            },
        ],
        x_unit: Unit::Number,
        y_unit: Unit::Percent,
    };
    let (svg, elems) = render_checked(&data, &opts());
    let marks = marks(&elems);
    assert_eq!(marks.len(), 3);
    assert_eq!(marks[1].attr("data-x"), Some("3"));
    assert_eq!(marks[2].attr("data-y"), Some("0.25"));
    assert!(marks[2].has_class("lh-s1"));
    assert!(marks[1].num("cx") > marks[0].num("cx"));
    assert!(marks[1].num("cy") < marks[0].num("cy"));
    assert!(svg.contains("<title>b · 2: 25%</title>"));
}

// -------------------------------------------------------------------- KPIs

#[test]
fn kpi_shows_value_and_change() {
    let (svg, elems) = render_checked(&kpi(Some(1125.0), Some(1000.0), true), &opts());
    let marks = marks(&elems);
    assert_eq!(marks.len(), 1);
    assert_eq!(marks[0].name, "text");
    assert_eq!(marks[0].attr("data-y"), Some("1125"));
    assert!(marks[0].text.starts_with("1.1k"));
    assert!(svg.contains("class=\"lh-good\""));
    assert!(svg.contains(">▲ 12.5%</text>"));
    assert!(svg.contains(">vs previous: 1k</text>"));
}

#[test]
fn kpi_falls_are_bad_unless_lower_is_better() {
    let (svg, _) = render_checked(&kpi(Some(97.0), Some(100.0), true), &opts());
    assert!(svg.contains(">▼ 3.0%</text>") && svg.contains("class=\"lh-bad\""));
    let (svg, _) = render_checked(&kpi(Some(97.0), Some(100.0), false), &opts());
    assert!(svg.contains("class=\"lh-good\""));
    let (svg, _) = render_checked(&kpi(Some(110.0), Some(100.0), false), &opts());
    assert!(svg.contains(">▲ 10.0%</text>") && svg.contains("class=\"lh-bad\""));
    // Against a negative previous value, a rise is still a rise.
    let (svg, _) = render_checked(&kpi(Some(-50.0), Some(-100.0), true), &opts());
    assert!(svg.contains(">▲ 50.0%</text>"));
}

#[test]
fn kpi_without_previous_or_value() {
    let (svg, elems) = render_checked(&kpi(Some(5.0), Some(0.0), true), &opts());
    assert_eq!(marks(&elems).len(), 1);
    assert!(!svg.contains("vs previous") && !svg.contains("class=\"lh-good"));
    let (svg, elems) = render_checked(&kpi(Some(5.0), None, true), &opts());
    assert_eq!(marks(&elems).len(), 1);
    assert!(!svg.contains("vs previous"));
    for value in [None, Some(f64::NAN), Some(f64::INFINITY)] {
        let (svg, elems) = render_checked(&kpi(value, Some(1.0), true), &opts());
        assert!(marks(&elems).is_empty());
        assert!(svg.contains(">No data</text>"));
    }
}

// ----------------------------------------------------------- empty and odd

fn empty_charts() -> Vec<ChartData> {
    let nan_series = || vec![series("s", vec![point(cat("a"), f64::NAN)])];
    vec![
        line(vec![]),
        line(vec![series("s", vec![])]),
        line(nan_series()),
        bars(vec![], false, false),
        bars(nan_series(), true, true),
        pie(vec![], false),
        pie(vec![slice("z", 0.0), slice("n", f64::NAN)], true),
        ChartData::HeatMap {
            x: vec![],
            y: vec![],
            cells: vec![cell(0, 0, 1.0)],
            unit: Unit::Number,
        },
        ChartData::Histogram {
            bins: vec![],
            unit: Unit::Number,
        },
        ChartData::Histogram {
            bins: vec![Bin {
                lo: f64::NAN,
                hi: 1.0,
                count: 1,
                link: None,
            }],
            unit: Unit::Number,
        },
        ChartData::Scatter {
            series: vec![ScatterSeries {
                name: "s".into(),
                points: vec![xy(f64::NAN, 1.0)],
            }],
            x_unit: Unit::Number,
            y_unit: Unit::Number,
        },
        kpi(None, None, true),
    ]
}

#[test]
fn empty_data_says_no_data_and_has_no_marks() {
    for data in empty_charts() {
        let (svg, elems) = render_checked(&data, &opts());
        assert!(marks(&elems).is_empty(), "{data:?}");
        assert!(svg.contains(">No data</text>"), "{data:?}");
        assert!(!svg.contains("class=\"lh-mark"));
    }
}

#[test]
fn hostile_text_is_escaped() {
    let evil = "<script>alert(\"x\")</script> & 'q'";
    let opts = RenderOptions {
        title: evil.to_owned(),
        ..opts()
    };
    let data = line(vec![
        cat_series(evil, &[(evil, 1.0), ("b", 2.0)]),
        cat_series("second", &[("b", 3.0)]),
    ]);
    let (svg, elems) = render_checked(&data, &opts);
    assert!(!svg.contains("<script"));
    assert!(!svg.contains("alert(\"x\")"));
    let escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;q&#39;";
    assert_eq!(elems[0].attr("aria-label"), Some(escaped));
    let first = marks(&elems)[0];
    assert_eq!(first.attr("data-series"), Some(escaped));
    assert_eq!(first.attr("data-x"), Some(escaped));
    assert!(svg.contains(&format!("<title>{escaped}</title>")));
    let pie_data = pie(vec![slice(evil, 1.0)], false);
    let (svg, _) = render_checked(&pie_data, &opts);
    assert!(!svg.contains("<script"));
    let heat = ChartData::HeatMap {
        x: vec![evil.into()],
        y: vec![evil.into()],
        cells: vec![cell(0, 0, 1.0)],
        unit: Unit::Number,
    };
    let (svg, _) = render_checked(&heat, &opts);
    assert!(!svg.contains("<script"));
}

#[test]
fn control_characters_are_dropped() {
    let name = "a\u{0}b\u{1b}c\u{FFFF}d\te";
    let data = line(vec![cat_series(name, &[("x\u{7}", 1.0)])]);
    let (svg, elems) = render_checked(&data, &opts());
    assert_eq!(marks(&elems)[0].attr("data-series"), Some("abcd\te"));
    assert!(!svg.contains('\u{0}') && !svg.contains('\u{1b}'));
}

#[test]
fn only_local_links_are_kept() {
    let links = [
        ("javascript:alert(1)", None),
        ("JavaScript:alert(1)", None),
        (" /padded", None),
        ("//evil.example/x", None),
        ("/\\evil.example/x", None),
        ("https://evil.example/", None),
        ("data:text/html,hi", None),
        ("/line\nbreak", None),
        (
            "/dash/sales?region=EU&year=2026",
            Some("/dash/sales?region=EU&amp;year=2026"),
        ),
        ("?f=\"q\"", Some("?f=&quot;q&quot;")),
    ];
    let points = links
        .iter()
        .enumerate()
        .map(|(i, (link, _))| Point {
            x: cat(&i.to_string()),
            y: 1.0,
            link: Some((*link).to_owned()),
        })
        .collect();
    let (svg, elems) = render_checked(&bars(vec![series("s", points)], false, false), &opts());
    assert!(!svg.to_lowercase().contains("javascript"));
    assert!(!svg.contains("evil"));
    let hrefs: Vec<&str> = elems
        .iter()
        .filter(|e| e.name == "a")
        .filter_map(|e| e.attr("href"))
        .collect();
    let expected: Vec<&str> = links.iter().filter_map(|(_, kept)| *kept).collect();
    assert_eq!(hrefs, expected);
    // Marks with links are inside their link.
    assert!(svg.contains("<a href=\"?f=&quot;q&quot;\"><rect class=\"lh-mark"));
}

#[test]
fn extreme_values_stay_finite() {
    let big = [f64::MAX, -f64::MAX, 1e300, -1e-300, 5e-324, 0.0];
    let values: Vec<(String, f64)> = big
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("c{i}"), *v))
        .collect();
    let refs: Vec<(&str, f64)> = values.iter().map(|(c, v)| (c.as_str(), *v)).collect();
    let charts = vec![
        line(vec![cat_series("s", &refs)]),
        ChartData::Line {
            series: vec![cat_series("s", &refs), cat_series("t", &refs)],
            area: true,
            stacked: true,
            unit: Unit::Bytes,
        },
        bars(
            vec![cat_series("s", &refs), cat_series("t", &refs)],
            true,
            false,
        ),
        bars(vec![cat_series("s", &refs)], false, true),
        pie(big.iter().map(|v| slice("p", *v)).collect(), true),
        ChartData::Scatter {
            series: vec![ScatterSeries {
                name: "s".into(),
                points: big.iter().map(|v| xy(*v, -*v)).collect(),
            }],
            x_unit: Unit::Milliseconds,
            y_unit: Unit::Percent,
        },
        ChartData::Histogram {
            bins: histogram_bins(&big, 10),
            unit: Unit::Number,
        },
        ChartData::HeatMap {
            x: vec!["a".into(), "b".into()],
            y: vec!["c".into()],
            cells: vec![cell(0, 0, f64::MAX), cell(1, 0, -f64::MAX)],
            unit: Unit::Number,
        },
        kpi(Some(f64::MAX), Some(-f64::MAX), true),
        line(vec![series(
            "t",
            vec![
                point(XValue::Time(i64::MIN), 1.0),
                point(XValue::Time(i64::MAX), 2.0),
            ],
        )]),
        line(vec![series("t", vec![point(XValue::Time(T0), 1.0)])]),
    ];
    for data in charts {
        let (svg, elems) = render_checked(&data, &opts());
        assert!(!marks(&elems).is_empty(), "{data:?}");
        assert!(!svg.contains("inf"), "{data:?}");
    }
}

#[test]
fn odd_sizes_are_clamped() {
    let data = line(vec![cat_series("s", &[("a", 1.0)])]);
    for (width, height) in [(0, 0), (1, 1), (u32::MAX, u32::MAX), (100_000, 50)] {
        let opts = RenderOptions {
            width,
            height,
            title: String::new(),
        };
        let (_, elems) = render_checked(&data, &opts);
        let view_box = elems[0].attr("viewBox").unwrap_or_default().to_owned();
        let dims: Vec<f64> = view_box.split(' ').filter_map(|v| v.parse().ok()).collect();
        assert!(dims[2] >= 160.0 && dims[2] <= 16_000.0, "{view_box}");
        assert!(dims[3] >= 100.0 && dims[3] <= 16_000.0, "{view_box}");
        assert_eq!(elems[0].attr("aria-label"), Some("Chart"));
    }
}

#[test]
fn many_series_share_ten_colours_and_a_bounded_legend() {
    let all: Vec<Series> = (0..40)
        .map(|i| {
            cat_series(
                &format!("series with a very long name number {i}"),
                &[("a", f64::from(i))],
            )
        })
        .collect();
    for width in [640, 320] {
        let opts = RenderOptions { width, ..opts() };
        let (svg, elems) = render_checked(&line(all.clone()), &opts);
        let marks = marks(&elems);
        assert!(marks[10].has_class("lh-s0") && marks[13].has_class("lh-s3"));
        let swatches = elems.iter().filter(|e| e.has_class("lh-swatch")).count();
        assert!(swatches > 0 && swatches < 40, "{swatches} swatches");
        assert!(svg.contains(" more</text>"));
        let legend_names: Vec<&Elem> = elems
            .iter()
            .filter(|e| e.has_class("lh-legend-text"))
            .collect();
        assert!(legend_names.iter().all(|e| e.text.ends_with('…')));
    }
}

#[test]
fn style_sheet_has_palette_themes_and_dark_mode() {
    let (svg, _) = render_checked(&kpi(Some(1.0), None, true), &opts());
    for i in 0..10 {
        assert!(svg.contains(&format!(".lh-s{i}{{fill:var(--lh-s{i},#")));
        assert!(svg.contains(&format!(".lh-line.lh-s{i}{{stroke:var(--lh-s{i},#")));
    }
    assert!(svg.contains("@media (prefers-color-scheme: dark)"));
    for var in ["--lh-fg", "--lh-bg", "--lh-grid", "--lh-axis", "--lh-muted"] {
        assert!(svg.contains(&format!("var({var},")), "{var}");
    }
}

// ------------------------------------------------------------------- ticks

#[test]
fn nice_numeric_ticks() {
    let t = nice_ticks(0.0, 97.0, 5);
    assert_eq!((t.lo, t.hi, t.step), (0.0, 100.0, 20.0));
    assert_eq!(t.values, [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
    let t = nice_ticks(-3.0, 7.0, 5);
    assert_eq!((t.lo, t.hi, t.step), (-4.0, 8.0, 2.0));
    let t = nice_ticks(0.001, 0.0093, 5);
    assert!((t.step - 0.002).abs() < 1e-12);
    assert_eq!(t.values.len(), 6);
    let t = nice_ticks(0.0, 0.0, 5);
    assert_eq!((t.lo, t.hi), (0.0, 1.0));
    let t = nice_ticks(50.0, 50.0, 5);
    assert!(t.lo <= 45.0 && t.hi >= 55.0);
    let t = nice_ticks(1234.0, 98_765.0, 5);
    assert_eq!(t.step, 20_000.0);
    let t = nice_ticks(-f64::MAX, f64::MAX, 5);
    assert!(t.values.iter().all(|v| v.is_finite()) && t.values.len() <= 12);
    for (lo, hi) in [
        (0.0, 1.0),
        (3.0, 17.0),
        (-250.0, 13.0),
        (0.5, 0.51),
        (1e9, 3e9),
    ] {
        let t = nice_ticks(lo, hi, 5);
        assert!(t.lo <= lo && t.hi >= hi);
        assert!(
            (3..=11).contains(&t.values.len()),
            "{lo}..{hi}: {:?}",
            t.values
        );
        let mantissa = t.step / 10f64.powf(t.step.log10().floor());
        assert!(
            [1.0, 2.0, 5.0].iter().any(|m| (mantissa - m).abs() < 1e-9),
            "step {}",
            t.step
        );
    }
}

#[test]
fn tick_labels_keep_neighbours_apart() {
    let labels: Vec<String> = [1000.0, 1050.0, 1100.0]
        .iter()
        .map(|v| format_tick(*v, Unit::Number, 50.0))
        .collect();
    assert_eq!(labels, ["1k", "1.05k", "1.1k"]);
    assert_eq!(format_tick(0.3, Unit::Number, 0.1), "0.3");
    assert_eq!(format_tick(0.05, Unit::Percent, 0.05), "5%");
    assert_eq!(format_tick(1500.0, Unit::Milliseconds, 500.0), "1.5 s");
}

#[test]
fn time_ticks_over_two_hours() {
    let t = time_ticks(T0, T0 + 2 * HOUR);
    assert_eq!(
        t.step,
        TimeStep::Fixed {
            ms: 30 * MINUTE,
            offset: 0
        }
    );
    let labels: Vec<&str> = t.ticks.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(labels, ["10:00", "10:30", "11:00", "11:30", "12:00"]);
}

#[test]
fn time_ticks_over_three_days() {
    let t = time_ticks(DEC_5, DEC_5 + 3 * DAY);
    assert!((4..=8).contains(&t.ticks.len()));
    let labels: Vec<&str> = t.ticks.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(labels[0], "Dec 05 00:00");
    assert_eq!(labels[1], "Dec 05 12:00");
    assert_eq!(labels.last().copied(), Some("Dec 08 00:00"));
    // Daily steps are labelled by date alone.
    let t = time_ticks(DEC_5, DEC_5 + 6 * DAY);
    assert_eq!(t.step, TimeStep::Fixed { ms: DAY, offset: 0 });
    assert_eq!(t.ticks[1].1, "Dec 06");
}

#[test]
fn time_ticks_over_six_months() {
    let t = time_ticks(JUL_1, DEC_31);
    assert_eq!(t.step, TimeStep::Months(1));
    let labels: Vec<&str> = t.ticks.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(
        labels,
        [
            "2026-07", "2026-08", "2026-09", "2026-10", "2026-11", "2026-12"
        ]
    );
    assert_eq!(t.ticks[1].0, JUL_1 + 31 * DAY);
}

#[test]
fn time_ticks_for_other_spans() {
    let minutes = time_ticks(T0, T0 + 30 * MINUTE);
    assert_eq!(
        minutes.step,
        TimeStep::Fixed {
            ms: 5 * MINUTE,
            offset: 0
        }
    );
    assert_eq!(minutes.ticks[1].1, "10:05");
    let weeks = time_ticks(DEC_5, DEC_5 + 45 * DAY);
    assert!(matches!(weeks.step, TimeStep::Fixed { ms, .. } if ms == 7 * DAY));
    for (t, _) in &weeks.ticks {
        // 1970-01-05 was a Monday.
        assert_eq!((t - 4 * DAY).rem_euclid(7 * DAY), 0);
    }
    let years = time_ticks(JUL_1 - 30 * 365 * DAY, JUL_1);
    assert!(matches!(years.step, TimeStep::Years(5)));
    assert!(years.ticks.iter().all(|(_, l)| l.len() == 4));
    let seconds = time_ticks(T0, T0 + 20_000);
    assert!(
        seconds.ticks.iter().all(|(_, l)| l.len() == 8),
        "{seconds:?}"
    );
    for span in [1, 7, 999, 86_399_999, 1_000 * DAY] {
        let t = time_ticks(T0, T0 + span);
        assert!((2..=12).contains(&t.ticks.len()), "{span}: {:?}", t.ticks);
    }
}

#[test]
fn calendar_conversions() {
    assert_eq!(days_from_civil(1970, 1, 1), 0);
    assert_eq!(days_from_civil(1969, 12, 31), -1);
    assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    assert_eq!(days_from_civil(2024, 2, 29), 19_782);
    assert_eq!(days_from_civil(1600, 1, 1), -135_140);
    for days in [-1_000_000, -135_140, -1, 0, 11_016, 19_782, 2_932_896] {
        let (y, m, d) = civil_from_days(days);
        assert_eq!(days_from_civil(y, m, d), days);
    }
    assert_eq!(rfc3339(T0), "2026-12-05T10:00:00Z");
    assert_eq!(rfc3339(T0 + 1_250), "2026-12-05T10:00:01.250Z");
    assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
    assert_eq!(format_time(T0, TimeFmt::DateClock), "Dec 05 10:00");
    assert_eq!(format_time(DEC_5, TimeFmt::Month), "2026-12");
    assert_eq!(format_for_instants(&[DEC_5, DEC_5 + DAY]), TimeFmt::Date);
    assert_eq!(
        format_for_instants(&[JUL_1, DEC_5 - 4 * DAY]),
        TimeFmt::Month
    );
    assert_eq!(format_for_instants(&[T0, T0 + HOUR]), TimeFmt::Clock);
    assert_eq!(format_for_instants(&[T0, T0 + DAY]), TimeFmt::DateClock);
    // Far instants do not panic.
    let _ = rfc3339(i64::MIN);
    let _ = rfc3339(i64::MAX);
}

// ------------------------------------------------------------ format_value

#[test]
fn format_numbers() {
    let cases = [
        (0.0, "0"),
        (950.0, "950"),
        (999.4, "999"),
        (999.6, "1k"),
        (1000.0, "1k"),
        (12_345.0, "12.3k"),
        (123_456.0, "123k"),
        (999_960.0, "1M"),
        (4_500_000.0, "4.5M"),
        (1_200_000_000.0, "1.2B"),
        (3e12, "3T"),
        (-12_345.0, "-12.3k"),
        (1.234, "1.23"),
        (12.34, "12.3"),
        (0.5, "0.5"),
        (0.0123, "0.0123"),
        (-0.0, "0"),
        (-0.0001, "-1.0e-4"),
        (1e20, "1.0e8T"),
    ];
    for (v, expected) in cases {
        assert_eq!(format_value(v, Unit::Number), expected, "{v}");
    }
    assert_eq!(format_value(f64::NAN, Unit::Number), "n/a");
    assert_eq!(format_value(f64::INFINITY, Unit::Bytes), "n/a");
}

#[test]
fn format_percent_milliseconds_and_bytes() {
    let cases = [
        (0.125, Unit::Percent, "12.5%"),
        (0.5, Unit::Percent, "50%"),
        (1.5, Unit::Percent, "150%"),
        (-0.03, Unit::Percent, "-3%"),
        (0.000_5, Unit::Percent, "0.05%"),
        (850.0, Unit::Milliseconds, "850 ms"),
        (0.25, Unit::Milliseconds, "0.25 ms"),
        (1_200.0, Unit::Milliseconds, "1.2 s"),
        (59_990.0, Unit::Milliseconds, "1 min"),
        (150_000.0, Unit::Milliseconds, "2.5 min"),
        (5_400_000.0, Unit::Milliseconds, "1.5 h"),
        (2.0 * 86_400_000.0, Unit::Milliseconds, "2 d"),
        (512.0, Unit::Bytes, "512 B"),
        (1_536.0, Unit::Bytes, "1.5 KiB"),
        (3.2 * 1024.0 * 1024.0, Unit::Bytes, "3.2 MiB"),
        (1.1 * 1024.0 * 1024.0 * 1024.0, Unit::Bytes, "1.1 GiB"),
        (1024.0_f64.powi(4) * 2.0, Unit::Bytes, "2 TiB"),
        (0.0, Unit::Bytes, "0 B"),
    ];
    for (v, unit, expected) in cases {
        assert_eq!(format_value(v, unit), expected, "{v} {unit:?}");
    }
}

// ---------------------------------------------------------- histogram_bins

fn check_bins(values: &[f64], max_bins: usize) -> Vec<Bin> {
    let bins = histogram_bins(values, max_bins);
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let total: u64 = bins.iter().map(|b| b.count).sum();
    assert_eq!(total as usize, finite.len());
    assert!(bins.len() <= max_bins.max(1));
    assert!(bins.iter().all(|b| b.link.is_none()));
    for pair in bins.windows(2) {
        assert_eq!(pair[0].hi, pair[1].lo, "bins are contiguous");
    }
    if let (Some(first), Some(last)) = (bins.first(), bins.last()) {
        let min = finite.iter().copied().fold(f64::INFINITY, f64::min);
        let max = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        assert!(first.lo <= min && last.hi >= max);
        // Each value falls in its bin.
        for v in &finite {
            let inside = bins
                .iter()
                .filter(|b| b.lo <= *v && (*v < b.hi || (b.hi == last.hi && *v <= b.hi)))
                .count();
            assert!(inside >= 1, "{v} in no bin of {bins:?}");
        }
    }
    bins
}

#[test]
fn histogram_bins_cover_values_with_nice_widths() {
    let values: Vec<f64> = (0..=10).map(f64::from).collect();
    let bins = check_bins(&values, 10);
    assert_eq!(bins.len(), 10);
    assert_eq!((bins[0].lo, bins[0].hi), (0.0, 1.0));
    // The last bin holds the maximum.
    assert_eq!(bins[9].count, 2);
    assert_eq!(bins[9].hi, 10.0);
    let bins = check_bins(&[0.5, 9.7, 3.3, 3.4], 5);
    assert_eq!(bins.len(), 5);
    assert_eq!(bins[0].hi - bins[0].lo, 2.0);
    assert_eq!(bins[1].count, 2);
    let bins = check_bins(&[1.0, 2.0, 3.0], 2);
    assert_eq!(bins.iter().map(|b| b.count).collect::<Vec<_>>(), [1, 2]);
    let values: Vec<f64> = (0..1000).map(|i| f64::from(i) * 0.37 - 20.0).collect();
    let bins = check_bins(&values, 20);
    assert!(bins.len() > 10);
}

#[test]
fn histogram_bins_edge_cases() {
    assert!(histogram_bins(&[], 10).is_empty());
    assert!(histogram_bins(&[f64::NAN, f64::INFINITY], 10).is_empty());
    let bins = check_bins(&[5.0, 5.0, 5.0], 10);
    assert_eq!(bins.len(), 1);
    assert_eq!(bins[0].count, 3);
    assert!(bins[0].lo <= 5.0 && bins[0].hi > 5.0);
    let bins = check_bins(&[0.0], 10);
    assert_eq!(bins.len(), 1);
    let bins = check_bins(&[1.0, 2.0, 3.0, f64::NAN], 0);
    assert_eq!(bins.len(), 1);
    assert_eq!(bins[0].count, 3);
    let bins = check_bins(&[1.0, 1000.0], 1);
    assert_eq!(bins.len(), 1);
    check_bins(&[-f64::MAX, f64::MAX, 0.0], 1);
    check_bins(&[-f64::MAX, f64::MAX, 0.0], 7);
    check_bins(&[5e-324, 1e-323], 4);
    check_bins(&[1e15, 1e15 + 1.0, 1e15 + 3.0], 3);
    let bins = check_bins(&[0.0, 1e6], usize::MAX);
    assert!(bins.len() <= MAX_BINS);
    let bins = check_bins(&[0.1, 0.2, 0.3, 0.7], 3);
    assert!(bins.iter().all(|b| b.hi > b.lo));
}
