//! Small self-contained SVG charts (training curves, method comparisons): no plotting
//! dependency, readable in any browser.

use std::fmt::Write;

const W: f64 = 720.0;
const H: f64 = 400.0;
const L: f64 = 60.0;
const R: f64 = 60.0;
const T: f64 = 40.0;
const B: f64 = 50.0;
const COLORS: [&str; 8] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
];

/// One line of a line chart.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// Drawn against the right-hand axis.
    pub right_axis: bool,
}

impl Series {
    pub fn new(name: &str, points: Vec<(f64, f64)>, right_axis: bool) -> Self {
        Self {
            name: name.to_string(),
            points,
            right_axis,
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn range(vals: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in vals.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        return (lo - 0.5, hi + 0.5);
    }
    let pad = (hi - lo) * 0.05;
    (lo - pad, hi + pad)
}

fn header(title: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n\
         <rect x=\"{L}\" y=\"{T}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#444\"/>\n",
        W / 2.0,
        escape(title),
        W - L - R,
        H - T - B
    )
}

/// A line chart over a shared x axis; series with `right_axis` use their own y scale.
pub fn line_chart(title: &str, x_label: &str, series: &[Series]) -> String {
    let mut s = header(title);
    let (x0, x1) = range(series.iter().flat_map(|s| s.points.iter().map(|p| p.0)));
    let left = range(
        series
            .iter()
            .filter(|s| !s.right_axis)
            .flat_map(|s| s.points.iter().map(|p| p.1)),
    );
    let right = range(
        series
            .iter()
            .filter(|s| s.right_axis)
            .flat_map(|s| s.points.iter().map(|p| p.1)),
    );
    let px = |x: f64| L + (x - x0) / (x1 - x0) * (W - L - R);
    let py = |y: f64, (a, b): (f64, f64)| H - B - (y - a) / (b - a) * (H - T - B);
    for i in 0..=4 {
        let f = i as f64 / 4.0;
        let (xv, lv, rv) = (
            x0 + f * (x1 - x0),
            left.0 + f * (left.1 - left.0),
            right.0 + f * (right.1 - right.0),
        );
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{xv:.2}</text>",
            px(xv),
            H - B + 16.0
        );
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{lv:.3}</text>",
            L - 4.0,
            py(lv, left) + 4.0
        );
        if series.iter().any(|s| s.right_axis) {
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\">{rv:.2}</text>",
                W - R + 4.0,
                py(rv, right) + 4.0
            );
        }
    }
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
        W / 2.0,
        H - 12.0,
        escape(x_label)
    );
    for (i, se) in series.iter().enumerate() {
        let c = COLORS[i % COLORS.len()];
        let axis = if se.right_axis { right } else { left };
        let pts: Vec<String> = se
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y, axis)))
            .collect();
        if pts.len() > 1 {
            let _ = writeln!(
                s,
                "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"2\" points=\"{}\"/>",
                pts.join(" ")
            );
        }
        for p in se.points.iter().filter(|_| se.points.len() < 40) {
            let _ = writeln!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{c}\"/>",
                px(p.0),
                py(p.1, axis)
            );
        }
        let ly = T + 16.0 + 16.0 * i as f64;
        let _ = writeln!(s, "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"12\" height=\"3\" fill=\"{c}\"/><text x=\"{:.1}\" y=\"{:.1}\">{}{}</text>",
            L + 10.0, ly - 4.0, L + 26.0, ly, escape(&se.name), if se.right_axis { " (right axis)" } else { "" });
    }
    s.push_str("</svg>\n");
    s
}

/// Horizontal bars, one per label, with the value printed at the bar's end.
pub fn bar_chart(title: &str, value_label: &str, bars: &[(String, f64)]) -> String {
    let mut s = header(title);
    let (lo, hi) = range(bars.iter().map(|b| b.1).chain([0.0]));
    let lo = lo.min(0.0);
    let n = bars.len().max(1) as f64;
    let band = (H - T - B) / n;
    let px = |v: f64| L + 60.0 + (v - lo) / (hi - lo) * (W - L - R - 80.0);
    for (i, (label, v)) in bars.iter().enumerate() {
        let y = T + band * i as f64 + band * 0.15;
        let c = COLORS[i % COLORS.len()];
        let _ = writeln!(
            s,
            "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{c}\"/>",
            px(lo),
            (px(*v) - px(lo)).max(1.0),
            band * 0.7
        );
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            px(lo) - 6.0,
            y + band * 0.45,
            escape(label)
        );
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\">{v:.2}</text>",
            px(*v) + 4.0,
            y + band * 0.45
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
        W / 2.0,
        H - 12.0,
        escape(value_label)
    );
    s.push_str("</svg>\n");
    s
}

/// Decades (powers of ten) from below the smallest positive value to above the largest.
fn decades(vals: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = range(vals.filter(|v| *v > 0.0).map(f64::log10));
    (lo.floor(), hi.ceil().max(lo.floor() + 1.0))
}

/// A line chart with logarithmic x and y axes (gridlines at each power of ten), for quantities
/// that scale as a power of each other; points that are not positive are left out.
pub fn log_log_chart(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> String {
    let mut s = header(title);
    let all = || series.iter().flat_map(|s| s.points.iter());
    let (x0, x1) = decades(all().map(|p| p.0));
    let (y0, y1) = decades(all().map(|p| p.1));
    let px = |x: f64| L + (x.log10() - x0) / (x1 - x0) * (W - L - R);
    let py = |y: f64| H - B - (y.log10() - y0) / (y1 - y0) * (H - T - B);
    let tick = |e: f64| match e {
        e if (0.0..=4.0).contains(&e) => format!("{}", 10f64.powf(e)),
        e => format!("1e{e}"),
    };
    for e in x0 as i32..=x1 as i32 {
        let x = px(10f64.powi(e));
        let _ = writeln!(s, "<line x1=\"{x:.1}\" y1=\"{T}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            H - B, H - B + 16.0, tick(e as f64));
    }
    for e in y0 as i32..=y1 as i32 {
        let y = py(10f64.powi(e));
        let _ = writeln!(s, "<line x1=\"{L}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            W - R, L - 4.0, y + 4.0, tick(e as f64));
    }
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n<text x=\"16\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {:.1})\">{}</text>",
        W / 2.0,
        H - 12.0,
        escape(x_label),
        H / 2.0,
        H / 2.0,
        escape(y_label)
    );
    for (i, se) in series.iter().enumerate() {
        let c = COLORS[i % COLORS.len()];
        let pts: Vec<(f64, f64)> = se
            .points
            .iter()
            .filter(|p| p.0 > 0.0 && p.1 > 0.0)
            .map(|&(x, y)| (px(x), py(y)))
            .collect();
        let line: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"2\" points=\"{}\"/>",
            line.join(" ")
        );
        for (x, y) in &pts {
            let _ = writeln!(
                s,
                "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\" fill=\"{c}\"/>"
            );
        }
        let ly = T + 16.0 + 16.0 * i as f64;
        let _ = writeln!(s, "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"12\" height=\"3\" fill=\"{c}\"/><text x=\"{:.1}\" y=\"{ly:.1}\">{}</text>",
            L + 10.0, ly - 4.0, L + 26.0, escape(&se.name));
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_well_formed_svg() {
        let svg = line_chart(
            "loss <a>",
            "epoch",
            &[
                Series::new("l", vec![(0.0, 1.0), (1.0, 0.5)], false),
                Series::new("acc", vec![(1.0, 80.0)], true),
            ],
        );
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("loss &lt;a&gt;") && svg.contains("polyline"));
        let bars = bar_chart("acc", "%", &[("lora".into(), 88.0), ("full".into(), 90.0)]);
        assert_eq!(bars.matches("<rect").count(), 4);
        let log = log_log_chart(
            "scaling",
            "parameters (M)",
            "seconds",
            &[Series::new(
                "step",
                vec![(135.0, 0.5), (1700.0, 8.0)],
                false,
            )],
        );
        // x decades 100..10000, y decades 0.1..10: three gridlines each.
        assert_eq!(log.matches("<line").count(), 6);
        assert!(log.contains(">1000<") && log.contains(">1e-1<") && log.contains("polyline"));
    }
}
