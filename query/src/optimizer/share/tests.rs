use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::datasource::MemTable;
use datafusion::execution::memory_pool::{FairSpillPool, MemoryPool};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::physical_plan::{ExecutionPlan, collect, displayable};
use datafusion::prelude::{SessionConfig, SessionContext};

use super::*;
use crate::optimizer::LakehoseOptions;

/// A session with lakehose's planner over `t(k, v, s)` and `u(k, w)`:
/// NULL keys and values, duplicate keys, a skewed key (1 holds most of
/// `t`), and `empty(k, v)` with no rows; `share` sets the rule.
async fn session(share: bool, pool: Option<Arc<dyn MemoryPool>>) -> SessionContext {
    let mut config = SessionConfig::new()
        .with_target_partitions(3)
        .with_batch_size(64)
        .with_option_extension(LakehoseOptions::default());
    config
        .options_mut()
        .set("lakehose.share_subplans", &share.to_string())
        .unwrap();
    let mut runtime = RuntimeEnvBuilder::new();
    if let Some(pool) = pool {
        runtime = runtime.with_memory_pool(pool);
    }
    let state = datafusion::execution::session_state::SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime.build_arc().unwrap())
        .with_default_features()
        .with_query_planner(Arc::new(crate::optimizer::LakehosePlanner::new(true)))
        .build();
    let ctx = SessionContext::new_with_state(state);
    let t_schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new("v", DataType::Int64, true),
        Field::new("s", DataType::Utf8, true),
    ]));
    let n = 3_000i64;
    let keys: Vec<Option<i64>> = (0..n)
        .map(|i| match i % 10 {
            0 => None,
            1..=6 => Some(1),
            _ => Some(i % 37),
        })
        .collect();
    let values: Vec<Option<i64>> = (0..n).map(|i| (i % 11 != 0).then_some(i % 101)).collect();
    let names: Vec<Option<String>> = (0..n)
        .map(|i| (i % 13 != 0).then(|| format!("n{}", i % 7)))
        .collect();
    let batches: Vec<Vec<RecordBatch>> = (0..3)
        .map(|part| {
            let range = (part * 1_000) as usize..((part + 1) * 1_000) as usize;
            vec![
                RecordBatch::try_new(
                    Arc::clone(&t_schema),
                    vec![
                        Arc::new(Int64Array::from(keys[range.clone()].to_vec())),
                        Arc::new(Int64Array::from(values[range.clone()].to_vec())),
                        Arc::new(StringArray::from(names[range].to_vec())),
                    ],
                )
                .unwrap(),
            ]
        })
        .collect();
    ctx.register_table("t", Arc::new(MemTable::try_new(t_schema, batches).unwrap()))
        .unwrap();
    let u_schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new("w", DataType::Int64, true),
    ]));
    let u = RecordBatch::try_new(
        Arc::clone(&u_schema),
        vec![
            Arc::new(Int64Array::from(vec![
                Some(1),
                Some(1),
                Some(2),
                None,
                Some(36),
                Some(99),
            ])),
            Arc::new(Int64Array::from(vec![
                Some(10),
                Some(11),
                None,
                Some(13),
                Some(14),
                Some(15),
            ])),
        ],
    )
    .unwrap();
    ctx.register_table(
        "u",
        Arc::new(MemTable::try_new(u_schema, vec![vec![u]]).unwrap()),
    )
    .unwrap();
    let e_schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new("v", DataType::Int64, true),
    ]));
    ctx.register_table(
        "empty",
        Arc::new(MemTable::try_new(e_schema, vec![vec![]]).unwrap()),
    )
    .unwrap();
    ctx
}

/// The `SharedExec` ids in a physical plan, one per reader.
fn shared_readers(plan: &Arc<dyn ExecutionPlan>) -> Vec<usize> {
    let mut ids = Vec::new();
    plan.apply(|p| {
        if let Some(shared) = p.downcast_ref::<SharedExec>() {
            ids.push(shared.slot.id);
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .unwrap();
    ids.sort_unstable();
    ids
}

/// Runs `sql` with the rule on and off: the same rows (in the order
/// the query gives, so every test query orders its rows completely), and
/// the readers of the plan with the rule on.
async fn same_answer(sql: &str) -> Vec<usize> {
    let mut answers = Vec::new();
    let mut readers = Vec::new();
    for share in [true, false] {
        let ctx = session(share, None).await;
        let plan = ctx
            .sql(sql)
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        readers = if share {
            shared_readers(&plan)
        } else {
            readers
        };
        if !share {
            assert!(
                shared_readers(&plan).is_empty(),
                "shared with the rule off:\n{}",
                displayable(plan.as_ref()).indent(true)
            );
        }
        let batches = collect(plan, ctx.task_ctx()).await.unwrap();
        answers.push(pretty_format_batches(&batches).unwrap().to_string());
    }
    assert_eq!(answers[0], answers[1], "{sql}");
    readers
}

#[tokio::test]
async fn a_cte_read_twice_is_computed_once_with_the_same_answer() {
    // Q15's shape: an aggregate read by the outer query and by a scalar
    // subquery over it; NULL keys and values, a skewed key.
    let readers = same_answer(
        "WITH r AS (SELECT k, sum(v) AS total FROM t GROUP BY k) \
         SELECT k, total FROM r WHERE total >= (SELECT max(total) FROM r) / 10 ORDER BY k NULLS FIRST",
    )
    .await;
    assert_eq!(readers, vec![0, 0]);
}

#[tokio::test]
async fn a_subquery_over_the_outer_querys_join_reads_it_narrowed() {
    // Q11's shape: the subquery needs fewer columns of the same join.
    let readers = same_answer(
        "SELECT t.s, sum(t.v * u.w) AS value FROM t JOIN u ON t.k = u.k GROUP BY t.s \
         HAVING sum(t.v * u.w) > (SELECT sum(t.v * u.w) * 0.1 FROM t JOIN u ON t.k = u.k) \
         ORDER BY value DESC, t.s NULLS FIRST",
    )
    .await;
    assert_eq!(readers, vec![0, 0]);
}

#[tokio::test]
async fn empty_inputs_duplicates_and_unions_give_the_same_answer() {
    same_answer(
        "WITH r AS (SELECT k, sum(v) AS total FROM empty GROUP BY k) \
         SELECT count(*), (SELECT max(total) FROM r) FROM r",
    )
    .await;
    // The same join three times, once under a UNION ALL (which keeps
    // duplicates).
    let readers = same_answer(
        "WITH j AS (SELECT t.k, t.v, u.w FROM t JOIN u ON t.k = u.k), \
              a AS (SELECT k, count(*) AS c FROM j GROUP BY k) \
         SELECT k, c FROM a UNION ALL SELECT k, c FROM a \
         UNION ALL SELECT k, (SELECT count(*) FROM j) FROM a ORDER BY k NULLS FIRST, c",
    )
    .await;
    assert!(readers.len() >= 2, "{readers:?}");
}

#[tokio::test]
async fn different_rows_are_never_shared() {
    // DISTINCT over different columns of the same join: ignoring the
    // projections would make them equal, and wrong.
    same_answer(
        "SELECT (SELECT count(*) FROM (SELECT DISTINCT t.k FROM t JOIN u ON t.k = u.k)) AS a, \
                (SELECT count(*) FROM (SELECT DISTINCT t.k, t.v FROM t JOIN u ON t.k = u.k)) AS b",
    )
    .await;
    // Different filters.
    let readers = same_answer(
        "SELECT (SELECT sum(v) FROM t WHERE k = 1 GROUP BY k) AS a, (SELECT sum(v) FROM t WHERE k = 2 GROUP BY k) AS b",
    )
    .await;
    assert!(readers.is_empty(), "{readers:?}");
    // A volatile expression is evaluated at each place.
    let ctx = session(true, None).await;
    let plan = ctx
        .sql("SELECT (SELECT count(*) FROM t JOIN u ON t.k = u.k WHERE random() < 2.0) AS a, (SELECT count(*) FROM t JOIN u ON t.k = u.k WHERE random() < 2.0) AS b")
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    assert!(shared_readers(&plan).is_empty());
}

#[tokio::test]
async fn the_rewrite_leaves_a_plan_without_repeats_alone() {
    let ctx = session(true, None).await;
    let plan = ctx
        .sql("SELECT t.k, sum(u.w) FROM t JOIN u ON t.k = u.k GROUP BY t.k")
        .await
        .unwrap()
        .into_optimized_plan()
        .unwrap();
    assert_eq!(share_subplans(plan.clone()).unwrap(), plan);
}

#[tokio::test]
async fn a_shared_result_past_the_memory_limit_is_spilled_and_read_back() {
    // 256 KiB of memory: the shared join's batches go to a spill file, and
    // both readers read them back.
    let pool: Arc<dyn MemoryPool> = Arc::new(FairSpillPool::new(256 << 10));
    let sql = "WITH j AS (SELECT t.k, t.v, t.s, u.w FROM t JOIN u ON t.k = u.k) \
               SELECT (SELECT count(*) FROM j), (SELECT sum(v * w) FROM j), (SELECT count(DISTINCT s) FROM j)";
    let ctx = session(true, Some(pool)).await;
    let plan = ctx
        .sql(sql)
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    // The first two read the same columns; the third reads `s`, which the
    // widest of the three does not hold, so it runs its own join.
    assert_eq!(shared_readers(&plan).len(), 2);
    let spilled = collect(Arc::clone(&plan), ctx.task_ctx()).await.unwrap();
    let mut spills = 0;
    plan.apply(|p| {
        if p.downcast_ref::<SharedExec>().is_some()
            && let Some(m) = p.metrics()
        {
            spills += m.spill_count().unwrap_or(0);
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .unwrap();
    assert!(spills > 0, "nothing spilled");
    let off = session(false, None).await;
    let expected = off.sql(sql).await.unwrap().collect().await.unwrap();
    assert_eq!(
        pretty_format_batches(&spilled).unwrap().to_string(),
        pretty_format_batches(&expected).unwrap().to_string()
    );
}

#[tokio::test]
async fn the_setting_turns_the_rule_off_and_bad_values_are_refused() {
    let ctx = session(false, None).await;
    let plan = ctx
        .sql("WITH r AS (SELECT k, sum(v) AS total FROM t GROUP BY k) SELECT * FROM r WHERE total = (SELECT max(total) FROM r)")
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    assert!(shared_readers(&plan).is_empty());
    let mut config = SessionConfig::new().with_option_extension(LakehoseOptions::default());
    let err = config
        .options_mut()
        .set("lakehose.share_subplans", "perhaps")
        .unwrap_err();
    assert!(err.to_string().contains("perhaps"), "{err}");
    assert!(
        config
            .options_mut()
            .set("lakehose.no_such_rule", "true")
            .is_err()
    );
}

#[test]
fn engine_settings_name_what_is_wrong() {
    let config = |key: &str, value: &str| crate::EngineConfig {
        settings: vec![(key.to_string(), value.to_string())],
        ..Default::default()
    };
    let on = config("lakehose.share_subplans", "false")
        .session_config()
        .unwrap();
    assert!(!LakehoseOptions::of(on.options()).share_subplans);
    assert!(LakehoseOptions::of(on.options()).runtime_filters);
    let err = config("lakehose.no_such_rule", "true")
        .session_config()
        .unwrap_err();
    assert!(err.to_string().contains("lakehose.no_such_rule"), "{err}");
    let err = config("lakehose.runtime_filters", "sometimes")
        .session_config()
        .unwrap_err();
    assert!(err.to_string().contains("sometimes"), "{err}");
    let err = config("datafusion.execution.batch_size", "-1")
        .session_config()
        .unwrap_err();
    assert!(err.to_string().contains("batch_size"), "{err}");
}
