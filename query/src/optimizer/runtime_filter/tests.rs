use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::physical_plan::{collect, displayable};
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};

use super::*;

/// A session over Parquet files in `dir`: `big(k, v)` (40,000 rows, keys
/// 0..999 with NULLs, in two files), `small(k, name)` (three keys, one
/// duplicated, one NULL), `none(k)` (no rows).
async fn session(dir: &std::path::Path, runtime_filters: bool, pushdown: bool) -> SessionContext {
    let mut config = SessionConfig::new()
        .with_target_partitions(2)
        .with_batch_size(1024)
        .with_option_extension(LakehoseOptions::default());
    let options = config.options_mut();
    options
        .set("lakehose.runtime_filters", &runtime_filters.to_string())
        .unwrap();
    options.execution.parquet.pushdown_filters = pushdown;
    let ctx = crate::optimizer::bare_context(config);
    if !dir.join("big").exists() {
        let writer = SessionContext::new();
        let big_schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("v", DataType::Int64, false),
        ]));
        for part in 0..2i64 {
            let keys: Vec<Option<i64>> = (0..20_000i64)
                .map(|i| (i % 97 != 0).then_some((i * 7 + part) % 1000))
                .collect();
            let values: Vec<i64> = (0..20_000i64).map(|i| i + part * 20_000).collect();
            let batch = RecordBatch::try_new(
                Arc::clone(&big_schema),
                vec![
                    Arc::new(Int64Array::from(keys)),
                    Arc::new(Int64Array::from(values)),
                ],
            )
            .unwrap();
            writer
                .read_batch(batch)
                .unwrap()
                .write_parquet(
                    &format!("{}/big/part-{part}.parquet", dir.display()),
                    DataFrameWriteOptions::new(),
                    None,
                )
                .await
                .unwrap();
        }
        let small = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("k", DataType::Int64, true),
                Field::new("name", DataType::Utf8, true),
            ])),
            vec![
                Arc::new(Int64Array::from(vec![Some(3), Some(3), Some(500), None])),
                Arc::new(StringArray::from(vec![
                    Some("a"),
                    Some("b"),
                    None,
                    Some("n"),
                ])),
            ],
        )
        .unwrap();
        writer
            .read_batch(small.clone())
            .unwrap()
            .write_parquet(
                &format!("{}/small/part-0.parquet", dir.display()),
                DataFrameWriteOptions::new(),
                None,
            )
            .await
            .unwrap();
        writer
            .read_batch(small.slice(0, 0))
            .unwrap()
            .write_parquet(
                &format!("{}/none/part-0.parquet", dir.display()),
                DataFrameWriteOptions::new(),
                None,
            )
            .await
            .unwrap();
    }
    for table in ["big", "small", "none"] {
        ctx.register_parquet(
            table,
            format!("{}/{table}/", dir.display()),
            ParquetReadOptions::default(),
        )
        .await
        .unwrap();
    }
    ctx
}

/// Rows the runtime filters of a run plan dropped, and how many there are.
fn dropped(plan: &Arc<dyn ExecutionPlan>) -> (usize, usize) {
    let (mut rows, mut nodes) = (0, 0);
    plan.apply(|p| {
        if p.downcast_ref::<RuntimeFilterExec>().is_some() {
            nodes += 1;
            rows += p
                .metrics()
                .and_then(|m| m.sum_by_name("dropped_rows"))
                .map_or(0, |v| v.as_usize());
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .unwrap();
    (rows, nodes)
}

/// `sql`'s answer and the filters' drops, with the rule on (pushdown off).
/// The answer must equal the one with the rule off and the one with
/// DataFusion's own pushdown.
async fn run(sql: &str) -> (String, usize, usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut answers = Vec::new();
    let mut seen = (0, 0);
    for (rule, pushdown) in [(true, false), (false, false), (true, true)] {
        let ctx = session(dir.path(), rule, pushdown).await;
        let plan = ctx
            .sql(sql)
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        let batches = collect(Arc::clone(&plan), ctx.task_ctx()).await.unwrap();
        let (rows, nodes) = dropped(&plan);
        if rule && !pushdown {
            seen = (rows, nodes);
        } else {
            assert_eq!(nodes, 0, "{}", displayable(plan.as_ref()).indent(true));
        }
        answers.push(pretty_format_batches(&batches).unwrap().to_string());
    }
    assert_eq!(answers[0], answers[1], "{sql}: rule on and off differ");
    assert_eq!(answers[0], answers[2], "{sql}: rule and pushdown differ");
    (answers.swap_remove(0), seen.0, seen.1)
}

#[tokio::test]
async fn a_small_build_side_drops_the_probe_rows_above_the_scan() {
    let (answer, rows, nodes) = run(
        "SELECT small.name, count(*), sum(big.v) FROM big JOIN small ON big.k = small.k \
         GROUP BY small.name ORDER BY small.name NULLS FIRST",
    )
    .await;
    assert!(nodes >= 1);
    // Keys 3 and 500 of 1,000: nearly all 40,000 rows are dropped.
    assert!(rows > 35_000, "dropped {rows}");
    assert!(answer.contains("| a "), "{answer}");
}

#[tokio::test]
async fn semi_joins_empty_build_sides_and_null_keys_keep_their_answers() {
    run("SELECT count(*), sum(v) FROM big WHERE k IN (SELECT k FROM small)").await;
    run("SELECT count(*) FROM big WHERE k NOT IN (SELECT k FROM small WHERE k IS NOT NULL)").await;
    let (answer, _, _) = run("SELECT count(*) FROM big JOIN none ON big.k = none.k").await;
    assert!(answer.contains("| 0 "), "{answer}");
    run("SELECT big.k, count(*) FROM big LEFT JOIN small ON big.k = small.k GROUP BY big.k ORDER BY big.k NULLS FIRST LIMIT 5").await;
}

#[tokio::test]
async fn a_filter_that_drops_only_null_keys_keeps_the_answer() {
    let (_, rows, nodes) =
        run("SELECT count(*) FROM big JOIN (SELECT DISTINCT k FROM big) d ON big.k = d.k").await;
    assert!(nodes >= 1);
    assert!(rows < 1_000, "dropped {rows}");
}

#[tokio::test]
async fn a_filter_that_keeps_nearly_everything_is_turned_off() {
    use datafusion::logical_expr::Operator;
    use datafusion::physical_expr::expressions::{BinaryExpr, col, lit};
    use datafusion::physical_plan::memory::MemoryStream;

    let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
    let k = col("k", &schema).unwrap();
    let dynamic = Arc::new(DynamicFilterPhysicalExpr::new(
        vec![Arc::clone(&k)],
        lit(true),
    ));
    let filter: Arc<dyn PhysicalExpr> = dynamic.clone();
    // 200 batches of 1,024 keys; the filter keeps k % 20 != 0 (95%),
    // dropping too few to stay on.
    let batches: Vec<RecordBatch> = (0..200)
        .map(|_| {
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![Arc::new(Int64Array::from_iter_values(0..1024))],
            )
            .unwrap()
        })
        .collect();
    let run = |batches: Vec<RecordBatch>| {
        let input = MemoryStream::try_new(batches, Arc::clone(&schema), None).unwrap();
        Filtered {
            schema: Arc::clone(&schema),
            input: Box::pin(input),
            filters: vec![Arc::clone(&filter)],
            judged: 0,
            kept: 0,
            off: false,
            dropped_rows: Count::new(),
        }
    };
    // Not set yet: everything passes.
    let rows: usize = run(batches[..4].to_vec())
        .map(|b| b.unwrap().num_rows())
        .collect::<Vec<_>>()
        .await
        .iter()
        .sum();
    assert_eq!(rows, 4 * 1024);
    let modulo = Arc::new(BinaryExpr::new(
        Arc::clone(&k),
        Operator::Modulo,
        lit(20i64),
    ));
    dynamic
        .update(Arc::new(BinaryExpr::new(
            modulo,
            Operator::NotEq,
            lit(0i64),
        )))
        .unwrap();
    let mut stream = run(batches);
    let mut rows = 0;
    while let Some(batch) = stream.next().await {
        rows += batch.unwrap().num_rows();
    }
    // The first 64 Ki rows are filtered (64 batches: 52 rows dropped
    // from each), the rest pass whole.
    assert!(stream.off);
    assert_eq!(rows, 200 * 1024 - 64 * 52);
}
