//! docs/json-schema.md against the records the tracer really writes. The page documents
//! each record type in a table under a heading naming its `"type"` (and each kind of
//! object inside an array under `type.field[]`); this test reads those tables with a
//! parser of its own and judges a real run with them: every key a record has must be
//! documented, with the JSON type the page gives it, and every documented key must occur
//! in the run (unless the page marks it `(optional)`). The run is workloads/playbook's
//! string concatenation, traced with `--allocs sample`, which writes every record type:
//! process, settings, gc, stw, alloc, the allocation snapshots, a code-level finding and
//! the summary.

use crate::harness;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

fn doc_text() -> String {
    let path = harness::workspace_root().join("docs/json-schema.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// One documented key.
#[derive(Debug)]
struct Field {
    name: String,
    /// JSON kinds the page allows: integer, number, string, bool, array, object, null.
    kinds: Vec<String>,
    /// Marked `(optional)`: it need not occur in every run.
    optional: bool,
}

/// The page's tables, by the path their heading names (`gc`, `alloc_types.types[]`).
type Schema = BTreeMap<String, Vec<Field>>;

const KINDS: [&str; 7] = [
    "integer", "number", "string", "bool", "array", "object", "null",
];

/// A heading that is one code span (`## \`gc\``) names a table's path; any other heading
/// ends the table before it. Rows start with "| `key` |"; the second cell is the type.
fn parse_schema(text: &str) -> Result<Schema, String> {
    let mut schema = Schema::new();
    let mut current: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.starts_with('#') {
            let title = line.trim_start_matches('#').trim();
            current = title
                .strip_prefix('`')
                .and_then(|t| t.strip_suffix('`'))
                .filter(|t| !t.contains('`'))
                .map(str::to_string);
            if let Some(path) = &current {
                if schema.insert(path.clone(), Vec::new()).is_some() {
                    return Err(format!("line {}: `{path}` documented twice", n + 1));
                }
            }
            continue;
        }
        let (Some(path), Some(row)) = (&current, line.strip_prefix("| `")) else {
            continue;
        };
        let cells: Vec<&str> = row.split(" | ").collect();
        let (Some(name), Some(kind)) = (cells.first(), cells.get(1)) else {
            return Err(format!("line {}: a row without a type: {line}", n + 1));
        };
        let name = name.trim_end_matches('`').to_string();
        let optional = kind.contains("(optional)");
        let kinds: Vec<String> = kind
            .replace("(optional)", "")
            .split(" or ")
            .map(|k| k.trim().to_string())
            .collect();
        if let Some(bad) = kinds.iter().find(|k| !KINDS.contains(&k.as_str())) {
            return Err(format!(
                "line {}: `{name}` has the type {bad:?}, not one of {KINDS:?}",
                n + 1
            ));
        }
        let fields = schema.entry(path.clone()).or_default();
        if fields.iter().any(|f| f.name == name) {
            return Err(format!("line {}: `{path}.{name}` documented twice", n + 1));
        }
        fields.push(Field {
            name,
            kinds,
            optional,
        });
    }
    schema.retain(|_, fields| !fields.is_empty());
    Ok(schema)
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn kind_allowed(field: &Field, v: &Value) -> bool {
    let kind = kind_of(v);
    // A JSON integer is a number too (an f64 that is whole is still written "1.0").
    field.kinds.iter().any(|k| k == kind)
        || (kind == "integer" && field.kinds.iter().any(|k| k == "number"))
}

/// What a run's records say against the schema: every key documented with its kind,
/// the keys seen per path collected in `seen`.
struct Judge<'a> {
    schema: &'a Schema,
    seen: BTreeMap<String, BTreeSet<String>>,
    failures: BTreeSet<String>,
}

impl Judge<'_> {
    fn record(&mut self, rec: &Value) {
        let Some(obj) = rec.as_object() else {
            self.failures.insert(format!("not a JSON object: {rec}"));
            return;
        };
        let Some(ty) = obj.get("type").and_then(Value::as_str) else {
            self.failures
                .insert(format!("a record without a \"type\": {rec}"));
            return;
        };
        if !self.schema.contains_key(ty) {
            self.failures
                .insert(format!("record type `{ty}` is not documented"));
            return;
        }
        self.object(ty, obj);
    }

    fn object(&mut self, path: &str, obj: &Map<String, Value>) {
        let Some(fields) = self.schema.get(path) else {
            return;
        };
        for (key, value) in obj {
            let Some(field) = fields.iter().find(|f| f.name == *key) else {
                self.failures.insert(format!(
                    "`{path}` has the key `{key}`, which is not documented"
                ));
                continue;
            };
            self.seen
                .entry(path.to_string())
                .or_default()
                .insert(key.clone());
            if !kind_allowed(field, value) {
                self.failures.insert(format!(
                    "`{path}.{key}` is documented as {:?} but was {} ({value})",
                    field.kinds.join(" or "),
                    kind_of(value)
                ));
            }
            let nested = format!("{path}.{key}[]");
            if let (Some(items), true) = (value.as_array(), self.schema.contains_key(&nested)) {
                for item in items {
                    match item.as_object() {
                        Some(o) => self.object(&nested, o),
                        None => {
                            self.failures
                                .insert(format!("`{nested}` holds a non-object: {item}"));
                        }
                    }
                }
            }
            let nested = format!("{path}.{key}");
            if let (Some(o), true) = (value.as_object(), self.schema.contains_key(&nested)) {
                self.object(&nested, o);
            }
        }
    }

    /// Documented keys that never occurred (and are not marked optional).
    fn unseen(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (path, fields) in self.schema {
            let seen = self.seen.get(path);
            for f in fields.iter().filter(|f| !f.optional) {
                if !seen.is_some_and(|s| s.contains(&f.name)) {
                    out.push(format!(
                        "`{path}.{}` is documented but occurred in no record of the run",
                        f.name
                    ));
                }
            }
        }
        out
    }
}

fn judge(schema: &Schema, records: &[Value]) -> Vec<String> {
    let mut judge = Judge {
        schema,
        seen: BTreeMap::new(),
        failures: BTreeSet::new(),
    };
    for r in records {
        judge.record(r);
    }
    let mut failures: Vec<String> = judge.failures.iter().cloned().collect();
    failures.extend(judge.unseen());
    failures
}

/// The judge itself, on a page and records made up here: it must catch an undocumented
/// key, a wrong kind, and a documented key that never occurs.
#[test]
fn the_judge_catches_undocumented_wrong_and_missing_keys() {
    let page = "# x\n\n## `gc`\n\n| field | JSON type | meaning |\n|---|---|---|\n\
                | `type` | string | |\n| `cycle` | integer | |\n| `heap` | integer or null | |\n\
                | `later` | string (optional) | |\n| `sites` | array | |\n\n\
                ### `gc.sites[]`\n\n| `line` | integer | |\n\n## Prose\n\n| `not` | a table |\n";
    let schema = parse_schema(page).expect("the page parses");
    assert_eq!(schema.len(), 2, "{schema:?}");
    let good: Vec<Value> = vec![
        serde_json::json!({"type":"gc","cycle":1,"heap":null,"sites":[{"line":3}]}),
        serde_json::json!({"type":"gc","cycle":2,"heap":5,"sites":[]}),
    ];
    assert_eq!(judge(&schema, &good), Vec::<String>::new());
    let bad: Vec<Value> = vec![
        serde_json::json!({"type":"gc","cycle":"1","heap":null,"extra":0,"sites":[{"line":3,"file":"x"}]}),
        serde_json::json!({"type":"stw"}),
    ];
    let failures = judge(&schema, &bad).join("\n");
    for expected in [
        "`gc.cycle` is documented as \"integer\" but was string",
        "`gc` has the key `extra`",
        "`gc.sites[]` has the key `file`",
        "record type `stw` is not documented",
    ] {
        assert!(
            failures.contains(expected),
            "{expected} not in:\n{failures}"
        );
    }
    let missing = judge(
        &schema,
        &[serde_json::json!({"type":"gc","cycle":1,"sites":[]})],
    );
    assert_eq!(
        missing,
        vec![
            "`gc.heap` is documented but occurred in no record of the run".to_string(),
            "`gc.sites[].line` is documented but occurred in no record of the run".to_string(),
        ]
    );
}

/// Every record type the JSON writer names has a table on the page (no run needed: a
/// new record type must come with its documentation).
#[test]
fn every_record_type_the_writer_names_is_documented() {
    let schema = parse_schema(&doc_text()).unwrap_or_else(|e| panic!("docs/json-schema.md: {e}"));
    let writer = harness::workspace_root().join("tracer/src/output/json.rs");
    let src = std::fs::read_to_string(&writer).expect("reading output/json.rs");
    let names: Vec<&str> = src
        .split("r#type: \"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert!(names.len() >= 9, "record types found in json.rs: {names:?}");
    let missing: Vec<&&str> = names.iter().filter(|n| !schema.contains_key(**n)).collect();
    assert!(
        missing.is_empty(),
        "record types with no table in docs/json-schema.md: {missing:?}"
    );
}

#[test]
fn every_field_of_a_real_run_is_documented_and_every_documented_field_occurs() {
    if !harness::integration_enabled() {
        return;
    }
    let schema = parse_schema(&doc_text()).unwrap_or_else(|e| panic!("docs/json-schema.md: {e}"));
    let tc = harness::newest_toolchain();
    let playbook = harness::build_workload(&tc, "playbook");
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("trace.ndjson");
    let _exclusive = harness::exclusive();
    let mut cmd = harness::TracerCmd::new();
    // The budget and window of the findings test's code-level cases: a 12 s run then
    // shows its finding (two site snapshots) on a loaded machine too.
    cmd.args([
        "--allocs",
        "sample",
        "--overhead-budget",
        "10",
        "--finding-window",
        "4",
    ])
    .json_to(&out)
    .launch(&playbook, ["-cause", "concat", "-duration", "12s"]);
    let run = harness::json_run::run(&mut cmd, tmp.path(), "traced", &out);
    assert!(run.run.status.success(), "traced run failed: {}", run.diag);
    let records: Vec<Value> = run
        .text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let types: BTreeSet<&str> = records.iter().filter_map(|r| r["type"].as_str()).collect();
    let failures = judge(&schema, &records);
    assert!(
        failures.is_empty(),
        "docs/json-schema.md disagrees with a real run (Go {}, record types {types:?}):\n{}\n{}",
        tc.version,
        failures.join("\n"),
        run.diag
    );
}
