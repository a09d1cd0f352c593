//! The HTTP server: the router of every endpoint, the address check, and the run until SIGTERM
//! or Ctrl-C, after which the requests in flight finish before it returns.

use crate::auth::require_key;
use crate::engine::Engine;
use crate::error::ApiError;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::routes::{admin, chat, classify, completions, embeddings, info, search};
use crate::search::Indexes;
use crate::state::AppState;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::Uri;
use axum::middleware;
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::Router;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Where to listen and what to allow.
#[derive(Debug, Clone)]
pub struct Options {
    /// An IP address (`127.0.0.1`, `::1`, `0.0.0.0`) or `localhost`.
    pub host: String,
    /// 0: any free port (the one bound is handed to `on_ready`).
    pub port: u16,
    /// Required in `Authorization: Bearer KEY` when set.
    pub api_key: Option<String>,
    pub limits: Limits,
    /// Retrieval indexes for `POST /v1/search`.
    pub indexes: Indexes,
}

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

/// The address to bind: a non-loopback address needs an API key.
pub fn bind_address(host: &str, has_key: bool) -> Result<IpAddr, ServeError> {
    let ip: IpAddr = match host {
        "localhost" => IpAddr::from([127, 0, 0, 1]),
        h => h.parse().map_err(|_| {
            ServeError::Config(format!(
                "--host {h} is not an IP address (use 127.0.0.1, ::1, 0.0.0.0 or localhost)"
            ))
        })?,
    };
    if !ip.is_loopback() && !has_key {
        return Err(ServeError::Config(format!(
            "--host {host} is reachable from other machines: give --api-key KEY (or \
             TUNA_API_KEY) so that only clients with the key are answered, or bind 127.0.0.1"
        )));
    }
    Ok(ip)
}

/// Every endpoint on `state`.
pub fn router(state: Arc<AppState>) -> Router {
    let keyed = Router::new()
        .route("/v1/chat/completions", post(chat::chat))
        .route("/v1/completions", post(completions::completions))
        .route("/v1/embeddings", post(embeddings::embeddings))
        .route("/v1/classify", post(classify::classify))
        .route("/v1/search", post(search::search))
        .route("/v1/models", get(info::models))
        .route("/metrics", get(info::metrics))
        .route("/admin/adapters", get(admin::list).post(admin::load))
        .route("/admin/adapters/{name}", delete(admin::unload))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_key));
    Router::new()
        .merge(keyed)
        .route("/health", get(info::health))
        .fallback(|uri: Uri| async move { ApiError::no_route(uri.path()) })
        .method_not_allowed_fallback(|| async { ApiError::wrong_method() })
        .layer(DefaultBodyLimit::max(state.limits.max_body_bytes))
        .layer(middleware::map_response_with_state(
            state.clone(),
            count_errors,
        ))
        .with_state(state)
}

async fn count_errors(State(st): State<Arc<AppState>>, res: Response) -> Response {
    if res.status().as_u16() >= 400 {
        st.metrics.error(res.status().as_u16());
    }
    res
}

/// Binds the address of `opts` (checked by [`bind_address`]), before the models load, so that
/// a port in use or an open address without a key is said at once.
pub fn bind(opts: &Options) -> Result<std::net::TcpListener, ServeError> {
    let ip = bind_address(&opts.host, opts.api_key.is_some())?;
    let addr = SocketAddr::new(ip, opts.port);
    let bind = |addr: SocketAddr| -> std::io::Result<std::net::TcpListener> {
        let l = std::net::TcpListener::bind(addr)?;
        l.set_nonblocking(true)?;
        Ok(l)
    };
    bind(addr).map_err(|source| ServeError::Bind {
        addr: addr.to_string(),
        source,
    })
}

/// Serves `engine` on `listener` (from [`bind`]) until SIGTERM or Ctrl-C; `on_ready` gets the
/// bound address once requests are taken. Returns after the requests in flight are answered
/// and the model thread ended.
pub fn serve(
    engine: Engine,
    listener: std::net::TcpListener,
    opts: Options,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    let metrics = Arc::new(Metrics::default());
    let catalog = engine.catalog();
    let grounding = engine.grounding();
    let limits = opts.limits.clone();
    let (queue, worker) = crate::worker::start(engine, &limits, metrics.clone())?;
    let mut state = AppState::new(catalog, queue, metrics, limits, opts.api_key);
    (state.indexes, state.grounding) = (opts.indexes, grounding);
    let state = Arc::new(state);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        on_ready(listener.local_addr()?);
        axum::serve(listener, router(state))
            .with_graceful_shutdown(shutdown_signal())
            .await?;
        Ok::<_, ServeError>(())
    })?;
    drop(rt);
    if worker.join().is_err() {
        tracing::error!("the model thread panicked while stopping");
    }
    Ok(())
}

/// Resolves at SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!("shutting down: answering the requests in flight first");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_machines_need_a_key() {
        assert!(bind_address("127.0.0.1", false).is_ok());
        assert!(bind_address("localhost", false).is_ok());
        assert!(bind_address("::1", false).is_ok());
        let e = bind_address("0.0.0.0", false).unwrap_err().to_string();
        assert!(e.contains("--api-key"), "{e}");
        assert!(bind_address("0.0.0.0", true).is_ok());
        assert!(bind_address("example", true).is_err());
    }
}
