//! The OpenAPI 3.1 document of the API, built here next to the routes it
//! describes (the integration tests check that every documented operation
//! is served and that responses match it; schemathesis checks it against a
//! live server).

use serde_json::{json, Map, Value};

/// Every documented operation: method, path (below the base path) and
/// operation id. [`document`] builds the paths from this list, and the
/// tests request each of them.
pub const OPERATIONS: &[(&str, &str, &str)] = &[
    ("post", "/api/v1/jobs", "createJob"),
    ("get", "/api/v1/jobs", "listJobs"),
    ("get", "/api/v1/jobs/{id}", "getJob"),
    ("delete", "/api/v1/jobs/{id}", "deleteJob"),
    ("post", "/api/v1/jobs/{id}/cancel", "cancelJob"),
    ("post", "/api/v1/jobs/{id}/retry", "retryJob"),
    ("get", "/api/v1/jobs/{id}/events", "jobEvents"),
    ("post", "/api/v1/jobs/bulk/cancel", "bulkCancel"),
    ("post", "/api/v1/jobs/bulk/retry", "bulkRetry"),
    ("post", "/api/v1/jobs/bulk/delete", "bulkDelete"),
    ("get", "/api/v1/stats", "getStats"),
    ("get", "/api/v1/types", "getTypes"),
    ("post", "/api/v1/types/{type}/pause", "pauseType"),
    ("post", "/api/v1/types/{type}/resume", "resumeType"),
    ("get", "/api/v1/workers", "getWorkers"),
    ("get", "/api/v1/history", "getHistory"),
    ("get", "/api/v1/whoami", "whoAmI"),
    ("get", "/api/v1/events", "events"),
    ("get", "/api/v1/openapi.json", "openApi"),
    ("get", "/metrics", "metrics"),
    ("get", "/healthz", "healthz"),
    ("get", "/readyz", "readyz"),
];

/// A job id: what the server accepts, narrowed to what generators should
/// produce (ASCII segments joined by single dots).
const ID_PATTERN: &str = "^[A-Za-z0-9_:-]+(\\.[A-Za-z0-9_:-]+)*$";
const TYPE_PATTERN: &str = "^[A-Za-z0-9._:-]{1,64}$";
/// Visible ASCII at both ends, printable ASCII inside.
const USER_PATTERN: &str = "^[!-~]([ -~]*[!-~])?$";
/// `If-Match`: a comma-separated list (empty elements allowed, as in RFC
/// 9110) of `*`, quoted tags (also weak ones, which never match) or bare
/// tags.
const IF_MATCH_PATTERN: &str = concat!(
    "^[ \\t,]*((\\*|(W/)?\"[!#-+\\--~]*\"|[!#-+\\--~]+)",
    "(([ \\t]*,)+[ \\t]*(\\*|(W/)?\"[!#-+\\--~]*\"|[!#-+\\--~]+))*)?[ \\t,]*$"
);
const STATUSES: [&str; 5] = ["pending", "running", "complete", "failed", "cancelled"];

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/problem+json": { "schema": schema_ref("Problem") } }
    })
}

fn json_response(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema } } })
}

fn job_response(description: &str) -> Value {
    json!({
        "description": description,
        "headers": { "ETag": { "$ref": "#/components/headers/ETag" } },
        "content": { "application/json": { "schema": schema_ref("Job") } }
    })
}

/// Adds the problem responses named by `codes`.
fn with_problems(mut responses: Map<String, Value>, codes: &[u16]) -> Value {
    for code in codes {
        let text = match code {
            400 => "Invalid input (body, id, filter or header); nothing was written.",
            401 => "Missing or unknown bearer token.",
            403 => "The token's role does not allow this operation.",
            404 => "No such job.",
            408 => "The request body arrived too slowly.",
            409 => "The job's status does not allow this, or an idempotent request with the same key is running.",
            412 => "If-Match named another version of the job.",
            413 => "The request body is larger than the limit.",
            415 => "The request body is not JSON.",
            422 => "The Idempotency-Key was used with a different body.",
            503 => "The store is unreachable, the request timed out, or the server is shutting down.",
            _ => "Error.",
        };
        responses.insert(code.to_string(), problem(text));
    }
    Value::Object(responses)
}

fn responses(ok: &[(&str, Value)], codes: &[u16]) -> Value {
    let map = ok
        .iter()
        .map(|(code, v)| ((*code).to_owned(), v.clone()))
        .collect();
    with_problems(map, codes)
}

fn id_param() -> Value {
    json!({ "$ref": "#/components/parameters/JobId" })
}

fn if_match() -> Value {
    json!({ "$ref": "#/components/parameters/IfMatch" })
}

fn json_body(schema: Value) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": schema } } })
}

fn sse_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "text/event-stream": { "schema": { "type": "string" } } }
    })
}

fn operation(id: &str) -> Value {
    let read = &[400, 401, 403, 503][..];
    match id {
        "createJob" => json!({
            "summary": "Create a job (the seed's createJob object).",
            "parameters": [{ "$ref": "#/components/parameters/IdempotencyKey" }],
            "requestBody": json_body(schema_ref("CreateJob")),
            "responses": responses(
                &[
                    ("201", json!({
                        "description": "Created.",
                        "headers": {
                            "ETag": { "$ref": "#/components/headers/ETag" },
                            "Location": { "required": true, "schema": { "type": "string" } }
                        },
                        "content": { "application/json": { "schema": schema_ref("Job") } }
                    })),
                    ("200", job_response("The job an earlier request with this Idempotency-Key created.")),
                ],
                &[400, 401, 403, 404, 408, 409, 413, 415, 422, 503],
            ),
        }),
        "listJobs" => json!({
            "summary": "List jobs, newest first, with the total number of matches.",
            "parameters": [
                { "name": "status", "in": "query", "schema": { "type": "string", "enum": STATUSES } },
                { "name": "type", "in": "query", "schema": { "type": "string", "pattern": TYPE_PATTERN } },
                { "name": "userId", "in": "query", "schema": { "type": "string", "pattern": USER_PATTERN, "maxLength": 256 } },
                { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 0, "maximum": 1000, "default": 100 } },
                { "name": "offset", "in": "query", "schema": { "type": "integer", "minimum": 0, "maximum": 1_000_000_000_i64, "default": 0 } }
            ],
            "responses": responses(&[("200", json_response("A page of jobs.", schema_ref("JobPage")))], read),
        }),
        "getJob" => json!({
            "summary": "Read a job.",
            "parameters": [id_param()],
            "responses": responses(&[("200", job_response("The job."))], &[400, 401, 403, 404, 503]),
        }),
        "deleteJob" => json!({
            "summary": "Delete a finished (complete, failed or cancelled) job.",
            "parameters": [id_param(), if_match()],
            "responses": responses(&[("204", json!({ "description": "Deleted." }))], &[400, 401, 403, 404, 409, 412, 503]),
        }),
        "cancelJob" | "retryJob" => json!({
            "summary": if id == "cancelJob" {
                "Cancel a pending or running job (its worker is told)."
            } else {
                "Retry a failed or cancelled job (back to pending, fresh retry budget)."
            },
            "parameters": [id_param(), if_match()],
            "responses": responses(&[("200", job_response("The job as written."))], &[400, 401, 403, 404, 409, 412, 503]),
        }),
        "jobEvents" => json!({
            "summary": "Server-Sent Events of one job: its state, then status and progress events; ends after a final status.",
            "parameters": [id_param(), { "$ref": "#/components/parameters/LastEventId" }],
            "responses": responses(&[("200", sse_response("An event stream."))], &[400, 401, 403, 404, 503]),
        }),
        "bulkCancel" | "bulkRetry" | "bulkDelete" => json!({
            "summary": "Apply the action to the jobs named by ids or matching a filter; dryRun only counts.",
            "requestBody": json_body(schema_ref("BulkRequest")),
            "responses": responses(&[("200", json_response("What was done.", schema_ref("BulkResponse")))], &[400, 401, 403, 408, 413, 415, 503]),
        }),
        "getStats" => json!({
            "summary": "Job counts per status (the seed's getStats).",
            "responses": responses(&[("200", json_response("Counts.", schema_ref("Stats")))], read),
        }),
        "getTypes" => json!({
            "summary": "Job counts per status for each job type that has jobs.",
            "responses": responses(&[("200", json_response("Counts per type.", schema_ref("Types")))], read),
        }),
        "pauseType" | "resumeType" => json!({
            "summary": if id == "pauseType" {
                "Pause claims of a job type in every process (running jobs go on)."
            } else {
                "Resume claims of a paused job type."
            },
            "parameters": [{ "name": "type", "in": "path", "required": true,
                             "schema": { "type": "string", "pattern": TYPE_PATTERN } }],
            "responses": responses(&[("200", json_response("The type's state; changed says whether it changed.", schema_ref("Paused")))], read),
        }),
        "getWorkers" => json!({
            "summary": "Workers the store knows, their last heartbeat, and their running jobs.",
            "responses": responses(&[("200", json_response("Workers.", schema_ref("Workers")))], read),
        }),
        "getHistory" => json!({
            "summary": "The last hour, per minute, since the server started: jobs finished and the oldest due pending job's age.",
            "responses": responses(&[("200", json_response("Sixty minutes, oldest first.", schema_ref("History")))], read),
        }),
        "whoAmI" => json!({
            "summary": "The caller's role, whether tokens are in use, the base path and the server version.",
            "responses": responses(&[("200", json_response("The caller.", schema_ref("WhoAmI")))], &[400, 401]),
        }),
        "events" => json!({
            "summary": "Server-Sent Events of every job lifecycle change (filterable).",
            "parameters": [
                { "name": "type", "in": "query", "schema": { "type": "string", "pattern": TYPE_PATTERN } },
                { "name": "userId", "in": "query", "schema": { "type": "string", "pattern": USER_PATTERN, "maxLength": 256 } },
                { "name": "jobId", "in": "query", "schema": { "type": "string", "pattern": ID_PATTERN, "maxLength": 128 } },
                { "$ref": "#/components/parameters/LastEventId" }
            ],
            "responses": responses(&[("200", sse_response("An event stream."))], &[400, 401, 403, 503]),
        }),
        "openApi" => json!({
            "summary": "This document.",
            "security": [],
            "responses": responses(&[("200", json_response("OpenAPI 3.1.", json!({ "type": "object" })))], &[400]),
        }),
        "metrics" => json!({
            "summary": "Prometheus metrics (text format).",
            "responses": responses(&[("200", json!({
                "description": "Metrics.",
                "content": { "text/plain": { "schema": { "type": "string" } } }
            }))], read),
        }),
        "healthz" => json!({
            "summary": "The process is up.",
            "security": [],
            "responses": responses(&[("200", json_response("Up.", schema_ref("Status")))], &[400]),
        }),
        _ => json!({
            "summary": "The store is reachable (503 otherwise).",
            "security": [],
            "responses": responses(&[("200", json_response("Ready.", schema_ref("Status")))], &[400, 503]),
        }),
    }
}

/// A string with something other than white space.
fn nonblank() -> Value {
    json!({ "type": "string", "minLength": 1, "pattern": "\\S" })
}

fn create_common() -> Map<String, Value> {
    let v = json!({
        "userId": { "type": "string", "pattern": USER_PATTERN, "maxLength": 256 },
        "maxRetries": { "type": "integer", "minimum": 0, "maximum": 100 },
        "uniqueKey": { "type": "string", "pattern": "^[ -~]*[!-~][ -~]*$", "maxLength": 200 },
        "uniqueAfterFinishMs": { "type": "integer", "minimum": 0, "maximum": 999_999_999_999_999_i64 },
        "priority": { "type": "integer", "minimum": -32768, "maximum": 32767 },
        "runAt": { "type": "string", "format": "date-time", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$" }
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn create_variant(type_schema: Value, extra: Value, required: &[&str], closed: bool) -> Value {
    let mut props = create_common();
    props.insert("type".into(), type_schema);
    if let Value::Object(extra) = extra {
        props.extend(extra);
    }
    let mut req = vec!["type", "userId"];
    req.extend_from_slice(required);
    let mut s = json!({
        "type": "object",
        "required": req,
        "properties": props,
        "dependentRequired": { "uniqueAfterFinishMs": ["uniqueKey"] }
    });
    if closed {
        s["additionalProperties"] = json!(false);
    } else {
        // A custom type's parameters: any fields except the job's own.
        s["propertyNames"] = json!({
            "not": { "enum": semiont_jobs_model::RESERVED_FIELDS.iter()
                    .filter(|f| !["type", "userId", "maxRetries", "priority", "runAt", "uniqueKey", "uniqueAfterFinishMs"].contains(f))
                .collect::<Vec<_>>() }
        });
    }
    s
}

fn schemas() -> Value {
    let entity_types = json!({ "type": "array", "minItems": 1, "items": nonblank() });
    let detection = create_variant(
        json!({ "const": "detection" }),
        json!({ "resourceId": nonblank(), "entityTypes": entity_types }),
        &["resourceId", "entityTypes"],
        true,
    );
    let generation = create_variant(
        json!({ "const": "generation" }),
        json!({
            "referenceId": nonblank(),
            "sourceResourceId": nonblank(),
            "prompt": { "type": "string" },
            "title": { "type": "string" },
            "language": { "type": "string" },
            "entityTypes": { "type": "array", "items": nonblank() }
        }),
        &["referenceId", "sourceResourceId"],
        true,
    );
    let custom = create_variant(
        json!({ "type": "string", "pattern": TYPE_PATTERN, "not": { "enum": ["detection", "generation"] } }),
        json!({}),
        &[],
        false,
    );
    let count = json!({ "type": "integer", "minimum": 0 });
    let status = json!({ "type": "string", "enum": STATUSES });
    json!({
        "Problem": {
            "type": "object",
            "required": ["type", "title", "status", "detail", "code"],
            "properties": {
                "type": { "type": "string" },
                "title": { "type": "string" },
                "status": { "type": "integer" },
                "detail": { "type": "string" },
                "code": { "type": "string" }
            }
        },
        "Job": {
            "type": "object",
            "required": ["id", "type", "status", "userId", "created", "retryCount", "maxRetries"],
            "properties": {
                "id": { "type": "string" },
                "type": { "type": "string" },
                "status": status,
                "userId": { "type": "string" },
                "created": { "type": "string", "format": "date-time" },
                "startedAt": { "type": "string", "format": "date-time" },
                "completedAt": { "type": "string", "format": "date-time" },
                "error": { "type": "string" },
                "retryCount": count,
                "maxRetries": count,
                "progress": {},
                "result": {},
                "attempt": count,
                "runAt": { "type": "string", "format": "date-time" },
                "priority": { "type": "integer" },
                "workerId": { "type": "string" },
                "leaseExpiresAt": { "type": "string", "format": "date-time" }
            },
            "additionalProperties": true
        },
        "JobPage": {
            "type": "object",
            "required": ["jobs", "total", "limit", "offset"],
            "properties": {
                "jobs": { "type": "array", "items": schema_ref("Job") },
                "total": count, "limit": count, "offset": count
            }
        },
        "CreateJob": { "oneOf": [detection, generation, custom] },
        "BulkRequest": {
            "oneOf": [
                {
                    "type": "object", "required": ["ids"], "additionalProperties": false,
                    "properties": {
                        "ids": { "type": "array", "minItems": 1, "maxItems": 1000,
                                 "items": { "type": "string", "pattern": ID_PATTERN, "maxLength": 128 } },
                        "dryRun": { "type": "boolean" }
                    }
                },
                {
                    "type": "object", "required": ["filter"], "additionalProperties": false,
                    "properties": {
                        "filter": {
                            "type": "object", "additionalProperties": false,
                            "properties": {
                                "status": status,
                                "type": { "type": "string", "pattern": TYPE_PATTERN },
                                "userId": { "type": "string", "pattern": USER_PATTERN, "maxLength": 256 }
                            }
                        },
                        "dryRun": { "type": "boolean" }
                    }
                }
            ]
        },
        "BulkResponse": {
            "type": "object",
            "required": ["action", "dryRun", "matched", "succeeded", "skipped", "remaining"],
            "properties": {
                "action": { "type": "string", "enum": ["cancel", "retry", "delete"] },
                "dryRun": { "type": "boolean" },
                "matched": count, "succeeded": count, "remaining": count,
                "skipped": { "type": "array", "items": {
                    "type": "object", "required": ["id", "code", "detail"],
                    "properties": { "id": { "type": "string" }, "code": { "type": "string" }, "detail": { "type": "string" } }
                } }
            }
        },
        "Stats": {
            "type": "object",
            "required": ["pending", "running", "complete", "failed", "cancelled", "unreadable"],
            "properties": {
                "pending": count, "running": count, "complete": count,
                "failed": count, "cancelled": count, "unreadable": count,
                "paused": { "type": "boolean" }
            }
        },
        "Types": {
            "type": "object", "required": ["types"],
            "properties": { "types": { "type": "array", "items": {
                "type": "object",
                "required": ["type", "pending", "running", "complete", "failed", "cancelled", "total", "paused"],
                "properties": {
                    "type": { "type": "string" },
                    "paused": { "type": "boolean" },
                    "pending": count, "running": count, "complete": count,
                    "failed": count, "cancelled": count, "total": count
                }
            } } }
        },
        "Paused": {
            "type": "object", "required": ["type", "paused", "changed"],
            "properties": {
                "type": { "type": "string" },
                "paused": { "type": "boolean" },
                "changed": { "type": "boolean" }
            }
        },
        "Workers": {
            "type": "object", "required": ["workers", "runningTotal"],
            "properties": {
                "runningTotal": count,
                "workers": { "type": "array", "items": {
                    "type": "object",
                    "required": ["id", "alive", "leaseSeconds", "running"],
                    "properties": {
                        "id": { "type": "string" },
                        "alive": { "type": "boolean" },
                        "leaseSeconds": { "type": "number", "minimum": 0 },
                        "lastSeen": { "type": "string", "format": "date-time" },
                        "host": { "type": "string" },
                        "pid": { "type": "integer", "minimum": 0 },
                        "running": { "type": "array", "items": {
                            "type": "object", "required": ["id", "type", "attempt"],
                            "properties": {
                                "id": { "type": "string" },
                                "type": { "type": "string" },
                                "attempt": count,
                                "startedAt": { "type": "string", "format": "date-time" },
                                "progress": {}
                            }
                        } }
                    }
                } }
            }
        },
        "History": {
            "type": "object", "required": ["bucketSeconds", "minutes"],
            "properties": {
                "bucketSeconds": { "type": "integer", "minimum": 1 },
                "minutes": { "type": "array", "items": {
                    "type": "object",
                    "required": ["start", "observed", "complete", "failed", "cancelled", "finished"],
                    "properties": {
                        "start": { "type": "string", "format": "date-time" },
                        "observed": { "type": "boolean" },
                        "complete": count,
                        "failed": count,
                        "cancelled": count,
                        "finished": count,
                        "oldestDueSeconds": { "type": "number", "minimum": 0 }
                    }
                } }
            }
        },
        "WhoAmI": {
            "type": "object",
            "required": ["role", "authenticated", "basePath", "version"],
            "properties": {
                "role": { "type": "string", "enum": ["read", "write", "admin"] },
                "authenticated": { "type": "boolean" },
                "basePath": { "type": "string" },
                "version": { "type": "string" }
            }
        },
        "Status": {
            "type": "object", "required": ["status"],
            "properties": { "status": { "type": "string" } }
        }
    })
}

/// The OpenAPI 3.1 document for a server under `base_path`.
pub fn document(base_path: &str) -> Value {
    let mut paths = Map::new();
    for (method, path, id) in OPERATIONS {
        let mut op = operation(id);
        op["operationId"] = json!(id);
        let item = paths.entry((*path).to_owned()).or_insert_with(|| json!({}));
        item[*method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "semiont-jobs",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The job queue over HTTP: jobs, bulk operations, statistics, Server-Sent Events and metrics. Errors are application/problem+json with a one-line detail."
        },
        "servers": [{ "url": if base_path.is_empty() { "/" } else { base_path } }],
        "security": [{ "bearer": [] }],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "description": "A token from the server's token file; roles read, write, admin." }
            },
            "parameters": {
                "JobId": {
                    "name": "id", "in": "path", "required": true,
                    "schema": { "type": "string", "pattern": ID_PATTERN, "maxLength": 128 }
                },
                "IfMatch": {
                    "name": "If-Match", "in": "header",
                    "description": "Act only if the job's ETag (status and attempt) is one of these.",
                    "schema": { "type": "string", "pattern": IF_MATCH_PATTERN }
                },
                "IdempotencyKey": {
                    "name": "Idempotency-Key", "in": "header",
                    "description": "A repeated request with the same key and body returns the job the first one created (kept per token, in this server process, for 24 h).",
                    "schema": { "type": "string", "pattern": "^[!-~]{1,255}$" }
                },
                "LastEventId": {
                    "name": "Last-Event-ID", "in": "header",
                    "description": "Replay the events after this id (a resync event when they are no longer kept).",
                    "schema": { "type": "string", "pattern": "^[0-9]{1,19}$" }
                }
            },
            "headers": {
                "ETag": {
                    "required": true,
                    "description": "The job's status and attempt, e.g. \"running.2\".",
                    "schema": { "type": "string" }
                }
            },
            "schemas": schemas()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` in the document points at something that exists.
    #[test]
    fn every_reference_resolves() {
        let doc = document("/base");
        let mut stack = vec![&doc];
        let mut refs = 0;
        while let Some(v) = stack.pop() {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(r)) = m.get("$ref") {
                        let pointer = r.strip_prefix('#').unwrap();
                        assert!(doc.pointer(pointer).is_some(), "dangling {r}");
                        refs += 1;
                    }
                    stack.extend(m.values());
                }
                Value::Array(a) => stack.extend(a),
                _ => {}
            }
        }
        assert!(refs > 20, "{refs}");
        assert_eq!(doc["servers"][0]["url"], "/base");
        assert_eq!(doc["openapi"], "3.1.0");
    }

    #[test]
    fn operation_ids_are_unique_and_every_operation_has_responses() {
        let mut ids: Vec<&str> = OPERATIONS.iter().map(|o| o.2).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), OPERATIONS.len());
        let doc = document("");
        for (method, path, id) in OPERATIONS {
            let op = &doc["paths"][*path][*method];
            assert_eq!(op["operationId"], *id);
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{id}"
            );
        }
    }

    #[test]
    fn the_patterns_agree_with_the_model() {
        // Ids the server makes match the documented pattern.
        let id = semiont_jobs_model::JobId::generate();
        let ok = id.as_str().split('.').all(|s| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_:-".contains(&b))
        });
        assert!(ok, "{id}");
        assert!(semiont_jobs_model::RESERVED_FIELDS.contains(&"status"));
    }
}
