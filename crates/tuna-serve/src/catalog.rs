//! The models a server answers to, by the names requests give in `model`: the base model
//! (`NAME`), each adapter on it (`NAME:ADAPTER`, as other multi-LoRA servers name them) and each
//! classification run (`RUN`).

use crate::error::ApiError;

/// What a served name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Base,
    Adapter,
    /// A classification run (`POST /v1/classify`).
    Classifier,
}

/// One served name.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: String,
    pub kind: Kind,
    /// A causal LM (chat and completions), else an encoder (embeddings only).
    pub causal: bool,
}

/// Every served name.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub entries: Vec<Entry>,
}

/// What an endpoint needs of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Chat and completions: a causal LM, base or adapter.
    Generate,
    /// Embeddings: the base or an adapter.
    Embed,
    /// A classification run.
    Classify,
}

impl Catalog {
    fn names(&self) -> Vec<String> {
        self.entries.iter().map(|e| e.id.clone()).collect()
    }

    /// The entry called `id`, if it can do what `need` says: 404 for an unknown name, 400 for a
    /// model that cannot serve this endpoint.
    pub fn find(&self, id: &str, need: Need) -> Result<&Entry, ApiError> {
        let e = self
            .entries
            .iter()
            .find(|e| e.id == id)
            .ok_or_else(|| ApiError::unknown_model(id, &self.names()))?;
        let refuse = |why: &str| Err(ApiError::invalid("model", format!("`{id}` {why}")));
        match (need, e.kind, e.causal) {
            (Need::Classify, Kind::Classifier, _) => Ok(e),
            (Need::Classify, _, _) => {
                refuse("is not a classification run: classify with a model served by --run")
            }
            (_, Kind::Classifier, _) => refuse("is a classification run: use POST /v1/classify"),
            (Need::Generate, _, false) => {
                refuse("is an encoder: it cannot generate text (use /v1/embeddings)")
            }
            _ => Ok(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_found_for_what_they_can_do() {
        let c = Catalog {
            entries: vec![
                Entry {
                    id: "lm".into(),
                    kind: Kind::Base,
                    causal: true,
                },
                Entry {
                    id: "lm:sft".into(),
                    kind: Kind::Adapter,
                    causal: true,
                },
                Entry {
                    id: "sent".into(),
                    kind: Kind::Classifier,
                    causal: false,
                },
            ],
        };
        assert_eq!(
            c.find("lm:sft", Need::Generate).unwrap().kind,
            Kind::Adapter
        );
        assert_eq!(c.find("nope", Need::Generate).unwrap_err().status, 404);
        assert_eq!(c.find("sent", Need::Generate).unwrap_err().status, 400);
        assert_eq!(c.find("lm", Need::Classify).unwrap_err().status, 400);
        assert!(c.find("sent", Need::Classify).is_ok());
    }
}
