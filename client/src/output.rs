//! What commands print: a human form and a JSON form of the same report.

use serde_json::{Value, json};
use usercap::NtStatus;
use usercap_protocol::{BatchReply, Config, MessageReply, Stats, SumReply};

use crate::ops::{OpError, describe};

/// A command's result, in both forms.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// For people.
    pub human: String,
    /// For scripts (`--json`).
    pub json: Value,
}

/// The JSON form of a status.
#[must_use]
pub fn status_json(status: NtStatus) -> Value {
    json!({
        "status": status.name().unwrap_or("UNKNOWN"),
        "code": format!("0x{:08X}", status.as_u32()),
        "message": describe(status),
    })
}

/// An error report; the exit code goes with it.
#[must_use]
pub fn error(error: &OpError) -> Report {
    let json = match error {
        OpError::Status(status) => {
            let mut v = status_json(*status);
            v["ok"] = json!(false);
            v
        }
        other => json!({ "ok": false, "error": other.to_string() }),
    };
    Report {
        human: format!("error: {error}"),
        json,
    }
}

/// ECHO's reply.
#[must_use]
pub fn echo(bytes: &[u8]) -> Report {
    let text = String::from_utf8_lossy(bytes);
    Report {
        human: format!("{text}\n({} bytes echoed)", bytes.len()),
        json: json!({ "ok": true, "echo": text, "bytes": bytes.len() }),
    }
}

/// SUM's reply.
#[must_use]
pub fn sum(reply: &SumReply) -> Report {
    Report {
        human: format!("sum = {} ({} values)", reply.sum, reply.count),
        json: json!({ "ok": true, "sum": reply.sum, "count": reply.count }),
    }
}

/// MESSAGE's reply.
#[must_use]
pub fn message(reply: &MessageReply) -> Report {
    Report {
        human: format!(
            "message kind {}: {} items, sum {}",
            reply.kind, reply.count, reply.sum
        ),
        json: json!({ "ok": true, "kind": reply.kind, "count": reply.count, "sum": reply.sum }),
    }
}

/// SET_NAME done.
#[must_use]
pub fn name_set(name: &str) -> Report {
    Report {
        human: format!("name set to {name:?}"),
        json: json!({ "ok": true, "name": name }),
    }
}

/// GET_NAME's reply.
#[must_use]
pub fn name(name: &str) -> Report {
    Report {
        human: if name.is_empty() {
            "(no name set)".to_owned()
        } else {
            name.to_owned()
        },
        json: json!({ "ok": true, "name": name }),
    }
}

/// CONFIGURE's reply.
#[must_use]
pub fn config(version: u8, config: &Config) -> Report {
    Report {
        human: format!(
            "configured with a version-{version} struct: flags {:#x}, level {}, quota {}",
            config.flags, config.level, config.quota
        ),
        json: json!({
            "ok": true, "version_sent": version,
            "flags": config.flags, "level": config.level, "quota": config.quota,
        }),
    }
}

/// BATCH's reply.
#[must_use]
pub fn batch(reply: &BatchReply) -> Report {
    Report {
        human: format!(
            "{} segments, {} bytes, checksum {:#018x}",
            reply.segments, reply.total_bytes, reply.checksum
        ),
        json: json!({
            "ok": true, "segments": reply.segments, "total_bytes": reply.total_bytes,
            "checksum": format!("{:#018x}", reply.checksum),
        }),
    }
}

/// STATS's reply.
#[must_use]
pub fn stats(s: &Stats) -> Report {
    let rows = [
        ("echo", s.echo),
        ("sum", s.sum),
        ("message", s.message),
        ("set_name", s.set_name),
        ("get_name", s.get_name),
        ("configure", s.configure),
        ("batch", s.batch),
        ("stats", s.stats),
        ("bytes_captured", s.bytes_captured),
        ("name_bytes", u64::from(s.name_bytes)),
        ("level", u64::from(s.level)),
    ];
    let human = rows
        .iter()
        .map(|(k, v)| format!("{k:<15} {v}"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut json = serde_json::Map::new();
    json.insert("ok".into(), json!(true));
    for (k, v) in rows {
        json.insert(k.into(), json!(v));
    }
    Report {
        human,
        json: Value::Object(json),
    }
}
