//! The tuning tool's figures, as SVG written out directly: line charts with markers, axes
//! with ticks and labels, a legend and a title, panels side by side. Nothing to load, no
//! dependencies.
//!
//! - [`damping`], the equivalent of seed 002's Fig. 6 ("VTTIF is well damped"): over a
//!   sweep on a trace whose topology alternates, reaction time, spurious changes and the
//!   share of phases followed against the smoothing window, one line per detection
//!   threshold. Where alternation outruns the window, phases stop being followed and the
//!   union is declared once, rather than the changes oscillating.
//! - [`sensitivity`], the equivalent of Fig. 7 ("largely insensitive to the detection
//!   threshold"): accuracy and reaction time against the threshold, one line per window.

use std::fmt::Write as _;

use crate::offline::SweepRow;

/// One line of a chart; a point without a value (`None`) breaks it.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Its legend entry.
    pub name: String,
    /// Its points `(x, y)`, in drawing order.
    pub points: Vec<(f64, Option<f64>)>,
}

/// One chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    /// Its title.
    pub title: String,
    /// The x axis's label.
    pub x_label: String,
    /// The y axis's label.
    pub y_label: String,
    /// Its lines.
    pub series: Vec<Series>,
}

const PANEL_W: f64 = 520.0;
const PANEL_H: f64 = 330.0;
const TITLE_H: f64 = 40.0;
/// The plot area within a panel: left, top, width, height.
const AREA: (f64, f64, f64, f64) = (70.0, 30.0, 300.0, 230.0);
const COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A tick step of 1, 2 or 5 times a power of ten, giving about five ticks over `span`.
fn tick_step(span: f64) -> f64 {
    let rough = span / 5.0;
    let power = 10f64.powf(rough.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|&step| step >= rough)
        .unwrap_or(10.0 * power)
}

/// Decimals enough to print multiples of `step` exactly (at most 6).
fn decimals(step: f64) -> usize {
    (0..6)
        .find(|&d| {
            let scaled = step * 10f64.powi(d);
            (scaled - scaled.round()).abs() < 1e-6
        })
        .and_then(|d| usize::try_from(d).ok())
        .unwrap_or(6)
}

/// An axis: the range shown and its ticks.
struct Axis {
    min: f64,
    max: f64,
    ticks: Vec<f64>,
    decimals: usize,
}

impl Axis {
    /// Covers `values`; from 0 when `from_zero`, extended to whole ticks at the top then.
    fn new(values: impl Iterator<Item = f64>, from_zero: bool) -> Axis {
        let (mut min, mut max) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        if from_zero {
            min = min.min(0.0);
        }
        if !min.is_finite() || !max.is_finite() {
            (min, max) = (0.0, 1.0);
        }
        if max - min < 1e-12 {
            let pad = if max.abs() > 1e-12 {
                max.abs() / 2.0
            } else {
                1.0
            };
            (min, max) = if from_zero {
                (min, max + pad)
            } else {
                (min - pad, max + pad)
            };
        }
        let step = tick_step(max - min);
        if from_zero {
            max = (max / step).ceil() * step;
        }
        let first = (min / step).ceil();
        let ticks = (0..)
            .map(|i| (first + f64::from(i)) * step)
            .take_while(|&t| t <= max + step * 1e-9)
            .take(20)
            .collect();
        Axis {
            min,
            max,
            ticks,
            decimals: decimals(step),
        }
    }

    /// Where `v` falls on a length of `len` pixels from `start`, growing away from it
    /// (`flip`: growing towards it, as a y axis goes up).
    fn place(&self, v: f64, start: f64, len: f64, flip: bool) -> f64 {
        let f = (v - self.min) / (self.max - self.min);
        if flip {
            start + len * (1.0 - f)
        } else {
            start + len * f
        }
    }
}

fn panel(out: &mut String, p: &Panel, ox: f64, oy: f64) {
    let (left, top, w, h) = AREA;
    let (x0, y0) = (ox + left, oy + top);
    let xs = Axis::new(
        p.series.iter().flat_map(|s| s.points.iter().map(|q| q.0)),
        false,
    );
    let values = || {
        p.series
            .iter()
            .flat_map(|s| s.points.iter().filter_map(|q| q.1))
    };
    let ys = Axis::new(values(), true);
    let px = |x: f64| xs.place(x, x0, w, false);
    let py = |y: f64| ys.place(y, y0, h, true);
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="14" font-weight="bold">{}</text>"#,
        x0 + w / 2.0,
        oy + 18.0,
        escape(&p.title)
    );
    let _ = writeln!(
        out,
        r##"<rect x="{x0:.1}" y="{y0:.1}" width="{w:.1}" height="{h:.1}" fill="none" stroke="#444"/>"##
    );
    for &t in &xs.ticks {
        let x = px(t);
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{y0:.1}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" font-size="11">{:.*}</text>"##,
            y0 + h,
            y0 + h + 15.0,
            xs.decimals,
            t
        );
    }
    for &t in &ys.ticks {
        let y = py(t);
        let _ = writeln!(
            out,
            r##"<line x1="{x0:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end" font-size="11">{:.*}</text>"##,
            x0 + w,
            x0 - 6.0,
            y + 4.0,
            ys.decimals,
            t
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="12">{}</text>"#,
        x0 + w / 2.0,
        y0 + h + 35.0,
        escape(&p.x_label)
    );
    let (lx, ly) = (ox + 18.0, y0 + h / 2.0);
    let _ = writeln!(
        out,
        r#"<text x="{lx:.1}" y="{ly:.1}" text-anchor="middle" font-size="12" transform="rotate(-90 {lx:.1} {ly:.1})">{}</text>"#,
        escape(&p.y_label)
    );
    if values().next().is_none() {
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="12" fill="#888">no data</text>"##,
            x0 + w / 2.0,
            y0 + h / 2.0
        );
    }
    for (i, s) in p.series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        // Runs of consecutive points with a value, each one polyline.
        for run in s.points.split(|q| q.1.is_none()) {
            let coords: Vec<String> = run
                .iter()
                .filter_map(|&(x, y)| Some(format!("{:.1},{:.1}", px(x), py(y?))))
                .collect();
            if coords.len() > 1 {
                let _ = writeln!(
                    out,
                    r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
                    coords.join(" ")
                );
            }
        }
        for &(x, y) in &s.points {
            if let Some(y) = y {
                let _ = writeln!(
                    out,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{colour}"/>"#,
                    px(x),
                    py(y)
                );
            }
        }
        let (kx, ky) = (
            x0 + w + 15.0,
            y0 + 12.0 + 18.0 * f64::from(u8::try_from(i).unwrap_or(u8::MAX)),
        );
        let _ = writeln!(
            out,
            r#"<line x1="{kx:.1}" y1="{ky:.1}" x2="{:.1}" y2="{ky:.1}" stroke="{colour}" stroke-width="2"/><circle cx="{:.1}" cy="{ky:.1}" r="3.5" fill="{colour}"/><text x="{:.1}" y="{:.1}" font-size="11">{}</text>"#,
            kx + 22.0,
            kx + 11.0,
            kx + 28.0,
            ky + 4.0,
            escape(&s.name)
        );
    }
}

/// A figure: `title` over `panels` side by side, as a complete SVG document.
pub fn figure(title: &str, panels: &[Panel]) -> String {
    let count = f64::from(u16::try_from(panels.len().max(1)).unwrap_or(u16::MAX));
    let (width, height) = (PANEL_W * count, TITLE_H + PANEL_H);
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" \
         width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" \
         font-family=\"sans-serif\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="26" text-anchor="middle" font-size="16" font-weight="bold">{}</text>"#,
        width / 2.0,
        escape(title)
    );
    let mut ox = 0.0;
    for p in panels {
        panel(&mut out, p, ox, TITLE_H);
        ox += PANEL_W;
    }
    out.push_str("</svg>\n");
    out
}

/// The distinct values of `key` over `rows`, in first-seen order.
fn distinct(rows: &[SweepRow], key: fn(&SweepRow) -> f64) -> Vec<f64> {
    let mut out: Vec<f64> = Vec::new();
    for r in rows {
        if !out.contains(&key(r)) {
            out.push(key(r));
        }
    }
    out
}

/// One series per distinct `line` value (its legend entry from `name`), `y` against `x`.
fn series(
    rows: &[SweepRow],
    line: fn(&SweepRow) -> f64,
    name: fn(f64) -> String,
    x: fn(&SweepRow) -> f64,
    y: impl Fn(&SweepRow) -> Option<f64>,
) -> Vec<Series> {
    distinct(rows, line)
        .into_iter()
        .map(|v| Series {
            name: name(v),
            points: rows
                .iter()
                .filter(|r| line(r) == v)
                .map(|r| (x(r), y(r)))
                .collect(),
        })
        .collect()
}

fn by_threshold(v: f64) -> String {
    format!("threshold {v}")
}

fn by_window(v: f64) -> String {
    format!("window {v} s")
}

fn window(r: &SweepRow) -> f64 {
    r.window_s
}

fn threshold(r: &SweepRow) -> f64 {
    r.threshold
}

fn followed_pct(r: &SweepRow) -> Option<f64> {
    let phases = r.metrics.phases.len();
    (phases > 0).then(|| 100.0 * r.metrics.followed as f64 / phases as f64)
}

/// Seed 002's Fig. 6, from a sweep: reaction time, spurious changes and phases followed
/// against the smoothing window, one line per detection threshold.
pub fn damping(rows: &[SweepRow], update_hz: f64) -> String {
    let x_label = "smoothing window (s)".to_string();
    let panels = [
        Panel {
            title: "Reaction time (followed phases)".into(),
            x_label: x_label.clone(),
            y_label: "mean reaction time (s)".into(),
            series: series(rows, threshold, by_threshold, window, |r| {
                r.metrics.reaction_s
            }),
        },
        Panel {
            title: "Spurious changes".into(),
            x_label: x_label.clone(),
            y_label: "spurious changes".into(),
            series: series(rows, threshold, by_threshold, window, |r| {
                Some(r.metrics.spurious as f64)
            }),
        },
        Panel {
            title: "Phases followed".into(),
            x_label,
            y_label: "phases followed (%)".into(),
            series: series(rows, threshold, by_threshold, window, followed_pct),
        },
    ];
    figure(
        &format!("VTTIF damping against the smoothing window (updates at {update_hz} Hz)"),
        &panels,
    )
}

/// Seed 002's Fig. 7, from a sweep: accuracy and reaction time against the detection
/// threshold, one line per smoothing window.
pub fn sensitivity(rows: &[SweepRow], update_hz: f64) -> String {
    let x_label = "detection threshold".to_string();
    let panels = [
        Panel {
            title: "Accuracy".into(),
            x_label: x_label.clone(),
            y_label: "evaluations with the true topology (%)".into(),
            series: series(rows, window, by_window, threshold, |r| {
                r.metrics.accuracy.map(|a| 100.0 * a)
            }),
        },
        Panel {
            title: "Reaction time (followed phases)".into(),
            x_label,
            y_label: "mean reaction time (s)".into(),
            series: series(rows, window, by_window, threshold, |r| r.metrics.reaction_s),
        },
    ];
    figure(
        &format!("VTTIF sensitivity to the detection threshold (updates at {update_hz} Hz)"),
        &panels,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(tick_step(1.0), 0.2);
        assert_eq!(tick_step(7.0), 2.0);
        assert_eq!(tick_step(0.03), 0.01);
        assert_eq!(decimals(0.25), 2);
        assert_eq!(decimals(5.0), 0);
        let a = Axis::new([0.3, 1.7].into_iter(), true);
        assert_eq!((a.min, a.max), (0.0, 2.0));
        assert_eq!(a.ticks.len(), 5, "{:?}", a.ticks);
        let flat = Axis::new([2.0, 2.0].into_iter(), false);
        assert!(flat.min < 2.0 && flat.max > 2.0);
        let empty = Axis::new(std::iter::empty(), true);
        assert_eq!((empty.min, empty.max), (0.0, 1.0));
    }

    #[test]
    fn a_figure_has_its_panels_lines_and_legend() {
        let p = Panel {
            title: "T <1>".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            series: vec![
                Series {
                    name: "a & b".into(),
                    points: vec![
                        (0.0, Some(1.0)),
                        (1.0, Some(2.0)),
                        (2.0, None),
                        (3.0, Some(1.0)),
                    ],
                },
                Series {
                    name: "c".into(),
                    points: vec![(0.0, None)],
                },
            ],
        };
        let svg = figure("fig", &[p.clone(), p]);
        assert!(svg.starts_with("<?xml") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains(r#"width="1040""#));
        // The gap splits series a into one line of two points and a lone marker.
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 2 * (3 + 2));
        assert!(svg.contains("a &amp; b") && svg.contains("T &lt;1&gt;"));
        assert!(!svg.contains("no data"));
        let empty = Panel {
            title: String::new(),
            x_label: String::new(),
            y_label: String::new(),
            series: vec![],
        };
        assert!(figure("none", &[empty]).contains("no data"));
    }
}
