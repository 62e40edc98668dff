//! The agent's HTTP API (axum), served by `warden run` when `[http]` is set.
//!
//! | method and path                     | auth   | what                                   |
//! |-------------------------------------|--------|----------------------------------------|
//! | `POST /api/v1/alerts`               | bearer | Alertmanager (version 4) or Grafana (version 1) webhook, plain or gzip |
//! | `POST /api/v1/runs`                 | bearer | request a run: plugin, target, params, dry_run |
//! | `GET  /api/v1/runs?limit=&status=&plugin=&target=` | bearer | newest runs          |
//! | `GET  /api/v1/runs/{id}`            | bearer | one run record                         |
//! | `POST /api/v1/runs/{id}/approve`    | approver | approve a plan                        |
//! | `POST /api/v1/runs/{id}/reject`     | approver | reject a plan (`{"reason": "..."}`)   |
//! | `GET  /api/v1/circuits`             | bearer | circuit breakers by rule               |
//! | `POST /api/v1/circuits/{rule}/reset`| bearer | close a circuit breaker                |
//! | `GET  /metrics`                     | none   | Prometheus text format                 |
//! | `GET  /healthz`, `GET /readyz`      | none   | liveness; readiness (503 while starting or draining) |
//!
//! `bearer` is the shared API token (`[http] token_env`); `approver` is a
//! person's own token (`[[http.approver]]`): the approval records that
//! person (`decided_by`, `decided_via = "api-token"`). The shared token
//! cannot approve or reject (403), so that every approval names the person
//! who made it; an approver's token may approve, reject and read one run
//! (`GET /api/v1/runs/{id}`), nothing else (403). A body's `by`, if given,
//! must be the token's person (422 otherwise).
//!
//! Answers are JSON. Errors are `{"error": "...", "problems": [...]}` with
//! 400 (malformed JSON), 401 (missing or wrong token; checked before the
//! body is read), 404, 408 (request not complete within `request_timeout`),
//! 409 (a plan no longer waiting), 413 (body over `max_body`, also once
//! gzip-decoded), 415 (a `Content-Encoding` other than gzip), 422 (valid
//! JSON, wrong content: version, a field of the wrong type or a label given
//! twice, with the field's path, unknown target, ...) and 503 (shutting
//! down, state database failing). An alert is answered 200 only after it
//! is committed to the state database. The listener's timeouts and
//! connection cap (503 in plain text when every connection carries a
//! request) are in [`super::http_serve`].

use crate::agent::Agent;
use crate::dispatch::admit::{Admitter, Request};
use crate::dispatch::guardrails::Guardrails;
use crate::dispatch::queue::Dispatcher;
use crate::runs::approvals::{self, ApprovalError};
use crate::runs::{RunRecord, RunStatus, Trigger};
use crate::telemetry;
use crate::triggers::alertmanager::{self, PayloadError};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use subtle::ConstantTimeEq;
use tracing::Instrument as _;

/// What the handlers share.
pub struct Api {
    pub agent: Arc<Agent>,
    pub admitter: Admitter,
    pub dispatcher: Arc<Dispatcher>,
    pub guardrails: Arc<Mutex<Guardrails>>,
    /// The bearer token, as bytes.
    pub token: Vec<u8>,
    /// The approvers: name and own token (bytes).
    pub approvers: Vec<(String, Vec<u8>)>,
    pub ready: AtomicBool,
}

/// The router, with the body limit applied to every route. The token of
/// an `/api/` call is checked before its body is read, so that a client
/// without it cannot make the agent wait for, or hold, a body.
pub fn router(api: Arc<Api>, max_body: usize) -> Router {
    Router::new()
        .route(
            "/api/v1/alerts",
            post(move |state, headers, body| post_alerts(state, headers, body, max_body)),
        )
        .route("/api/v1/runs", post(post_run).get(list_runs))
        .route("/api/v1/runs/{id}", get(get_run))
        .route("/api/v1/runs/{id}/approve", post(approve))
        .route("/api/v1/runs/{id}/reject", post(reject))
        .route("/api/v1/circuits", get(circuits))
        .route("/api/v1/circuits/{rule}/reset", post(reset_circuit))
        .route_layer(axum::middleware::from_fn_with_state(
            api.clone(),
            token_first,
        ))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(api)
}

/// An error answer.
struct ApiError {
    code: StatusCode,
    error: String,
    problems: Vec<String>,
}

impl ApiError {
    fn new(code: StatusCode, error: impl Into<String>) -> ApiError {
        ApiError {
            code,
            error: error.into(),
            problems: Vec::new(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.error });
        if !self.problems.is_empty() {
            body["problems"] = json!(self.problems);
        }
        let mut resp = (self.code, axum::Json(body)).into_response();
        if self.code == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"warden\""),
            );
        }
        resp
    }
}

type ApiResult = Result<Response, ApiError>;

/// Who a request's token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Caller {
    /// The shared API token.
    Shared,
    /// An approver's own token.
    Approver(String),
}

/// Checks `Authorization: Bearer TOKEN` in constant time against the shared
/// token and every approver's, and says whose it is.
fn identify(api: &Api, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing `Authorization: Bearer <token>` header",
        ));
    };
    let given = value.as_bytes().strip_prefix(b"Bearer ").ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "the Authorization header is not `Bearer <token>`",
        )
    })?;
    // Compare digests, so that the time taken says nothing about the
    // token's length either.
    use sha2::Digest as _;
    let a = sha2::Sha256::digest(given);
    let same = |token: &[u8]| {
        let b = sha2::Sha256::digest(token);
        bool::from(a.as_slice().ct_eq(b.as_slice()))
    };
    // Every token is compared (no early exit), so the time taken does not
    // say which one matched.
    let mut caller = None;
    if same(&api.token) {
        caller = Some(Caller::Shared);
    }
    for (name, token) in &api.approvers {
        if same(token) && !given.is_empty() {
            caller = Some(Caller::Approver(name.clone()));
        }
    }
    caller.ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "wrong token"))
}

/// Admits the shared token only.
fn authorize(api: &Api, headers: &HeaderMap) -> Result<(), ApiError> {
    match identify(api, headers)? {
        Caller::Shared => Ok(()),
        Caller::Approver(name) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "the token of approver `{name}` may only approve, reject and read runs; use the shared API token"
            ),
        )),
    }
}

/// Admits an approver's token only: the person who decides.
fn approver(api: &Api, headers: &HeaderMap) -> Result<String, ApiError> {
    match identify(api, headers)? {
        Caller::Approver(name) => Ok(name),
        Caller::Shared if api.approvers.is_empty() => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "the shared API token cannot approve or reject plans: add an [[http.approver]] with \
             its own token for each person who may, and use that token",
        )),
        Caller::Shared => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "the shared API token cannot approve or reject plans: use your own approver token",
        )),
    }
}

/// Answers 401 to an `/api/` call without the token before its body is
/// read (the handlers check the token again).
async fn token_first(
    State(api): State<Arc<Api>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match identify(&api, request.headers()) {
        Ok(_) => next.run(request).await,
        Err(e) => {
            if request.uri().path() == "/api/v1/alerts" {
                api.agent
                    .metrics
                    .webhook_request(StatusCode::UNAUTHORIZED.as_u16());
            }
            e.into_response()
        }
    }
}

fn traceparent(headers: &HeaderMap) -> Option<String> {
    let v = headers.get("traceparent")?.to_str().ok()?;
    // version-traceid-parentid-flags, lowercase hex.
    let parts: Vec<&str> = v.trim().split('-').collect();
    let ok = parts.len() == 4
        && parts[0].len() == 2
        && parts[1].len() == 32
        && parts[2].len() == 16
        && parts[3].len() == 2
        && parts
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_hexdigit()));
    ok.then(|| v.trim().to_ascii_lowercase())
}

async fn post_alerts(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    body: Bytes,
    max_body: usize,
) -> Response {
    let span = tracing::info_span!(
        "warden.webhook",
        otel.kind = "server",
        http.route = "/api/v1/alerts"
    );
    telemetry::set_parent_from_traceparent(&span, traceparent(&headers).as_deref(), None);
    // This request's span is the parent of the runs it admits: its context
    // is stored with each queued run, which a worker runs later.
    let parent = telemetry::traceparent_of(&span);
    let resp = handle_alerts(&api, &headers, body, max_body, parent)
        .instrument(span)
        .await
        .unwrap_or_else(IntoResponse::into_response);
    api.agent.metrics.webhook_request(resp.status().as_u16());
    resp
}

async fn handle_alerts(
    api: &Api,
    headers: &HeaderMap,
    body: Bytes,
    max_body: usize,
    parent: Option<String>,
) -> ApiResult {
    authorize(api, headers)?;
    if api.dispatcher.is_draining() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the agent is shutting down",
        ));
    }
    let encoding = headers.get(header::CONTENT_ENCODING).map(|v| v.as_bytes());
    let alerts = alertmanager::decode(encoding, &body, max_body)
        .and_then(|body| alertmanager::parse(&body))
        .map_err(|e| match e {
            PayloadError::Malformed(m) => ApiError::new(StatusCode::BAD_REQUEST, m),
            PayloadError::TooLarge(m) => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, m),
            PayloadError::Unsupported(m) => ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, m),
            PayloadError::Invalid(problems) => ApiError {
                code: StatusCode::UNPROCESSABLE_ENTITY,
                error: "the payload is not a valid alert webhook (Alertmanager version 4 or Grafana version 1)".into(),
                problems,
            },
        })?;
    if let Err(problems) = crate::dispatch::admit::check_alerts(&api.agent, &alerts) {
        return Err(ApiError {
            code: StatusCode::UNPROCESSABLE_ENTITY,
            error: "some alerts name no configured target; nothing was accepted".into(),
            problems,
        });
    }
    api.agent.metrics.alerts_received(alerts.len() as u64);
    // The webhook request's span becomes the parent of each run's span.
    let traceparent = parent;
    let admitted = api
        .admitter
        .admit(Request::Alerts {
            alerts,
            traceparent,
        })
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    let runs: Vec<_> = admitted.runs.iter().map(run_summary).collect();
    Ok(axum::Json(json!({ "accepted": admitted.alerts, "runs": runs })).into_response())
}

fn run_summary(r: &RunRecord) -> serde_json::Value {
    json!({
        "id": r.id,
        "plugin": r.plugin,
        "target": r.target,
        "rule": r.origin(),
        "status": r.status.as_str(),
        "decision": r.decision.as_ref().map(|d| json!({"kind": d.kind.as_str(), "detail": d.detail})),
        "error": r.error.as_ref().map(|e| e.message.clone()),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunBody {
    plugin: String,
    target: String,
    #[serde(default)]
    params: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    by: Option<String>,
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        let code = if e.is_data() {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::BAD_REQUEST
        };
        ApiError::new(
            code,
            format!(
                "bad request body at line {} column {}: {e}",
                e.line(),
                e.column()
            ),
        )
    })
}

async fn post_run(State(api): State<Arc<Api>>, headers: HeaderMap, body: Bytes) -> ApiResult {
    authorize(&api, &headers)?;
    if api.dispatcher.is_draining() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the agent is shutting down",
        ));
    }
    let req: RunBody = parse_json(&body)?;
    let loaded = api.agent.loaded();
    let mut problems = Vec::new();
    if !loaded.plugins.contains_key(&req.plugin) {
        problems.push(format!(
            "plugin: no plugin named `{}` (installed: {})",
            req.plugin,
            loaded
                .plugins
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if api.agent.config.target(&req.target).is_none() {
        problems.push(format!(
            "target: no target named `{}` (configured: {})",
            req.target,
            api.agent.config.target_names().join(", ")
        ));
    }
    let mut params = BTreeMap::new();
    for (k, v) in req.params {
        let text = match v {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            other => {
                problems.push(format!(
                    "params.{k}: must be a string, number or boolean, not {other}"
                ));
                continue;
            }
        };
        params.insert(k, text);
    }
    if !problems.is_empty() {
        return Err(ApiError {
            code: StatusCode::UNPROCESSABLE_ENTITY,
            error: "the run request is invalid; nothing was queued".into(),
            problems,
        });
    }
    let by = req.by.unwrap_or_else(|| "http-api".to_string());
    let mut rec = RunRecord::new(
        &req.plugin,
        &req.target,
        Trigger::Manual { by },
        params,
        req.dry_run,
    );
    rec.traceparent = traceparent(&headers);
    let admitted = api
        .admitter
        .admit(Request::Runs(vec![rec]))
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    let rec = admitted.runs.into_iter().next().ok_or_else(|| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "admission returned no record",
        )
    })?;
    Ok((StatusCode::ACCEPTED, axum::Json(rec)).into_response())
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<u32>,
    status: Option<String>,
    plugin: Option<String>,
    target: Option<String>,
}

async fn list_runs(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> ApiResult {
    authorize(&api, &headers)?;
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(RunStatus::from_name(s).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "status: unknown status {s:?} (one of {})",
                    RunStatus::ALL.map(RunStatus::as_str).join(", ")
                ),
            )
        })?),
    };
    let runs = api
        .agent
        .store
        .list_filtered(
            q.limit.unwrap_or(50).min(1000),
            &crate::runs::RunFilter {
                status,
                plugin: q.plugin,
                target: q.target,
                since: None,
            },
        )
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}")))?;
    Ok(axum::Json(runs).into_response())
}

async fn get_run(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    identify(&api, &headers)?;
    match api.agent.store.get(&id).await {
        Ok(Some(rec)) => Ok(axum::Json(rec).into_response()),
        Ok(None) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no run with id {id}"),
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{e:#}"),
        )),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    by: Option<String>,
    reason: Option<String>,
}

fn approval_error(e: ApprovalError) -> ApiError {
    let code = match &e {
        ApprovalError::NotFound(_) => StatusCode::NOT_FOUND,
        ApprovalError::NotPending { .. } | ApprovalError::Expired { .. } => StatusCode::CONFLICT,
        ApprovalError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    ApiError::new(code, e.to_string())
}

fn decision_body(body: &[u8]) -> Result<DecisionBody, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(DecisionBody::default())
    } else {
        parse_json(body)
    }
}

/// The person deciding (from their token) and the request body; a `by`
/// naming someone else is refused.
fn decider(
    api: &Api,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(approvals::Approver, DecisionBody), ApiError> {
    let name = approver(api, headers)?;
    let b = decision_body(body)?;
    if let Some(by) = &b.by
        && by != &name
    {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "by: the token is approver `{name}`'s, not `{}`'s: a decision is recorded under the token's person",
                crate::text::Shown(by)
            ),
        ));
    }
    Ok((approvals::Approver::by_token(&name), b))
}

async fn approve(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let by = decider(&api, &headers, &body)?;
    let (plan, run) = approvals::approve(&api.agent.store, &id, &by.0)
        .await
        .map_err(approval_error)?;
    api.admitter.wake();
    Ok(axum::Json(json!({ "plan": plan, "run": run })).into_response())
}

async fn reject(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let (by, b) = decider(&api, &headers, &body)?;
    let plan = approvals::reject(&api.agent.store, &id, &by, b.reason.as_deref())
        .await
        .map_err(approval_error)?;
    Ok(axum::Json(plan).into_response())
}

async fn circuits(State(api): State<Arc<Api>>, headers: HeaderMap) -> ApiResult {
    authorize(&api, &headers)?;
    let g = api.guardrails.lock().unwrap_or_else(|p| p.into_inner());
    Ok(axum::Json(g.circuits().clone()).into_response())
}

async fn reset_circuit(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Path(rule): Path<String>,
    body: Bytes,
) -> ApiResult {
    authorize(&api, &headers)?;
    if api.agent.policies().rule(&rule).is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no rule named `{rule}`"),
        ));
    }
    let b = decision_body(&body)?;
    let by = b.by.unwrap_or_else(|| "http-api".into());
    let circuit = api
        .guardrails
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .reset(&rule, &by, chrono::Utc::now());
    let value = serde_json::to_value(&circuit)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    api.agent
        .store
        .save_circuit(&rule, &value)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}")))?;
    Ok(axum::Json(value).into_response())
}

/// OpenMetrics for clients that ask for it (Prometheus does), else the
/// 0.0.4 text format (curl, `promtool check metrics`).
async fn metrics(State(api): State<Arc<Api>>, headers: HeaderMap) -> Response {
    if let Err(e) = api.agent.refresh_approvals_metric().await {
        tracing::warn!(error = %format!("{e:#}"), "reading pending approvals for /metrics failed; the gauge keeps its last value");
    }
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    if telemetry::wants_openmetrics(accept) {
        (
            [(header::CONTENT_TYPE, telemetry::CONTENT_TYPE)],
            api.agent.metrics.encode(),
        )
            .into_response()
    } else {
        (
            [(header::CONTENT_TYPE, telemetry::TEXT_CONTENT_TYPE)],
            api.agent.metrics.encode_text(),
        )
            .into_response()
    }
}

async fn readyz(State(api): State<Arc<Api>>) -> Response {
    if api.ready.load(Ordering::SeqCst) && !api.dispatcher.is_draining() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}
