//! One self-contained HTML page of a run (`swh-deploy history RUN --html
//! FILE`; inline CSS and script, no network): a timeline with one row per
//! host and one bar per step on that host, coloured by outcome, the batches
//! and the health gates marked; the summary; the package versions before
//! and after (the run's `versions-before` / `versions-after` steps).
//!
//! The timeline places each host result by its recording time minus its
//! duration, on the span from the run's start to its end (or its last
//! result); the page is built from [`RunDetails`] alone.

use crate::command::parse_installed_versions;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use swh_deploy_journal::{Outcome, RunDetails, Step};

/// Escapes text for HTML (element content and quoted attributes).
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Milliseconds since the epoch of the journal's timestamps
/// (`YYYY-MM-DDTHH:MM:SS.fffZ`); `None` when the text is not one.
fn millis(ts: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(ts)
        .ok()
        .map(|t| t.timestamp_millis())
}

fn colour(o: Outcome) -> &'static str {
    match o {
        Outcome::Ok => "#2e9d4f",
        Outcome::Failed => "#d13b3b",
        Outcome::Unreachable => "#7a4bc2",
        Outcome::Unhealthy => "#e08a1e",
        Outcome::TimedOut => "#b8860b",
    }
}

/// Renders the page of one run.
pub fn render_html(d: &RunDetails) -> String {
    let r = &d.run;
    let step_of: BTreeMap<i64, &Step> = d.steps.iter().map(|s| (s.index, s)).collect();
    // Host rows, in the order hosts first appear.
    let mut hosts: Vec<&str> = Vec::new();
    for res in &d.results {
        if !hosts.contains(&res.host.as_str()) {
            hosts.push(&res.host);
        }
    }
    // Time span: the run's start to its end (or the last result).
    let bars: Vec<(i64, i64)> = d
        .results
        .iter()
        .map(|res| {
            let end = millis(&res.recorded_at).unwrap_or(0);
            (end - res.duration_ms as i64, end)
        })
        .collect();
    let t0 = millis(&r.started_at)
        .into_iter()
        .chain(bars.iter().map(|b| b.0))
        .min()
        .unwrap_or(0);
    let t1 = r
        .ended_at
        .as_deref()
        .and_then(millis)
        .into_iter()
        .chain(bars.iter().map(|b| b.1))
        .chain(
            d.steps
                .iter()
                .filter_map(|s| s.ended_at.as_deref().and_then(millis)),
        )
        .max()
        .unwrap_or(t0);
    let span = (t1 - t0).max(1) as f64;
    let pct = |t: i64| ((t - t0) as f64 / span * 100.0).clamp(0.0, 100.0);

    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>swh-deploy run {id}</title>\n<style>\n\
body{{font:14px/1.4 sans-serif;margin:1.5em;color:#222}}\n\
table{{border-collapse:collapse;margin:.5em 0 1.5em}}td,th{{padding:2px 8px;text-align:left;border-bottom:1px solid #ddd}}\n\
.timeline{{position:relative;border:1px solid #bbb;margin:1em 0}}\n\
.row{{display:flex;align-items:center;height:26px;border-bottom:1px solid #eee}}\n\
.row .name{{width:12em;flex:none;padding-left:4px;font-family:monospace}}\n\
.row .track{{position:relative;flex:1;height:20px}}\n\
.bar{{position:absolute;top:2px;height:16px;min-width:2px;border-radius:2px;opacity:.9}}\n\
.bar.gate{{outline:2px solid #000;outline-offset:-2px}}\n\
.marks{{position:absolute;left:12em;right:0;top:0;bottom:0;pointer-events:none}}\n\
.batch{{position:absolute;top:0;bottom:0;border-left:2px dashed #335;}}\n\
.batch span{{position:absolute;top:-1.3em;left:2px;font-size:11px;color:#335;white-space:nowrap}}\n\
.legend span{{display:inline-block;margin-right:1em}}.legend i{{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:middle}}\n\
</style></head>\n<body data-run=\"{id}\">\n<h1>swh-deploy run {id}: {status}</h1>\n",
        id = r.id,
        status = esc(r.status.as_str())
    );
    // Summary.
    let mut by_outcome: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for res in &d.results {
        by_outcome
            .entry(res.outcome.as_str())
            .or_default()
            .insert(&res.host);
    }
    let _ = write!(
        h,
        "<h2>Summary</h2>\n<table id=\"summary\">\n<tr><th>command</th><td><code>{}</code></td></tr>\n<tr><th>mode</th><td>{}</td></tr>\n<tr><th>by</th><td>{} on {} (pid {})</td></tr>\n<tr><th>started</th><td>{}</td></tr>\n<tr><th>ended</th><td>{}</td></tr>\n<tr><th>hosts</th><td>{}</td></tr>\n<tr><th>steps</th><td>{}</td></tr>\n",
        esc(&r.command_line.join(" ")),
        esc(&r.mode),
        esc(&r.user),
        esc(&r.hostname),
        r.pid,
        esc(&r.started_at),
        esc(r.ended_at.as_deref().unwrap_or("-")),
        hosts.len(),
        d.steps.len()
    );
    for (o, hs) in &by_outcome {
        let _ = writeln!(
            h,
            "<tr><th>{}</th><td>{} host(s) had a step {}</td></tr>",
            esc(o),
            hs.len(),
            esc(o)
        );
    }
    let pending = d
        .compensations
        .iter()
        .filter(|c| c.done_at.is_none())
        .count();
    let _ = writeln!(
        h,
        "<tr><th>compensations</th><td>{} recorded, {} pending</td></tr>\n</table>",
        d.compensations.len(),
        pending
    );

    // Timeline.
    let _ = writeln!(
        h,
        "<h2>Timeline</h2>\n<div class=\"legend\"><span><i style=\"background:{}\"></i>ok</span><span><i style=\"background:{}\"></i>failed</span><span><i style=\"background:{}\"></i>unreachable</span><span><i style=\"background:{}\"></i>unhealthy</span><span><i style=\"background:{}\"></i>timed out</span><span><i style=\"outline:2px solid #000\"></i>health gate</span><span>dashed line: batch start</span></div>",
        colour(Outcome::Ok),
        colour(Outcome::Failed),
        colour(Outcome::Unreachable),
        colour(Outcome::Unhealthy),
        colour(Outcome::TimedOut)
    );
    let _ = writeln!(
        h,
        "<div class=\"timeline\" id=\"timeline\" data-start=\"{}\" data-end=\"{}\">",
        esc(&r.started_at),
        esc(r.ended_at.as_deref().unwrap_or(""))
    );
    // Batch marks: where each batch's first step started.
    let mut batch_start: BTreeMap<i64, i64> = BTreeMap::new();
    for s in &d.steps {
        if let (Some(b), Some(t)) = (s.batch, millis(&s.started_at)) {
            let e = batch_start.entry(b).or_insert(t);
            *e = (*e).min(t);
        }
    }
    let _ = write!(h, "<div class=\"marks\">");
    for (b, t) in &batch_start {
        let label = if *b == 0 {
            "batch 0 (canary)".to_string()
        } else {
            format!("batch {b}")
        };
        let _ = write!(
            h,
            "<div class=\"batch\" data-batch=\"{b}\" style=\"left:{:.3}%\"><span>{label}</span></div>",
            pct(*t)
        );
    }
    let _ = writeln!(h, "</div>");
    let _ = writeln!(h, "<div style=\"height:1.4em\"></div>");
    for host in &hosts {
        let _ = write!(
            h,
            "<div class=\"row host\" data-host=\"{0}\"><div class=\"name\">{0}</div><div class=\"track\">",
            esc(host)
        );
        for (res, (s, e)) in d.results.iter().zip(&bars) {
            if res.host != *host {
                continue;
            }
            let step = step_of.get(&res.step);
            let name = step.map(|s| s.name.as_str()).unwrap_or("?");
            let gate = step.is_some_and(|s| s.kind == "health");
            let title = format!(
                "{name} on {host}: {} in {:.1} s{}{}",
                res.outcome.as_str(),
                res.duration_ms as f64 / 1000.0,
                step.and_then(|s| s.batch)
                    .map(|b| format!(", batch {b}"))
                    .unwrap_or_default(),
                res.rc.map(|c| format!(", exit {c}")).unwrap_or_default()
            );
            let _ = write!(
                h,
                "<div class=\"bar{}\" data-step=\"{}\" data-outcome=\"{}\" title=\"{}\" style=\"left:{:.3}%;width:{:.3}%;background:{}\"></div>",
                if gate { " gate" } else { "" },
                esc(name),
                res.outcome.as_str(),
                esc(&title),
                pct(*s),
                (pct(*e) - pct(*s)).max(0.0),
                colour(res.outcome)
            );
        }
        let _ = writeln!(h, "</div></div>");
    }
    let _ = writeln!(h, "</div>");

    // Steps.
    let _ = writeln!(
        h,
        "<h2>Steps</h2>\n<table id=\"steps\"><tr><th>#</th><th>step</th><th>kind</th><th>batch</th><th>hosts</th><th>status</th><th>started</th><th>ended</th></tr>"
    );
    for s in &d.steps {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            s.index,
            esc(&s.name),
            esc(&s.kind),
            s.batch.map(|b| b.to_string()).unwrap_or_default(),
            esc(&s.hosts),
            esc(s.status.as_str()),
            esc(&s.started_at),
            esc(s.ended_at.as_deref().unwrap_or("-"))
        );
    }
    let _ = writeln!(h, "</table>");

    // Versions before / after.
    let named: BTreeMap<i64, &str> = d.steps.iter().map(|s| (s.index, s.name.as_str())).collect();
    let mut vers: BTreeMap<(String, String), (Option<String>, Option<String>)> = BTreeMap::new();
    for res in &d.results {
        if res.outcome != Outcome::Ok {
            continue;
        }
        let after = match named.get(&res.step) {
            Some(&"versions-before") => false,
            Some(&"versions-after") => true,
            _ => continue,
        };
        for (p, v) in parse_installed_versions(&res.stdout) {
            let e = vers.entry((res.host.clone(), p.to_string())).or_default();
            let v = v.map(|v| v.to_string());
            if after {
                e.1 = v;
            } else {
                e.0 = v;
            }
        }
    }
    let _ = writeln!(
        h,
        "<h2>Versions</h2>\n<table id=\"versions\"><tr><th>host</th><th>package</th><th>before</th><th>after</th></tr>"
    );
    if vers.is_empty() {
        let _ = writeln!(
            h,
            "<tr><td colspan=\"4\">this run recorded no versions</td></tr>"
        );
    }
    for ((host, p), (b, a)) in &vers {
        let _ = writeln!(
            h,
            "<tr class=\"version\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(host),
            esc(p),
            esc(b.as_deref().unwrap_or("-")),
            esc(a.as_deref().unwrap_or("-"))
        );
    }
    let _ = writeln!(h, "</table>");
    // A small script: counts what the page shows (a check that the page's
    // own DOM is complete, for tests and for the curious).
    let _ = writeln!(
        h,
        "<p id=\"generated\">Generated by swh-deploy history --html.</p>\n<script>\n(function(){{\n  var rows=document.querySelectorAll('#timeline .row.host').length;\n  var bars=document.querySelectorAll('#timeline .bar').length;\n  document.body.setAttribute('data-rendered', rows+' hosts, '+bars+' bars');\n}})();\n</script>\n</body></html>"
    );
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_timestamps_parse_to_milliseconds() {
        assert_eq!(millis("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(millis("1970-01-02T00:00:01.5Z"), Some(86_401_500));
        assert_eq!(
            millis("2026-12-02T17:14:04.123Z").unwrap()
                - millis("2026-12-02T17:14:03.000Z").unwrap(),
            1123
        );
        assert_eq!(millis("garbage"), None);
        assert_eq!(esc("<a href='x'>&"), "&lt;a href=&#39;x&#39;&gt;&amp;");
    }
}
