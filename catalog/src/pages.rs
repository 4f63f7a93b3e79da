//! The catalog's pages as HTML. Every link is relative, so the same pages work from `file://`,
//! from any static host and under the annotator's `/catalog/{project}/`:
//!
//! ```text
//! index.html                         models, layers, what the descriptions name
//! search.html, search-index.js       search over every description
//! catalog.css, catalog.js            style; keyboard shortcuts and search
//! <model>/<layer>/index.html         the layer's first 100 units; page-2.html, ...
//! <model>/<layer>/<unit>.html        one unit
//! <model>/<layer>/img/<unit>.jpg     its exemplars, small; <unit>-full.jpg large
//! ```
//!
//! No page loads anything from elsewhere, runs inline script or carries inline style (the
//! annotator's Content-Security-Policy holds for them). Descriptions are crowd text: every text
//! is escaped here, and the search script builds its results with DOM text nodes only.

use std::fmt::Write as _;

use milan_shared::lexicon::{Class, Lexicon, Profile};

use crate::sheet::PER_ROW;
use crate::site::{At, Catalog, Layer, Model, UNITS_PER_PAGE, Unit};

/// The stylesheet, the same for every page.
pub const CSS: &str = include_str!("../assets/catalog.css");
/// Keyboard shortcuts everywhere; the search on the search page.
pub const JS: &str = include_str!("../assets/catalog.js");

/// Okabe-Ito's colour-blind-safe palette without black: classes in charts, sources in badges.
pub const PALETTE: [&str; 7] = [
    "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7",
];

/// HTML-escaped text (crowd descriptions are untrusted).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The file of page `page` (0-based) of a layer's grid.
pub fn layer_file(page: usize) -> String {
    if page == 0 {
        "index.html".to_owned()
    } else {
        format!("page-{}.html", page + 1)
    }
}

/// The page of a layer's grid that shows its `index`-th unit.
pub fn page_of(index: usize) -> usize {
    index / UNITS_PER_PAGE
}

fn head(catalog: &Catalog, title: &str, root: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <title>{title} · {site}</title><link rel=\"stylesheet\" href=\"{root}catalog.css\"></head>\
         <body><a class=\"skip\" href=\"#main\">Skip to content</a>\
         <header class=\"top\"><a class=\"brand\" href=\"{root}index.html\">{site}</a>\
         <nav aria-label=\"Site\"><a href=\"{root}index.html\">Models</a> \
         <a href=\"{root}search.html\" accesskey=\"s\">Search</a></nav></header>\
         <main id=\"main\" tabindex=\"-1\">",
        title = escape(title),
        site = escape(&catalog.title),
    )
}

fn foot(root: &str, scripts: &[&str]) -> String {
    let mut out = String::from(
        "</main><footer><p>Descriptions of neurons after MILAN (Hernandez et al., ICLR 2022). \
         Exemplars: the images where a unit fires most, its region lit and outlined in yellow, \
         the rest dimmed. Keys: <kbd>/</kbd> search, <kbd>←</kbd> <kbd>→</kbd> previous and \
         next.</p></footer>",
    );
    for s in scripts {
        let _ = write!(out, "<script src=\"{root}{s}\"></script>");
    }
    let _ = writeln!(
        out,
        "<script src=\"{root}catalog.js\"></script></body></html>"
    );
    out
}

fn source_badge(catalog: &Catalog, source: usize) -> String {
    format!(
        "<span class=\"src s{}\">{}</span>",
        source % PALETTE.len(),
        escape(&catalog.sources[source].name)
    )
}

/// The home page: models and layers with unit counts, and per model a chart of what its layers'
/// descriptions name.
pub fn home(catalog: &Catalog, lexicon: &Lexicon) -> String {
    let mut out = head(catalog, "Models", "");
    let _ = write!(
        out,
        "<h1>{}</h1><p class=\"lead\">{} units of {} model{}, {} descriptions from {}. \
         <a href=\"search.html\">Search every description</a>.</p>",
        escape(&catalog.title),
        catalog.unit_count(),
        catalog.models.len(),
        if catalog.models.len() == 1 { "" } else { "s" },
        catalog.text_count(),
        catalog
            .sources
            .iter()
            .enumerate()
            .map(|(i, _)| source_badge(catalog, i))
            .collect::<Vec<_>>()
            .join(", "),
    );
    for model in &catalog.models {
        let profiles: Vec<Profile> = model.layers.iter().map(|l| l.profile(lexicon)).collect();
        let _ = write!(
            out,
            "<section class=\"model\"><h2 id=\"{slug}\">{name}</h2><div class=\"model-body\">\
             <table><thead><tr><th scope=\"col\">Layer</th><th scope=\"col\">Units</th>\
             <th scope=\"col\">Described</th><th scope=\"col\">Descriptions</th></tr></thead><tbody>",
            slug = escape(&model.slug),
            name = escape(&model.name),
        );
        for (layer, profile) in model.layers.iter().zip(&profiles) {
            let described = layer.units.iter().filter(|u| !u.texts.is_empty()).count();
            let _ = write!(
                out,
                "<tr><th scope=\"row\"><a href=\"{m}/{l}/index.html\">{name}</a></th>\
                 <td>{}</td><td>{described}</td><td>{}</td></tr>",
                layer.units.len(),
                profile.descriptions,
                m = escape(&model.slug),
                l = escape(&layer.slug),
                name = escape(&layer.name),
            );
        }
        out.push_str("</tbody></table>");
        out.push_str(&chart(model, &profiles));
        out.push_str("</div></section>");
    }
    out.push_str(&foot("", &[]));
    out
}

/// Grouped bars: per layer, the share of its descriptions naming each lexicon class, with the 95%
/// Wilson interval as a whisker; the same figures as a table beside it for screen readers.
fn chart(model: &Model, profiles: &[Profile]) -> String {
    const BAR: f64 = 6.0;
    const GAP: f64 = 12.0;
    const PLOT_H: f64 = 120.0;
    let (left, top, bottom) = (44.0, 8.0, 52.0);
    let group = BAR * Class::ALL.len() as f64 + GAP;
    let width = left + group * profiles.len().max(1) as f64 + 8.0;
    let height = top + PLOT_H + bottom;
    let y = |share: f64| top + PLOT_H * (1.0 - share);
    let mut svg = format!(
        "<figure class=\"chart\"><svg viewBox=\"0 0 {width:.0} {height:.0}\" role=\"img\" \
         aria-labelledby=\"cap-{slug}\" xmlns=\"http://www.w3.org/2000/svg\" \
         font-family=\"sans-serif\" font-size=\"9\">",
        slug = escape(&model.slug)
    );
    for tick in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let _ = write!(
            svg,
            "<line x1=\"{left}\" x2=\"{x2:.1}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#d0d0d0\"/>\
             <text x=\"{tx}\" y=\"{ty:.1}\" text-anchor=\"end\">{p}</text>",
            x2 = width - 8.0,
            yy = y(tick),
            tx = left - 4.0,
            ty = y(tick) + 3.0,
            p = (tick * 100.0) as u32,
        );
    }
    let _ = write!(
        svg,
        "<text transform=\"translate(10 {cy:.1}) rotate(-90)\" text-anchor=\"middle\">\
         % of descriptions naming it</text>",
        cy = top + PLOT_H / 2.0
    );
    for (i, (layer, profile)) in model.layers.iter().zip(profiles).enumerate() {
        let x0 = left + GAP / 2.0 + group * i as f64;
        for (c, (class, share)) in profile.shares.iter().enumerate() {
            let x = x0 + BAR * c as f64;
            let _ = write!(
                svg,
                "<rect x=\"{x:.1}\" y=\"{ry:.1}\" width=\"{w:.1}\" height=\"{rh:.1}\" fill=\"{fill}\">\
                 <title>{layer}: {name} {pct:.0}% [{lo:.0}, {hi:.0}] of {n}</title></rect>\
                 <line x1=\"{cx:.1}\" x2=\"{cx:.1}\" y1=\"{y1:.1}\" y2=\"{y2:.1}\" stroke=\"#000\" stroke-width=\"0.8\"/>",
                ry = y(share.share),
                w = BAR - 1.0,
                rh = PLOT_H * share.share,
                fill = PALETTE[c % PALETTE.len()],
                layer = escape(&layer.name),
                name = class.name(),
                pct = share.share * 100.0,
                lo = share.low * 100.0,
                hi = share.high * 100.0,
                n = share.of,
                cx = x + (BAR - 1.0) / 2.0,
                y1 = y(share.low),
                y2 = y(share.high),
            );
        }
        let label: String = layer.name.chars().take(14).collect();
        let _ = write!(
            svg,
            "<text transform=\"translate({lx:.1} {ly:.1}) rotate(-40)\" text-anchor=\"end\">{}</text>",
            escape(&label),
            lx = x0 + group / 2.0,
            ly = top + PLOT_H + 12.0,
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{cx:.1}\" y=\"{by:.1}\" text-anchor=\"middle\">layer</text></svg>",
        cx = left + (width - left) / 2.0,
        by = height - 4.0
    );
    let legend: String = Class::ALL
        .iter()
        .enumerate()
        .map(|(c, class)| {
            format!(
                "<span class=\"key k{}\">{}</span>",
                c % PALETTE.len(),
                class.name()
            )
        })
        .collect::<Vec<_>>()
        .join(" ");
    let mut table = String::from(
        "<details><summary>The figures as a table</summary><table class=\"figures\"><thead><tr>\
         <th scope=\"col\">Layer</th>",
    );
    for class in Class::ALL {
        let _ = write!(table, "<th scope=\"col\">{}</th>", class.name());
    }
    table.push_str("</tr></thead><tbody>");
    for (layer, profile) in model.layers.iter().zip(profiles) {
        let _ = write!(table, "<tr><th scope=\"row\">{}</th>", escape(&layer.name));
        for (_, share) in &profile.shares {
            let _ = write!(
                table,
                "<td>{:.0}% [{:.0}, {:.0}]</td>",
                share.share * 100.0,
                share.low * 100.0,
                share.high * 100.0
            );
        }
        table.push_str("</tr>");
    }
    table.push_str("</tbody></table></details>");
    let _ = write!(
        svg,
        "<figcaption id=\"cap-{slug}\">What {name}'s descriptions name, by layer: the share of \
         each layer's descriptions (every source) that name each class of the analysis lexicon \
         (as <code>trainer analyze</code> counts, plurals folded), whiskers the 95% Wilson \
         interval. {legend}</figcaption>{table}</figure>",
        slug = escape(&model.slug),
        name = escape(&model.name),
    );
    svg
}

/// Page `page` (0-based) of a layer's grid.
pub fn layer_page(catalog: &Catalog, m: usize, l: usize, page: usize) -> String {
    let model = &catalog.models[m];
    let layer = &model.layers[l];
    let pages = layer.pages();
    let title = format!("{} · {}", model.name, layer.name);
    let mut out = head(catalog, &title, "../../");
    let first = page * UNITS_PER_PAGE;
    let shown =
        &layer.units[first.min(layer.units.len())..(first + UNITS_PER_PAGE).min(layer.units.len())];
    let _ = write!(
        out,
        "<nav class=\"crumbs\" aria-label=\"Breadcrumbs\"><a href=\"../../index.html#{ms}\">{mn}</a> › \
         {ln}</nav><h1>{mn} · {ln}</h1><p class=\"lead\">{n} units{range}.</p>",
        ms = escape(&model.slug),
        mn = escape(&model.name),
        ln = escape(&layer.name),
        n = layer.units.len(),
        range = match (shown.first(), shown.last()) {
            (Some(a), Some(b)) if pages > 1 => format!(
                "; page {} of {pages}: units {} to {}",
                page + 1,
                a.unit,
                b.unit
            ),
            _ => String::new(),
        },
    );
    let pager = pager(page, pages);
    out.push_str(&pager);
    out.push_str("<ol class=\"grid\">");
    for unit in shown {
        out.push_str(&card(catalog, unit, ""));
    }
    out.push_str("</ol>");
    out.push_str(&pager);
    out.push_str(&foot("../../", &[]));
    out
}

fn pager(page: usize, pages: usize) -> String {
    if pages <= 1 {
        return String::new();
    }
    let mut out = String::from("<nav class=\"pager\" aria-label=\"Pages\">");
    if page > 0 {
        let _ = write!(
            out,
            "<a rel=\"prev\" href=\"{}\">← previous</a> ",
            layer_file(page - 1)
        );
    }
    for p in 0..pages {
        // Every page near this one, and the first and last: short on a 40-page layer.
        if p == 0 || p + 1 == pages || p.abs_diff(page) <= 3 {
            if p == page {
                let _ = write!(out, "<span aria-current=\"page\">{}</span> ", p + 1);
            } else {
                let _ = write!(out, "<a href=\"{}\">{}</a> ", layer_file(p), p + 1);
            }
        } else if p.abs_diff(page) == 4 {
            out.push_str("… ");
        }
    }
    if page + 1 < pages {
        let _ = write!(
            out,
            "<a rel=\"next\" href=\"{}\">next →</a>",
            layer_file(page + 1)
        );
    }
    out.push_str("</nav>");
    out
}

/// A unit in a grid: its small sheet and its descriptions, a link to its page. `prefix` leads
/// from the page to the layer's folder.
fn card(catalog: &Catalog, unit: &Unit, prefix: &str) -> String {
    let mut out = format!(
        "<li class=\"card\" id=\"u{u}\"><a class=\"unit-link\" href=\"{prefix}{u}.html\">",
        u = unit.unit
    );
    if unit.exemplars > 0 {
        let _ = write!(
            out,
            "<img src=\"{prefix}img/{u}.jpg\" loading=\"lazy\" alt=\"Unit {u}: its {k} exemplars, \
             the regions where it fires lit and outlined\">",
            u = unit.unit,
            k = unit.exemplars
        );
    } else {
        out.push_str("<span class=\"noimg\">no exemplar images</span>");
    }
    let _ = write!(
        out,
        "<span class=\"unit-no\">unit {}</span></a><ul class=\"texts\">",
        unit.unit
    );
    for t in &unit.texts {
        let _ = write!(
            out,
            "<li>{} {}</li>",
            source_badge(catalog, t.source),
            escape(&t.text)
        );
    }
    if unit.texts.is_empty() {
        out.push_str("<li class=\"none\">not described yet</li>");
    }
    out.push_str("</ul></li>");
    out
}

/// A unit's page: its exemplars one by one, every description with its source, the agreement
/// among the human ones, links to the previous and next unit and to the layer.
pub fn unit_page(catalog: &Catalog, at: At) -> String {
    let (model, layer, unit) = catalog.get(at);
    let title = format!("{} · {} · unit {}", model.name, layer.name, unit.unit);
    let mut out = head(catalog, &title, "../../");
    let _ = write!(
        out,
        "<nav class=\"crumbs\" aria-label=\"Breadcrumbs\"><a href=\"../../index.html#{ms}\">{mn}</a> › \
         <a href=\"{page}#u{u}\" id=\"up\">{ln}</a> › unit {u}</nav><h1>{mn} · {ln} · unit {u}</h1>",
        ms = escape(&model.slug),
        mn = escape(&model.name),
        ln = escape(&layer.name),
        page = layer_file(page_of(at.index)),
        u = unit.unit,
    );
    out.push_str(&neighbours(layer, at.index));
    if unit.exemplars > 0 {
        let rows = unit.exemplars.div_ceil(PER_ROW);
        out.push_str("<ol class=\"exemplars\" aria-label=\"Exemplars\">");
        for j in 0..unit.exemplars {
            let _ = write!(
                out,
                "<li class=\"tile\"><img src=\"img/{u}-full.jpg\" class=\"c{c} y{r} h{rows}\" \
                 alt=\"Exemplar {n} of {k} of unit {u}: the region where it fires lit and outlined\"></li>",
                u = unit.unit,
                c = j % PER_ROW,
                r = j / PER_ROW,
                n = j + 1,
                k = unit.exemplars,
            );
        }
        out.push_str("</ol>");
    } else {
        out.push_str("<p class=\"noimg\">This unit's exemplars have no images here.</p>");
    }
    out.push_str("<section><h2>Descriptions</h2>");
    if unit.texts.is_empty() {
        out.push_str("<p>Not described yet.</p>");
    } else {
        out.push_str(
            "<table class=\"descriptions\"><thead><tr><th scope=\"col\">Source</th>\
             <th scope=\"col\">Description</th></tr></thead><tbody>",
        );
        for t in &unit.texts {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td></tr>",
                source_badge(catalog, t.source),
                escape(&t.text)
            );
        }
        out.push_str("</tbody></table>");
    }
    let humans = unit
        .texts
        .iter()
        .filter(|t| catalog.sources[t.source].human)
        .count();
    match unit.agreement(&catalog.sources) {
        Some(a) => {
            let _ = write!(
                out,
                "<p class=\"agreement\">Agreement among the {humans} human descriptions: \
                 <strong>{a:.1}</strong> (mean pairwise sentence BLEU, 0 to 100; crowd \
                 descriptions of the same unit typically score 10 to 40).</p>"
            );
        }
        None => {
            let _ = write!(
                out,
                "<p class=\"agreement\">Agreement: needs two human descriptions ({humans} here).</p>"
            );
        }
    }
    out.push_str("</section>");
    out.push_str(&foot("../../", &[]));
    out
}

fn neighbours(layer: &Layer, index: usize) -> String {
    let mut out = String::from("<nav class=\"prevnext\" aria-label=\"Units\">");
    if index > 0 {
        let u = layer.units[index - 1].unit;
        let _ = write!(
            out,
            "<a rel=\"prev\" id=\"prev\" href=\"{u}.html\">← unit {u}</a>"
        );
    }
    if let Some(next) = layer.units.get(index + 1) {
        let u = next.unit;
        let _ = write!(
            out,
            "<a rel=\"next\" id=\"next\" href=\"{u}.html\">unit {u} →</a>"
        );
    }
    out.push_str("</nav>");
    out
}

/// The search page; its data comes from `search-index.js`.
pub fn search_page(catalog: &Catalog) -> String {
    let mut out = head(catalog, "Search", "");
    out.push_str(
        "<h1>Search the descriptions</h1>\
         <form id=\"search\" role=\"search\" class=\"search\" action=\"search.html\">\
         <p><label for=\"q\">Words, or \"a phrase\" in quotes (plurals match singulars)</label>\
         <input id=\"q\" name=\"q\" type=\"search\" autocomplete=\"off\" autofocus></p>\
         <p class=\"filters\"><label>Model <select id=\"model\" name=\"model\"><option value=\"\">every model</option>",
    );
    for (i, m) in catalog.models.iter().enumerate() {
        let _ = write!(out, "<option value=\"{i}\">{}</option>", escape(&m.name));
    }
    out.push_str(
        "</select></label> <label>Layer <select id=\"layer\" name=\"layer\">\
         <option value=\"\">every layer</option></select></label> \
         <label>Source <select id=\"source\" name=\"source\"><option value=\"\">every source</option>",
    );
    for (i, s) in catalog.sources.iter().enumerate() {
        let _ = write!(out, "<option value=\"{i}\">{}</option>", escape(&s.name));
    }
    out.push_str(
        "</select></label> <button type=\"submit\">Search</button></p></form>\
         <p id=\"status\" role=\"status\" aria-live=\"polite\">Loading the index…</p>\
         <ol id=\"results\" class=\"grid\"></ol>\
         <p><button id=\"more\" type=\"button\" hidden>Show more</button></p>",
    );
    out.push_str(&foot("", &["search-index.js"]));
    out
}

/// The sprite classes of the unit page: tile column, row, and the sheet's height in rows.
pub fn sprite_css() -> String {
    let mut out = String::new();
    for c in 0..PER_ROW {
        let _ = writeln!(out, ".tile img.c{c}{{left:-{}%}}", c * 100);
    }
    for r in 0..8 {
        let _ = writeln!(out, ".tile img.y{r}{{top:-{}%}}", r * 100);
        let _ = writeln!(out, ".tile img.h{}{{height:{}%}}", r + 1, (r + 1) * 100);
    }
    for (i, colour) in PALETTE.iter().enumerate() {
        let _ = writeln!(out, ".src.s{i}{{border-left-color:{colour}}}");
        let _ = writeln!(out, ".key.k{i}::before{{background:{colour}}}");
    }
    out
}
