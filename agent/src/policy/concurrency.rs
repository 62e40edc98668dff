//! `[[concurrency]]`: how many runs may be under way at once, overall, per
//! plugin or per target.

use std::fmt;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::fields;
use super::grant::known_list;
use super::{Location, is_valid_plugin_name};
use crate::config::document::Table;
use crate::diag::Diagnostics;

/// One `[[concurrency]]` table of a policy file (see `GrantFile` for the
/// shape). Exactly one of `plugin`, `target` and `global` is required.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConcurrencyFile {
    /// Limits the runs of this plugin, on all targets.
    plugin: Option<Spanned<String>>,
    /// Limits the runs on this target, of all plugins.
    target: Option<Spanned<String>>,
    /// `true` limits all runs.
    global: Option<Spanned<bool>>,
    /// Most runs at once, at least 1. Required.
    max: Option<Spanned<u32>>,
    /// What a run beyond `max` does: `"queue"` (wait, the default) or
    /// `"skip"`.
    on_limit: Option<OnLimit>,
}

/// A limit on the runs under way at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConcurrencyLimit {
    pub scope: Scope,
    /// Most runs at once in `scope`, at least 1.
    pub max: u32,
    pub on_limit: OnLimit,
    /// The `[[concurrency]]` this comes from.
    pub source: Location,
}

/// The runs a [`ConcurrencyLimit`] counts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// All runs.
    Global,
    /// The runs of a plugin.
    Plugin(String),
    /// The runs on a target.
    Target(String),
}

impl fmt::Display for Scope {
    /// `global`, `plugin `vacuum`` or `target `app``.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Global => f.write_str("global"),
            Scope::Plugin(plugin) => write!(f, "plugin `{plugin}`"),
            Scope::Target(target) => write!(f, "target `{target}`"),
        }
    }
}

/// What a run beyond the limit does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnLimit {
    /// Waits for a slot (the default).
    #[default]
    Queue,
    /// Is skipped.
    Skip,
}

/// A checked [`ConcurrencyLimit`] with where its scope is written.
pub(super) struct Checked {
    pub(super) limit: ConcurrencyLimit,
    /// The span and field path of the scope's field.
    pub(super) scope: (Range<usize>, String),
}

/// Checks one `[[concurrency]]`, reporting every problem. `None` if
/// anything was reported.
pub(super) fn check(
    table: &Table<'_, ConcurrencyFile>,
    known_targets: &[&str],
    diags: &mut Diagnostics,
) -> Option<Checked> {
    let file = &table.value;
    let source = table.source;
    let before = diags.len();
    let max = table
        .require("max", &file.max, diags)
        .map(|max| fields::at_least_one(source, || table.field("max"), max, diags));

    if let Some(global) = &file.global
        && !global.get_ref()
    {
        diags.push(source.error(
            &global.span(),
            table.field("global"),
            "`global = false` limits nothing: write `global = true`, or limit a `plugin` or a \
             `target` instead",
        ));
    }
    let mut scopes: Vec<(Scope, Range<usize>, String)> = Vec::new();
    if let Some(plugin) = &file.plugin {
        let name = plugin.get_ref();
        if !is_valid_plugin_name(name) {
            diags.push(source.error(
                &plugin.span(),
                table.field("plugin"),
                format!(
                    "invalid plugin name {name:?}: use lowercase letters, digits and `-`, \
                     starting with a letter"
                ),
            ));
        }
        scopes.push((
            Scope::Plugin(name.clone()),
            plugin.span(),
            table.field("plugin"),
        ));
    }
    if let Some(target) = &file.target {
        let name = target.get_ref();
        if !known_targets.contains(&name.as_str()) {
            diags.push(source.error(
                &target.span(),
                table.field("target"),
                format!("unknown target {name:?}: {}", known_list(known_targets)),
            ));
        }
        scopes.push((
            Scope::Target(name.clone()),
            target.span(),
            table.field("target"),
        ));
    }
    if let Some(global) = &file.global
        && *global.get_ref()
    {
        scopes.push((Scope::Global, global.span(), table.field("global")));
    }
    let scope = match scopes.len() {
        1 => scopes.pop(),
        0 => {
            let broken = ["plugin", "target", "global"]
                .iter()
                .any(|name| table.is_broken(name));
            if !broken && file.global.is_none() {
                diags.push(source.error(
                    &table.span,
                    table.field("plugin"),
                    "missing scope: give exactly one of `plugin = \"...\"`, `target = \"...\"` \
                     or `global = true`",
                ));
            }
            None
        }
        _ => {
            let names: Vec<&str> = ["plugin", "target", "global"]
                .into_iter()
                .filter(|name| match *name {
                    "plugin" => file.plugin.is_some(),
                    "target" => file.target.is_some(),
                    _ => file.global.is_some(),
                })
                .collect();
            if let Some((_, span, field)) = scopes.get(1) {
                diags.push(source.error(
                    span,
                    field.clone(),
                    format!(
                        "give exactly one of `plugin`, `target` and `global`, not {}: write one \
                         [[concurrency]] per limit",
                        names
                            .iter()
                            .map(|n| format!("`{n}`"))
                            .collect::<Vec<_>>()
                            .join(" and ")
                    ),
                ));
            }
            None
        }
    };

    let (scope, span, field) = scope?;
    let max = max?;
    if diags.len() != before {
        return None;
    }
    Some(Checked {
        limit: ConcurrencyLimit {
            scope,
            max,
            on_limit: file.on_limit.unwrap_or_default(),
            source: fields::location(source, &table.span),
        },
        scope: (span, field),
    })
}
