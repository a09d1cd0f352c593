//! `tuna prompt-search`: hard prompt tuning. Scores candidate templates on the validation part,
//! ranks them, saves the best as a prompt file and evaluates it on the test part.

use crate::args::{DataArgs, ModelArgs};
use crate::commands::icl::{majority_share, DemoSource, IclArgs};
use crate::output::Output;
use anyhow::Result;
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;
use tuna_lm::prompt_search::{markdown, rank, Ranked};
use tuna_lm::template::{builtin_templates, read_templates};

#[derive(Args)]
pub struct PromptSearchCmd {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    data: DataArgs,
    /// File of candidate templates, one per line (default: the built-in six).
    #[arg(long)]
    templates: Option<PathBuf>,
    /// Also try this template (repeatable).
    #[arg(long = "template")]
    template: Vec<String>,
    #[command(flatten)]
    icl: IclArgs,
    /// Where to save the best template as a prompt file (for `tuna icl --prompt-file`).
    #[arg(long, default_value = "best-prompt.json")]
    save: PathBuf,
}

impl PromptSearchCmd {
    pub fn run(self, out: &Output) -> Result<()> {
        let (task, _) = self.data.load(out)?;
        let labels = task.labels.labels().to_vec();
        let mut candidates: Vec<String> = match &self.templates {
            Some(p) => read_templates(p)?,
            None => builtin_templates().into_iter().map(String::from).collect(),
        };
        candidates.extend(self.template.iter().cloned());
        let templates = candidates
            .iter()
            .map(|c| self.icl.template(c, &labels))
            .collect::<Result<Vec<_>>>()?;
        let (model, _) = self.model.load()?;
        let bar = out.bar();
        let mut demos = DemoSource::new(&task, &self.icl, self.data.seed, &bar)?;
        let t0 = Instant::now();
        let mut results = Vec::with_capacity(templates.len());
        for (i, t) in templates.iter().enumerate() {
            let (_, _, m) = demos.run(&model, t, &task, &task.val, &self.icl, &bar)?;
            out.line(format!(
                "[{}/{}] {:.2}%  {}",
                i + 1,
                templates.len(),
                100.0 * m.accuracy,
                candidates[i].replace('\n', "\\n")
            ));
            results.push((
                i,
                Ranked {
                    template: candidates[i].clone(),
                    accuracy: m.accuracy,
                    macro_f1: m.macro_f1,
                },
            ));
        }
        let ranking = rank(results);
        out.line(format!(
            "\nranking on the validation part ({} examples):\n",
            self.icl
                .limit
                .unwrap_or(task.val.rows.len())
                .min(task.val.rows.len())
        ));
        out.line(markdown(&ranking));
        let best_index = candidates
            .iter()
            .position(|c| *c == ranking[0].template)
            .unwrap_or(0);
        let best = &templates[best_index];
        best.save(&self.save)?;
        out.line(format!("best template saved to {}", self.save.display()));
        let mut test_result = None;
        if let Some(test) = &task.test {
            let (_, gold, m) = demos.run(&model, best, &task, test, &self.icl, &bar)?;
            out.line(format!(
                "best template on test (n={}): accuracy {:.2}%, macro-F1 {:.2}% (majority class {:.2}%)",
                m.n,
                100.0 * m.accuracy,
                100.0 * m.macro_f1,
                100.0 * majority_share(&gold, labels.len())
            ));
            test_result = Some(m);
        }
        out.result(json!({
            "ok": true, "command": "prompt-search", "ranking": ranking, "best": best,
            "saved": self.save, "test": test_result, "seconds": t0.elapsed().as_secs_f64(),
        }));
        Ok(())
    }
}
