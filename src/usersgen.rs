//! The demo's users table as DynamoDB would export it: a full export of
//! every user and an incremental export of later changes (plan upgrades,
//! closed accounts, sign-ups), in DynamoDB's export layout. Used by
//! `lakehose demo` and the import benchmark. User ids are those the log
//! generator uses (`u-00001`, ...).

use std::path::{Path, PathBuf};

use crate::dynamodb_export::{ExportSpec, write_export};
use lakehose_transform::dynamodb::export::ExportKind;
use lakehose_transform::dynamodb::export::item::write_json_string;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The DynamoDB table the exports are of.
pub const TABLE_ARN: &str = "arn:aws:dynamodb:us-east-1:000000000000:table/users";

const PLANS: [(&str, f64); 3] = [("free", 0.70), ("pro", 0.25), ("enterprise", 0.05)];
const COUNTRIES: [&str; 10] = ["US", "DE", "FR", "GB", "IN", "BR", "JP", "CA", "NL", "ES"];
const THEMES: [&str; 3] = ["light", "dark", "system"];
const TAGS: [&str; 5] = ["beta", "mobile", "newsletter", "partner", "vip"];

fn user_id(n: u32) -> String {
    format!("u-{n:05}")
}

/// One user's attributes in DynamoDB's typed JSON (without the braces).
fn attributes(n: u32, plan: &str, rng: &mut StdRng) -> String {
    let mut out = String::with_capacity(320);
    let mut s = |name: &str, tag: &str, value: &str| {
        if !out.is_empty() {
            out.push(',');
        }
        write_json_string(&mut out, name);
        out.push_str(":{\"");
        out.push_str(tag);
        out.push_str("\":");
        out.push_str(value);
        out.push('}');
    };
    let quoted = |v: &str| {
        let mut q = String::new();
        write_json_string(&mut q, v);
        q
    };
    s("user_id", "S", &quoted(&user_id(n)));
    s("plan", "S", &quoted(plan));
    s(
        "country",
        "S",
        &quoted(COUNTRIES[rng.random_range(0..COUNTRIES.len())]),
    );
    let signup = chrono::NaiveDate::from_ymd_opt(2022, 1, 1)
        .unwrap_or_default()
        .checked_add_days(chrono::Days::new(rng.random_range(0..1400)))
        .unwrap_or_default();
    s("signup_date", "S", &quoted(&signup.to_string()));
    s(
        "credits",
        "N",
        &quoted(&format!(
            "{}.{:02}",
            rng.random_range(0..500),
            rng.random_range(0..100)
        )),
    );
    s(
        "logins",
        "N",
        &quoted(&rng.random_range(1..5000).to_string()),
    );
    s(
        "verified",
        "BOOL",
        if rng.random_bool(0.8) {
            "true"
        } else {
            "false"
        },
    );
    let tags: Vec<String> = TAGS
        .iter()
        .filter(|_| rng.random_bool(0.2))
        .map(|t| quoted(t))
        .collect();
    if !tags.is_empty() {
        s("tags", "SS", &format!("[{}]", tags.join(",")));
    }
    let prefs = format!(
        "{{\"theme\":{{\"S\":{}}},\"newsletter\":{{\"BOOL\":{}}}}}",
        quoted(THEMES[rng.random_range(0..THEMES.len())]),
        rng.random_bool(0.4)
    );
    s("prefs", "M", &prefs);
    out
}

fn pick_plan(rng: &mut StdRng) -> &'static str {
    let roll: f64 = rng.random();
    let mut acc = 0.0;
    PLANS
        .iter()
        .find(|(_, share)| {
            acc += share;
            roll < acc
        })
        .map_or("free", |(name, _)| name)
}

/// Writes a full export of `users` users as of `as_of_ms` under
/// `prefix_dir` (key prefix `key_prefix`); returns the export's folder.
pub fn write_full(
    prefix_dir: &Path,
    key_prefix: &str,
    users: u32,
    as_of_ms: i64,
    seed: u64,
    items_per_file: usize,
) -> std::io::Result<PathBuf> {
    let mut rng = StdRng::seed_from_u64(seed);
    let lines = (1..=users).map(move |n| {
        let plan = pick_plan(&mut rng);
        format!("{{\"Item\":{{{}}}}}", attributes(n, plan, &mut rng))
    });
    let spec = ExportSpec {
        export_id: format!("{as_of_ms:014}-{:08x}", seed as u32),
        table_arn: TABLE_ARN.into(),
        kind: ExportKind::Full,
        as_of_ms,
        from_ms: None,
        lines_per_file: items_per_file,
    };
    write_export(prefix_dir, key_prefix, &spec, lines)
}

/// Writes an incremental export of changes between `from_ms` and `to_ms`
/// to a table of `users` users: every 20th user moves up a plan, every
/// 50th closes the account, and `users / 20` new users sign up (on the
/// paid plans).
pub fn write_changes(
    prefix_dir: &Path,
    key_prefix: &str,
    users: u32,
    from_ms: i64,
    to_ms: i64,
    seed: u64,
) -> std::io::Result<PathBuf> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x00c4_a96e);
    let mut lines = Vec::new();
    let micros =
        |rng: &mut StdRng| (from_ms + rng.random_range(0..(to_ms - from_ms).max(1))) * 1000;
    let keys = |n: u32| format!("{{\"user_id\":{{\"S\":\"{}\"}}}}", user_id(n));
    // A change record: the new image of an upsert, or only the keys (and
    // the old image) of a delete.
    let record = |n: u32, at: i64, image: Option<String>| {
        let meta = format!("{{\"WriteTimestampMicros\":{{\"N\":\"{at}\"}}}}");
        match image {
            Some(image) => format!(
                "{{\"Metadata\":{meta},\"Keys\":{},\"NewImage\":{{{image}}}}}",
                keys(n)
            ),
            None => format!(
                "{{\"Metadata\":{meta},\"Keys\":{},\"OldImage\":{}}}",
                keys(n),
                keys(n)
            ),
        }
    };
    let changed = (1..=users).filter(|n| n % 20 == 0 || n % 50 == 0);
    let signups = users + 1..=users + users / 20;
    for n in changed.chain(signups) {
        let at = micros(&mut rng);
        let image = if n % 50 == 0 && n <= users {
            None
        } else {
            let plan = if rng.random_bool(0.6) {
                "pro"
            } else {
                "enterprise"
            };
            Some(attributes(n, plan, &mut rng))
        };
        lines.push(record(n, at, image));
    }
    let spec = ExportSpec {
        export_id: format!("{to_ms:014}-{:08x}", (seed as u32) ^ 1),
        table_arn: TABLE_ARN.into(),
        kind: ExportKind::Incremental,
        as_of_ms: to_ms,
        from_ms: Some(from_ms),
        lines_per_file: 10_000,
    };
    write_export(prefix_dir, key_prefix, &spec, lines)
}
