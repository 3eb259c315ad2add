//! Models: a model's versions (sortable by any metric) with the gate's verdicts, its
//! releases as a timeline, what was in production at a time, two versions compared, a
//! version's lineage (also from a prediction's request id) drawn as a graph, its
//! monitoring, and approve and rollback as forms.

use askama::Template;
use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;
use sluice_shared::catalog::{self, VersionLineage};
use sluice_shared::registry::promotion::{APPROVED, Change, ROLLBACK_REQUESTED};
use sluice_shared::registry::{ModelName, PRODUCTION, Release};

use super::overview::EventRow;
use super::session::{Role, Session};
use super::{
    Frame, Page, Problem, ROOT, chart, failed, html, missing, refused, serde_name, unavailable,
    when,
};
use crate::host::state::AppState;

/// How many versions a model's page lists (the newest; any version can still be
/// compared or traced).
const SHOWN: usize = 50;

fn parse(session: &Session, name: &str) -> Result<ModelName, Problem> {
    ModelName::parse(name).map_err(|_| missing(session, format!("There is no model {name:?}.")))
}

fn number(session: &Session, model: &ModelName, v: &str) -> Result<u32, Problem> {
    v.trim_start_matches('v')
        .parse()
        .map_err(|_| missing(session, format!("{model} has no version {v:?}.")))
}

/// One version on a model's page.
struct VersionRow {
    version: u32,
    registered: String,
    run: String,
    dataset: String,
    dataset_version: u32,
    /// The task's metrics, in the task's order (None where it has none).
    metrics: Vec<Option<f64>>,
    shown: Vec<String>,
    /// `passed`, `failed`, `awaiting approval`, or `—` (never gated).
    gate: String,
    reasons: String,
    /// Whether an admin may approve it now (it waits in staging).
    approvable: bool,
}

/// One release on the timeline, newest first.
struct ReleaseRow {
    id: String,
    alias: String,
    version: u32,
    at: String,
    /// When the alias moved on (None: it still points here).
    until: Option<String>,
    actor: String,
    reason: String,
    /// The release it rolled back, for a rollback.
    rolls_back: Option<String>,
}

/// "What was in production at T", asked and answered.
struct AtAnswer {
    asked: String,
    answer: Result<Option<Release>, String>,
}

#[derive(Template)]
#[template(path = "console/model.html")]
struct ModelPage {
    frame: Frame,
    model: String,
    metric_names: Vec<String>,
    sort: String,
    versions: Vec<VersionRow>,
    total_versions: usize,
    releases: Vec<ReleaseRow>,
    production: Option<u32>,
    at: Option<AtAnswer>,
}

#[derive(Deserialize)]
pub struct ModelQuery {
    /// A metric's name (best first), or nothing (newest first).
    sort: Option<String>,
    /// A time: RFC 3339, or `YYYY-MM-DDTHH:MM[:SS]` in UTC (what a browser's
    /// `datetime-local` field sends).
    at: Option<String>,
}

/// Reads a time as the "at" form sends it.
fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
            return Ok(t.and_utc());
        }
    }
    Err(format!(
        "at: {s:?} is not a time; write 2026-03-01T12:00 (UTC) or an RFC 3339 time"
    ))
}

/// Whether a lower value of `metric` is better (errors and losses).
fn lower_is_better(metric: &str) -> bool {
    matches!(metric, "log_loss" | "rmse" | "mae")
}

pub async fn page(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
    Query(q): Query<ModelQuery>,
) -> Page {
    let model = parse(&session, &name)?;
    let registry = state.runs.registry();
    let (versions, total) = catalog::versions(registry, &model, SHOWN)
        .await
        .map_err(|e| failed(&session, e))?;
    // The releases only: the versions were listed just above.
    let releases = registry
        .releases(&model)
        .await
        .map_err(|e| failed(&session, e))?;
    if versions.is_empty() {
        return Err(missing(&session, format!("There is no model {model}.")));
    }
    let task = versions[0].version.signature.task;
    let metric_names: Vec<String> = task.metrics().iter().map(|m| (*m).to_owned()).collect();
    let sort = q
        .sort
        .filter(|s| metric_names.contains(s))
        .unwrap_or_default();
    let staging = releases
        .iter()
        .rfind(|r| r.alias == sluice_shared::registry::STAGING);
    let production = releases.iter().rfind(|r| r.alias == PRODUCTION);
    let mut rows: Vec<VersionRow> = versions
        .iter()
        .map(|v| {
            let m = &v.version;
            let (gate, reasons) = match &v.gate {
                None => ("—".to_owned(), String::new()),
                Some(g) if !g.verdict.passed => ("failed".to_owned(), g.verdict.reasons.join("; ")),
                Some(g) if g.awaiting_approval => ("awaiting approval".to_owned(), String::new()),
                Some(_) => ("passed".to_owned(), String::new()),
            };
            let metrics: Vec<Option<f64>> = metric_names.iter().map(|n| m.metrics.get(n)).collect();
            VersionRow {
                version: m.version,
                registered: when(&m.registered_at),
                run: m.lineage.run_id.clone(),
                dataset: m.lineage.dataset.to_string(),
                dataset_version: m.lineage.dataset_version,
                shown: metrics
                    .iter()
                    .map(|x| x.map_or("—".to_owned(), |x| format!("{x:.4}")))
                    .collect(),
                metrics,
                approvable: v
                    .gate
                    .as_ref()
                    .is_some_and(|g| g.verdict.passed && g.awaiting_approval)
                    && staging.is_some_and(|s| s.version == m.version)
                    && production.is_none_or(|p| p.version != m.version),
                gate,
                reasons,
            }
        })
        .collect();
    if let Some(i) = metric_names.iter().position(|n| *n == sort) {
        let lower = lower_is_better(&sort);
        // Versions without the metric last, whichever way.
        rows.sort_by(|a, b| match (a.metrics[i], b.metrics[i]) {
            (Some(x), Some(y)) if lower => x.total_cmp(&y),
            (Some(x), Some(y)) => y.total_cmp(&x),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => b.version.cmp(&a.version),
        });
    }
    let timeline: Vec<ReleaseRow> = releases
        .iter()
        .enumerate()
        .rev()
        .map(|(i, r)| ReleaseRow {
            id: r.id.clone(),
            alias: r.alias.clone(),
            version: r.version,
            at: when(&r.at),
            until: releases[i + 1..]
                .iter()
                .find(|n| n.alias == r.alias)
                .map(|n| when(&n.at)),
            actor: r.actor.clone(),
            reason: r.reason.clone(),
            rolls_back: r.rolls_back.clone(),
        })
        .collect();
    let at = q.at.filter(|s| !s.trim().is_empty()).map(|asked| AtAnswer {
        // From the releases read above, not a second read of them.
        answer: parse_time(&asked)
            .map(|t| sluice_shared::registry::release_at(&releases, PRODUCTION, t).cloned()),
        asked,
    });
    let status = match &at {
        Some(AtAnswer { answer: Err(_), .. }) => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    };
    Ok(html(
        status,
        ModelPage {
            frame: Frame::of(&session),
            model: model.to_string(),
            metric_names,
            sort,
            versions: rows,
            total_versions: total,
            releases: timeline,
            production: production.map(|p| p.version),
            at,
        },
    ))
}

#[derive(Template)]
#[template(path = "console/compare.html")]
struct ComparePage {
    frame: Frame,
    model: String,
    a: u32,
    b: u32,
    runs: (String, String),
    data: ((String, u32), (String, u32)),
    metrics: Vec<(String, String, String, String)>,
    signature: Vec<String>,
}

#[derive(Deserialize)]
pub struct CompareQuery {
    a: Option<String>,
    b: Option<String>,
}

/// Two versions side by side: metrics (with b − a) and signature differences.
pub async fn compare(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
    Query(q): Query<CompareQuery>,
) -> Page {
    let model = parse(&session, &name)?;
    let (Some(a), Some(b)) = (q.a, q.b) else {
        return Err(refused(
            &session,
            "a, b: name the two versions to compare, as ?a=1&b=2",
        ));
    };
    let (a, b) = match (
        a.trim_start_matches('v').parse::<u32>(),
        b.trim_start_matches('v').parse::<u32>(),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(_), _) => {
            return Err(refused(
                &session,
                format!("a: {a:?} is not a version number"),
            ));
        }
        (_, Err(_)) => {
            return Err(refused(
                &session,
                format!("b: {b:?} is not a version number"),
            ));
        }
    };
    let c = match catalog::compare(state.runs.registry(), &model, a, b).await {
        Ok(c) => c,
        Err(e) => return Err(failed(&session, e)),
    };
    let show = |x: Option<f64>| x.map_or("—".to_owned(), |x| format!("{x:.4}"));
    Ok(html(
        StatusCode::OK,
        ComparePage {
            frame: Frame::of(&session),
            model: model.to_string(),
            a,
            b,
            runs: (c.a.lineage.run_id.clone(), c.b.lineage.run_id.clone()),
            data: (
                (c.a.lineage.dataset.to_string(), c.a.lineage.dataset_version),
                (c.b.lineage.dataset.to_string(), c.b.lineage.dataset_version),
            ),
            metrics: c
                .metrics
                .iter()
                .map(|(n, x, y)| {
                    let delta = match (x, y) {
                        (Some(x), Some(y)) => format!("{:+.4}", y - x),
                        _ => "—".into(),
                    };
                    (n.clone(), show(*x), show(*y), delta)
                })
                .collect(),
            signature: c.signature,
        },
    ))
}

/// A node of the lineage, as the list beside the graph shows it.
struct Step {
    stage: &'static str,
    label: String,
    detail: String,
    link: Option<String>,
}

#[derive(Template)]
#[template(path = "console/lineage.html")]
struct LineagePage {
    frame: Frame,
    model: String,
    version: u32,
    /// The request the lineage was asked from, when it was.
    request: Option<String>,
    graph: String,
    steps: Vec<Step>,
    releases: Vec<Step>,
}

/// The chain upload → dataset version → run → model version → releases, as steps and
/// as a graph; with a prediction, the release that served it and the prediction last.
fn lineage_page(
    session: &Session,
    found: &VersionLineage,
    prediction: Option<(&catalog::PredictionLineage, &str)>,
) -> LineagePage {
    let v = &found.version;
    let l = &v.lineage;
    let model = v.model.to_string();
    let mut steps = vec![
        Step {
            stage: "Upload",
            label: found
                .dataset
                .as_ref()
                .map_or_else(|| l.source_uri.clone(), |m| m.source.key.to_string()),
            detail: found.dataset.as_ref().map_or_else(
                || "its dataset version is gone".into(),
                |m| format!("etag {}", m.source.etag),
            ),
            link: None,
        },
        Step {
            stage: "Dataset version",
            label: format!("{}@v{}", l.dataset, l.dataset_version),
            detail: format!(
                "sha256 {}…",
                l.dataset_sha256.chars().take(12).collect::<String>()
            ),
            link: Some(format!(
                "{ROOT}/datasets/{}/versions/{}",
                l.dataset, l.dataset_version
            )),
        },
        Step {
            stage: "Run",
            label: l.run_id.clone(),
            detail: found.run.as_ref().map_or_else(
                || "its record is gone".into(),
                |r| {
                    format!(
                        "{} by {}, {}",
                        r.trigger,
                        r.requested_by,
                        serde_name(r.status)
                    )
                },
            ),
            link: found.run.as_ref().map(|r| format!("{ROOT}/runs/{}", r.id)),
        },
        Step {
            stage: "Model version",
            label: format!("{model}@v{}", v.version),
            detail: format!("{}, requested by {}", l.algorithm, l.requested_by),
            link: Some(format!("{ROOT}/models/{model}/versions/{}", v.version)),
        },
    ];
    let releases: Vec<Step> = found
        .releases
        .iter()
        .map(|r| Step {
            stage: "Release",
            label: r.id.clone(),
            detail: format!("{} by {}", when(&r.at), r.actor),
            link: Some(format!("{ROOT}/models/{model}#{}", r.id)),
        })
        .collect();
    let mut columns: Vec<Vec<[String; 2]>> = steps
        .iter()
        .map(|s| vec![[s.stage.to_owned(), s.label.clone()]])
        .collect();
    let mut edges: Vec<((usize, usize), (usize, usize))> =
        (0..steps.len() - 1).map(|i| ((i, 0), (i + 1, 0))).collect();
    let model_column = steps.len() - 1;
    if !releases.is_empty() {
        columns.push(
            releases
                .iter()
                .map(|r| ["Release".to_owned(), r.label.clone()])
                .collect(),
        );
        edges.extend((0..releases.len()).map(|i| ((model_column, 0), (model_column + 1, i))));
    }
    if let Some((p, request)) = prediction {
        let served = p.served_by.as_ref().map(|r| r.id.clone());
        let from = served
            .as_ref()
            .and_then(|id| releases.iter().position(|r| &r.label == id))
            .map_or((model_column, 0), |i| (model_column + 1, i));
        columns.push(vec![["Prediction".to_owned(), request.to_owned()]]);
        edges.push((from, (columns.len() - 1, 0)));
        steps.push(Step {
            stage: "Prediction",
            label: request.to_owned(),
            detail: format!(
                "{} row(s) at {}{}",
                p.prediction.rows.len(),
                when(&p.prediction.scored_at),
                served.map_or_else(String::new, |id| format!(", served by {id}"))
            ),
            link: None,
        });
    }
    let label = format!("Lineage of {model}@v{}", v.version);
    LineagePage {
        frame: Frame::of(session),
        model,
        version: v.version,
        request: prediction.map(|(_, r)| r.to_owned()),
        graph: chart::graph(&label, &chart::Graph { columns, edges }),
        steps,
        releases,
    }
}

/// A version's lineage.
pub async fn lineage(
    State(state): State<AppState>,
    session: Session,
    Path((name, version)): Path<(String, String)>,
) -> Page {
    let model = parse(&session, &name)?;
    let version = number(&session, &model, &version)?;
    let found = catalog::lineage(&state.runs, &model, version)
        .await
        .map_err(|e| failed(&session, e))?;
    Ok(html(StatusCode::OK, lineage_page(&session, &found, None)))
}

#[derive(Deserialize)]
pub struct PredictionQuery {
    request_id: Option<String>,
}

/// How far back a prediction's request id is looked for.
const PREDICTION_LOOKBACK_DAYS: i64 = 30;

/// The lineage of a logged prediction, from its request id.
pub async fn prediction(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
    Query(q): Query<PredictionQuery>,
) -> Page {
    let model = parse(&session, &name)?;
    let Some(request) = q
        .request_id
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty())
    else {
        return Err(refused(
            &session,
            "request_id: give the request id a prediction answered with",
        ));
    };
    let found = catalog::prediction_lineage(
        &state.runs,
        &model,
        &request,
        Utc::now(),
        PREDICTION_LOOKBACK_DAYS,
    )
    .await
    .map_err(|e| failed(&session, e))?
    .ok_or_else(|| {
        missing(
            &session,
            format!(
                "The prediction log of {model} has no request {request:?} in the last \
                 {PREDICTION_LOOKBACK_DAYS} days (only a sample of requests is logged)."
            ),
        )
    })?;
    Ok(html(
        StatusCode::OK,
        lineage_page(&session, &found.lineage, Some((&found, &request))),
    ))
}

/// One drift report on the monitoring page.
struct ReportRow {
    release: String,
    window: u32,
    from: String,
    to: String,
    rows: u64,
    verdict: String,
    drifted: String,
    retrain_run: Option<String>,
}

/// One feature's statistic over the windows.
struct FeatureView {
    column: String,
    statistic: String,
    chart: String,
    latest: String,
    threshold: String,
}

struct LiveRow {
    version: u32,
    labelled: u64,
    metrics: Vec<String>,
}

struct DeliveryRow {
    webhook: String,
    kind: String,
    outcome: String,
    status: String,
    attempts: u32,
    finished: String,
}

#[derive(Template)]
#[template(path = "console/monitoring.html")]
struct MonitoringPage {
    frame: Frame,
    model: String,
    features: Vec<FeatureView>,
    reports: Vec<ReportRow>,
    guard: Option<String>,
    metric_names: Vec<String>,
    live: Vec<LiveRow>,
    feedback: Vec<(String, String, u64, u64, u64, u64)>,
    deliveries: Vec<DeliveryRow>,
    events: Vec<EventRow>,
}

/// How many of the latest events the monitoring page looks through for the model's.
const EVENTS_SEARCHED: usize = 100;

/// How many drift reports, deliveries and events the monitoring page lists.
const MONITORING_SHOWN: usize = 50;

/// A production model's monitoring: drift per feature over time against its threshold,
/// the reports, live metrics from ground truth, and the notifications sent about it.
pub async fn monitoring(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
) -> Page {
    let model = parse(&session, &name)?;
    let reports = match state.monitor.reports(&model).await {
        Ok(r) => r,
        Err(e) => return Err(unavailable(&session, e)),
    };
    // The task of what is monitored: production's version (two reads), or, before a
    // release, the newest version's (a listing of every version).
    let registry = state.runs.registry();
    let production = registry
        .alias(&model, PRODUCTION)
        .await
        .map_err(|e| failed(&session, e))?;
    let task = match production {
        Some((alias, _)) => registry
            .version(&model, alias.release.version)
            .await
            .map(|v| Some(v.signature.task)),
        None => registry.task(&model).await,
    }
    .map_err(|e| failed(&session, e))?
    .ok_or_else(|| missing(&session, format!("There is no model {model}.")))?;
    let (live, feedback) = match (
        state.monitor.live(&model).await,
        state.monitor.feedback(&model).await,
    ) {
        (Ok(l), Ok(f)) => (l, f),
        (Err(e), _) | (_, Err(e)) => return Err(unavailable(&session, e)),
    };
    // Each column's statistic per judged window, in time order.
    let mut judged: Vec<_> = reports
        .iter()
        .filter(|r| r.verdict != sluice_shared::monitoring::Verdict::TooFewRows)
        .collect();
    judged.sort_by_key(|r| r.to);
    let mut columns: Vec<String> = Vec::new();
    for r in &judged {
        for c in &r.columns {
            if !columns.contains(&c.column) {
                columns.push(c.column.clone());
            }
        }
    }
    let features = columns
        .iter()
        .map(|column| {
            let points: Vec<(i64, f64, f64, String)> = judged
                .iter()
                .filter_map(|r| {
                    let c = r.columns.iter().find(|c| &c.column == column)?;
                    Some((
                        r.to.timestamp(),
                        c.value,
                        c.threshold,
                        serde_name(c.statistic),
                    ))
                })
                .collect();
            let last = points.last().cloned();
            let series: Vec<(i64, f64)> = points.iter().map(|p| (p.0, p.1)).collect();
            FeatureView {
                column: column.clone(),
                statistic: last.as_ref().map(|p| p.3.clone()).unwrap_or_default(),
                chart: chart::over_time(
                    &format!("Drift of {column} over time against its threshold"),
                    &series,
                    last.as_ref().map(|p| p.2),
                ),
                latest: last.as_ref().map_or("—".into(), |p| format!("{:.4}", p.1)),
                threshold: last.as_ref().map_or("—".into(), |p| format!("{:.4}", p.2)),
            }
        })
        .collect();
    let metric_names: Vec<String> = task.metrics().iter().map(|m| (*m).to_owned()).collect();
    // An event's subject path names the model, or something of it.
    let path = format!("models/{model}");
    let about = |subject: &str| {
        subject
            .strip_prefix(&path)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    let mut deliveries = Vec::new();
    for webhook in state.notifier.webhooks() {
        match state.notifier.deliveries(&webhook.name).await {
            Ok(found) => {
                deliveries.extend(found.into_iter().filter(|d| about(&d.subject)).map(|d| {
                    DeliveryRow {
                        webhook: d.webhook,
                        kind: d.kind,
                        outcome: serde_name(d.outcome),
                        status: d.status.map_or("—".into(), |s| s.to_string()),
                        attempts: d.attempts,
                        finished: when(&d.finished_at),
                    }
                }))
            }
            Err(e) => return Err(unavailable(&session, e)),
        }
    }
    deliveries.sort_by(|a, b| b.finished.cmp(&a.finished));
    deliveries.truncate(MONITORING_SHOWN);
    let events = match state.runs.audit().recent(EVENTS_SEARCHED).await {
        Ok(records) => records
            .iter()
            .map(EventRow::of)
            .filter(|e| about(&e.subject))
            .take(MONITORING_SHOWN)
            .collect(),
        Err(e) => return Err(unavailable(&session, e)),
    };
    let mut newest: Vec<_> = reports.iter().collect();
    newest.sort_by_key(|r| std::cmp::Reverse(r.to));
    Ok(html(
        StatusCode::OK,
        MonitoringPage {
            frame: Frame::of(&session),
            model: model.to_string(),
            features,
            reports: newest
                .into_iter()
                .take(MONITORING_SHOWN)
                .map(|r| ReportRow {
                    release: r.release.clone(),
                    window: r.window,
                    from: when(&r.from),
                    to: when(&r.to),
                    rows: r.rows,
                    verdict: serde_name(r.verdict),
                    drifted: r.drifted().join(", "),
                    retrain_run: r.retrain_run.clone(),
                })
                .collect(),
            guard: live.as_ref().and_then(|l| l.guard.as_ref()).map(|g| {
                format!(
                    "{}: {} (v{}) at {} over {} labels (judged from {}){}",
                    g.bound,
                    g.value.map_or("—".into(), |v| format!("{v:.4}")),
                    g.model_version,
                    g.release,
                    g.labelled,
                    g.min_labelled,
                    if g.breached { " — breached" } else { "" }
                )
            }),
            live: live
                .iter()
                .flat_map(|l| &l.versions)
                .map(|v| LiveRow {
                    version: v.model_version,
                    labelled: v.labelled,
                    metrics: metric_names
                        .iter()
                        .map(|n| v.metrics.get(n).map_or("—".into(), |x| format!("{x:.4}")))
                        .collect(),
                })
                .collect(),
            metric_names,
            feedback: feedback
                .iter()
                .map(|f| {
                    (
                        f.batch.clone(),
                        when(&f.received_at),
                        f.labels,
                        f.matched,
                        f.pending,
                        f.unknown,
                    )
                })
                .collect(),
            deliveries,
            events,
        },
    ))
}

#[derive(Default, Deserialize)]
pub struct ChangeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

/// Checks a change's form: the session's CSRF token, an admin session, and a reason
/// (the console asks for one; `default` is what the API records without one).
fn change_form(
    session: &Session,
    form: Result<Form<ChangeForm>, FormRejection>,
    default: &str,
) -> Result<String, Problem> {
    // A form that cannot be read carries no token.
    let form = form.map_or_else(|_| ChangeForm::default(), |Form(f)| f);
    session.check_csrf(&form.csrf)?;
    if session.role != Role::Admin {
        return Err(Problem::new(
            session,
            StatusCode::FORBIDDEN,
            "Forbidden",
            "A viewer session reads and changes nothing: sign in with an admin key to \
             approve or roll back.",
        ));
    }
    match form.reason.trim() {
        "" => Err(refused(
            session,
            format!("reason: say why ({default}, …); the audit trail records it"),
        )),
        reason => Ok(reason.to_owned()),
    }
}

/// Approves a version waiting in staging: the API's `approve`, audited as the session's
/// key, with the reason the form gives.
pub async fn approve(
    State(state): State<AppState>,
    session: Session,
    Path((name, version)): Path<(String, String)>,
    form: Result<Form<ChangeForm>, FormRejection>,
) -> Page {
    let reason = change_form(&session, form, APPROVED)?;
    let model = parse(&session, &name)?;
    let version = number(&session, &model, &version)?;
    let change = Change {
        actor: &session.actor,
        reason: &reason,
        correlation_id: &uuid::Uuid::new_v4().to_string(),
    };
    match state.releases.approve(&model, version, change).await {
        Ok(release) => {
            tracing::info!(model = %model, model_version = version, release = %release.id, "approved from the console");
            Ok(Redirect::to(&format!("{ROOT}/models/{model}")).into_response())
        }
        Err(e) => Err(failed(&session, e)),
    }
}

/// Returns production to its previous release: the API's `rollback`.
pub async fn rollback(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
    form: Result<Form<ChangeForm>, FormRejection>,
) -> Page {
    let reason = change_form(&session, form, ROLLBACK_REQUESTED)?;
    let model = parse(&session, &name)?;
    let change = Change {
        actor: &session.actor,
        reason: &reason,
        correlation_id: &uuid::Uuid::new_v4().to_string(),
    };
    match state.releases.rollback(&model, change).await {
        Ok(release) => {
            tracing::info!(model = %model, release = %release.id, "rolled back from the console");
            Ok(Redirect::to(&format!("{ROOT}/models/{model}")).into_response())
        }
        Err(e) => Err(failed(&session, e)),
    }
}
