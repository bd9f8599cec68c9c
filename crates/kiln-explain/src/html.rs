//! A self-contained HTML report (no scripts, styles inline): the text with each token
//! highlighted by its score, the score table, and the attention or rollout matrix as a
//! coloured table.

use crate::colors::{blue_white_red, hex, reds};
use crate::report::Report;

/// `&`, `<`, `>`, `"`, `'` escaped.
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

/// The report as one HTML page. Signed scores (gradient methods) run blue (negative) to red
/// (positive); attention and rollout scores white to red.
pub fn html_report(report: &Report, model: &str) -> String {
    let signed = report.method.needs_gradients();
    let max = report
        .token_scores
        .iter()
        .fold(0.0f32, |m, v| m.max(v.abs()))
        .max(1e-12);
    let colour = |v: f32| {
        if signed {
            hex(blue_white_red(v / max))
        } else {
            hex(reds(v / max))
        }
    };
    let mut html = String::new();
    html.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    html.push_str(&format!(
        "<title>kiln explain: {}</title>\n",
        escape(report.method.name())
    ));
    html.push_str(
        "<style>body{font-family:sans-serif;margin:2em;max-width:70em}\
         .tok{display:inline-block;padding:2px 4px;margin:2px;border-radius:3px;font-family:monospace}\
         table{border-collapse:collapse;font-size:12px}td,th{padding:2px 5px;border:1px solid #ddd}\
         .m td{width:1.6em;height:1.6em;padding:0;border:1px solid #fff}\
         .m th{font-family:monospace;font-weight:normal}\
         .v{writing-mode:vertical-rl;transform:rotate(180deg)}</style>\n</head>\n<body>\n",
    );
    html.push_str(&format!(
        "<h1>{}</h1>\n<p>Model: <code>{}</code><br>Text: {}</p>\n",
        escape(report.method.name()),
        escape(model),
        escape(&report.text)
    ));
    if let Some(target) = &report.target {
        html.push_str(&format!(
            "<p>Target: {} = {:.6}</p>\n",
            escape(&target.describe()),
            report.target_value.unwrap_or(f32::NAN)
        ));
    }
    if let (Some(delta), Some(base)) = (report.delta, report.baseline_value) {
        html.push_str(&format!(
            "<p>f(baseline) = {base:.6}; completeness gap Σ scores − (f(x) − f(baseline)) = {delta:.3e}</p>\n"
        ));
    }
    if let Some(layer) = report.layer {
        let head = report
            .head
            .map_or("mean over heads".to_string(), |h| format!("head {h}"));
        html.push_str(&format!("<p>Layer {layer}, {head}</p>\n"));
    }
    html.push_str("<h2>Tokens</h2>\n<p>");
    for (token, &score) in report.tokens.iter().zip(&report.token_scores) {
        html.push_str(&format!(
            "<span class=\"tok\" style=\"background:{}\" title=\"{:.6}\">{}</span>",
            colour(score),
            score,
            escape(token)
        ));
    }
    html.push_str(
        "</p>\n<h2>Scores</h2>\n<table>\n<tr><th>#</th><th>token</th><th>score</th></tr>\n",
    );
    for (i, (token, score)) in report.tokens.iter().zip(&report.token_scores).enumerate() {
        html.push_str(&format!(
            "<tr><td>{i}</td><td><code>{}</code></td><td>{score:.6}</td></tr>\n",
            escape(token)
        ));
    }
    html.push_str("</table>\n");
    if let Some(matrix) = report.matrix() {
        let max = matrix
            .iter()
            .flatten()
            .fold(0.0f32, |m, v| m.max(*v))
            .max(1e-12);
        let title = if report.attention.is_some() {
            "Attention (rows: queries, columns: keys)"
        } else {
            "Rollout (rows: output positions, columns: input tokens)"
        };
        html.push_str(&format!(
            "<h2>{title}</h2>\n<table class=\"m\">\n<tr><th></th>"
        ));
        for token in &report.tokens {
            html.push_str(&format!(
                "<th><span class=\"v\">{}</span></th>",
                escape(token)
            ));
        }
        html.push_str("</tr>\n");
        for (token, row) in report.tokens.iter().zip(matrix) {
            html.push_str(&format!("<tr><th>{}</th>", escape(token)));
            for &v in row {
                html.push_str(&format!(
                    "<td style=\"background:{}\" title=\"{v:.4}\"></td>",
                    hex(reds(v / max))
                ));
            }
            html.push_str("</tr>\n");
        }
        html.push_str("</table>\n");
    }
    html.push_str("</body>\n</html>\n");
    html
}
