//! `tuna info`: what a model is.

use crate::args::ModelArgs;
use crate::output::Output;
use anyhow::Result;
use clap::Args;
use serde_json::json;

#[derive(Args)]
pub struct InfoCmd {
    #[command(flatten)]
    model: ModelArgs,
}

impl InfoCmd {
    pub fn run(self, out: &Output) -> Result<()> {
        let (model, _) = self.model.load()?;
        let i = &model.info;
        out.line(format!("source        {}", i.source.display()));
        out.line(format!("family        {:?}", i.family));
        out.line(format!("layers        {}", i.num_layers));
        out.line(format!("hidden size   {}", i.hidden_size));
        out.line(format!("vocabulary    {}", i.vocab_size));
        out.line(format!("positions     {}", i.max_positions));
        out.line(format!(
            "parameters    {} ({:.1}M)",
            i.parameters,
            i.parameters as f64 / 1e6
        ));
        out.line(format!(
            "chat template {}",
            if model.tokenizer.chat_template.is_some() {
                "yes"
            } else {
                "no"
            }
        ));
        out.result(json!({"ok": true, "command": "info", "model": i,
            "chat_template": model.tokenizer.chat_template.is_some()}));
        Ok(())
    }
}
