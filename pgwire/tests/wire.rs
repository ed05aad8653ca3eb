//! The Postgres wire server against tokio-postgres and psql, over a plain
//! DataFusion session.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use datafusion::arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array,
    Int16Array, Int32Array, Int64Array, LargeStringArray, ListArray, StringArray, StructArray,
    TimestampMicrosecondArray, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::MemorySchemaProvider;
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use lakehose_pgwire::{PgConfig, serve};
use lakehose_query::{QueryError, QueryOutput, QueryRequest, SqlRunner, StatementType};
use tokio::net::TcpListener;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::{NoTls, SimpleQueryMessage};

const ROWS: i64 = 3000;

/// Rows whose id is 3 modulo 7 hold NULL in every nullable column.
fn is_null_row(id: i64) -> bool {
    id % 7 == 3
}

fn all_types_batch() -> RecordBatch {
    let ids: Vec<i64> = (0..ROWS).collect();
    let opt = |id: &i64| !is_null_row(*id);
    let list = ListArray::from_iter_primitive::<Int32Type, _, _>(
        ids.iter()
            .map(|id| opt(id).then(|| vec![Some(*id as i32), None, Some(*id as i32 + 1)])),
    );
    let structs = StructArray::from(vec![
        (
            Arc::new(Field::new("a", DataType::Int64, true)),
            Arc::new(Int64Array::from(ids.clone())) as ArrayRef,
        ),
        (
            Arc::new(Field::new("b", DataType::Utf8, true)),
            Arc::new(StringArray::from(
                ids.iter().map(|id| format!("x{id}")).collect::<Vec<_>>(),
            )) as ArrayRef,
        ),
    ]);
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("id", Arc::new(Int64Array::from(ids.clone()))),
        (
            "b",
            Arc::new(BooleanArray::from(
                ids.iter()
                    .map(|id| opt(id).then_some(id % 2 == 0))
                    .collect::<Vec<_>>(),
            )),
        ),
        (
            "i16",
            Arc::new(Int16Array::from(
                ids.iter()
                    .map(|id| opt(id).then_some((id % 1000) as i16 - 500))
                    .collect::<Vec<_>>(),
            )),
        ),
        (
            "i32",
            Arc::new(Int32Array::from(
                ids.iter()
                    .map(|id| opt(id).then_some(*id as i32 * 3 - 100))
                    .collect::<Vec<_>>(),
            )),
        ),
        (
            "i64",
            Arc::new(Int64Array::from(
                ids.iter()
                    .map(|id| opt(id).then_some(id * 1_000_000_007))
                    .collect::<Vec<_>>(),
            )),
        ),
        (
            "u64",
            Arc::new(UInt64Array::from(
                ids.iter()
                    .map(|id| opt(id).then_some(u64::MAX - *id as u64))
                    .collect::<Vec<_>>(),
            )),
        ),
        (
            "f32",
            Arc::new(Float32Array::from(
                ids.iter()
                    .map(|id| opt(id).then_some(*id as f32 * 0.5))
                    .collect::<Vec<_>>(),
            )),
        ),
        (
            "f64",
            Arc::new(Float64Array::from(
                ids.iter()
                    .map(|id| opt(id).then_some(*id as f64 / 8.0))
                    .collect::<Vec<_>>(),
            )),
        ),
        (
            "d",
            Arc::new(
                Decimal128Array::from(
                    ids.iter()
                        .map(|id| opt(id).then_some(i128::from(*id) * 1001 - 5000))
                        .collect::<Vec<_>>(),
                )
                .with_precision_and_scale(12, 3)
                .unwrap(),
            ),
        ),
        (
            "s",
            Arc::new(StringArray::from(
                ids.iter()
                    .map(|id| opt(id).then(|| format!("s{id}")))
                    .collect::<Vec<_>>(),
            )),
        ),
        (
            "ls",
            Arc::new(LargeStringArray::from(
                ids.iter()
                    .map(|id| opt(id).then(|| format!("l'é\\{id}")))
                    .collect::<Vec<_>>(),
            )),
        ),
        (
            "bin",
            Arc::new(BinaryArray::from(
                ids.iter()
                    .map(|id| opt(id).then(|| vec![(id % 256) as u8, 0, 255]))
                    .map(|v| v.map(|v| Box::leak(v.into_boxed_slice()) as &[u8]))
                    .collect::<Vec<_>>(),
            )),
        ),
        (
            "dt",
            Arc::new(Date32Array::from(
                ids.iter()
                    .map(|id| opt(id).then_some(19_000 + *id as i32))
                    .collect::<Vec<_>>(),
            )),
        ),
        (
            "ts",
            Arc::new(TimestampMicrosecondArray::from(
                ids.iter()
                    .map(|id| opt(id).then_some(1_700_000_000_000_000 + id * 1_000_001))
                    .collect::<Vec<_>>(),
            )),
        ),
        (
            "tstz",
            Arc::new(
                TimestampMicrosecondArray::from(
                    ids.iter()
                        .map(|id| opt(id).then_some(1_700_000_000_000_000 + id * 1_000_001))
                        .collect::<Vec<_>>(),
                )
                .with_timezone("+00:00"),
            ),
        ),
        ("lst", Arc::new(list)),
        ("st", Arc::new(structs)),
    ];
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, array)| Field::new(*name, array.data_type().clone(), *name != "id"))
            .collect::<Vec<_>>(),
    ));
    RecordBatch::try_new(schema, columns.into_iter().map(|(_, a)| a).collect()).unwrap()
}

/// Runs statements on a DataFusion session; `default` and `sales` are
/// schemas of its catalog.
struct DataFusionRunner {
    ctx: SessionContext,
    hang_started: Arc<AtomicBool>,
    hang_dropped: Arc<AtomicBool>,
}

impl std::fmt::Debug for DataFusionRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataFusionRunner").finish_non_exhaustive()
    }
}

struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl DataFusionRunner {
    async fn new() -> Self {
        let config = SessionConfig::new().with_default_catalog_and_schema("datafusion", "default");
        let ctx = SessionContext::new_with_config(config);
        let catalog = ctx.catalog("datafusion").unwrap();
        catalog
            .register_schema("default", Arc::new(MemorySchemaProvider::new()))
            .unwrap();
        catalog
            .register_schema("sales", Arc::new(MemorySchemaProvider::new()))
            .unwrap();
        let batch = all_types_batch();
        let table = MemTable::try_new(batch.schema(), vec![vec![batch]]).unwrap();
        ctx.register_table("default.t_all", Arc::new(table))
            .unwrap();
        ctx.sql("CREATE TABLE sales.orders AS VALUES (1, 'apple'), (2, 'pear')")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        Self {
            ctx,
            hang_started: Arc::new(AtomicBool::new(false)),
            hang_dropped: Arc::new(AtomicBool::new(false)),
        }
    }
}

#[async_trait]
impl SqlRunner for DataFusionRunner {
    async fn run(&self, request: QueryRequest) -> Result<QueryOutput, QueryError> {
        if request.sql.contains("hang_forever") {
            let _flag = SetOnDrop(self.hang_dropped.clone());
            self.hang_started.store(true, Ordering::SeqCst);
            std::future::pending::<()>().await;
        }
        let mut state = self.ctx.state();
        state.config_mut().options_mut().catalog.default_schema = request
            .database
            .clone()
            .unwrap_or_else(|| "default".to_string());
        let ctx = SessionContext::new_with_state(state);
        let fail = lakehose_query::error::classify;
        let df = ctx.sql(&request.sql).await.map_err(fail)?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await.map_err(fail)?;
        let keyword = request
            .sql
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_lowercase();
        let (statement_type, sub, update_count) = match keyword.as_str() {
            "insert" => {
                let n = batches
                    .first()
                    .and_then(|b| {
                        b.column(0)
                            .as_any()
                            .downcast_ref::<UInt64Array>()
                            .map(|a| a.value(0))
                    })
                    .unwrap_or(0);
                (StatementType::Dml, "INSERT", Some(n))
            }
            "create" => (StatementType::Ddl, "CREATE_TABLE", None),
            "drop" => (StatementType::Ddl, "DROP_TABLE", None),
            "show" | "describe" | "explain" => (StatementType::Utility, "SHOW", None),
            _ => (StatementType::Dml, "SELECT", None),
        };
        Ok(QueryOutput {
            statement_type,
            substatement_type: sub.to_string(),
            schema,
            batches,
            update_count,
            bytes_scanned: 0,
        })
    }
}

struct Server {
    addr: SocketAddr,
    runner: Arc<DataFusionRunner>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(credentials: Option<(&str, &str)>) -> Self {
        let runner = Arc::new(DataFusionRunner::new().await);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let config = PgConfig {
            passwords: credentials.map(|(u, p)| {
                Arc::new(lakehose_pgwire::SingleUser {
                    user: u.to_string(),
                    password: p.to_string(),
                }) as Arc<dyn lakehose_pgwire::Passwords>
            }),
            ..PgConfig::default()
        };
        let task = tokio::spawn(serve(listener, runner.clone(), config, async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            runner,
            stop: Some(stop),
            task,
        }
    }

    fn conn_str(&self, user: &str, password: Option<&str>, db: Option<&str>) -> String {
        let mut s = format!(
            "host=127.0.0.1 port={} user={user} connect_timeout=10",
            self.addr.port()
        );
        if let Some(p) = password {
            s.push_str(&format!(
                " password='{}'",
                p.replace('\\', "\\\\").replace('\'', "\\'")
            ));
        }
        if let Some(d) = db {
            s.push_str(&format!(" dbname={d}"));
        }
        s
    }

    async fn connect_as(
        &self,
        user: &str,
        password: Option<&str>,
        db: Option<&str>,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, connection) =
            tokio_postgres::connect(&self.conn_str(user, password, db), NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    }

    async fn connect(&self) -> tokio_postgres::Client {
        self.connect_as("lake", None, Some("default"))
            .await
            .unwrap()
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("server stops")
            .unwrap()
            .unwrap();
    }
}

fn rows_of(messages: &[SimpleQueryMessage]) -> Vec<Vec<Option<String>>> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect()
}

fn completions(messages: &[SimpleQueryMessage]) -> Vec<u64> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        })
        .collect()
}

fn code_of(err: &tokio_postgres::Error) -> String {
    err.code()
        .map(|c| c.code().to_string())
        .unwrap_or_else(|| format!("no SQLSTATE: {err:?}"))
}

/// Binary `numeric` decoded independently of the server's encoder.
#[derive(Debug, PartialEq)]
struct Numeric(String);

impl<'a> FromSql<'a> for Numeric {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let word = |i: usize| i16::from_be_bytes([raw[i], raw[i + 1]]);
        let (n, weight, sign, dscale) = (
            word(0) as usize,
            i32::from(word(2)),
            word(4) as u16,
            word(6) as usize,
        );
        let group = |w: i32| -> String {
            let d = usize::try_from(weight - w)
                .ok()
                .filter(|i| *i < n)
                .map(|i| word(8 + 2 * i))
                .unwrap_or(0);
            format!("{d:04}")
        };
        let int: String = (0..=weight).rev().map(group).collect();
        let mut frac: String = (1..=(dscale as i32 + 3) / 4).map(|k| group(-k)).collect();
        frac.truncate(dscale);
        let int = int.trim_start_matches('0');
        let mut s = String::new();
        if sign == 0x4000 {
            s.push('-');
        }
        s.push_str(if int.is_empty() { "0" } else { int });
        if dscale > 0 {
            s.push('.');
            s.push_str(&frac);
        }
        Ok(Numeric(s))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }
}

/// Binary `interval`: (microseconds, days, months).
#[derive(Debug, PartialEq)]
struct Interval(i64, i32, i32);

impl<'a> FromSql<'a> for Interval {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Interval(
            i64::from_be_bytes(raw[..8].try_into()?),
            i32::from_be_bytes(raw[8..12].try_into()?),
            i32::from_be_bytes(raw[12..16].try_into()?),
        ))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }
}

#[tokio::test]
async fn pg_simple_query_runs_each_statement() {
    let server = Server::start(None).await;
    let client = server.connect().await;
    let messages = client
        .simple_query(
            "SELECT 1 AS a; SELECT 'x;y' AS b, NULL AS c; SET application_name = 'lake test'; \
             SHOW application_name; SELECT count(*) FROM t_all",
        )
        .await
        .unwrap();
    assert_eq!(
        rows_of(&messages),
        vec![
            vec![Some("1".to_string())],
            vec![Some("x;y".to_string()), None],
            vec![Some("lake test".to_string())],
            vec![Some(ROWS.to_string())],
        ]
    );
    assert_eq!(completions(&messages), vec![1, 1, 0, 1, 1]);

    // Every row of the table, in text format.
    let all = client.simple_query("SELECT * FROM t_all").await.unwrap();
    let rows = rows_of(&all);
    assert_eq!(rows.len(), ROWS as usize);
    let row12 = &rows[12];
    assert_eq!(
        row12,
        &vec![
            Some("12".into()),
            Some("t".into()),
            Some("-488".into()),
            Some("-64".into()),
            Some("12000000084".into()),
            Some("18446744073709551603".into()),
            Some("6".into()),
            Some("1.5".into()),
            Some("7.012".into()),
            Some("s12".into()),
            Some("l'é\\12".into()),
            Some("\\x0c00ff".into()),
            Some("2022-01-20".into()),
            Some("2023-11-14 22:13:32.000012".into()),
            Some("2023-11-14 22:13:32.000012+00".into()),
            Some("[12,null,13]".into()),
            Some(r#"{"a":12,"b":"x12"}"#.into()),
        ]
    );
    assert!(rows[3][1..16].iter().all(Option::is_none), "{:?}", rows[3]);

    // Empty statements are fine.
    let empty = client.simple_query(" ; ").await.unwrap();
    assert!(rows_of(&empty).is_empty());
    server.stop().await;
}

#[tokio::test]
async fn pg_typed_query_decodes_binary_values() {
    let server = Server::start(None).await;
    let client = server.connect().await;
    let sql = "SELECT id, b, i16, i32, i64, u64, f32, f64, d, s, ls, bin, dt, ts, tstz, lst, st \
               FROM t_all WHERE id = $1::bigint";
    let rows = client.query(sql, &[&12i64]).await.unwrap();
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(r.columns()[0].type_(), &Type::INT8);
    assert_eq!(r.get::<_, i64>(0), 12);
    assert!(r.get::<_, bool>(1));
    assert_eq!(r.get::<_, i16>(2), -488);
    assert_eq!(r.get::<_, i32>(3), -64);
    assert_eq!(r.get::<_, i64>(4), 12_000_000_084);
    assert_eq!(
        r.get::<_, Numeric>(5),
        Numeric("18446744073709551603".into())
    );
    assert_eq!(r.get::<_, f32>(6), 6.0);
    assert_eq!(r.get::<_, f64>(7), 1.5);
    assert_eq!(r.get::<_, Numeric>(8), Numeric("7.012".into()));
    assert_eq!(r.get::<_, String>(9), "s12");
    assert_eq!(r.get::<_, String>(10), "l'é\\12");
    assert_eq!(r.get::<_, Vec<u8>>(11), vec![12u8, 0, 255]);
    assert_eq!(
        r.get::<_, NaiveDate>(12),
        NaiveDate::from_ymd_opt(2022, 1, 20).unwrap()
    );
    let ts = DateTime::from_timestamp_micros(1_700_000_000_000_000 + 12 * 1_000_001).unwrap();
    assert_eq!(r.get::<_, NaiveDateTime>(13), ts.naive_utc());
    assert_eq!(r.get::<_, DateTime<Utc>>(14), ts);
    assert_eq!(
        r.get::<_, serde_json::Value>(15),
        serde_json::json!([12, null, 13])
    );
    assert_eq!(
        r.get::<_, serde_json::Value>(16),
        serde_json::json!({"a": 12, "b": "x12"})
    );

    // NULLs in every nullable column.
    let nulls = client.query(sql, &[&3i64]).await.unwrap();
    let n = &nulls[0];
    assert_eq!(n.get::<_, i64>(0), 3);
    assert_eq!(n.get::<_, Option<bool>>(1), None);
    assert_eq!(n.get::<_, Option<i16>>(2), None);
    assert_eq!(n.get::<_, Option<i32>>(3), None);
    assert_eq!(n.get::<_, Option<i64>>(4), None);
    assert_eq!(n.get::<_, Option<Numeric>>(5), None);
    assert_eq!(n.get::<_, Option<f32>>(6), None);
    assert_eq!(n.get::<_, Option<f64>>(7), None);
    assert_eq!(n.get::<_, Option<Numeric>>(8), None);
    assert_eq!(n.get::<_, Option<String>>(9), None);
    assert_eq!(n.get::<_, Option<Vec<u8>>>(11), None);
    assert_eq!(n.get::<_, Option<NaiveDate>>(12), None);
    assert_eq!(n.get::<_, Option<NaiveDateTime>>(13), None);
    assert_eq!(n.get::<_, Option<DateTime<Utc>>>(14), None);
    assert_eq!(n.get::<_, Option<serde_json::Value>>(15), None);

    // A negative decimal and all rows through the extended protocol.
    let neg = client
        .query("SELECT d FROM t_all WHERE id = 0", &[])
        .await
        .unwrap();
    assert_eq!(neg[0].get::<_, Numeric>(0), Numeric("-5.000".into()));
    let all = client.query("SELECT * FROM t_all", &[]).await.unwrap();
    assert_eq!(all.len(), ROWS as usize);

    // Intervals.
    let iv = client
        .query(
            "SELECT INTERVAL '1 year 2 months 3 days 4 hours' AS iv",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        iv[0].get::<_, Interval>(0),
        Interval(4 * 3_600_000_000, 3, 14)
    );
    let iv_text = client
        .simple_query("SELECT INTERVAL '1 year 2 months 3 days 4 hours' AS iv")
        .await
        .unwrap();
    assert_eq!(
        rows_of(&iv_text),
        vec![vec![Some("1 year 2 mons 3 days 04:00:00".to_string())]]
    );
    server.stop().await;
}

#[tokio::test]
async fn pg_parameters_are_substituted_safely() {
    let server = Server::start(None).await;
    let client = server.connect().await;

    // Untyped parameters are text.
    let rows = client
        .query("SELECT id FROM t_all WHERE s = $1", &[&"s42"])
        .await
        .unwrap();
    let id: Result<i64, _> = rows[0].try_get(0);
    assert_eq!(id.map_err(|e| format!("{e:?}")), Ok(42));

    // Quotes, backslashes and comment markers arrive as data.
    for tricky in [
        "a'; DROP TABLE t_all; --",
        "back\\slash",
        "$1 and 'x'",
        "é ✓",
    ] {
        let rows = client
            .query("SELECT $1 AS v, length($1) AS n", &[&tricky])
            .await
            .unwrap();
        assert_eq!(rows[0].get::<_, String>(0), tricky);
    }
    assert_eq!(
        client
            .query("SELECT count(*) FROM t_all", &[])
            .await
            .unwrap()[0]
            .get::<_, i64>(0),
        ROWS
    );

    // Typed parameters, declared by cast or by the client.
    let row = client
        .query_one(
            "SELECT $1::int4 + 1 AS a, $2::int8 * 2 AS b, $3::float8 / 2 AS c, $4::bool AS d, \
             $5::date AS e, $6::timestamp AS f, $7::bytea AS g, $8::int2 AS h, $9::float4 AS i",
            &[
                &41i32,
                &-21i64,
                &5.0f64,
                &true,
                &NaiveDate::from_ymd_opt(2024, 2, 29).unwrap(),
                &NaiveDate::from_ymd_opt(2024, 2, 29)
                    .unwrap()
                    .and_hms_micro_opt(1, 2, 3, 456_789)
                    .unwrap(),
                &vec![1u8, 2, 3],
                &7i16,
                &1.5f32,
            ],
        )
        .await
        .unwrap();
    // The engine types `int4 + 1` as a 64-bit integer.
    assert_eq!(row.get::<_, i64>(0), 42);
    assert_eq!(row.get::<_, i64>(1), -42);
    assert_eq!(row.get::<_, f64>(2), 2.5);
    assert!(row.get::<_, bool>(3));
    assert_eq!(
        row.get::<_, NaiveDate>(4),
        NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()
    );
    assert_eq!(
        row.get::<_, NaiveDateTime>(5),
        NaiveDate::from_ymd_opt(2024, 2, 29)
            .unwrap()
            .and_hms_micro_opt(1, 2, 3, 456_789)
            .unwrap()
    );
    assert_eq!(row.get::<_, Vec<u8>>(6), vec![1u8, 2, 3]);
    assert_eq!(row.get::<_, i16>(7), 7);
    assert_eq!(row.get::<_, f32>(8), 1.5);

    let stmt = client
        .prepare_typed(
            "SELECT s FROM t_all WHERE id = $1 OR id = $2 ORDER BY id",
            &[Type::INT8, Type::INT4],
        )
        .await
        .unwrap();
    let rows = client.query(&stmt, &[&5i64, &6i32]).await.unwrap();
    let got: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(got, vec!["s5", "s6"]);

    // LIMIT parameters and NULL parameters.
    let limited = client
        .query("SELECT id FROM t_all ORDER BY id LIMIT $1", &[&3i64])
        .await
        .unwrap();
    assert_eq!(limited.len(), 3);
    let null: Option<&str> = None;
    let rows = client
        .query("SELECT $1::text IS NULL AS n", &[&null])
        .await
        .unwrap();
    assert!(rows[0].get::<_, bool>(0));

    // Wrong parameter counts are refused by the client library, wrong
    // values by the server.
    assert!(client.query("SELECT $1::text", &[]).await.is_err());
    server.stop().await;
}

#[tokio::test]
async fn pg_errors_carry_sqlstate_and_keep_the_connection() {
    let server = Server::start(None).await;
    let client = server.connect().await;

    let err = client.simple_query("SELECT * FROM nope").await.unwrap_err();
    assert_eq!(code_of(&err), "42P01");
    assert!(err.as_db_error().unwrap().message().contains("nope"));

    let err = client.query("SELEC 1", &[]).await.unwrap_err();
    assert_eq!(code_of(&err), "42601");

    let err = client
        .query("SELECT no_such_column FROM t_all", &[])
        .await
        .unwrap_err();
    assert_eq!(code_of(&err), "42703");

    // The rest of a query string is skipped after an error.
    let err = client
        .simple_query("SELECT 1; SELECT * FROM nope; SET application_name = 'after'")
        .await
        .unwrap_err();
    assert_eq!(code_of(&err), "42P01");
    let shown = client.simple_query("SHOW application_name").await.unwrap();
    assert_eq!(rows_of(&shown), vec![vec![Some(String::new())]]);

    let err = client
        .execute("SET client_encoding = 'LATIN1'", &[])
        .await
        .unwrap_err();
    assert_eq!(code_of(&err), "22023");

    // Still usable, in both protocols.
    let rows = client.query("SELECT 1::bigint AS one", &[]).await.unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 1);
    let ok = client.simple_query("SELECT 2").await.unwrap();
    assert_eq!(rows_of(&ok), vec![vec![Some("2".to_string())]]);
    server.stop().await;
}

#[tokio::test]
async fn pg_password_authentication() {
    let server = Server::start(Some(("lake", "s3cret pass"))).await;

    let client = server
        .connect_as("lake", Some("s3cret pass"), Some("default"))
        .await
        .unwrap();
    let rows = client.query("SELECT current_user", &[]).await.unwrap();
    assert_eq!(rows[0].get::<_, String>(0), "lake");

    for (user, password) in [
        ("lake", Some("wrong")),
        ("intruder", Some("s3cret pass")),
        ("lake", None),
    ] {
        let err = server
            .connect_as(user, password, Some("default"))
            .await
            .unwrap_err();
        match password {
            Some(_) => {
                assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err:?}");
                assert_eq!(
                    err.as_db_error().unwrap().message(),
                    format!("password authentication failed for user \"{user}\"")
                );
            }
            // Without a password the client gives up by itself.
            None => assert!(err.code().is_none(), "{err:?}"),
        }
    }
    // The authenticated session is unaffected.
    assert_eq!(client.query("SELECT 1", &[]).await.unwrap().len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn pg_database_selection() {
    let server = Server::start(None).await;

    let sales = server
        .connect_as("lake", None, Some("sales"))
        .await
        .unwrap();
    let rows = sales
        .query("SELECT count(*) FROM orders", &[])
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 2);
    let schema = sales.simple_query("SELECT current_schema()").await.unwrap();
    assert_eq!(rows_of(&schema), vec![vec![Some("sales".to_string())]]);

    for db in [Some("postgres"), None] {
        let client = server.connect_as("lake", None, db).await.unwrap();
        let schema = client
            .simple_query("SELECT current_database()")
            .await
            .unwrap();
        assert_eq!(rows_of(&schema), vec![vec![Some("default".to_string())]]);
        assert_eq!(
            code_of(
                &client
                    .simple_query("SELECT * FROM orders")
                    .await
                    .unwrap_err()
            ),
            "42P01"
        );
        client.simple_query("USE sales").await.unwrap();
        let rows = client
            .simple_query("SELECT count(*) FROM orders")
            .await
            .unwrap();
        assert_eq!(rows_of(&rows), vec![vec![Some("2".to_string())]]);
        client
            .simple_query("SET search_path TO public, \"default\"")
            .await
            .unwrap();
        let shown = client.simple_query("SHOW search_path").await.unwrap();
        assert_eq!(rows_of(&shown), vec![vec![Some("default".to_string())]]);
        client
            .batch_execute("SET search_path = sales")
            .await
            .unwrap();
        let rows = client
            .query("SELECT column2 FROM orders ORDER BY column1", &[])
            .await
            .unwrap();
        assert_eq!(rows[0].get::<_, String>(0), "apple");
    }
    server.stop().await;
}

#[tokio::test]
async fn pg_session_commands_for_drivers_and_bi_tools() {
    let server = Server::start(None).await;
    let mut client = server.connect().await;

    client
        .batch_execute(
            "SET extra_float_digits = 3; SET DateStyle = 'ISO'; SET TIME ZONE 'UTC'; \
             SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED",
        )
        .await
        .unwrap();
    let iso = client
        .query_one("SHOW TRANSACTION ISOLATION LEVEL", &[])
        .await
        .unwrap();
    assert_eq!(iso.get::<_, String>(0), "read committed");
    let digits = client
        .query_one("SHOW extra_float_digits", &[])
        .await
        .unwrap();
    assert_eq!(digits.get::<_, String>(0), "3");
    let version = client.query_one("SELECT version()", &[]).await.unwrap();
    assert!(version.get::<_, String>(0).starts_with("PostgreSQL 16.6"));
    let setting = client
        .query_one("SELECT current_setting('server_version_num')", &[])
        .await
        .unwrap();
    assert_eq!(setting.get::<_, String>(0), "160006");
    let pid = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap();
    assert!(pid.get::<_, i32>(0) > 0);

    // Transactions are accepted (statements run as they come).
    let tx = client.transaction().await.unwrap();
    let n = tx
        .query_one("SELECT count(*) FROM t_all", &[])
        .await
        .unwrap();
    assert_eq!(n.get::<_, i64>(0), ROWS);
    tx.commit().await.unwrap();
    let tx = client.transaction().await.unwrap();
    tx.rollback().await.unwrap();

    let all = client.simple_query("SHOW ALL").await.unwrap();
    assert!(
        rows_of(&all)
            .iter()
            .any(|r| r[0].as_deref() == Some("server_version"))
    );
    client
        .batch_execute("RESET ALL; DISCARD ALL")
        .await
        .unwrap();
    server.stop().await;
}

#[tokio::test]
async fn pg_command_tags() {
    let server = Server::start(None).await;
    let client = server.connect().await;
    let created = client
        .simple_query("CREATE TABLE tags_t (a BIGINT, b VARCHAR)")
        .await
        .unwrap();
    assert_eq!(completions(&created), vec![0]);
    let inserted = client
        .execute("INSERT INTO tags_t VALUES (1, 'x'), (2, 'y')", &[])
        .await
        .unwrap();
    assert_eq!(inserted, 2);
    let inserted = client
        .simple_query("INSERT INTO tags_t VALUES (3, 'z')")
        .await
        .unwrap();
    assert_eq!(completions(&inserted), vec![1]);
    let rows = client
        .query("SELECT a, b FROM tags_t WHERE b <> $1 ORDER BY a", &[&"y"])
        .await
        .unwrap();
    let got: Vec<(i64, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(got, vec![(1, "x".to_string()), (3, "z".to_string())]);
    server.stop().await;
}

#[tokio::test]
async fn pg_cancel_request_and_disconnect_stop_the_statement() {
    let server = Server::start(None).await;
    let client = server.connect().await;

    let token = client.cancel_token();
    let runner = server.runner.clone();
    let canceller = tokio::spawn(async move {
        for _ in 0..100 {
            if runner.hang_started.load(Ordering::SeqCst) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        token.cancel_query(NoTls).await.unwrap();
    });
    let err = client
        .simple_query("SELECT 'hang_forever'")
        .await
        .unwrap_err();
    canceller.await.unwrap();
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED));
    assert!(server.runner.hang_dropped.load(Ordering::SeqCst));
    // The connection survives the cancellation.
    assert_eq!(client.simple_query("SELECT 1").await.unwrap().len(), 3);

    // A client that goes away takes its statement with it.
    server.runner.hang_started.store(false, Ordering::SeqCst);
    server.runner.hang_dropped.store(false, Ordering::SeqCst);
    let (doomed, connection) =
        tokio_postgres::connect(&server.conn_str("lake", None, Some("default")), NoTls)
            .await
            .unwrap();
    let connection = tokio::spawn(connection);
    let pending = tokio::spawn(async move { doomed.simple_query("SELECT 'hang_forever'").await });
    for _ in 0..100 {
        if server.runner.hang_started.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(server.runner.hang_started.load(Ordering::SeqCst));
    connection.abort();
    pending.abort();
    for _ in 0..100 {
        if server.runner.hang_dropped.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(server.runner.hang_dropped.load(Ordering::SeqCst));
    server.stop().await;
}

/// Runs psql with `args`; `None` when psql is not installed.
fn psql(
    server: &Server,
    password: Option<&str>,
    db: &str,
    args: &[&str],
) -> Option<std::process::Output> {
    let conn = format!(
        "host=127.0.0.1 port={} user=lake dbname={db} connect_timeout=10",
        server.addr.port()
    );
    let mut cmd = std::process::Command::new("psql");
    cmd.arg("-X")
        .arg("-v")
        .arg("ON_ERROR_STOP=1")
        .args(args)
        .arg(conn);
    cmd.env_remove("PGPASSWORD").env("PGSSLMODE", "prefer");
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
    match cmd.output() {
        Ok(out) => Some(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("running psql: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_psql_output_matches() {
    let server = Server::start(Some(("lake", "pw"))).await;
    let srv = Arc::new(server);
    let run = |password: Option<&'static str>, db: &'static str, args: Vec<&'static str>| {
        let srv = srv.clone();
        tokio::task::spawn_blocking(move || psql(&srv, password, db, &args))
    };

    let Some(out) = run(
        Some("pw"),
        "default",
        vec![
            "-A",
            "-t",
            "-c",
            "SELECT id, s, b, i16, f64, d, dt, ts, tstz, lst FROM t_all WHERE id IN (2, 3, 12) ORDER BY id",
        ],
    )
    .await
    .unwrap() else {
        eprintln!("psql is not installed; skipping the psql test (apt-get install postgresql-client)");
        return;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "2|s2|t|-498|0.25|-2.998|2022-01-10|2023-11-14 22:13:22.000002|2023-11-14 22:13:22.000002+00|[2,null,3]\n\
         3|||||||||\n\
         12|s12|t|-488|1.5|7.012|2022-01-20|2023-11-14 22:13:32.000012|2023-11-14 22:13:32.000012+00|[12,null,13]\n"
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Several commands, session state carried between them, another database.
    let out = run(
        Some("pw"),
        "sales",
        vec![
            "-A",
            "-t",
            "-c",
            "SELECT column2 FROM orders ORDER BY column1",
            "-c",
            "USE default",
            "-c",
            "SELECT count(*) FROM t_all; SELECT current_schema()",
        ],
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "apple\npear\nSET\n3000\ndefault\n"
    );

    // The aligned table psql prints by default.
    let out = run(Some("pw"), "default", vec!["-c", "SELECT 1 AS a, 'x' AS b"])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        " a | b \n---+---\n 1 | x\n(1 row)\n\n"
    );

    // Errors are reported with their message and a failing exit code.
    let out = run(Some("pw"), "default", vec!["-c", "SELECT * FROM nope"])
        .await
        .unwrap()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ERROR:") && stderr.contains("nope"),
        "{stderr}"
    );

    // A wrong password is refused.
    let out = run(Some("nope"), "default", vec!["-c", "SELECT 1"])
        .await
        .unwrap()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("password authentication failed for user \"lake\""),
        "{stderr}"
    );

    let server = Arc::into_inner(srv).expect("psql runs are done");
    server.stop().await;
}

/// A startup message for `user` (protocol 3.0).
fn startup_message(user: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&196_608u32.to_be_bytes());
    for (k, v) in [("user", user), ("database", "default")] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut message = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    message.extend_from_slice(&body);
    message
}

/// Reads what the server sends within `wait`, until it closes or `limit`
/// bytes arrived.
async fn drain_socket(socket: &mut tokio::net::TcpStream, wait: Duration, limit: usize) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + wait;
    while out.len() < limit {
        match tokio::time::timeout_at(deadline, socket.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    out
}

/// One frontend message of a known or random type with a body of random
/// bytes (and now and then a length that lies).
fn frontend_message() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    let kinds = prop_oneof![
        Just(b'Q'),
        Just(b'P'),
        Just(b'B'),
        Just(b'E'),
        Just(b'D'),
        Just(b'C'),
        Just(b'S'),
        Just(b'H'),
        Just(b'p'),
        Just(b'd'),
        Just(b'c'),
        Just(b'f'),
        Just(b'F'),
        any::<u8>(),
    ];
    (
        kinds,
        proptest::collection::vec(any::<u8>(), 0..64),
        prop_oneof![4 => Just(None), 1 => any::<u32>().prop_map(Some)],
    )
        .prop_map(|(kind, body, lie)| {
            let mut m = vec![kind];
            let length = lie.unwrap_or((body.len() + 4) as u32);
            m.extend_from_slice(&length.to_be_bytes());
            m.extend_from_slice(&body);
            m
        })
}

/// Random and malformed messages after a valid startup, and random bytes
/// instead of one: each connection gets an error or is closed, never
/// wedges the server, and well-behaved clients are served throughout.
#[test]
fn pg_random_messages_never_break_the_server() {
    use proptest::prelude::*;
    use tokio::io::AsyncWriteExt;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(Server::start(None));
    let addr = server.addr;
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let messages = (
        any::<bool>(),
        proptest::collection::vec(frontend_message(), 1..6),
    );
    runner
        .run(&messages, |(with_startup, messages)| {
            rt.block_on(async {
                let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
                if with_startup {
                    socket.write_all(&startup_message("lake")).await.unwrap();
                    let hello =
                        drain_socket(&mut socket, Duration::from_millis(300), 1 << 16).await;
                    assert!(hello.contains(&b'Z'), "no ReadyForQuery: {hello:?}");
                }
                for m in &messages {
                    if socket.write_all(m).await.is_err() {
                        break;
                    }
                }
                drain_socket(&mut socket, Duration::from_millis(100), 1 << 20).await;
            });
            Ok(())
        })
        .unwrap();
    rt.block_on(async {
        let client = server.connect().await;
        let rows = client.simple_query("SELECT 1").await.unwrap();
        assert_eq!(rows.len(), 3);
        server.stop().await;
    });
}
