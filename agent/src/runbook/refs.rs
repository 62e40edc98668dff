//! What runbook expressions (CEL) and templates (minijinja) refer to, and
//! whether that exists when they are evaluated.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::{LazyLock, Once};

use cel_interpreter::IdedExpr;
use cel_parser::ast::{EntryExpr, Expr};
use cel_parser::reference::Val;
use minijinja::{Environment, ErrorKind, UndefinedBehavior};

use super::{ParamNames, known_names};

/// The variables expressions and templates see.
const ROOTS: [&str; 4] = ["params", "alert", "target", "steps"];

/// CEL type names, which parse as identifiers (`type(x) == int`).
const CEL_TYPES: [&str; 11] = [
    "bool",
    "bytes",
    "double",
    "dyn",
    "int",
    "list",
    "map",
    "null_type",
    "string",
    "type",
    "uint",
];

/// A step of the file as first read: its id and kind, if readable.
#[derive(Debug, Clone, Default)]
pub(super) struct RawStep {
    pub(super) id: Option<String>,
    pub(super) kind: Option<String>,
}

/// Where an expression is: which step of which file, with which
/// parameters.
pub(super) struct Scope<'a> {
    /// Every step of the file, in order.
    pub(super) steps: &'a [RawStep],
    /// The step the expression belongs to.
    pub(super) index: usize,
    pub(super) params: &'a ParamNames,
}

impl Scope<'_> {
    /// The index of the (first) step with id `id`.
    pub(super) fn find(&self, id: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.id.as_deref() == Some(id))
    }

    /// A problem with `<root>.<member>`, if any.
    fn member(&self, root: &str, member: &str) -> Option<String> {
        match root {
            "steps" => match self.find(member) {
                None => Some(format!(
                    "`steps.{member}`: there is no step with id {member:?} (ids: {})",
                    known_names(self.steps.iter().filter_map(|s| s.id.as_deref()))
                )),
                Some(i) if i == self.index => Some(format!(
                    "`steps.{member}` is this step's own output, which does not exist yet: a \
                     step reads the outputs of the steps before it"
                )),
                Some(i) if i > self.index => Some(format!(
                    "`steps.{member}` is step[{i}], which comes later: a step reads the outputs \
                     of the steps before it"
                )),
                Some(_) => None,
            },
            "params" if !self.params.contains(member) => Some(format!(
                "`params.{member}`: no parameter {member:?} is declared (declared: {}; add a \
                 `[params.{member}]` table)",
                known_names(self.params.iter().map(String::as_str))
            )),
            _ => None,
        }
    }

    /// A problem with the variable `name`, if any.
    fn root(&self, name: &str, also: &[&str]) -> Option<String> {
        if ROOTS.contains(&name) || also.contains(&name) {
            None
        } else {
            Some(format!(
                "unknown variable `{name}`: the variables are `params`, `alert`, `target` and \
                 `steps`"
            ))
        }
    }
}

/// The problems of the CEL expression `source`: its syntax, then what it
/// refers to. Empty if none.
pub(super) fn check_cel(source: &str, scope: &Scope<'_>) -> Vec<String> {
    let expr = match parse_cel(source) {
        Ok(expr) => expr,
        Err(message) => return vec![message],
    };
    let mut refs = Vec::new();
    walk(&expr, &mut Vec::new(), &mut refs);
    let mut problems: Vec<String> = Vec::new();
    for r in refs {
        let problem = match &r {
            Ref::Root(name) => scope.root(name, &CEL_TYPES),
            Ref::Member(root, member) => scope.member(root, member),
        };
        if let Some(problem) = problem
            && !problems.contains(&problem)
        {
            problems.push(problem);
        }
    }
    problems
}

/// Parses a CEL expression with the parser `cel-interpreter` uses.
pub(super) fn parse_cel(source: &str) -> Result<IdedExpr, String> {
    if source.trim().is_empty() {
        return Err("empty CEL expression".to_owned());
    }
    let parsed = quietly(|| cel_parser::Parser::new().parse(source));
    match parsed {
        Ok(Ok(expr)) => Ok(expr),
        Ok(Err(errors)) => {
            let Some(first) = errors.errors.first() else {
                return Err("invalid CEL expression".to_owned());
            };
            let (line, column) = first.pos;
            let at = if line <= 1 {
                format!("column {column}")
            } else {
                format!("line {line}, column {column}")
            };
            let more = match errors.errors.len() {
                1 => String::new(),
                n => format!(" (and {} more)", n - 1),
            };
            Err(format!(
                "invalid CEL expression: {} (at {at} of the expression){more}",
                first.msg
            ))
        }
        Err(()) => Err(
            "invalid CEL expression: it does not parse (check its operators, brackets and \
             quotes)"
                .to_owned(),
        ),
    }
}

thread_local! {
    /// True while [`quietly`] runs on this thread.
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f`, turning a panic into `Err(())` without printing it. The CEL
/// parser (generated by ANTLR) panics on some syntax errors, like `x +`,
/// after recording them: a bad runbook must neither take the agent down
/// nor print a backtrace. Other threads' panics are printed as before.
fn quietly<T>(f: impl FnOnce() -> T + std::panic::UnwindSafe) -> Result<T, ()> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                previous(info);
            }
        }));
    });
    QUIET.with(|q| q.set(true));
    let result = std::panic::catch_unwind(f);
    QUIET.with(|q| q.set(false));
    result.map_err(|_| ())
}

/// A variable an expression reads.
#[derive(Debug, PartialEq)]
enum Ref {
    /// A free identifier.
    Root(String),
    /// `steps.<id>` / `params.<name>` (or `steps["id"]`).
    Member(&'static str, String),
}

/// `steps` or `params`, if `expr` is that identifier, not bound by a
/// comprehension.
fn member_root(expr: &IdedExpr, bound: &[String]) -> Option<&'static str> {
    match &expr.expr {
        Expr::Ident(name) if !bound.contains(name) => match name.as_str() {
            "steps" => Some("steps"),
            "params" => Some("params"),
            _ => None,
        },
        _ => None,
    }
}

/// Collects what `expr` reads; `bound` are the comprehension variables in
/// scope (`r` in `rows.map(r, r.pid)`).
fn walk(expr: &IdedExpr, bound: &mut Vec<String>, out: &mut Vec<Ref>) {
    match &expr.expr {
        Expr::Unspecified | Expr::Literal(_) => {}
        Expr::Ident(name) => {
            if !bound.contains(name) {
                out.push(Ref::Root(name.clone()));
            }
        }
        Expr::Select(select) => match member_root(&select.operand, bound) {
            Some(root) => out.push(Ref::Member(root, select.field.clone())),
            None => walk(&select.operand, bound, out),
        },
        Expr::Call(call) => {
            // `steps["id"]`, `steps[?"id"]`, `steps.?id`
            let index = matches!(call.func_name.as_str(), "_[_]" | "_[?_]" | "_?._");
            if let (true, [operand, key]) = (index, call.args.as_slice())
                && let Some(root) = member_root(operand, bound)
                && let Expr::Literal(Val::String(member)) = &key.expr
            {
                out.push(Ref::Member(root, member.clone()));
                return;
            }
            if let Some(target) = &call.target {
                walk(target, bound, out);
            }
            for arg in &call.args {
                walk(arg, bound, out);
            }
        }
        Expr::Comprehension(c) => {
            walk(&c.iter_range, bound, out);
            walk(&c.accu_init, bound, out);
            let depth = bound.len();
            bound.push(c.iter_var.clone());
            bound.extend(c.iter_var2.clone());
            bound.push(c.accu_var.clone());
            walk(&c.loop_cond, bound, out);
            walk(&c.loop_step, bound, out);
            walk(&c.result, bound, out);
            bound.truncate(depth);
        }
        Expr::List(list) => {
            for element in &list.elements {
                walk(element, bound, out);
            }
        }
        Expr::Map(map) => entries(&map.entries, bound, out),
        Expr::Struct(s) => entries(&s.entries, bound, out),
    }
}

fn entries(
    entries: &[cel_parser::ast::IdedEntryExpr],
    bound: &mut Vec<String>,
    out: &mut Vec<Ref>,
) {
    for entry in entries {
        match &entry.expr {
            EntryExpr::MapEntry(e) => {
                walk(&e.key, bound, out);
                walk(&e.value, bound, out);
            }
            EntryExpr::StructField(f) => walk(&f.value, bound, out),
        }
    }
}

/// Parses templates and tries them where anything may be undefined.
static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env
});

/// `kind: detail` of a template error, without the template name.
fn template_error(error: &minijinja::Error) -> String {
    match error.detail() {
        Some(detail) => format!("{}: {detail}", error.kind()),
        None => error.kind().to_string(),
    }
}

/// The problems of the template `source` (a note's `text`): its syntax,
/// the variables it reads, and the filters and tests it uses (as far as
/// rendering it with nothing defined reaches). Empty if none.
pub(super) fn check_template(source: &str, scope: &Scope<'_>) -> Vec<String> {
    let template = match TEMPLATES.template_from_str(source) {
        Ok(t) => t,
        Err(e) => {
            let line = e
                .line()
                .map(|l| format!(" (line {l} of the template)"))
                .unwrap_or_default();
            return vec![format!("invalid template: {}{line}", template_error(&e))];
        }
    };
    let globals: Vec<&str> = TEMPLATES.globals().map(|(name, _)| name).collect();
    let mut used: Vec<String> = template.undeclared_variables(true).into_iter().collect();
    used.sort();
    let mut problems = Vec::new();
    for variable in &used {
        let mut parts = variable.split('.');
        let root = parts.next().unwrap_or_default();
        let problem = match parts.next() {
            _ if !ROOTS.contains(&root) => scope.root(root, &globals),
            Some(member) => scope.member(root, member),
            None => None,
        };
        if let Some(problem) = problem
            && !problems.contains(&problem)
        {
            problems.push(problem);
        }
    }
    if !problems.is_empty() {
        return problems;
    }
    let empty = BTreeMap::<String, String>::new();
    let context = minijinja::context! {
        params => &empty,
        alert => minijinja::context! { labels => &empty, annotations => &empty, status => "" },
        target => "",
        steps => &empty,
    };
    match template.render(context) {
        Err(e) if matches!(e.kind(), ErrorKind::UnknownFilter | ErrorKind::UnknownTest) => {
            vec![format!("invalid template: {}", template_error(&e))]
        }
        _ => Vec::new(),
    }
}
