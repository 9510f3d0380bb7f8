//! Triage, the landing page: how many sagas of each type are in each state (the census,
//! from memory), and the STUCK, RETRYING, COMPENSATING and PAUSED ones grouped by (state,
//! type, step, error), each group with its count, its oldest member's age and a link to the
//! saga list filtered to it.

use maud::{html, Markup};

use super::layout::{self, Shell};
use super::{Ctx, Page};
use crate::domain::partition::ranges;
use crate::domain::time::Timestamp;
use crate::saga::census::{age_secs, Coverage, Triage, TriageGroup, STATES};

/// Longest error text the saga list's filter searches for.
const MAX_ERROR_FILTER: usize = 200;

pub async fn show(ctx: &Ctx<'_>) -> Page {
    ctx.admin()?;
    let content = body(&ctx.shop.sagas.cluster_triage().await, Timestamp::now());
    Ok(layout::html_response(200, layout::page(ctx, "Triage", Shell { refresh: true }, content)))
}

fn body(triage: &Triage, now: Timestamp) -> Markup {
    html! {
        h2 { "Needing attention" }
        (groups(triage, now))
        h2 { "Sagas by type and state" }
        @if let Some(c) = &triage.coverage {
            (coverage(c))
        }
        @if !triage.complete {
            p.notice role="status" { "Still counting: the finished sagas (COMPLETED, FAILED, ABORTED) are being counted in the background since the start; until then those columns hold only what finished since." }
        }
        (counts(triage))
    }
}

/// Which server counted which partitions, and what the figures lack.
fn coverage(c: &Coverage) -> Markup {
    let numbers = |ps: &[u16]| ranges(ps);
    html! {
        p.muted {
            "Counted by " (c.servers.len()) " servers: "
            @for (i, (node, partitions)) in c.servers.iter().enumerate() {
                @if i > 0 { "; " }
                code { (node) } " (partitions " (numbers(partitions)) ")"
            }
            "."
        }
        @if !c.unanswered.is_empty() {
            p.notice role="status" {
                "Not counted: the sagas of " (c.unanswered.join(", ")) ", which did not answer in time."
            }
        }
        @if !c.uncounted.is_empty() {
            p.notice role="status" { "Not counted: partitions " (numbers(&c.uncounted)) " (no server answered for them)." }
        }
        @if !c.counted_twice.is_empty() {
            p.notice role="status" { "Counted twice: partitions " (numbers(&c.counted_twice)) " (they moved between servers while counted)." }
        }
    }
}

fn groups(triage: &Triage, now: Timestamp) -> Markup {
    html! {
        @if triage.groups.is_empty() {
            p.muted { "No saga is STUCK, RETRYING, COMPENSATING or PAUSED." }
        } @else {
            table data-testid="triage-groups" id="triage-groups" {
                thead { tr { th { "State" } th { "Type" } th { "Step" } th { "Error" } th { "Sagas" } th { "Oldest" } th {} } }
                tbody {
                    @for g in &triage.groups {
                        tr {
                            td { span class=(format!("state state-{}", g.state.as_str())) { (g.state.as_str()) } }
                            td { (g.saga_type) }
                            td { @match &g.step { Some(s) => code { (s) }, None => span.none { "—" } } }
                            td { @match &g.error { Some(e) => span.error { (e) }, None => span.none { "—" } } }
                            td { strong { (g.count) } }
                            td { a href=(format!("/console/sagas/{}", g.oldest_saga_id)) { (human_age(age_secs(now, g.oldest_since))) } }
                            td { a href=(list_link(g)) { "List them" } }
                        }
                    }
                }
            }
        }
    }
}

fn counts(triage: &Triage) -> Markup {
    html! {
        @if triage.counts.is_empty() {
            p.muted { "No sagas yet." }
        } @else {
            table #saga-counts {
                thead { tr { th { "Type" } @for s in STATES { th { (s.as_str()) } } } }
                tbody {
                    @for (saga_type, by_state) in &triage.counts {
                        tr {
                            td { (saga_type) }
                            @for s in STATES {
                                @let n = by_state.get(s.as_str()).copied().unwrap_or(0);
                                td {
                                    @if n == 0 { span.none { "0" } }
                                    @else { a href=(query_link(&[("state", s.as_str()), ("type", saga_type)])) { (n) } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The saga list filtered to a group: state, type, step, and as much of the error as the
/// list's filter can search for (it matches a substring of the raw error, so the text up
/// to the first id the census replaced, within the filter's length limit).
pub fn list_link(g: &TriageGroup) -> String {
    let mut pairs = vec![("state", g.state.as_str().to_string()), ("type", g.saga_type.clone())];
    if let Some(step) = &g.step {
        pairs.push(("step", step.clone()));
    }
    if let Some(error) = g.error.as_deref().and_then(error_filter) {
        pairs.push(("error", error));
    }
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    query_link(&pairs)
}

fn query_link(pairs: &[(&str, &str)]) -> String {
    let query = form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
    format!("/console/sagas?{query}")
}

/// A substring of every raw error the normalized `error` stands for, or none worth using.
fn error_filter(error: &str) -> Option<String> {
    let literal = error.split("{id}").next().unwrap_or_default();
    let literal: String = literal.chars().take_while(|c| !c.is_control()).take(MAX_ERROR_FILTER).collect();
    let trimmed = literal.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_string())
}

/// "42 s", "3 min", "5 h", "2 d": enough to tell fresh from old at a glance.
pub fn human_age(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min", s / 60),
        3600..=86_399 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_says_when_the_census_is_still_counting() {
        let mut triage = Triage { complete: false, counts: Default::default(), groups: Vec::new(), coverage: None };
        let now = Timestamp::now();
        assert!(body(&triage, now).into_string().contains("Still counting"));
        triage.complete = true;
        assert!(!body(&triage, now).into_string().contains("Still counting"));
    }

    #[test]
    fn ages_read_in_the_largest_whole_unit() {
        assert_eq!(human_age(0.4), "0 s");
        assert_eq!(human_age(59.9), "59 s");
        assert_eq!(human_age(180.0), "3 min");
        assert_eq!(human_age(7200.0), "2 h");
        assert_eq!(human_age(3.0 * 86_400.0), "3 d");
    }

    #[test]
    fn the_error_filter_is_the_text_before_the_first_replaced_id() {
        assert_eq!(error_filter("SIMULATED 503 on VOID").as_deref(), Some("SIMULATED 503 on VOID"));
        assert_eq!(error_filter("order {id} not found").as_deref(), Some("order"));
        assert_eq!(error_filter("{id} missing"), None);
        assert_eq!(error_filter(&"x".repeat(300)).map(|e| e.len()), Some(200));
    }
}
