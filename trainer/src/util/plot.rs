//! PNG plots: a training run's learning curves, and intervals of scores between runs.
//!
//! Text needs a TrueType font: DejaVu Sans or Liberation Sans from the system (Debian's
//! `fonts-dejavu-core`, which Chromium pulls in; `scripts/test` installs it). Without one the plot is
//! skipped with a warning rather than failing a training run.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::Result;
use plotters::prelude::*;

use milan_model::history::{Epoch, History};

const FONT_FILES: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
];

/// Registers the first font found as "sans-serif"; false when there is none.
pub fn font_available() -> bool {
    static FOUND: OnceLock<bool> = OnceLock::new();
    *FOUND.get_or_init(|| {
        let Some(bytes) = FONT_FILES.iter().find_map(|f| std::fs::read(f).ok()) else {
            return false;
        };
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
    })
}

/// The axis range of `values`: their span with 8% of it on each side (at least 1e-3), or
/// 0..1 around nothing.
fn padded_range(values: impl IntoIterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .into_iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let pad = ((hi - lo) * 0.08).max(1e-3);
    (lo - pad, hi + pad)
}

/// Whether text can be drawn; if not, says that `path` is skipped and why.
fn font_or_warn(path: &Path) -> bool {
    let found = font_available();
    if !found {
        tracing::warn!(
            "no TrueType font found ({}): {} not drawn; install fonts-dejavu-core",
            FONT_FILES.join(", "),
            path.display()
        );
    }
    found
}

/// A named, coloured line of (epoch, value) points.
type Series<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

fn err(e: impl std::fmt::Debug) -> anyhow::Error {
    anyhow::anyhow!("drawing the plot: {e:?}")
}

/// One panel: `series` (name, colour, points) against x (the epoch, or the annotated neurons), the
/// best point marked.
fn panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series<'_>],
    best: Option<(f64, f64)>,
) -> Result<()> {
    let points: Vec<&(f64, f64)> = series.iter().flat_map(|s| s.2.iter()).collect();
    let x_max = points.iter().map(|p| p.0).fold(1.0, f64::max);
    let (y_low, y_high) = padded_range(points.iter().map(|p| p.1));
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..x_max + 0.5, y_low..y_high)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(err)?;
    for (name, colour, pts) in series {
        let colour = *colour;
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), colour.stroke_width(2)))
            .map_err(err)?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
            });
    }
    if let Some(b) = best {
        chart
            .draw_series(std::iter::once(Circle::new(b, 6, BLACK.stroke_width(2))))
            .map_err(err)?
            .label("best (weights kept)")
            .legend(|(x, y)| Circle::new((x + 9, y), 5, BLACK.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    Ok(())
}

/// Each system's (BLEU, BERTScore F1).
pub type SystemScores = std::collections::BTreeMap<String, (f64, f64)>;

type OwnedSeries = (String, RGBColor, Vec<(f64, f64)>);

/// Two panels, BLEU and BERTScore F1 of each system on the held-out neurons, against the number of
/// annotated neurons each round trained on (`trainer follow`).
pub fn rounds_curve(path: &Path, rounds: &[(f64, SystemScores)]) -> Result<()> {
    if !font_or_warn(path) {
        return Ok(());
    }
    const COLOURS: [RGBColor; 4] = [RED, BLUE, GREEN, MAGENTA];
    let systems: Vec<String> = rounds
        .first()
        .map(|r| r.1.keys().cloned().collect())
        .unwrap_or_default();
    let series = |pick: fn(&(f64, f64)) -> f64| -> Vec<OwnedSeries> {
        systems
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let pts = rounds
                    .iter()
                    .filter_map(|(x, r)| r.get(s).map(|v| (*x, pick(v))))
                    .collect();
                (s.clone(), COLOURS[i % COLOURS.len()], pts)
            })
            .collect()
    };
    let out = milan_shared::atomic::Pending::new(path)?;
    let tmp = out.path().to_owned();
    {
        let root = BitMapBackend::new(&tmp, (1100, 450)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let areas = root.split_evenly((1, 2));
        for (area, (title, label, pick)) in areas.iter().zip([
            (
                "BLEU on held-out neurons",
                "BLEU",
                (|v: &(f64, f64)| v.0) as fn(&(f64, f64)) -> f64,
            ),
            (
                "BERTScore F1 on held-out neurons",
                "BERTScore F1",
                |v: &(f64, f64)| v.1,
            ),
        ]) {
            let owned = series(pick);
            let borrowed: Vec<Series<'_>> = owned
                .iter()
                .map(|(n, c, p)| (n.as_str(), *c, p.clone()))
                .collect();
            panel(area, title, "annotated neurons", label, &borrowed, None)?;
        }
        root.present().map_err(err)?;
    }
    out.commit()
}

fn points(epochs: &[Epoch], f: impl Fn(&Epoch) -> f64) -> Vec<(f64, f64)> {
    epochs.iter().map(|e| (e.epoch as f64, f(e))).collect()
}

/// Three panels: the captioner's training and validation losses, its validation BLEU, and the
/// language model's training and validation losses.
pub fn learning_curve(path: &Path, history: &History) -> Result<()> {
    if !font_or_warn(path) {
        return Ok(());
    }
    let out = milan_shared::atomic::Pending::new(path)?;
    let tmp = out.path().to_owned();
    {
        let root = BitMapBackend::new(&tmp, (1500, 450)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let areas = root.split_evenly((1, 3));
        let cap = &history.captioner;
        let lm = &history.language_model;
        let best_cap = history.best_captioner();
        panel(
            &areas[0],
            "captioner: loss",
            "epoch",
            "NLL + attention penalty",
            &[
                ("train", BLUE, points(cap, |e| e.train_loss)),
                ("validation", RED, points(cap, |e| e.validation_loss)),
            ],
            best_cap.map(|e| (e.epoch as f64, e.validation_loss)),
        )?;
        panel(
            &areas[1],
            "captioner: validation BLEU (greedy)",
            "epoch",
            "BLEU",
            &[("validation", RED, points(cap, |e| e.validation))],
            best_cap.map(|e| (e.epoch as f64, e.validation)),
        )?;
        let best_lm = History::best(lm, true);
        panel(
            &areas[2],
            "language model: loss",
            "epoch",
            "NLL per token",
            &[
                ("train", BLUE, points(lm, |e| e.train_loss)),
                ("validation", RED, points(lm, |e| -e.validation)),
            ],
            best_lm.map(|e| (e.epoch as f64, -e.validation)),
        )?;
        root.present().map_err(err)?;
    }
    out.commit()
}

/// Okabe and Ito's colour-blind-safe palette (black left out: it is the axes'). Yellow comes
/// last: on a white background it is the one colour that is hard to see, so plots of up to six
/// series never use it.
pub const OKABE_ITO: [RGBColor; 7] = [
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 158, 115),
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(204, 121, 167),
    RGBColor(240, 228, 66),
];

/// One line of [`gain_plot`]: a name and its (x, mean, low, high) points.
pub type IntervalSeries = (String, Vec<(f64, f64, f64, f64)>);

/// Means with their 95% intervals (error bars) against x, one coloured line per series, a dashed
/// zero line: how a difference between systems moves with a setting.
pub fn interval_plot(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[IntervalSeries],
) -> Result<()> {
    if !font_or_warn(path) {
        return Ok(());
    }
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let points: Vec<&(f64, f64, f64, f64)> = series.iter().flat_map(|s| s.1.iter()).collect();
    let (x_min, x_max) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.0), b.max(p.0))
        });
    let (y_min, y_max) = points
        .iter()
        .fold((0.0f64, 0.0f64), |(a, b), p| (a.min(p.2), b.max(p.3)));
    let (x_min, x_max) = if x_min.is_finite() {
        (x_min, x_max)
    } else {
        (0.0, 1.0)
    };
    let xpad = ((x_max - x_min) * 0.08).max(0.02);
    let ypad = ((y_max - y_min) * 0.08).max(1e-3);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(
            (x_min - xpad)..(x_max + xpad),
            (y_min - ypad)..(y_max + ypad),
        )
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(err)?;
    chart
        .draw_series(LineSeries::new(
            [(x_min - xpad, 0.0), (x_max + xpad, 0.0)],
            BLACK.mix(0.4).stroke_width(1),
        ))
        .map_err(err)?;
    let n = series.len().max(1) as f64;
    for (i, (name, pts)) in series.iter().enumerate() {
        let colour = OKABE_ITO[i % OKABE_ITO.len()];
        // Series side by side around each x, so their bars do not hide each other.
        let shift = (i as f64 - (n - 1.0) / 2.0) * xpad * 0.25;
        let at: Vec<(f64, f64, f64, f64)> =
            pts.iter().map(|p| (p.0 + shift, p.1, p.2, p.3)).collect();
        chart
            .draw_series(LineSeries::new(
                at.iter().map(|p| (p.0, p.1)),
                colour.stroke_width(2),
            ))
            .map_err(err)?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], colour.stroke_width(3)));
        chart
            .draw_series(
                at.iter()
                    .map(|p| ErrorBar::new_vertical(p.0, p.2, p.1, p.3, colour.filled(), 8)),
            )
            .map_err(err)?;
        chart
            .draw_series(
                at.iter()
                    .map(|p| Circle::new((p.0, p.1), 4, colour.filled())),
            )
            .map_err(err)?;
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    root.present().map_err(err)?;
    Ok(())
}

/// The series' names in a framed box at `position`.
fn legend<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    position: SeriesLabelPosition,
) -> Result<()>
where
    DB: DrawingBackend + 'a,
    X: Ranged,
    Y: Ranged,
{
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 14))
        .position(position)
        .draw()
        .map_err(err)
}

/// One colour of [`category_interval_plot`]: a name and, per category, (mean, low, high) or
/// nothing.
pub type CategorySeries = (String, Vec<Option<(f64, f64, f64)>>);

/// Means with 95% intervals for named categories (one row each, first at the top, the names
/// horizontal so long ones stay readable), one colour per series, side by side within a row.
pub fn category_interval_plot(
    path: &Path,
    title: &str,
    categories: &[String],
    x_label: &str,
    series: &[CategorySeries],
) -> Result<()> {
    if !font_or_warn(path) {
        return Ok(());
    }
    let k = categories.len().max(1);
    let values: Vec<(f64, f64, f64)> = series
        .iter()
        .flat_map(|s| s.1.iter().flatten())
        .copied()
        .collect();
    let (low, high) = padded_range(values.iter().flat_map(|v| [v.1, v.2]));
    let out = milan_shared::atomic::Pending::new(path)?;
    let tmp = out.path().to_owned();
    {
        let height = 120 + 70 * k as u32;
        let root = BitMapBackend::new(&tmp, (1000, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(230)
            .build_cartesian_2d(low..high, -0.5..(k as f64 - 0.5))
            .map_err(err)?;
        // Row i of the categories sits at y = k - 1 - i, so the first is at the top.
        let name_at = |y: &f64| -> String {
            let r = y.round();
            if (y - r).abs() > 1e-6 || r < 0.0 || r as usize >= k {
                return String::new();
            }
            categories
                .get(k - 1 - r as usize)
                .cloned()
                .unwrap_or_default()
        };
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_labels(k * 2 + 1)
            .y_label_formatter(&name_at)
            .disable_y_mesh()
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(err)?;
        let n = series.len().max(1) as f64;
        for (i, (name, cells)) in series.iter().enumerate() {
            let colour = OKABE_ITO[i % OKABE_ITO.len()];
            // Series stacked within a row so their bars do not hide each other.
            let shift = -(i as f64 - (n - 1.0) / 2.0) * (0.6 / n);
            let at: Vec<(f64, f64, f64, f64)> = cells
                .iter()
                .enumerate()
                .filter_map(|(c, v)| v.map(|(m, lo, hi)| ((k - 1 - c) as f64 + shift, m, lo, hi)))
                .collect();
            chart
                .draw_series(
                    at.iter()
                        .map(|p| ErrorBar::new_horizontal(p.0, p.2, p.1, p.3, colour.filled(), 8)),
                )
                .map_err(err)?
                .label(name.as_str())
                .legend(move |(x, y)| Circle::new((x + 9, y), 5, colour.filled()));
            chart
                .draw_series(
                    at.iter()
                        .map(|p| Circle::new((p.1, p.0), 5, colour.filled())),
                )
                .map_err(err)?;
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        root.present().map_err(err)?;
    }
    out.commit()
}

/// A line of (x, y) points and, where given, a band around it: (x, low, middle, high).
#[derive(Debug, Clone)]
pub enum Curve {
    Line(String, Vec<(f64, f64)>),
    Band(String, Vec<(f64, f64, f64, f64)>),
}

/// Lines and bands (the spread of repeated draws, their middle as a line) against one x axis, an
/// optional vertical marker (a chosen x) labelled `marker.1`; Okabe-Ito colours in order.
pub fn curves(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    curves: &[Curve],
    marker: Option<(f64, &str)>,
) -> Result<()> {
    if !font_or_warn(path) {
        return Ok(());
    }
    let mut xs: Vec<f64> = Vec::new();
    let mut ys: Vec<f64> = Vec::new();
    for c in curves {
        match c {
            Curve::Line(_, pts) => {
                xs.extend(pts.iter().map(|p| p.0));
                ys.extend(pts.iter().map(|p| p.1));
            }
            Curve::Band(_, pts) => {
                xs.extend(pts.iter().map(|p| p.0));
                ys.extend(pts.iter().flat_map(|p| [p.1, p.3]));
            }
        }
    }
    let x_max = xs.iter().copied().fold(1.0, f64::max);
    let (y_low, y_high) = padded_range(ys);
    let out = milan_shared::atomic::Pending::new(path)?;
    let tmp = out.path().to_owned();
    {
        let root = BitMapBackend::new(&tmp, (900, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..x_max * 1.02, y_low..y_high)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(err)?;
        for (i, c) in curves.iter().enumerate() {
            let colour = OKABE_ITO[i % OKABE_ITO.len()];
            let (name, line): (&str, Vec<(f64, f64)>) = match c {
                Curve::Line(name, pts) => (name, pts.clone()),
                Curve::Band(name, pts) => {
                    let mut outline: Vec<(f64, f64)> = pts.iter().map(|p| (p.0, p.3)).collect();
                    outline.extend(pts.iter().rev().map(|p| (p.0, p.1)));
                    chart
                        .draw_series(std::iter::once(Polygon::new(outline, colour.mix(0.2))))
                        .map_err(err)?;
                    (name, pts.iter().map(|p| (p.0, p.2)).collect())
                }
            };
            chart
                .draw_series(LineSeries::new(
                    line.iter().copied(),
                    colour.stroke_width(2),
                ))
                .map_err(err)?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                });
            chart
                .draw_series(line.iter().map(|&p| Circle::new(p, 3, colour.filled())))
                .map_err(err)?;
        }
        if let Some((x, label)) = marker {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(x, y_low), (x, y_high)],
                    BLACK.mix(0.6).stroke_width(1),
                )))
                .map_err(err)?
                .label(label)
                .legend(|(x, y)| PathElement::new(vec![(x + 9, y - 7), (x + 9, y + 7)], BLACK));
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        root.present().map_err(err)?;
    }
    out.commit()
}
