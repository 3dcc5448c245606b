//! `target/soak/memory.svg`: memory over time, written by hand (a few
//! lines of SVG; the bench's chart is a bitmap). Panels share the time
//! axis; each draws its series as polylines on its own scale, the
//! warm-up shaded grey and cost-control's outages red.

use std::fmt::Write as _;

pub struct Series<'a> {
    pub label: &'a str,
    pub color: &'a str,
    /// (seconds, value in the panel's unit)
    pub points: Vec<(f64, f64)>,
}

pub struct Panel<'a> {
    pub title: &'a str,
    pub unit: &'a str,
    pub series: Vec<Series<'a>>,
}

pub struct Chart<'a> {
    pub title: String,
    pub panels: Vec<Panel<'a>>,
    /// Seconds of the whole run.
    pub total_s: f64,
    /// The warm-up ends here.
    pub warmup_s: f64,
    /// cost-control down: (from, to).
    pub outages: Vec<(f64, f64)>,
}

const W: f64 = 960.0;
const PANEL_H: f64 = 230.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 50.0;
const GAP: f64 = 60.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A round step for about `n` ticks over `span`.
fn step(span: f64, n: f64) -> f64 {
    if span <= 0.0 {
        return 1.0;
    }
    let raw = span / n;
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let nice = if f < 1.5 {
        1.0
    } else if f < 3.5 {
        2.0
    } else if f < 7.5 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

fn fmt(v: f64) -> String {
    if v.abs() >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

pub fn render(c: &Chart) -> String {
    let h = TOP + c.panels.len() as f64 * (PANEL_H + GAP) + 10.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{x}" y="24" font-size="16" text-anchor="middle">{title}</text>
"#,
        x = W / 2.0,
        title = esc(&c.title)
    );
    let pw = W - LEFT - RIGHT;
    let total = c.total_s.max(1.0);
    let x_of = |t: f64| LEFT + pw * (t / total).clamp(0.0, 1.0);
    for (i, p) in c.panels.iter().enumerate() {
        let top = TOP + i as f64 * (PANEL_H + GAP);
        let bottom = top + PANEL_H;
        let values = p.series.iter().flat_map(|s| s.points.iter().map(|q| q.1));
        let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
        let (lo, hi) = if lo > hi {
            (0.0, 1.0)
        } else {
            // From zero: a flat line must look flat, not magnified noise.
            (0.0, if hi > 0.0 { hi * 1.15 } else { 1.0 })
        };
        let y_of = |v: f64| bottom - PANEL_H * ((v - lo) / (hi - lo)).clamp(0.0, 1.0);
        let _ = writeln!(
            s,
            r##"<text x="{LEFT}" y="{y}" font-size="14">{t}</text>"##,
            y = top - 8.0,
            t = esc(p.title)
        );
        // Warm-up and outages.
        let _ = writeln!(
            s,
            r##"<rect x="{LEFT}" y="{top}" width="{w:.1}" height="{PANEL_H}" fill="#eeeeee"/>"##,
            w = x_of(c.warmup_s) - LEFT
        );
        for (a, b) in &c.outages {
            let _ = writeln!(
                s,
                r##"<rect x="{x:.1}" y="{top}" width="{w:.1}" height="{PANEL_H}" fill="#fbe3e3"/>"##,
                x = x_of(*a),
                w = (x_of(*b) - x_of(*a)).max(1.0)
            );
        }
        // Axes and grid.
        let ys = step(hi - lo, 5.0);
        let mut v = (lo / ys).ceil() * ys;
        while v <= hi + 1e-9 {
            let y = y_of(v);
            let _ = writeln!(
                s,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{x2}" y2="{y:.1}" stroke="#dddddd"/><text x="{tx}" y="{ty:.1}" text-anchor="end">{l}</text>"##,
                x2 = W - RIGHT,
                tx = LEFT - 6.0,
                ty = y + 4.0,
                l = fmt(v)
            );
            v += ys;
        }
        let xs = step(total / 60.0, 10.0);
        let mut m = 0.0;
        while m * 60.0 <= total + 1e-9 {
            let x = x_of(m * 60.0);
            let _ = writeln!(
                s,
                r##"<line x1="{x:.1}" y1="{bottom}" x2="{x:.1}" y2="{b2}" stroke="#444444"/><text x="{x:.1}" y="{ty}" text-anchor="middle">{l}</text>"##,
                b2 = bottom + 4.0,
                ty = bottom + 17.0,
                l = fmt(m)
            );
            m += xs;
        }
        let _ = writeln!(
            s,
            r##"<rect x="{LEFT}" y="{top}" width="{pw}" height="{PANEL_H}" fill="none" stroke="#444444"/><text x="{tx}" y="{ty}" text-anchor="middle">minutes</text><text x="14" y="{my}" transform="rotate(-90 14 {my})" text-anchor="middle">{u}</text>"##,
            tx = LEFT + pw / 2.0,
            ty = bottom + 32.0,
            my = top + PANEL_H / 2.0,
            u = esc(p.unit)
        );
        // Series and legend.
        for (j, se) in p.series.iter().enumerate() {
            let pts: Vec<String> = se
                .points
                .iter()
                .map(|(t, v)| format!("{:.1},{:.1}", x_of(*t), y_of(*v)))
                .collect();
            let _ = writeln!(
                s,
                r##"<polyline fill="none" stroke="{c}" stroke-width="1.6" points="{p}"/>"##,
                c = se.color,
                p = pts.join(" ")
            );
            let lx = LEFT + 10.0 + j as f64 * 260.0;
            let ly = top + 16.0;
            let _ = writeln!(
                s,
                r##"<line x1="{lx}" y1="{y:.1}" x2="{x2}" y2="{y:.1}" stroke="{c}" stroke-width="3"/><text x="{tx}" y="{ly}">{l}</text>"##,
                y = ly - 4.0,
                x2 = lx + 18.0,
                c = se.color,
                tx = lx + 24.0,
                l = esc(se.label)
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_panels_bands_and_lines() {
        let c = Chart {
            title: "soak <test>".into(),
            panels: vec![Panel {
                title: "Envoy",
                unit: "MiB",
                series: vec![Series {
                    label: "allocated",
                    color: "#1f77b4",
                    points: vec![(0.0, 10.0), (60.0, 11.0), (120.0, 10.5)],
                }],
            }],
            total_s: 120.0,
            warmup_s: 24.0,
            outages: vec![(36.0, 41.0)],
        };
        let svg = render(&c);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("soak &lt;test&gt;"));
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert!(svg.contains("#fbe3e3"));
        assert_eq!(step(10.0, 5.0), 2.0);
    }
}
