//! Which linear layers a weight-delta method adapts: module names as PEFT's list form (a module
//! matches a name equal to it or ending in `.name`), or one regular expression over whole
//! module names as PEFT's string form.

use candle_core::Result;
use serde_json::{json, Value};
use tuna_models::Network;
use tuna_nn::Linear;

/// Compiled target rule.
pub struct Targets {
    names: Vec<String>,
    regex: Option<regex::Regex>,
}

impl Targets {
    /// `regex` wins over `names` when given.
    pub fn new(names: &[String], regex: Option<&str>) -> Result<Self> {
        let regex = regex
            .map(|r| regex::Regex::new(&format!("^(?:{r})$")))
            .transpose()
            .map_err(candle_core::Error::wrap)?;
        Ok(Self {
            names: names.to_vec(),
            regex,
        })
    }

    /// Whether module `name` is a target.
    pub fn matches(&self, name: &str) -> bool {
        match &self.regex {
            Some(r) => r.is_match(name),
            None => matches_any(&self.names, name),
        }
    }

    /// Calls `f` on every target linear layer of `net`; an error naming the rule when none
    /// matches.
    pub fn each(
        &self,
        net: &mut Network,
        f: &mut dyn FnMut(&str, &mut Linear) -> Result<()>,
    ) -> Result<()> {
        let mut hits = 0;
        net.linears(&mut |name, lin| {
            if self.matches(name) {
                hits += 1;
                f(name, lin)?;
            }
            Ok(())
        })?;
        if hits == 0 {
            candle_core::bail!("no linear layer matches the targets {}", self.describe());
        }
        Ok(())
    }

    fn describe(&self) -> String {
        match &self.regex {
            Some(r) => format!("/ regex {}", r.as_str()),
            None => format!("{:?}", self.names),
        }
    }
}

/// PEFT's list rule: equal to a name, or ending in `.name`.
pub fn matches_any(names: &[String], module: &str) -> bool {
    names
        .iter()
        .any(|t| module == t || module.ends_with(&format!(".{t}")))
}

/// `target_modules` of an adapter config: a list of names, or one regular expression.
pub fn from_peft(v: Option<&Value>) -> (Vec<String>, Option<String>) {
    match v {
        Some(Value::String(r)) => (vec![], Some(r.clone())),
        Some(Value::Array(a)) => (
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            None,
        ),
        _ => (vec![], None),
    }
}

/// `target_modules` for an adapter config: the regex, or the short names of the adapted
/// modules (`query`, `value`) taken from the saved tensor names ending in `suffix`.
pub fn to_peft(regex: Option<&str>, saved: &[String], suffix: &str) -> Value {
    if let Some(r) = regex {
        return json!(r);
    }
    let mut modules: Vec<String> = saved
        .iter()
        .filter_map(|n| n.strip_suffix(suffix))
        .map(|m| m.rsplit('.').next().unwrap_or(m).to_string())
        .collect();
    modules.sort();
    modules.dedup();
    json!(modules)
}
