//! `budgets:` in `caxton.yaml`.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use super::model::{self, Limit, LimitsSpec, Price};

fn limits<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Limit>, D::Error> {
    Ok(Option::<LimitsSpec>::deserialize(d)?.map_or_else(Vec::new, LimitsSpec::into_limits))
}

fn limits_by_name<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, Vec<Limit>>, D::Error> {
    Ok(BTreeMap::<String, LimitsSpec>::deserialize(d)?
        .into_iter()
        .map(|(name, spec)| (name, spec.into_limits()))
        .collect())
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BudgetSettings {
    /// The whole server's budget: every model call counts against it.
    #[serde(deserialize_with = "limits")]
    pub server: Vec<Limit>,
    /// Budgets of agents by name (an agent's own `budget:` or one set at
    /// run time comes first).
    #[serde(deserialize_with = "limits_by_name")]
    pub agents: BTreeMap<String, Vec<Limit>>,
    /// Budgets of principals (token names; `user` on this machine).
    #[serde(deserialize_with = "limits_by_name")]
    pub principals: BTreeMap<String, Vec<Limit>>,
    /// Price per million tokens by model name (as the provider is asked
    /// for it); calls to models without one count tokens only.
    pub prices: BTreeMap<String, Price>,
    /// Warn (log, agent log) when a budget is this much spent.
    pub warn_percent: u8,
}

impl Default for BudgetSettings {
    fn default() -> Self {
        BudgetSettings {
            server: Vec::new(),
            agents: BTreeMap::new(),
            principals: BTreeMap::new(),
            prices: BTreeMap::new(),
            warn_percent: 80,
        }
    }
}

impl BudgetSettings {
    pub fn validate(&self) -> Result<(), String> {
        model::validate(&self.server).map_err(|e| format!("budgets.server: {e}"))?;
        for (name, limits) in &self.agents {
            model::validate(limits).map_err(|e| format!("budgets.agents.{name}: {e}"))?;
        }
        for (name, limits) in &self.principals {
            model::validate(limits).map_err(|e| format!("budgets.principals.{name}: {e}"))?;
        }
        for (model, price) in &self.prices {
            let ok = |v: f64| v.is_finite() && v >= 0.0;
            if !ok(price.input_per_million) || !ok(price.output_per_million) {
                return Err(format!(
                    "budgets.prices.{model}: prices are numbers ≥ 0 per million tokens"
                ));
            }
        }
        if self.warn_percent == 0 || self.warn_percent > 100 {
            return Err(format!(
                "budgets.warn_percent is {}; give 1 to 100",
                self.warn_percent
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_yaml_section_takes_one_limit_or_many() {
        let yaml = "server: {per: day, tokens: 1000000}\nagents:\n  writer:\n    - {per: hour, tokens: 5000}\n    - {per: month, cost: 20}\nprices:\n  gpt-4o-mini: {input_per_million: 0.15, output_per_million: 0.6}\n";
        let settings: BudgetSettings = serde_saphyr::from_str(yaml).expect("parses");
        assert_eq!(settings.server.len(), 1);
        assert_eq!(settings.agents["writer"].len(), 2);
        assert!(settings.validate().is_ok());
        let bad: BudgetSettings =
            serde_saphyr::from_str("server: {per: day}\n").expect("parses, fails validation");
        assert!(bad.validate().unwrap_err().contains("budgets.server"));
    }
}
