//! `/admin/adapters`: adapters loaded and removed while the server runs. `GET` lists them,
//! `POST {"name", "path"}` serves the adapter in `path` (a PEFT folder or a run with one in
//! `adapter/`, read on the server's machine) as `BASE:NAME`, `DELETE /admin/adapters/NAME`
//! stops serving it. The base model's weights are shared, never read again into a second copy
//! that stays; behind the API key like `/v1/`. Loads and removals run on the model thread
//! between requests: a request already queued for a removed adapter is answered 404.

use crate::catalog::{Entry, Kind};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::state::AppState;
use crate::worker::Job;
use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::oneshot;

/// `POST /admin/adapters`.
#[derive(Debug, Deserialize)]
pub struct LoadRequest {
    /// Served as `BASE:name`: letters, digits, `.`, `_` and `-`.
    pub name: String,
    /// The adapter's folder, or a run directory with one in `adapter/` (relative paths start
    /// at the server's working directory).
    pub path: PathBuf,
}

/// The adapters served now.
pub async fn list(State(st): State<Arc<AppState>>) -> Json<Value> {
    st.metrics.request("admin");
    let catalog = st.catalog();
    let data: Vec<Value> = catalog
        .entries
        .iter()
        .filter(|e| e.kind == Kind::Adapter)
        .map(adapter_json)
        .collect();
    Json(json!({"object": "list", "data": data}))
}

/// Loads an adapter and serves it.
pub async fn load(
    State(st): State<Arc<AppState>>,
    ApiJson(req): ApiJson<LoadRequest>,
) -> Result<Json<Value>, ApiError> {
    st.metrics.request("admin");
    check_name(&req.name)?;
    let id = format!("{}:{}", base_name(&st)?, req.name);
    if st.catalog().entries.iter().any(|e| e.id == id) {
        return Err(ApiError::conflict(
            "name",
            format!(
                "`{id}` is already served: DELETE /admin/adapters/{} first",
                req.name
            ),
        ));
    }
    if !req.path.exists() {
        return Err(ApiError::invalid(
            "path",
            format!(
                "{} does not exist on the server (relative paths start at the server's working \
                 directory)",
                req.path.display()
            ),
        ));
    }
    let (tx, rx) = oneshot::channel();
    st.queue.submit(Job::AddAdapter {
        name: req.name.clone(),
        path: req.path.clone(),
        answer: tx,
    })?;
    let id = st.wait(rx).await?;
    let entry = Entry {
        id,
        kind: Kind::Adapter,
        causal: true,
    };
    let body = adapter_json(&entry);
    st.edit_catalog(|c| c.entries.push(entry));
    tracing::info!(adapter = %req.name, path = %req.path.display(), "adapter loaded");
    Ok(Json(body))
}

/// Stops serving an adapter (`NAME` or `BASE:NAME`) and frees its tensors.
pub async fn unload(
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    st.metrics.request("admin");
    let base = base_name(&st)?;
    let id = match name.split_once(':') {
        Some(_) => name.clone(),
        None => format!("{base}:{name}"),
    };
    // Out of the catalog first: no new request can name it while it goes.
    let removed = st.edit_catalog(|c| match c.entries.iter().position(|e| e.id == id) {
        Some(i) if c.entries[i].kind == Kind::Adapter => Ok(c.entries.remove(i)),
        Some(_) => Err(ApiError::invalid(
            "name",
            format!("`{id}` is not an adapter: only adapters can be removed"),
        )),
        None => Err(no_adapter(&id, c.entries.iter())),
    })?;
    let (tx, rx) = oneshot::channel();
    let job = Job::RemoveAdapter {
        id: id.clone(),
        answer: tx,
    };
    if let Err(e) = st.queue.submit(job) {
        st.edit_catalog(|c| c.entries.push(removed));
        return Err(e);
    }
    // Past the time limit the removal still happens, when the model thread gets to it.
    if !st.wait(rx).await? {
        tracing::warn!(adapter = %id, "the model thread held no such adapter");
    }
    tracing::info!(adapter = %id, "adapter removed");
    Ok(Json(
        json!({"id": id, "object": "adapter", "deleted": true}),
    ))
}

/// 404 for a name that is not a served adapter, listing those that are.
fn no_adapter<'a>(id: &str, entries: impl Iterator<Item = &'a Entry>) -> ApiError {
    let served: Vec<String> = entries
        .filter(|e| e.kind == Kind::Adapter)
        .map(|e| e.id.clone())
        .collect();
    let mut e = ApiError::unknown_model(id, &served);
    e.param = Some("name".into());
    e.message = format!(
        "no adapter `{id}` is served; adapters: {}",
        if served.is_empty() {
            "none".to_string()
        } else {
            served.join(", ")
        }
    );
    e
}

/// The served name of the base model.
fn base_name(st: &AppState) -> Result<String, ApiError> {
    st.catalog()
        .entries
        .iter()
        .find(|e| e.kind == Kind::Base)
        .map(|e| e.id.clone())
        .ok_or_else(|| ApiError::internal("no base model is served"))
}

/// An adapter's name: 1 to 64 letters, digits, `.`, `_` or `-`.
fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "name",
            format!("adapter name `{name}`: use 1 to 64 letters, digits, `.`, `_` or `-`"),
        ))
    }
}

fn adapter_json(e: &Entry) -> Value {
    let name = e.id.split_once(':').map_or(e.id.as_str(), |(_, n)| n);
    json!({"id": e.id, "object": "adapter", "name": name})
}
