//! Embedding and classification requests taken from the queue together run as one batch per
//! model: their texts go through the model in one call and each request gets its own rows
//! back. When that call fails, each request runs alone, so a bad request fails by itself.

use crate::engine::Engine;
use crate::error::ApiError;
use tokio::sync::oneshot;
use tuna_train::embedder::Embeddings;
use tuna_train::predict::Prediction;

/// Embeddings and the tokens they took.
pub type Embedded = (Embeddings, usize);

/// Predictions and the run's label names.
pub type Classified = (Vec<Prediction>, Vec<String>);

type Reply<T> = oneshot::Sender<Result<T, ApiError>>;

/// The requests of one kind for one model: each one's texts and where its answer goes.
struct Group<T> {
    model: String,
    requests: Vec<(Vec<String>, Reply<T>)>,
}

/// Embedding and classification requests, grouped by model in the order they came.
#[derive(Default)]
pub struct Gathered {
    embed: Vec<Group<Embedded>>,
    classify: Vec<Group<Classified>>,
}

impl Gathered {
    pub fn embed(&mut self, model: String, texts: Vec<String>, answer: Reply<Embedded>) {
        push(&mut self.embed, model, texts, answer);
    }

    pub fn classify(&mut self, model: String, texts: Vec<String>, answer: Reply<Classified>) {
        push(&mut self.classify, model, texts, answer);
    }

    pub fn is_empty(&self) -> bool {
        self.embed.is_empty() && self.classify.is_empty()
    }

    /// Runs every group (one model call each) and answers its requests.
    pub fn run(self, engine: &Engine) {
        for g in self.embed {
            let model = g.model.clone();
            run_group(g, |t| engine.embed_rows(&model, t), split_embedded);
        }
        for g in self.classify {
            let model = g.model.clone();
            let call = |t: &[String]| {
                engine
                    .classify(&model, t)
                    .map_err(|e| ApiError::from_model(&e))
            };
            run_group(g, call, split_classified);
        }
    }
}

fn push<T>(groups: &mut Vec<Group<T>>, model: String, texts: Vec<String>, answer: Reply<T>) {
    match groups.iter_mut().find(|g| g.model == model) {
        Some(g) => g.requests.push((texts, answer)),
        None => groups.push(Group {
            model,
            requests: vec![(texts, answer)],
        }),
    }
}

/// The group's requests whose clients still wait, as one `call` over all their texts, cut
/// back into answers by `split` (given each request's text count); each alone when the
/// joint call fails.
fn run_group<R, T>(
    g: Group<T>,
    call: impl Fn(&[String]) -> Result<R, ApiError>,
    split: impl Fn(R, &[usize]) -> Vec<T>,
) {
    let live: Vec<_> = g
        .requests
        .into_iter()
        .filter(|(_, a)| !a.is_closed())
        .collect();
    if live.len() > 1 {
        let all: Vec<String> = live.iter().flat_map(|(t, _)| t.iter().cloned()).collect();
        if let Ok(out) = call(&all) {
            let counts: Vec<usize> = live.iter().map(|(t, _)| t.len()).collect();
            for ((_, answer), part) in live.into_iter().zip(split(out, &counts)) {
                let _ = answer.send(Ok(part));
            }
            return;
        }
    }
    for (texts, answer) in live {
        let one = call(&texts).map(|out| split(out, &[texts.len()]).remove(0));
        let _ = answer.send(one);
    }
}

/// Rows and per-text token counts cut into requests of `counts` texts.
fn split_embedded((emb, tokens): (Embeddings, Vec<usize>), counts: &[usize]) -> Vec<Embedded> {
    let mut start = 0;
    counts
        .iter()
        .map(|&n| {
            let rows = start..start + n;
            start += n;
            let part = Embeddings {
                data: emb.data[rows.start * emb.cols..rows.end * emb.cols].to_vec(),
                rows: n,
                cols: emb.cols,
            };
            (part, tokens[rows].iter().sum())
        })
        .collect()
}

/// Predictions cut into requests of `counts` texts, each with the label names.
fn split_classified((preds, labels): Classified, counts: &[usize]) -> Vec<Classified> {
    let mut preds = preds.into_iter();
    counts
        .iter()
        .map(|&n| (preds.by_ref().take(n).collect(), labels.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_and_tokens_go_back_to_their_requests() {
        let emb = Embeddings {
            data: (0..12).map(|v| v as f32).collect(),
            rows: 6,
            cols: 2,
        };
        let parts = split_embedded((emb, vec![1, 2, 3, 4, 5, 6]), &[1, 3, 2]);
        let got: Vec<(Vec<f32>, usize, usize)> = parts
            .into_iter()
            .map(|(e, t)| (e.data, e.rows, t))
            .collect();
        assert_eq!(
            got,
            vec![
                (vec![0.0, 1.0], 1, 1),
                (vec![2.0, 3.0, 4.0, 5.0, 6.0, 7.0], 3, 9),
                (vec![8.0, 9.0, 10.0, 11.0], 2, 11),
            ]
        );
    }

    #[test]
    fn a_failed_joint_call_runs_each_request_alone() {
        let (tx1, mut rx1) = oneshot::channel();
        let (tx2, mut rx2) = oneshot::channel();
        let g = Group {
            model: "m".into(),
            requests: vec![(vec!["good".into()], tx1), (vec!["bad".into()], tx2)],
        };
        // Fails whenever "bad" is among the texts; answers the text count otherwise.
        let call = |t: &[String]| -> Result<usize, ApiError> {
            match t.iter().any(|s| s == "bad") {
                true => Err(ApiError::invalid("input", "bad text")),
                false => Ok(t.len()),
            }
        };
        run_group(g, call, |n, counts| {
            assert_eq!(n, counts.iter().sum::<usize>());
            counts.to_vec()
        });
        assert_eq!(rx1.try_recv().expect("answered").expect("ok"), 1);
        assert!(rx2.try_recv().expect("answered").is_err());
    }
}
