//! Datasets: every dataset, a dataset's versions and quarantined uploads, a version with
//! its contract, its profile drawn per column and what was trained on it, and a
//! quarantine report with each broken rule and its example rows.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use sluice_shared::catalog::datasets::{self as catalog, QuarantineSummary, VersionSummary};
use sluice_shared::dataset::DatasetName;
use sluice_shared::dataset::profile::ColumnProfile;

use super::runs::RunRow;
use super::session::Session;
use super::{Frame, Page, Problem, chart, html, missing, serde_name, unavailable, when};
use crate::host::state::AppState;

/// How many versions and quarantined uploads a dataset's page lists (the newest).
const SHOWN: usize = 50;

struct DatasetRow {
    name: String,
    versions: usize,
    latest: Option<VersionSummary>,
    quarantined: usize,
}

#[derive(Template)]
#[template(path = "console/datasets.html")]
struct DatasetsPage {
    frame: Frame,
    datasets: Vec<DatasetRow>,
}

pub async fn list(State(state): State<AppState>, session: Session) -> Page {
    let found = catalog::datasets(state.store.as_ref())
        .await
        .map_err(|e| unavailable(&session, e))?;
    Ok(html(
        StatusCode::OK,
        DatasetsPage {
            frame: Frame::of(&session),
            datasets: found
                .into_iter()
                .map(|d| DatasetRow {
                    name: d.dataset.to_string(),
                    versions: d.versions,
                    latest: d.latest,
                    quarantined: d.quarantined,
                })
                .collect(),
        },
    ))
}

#[derive(Template)]
#[template(path = "console/dataset.html")]
struct DatasetPage {
    frame: Frame,
    name: String,
    versions: Vec<VersionSummary>,
    total_versions: usize,
    quarantined: Vec<QuarantineSummary>,
    total_quarantined: usize,
}

fn parse(session: &Session, name: &str) -> Result<DatasetName, Problem> {
    DatasetName::parse(name).map_err(|_| missing(session, format!("There is no dataset {name:?}.")))
}

pub async fn dataset(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
) -> Page {
    let dataset = parse(&session, &name)?;
    let d = catalog::dataset(state.store.as_ref(), &dataset, SHOWN)
        .await
        .map_err(|e| unavailable(&session, e))?
        .ok_or_else(|| missing(&session, format!("There is no dataset {dataset}.")))?;
    Ok(html(
        StatusCode::OK,
        DatasetPage {
            frame: Frame::of(&session),
            name: d.dataset.to_string(),
            versions: d.versions,
            total_versions: d.total_versions,
            quarantined: d.quarantined,
            total_quarantined: d.total_quarantined,
        },
    ))
}

/// One column's profile, drawn.
struct ColumnView {
    name: String,
    kind: String,
    nulls: u64,
    null_share: String,
    distinct: String,
    /// min, max, mean, std (numbers).
    summary: Option<[String; 4]>,
    /// The chart (empty when there is nothing to draw) and its rows: label, count.
    chart: String,
    bars: Vec<(String, u64)>,
    /// Rows outside the top values (categories).
    other: u64,
}

fn column_view(p: &ColumnProfile) -> ColumnView {
    let non_null = p.count.saturating_sub(p.nulls);
    let (chart, bars, other) = match &p.numeric {
        Some(n) => {
            let bins: Vec<(f64, f64, u64)> =
                n.histogram.iter().map(|b| (b.lo, b.hi, b.count)).collect();
            (
                chart::histogram(&format!("Histogram of {}", p.name), &bins),
                n.histogram
                    .iter()
                    .map(|b| (format!("[{}, {})", b.lo, b.hi), b.count))
                    .collect(),
                0,
            )
        }
        None => {
            let shares: Vec<(String, f64)> = p
                .top_values
                .iter()
                .map(|v| (v.value.clone(), v.count as f64 / non_null.max(1) as f64))
                .collect();
            let shown: u64 = p.top_values.iter().map(|v| v.count).sum();
            (
                chart::shares(&format!("Share of each value of {}", p.name), &shares),
                p.top_values
                    .iter()
                    .map(|v| (v.value.clone(), v.count))
                    .collect(),
                non_null.saturating_sub(shown),
            )
        }
    };
    ColumnView {
        name: p.name.clone(),
        kind: serde_name(p.kind),
        nulls: p.nulls,
        null_share: format!("{:.1}%", 100.0 * p.nulls as f64 / p.count.max(1) as f64),
        distinct: if p.distinct_exact {
            p.distinct.to_string()
        } else {
            format!("≈{}", p.distinct)
        },
        summary: p
            .numeric
            .as_ref()
            .map(|n| [n.min, n.max, n.mean, n.std].map(|x| format!("{x:.4}"))),
        chart,
        bars,
        other,
    }
}

#[derive(Template)]
#[template(path = "console/dataset_version.html")]
struct VersionPage {
    frame: Frame,
    name: String,
    version: u32,
    rows: u64,
    bytes: u64,
    sha256: String,
    format: String,
    source: String,
    source_etag: String,
    uploader: String,
    created: String,
    contract_version: u32,
    contract_inferred: bool,
    contract: String,
    parent: Option<u32>,
    null_chart: String,
    columns: Vec<ColumnView>,
    runs: Vec<RunRow>,
    models: Vec<(String, u32)>,
}

pub async fn version(
    State(state): State<AppState>,
    session: Session,
    Path((name, version)): Path<(String, String)>,
) -> Page {
    let dataset = parse(&session, &name)?;
    let Ok(number) = version.trim_start_matches('v').parse::<u32>() else {
        return Err(missing(
            &session,
            format!("{dataset} has no version {version:?}."),
        ));
    };
    let found = catalog::version(&state.runs, &dataset, number)
        .await
        .map_err(|e| unavailable(&session, e))?
        .ok_or_else(|| missing(&session, format!("{dataset} has no version {number}.")))?;
    let m = &found.manifest;
    let nulls: Vec<(String, f64)> = m
        .profile
        .iter()
        .map(|p| (p.name.clone(), p.nulls as f64 / p.count.max(1) as f64))
        .collect();
    Ok(html(
        StatusCode::OK,
        VersionPage {
            frame: Frame::of(&session),
            name: m.dataset.to_string(),
            version: m.version,
            rows: m.rows,
            bytes: m.bytes,
            sha256: m.content_sha256.clone(),
            format: serde_name(m.format),
            source: m.source.key.to_string(),
            source_etag: m.source.etag.clone(),
            uploader: m.source.uploader.clone().unwrap_or_else(|| "—".into()),
            created: when(&m.created_at),
            contract_version: m.contract_version,
            contract_inferred: m.contract_inferred,
            contract: found
                .contract
                .as_ref()
                .and_then(|c| serde_json::to_string_pretty(c).ok())
                .unwrap_or_else(|| "(no longer stored)".into()),
            parent: m.parent_version,
            null_chart: chart::shares("Share of nulls in each column", &nulls),
            columns: m.profile.iter().map(column_view).collect(),
            runs: found.runs.iter().map(RunRow::of).collect(),
            models: found
                .models
                .iter()
                .map(|(m, v)| (m.to_string(), *v))
                .collect(),
        },
    ))
}

struct ViolationView {
    rule: String,
    column: String,
    message: String,
    count: u64,
    examples: Vec<(u64, String)>,
}

#[derive(Template)]
#[template(path = "console/quarantine.html")]
struct QuarantinePage {
    frame: Frame,
    name: String,
    id: String,
    source: String,
    copy: String,
    rows: u64,
    bytes: u64,
    format: String,
    contract_version: u32,
    at: String,
    violations: Vec<ViolationView>,
}

pub async fn quarantine(
    State(state): State<AppState>,
    session: Session,
    Path((name, id)): Path<(String, String)>,
) -> Page {
    let dataset = parse(&session, &name)?;
    let r = catalog::quarantine(state.store.as_ref(), &dataset, &id)
        .await
        .map_err(|e| unavailable(&session, e))?
        .ok_or_else(|| {
            missing(
                &session,
                format!("{dataset} has no quarantined upload {id:?}."),
            )
        })?;
    Ok(html(
        StatusCode::OK,
        QuarantinePage {
            frame: Frame::of(&session),
            name: dataset.to_string(),
            id,
            source: r.source.key.to_string(),
            copy: r.copy.key.to_string(),
            rows: r.rows,
            bytes: r.bytes,
            format: serde_name(r.format),
            contract_version: r.contract_version,
            at: when(&r.quarantined_at),
            violations: r
                .validation
                .violations
                .iter()
                .map(|v| ViolationView {
                    rule: serde_name(v.rule),
                    column: v.column.clone().unwrap_or_else(|| "—".into()),
                    message: v.message.clone(),
                    count: v.count,
                    examples: v
                        .examples
                        .iter()
                        .map(|e| (e.row, e.value.clone()))
                        .collect(),
                })
                .collect(),
        },
    ))
}
