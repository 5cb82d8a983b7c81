//! The report: medians over the rounds per peer, as a Markdown table with ratios to
//! Node, a JSON file, and an SVG bar chart of the rates relative to Node.

use std::collections::BTreeMap;
use std::fmt::Write;

/// One peer's figures in one round, by metric key (see [`METRICS`]).
pub type Figures = BTreeMap<&'static str, f64>;

/// Every metric: key, label, whether more is better.
pub const METRICS: &[(&str, &str, bool)] = &[
    ("connects_per_s", "connects/s", true),
    ("echo100_per_s", "echo, 100 clients: acks/s", true),
    ("echo100_p50_ms", "echo, 100 clients: p50 ms", false),
    ("echo100_p99_ms", "echo, 100 clients: p99 ms", false),
    ("echo100_p999_ms", "echo, 100 clients: p99.9 ms", false),
    ("echo1000_per_s", "echo, 1000 clients: acks/s", true),
    ("echo1000_p50_ms", "echo, 1000 clients: p50 ms", false),
    ("echo1000_p99_ms", "echo, 1000 clients: p99 ms", false),
    ("echo1000_p999_ms", "echo, 1000 clients: p99.9 ms", false),
    ("broadcast_per_s", "broadcast to 1000: deliveries/s", true),
    ("cpu_us_connect", "server CPU µs per connect", false),
    ("cpu_us_ack", "server CPU µs per ack (100 clients)", false),
    (
        "cpu_us_ack1000",
        "server CPU µs per ack (1000 clients)",
        false,
    ),
    ("cpu_us_delivery", "server CPU µs per delivery", false),
    ("idle_kib_1000", "KiB per idle connection (1000)", false),
    ("idle_kib_10000", "KiB per idle connection (10000)", false),
    (
        "generator_connects",
        "load generator's core: connects",
        false,
    ),
    (
        "generator_echo100",
        "load generator's core: echo, 100",
        false,
    ),
    (
        "generator_echo1000",
        "load generator's core: echo, 1000",
        false,
    ),
    (
        "generator_broadcast",
        "load generator's core: broadcast",
        false,
    ),
];

/// Over this share of its core, the load generator is the bottleneck: the rate it
/// reached is its own, not the server's.
pub const GENERATOR_BOUND: f64 = 0.7;

/// The generator's share of its core in the scenario that measured the rate `key`.
fn generator_key(key: &str) -> Option<&'static str> {
    match key {
        "connects_per_s" => Some("generator_connects"),
        "echo100_per_s" => Some("generator_echo100"),
        "echo1000_per_s" => Some("generator_echo1000"),
        "broadcast_per_s" => Some("generator_broadcast"),
        _ => None,
    }
}

/// Whether the rate `key` in `figures` was reached with the generator's core saturated.
pub fn generator_bound(figures: &Figures, key: &str) -> bool {
    generator_key(key)
        .and_then(|g| figures.get(g))
        .is_some_and(|share| *share > GENERATOR_BOUND)
}

/// The rates the chart shows.
const CHARTED: &[&str] = &[
    "connects_per_s",
    "echo100_per_s",
    "echo1000_per_s",
    "broadcast_per_s",
];

/// The median of each metric over the rounds.
pub fn medians(rounds: &[Figures]) -> Figures {
    let mut out = Figures::new();
    for (key, _, _) in METRICS {
        let mut values: Vec<f64> = rounds.iter().filter_map(|r| r.get(key).copied()).collect();
        if values.is_empty() {
            continue;
        }
        values.sort_by(f64::total_cmp);
        let mid = values.len() / 2;
        let median = if values.len() % 2 == 1 {
            values[mid]
        } else {
            (values[mid - 1] + values[mid]) / 2.0
        };
        out.insert(key, median);
    }
    out
}

fn format_value(key: &str, value: f64) -> String {
    if key.starts_with("generator_") {
        format!("{:.0}%", value * 100.0)
    } else if value >= 1000.0 {
        let whole = value.round() as u64;
        let mut digits = whole.to_string();
        let mut i = digits.len() as isize - 3;
        while i > 0 {
            digits.insert(i as usize, ',');
            i -= 3;
        }
        digits
    } else if value >= 10.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

/// The Markdown table: one row per metric, one column per peer, nsbox's ratio to each.
/// A rate the generator bound is marked so, and so is a ratio to or from it.
pub fn markdown(peers: &[(&str, Figures)], header: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{header}\n");
    let names: Vec<&str> = peers.iter().map(|(n, _)| *n).collect();
    let _ = writeln!(
        out,
        "| metric | {} | nsbox ÷ node | nsbox ÷ socketioxide |",
        names.join(" | ")
    );
    let _ = writeln!(out, "|---|{}---|---|", "---|".repeat(names.len()));
    let get = |peer: &str, key: &str| {
        peers
            .iter()
            .find(|(n, _)| *n == peer)
            .and_then(|(_, f)| f.get(key).copied())
    };
    for (key, label, _) in METRICS {
        if peers.iter().all(|(_, f)| !f.contains_key(key)) {
            continue;
        }
        let bound = |peer: &str| {
            peers
                .iter()
                .any(|(n, f)| *n == peer && generator_bound(f, key))
        };
        let cells: Vec<String> = peers
            .iter()
            .map(|(name, f)| match f.get(key) {
                Some(v) if bound(name) => format!("{} (generator-bound)", format_value(key, *v)),
                Some(v) => format_value(key, *v),
                None => "–".into(),
            })
            .collect();
        let ratio = |other: &str| match (get("nsbox", key), get(other, key)) {
            (Some(ours), Some(theirs)) if theirs > 0.0 && !key.starts_with("generator_") => {
                let mark = if bound("nsbox") || bound(other) {
                    " (generator-bound)"
                } else {
                    ""
                };
                format!("{:.2}×{mark}", ours / theirs)
            }
            _ => "–".into(),
        };
        let _ = writeln!(
            out,
            "| {label} | {} | {} | {} |",
            cells.join(" | "),
            ratio("node"),
            ratio("socketioxide")
        );
    }
    out
}

/// A bar chart of each peer's rates relative to Node's (Node = 1).
pub fn svg(peers: &[(&str, Figures)], caption: &str) -> String {
    let colours = ["#8892a0", "#d08c3c", "#2f7ed8", "#5aa469"];
    let (width, height, left, bottom, top) = (760.0, 360.0, 60.0, 60.0, 40.0);
    let node = peers.iter().find(|(n, _)| *n == "node").map(|(_, f)| f);
    let ratio = |f: &Figures, key: &str| match (f.get(key), node.and_then(|n| n.get(key))) {
        (Some(v), Some(base)) if *base > 0.0 => v / base,
        _ => 0.0,
    };
    let max = peers
        .iter()
        .flat_map(|(_, f)| CHARTED.iter().map(move |k| ratio(f, k)))
        .fold(1.0f64, f64::max)
        .ceil();
    let plot_h = height - bottom - top;
    let group_w = (width - left - 20.0) / CHARTED.len() as f64;
    let bar_w = group_w / (peers.len() as f64 + 1.0);
    let y = |v: f64| top + plot_h * (1.0 - v / max);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{left}\" y=\"22\" font-size=\"14\">{caption}</text>\n"
    );
    for step in 0..=(max as usize) {
        let v = step as f64;
        let _ = writeln!(out, "<line x1=\"{left}\" x2=\"{}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v}×</text>", width - 20.0, y(v), y(v), left - 6.0, y(v) + 4.0);
    }
    for (g, key) in CHARTED.iter().enumerate() {
        let x0 = left + g as f64 * group_w + bar_w / 2.0;
        for (p, (name, figures)) in peers.iter().enumerate() {
            let v = ratio(figures, key);
            let x = x0 + p as f64 * bar_w;
            let colour = colours[p % colours.len()];
            let _ = writeln!(out, "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\"><title>{name}: {v:.2}×</title></rect><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\">{v:.1}</text>", y(v), bar_w - 4.0, (height - bottom - y(v)).max(0.0), x + bar_w / 2.0 - 2.0, y(v) - 3.0);
        }
        let label = METRICS
            .iter()
            .find(|(k, _, _)| k == key)
            .map_or(*key, |(_, l, _)| *l);
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"11\">{label}</text>",
            x0 + bar_w * peers.len() as f64 / 2.0,
            height - bottom + 18.0
        );
    }
    for (p, (name, _)) in peers.iter().enumerate() {
        let x = left + p as f64 * 130.0;
        let _ = writeln!(out, "<rect x=\"{x}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{name}</text>", height - 24.0, colours[p % colours.len()], x + 16.0, height - 14.0);
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_ratios() {
        let round = |v: f64| Figures::from([("echo100_per_s", v)]);
        let m = medians(&[round(3.0), round(1.0), round(2.0)]);
        assert_eq!(m.get("echo100_per_s"), Some(&2.0));
        let table = markdown(&[("node", round(1000.0)), ("nsbox", round(2500.0))], "# t");
        assert!(
            table.contains("| echo, 100 clients: acks/s | 1,000 | 2,500 | 2.50× | – |"),
            "{table}"
        );
        assert!(svg(&[("node", round(1.0)), ("nsbox", round(2.0))], "c").contains("2.0"));
    }

    #[test]
    fn a_rate_reached_with_the_generator_saturated_is_marked() {
        let peer = |rate: f64, share: f64| {
            Figures::from([("echo100_per_s", rate), ("generator_echo100", share)])
        };
        let table = markdown(
            &[
                ("socketioxide", peer(2000.0, 0.95)),
                ("nsbox", peer(1500.0, 0.5)),
            ],
            "# t",
        );
        assert!(
            table.contains("| 2,000 (generator-bound) | 1,500 | – | 0.75× (generator-bound) |"),
            "{table}"
        );
        assert!(table.contains("| load generator's core: echo, 100 | 95% | 50% | – | – |"));
    }
}
