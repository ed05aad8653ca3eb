//! How Arrow types appear to Postgres clients: the Postgres type a column
//! is described and sent as, and back.

use datafusion::arrow::datatypes::{DataType, IntervalUnit, TimeUnit};
use pgwire::api::Type;

/// The Postgres type a result column is sent as: `character varying` and
/// `character` for `varchar(n)`/`char(n)` columns of a table, else the
/// type of its Arrow type.
pub fn pg_field_type(field: &datafusion::arrow::datatypes::Field) -> Type {
    match lakehose_catalog::hive::HiveType::of_field(field) {
        Some(lakehose_catalog::hive::HiveType::Varchar(_)) => Type::VARCHAR,
        Some(lakehose_catalog::hive::HiveType::Char(_)) => Type::BPCHAR,
        _ => pg_type(field.data_type()),
    }
}

/// The Postgres type that carries values of an Arrow type.
pub fn pg_type(data_type: &DataType) -> Type {
    match data_type {
        DataType::Boolean => Type::BOOL,
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => Type::INT2,
        DataType::Int32 | DataType::UInt16 => Type::INT4,
        DataType::Int64 | DataType::UInt32 => Type::INT8,
        DataType::UInt64
        | DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => Type::NUMERIC,
        DataType::Float16 | DataType::Float32 => Type::FLOAT4,
        DataType::Float64 => Type::FLOAT8,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => Type::TEXT,
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => Type::BYTEA,
        DataType::Date32 | DataType::Date64 => Type::DATE,
        DataType::Timestamp(_, None) => Type::TIMESTAMP,
        DataType::Timestamp(_, Some(_)) => Type::TIMESTAMPTZ,
        DataType::Time32(_) | DataType::Time64(_) => Type::TIME,
        DataType::Interval(_) | DataType::Duration(_) => Type::INTERVAL,
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::ListView(_)
        | DataType::LargeListView(_)
        | DataType::FixedSizeList(..)
        | DataType::Struct(_)
        | DataType::Map(..)
        | DataType::Union(..) => Type::JSON,
        DataType::Dictionary(_, value) => pg_type(value),
        DataType::RunEndEncoded(_, value) => pg_type(value.data_type()),
    }
}

/// The Arrow type whose values encode as `pg` (used to bring a column to the
/// type announced by an earlier Describe).
pub fn arrow_type_for(pg: &Type) -> Option<DataType> {
    Some(match *pg {
        Type::BOOL => DataType::Boolean,
        Type::INT2 => DataType::Int16,
        Type::INT4 => DataType::Int32,
        Type::INT8 => DataType::Int64,
        Type::FLOAT4 => DataType::Float32,
        Type::FLOAT8 => DataType::Float64,
        Type::NUMERIC => DataType::Decimal128(38, 10),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR => DataType::Utf8,
        Type::BYTEA => DataType::Binary,
        Type::DATE => DataType::Date32,
        Type::TIMESTAMP => DataType::Timestamp(TimeUnit::Microsecond, None),
        Type::TIMESTAMPTZ => DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
        Type::TIME => DataType::Time64(TimeUnit::Microsecond),
        Type::INTERVAL => DataType::Interval(IntervalUnit::MonthDayNano),
        _ => return None,
    })
}
