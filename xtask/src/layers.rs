//! `cargo xtask layers`: the import graph between the top-level modules of the monitor
//! and monitor-core crates (one graph: monitor reaches core's modules at the same
//! paths), checked against their layers. The crate boundary already keeps I/O out of
//! the lower layers; this keeps the order inside each crate. Each module may import from its own layer and
//! those below it, never above, and the graph has no cycle. Test code (`tests.rs`,
//! `*_tests.rs`, and what follows a file's `#[cfg(test)]`) may reach further and is
//! left out.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};

/// The layers, lowest first, and the top-level modules of each.
pub(crate) const LAYERS: &[(&str, &[&str])] = &[
    ("model", &["model"]),
    ("configuration", &["config"]),
    (
        "stages",
        &[
            "alert",
            "capture",
            "connections",
            "detect",
            "mitigate",
            "packets",
            "poll",
            "sink",
            "stats",
        ],
    ),
    (
        "adapters",
        &[
            "backend",
            "capture_writer",
            "control",
            "delivery",
            "export",
            "host",
            "iface",
            "metrics",
            "report",
            "sockets",
            "tui",
        ],
    ),
    ("wiring", &["cli", "run", "main"]),
];

/// Module -> the modules it imports (itself left out).
pub(crate) type Graph = BTreeMap<String, BTreeSet<String>>;

fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
}

/// The top-level module a source file belongs to: `detect/flood.rs` -> `detect`.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "lib").then(|| name.to_owned())
}

fn is_test_file(file: &Path) -> bool {
    file.file_stem()
        .and_then(|s| s.to_str())
        .is_some_and(|s| s == "tests" || s.ends_with("_tests"))
}

/// The code before the file's first top-level `#[cfg(test)]`, comments left out (a doc
/// may name a module it does not import).
fn non_test_code(text: &str) -> String {
    let code = text.find("\n#[cfg(test)]").map_or(text, |at| &text[..at]);
    // A `//` after a `:` is a URL in a string (`"http://..."`), not a comment.
    code.lines()
        .map(|line| {
            let comment = line
                .match_indices("//")
                .find(|(at, _)| !line[..*at].ends_with(':'))
                .map(|(at, _)| at);
            comment.map_or(line, |at| &line[..at])
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every top-level module named after one of `roots` (`crate::`, `monitor_core::`) in
/// `text`, in `use` trees too (`use crate::{a::X, b::{Y, Z}}` names `a` and `b`).
fn imported_modules(text: &str, roots: &[&str]) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let paths = roots.iter().flat_map(|root| {
        text.match_indices(root)
            .map(move |(at, _)| (at, root.len()))
    });
    for (at, len) in paths {
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue; // `monitor_crate::`, `$crate::`...
        }
        let rest = &text[at + len..];
        if let Some(tree) = rest.strip_prefix('{') {
            for name in tree_heads(tree) {
                found.insert(name);
            }
        } else {
            found.insert(ident(rest));
        }
    }
    found.remove("");
    found
}

fn ident(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// The first segment of each path at the top of a `{...}` use tree.
fn tree_heads(tree: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut expect_head = true;
    let mut chars = tree.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => expect_head = true,
            c if expect_head && depth == 0 && (c.is_alphabetic() || c == '_') => {
                heads.push(ident(&tree[i..]));
                expect_head = false;
            }
            _ => {}
        }
        let _ = chars.peek();
    }
    heads
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in
        std::fs::read_dir(dir).with_context(|| format!("failed to list {}", dir.display()))?
    {
        let path = entry?.path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// The import graph of the crates whose sources are in `srcs`.
pub(crate) fn graph(srcs: &[PathBuf]) -> Result<Graph> {
    let mut graph = Graph::new();
    for src in srcs {
        add_crate(src, &mut graph)?;
    }
    Ok(graph)
}

/// The crates the graph covers, from the workspace root.
pub(crate) fn sources(workspace: &Path) -> Vec<PathBuf> {
    ["monitor-core/src", "monitor/src"]
        .iter()
        .map(|dir| workspace.join(dir))
        .collect()
}

fn add_crate(src: &Path, graph: &mut Graph) -> Result<()> {
    let mut files = Vec::new();
    rust_files(src, &mut files)?;
    files.sort();
    for file in files {
        let Some(module) = module_of(src, &file) else {
            continue;
        };
        let imports = graph.entry(module.clone()).or_default();
        if is_test_file(&file) {
            continue;
        }
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("failed to read {}", file.display()))?;
        for target in imported_modules(&non_test_code(&text), &["crate::", "monitor_core::"]) {
            if target != module {
                imports.insert(target);
            }
        }
    }
    // main.rs reaches the library as `monitor::`, not `crate::`.
    if let Ok(text) = std::fs::read_to_string(src.join("main.rs")) {
        let imports = imported_modules(&non_test_code(&text), &["monitor::"]);
        graph.entry("main".into()).or_default().extend(imports);
    }
    Ok(())
}

/// What breaks the layering: a module in no layer, an import from a higher layer, a
/// cycle. Empty when the graph is sound.
pub(crate) fn violations(graph: &Graph) -> Vec<String> {
    let mut found = Vec::new();
    for (module, imports) in graph {
        let Some(layer) = layer_of(module) else {
            found.push(format!(
                "module `{module}` is in no layer (xtask/src/layers.rs)"
            ));
            continue;
        };
        for target in imports {
            match layer_of(target) {
                Some(to) if to > layer => found.push(format!(
                    "`{module}` ({}) imports `{target}` ({}), a higher layer",
                    LAYERS[layer].0, LAYERS[to].0
                )),
                _ => {}
            }
        }
    }
    if let Some(cycle) = find_cycle(graph) {
        found.push(format!("import cycle: {}", cycle.join(" -> ")));
    }
    found
}

fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, done, path) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut done, &mut Vec::new()))
}

/// The graph, layer by layer, as ARCHITECTURE.md shows it.
pub(crate) fn render(graph: &Graph) -> String {
    let mut out = String::new();
    for (layer, modules) in LAYERS.iter().rev() {
        let _ = writeln!(out, "{layer}:");
        for module in *modules {
            let imports: Vec<&str> = graph
                .get(*module)
                .into_iter()
                .flatten()
                .map(String::as_str)
                .collect();
            let _ = writeln!(out, "  {module:<15} -> {}", imports.join(", "));
        }
    }
    out
}

/// `cargo xtask layers`: prints the graph, fails on a violation.
pub(crate) fn check(workspace: &Path) -> Result<()> {
    let graph = graph(&sources(workspace))?;
    print!("{}", render(&graph));
    let broken = violations(&graph);
    if !broken.is_empty() {
        bail!("the layering is broken:\n  {}", broken.join("\n  "));
    }
    println!("no cycle, no import from a higher layer");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn use_trees_and_inline_paths_name_their_modules() {
        let text = "use crate::{\n    model::{alert::X, ban::Y},\n    config::Config,\n};\n\
                    fn f() { crate::detect::run(); monitor_crate::x(); }";
        let found: Vec<_> = imported_modules(text, &["crate::"]).into_iter().collect();
        assert_eq!(found, ["config", "detect", "model"]);
    }

    #[test]
    fn an_upward_import_and_a_cycle_are_found() {
        let mut graph = Graph::new();
        graph.insert("model".into(), BTreeSet::from(["detect".into()]));
        graph.insert("detect".into(), BTreeSet::from(["model".into()]));
        let found = violations(&graph);
        assert!(
            found
                .iter()
                .any(|v| v.contains("`model` (model) imports `detect`")),
            "{found:?}"
        );
        assert!(
            found.iter().any(|v| v.starts_with("import cycle")),
            "{found:?}"
        );
    }

    /// The real tree: fails when a change imports upwards or closes a cycle.
    #[test]
    fn the_monitor_crate_keeps_its_layers() {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace");
        let graph = graph(&sources(workspace)).expect("graph");
        let broken = violations(&graph);
        assert!(
            broken.is_empty(),
            "{}\n{}",
            render(&graph),
            broken.join("\n")
        );
    }
}
