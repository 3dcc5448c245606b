//! The OpenAPI 3.1 document served at `/v1/openapi.json` and checked in as
//! `control/openapi.json` (regenerate: `cost-control openapi > control/openapi.json`).

use serde_json::{json, Value};

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn body(name: &str) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": reference(name)}}})
}

fn ok(desc: &str, schema: Value) -> Value {
    json!({"description": desc, "content": {"application/json": {"schema": schema}}})
}

fn errors(codes: &[&str]) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    for c in codes {
        if *c == "304" {
            m.insert("304".into(), json!({"description": "Not modified: `since` equals the current version; empty body."}));
            continue;
        }
        let desc = match *c {
            "400" => {
                "Invalid request; `field` names the offending field (e.g. `events[3].cost_micros`)."
            }
            "401" => "Missing or unknown bearer token.",
            "403" => "Valid token of the wrong role.",
            "404" => "Not found.",
            "413" => "Request body larger than the bound (default 4 MiB).",
            _ => "Store unavailable.",
        };
        m.insert((*c).into(), json!({"description": desc, "content": {"application/json": {"schema": reference("Error")}}}));
    }
    m
}

fn op(
    summary: &str,
    role: &str,
    params: Value,
    req: Option<Value>,
    ok_code: &str,
    ok_resp: Value,
    errs: &[&str],
) -> Value {
    let mut responses = errors(errs);
    responses.insert(ok_code.into(), ok_resp);
    let mut o = json!({
        "summary": summary,
        "description": format!("Auth: {role}."),
        "parameters": params,
        "responses": responses,
    });
    if role != "none" {
        o["security"] = json!([{"bearer": []}]);
    }
    if let Some(r) = req {
        o["requestBody"] = r;
    }
    o
}

fn q(name: &str, required: bool, desc: &str) -> Value {
    json!({"name": name, "in": "query", "required": required, "description": desc, "schema": {"type": "string"}})
}

const MONEY: &str = "Integer micro-USD, or a decimal string of US dollars (\"12.50\" = 12500000).";

fn money() -> Value {
    json!({"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": "^[0-9]*(\\.[0-9]{1,6})?$"}], "description": MONEY})
}

fn int() -> Value {
    json!({"type": "integer", "format": "int64"})
}

fn string() -> Value {
    json!({"type": "string"})
}

fn obj(required: &[&str], props: Value) -> Value {
    json!({"type": "object", "required": required, "properties": props})
}

fn schemas() -> Value {
    json!({
        "Error": obj(&["error"], json!({"error": string(), "field": string()})),
        "BudgetPut": obj(&["tenant"], json!({
            "tenant": string(),
            "service": {"type": "string", "description": "Empty or absent: the tenant-wide budget."},
            "daily_limit_micros": money(), "monthly_limit_micros": money(),
            "soft_limit_percent": {"type": "integer", "minimum": 1, "maximum": 100, "default": 90},
            "utc_offset": {"oneOf": [{"type": "string", "example": "+05:30"}, {"type": "integer", "description": "minutes east of UTC"}],
                           "description": "The tenant's fixed calendar offset; absent keeps the current one (default UTC)."}
        })),
        "BudgetState": obj(&["tenant", "service", "remaining_micros", "soft", "hard"], json!({
            "tenant": string(), "service": string(),
            "daily_limit_micros": {"type": ["integer", "null"]}, "monthly_limit_micros": {"type": ["integer", "null"]},
            "soft_limit_percent": {"type": "integer"}, "utc_offset_minutes": {"type": "integer"},
            "daily_spent_micros": int(), "monthly_spent_micros": int(), "outstanding_micros": int(),
            "remaining_micros": {"type": "integer", "description": "min over windows of limit - spend - outstanding allowances; may be negative"},
            "soft": {"type": "boolean", "description": "spend + outstanding >= soft_limit_percent of a limit"},
            "hard": {"type": "boolean", "description": "remaining_micros <= 0"},
            "day_ends_at_ms": int(), "month_ends_at_ms": int()
        })),
        "SpendEvent": obj(&["tenant", "cost_micros", "ts"], json!({
            "tenant": string(), "service": string(), "route": string(), "provider": string(), "strategy": string(),
            "cost_micros": money(),
            "baseline_micros": {"oneOf": [{"type": "integer"}, {"type": "string"}], "description": "What it would have cost without the optimizer; default cost_micros. Same encoding as cost_micros."},
            "ts": {"oneOf": [{"type": "integer", "description": "unix ms"}, {"type": "string", "description": "RFC 3339"}], "description": "At most 1 h in the future."},
            "allowance_id": {"type": "string", "description": "The lease this spend settles."},
            "count": {"type": "integer", "minimum": 1, "maximum": 1000000000, "default": 1, "description": "Requests this event stands for: more than 1 for a sum a gateway folded when its buffer was full. Reports count events by it."}
        })),
        "SpendBatch": obj(&["batch_id", "gateway_id", "events"], json!({
            "batch_id": {"type": "string", "description": "Idempotency key: a replayed id is acknowledged and not counted twice."},
            "gateway_id": string(),
            "events": {"type": "array", "minItems": 1, "maxItems": 10000, "items": reference("SpendEvent")}
        })),
        "SpendAck": obj(&["batch_id", "accepted", "duplicate"], json!({"batch_id": string(), "accepted": {"type": "integer"}, "duplicate": {"type": "boolean"}})),
        "ReportRow": obj(&["key", "events", "cost_micros", "baseline_micros", "savings_micros"], json!({
            "key": {"type": "string", "description": "The group's value; \"total\" when not grouped; for hour and day, the bucket's start in RFC 3339 at the report's offset (\"2025-03-10T17:00:00+05:30\")."},
            "start_ms": {"type": "integer", "format": "int64", "description": "hour and day only: the bucket's start, unix ms."},
            "events": int(), "cost_micros": int(), "baseline_micros": int(), "savings_micros": int()
        })),
        "Report": obj(&["tenant", "from_ms", "to_ms", "utc_offset_minutes", "rows", "total"], json!({
            "tenant": {"type": ["string", "null"], "description": "null: every tenant"}, "from_ms": int(), "to_ms": int(),
            "group_by": {"type": ["string", "null"], "enum": ["service", "route", "provider", "strategy", "tenant", "hour", "day", null]},
            "utc_offset_minutes": {"type": "integer", "description": "The offset day and hour buckets (and the default from) follow: the tenant's, 0 for every tenant."},
            "rows": {"type": "array", "items": reference("ReportRow"), "description": "Ordered by key; hour and day buckets in time order, only those with events."},
            "total": reference("ReportRow")
        })),
        "AllowanceRequest": obj(&["gateway_id", "tenant", "want_micros"], json!({
            "gateway_id": string(), "tenant": string(),
            "service": {"type": "string", "description": "Also bound by the tenant+service budget when one exists."},
            "want_micros": money(), "ttl_secs": {"type": "integer", "minimum": 1, "maximum": 3600, "description": "Default: server's --lease-ttl-secs (60)."}
        })),
        "Allowance": obj(&["tenant", "service", "gateway_id", "granted_micros", "expires_at_ms"], json!({
            "allowance_id": {"type": ["string", "null"], "description": "null when nothing was granted"},
            "tenant": string(), "service": string(), "gateway_id": string(),
            "granted_micros": int(), "expires_at_ms": int(),
            "remaining_micros": {"type": ["integer", "null"], "description": "left after this grant; null: no budget (unlimited)"},
            "soft": {"type": "boolean", "description": "after this grant, spend + outstanding reached a soft limit of a budget that bounds this lease"},
            "hard": {"type": "boolean", "description": "after this grant, nothing is left in a budget that bounds this lease"}
        })),
        "Release": obj(&["allowance_id", "returned_micros"], json!({"allowance_id": string(), "returned_micros": int()})),
        "PurgeRequest": {"type": "object", "required": ["tenant"], "description": "Exactly one of prefix, tag, key.",
            "properties": {"tenant": string(), "prefix": string(), "tag": string(), "key": string()}},
        "PurgeEntry": obj(&["tenant", "kind", "value", "generation"], json!({
            "tenant": string(), "kind": {"type": "string", "enum": ["prefix", "tag", "key"]}, "value": string(),
            "generation": {"type": "integer", "description": "Starts at 1; absent entries are generation 0."}
        })),
        "Snapshot": obj(&["version", "generated_at_ms", "tenants", "purges"], json!({
            "version": {"type": "string", "description": "Opaque; pass as `since` to get 304 while unchanged."},
            "generated_at_ms": int(),
            "tenants": {"type": "array", "items": reference("BudgetState")},
            "purges": {"type": "array", "items": reference("PurgeEntry")}
        })),
        "Alert": obj(&["id", "tenant", "service", "window", "window_start_ms", "level", "spent_micros", "limit_micros", "fired_at_ms", "delivered", "attempts"], json!({
            "id": int(), "tenant": string(), "service": string(),
            "window": {"type": "string", "enum": ["daily", "monthly"]}, "window_start_ms": int(),
            "level": {"type": "string", "enum": ["soft", "hard"]}, "spent_micros": int(), "limit_micros": int(),
            "fired_at_ms": int(), "delivered": {"type": "boolean"}, "attempts": {"type": "integer"}
        })),
        "WebhookPayload": obj(&["type", "alert", "message"], json!({"type": {"const": "budget_alert"}, "alert": reference("Alert"), "message": string()}))
    })
}

/// The document as a JSON value.
pub fn document() -> Value {
    let status = ok("OK", obj(&["status"], json!({"status": string()})));
    let list = |key: &str, item: &str| {
        ok(
            "OK",
            obj(
                &[key],
                json!({ key: {"type": "array", "items": reference(item)} }),
            ),
        )
    };
    json!({
        "openapi": "3.1.0",
        "info": {"title": "cost-control", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Budgets, allowance leases and the spend ledger for the API-cost optimizer. Money is integer micro-USD; times are unix milliseconds. See control/README.md."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                "description": "Admin token (budget and purge writes) or gateway token (ingest, allowances, snapshot); reads accept either."}},
            "schemas": schemas()
        },
        "paths": {
            "/healthz": {"get": op("Liveness", "none", json!([]), None, "200", status.clone(), &[])},
            "/readyz": {"get": op("Readiness: the store answers", "none", json!([]), None, "200", status, &["503"])},
            "/metrics": {"get": op("Prometheus metrics", "none", json!([]), None, "200",
                json!({"description": "text/plain; version=0.0.4", "content": {"text/plain": {"schema": string()}}}), &[])},
            "/v1/openapi.json": {"get": op("This document", "none", json!([]), None, "200", ok("OK", json!({"type": "object"})), &[])},
            "/v1/budgets": {
                "put": op("Create or replace a budget", "admin", json!([]), Some(body("BudgetPut")), "200", ok("The budget's state", reference("BudgetState")), &["400", "401", "403", "413", "503"]),
                "get": op("Budgets and their state", "admin or gateway", json!([q("tenant", false, "only this tenant")]), None, "200", list("budgets", "BudgetState"), &["401", "503"])
            },
            "/v1/spend": {
                "post": op("Ingest a spend batch (acknowledged once durably committed; idempotent per batch_id; all-or-nothing)", "gateway", json!([]), Some(body("SpendBatch")), "200", ok("Committed (or already committed: duplicate=true)", reference("SpendAck")), &["400", "401", "403", "413", "503"]),
                "get": op("Spend report: cost, baseline, savings over [from, to), of one tenant or of every tenant", "admin or gateway", json!([
                    q("tenant", false, "absent: every tenant"), q("from", false, "unix ms, RFC 3339 or YYYY-MM-DD; default: start of the tenant's month (UTC month for every tenant)"),
                    q("to", false, "exclusive; default now"),
                    q("group_by", false, "service | route | provider | strategy | tenant | hour | day; hour and day buckets start at the tenant's UTC offset (UTC for every tenant)")
                ]), None, "200", ok("OK", reference("Report")), &["400", "401", "503"])
            },
            "/v1/allowances": {"post": op("Lease part of the remaining budget (at most what is left)", "gateway", json!([]), Some(body("AllowanceRequest")), "200", ok("The grant (granted_micros may be 0)", reference("Allowance")), &["400", "401", "403", "413", "503"])},
            "/v1/allowances/{id}": {"delete": op("Return a lease's unused part to the pool", "gateway",
                json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}]), None, "200", ok("OK", reference("Release")), &["401", "403", "404", "503"])},
            "/v1/snapshot": {"get": op("Budget states and purge generations for filters", "gateway",
                json!([q("since", false, "a version from an earlier snapshot")]), None, "200",
                json!({"description": "The snapshot; ETag carries the version", "content": {"application/json": {"schema": reference("Snapshot")}}}),
                &["304", "401", "403", "503"])},
            "/v1/purge": {"post": op("Bump the cache generation of a tenant's prefix, tag or key", "admin", json!([]), Some(body("PurgeRequest")), "200", ok("The new generation", reference("PurgeEntry")), &["400", "401", "403", "413", "503"])},
            "/v1/alerts": {"get": op("Fired budget alerts, newest first", "admin or gateway",
                json!([q("tenant", false, ""), q("limit", false, "1..1000, default 100")]), None, "200", list("alerts", "Alert"), &["400", "401", "503"])},
            "/v1/wake": {"get": op("Answer 204 after `after_ms` (0..=1000 ms): the wake call of a request waiting in a Kong gateway, whose host gives a paused request no timer of its own", "none",
                json!([q("after_ms", true, "0..=1000")]), None, "204", json!({"description": "The delay passed"}), &["400"])}
        }
    })
}

/// The document pretty-printed, exactly as checked in.
pub fn document_string() -> String {
    serde_json::to_string_pretty(&document()).unwrap_or_default()
}
