//! Dashboards served by a real server with keys: the shipped dashboards
//! over known rows, driven in headless Chromium (sign-in, marks, a filter,
//! a parameter, drill-downs, CSV, screenshots), and row-level security,
//! sign-in refusals and policies through plain HTTP.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use serde_json::json;

use crate::auth::{create_key, put_policy};
use crate::util::{Server, cli_ok, rt};

fn sql(data: &Path, statement: &str) {
    cli_ok(&[
        OsStr::new("query"),
        OsStr::new("--data-dir"),
        data.as_os_str(),
        OsStr::new(statement),
    ]);
}

/// The demo's tables with a few known rows, dated around now.
fn known_rows(data: &Path) {
    let now = chrono::Utc::now();
    let at = |hours: i64| now - chrono::Duration::hours(hours);
    let (d1, h1) = (
        at(1).format("%Y-%m-%d").to_string(),
        at(1).format("%H").to_string(),
    );
    let (d2, h2) = (
        at(2).format("%Y-%m-%d").to_string(),
        at(2).format("%H").to_string(),
    );
    let today = now.format("%Y-%m-%d").to_string();
    let yesterday = at(24).format("%Y-%m-%d").to_string();
    for db in ["curated", "demo", "app"] {
        sql(data, &format!("CREATE DATABASE {db}"));
    }
    sql(
        data,
        &format!(
            "CREATE TABLE curated.request_metrics_hourly AS SELECT * FROM (VALUES \
             ('api', '/api/orders/{{id}}', 200, 90, 0, 0.0, 20.0, 80.0, 120.0, TIMESTAMP '{d1} {h1}:30:00', '{d1}', '{h1}'), \
             ('api', '/api/orders/{{id}}', 500, 10, 10, 100.0, 30.0, 300.0, 400.0, TIMESTAMP '{d1} {h1}:40:00', '{d1}', '{h1}'), \
             ('web', '/web/home', 200, 50, 0, 0.0, 10.0, 40.0, 60.0, TIMESTAMP '{d1} {h1}:50:00', '{d1}', '{h1}'), \
             ('api', '/api/orders/{{id}}', 200, 120, 0, 0.0, 22.0, 90.0, 130.0, TIMESTAMP '{d2} {h2}:30:00', '{d2}', '{h2}'), \
             ('web', '/web/home', 500, 60, 6, 10.0, 12.0, 700.0, 900.0, TIMESTAMP '{d2} {h2}:50:00', '{d2}', '{h2}') \
             ) AS t(service, endpoint, status, requests, errors, error_pct, p50_ms, p95_ms, p99_ms, last_seen, dt, hour)"
        ),
    );
    sql(
        data,
        &format!(
            "CREATE TABLE demo.app_logs AS SELECT * FROM (VALUES \
             (TIMESTAMP '{d1} {h1}:40:00', 'api', '/api/orders/12', 500, 310.0, 'u-00001'), \
             (TIMESTAMP '{d1} {h1}:41:00', 'api', '/api/orders/13', 503, 290.0, 'u-00002'), \
             (TIMESTAMP '{d1} {h1}:42:00', 'api', '/api/orders/14', 200, 20.0, 'u-00001'), \
             (TIMESTAMP '{d1} {h1}:43:00', 'web', '/web/home', 404, 15.0, 'u-00003') \
             ) AS t(\"timestamp\", service, path, status, latency_ms, user_id)"
        ),
    );
    sql(
        data,
        &format!(
            "CREATE TABLE curated.daily_active_users AS SELECT * FROM (VALUES \
             (3, 4, 10, 2.5, 2.5, '{yesterday}'), (5, 6, 12, 3.0, 2.0, '{today}') \
             ) AS t(active_users, sessions, requests, avg_session_minutes, requests_per_session, dt)"
        ),
    );
    sql(
        data,
        "CREATE TABLE app.users AS SELECT * FROM (VALUES ('u-00001', 'pro'), ('u-00002', 'free'), ('u-00003', 'free')) AS t(user_id, plan)",
    );
}

#[test]
fn shipped_dashboards_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    known_rows(data);
    let viewer = create_key(data, "ops", &["--group", "admins"]);
    let server = Server::start(data, &["--example-dashboards"]);
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/browser/dashboards.py");
    let out = Command::new("python3")
        .arg(&script)
        .env("BASE", &server.endpoint)
        .env("KEY_ID", &viewer.id)
        .env("SECRET", &viewer.secret)
        .env("SHOTS", &shots)
        .output()
        .expect("python3 with selenium (installed by .ci/run)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the browser run failed:\n{stdout}\n{stderr}\n(screenshots in {})",
        shots.display()
    );
    assert!(stdout.contains("{\"ok\": true}"), "{stdout}");
    for page in [
        "service_health",
        "service_health_api",
        "endpoint_logs",
        "users",
        "drill_rows",
        "index",
    ] {
        assert!(
            shots.join(format!("{page}.png")).exists(),
            "screenshot of {page}"
        );
    }
    server.terminate();
}

/// Signs in with a key; the session cookie.
async fn sign_in(
    http: &reqwest::Client,
    base: &str,
    id: &str,
    secret: &str,
) -> Result<String, u16> {
    let response = http
        .post(format!("{base}/dashboards/login"))
        .form(&[
            ("access_key_id", id),
            ("secret", secret),
            ("next", "/dashboards/rls"),
        ])
        .send()
        .await
        .unwrap();
    if response.status().as_u16() != 303 {
        return Err(response.status().as_u16());
    }
    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap()
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    Ok(cookie.split(';').next().unwrap().to_string())
}

#[test]
fn row_level_security_and_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    known_rows(&data);
    let specs = dir.path().join("dashboards");
    std::fs::create_dir_all(&specs).unwrap();
    std::fs::write(
        specs.join("rls.toml"),
        r#"
title = "Requests per service"
database = "curated"

[datasets.m]
sql = "SELECT service, requests FROM curated.request_metrics_hourly"
rls = { column = "service", rules = "SELECT * FROM (VALUES ('dana', CAST(NULL AS VARCHAR), 'api'), (CAST(NULL AS VARCHAR), 'leads', ''), ('sam', CAST(NULL AS VARCHAR), 'web, api')) AS t(user_name, group_name, service)" }

[[visuals]]
id = "per_service"
title = "Requests per service"
type = "bar"
dataset = "m"
x = "service"
y = "sum(requests)"
"#,
    )
    .unwrap();
    std::fs::write(
        specs.join("broken.toml"),
        "title = \"no datasets\"\nvisuals = []\n",
    )
    .unwrap();
    let dana = create_key(&data, "dana", &["--group", "viewers"]);
    let lee = create_key(&data, "lee", &["--group", "viewers", "--group", "leads"]);
    let eve = create_key(&data, "eve", &["--group", "viewers"]);
    let nobody = create_key(&data, "nobody", &[]);
    put_policy(
        &data,
        &["--group", "viewers"],
        json!({"Statement": [{"Effect": "Allow", "Action": ["quicksight:DescribeDashboard", "quicksight:ListDashboards"], "Resource": "*"}]}),
    );
    // Viewers may also come with a bearer token of the identity provider.
    let jwks = dir.path().join("jwks.json");
    let rsa_jwk = json!({"kty": "RSA", "kid": "rsa1", "alg": "RS256", "e": "AQAB",
        "n": include_str!("../../auth/testdata/rsa-test-key.n").trim()});
    std::fs::write(&jwks, json!({"keys": [rsa_jwk]}).to_string()).unwrap();
    let token = |sub: &str, key: &[u8]| {
        let claims = json!({"sub": sub, "iss": "https://idp.example", "aud": "dashboards",
            "exp": chrono::Utc::now().timestamp() + 600, "cognito:groups": ["viewers"]});
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some("rsa1".into());
        jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_rsa_der(key),
        )
        .unwrap()
    };
    let server = Server::start(
        &data,
        &[
            "--dashboards",
            specs.to_str().unwrap(),
            "--jwt-jwks",
            jwks.to_str().unwrap(),
            "--jwt-issuer",
            "https://idp.example",
            "--jwt-audience",
            "dashboards",
        ],
    );
    let base = server.endpoint.clone();
    rt().block_on(async {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        // Without a sign-in a page sends the browser to the form.
        let r = http
            .get(format!("{base}/dashboards/rls"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 303);
        assert!(
            r.headers()["location"]
                .to_str()
                .unwrap()
                .starts_with("/dashboards/login?next=")
        );
        let r = http
            .get(format!("{base}/dashboards/rls/visuals/per_service.csv"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 303);
        // A wrong secret, an unknown key: refused.
        assert_eq!(sign_in(&http, &base, &dana.id, "wrong").await, Err(401));
        assert_eq!(sign_in(&http, &base, "LKIANOSUCHKEY", "x").await, Err(401));
        let csv = |cookie: String| {
            let http = http.clone();
            let base = base.clone();
            async move {
                let r = http
                    .get(format!("{base}/dashboards/rls/visuals/per_service.csv"))
                    .header("cookie", cookie)
                    .send()
                    .await
                    .unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            }
        };
        // Row-level security: dana sees api, sam's rule would give two
        // services, lee's group sees everything, eve has no rule: nothing.
        let (status, body) =
            csv(sign_in(&http, &base, &dana.id, &dana.secret).await.unwrap()).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, "series,x,y\n,api,220\n");
        let (_, body) = csv(sign_in(&http, &base, &lee.id, &lee.secret).await.unwrap()).await;
        assert_eq!(body, "series,x,y\n,api,220\n,web,110\n");
        let (_, body) = csv(sign_in(&http, &base, &eve.id, &eve.secret).await.unwrap()).await;
        assert_eq!(body, "series,x,y\n");
        // A bearer token's subject and groups: dana's rows again; a token
        // signed with another key is no sign-in.
        let bearer = |token: String| {
            let http = http.clone();
            let base = base.clone();
            async move {
                let r = http
                    .get(format!("{base}/dashboards/rls/visuals/per_service.csv"))
                    .header("authorization", format!("Bearer {token}"))
                    .send()
                    .await
                    .unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            }
        };
        let rsa = include_bytes!("../../auth/testdata/rsa-test-key.der");
        assert_eq!(
            bearer(token("dana", rsa)).await,
            (200, "series,x,y\n,api,220\n".to_string())
        );
        let mut forged = token("dana", rsa);
        let last = forged.pop().unwrap();
        forged.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(bearer(forged).await.0, 303);
        // Policies: a principal without quicksight:DescribeDashboard is refused.
        let (status, body) = csv(sign_in(&http, &base, &nobody.id, &nobody.secret)
            .await
            .unwrap())
        .await;
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("quicksight:DescribeDashboard"), "{body}");
        // A broken file shows its error on the index and does not take the
        // others down.
        let cookie = sign_in(&http, &base, &lee.id, &lee.secret).await.unwrap();
        let index = http
            .get(format!("{base}/dashboards"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            index.contains("broken.toml") && index.contains("Requests per service"),
            "{index}"
        );
        // A forged or stale cookie is no sign-in.
        let r = http
            .get(format!("{base}/dashboards/rls"))
            .header("cookie", "lakehose_session=00ff")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 303);
        // Revoking the key ends its sign-ins.
        cli_ok(&[
            OsStr::new("admin"),
            OsStr::new("keys"),
            OsStr::new("revoke"),
            OsStr::new(&lee.id),
            OsStr::new("--data-dir"),
            data.as_os_str(),
        ]);
        let mut ended = false;
        for _ in 0..50 {
            let r = http
                .get(format!("{base}/dashboards/rls"))
                .header("cookie", &cookie)
                .send()
                .await
                .unwrap();
            if r.status().as_u16() == 303 {
                ended = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(ended, "a revoked key's sign-in still works");
    });
    server.terminate();
}

/// QuickSight's REST calls through boto3, signed with a key: the
/// dashboards and datasets that exist, and a refresh (ingestion) of a
/// cached dataset, polled until it completes; a missing one is
/// `ResourceNotFoundException`, and a principal without the action is
/// refused.
#[test]
fn quicksight_api_through_boto3() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    known_rows(data);
    let ops = create_key(data, "ops", &["--group", "admins"]);
    let nobody = create_key(data, "nobody", &[]);
    let server = Server::start(data, &["--example-dashboards"]);
    let script = r#"
import os, sys, time, boto3, botocore
def client(key, secret):
    return boto3.client("quicksight", endpoint_url=os.environ["ENDPOINT"], region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=secret)
qs = client(os.environ["KEY"], os.environ["SECRET"])
acct = "000000000000"
names = sorted(d["DashboardId"] for d in qs.list_dashboards(AwsAccountId=acct)["DashboardSummaryList"])
assert names == ["endpoint_logs", "service_health", "users"], names
page = qs.list_dashboards(AwsAccountId=acct, MaxResults=2)
assert len(page["DashboardSummaryList"]) == 2 and page["NextToken"], page
d = qs.describe_dashboard(AwsAccountId=acct, DashboardId="service_health")["Dashboard"]
assert d["Name"] == "Service health", d
assert any(a.endswith("dataset/service_health.hourly") for a in d["Version"]["DataSetArns"]), d
sets = {s["DataSetId"]: s["ImportMode"] for s in qs.list_data_sets(AwsAccountId=acct)["DataSetSummaries"]}
assert sets["service_health.hourly"] == "SPICE" and sets["service_health.last_minute"] == "DIRECT_QUERY", sets
ds = qs.describe_data_set(AwsAccountId=acct, DataSetId="service_health.hourly")["DataSet"]
assert "request_metrics_hourly" in ds["PhysicalTableMap"]["hourly"]["CustomSql"]["SqlQuery"], ds
made = qs.create_ingestion(AwsAccountId=acct, DataSetId="service_health.hourly", IngestionId="refresh-1", IngestionType="FULL_REFRESH")
assert made["IngestionStatus"] == "INITIALIZED", made
for _ in range(100):
    i = qs.describe_ingestion(AwsAccountId=acct, DataSetId="service_health.hourly", IngestionId="refresh-1")["Ingestion"]
    if i["IngestionStatus"] in ("COMPLETED", "FAILED"):
        break
    time.sleep(0.1)
assert i["IngestionStatus"] == "COMPLETED" and i["RowInfo"]["RowsIngested"] == 5, i
for call in [lambda: qs.describe_dashboard(AwsAccountId=acct, DashboardId="nope"),
             lambda: qs.describe_data_set(AwsAccountId=acct, DataSetId="nope.nope")]:
    try:
        call(); sys.exit("a missing resource was found")
    except botocore.exceptions.ClientError as e:
        assert e.response["Error"]["Code"] == "ResourceNotFoundException", e.response
try:
    client(os.environ["NOBODY"], os.environ["NOBODY_SECRET"]).list_dashboards(AwsAccountId=acct)
    sys.exit("a principal without policy listed dashboards")
except botocore.exceptions.ClientError as e:
    assert e.response["Error"]["Code"] == "AccessDeniedException", e.response
print("quicksight ok")
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .env("ENDPOINT", &server.endpoint)
        .env("KEY", &ops.id)
        .env("SECRET", &ops.secret)
        .env("NOBODY", &nobody.id)
        .env("NOBODY_SECRET", &nobody.secret)
        .output()
        .expect("python3 with boto3");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("quicksight ok"),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    server.terminate();
}

/// Hostile requests to the dashboards, their sign-in and QuickSight's API:
/// path-like names, huge and malformed bodies and values. Each gets a
/// clear refusal; nothing escapes the data folder and the server stays up.
#[test]
fn hostile_dashboard_requests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    known_rows(data);
    let server = Server::start(data, &["--example-dashboards"]);
    let base = server.endpoint.clone();
    rt().block_on(async {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let status = |r: reqwest::Response| r.status().as_u16();
        for path in [
            "/dashboards/..%2F..%2Fetc%2Fpasswd",
            "/dashboards/%2Fetc%2Fpasswd",
            "/dashboards/service_health/visuals/..%2F..%2F..%2Fetc%2Fpasswd.svg",
            "/dashboards/service_health/visuals/file:%2F%2F%2Fetc%2Fpasswd.csv",
            "/dashboards/service_health/rows/..%2Fhourly",
            "/dashboards/static/..%2F..%2FCargo.toml",
            "/accounts/000000000000/data-sets/..%2F..%2Fetc",
            "/accounts/000000000000/dashboards/..%2Fpasswd",
        ] {
            let r = http.get(format!("{base}{path}")).send().await.unwrap();
            let code = status(r);
            assert!(code == 404 || code == 400, "{path}: {code}");
        }
        // A value over the limit, too many parameters, a bad range.
        let long = "x".repeat(5000);
        let r = http
            .get(format!("{base}/dashboards/service_health"))
            .query(&[("endpoint", long.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(status(r), 400);
        let many: Vec<(String, String)> = (0..200).map(|i| (format!("k{i}"), "v".into())).collect();
        let r = http
            .get(format!("{base}/dashboards/service_health"))
            .query(&many)
            .send()
            .await
            .unwrap();
        assert_eq!(status(r), 400);
        let r = http
            .get(format!("{base}/dashboards/endpoint_logs"))
            .query(&[("min_status", "1e999999")])
            .send()
            .await
            .unwrap();
        assert_eq!(status(r), 400);
        // QuickSight: malformed and huge bodies, another account, a bad id.
        let ingest = |id: &str, body: Vec<u8>| {
            http.put(format!(
                "{base}/accounts/000000000000/data-sets/service_health.hourly/ingestions/{id}"
            ))
            .body(body)
            .send()
        };
        for body in [
            b"{".to_vec(),
            b"[[[[[[[[[[".repeat(10_000),
            b"{\"IngestionType\": \"DROP\"}".to_vec(),
        ] {
            let r = ingest("a1", body).await.unwrap();
            assert_eq!(status(r), 400);
        }
        let r = ingest("..%2F..%2Fetc", Vec::new()).await.unwrap();
        assert!(matches!(status(r), 400 | 404));
        let r = http
            .get(format!("{base}/accounts/123456789012/dashboards"))
            .send()
            .await
            .unwrap();
        assert_eq!(status(r), 401);
        // The server is still up and the page still draws.
        let r = http
            .get(format!("{base}/dashboards/service_health"))
            .send()
            .await
            .unwrap();
        assert_eq!(status(r), 200);
    });
    assert!(!data.join("etc").exists());
    server.terminate();
}

/// The sign-in form with hostile bodies: huge, malformed, an open
/// redirect; none signs anyone in.
#[test]
fn hostile_sign_ins_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let key = create_key(data, "ops", &["--group", "admins"]);
    let server = Server::start(data, &["--example-dashboards"]);
    let base = server.endpoint.clone();
    rt().block_on(async {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A connection the server closed under a refused body is not
            // reused for the next request.
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let post = |body: Vec<u8>| {
            http.post(format!("{base}/dashboards/login"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
        };
        let huge = format!("access_key_id={}&secret=x", "A".repeat(1 << 20)).into_bytes();
        // Refused at 16 KiB: 413, or the connection closed under the rest.
        if let Ok(r) = post(huge).await {
            assert_eq!(r.status().as_u16(), 413);
        }
        for body in [&b"%%%%"[..], b"access_key_id=", b"secret=only", b"\xff\xfe"] {
            let code = post(body.to_vec()).await.unwrap().status().as_u16();
            assert!(code == 400 || code == 401, "{body:?}: {code}");
        }
        // A good sign-in never sends the browser off the server.
        let form = format!(
            "access_key_id={}&secret={}&next=https%3A%2F%2Fevil.example%2F",
            key.id,
            key.secret.replace('+', "%2B").replace('/', "%2F")
        );
        let r = post(form.into_bytes()).await.unwrap();
        assert_eq!(r.status().as_u16(), 303);
        assert_eq!(r.headers()["location"], "/dashboards/");
    });
    server.terminate();
}
