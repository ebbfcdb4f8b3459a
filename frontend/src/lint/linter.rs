//! Where warnings are collected: each rule call goes through [`Linter::run`], which applies
//! the settings in force for that instruction and remembers which rules fired (for
//! `error=true`).

use super::config::CheckConfig;
use super::rules::Rule;
use super::Warning;
use crate::parser::Span;

/// The warnings of one check, in the order the rules raised them.
#[derive(Debug, Default)]
pub(crate) struct Linter {
    pub(crate) warnings: Vec<Warning>,
    /// Rules that reported, in order of their first warning.
    pub(crate) rules_hit: Vec<&'static str>,
}

impl Linter {
    /// Records a warning of `rule` at `span` unless `config` turns the rule off.
    pub(crate) fn run(&mut self, config: &CheckConfig, rule: &Rule, span: Span, message: String) {
        if !config.enables(rule) {
            return;
        }
        if !self.rules_hit.contains(&rule.name) {
            self.rules_hit.push(rule.name);
        }
        self.warnings.push(Warning {
            rule: rule.name,
            description: rule.description,
            url: rule.url,
            message,
            span,
        });
    }
}
