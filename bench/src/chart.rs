//! `target/bench/report.png` (plotters, bitmap backend): median req/s with
//! min–max whiskers, the gateway's CPU µs per request, and the ratios against
//! their goals. Text needs a TrueType font: DejaVu Sans from Debian's
//! `fonts-dejavu-core` (scripts/bench.sh installs it when missing).

use std::path::Path;

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::configs::RATIOS;
use crate::report::{ratio, Report};

const FONT_PATHS: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// Register a sans-serif font once; `Err` names what is missing.
fn load_font() -> Result<(), String> {
    let path = FONT_PATHS
        .iter()
        .find(|p| Path::new(p).exists())
        .ok_or_else(|| {
            format!("no TrueType font at {FONT_PATHS:?}: apt-get install fonts-dejavu-core")
        })?;
    let bytes = std::fs::read(path).map_err(|e| format!("read {path}: {e}"))?;
    // plotters keeps fonts for the process lifetime; one small leak.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| format!("{path} is not a usable font"))
}

type Bars = Vec<(String, Option<(f64, f64, f64)>)>;

pub fn draw(report: &Report, path: &Path) -> Result<(), String> {
    load_font()?;
    let root = BitMapBackend::new(path, (2100, 620)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let title = format!(
        "make bench — {} — {} cores, {} — Envoy {} and Kong's engine (K)",
        report.machine.date,
        report.machine.cores,
        report.machine.cpu_model,
        report.machine.envoy_version
    );
    let root = root.titled(&title, ("sans-serif", 20)).map_err(err)?;
    let panels = root.split_evenly((1, 3));
    let rps: Bars = report
        .rows
        .iter()
        .map(|r| {
            (
                r.id.to_string(),
                r.stat(|s| s.rps)
                    .map(|(a, b, c)| (a / 1e3, b / 1e3, c / 1e3)),
            )
        })
        .collect();
    let cpu: Bars = report
        .rows
        .iter()
        .map(|r| (r.id.to_string(), r.stat(|s| s.cpu_us_per_req)))
        .collect();
    let ratios: Bars = RATIOS
        .iter()
        .map(|(n, d, _)| {
            let v = ratio(&report.rows, n, d).map(|(rps, _, _)| (rps, rps, rps));
            (format!("{n}/{d}"), v)
        })
        .collect();
    let goals: Vec<f64> = RATIOS.iter().map(|(_, _, g)| *g).collect();
    if let [a, b, c] = panels.as_slice() {
        bars(
            a,
            "median req/s (thousands), min–max",
            &rps,
            &[],
            RGBColor(66, 133, 244),
        )?;
        bars(
            b,
            "gateway CPU µs per request (median)",
            &cpu,
            &[],
            RGBColor(219, 68, 55),
        )?;
        bars(
            c,
            "req/s ratios (red: goal)",
            &ratios,
            &goals,
            RGBColor(15, 157, 88),
        )?;
    }
    root.present().map_err(err)
}

fn err(e: impl std::fmt::Display) -> String {
    format!("chart: {e}")
}

/// One panel: a bar per entry at its median, a whisker from min to max,
/// the value on top; "n/a" where there is none; a red tick per goal > 0.
fn bars(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    caption: &str,
    data: &Bars,
    goals: &[f64],
    color: RGBColor,
) -> Result<(), String> {
    let top = data
        .iter()
        .filter_map(|(_, v)| v.map(|(_, _, hi)| hi))
        .chain(goals.iter().copied())
        .fold(0.0_f64, f64::max)
        .max(1e-9)
        * 1.2;
    let labels: Vec<String> = data.iter().map(|(l, _)| l.clone()).collect();
    let n = data.len() as i32;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 17))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d((0..(n - 1).max(0)).into_segmented(), 0.0..top)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(data.len())
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                labels.get(*i as usize).cloned().unwrap_or_default()
            }
            SegmentValue::Last => String::new(),
        })
        // Many bars (the ratios): a smaller label fits under each.
        .label_style(("sans-serif", if data.len() > 12 { 11 } else { 14 }))
        .draw()
        .map_err(err)?;
    let font = ("sans-serif", 13).into_font();
    for (i, (_, v)) in data.iter().enumerate() {
        let i = i as i32;
        match v {
            Some((lo, med, hi)) => {
                let mut bar = Rectangle::new(
                    [
                        (SegmentValue::Exact(i), 0.0),
                        (SegmentValue::Exact(i + 1), *med),
                    ],
                    color.filled(),
                );
                bar.set_margin(0, 0, 12, 12);
                chart.draw_series(std::iter::once(bar)).map_err(err)?;
                if hi > lo {
                    let whisker = PathElement::new(
                        vec![
                            (SegmentValue::CenterOf(i), *lo),
                            (SegmentValue::CenterOf(i), *hi),
                        ],
                        BLACK.stroke_width(2),
                    );
                    chart.draw_series(std::iter::once(whisker)).map_err(err)?;
                }
                let text = if *med >= 100.0 {
                    format!("{med:.0}")
                } else {
                    format!("{med:.2}")
                };
                let label = Text::new(
                    text,
                    (SegmentValue::CenterOf(i), hi.max(*med) + top * 0.02),
                    font.clone(),
                );
                chart.draw_series(std::iter::once(label)).map_err(err)?;
            }
            None => {
                let label = Text::new("n/a", (SegmentValue::CenterOf(i), top * 0.03), font.clone());
                chart.draw_series(std::iter::once(label)).map_err(err)?;
            }
        }
        if let Some(goal) = goals.get(i as usize).filter(|g| **g > 0.0) {
            let tick = PathElement::new(
                vec![
                    (SegmentValue::Exact(i), *goal),
                    (SegmentValue::Exact(i + 1), *goal),
                ],
                RED.stroke_width(3),
            );
            chart.draw_series(std::iter::once(tick)).map_err(err)?;
        }
    }
    Ok(())
}
