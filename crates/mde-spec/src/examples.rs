//! Every documented example of the spec, with the schema it must match.

use serde_json::Value;

use crate::Spec;

/// A documented example, once, with every place that uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// A stable name: the `components/examples` key, or where the example is written inline.
    pub name: String,
    /// JSON pointer of the example object (after following `$ref`).
    pub pointer: String,
    /// The schema the example must match, as written (often a `$ref`).
    pub schema: Value,
    /// The `components/schemas` name of that schema, when it is a reference to one.
    pub schema_name: Option<String>,
    /// The example's value.
    pub value: Value,
    /// The operations and places that show this example.
    pub uses: Vec<ExampleUse>,
}

/// A place where an example is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExampleUse {
    /// The operation's `operationId` (or its pointer when it has none).
    pub operation: String,
    /// `request`, `response 201`, `parameter id`, …
    pub place: String,
}

impl Spec {
    /// Every example shown by an operation (parameters, request body, responses), each
    /// once per schema it is shown with, in the order of the spec.
    pub fn examples(&self) -> Vec<Example> {
        let mut found: Vec<Example> = Vec::new();
        for op in self.operations() {
            let operation = op.operation_id.clone().unwrap_or_else(|| op.pointer());
            let mut places = Vec::new();
            self.places_of(&op, &mut places);
            for (place, schema, pointer, value) in places {
                let schema_name = schema
                    .get("$ref")
                    .and_then(Value::as_str)
                    .and_then(|r| r.strip_prefix("#/components/schemas/"))
                    .map(str::to_string);
                let use_ = ExampleUse {
                    operation: operation.clone(),
                    place: place.clone(),
                };
                if let Some(known) = found
                    .iter_mut()
                    .find(|e| e.pointer == pointer && e.schema == schema)
                {
                    known.uses.push(use_);
                    continue;
                }
                found.push(Example {
                    name: example_name(&pointer),
                    pointer,
                    schema,
                    schema_name,
                    value,
                    uses: vec![use_],
                });
            }
        }
        found
    }

    /// (place, schema, example pointer, example value) for each example an operation shows.
    fn places_of(&self, op: &crate::Operation, out: &mut Vec<(String, Value, String, Value)>) {
        let op_pointer = op.pointer();
        let params = op.value.get("parameters").and_then(Value::as_array);
        for (i, param) in params.into_iter().flatten().enumerate() {
            let pointer = ref_or(param, &format!("{op_pointer}/parameters/{i}"));
            let param = self.resolve(param);
            let name = param.get("name").and_then(Value::as_str).unwrap_or("?");
            let Some(schema) = param.get("schema") else {
                continue;
            };
            self.collect_examples(param, &pointer, &mut |at, value| {
                out.push((
                    format!("parameter {name}"),
                    schema.clone(),
                    at,
                    value.clone(),
                ));
            });
        }
        if let Some(body) = op.value.get("requestBody") {
            let pointer = ref_or(body, &format!("{op_pointer}/requestBody"));
            self.collect_content(self.resolve(body), &pointer, "request", out);
        }
        let responses = op.value.get("responses").and_then(Value::as_object);
        for (status, response) in responses.into_iter().flatten() {
            let pointer = ref_or(
                response,
                &format!("{op_pointer}/responses/{}", escape(status)),
            );
            let place = format!("response {status}");
            self.collect_content(self.resolve(response), &pointer, &place, out);
        }
    }

    fn collect_content(
        &self,
        holder: &Value,
        pointer: &str,
        place: &str,
        out: &mut Vec<(String, Value, String, Value)>,
    ) {
        let content = holder.get("content").and_then(Value::as_object);
        for (media, media_object) in content.into_iter().flatten() {
            let Some(schema) = media_object.get("schema") else {
                continue;
            };
            let media_pointer = format!("{pointer}/content/{}", escape(media));
            self.collect_examples(media_object, &media_pointer, &mut |at, value| {
                out.push((place.to_string(), schema.clone(), at, value.clone()));
            });
        }
    }

    /// Calls `found(pointer, value)` for the `example` and each of the `examples` of an
    /// object (a parameter or a media type).
    fn collect_examples(
        &self,
        holder: &Value,
        pointer: &str,
        found: &mut dyn FnMut(String, &Value),
    ) {
        if let Some(value) = holder.get("example") {
            found(format!("{pointer}/example"), value);
        }
        let examples = holder.get("examples").and_then(Value::as_object);
        for (name, example) in examples.into_iter().flatten() {
            let at = ref_or(example, &format!("{pointer}/examples/{}", escape(name)));
            if let Some(value) = self.resolve(example).get("value") {
                found(at, value);
            }
        }
    }
}

/// The pointer a `$ref` names, or `inline` when the value is written in place.
fn ref_or(value: &Value, inline: &str) -> String {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => reference.trim_start_matches('#').to_string(),
        None => inline.to_string(),
    }
}

fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// `/components/examples/Investigation` → `Investigation`; an inline example is named by its
/// path: `/components/parameters/MachineId/examples/short` → `MachineId-short`.
fn example_name(pointer: &str) -> String {
    if let Some(name) = pointer.strip_prefix("/components/examples/") {
        return name.replace("~1", "/").replace("~0", "~");
    }
    pointer
        .split('/')
        .skip(1)
        .filter(|s| {
            !matches!(
                *s,
                "components" | "parameters" | "examples" | "content" | "paths"
            )
        })
        .map(|s| s.replace("~1", "_").replace("~0", "_"))
        .collect::<Vec<_>>()
        .join("-")
        .replace(['{', '}', '/'], "")
}
