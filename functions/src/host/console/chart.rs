//! The console's charts, drawn on the server as SVG with plotters (its SVG backend only:
//! no fonts to load, nothing for the browser to run). Why plotters: a well-kept Rust
//! charting library whose SVG needs no script, so pages read with JavaScript off; its
//! text is escaped, so category names from uploads cannot inject markup.
//!
//! Every bar is one `<rect>` filled with [`BAR`] and every chart says what it shows in
//! words (`role="img"` and a label), with its numbers in a table beside it on the page:
//! colour is never the only signal.

use plotters::coord::Shift;
use plotters::prelude::*;

/// The bars' fill (`#0B6BCB` in the SVG): the console's accent colour.
pub const BAR: RGBColor = RGBColor(0x0B, 0x6B, 0xCB);
/// A threshold's line.
const LIMIT: RGBColor = RGBColor(0xB3, 0x26, 0x1E);
const WIDTH: u32 = 480;
const HEIGHT: u32 = 220;

/// Draws into an SVG of `size` and returns it, labelled for assistive technology.
fn svg(
    size: (u32, u32),
    label: &str,
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<(), String>,
) -> String {
    let mut out = String::new();
    {
        let area = SVGBackend::with_string(&mut out, size).into_drawing_area();
        let drawn = area
            .fill(&WHITE)
            .map_err(|e| e.to_string())
            .and_then(|_| draw(&area))
            .and_then(|_| area.present().map_err(|e| e.to_string()));
        if let Err(e) = drawn {
            // A chart that cannot be drawn leaves its table to say the numbers.
            tracing::warn!(error = %e, chart = label, "a chart could not be drawn");
            return String::new();
        }
    }
    let label = escape(label);
    out.replacen(
        "<svg ",
        &format!("<svg role=\"img\" aria-label=\"{label}\" "),
        1,
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A short form of a number for an axis.
fn short(x: f64) -> String {
    let a = x.abs();
    if a >= 1e6 {
        format!("{:.1}M", x / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", x / 1e3)
    } else if a >= 100.0 || x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

/// A histogram: one bar per bin, `[lo, hi)` wide and `count` high.
pub fn histogram(label: &str, bins: &[(f64, f64, u64)]) -> String {
    let (Some(first), Some(last)) = (bins.first(), bins.last()) else {
        return String::new();
    };
    let (lo, hi) = (first.0, last.1.max(first.0 + f64::EPSILON));
    let top = bins.iter().map(|b| b.2).max().unwrap_or(1).max(1) as f64;
    svg((WIDTH, HEIGHT), label, |area| {
        let mut chart = ChartBuilder::on(area)
            .margin(8)
            .x_label_area_size(24)
            .y_label_area_size(44)
            .build_cartesian_2d(lo..hi, 0f64..top * 1.05)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(6)
            .y_labels(4)
            .x_label_formatter(&|x| short(*x))
            .y_label_formatter(&|y| short(*y))
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(
                bins.iter()
                    .map(|&(l, h, c)| Rectangle::new([(l, 0.0), (h, c as f64)], BAR.filled())),
            )
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

/// Horizontal bars, one per `(name, share)`, shares between 0 and 1.
pub fn shares(label: &str, rows: &[(String, f64)]) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let n = rows.len();
    let height = 24 + 22 * n as u32;
    let top = rows.iter().map(|r| r.1).fold(0.0, f64::max).max(0.01);
    svg((WIDTH, height), label, |area| {
        let mut chart = ChartBuilder::on(area)
            .margin(6)
            .x_label_area_size(20)
            .y_label_area_size(150)
            .build_cartesian_2d(0f64..top * 1.05, (0..n).into_segmented())
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_labels(5)
            .y_labels(n)
            .x_label_formatter(&|x| format!("{:.0}%", x * 100.0))
            .y_label_formatter(&|y| match y {
                SegmentValue::CenterOf(i) => (n - 1)
                    .checked_sub(*i)
                    .and_then(|i| rows.get(i))
                    .map(|r| truncate(&r.0, 22))
                    .unwrap_or_default(),
                _ => String::new(),
            })
            .draw()
            .map_err(|e| e.to_string())?;
        // The first row at the top.
        chart
            .draw_series(rows.iter().enumerate().map(|(i, r)| {
                let at = n - 1 - i;
                Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(at)),
                        (r.1, SegmentValue::Exact(at + 1)),
                    ],
                    BAR.filled(),
                )
            }))
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

fn truncate(s: &str, chars: usize) -> String {
    if s.chars().count() <= chars {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(chars - 1).collect::<String>())
    }
}

/// A statistic over time (Unix seconds, value) against its threshold.
pub fn over_time(label: &str, points: &[(i64, f64)], threshold: Option<f64>) -> String {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return String::new();
    };
    let (t0, t1) = (first.0 as f64, (last.0 as f64).max(first.0 as f64 + 1.0));
    let top = points
        .iter()
        .map(|p| p.1)
        .chain(threshold)
        .fold(0.0, f64::max)
        .max(f64::EPSILON);
    svg((WIDTH, HEIGHT), label, |area| {
        let mut chart = ChartBuilder::on(area)
            .margin(8)
            .x_label_area_size(24)
            .y_label_area_size(44)
            .build_cartesian_2d(t0..t1, 0f64..top * 1.1)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_labels(4)
            .y_labels(4)
            .x_label_formatter(&|t| {
                chrono::DateTime::from_timestamp(*t as i64, 0)
                    .map(|t| t.format("%m-%d %H:%M").to_string())
                    .unwrap_or_default()
            })
            .y_label_formatter(&|y| short(*y))
            .draw()
            .map_err(|e| e.to_string())?;
        if let Some(limit) = threshold {
            chart
                .draw_series(LineSeries::new(
                    [(t0, limit), (t1, limit)],
                    LIMIT.stroke_width(1),
                ))
                .map_err(|e| e.to_string())?;
        }
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|&(t, v)| (t as f64, v)),
                BAR.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(
                points
                    .iter()
                    .map(|&(t, v)| Circle::new((t as f64, v), 3, BAR.filled())),
            )
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

/// A graph drawn left to right: each column a stage, each node a labelled box, each
/// edge an arrow from a node to one in a later column.
pub struct Graph {
    /// Columns of node labels (two short lines each).
    pub columns: Vec<Vec<[String; 2]>>,
    /// ((column, row), (column, row)).
    pub edges: Vec<((usize, usize), (usize, usize))>,
}

pub fn graph(label: &str, g: &Graph) -> String {
    const BOX_W: i32 = 150;
    const BOX_H: i32 = 44;
    const GAP_X: i32 = 40;
    const GAP_Y: i32 = 16;
    let rows = g.columns.iter().map(Vec::len).max().unwrap_or(0).max(1) as i32;
    let width = (g.columns.len() as i32 * (BOX_W + GAP_X)).max(BOX_W) as u32;
    let height = (rows * (BOX_H + GAP_Y) + GAP_Y) as u32;
    let at = |(c, r): (usize, usize)| {
        (
            c as i32 * (BOX_W + GAP_X) + 4,
            GAP_Y + r as i32 * (BOX_H + GAP_Y),
        )
    };
    svg((width, height), label, |area| {
        for &(from, to) in &g.edges {
            let (fx, fy) = at(from);
            let (tx, ty) = at(to);
            let (a, b) = ((fx + BOX_W, fy + BOX_H / 2), (tx, ty + BOX_H / 2));
            area.draw(&PathElement::new(vec![a, b], BLACK.stroke_width(1)))
                .map_err(|e| e.to_string())?;
            area.draw(&Polygon::new(
                vec![b, (b.0 - 8, b.1 - 4), (b.0 - 8, b.1 + 4)],
                BLACK.filled(),
            ))
            .map_err(|e| e.to_string())?;
        }
        let style = TextStyle::from(("sans-serif", 12).into_font()).color(&BLACK);
        for (c, column) in g.columns.iter().enumerate() {
            for (r, lines) in column.iter().enumerate() {
                let (x, y) = at((c, r));
                area.draw(&Rectangle::new(
                    [(x, y), (x + BOX_W, y + BOX_H)],
                    RGBColor(0xE8, 0xF0, 0xFA).filled(),
                ))
                .map_err(|e| e.to_string())?;
                area.draw(&Rectangle::new(
                    [(x, y), (x + BOX_W, y + BOX_H)],
                    BAR.stroke_width(1),
                ))
                .map_err(|e| e.to_string())?;
                for (i, line) in lines.iter().enumerate() {
                    area.draw(&Text::new(
                        truncate(line, 22),
                        (x + 6, y + 6 + 16 * i as i32),
                        style.clone(),
                    ))
                    .map_err(|e| e.to_string())?;
                }
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bars(svg: &str) -> usize {
        svg.matches("fill=\"#0B6BCB\"").count()
    }

    #[test]
    fn a_histogram_has_one_bar_per_bin_even_an_empty_one() {
        let bins = [(0.0, 1.0, 3), (1.0, 2.0, 0), (2.0, 3.0, 7)];
        let svg = histogram("age", &bins);
        assert!(
            svg.starts_with("<svg role=\"img\" aria-label=\"age\" "),
            "{svg}"
        );
        assert_eq!(bars(&svg), 3);
    }

    #[test]
    fn category_names_cannot_inject_markup() {
        let rows = [
            ("<script>x</script>".to_owned(), 0.5),
            ("b".to_owned(), 0.25),
        ];
        let svg = shares("a \"quoted\" <label>", &rows);
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("aria-label=\"a &quot;quoted&quot; &lt;label&gt;\""));
        assert_eq!(bars(&svg), 2);
    }

    #[test]
    fn nothing_to_draw_is_no_chart() {
        assert_eq!(histogram("x", &[]), "");
        assert_eq!(shares("x", &[]), "");
        assert_eq!(over_time("x", &[], Some(0.1)), "");
    }
}
