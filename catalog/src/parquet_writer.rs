//! How lakehose writes Parquet, in one place: every writer (ingest flushes,
//! CTAS/INSERT/UNLOAD, ETL and DynamoDB imports, compaction, the CLI and the
//! data generators) starts from [`writer_properties`], so files agree on
//! their codec, row-group size and `created_by`.

use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{WriterProperties, WriterPropertiesBuilder};

/// The zstd level lakehose writes with: 3, zstd's own default, a good
/// ratio at a fraction of the higher levels' CPU.
pub(crate) const ZSTD_LEVEL: i32 = 3;

/// Rows per row group: large enough for good compression and statistics,
/// small enough that a reader can skip by row group.
pub(crate) const ROW_GROUP_ROWS: usize = 1 << 20;

/// lakehose's default codec: zstd at [`ZSTD_LEVEL`].
pub fn default_codec() -> Compression {
    Compression::ZSTD(ZstdLevel::try_new(ZSTD_LEVEL).unwrap_or_default())
}

/// Writer properties with `codec`, [`ROW_GROUP_ROWS`] and `created_by`
/// naming lakehose and its version; callers may set more before `build`.
pub fn writer_properties(codec: Compression) -> WriterPropertiesBuilder {
    WriterProperties::builder()
        .set_compression(codec)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_created_by(format!("lakehose {}", env!("CARGO_PKG_VERSION")))
}

/// [`writer_properties`] with the [`default_codec`], built.
pub fn default_writer_properties() -> WriterProperties {
    writer_properties(default_codec()).build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_set_of_properties() {
        let p = default_writer_properties();
        assert_eq!(
            p.compression(&parquet::schema::types::ColumnPath::from("c")),
            Compression::ZSTD(ZstdLevel::try_new(3).unwrap())
        );
        assert_eq!(p.max_row_group_row_count(), Some(ROW_GROUP_ROWS));
        assert!(p.created_by().starts_with("lakehose "));
    }
}
