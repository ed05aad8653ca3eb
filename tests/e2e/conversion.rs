//! Format conversion with a Glue table's schema, through the real
//! `aws-sdk-glue` and `aws-sdk-firehose` clients: every Hive type Firehose
//! converts to, JSON read the way the OpenX SerDe reads it, records that do
//! not fit in the error prefix, and a table that cannot be used refused at
//! creation or (when it changes later) reported for each record.

use arrow::array::{Array, AsArray};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, TimeUnit, TimestampMicrosecondType,
};
use aws_sdk_glue::types::{DatabaseInput, TableInput};

use crate::util::*;

/// Every column type of the table, in order.
const COLUMNS: &[(&str, &str)] = &[
    ("t", "tinyint"),
    ("s", "smallint"),
    ("status", "int"),
    ("b", "bigint"),
    ("f", "float"),
    ("d", "double"),
    ("price", "decimal(10,2)"),
    ("ok", "boolean"),
    ("msg", "string"),
    ("code", "varchar(4)"),
    ("flag", "char(3)"),
    ("raw", "binary"),
    ("day", "date"),
    ("at", "timestamp"),
    ("ts", "string"),
    ("tags", "array<string>"),
    (
        "req",
        "struct<headers:map<string,string>,sizes:array<int>,inner:struct<n:bigint>>",
    ),
    ("counts", "map<string,bigint>"),
];

fn table(name: &str, columns: &[(&str, &str)]) -> TableInput {
    parquet_table_input(name, &format!("s3://typed/{name}/"), columns, &["service"])
}

/// A server on a fresh folder with its Glue and Firehose clients.
fn start() -> (
    tempfile::TempDir,
    Server,
    aws_sdk_glue::Client,
    aws_sdk_firehose::Client,
) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let glue = glue_client(&server.endpoint);
    let client = server.client();
    (dir, server, glue, client)
}

/// Creates database `typed` and its tables.
async fn create_tables(glue: &aws_sdk_glue::Client, tables: &[TableInput]) {
    glue.create_database()
        .database_input(DatabaseInput::builder().name("typed").build().unwrap())
        .send()
        .await
        .unwrap();
    for t in tables {
        glue.create_table()
            .database_name("typed")
            .table_input(t.clone())
            .send()
            .await
            .unwrap();
    }
}

async fn create_stream(
    client: &aws_sdk_firehose::Client,
    name: &str,
    table: &str,
) -> Result<(), String> {
    create_stream_reading(client, name, table, None).await
}

/// [`create_stream`] whose records are read with the Hive JSON SerDe and
/// these `TimestampFormats`.
async fn create_stream_reading(
    client: &aws_sdk_firehose::Client,
    name: &str,
    table: &str,
    hive_timestamp_formats: Option<&[&str]>,
) -> Result<(), String> {
    use aws_sdk_firehose::types::{Deserializer, HiveJsonSerDe, InputFormatConfiguration};
    let mut dest = lakehose::commands::demo::parquet_destination(
        "typed",
        &format!("{table}/service=!{{partitionKeyFromQuery:service}}/"),
        "errors/!{firehose:error-output-type}/",
        "{service: .service}",
        300,
        Some(("typed", table)),
    )
    .unwrap();
    if let (Some(formats), Some(conversion)) = (
        hive_timestamp_formats,
        dest.data_format_conversion_configuration.as_mut(),
    ) {
        conversion.input_format_configuration = Some(
            InputFormatConfiguration::builder()
                .deserializer(
                    Deserializer::builder()
                        .hive_json_ser_de(
                            HiveJsonSerDe::builder()
                                .set_timestamp_formats(Some(
                                    formats.iter().map(|f| f.to_string()).collect(),
                                ))
                                .build(),
                        )
                        .build(),
                )
                .build(),
        );
    }
    client
        .create_delivery_stream()
        .delivery_stream_name(name)
        .extended_s3_destination_configuration(dest)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            let e = e.into_service_error();
            format!(
                "{}: {}",
                e.meta().code().unwrap_or(""),
                e.meta().message().unwrap_or("")
            )
        })
}

#[test]
fn a_stream_converts_to_every_type_of_its_glue_table() {
    let (dir, server, glue, client) = start();
    rt().block_on(async {
        create_tables(&glue, &[table("events", COLUMNS)]).await;
        create_stream(&client, "events", "events").await.unwrap();
        let records = vec![
            // Numbers in strings, epoch seconds, a map inside a struct, a
            // timestamp-looking string in a string column, mixed-case keys.
            record(
                r#"{"service":"web","T":"-5","s":300,"status":"200","b":"9007199254740993","f":"1.5","d":2.25,
                    "price":"19.999","ok":"true","msg":{"a":[1,2]},"code":"ABCDEFG","flag":"x","raw":"aGVsbG8=",
                    "day":"2026-12-05","at":1796428800,"ts":"2026-12-05T00:00:00Z","tags":["a",null,"c"],
                    "req":{"headers":{"Host":"example.com","Accept":"*/*"},"sizes":[1,"2"],"inner":{"n":7}},
                    "counts":{"x":1,"y":"2"},"unknown":"ignored"}"#,
            ),
            // Epoch milliseconds and the space-separated form; the rest NULL.
            record(r#"{"service":"web","status":201,"at":1796428800500,"day":"2026-1-2"}"#),
            record(r#"{"service":"web","at":"2026-12-05 01:02:03.25"}"#),
            // Records that do not fit the table: each goes to the error prefix.
            record(r#"{"service":"web","t":300}"#),
            record(r#"{"service":"web","status":"two hundred"}"#),
            record(r#"{"service":"web","req":{"headers":"not a map"}}"#),
            record(r#"{"service":"web","price":"123456789.5"}"#),
            record(r#"{"service":"web","at":"yesterday"}"#),
            record(r#"{"service":"web","raw":"***"}"#),
        ];
        let out = client
            .put_record_batch()
            .delivery_stream_name("events")
            .set_records(Some(records))
            .send()
            .await
            .unwrap();
        assert_eq!(out.failed_put_count(), 0, "every record is acknowledged");
    });
    server.terminate();

    let files = files(&dir.path().join("typed/events"), ".parquet");
    assert_eq!(files.len(), 1, "{files:?}");
    let batches = read_parquet(&files[0]);
    let batch = &batches[0];
    let schema = batch.schema();
    let types: Vec<(&str, String)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().as_str(), f.data_type().to_string()))
        .collect();
    let want: Vec<(&str, DataType)> = vec![
        ("t", DataType::Int8),
        ("s", DataType::Int16),
        ("status", DataType::Int32),
        ("b", DataType::Int64),
        ("f", DataType::Float32),
        ("d", DataType::Float64),
        ("price", DataType::Decimal128(10, 2)),
        ("ok", DataType::Boolean),
        ("msg", DataType::Utf8),
        ("code", DataType::Utf8),
        ("flag", DataType::Utf8),
        ("raw", DataType::Binary),
        ("day", DataType::Date32),
        ("at", DataType::Timestamp(TimeUnit::Microsecond, None)),
        ("ts", DataType::Utf8),
    ];
    for (i, (name, t)) in want.iter().enumerate() {
        assert_eq!(types[i], (*name, t.to_string()), "column {i}");
    }
    assert!(matches!(schema.field(15).data_type(), DataType::List(_)));
    let DataType::Struct(req) = schema.field(16).data_type() else {
        panic!("req is a struct: {schema:?}")
    };
    assert!(
        matches!(req[0].data_type(), DataType::Map(..)),
        "the map stays a map: {req:?}"
    );
    assert!(matches!(schema.field(17).data_type(), DataType::Map(..)));
    assert_eq!(schema.fields().len(), COLUMNS.len(), "no inferred columns");
    assert_eq!(batch.num_rows(), 3);

    let c = |name: &str| batch.column_by_name(name).unwrap();
    assert_eq!(c("t").as_primitive::<Int8Type>().value(0), -5);
    assert_eq!(c("s").as_primitive::<Int16Type>().value(0), 300);
    assert_eq!(
        c("status").as_primitive::<Int32Type>().values()[..2],
        [200, 201]
    );
    assert_eq!(
        c("b").as_primitive::<Int64Type>().value(0),
        9_007_199_254_740_993,
        "integer text keeps every digit"
    );
    assert_eq!(c("f").as_primitive::<Float32Type>().value(0), 1.5);
    assert_eq!(c("d").as_primitive::<Float64Type>().value(0), 2.25);
    assert_eq!(
        c("price").as_primitive::<Decimal128Type>().value(0),
        2000,
        "19.999 rounds half up to 20.00"
    );
    assert!(c("ok").as_boolean().value(0));
    assert_eq!(c("msg").as_string::<i32>().value(0), r#"{"a":[1,2]}"#);
    assert_eq!(c("code").as_string::<i32>().value(0), "ABCD");
    assert_eq!(c("flag").as_string::<i32>().value(0), "x  ");
    assert_eq!(c("raw").as_binary::<i32>().value(0), b"hello");
    assert_eq!(c("day").as_primitive::<Date32Type>().value(0), 20_792);
    assert_eq!(c("day").as_primitive::<Date32Type>().value(1), 20_455);
    let at = c("at").as_primitive::<TimestampMicrosecondType>();
    assert_eq!(at.value(0), 1_796_428_800_000_000, "epoch seconds");
    assert_eq!(at.value(1), 1_796_428_800_500_000, "epoch milliseconds");
    assert_eq!(at.value(2), 1_796_432_523_250_000, "yyyy-MM-dd HH:mm:ss.S");
    assert_eq!(
        c("ts").as_string::<i32>().value(0),
        "2026-12-05T00:00:00Z",
        "a string column keeps the text"
    );
    assert!(c("msg").is_null(1) && c("req").is_null(2));
    let tags = c("tags").as_list::<i32>().value(0);
    assert_eq!(tags.len(), 3);
    assert!(tags.is_null(1));
    let req = c("req").as_struct();
    let headers = req.column(0).as_map().value(0);
    let keys: Vec<&str> = headers
        .column(0)
        .as_string::<i32>()
        .iter()
        .flatten()
        .collect();
    assert_eq!(keys, ["Host", "Accept"], "map keys as written");
    assert_eq!(
        req.column(1)
            .as_list::<i32>()
            .value(0)
            .as_primitive::<Int32Type>()
            .values()[..],
        [1, 2]
    );
    assert_eq!(
        req.column(2)
            .as_struct()
            .column(0)
            .as_primitive::<Int64Type>()
            .value(0),
        7
    );
    let counts = c("counts").as_map().value(0);
    assert_eq!(
        counts.column(1).as_primitive::<Int64Type>().values()[..],
        [1, 2]
    );

    let docs = error_docs(&dir.path().join("typed/errors"));
    assert_eq!(docs.len(), 6, "{docs:#?}");
    let mut messages: Vec<String> = docs
        .iter()
        .map(|d| {
            assert_eq!(d["errorOutputType"], "format-conversion-failed");
            assert_eq!(d["errorCode"], "DataFormatConversion.MalformedData");
            d["errorMessage"].as_str().unwrap().to_string()
        })
        .collect();
    messages.sort();
    for (got, want) in messages.iter().zip([
        r#"field "at": "yesterday" is not a valid timestamp"#,
        r#"field "price": "123456789.5" does not fit decimal(10,2)"#,
        r#"field "raw": "***" is not base64 text"#,
        r#"field "req.headers": "not a map" is not a valid map<string,string>"#,
        r#"field "status": "two hundred" is not a valid int"#,
        r#"field "t": 300 is out of range for tinyint"#,
    ]) {
        assert!(got.ends_with(want), "{got:?} should end with {want:?}");
    }

    // Queries read the typed table, map lookups included.
    let server = Server::start(dir.path(), &[]);
    rt().block_on(async {
        let pg = server.pg("typed").await;
        let rows = pg
            .query(
                "SELECT status, req.headers['Host'], counts['y'], code FROM events WHERE status = 200",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].get::<_, i32>(0), 200);
        assert_eq!(rows[0].get::<_, &str>(1), "example.com");
        assert_eq!(rows[0].get::<_, i64>(2), 2);
        assert_eq!(rows[0].get::<_, &str>(3), "ABCD");
    });
    server.terminate();
}

#[test]
fn a_table_that_cannot_be_used_is_never_replaced_by_inference() {
    let (dir, server, glue, client) = start();
    rt().block_on(async {
        // A column type Firehose cannot convert to: refused at creation.
        create_tables(
            &glue,
            &[
                table("odd", &[("id", "bigint"), ("u", "uuid")]),
                table("later", &[("id", "bigint")]),
            ],
        )
        .await;
        let err = create_stream(&client, "odd", "odd").await.unwrap_err();
        assert!(
            err.starts_with("InvalidArgumentException")
                && err.contains("typed.odd")
                && err.contains("\"u\""),
            "{err}"
        );

        // A usable table that later changes into an unusable one: the
        // records go to the error prefix with the reason.
        create_stream(&client, "later", "later").await.unwrap();
        glue.update_table()
            .database_name("typed")
            .table_input(table(
                "later",
                &[("id", "bigint"), ("m", "map<array<int>,int>")],
            ))
            .send()
            .await
            .unwrap();
        client
            .put_record_batch()
            .delivery_stream_name("later")
            .set_records(Some(vec![
                record(r#"{"service":"a","id":1}"#),
                record(r#"{"service":"a","id":2}"#),
            ]))
            .send()
            .await
            .unwrap();
    });
    server.terminate();
    assert!(
        files(&dir.path().join("typed/later"), ".parquet").is_empty(),
        "nothing written with an inferred schema"
    );
    let docs = error_docs(&dir.path().join("typed/errors"));
    assert_eq!(docs.len(), 2);
    for d in &docs {
        assert_eq!(d["errorOutputType"], "format-conversion-failed");
        assert_eq!(d["errorCode"], "DataFormatConversion.InvalidSchema");
        let message = d["errorMessage"].as_str().unwrap();
        assert!(
            message.contains("typed.later cannot be used") && message.contains("map keys"),
            "{message}"
        );
    }
}

#[test]
fn hive_serde_timestamp_formats_read_custom_patterns() {
    let (dir, server, glue, client) = start();
    rt().block_on(async {
        create_tables(
            &glue,
            &[table("access", &[("id", "bigint"), ("at", "timestamp")])],
        )
        .await;
        // A pattern with letters lakehose does not read is refused.
        let err = create_stream_reading(&client, "bad", "access", Some(&["yyyy-QQ"]))
            .await
            .unwrap_err();
        assert!(
            err.starts_with("InvalidArgumentException") && err.contains("\"QQ\""),
            "{err}"
        );
        create_stream_reading(
            &client,
            "access",
            "access",
            Some(&["dd/MMM/yyyy:HH:mm:ss Z", "millis"]),
        )
        .await
        .unwrap();
        client
            .put_record_batch()
            .delivery_stream_name("access")
            .set_records(Some(vec![
                record(r#"{"service":"web","id":1,"at":"05/Dec/2026:01:00:00 +0100"}"#),
                record(r#"{"service":"web","id":2,"at":1796428800000}"#),
                record(r#"{"service":"web","id":3,"at":"2026-12-05 00:00:00"}"#),
            ]))
            .send()
            .await
            .unwrap();
    });
    server.terminate();
    let files = files(&dir.path().join("typed/access"), ".parquet");
    assert_eq!(files.len(), 1, "{files:?}");
    let batch = &read_parquet(&files[0])[0];
    let at = batch
        .column_by_name("at")
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>();
    // Each is 2026-12-05 00:00:00 UTC.
    assert_eq!(at.values()[..], [1_796_428_800_000_000; 3]);
}
