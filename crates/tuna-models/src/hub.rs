//! Model arguments: a local path, or `hf:ORG/NAME` (a Hugging Face model repository) and
//! `hf:ORG/NAME/FILE.gguf` (one GGUF file of a repository), downloaded through the Hub into its
//! usual cache when tuna is built with the `hub` feature. Tests and CI never use the network.

use std::path::PathBuf;
use tuna_core::{Error, Result};

/// Resolves a model argument to a local path, downloading `hf:` models when supported.
pub fn resolve_model(spec: &str) -> Result<PathBuf> {
    match spec.strip_prefix("hf:") {
        None => Ok(PathBuf::from(spec)),
        Some(repo) => download(repo),
    }
}

/// Splits `ORG/NAME[/FILE]` into the repository and an optional file.
fn split_repo(spec: &str) -> Result<(String, Option<String>)> {
    let parts: Vec<&str> = spec.split('/').collect();
    match parts.as_slice() {
        [org, name] if !org.is_empty() && !name.is_empty() => Ok((format!("{org}/{name}"), None)),
        [org, name, file @ ..] if !org.is_empty() && !name.is_empty() && !file.is_empty() => {
            Ok((format!("{org}/{name}"), Some(file.join("/"))))
        }
        _ => Err(Error::Invalid(format!(
            "bad model `hf:{spec}`: use hf:ORG/NAME or hf:ORG/NAME/FILE.gguf"
        ))),
    }
}

#[cfg(not(feature = "hub"))]
fn download(spec: &str) -> Result<PathBuf> {
    split_repo(spec)?;
    Err(Error::Invalid(format!(
        "model `hf:{spec}` needs the Hugging Face Hub, which this build leaves out: rebuild with \
         `--features hub`, or download the model and give its local path"
    )))
}

#[cfg(feature = "hub")]
fn download(spec: &str) -> Result<PathBuf> {
    let (repo_id, file) = split_repo(spec)?;
    let hub_err = |e: hf_hub::api::sync::ApiError| Error::Invalid(format!("hf:{spec}: {e}"));
    let api = hf_hub::api::sync::Api::new().map_err(hub_err)?;
    let repo = api.model(repo_id);
    if let Some(f) = file {
        return repo.get(&f).map_err(hub_err);
    }
    let config = repo.get("config.json").map_err(hub_err)?;
    repo.get("tokenizer.json").map_err(hub_err)?;
    match repo.get("model.safetensors") {
        Ok(_) => {}
        Err(_) => {
            let index = repo.get("model.safetensors.index.json").map_err(hub_err)?;
            let v: serde_json::Value = tuna_core::fsutil::read_json(&index)?;
            let mut shards: Vec<&str> = v["weight_map"]
                .as_object()
                .map(|m| m.values().filter_map(|x| x.as_str()).collect())
                .unwrap_or_default();
            shards.sort_unstable();
            shards.dedup();
            for s in shards {
                repo.get(s).map_err(hub_err)?;
            }
        }
    }
    config
        .parent()
        .map(PathBuf::from)
        .ok_or_else(|| Error::Invalid(format!("hf:{spec}: odd cache path {}", config.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_pass_through_and_bad_specs_are_named() {
        assert_eq!(
            resolve_model("models/minilm").unwrap(),
            PathBuf::from("models/minilm")
        );
        let err = resolve_model("hf:justone").unwrap_err().to_string();
        assert!(err.contains("hf:ORG/NAME"), "{err}");
        assert_eq!(
            split_repo("a/b/c.gguf").unwrap(),
            ("a/b".into(), Some("c.gguf".into()))
        );
        #[cfg(not(feature = "hub"))]
        assert!(resolve_model("hf:org/name")
            .unwrap_err()
            .to_string()
            .contains("--features hub"));
    }
}
