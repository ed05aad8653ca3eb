//! The control plane through the real `aws-sdk-firehose` client: create,
//! describe, list (with pagination), delete, typed errors, and stream
//! definitions that survive a restart.

use aws_sdk_firehose::types::*;

use crate::util::*;

fn raw_destination(bucket: &str) -> ExtendedS3DestinationConfiguration {
    ExtendedS3DestinationConfiguration::builder()
        .role_arn("arn:aws:iam::123456789012:role/firehose")
        .bucket_arn(format!("arn:aws:s3:::{bucket}"))
        .prefix("p/")
        .build()
        .unwrap()
}

#[test]
fn control_plane_round_trips_and_persists() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let client = server.client();
    let rt = rt();
    rt.block_on(async {
        for name in ["charlie", "alpha", "bravo", "delta"] {
            let out = client
                .create_delivery_stream()
                .delivery_stream_name(name)
                .extended_s3_destination_configuration(raw_destination("bucket-one"))
                .send()
                .await
                .unwrap();
            assert_eq!(
                out.delivery_stream_arn().unwrap(),
                format!("arn:aws:firehose:us-east-1:000000000000:deliverystream/{name}")
            );
        }
        let dup = client
            .create_delivery_stream()
            .delivery_stream_name("alpha")
            .extended_s3_destination_configuration(raw_destination("bucket-one"))
            .send()
            .await
            .unwrap_err();
        assert!(
            dup.as_service_error()
                .unwrap()
                .is_resource_in_use_exception(),
            "{dup:?}"
        );

        // Pagination: alphabetical, Limit and ExclusiveStartDeliveryStreamName.
        let page = client
            .list_delivery_streams()
            .limit(2)
            .send()
            .await
            .unwrap();
        assert_eq!(page.delivery_stream_names(), ["alpha", "bravo"]);
        assert!(page.has_more_delivery_streams());
        let page = client
            .list_delivery_streams()
            .limit(2)
            .exclusive_start_delivery_stream_name("bravo")
            .send()
            .await
            .unwrap();
        assert_eq!(page.delivery_stream_names(), ["charlie", "delta"]);
        assert!(!page.has_more_delivery_streams());

        let d = client
            .describe_delivery_stream()
            .delivery_stream_name("bravo")
            .send()
            .await
            .unwrap();
        let d = d.delivery_stream_description().unwrap();
        assert_eq!(d.delivery_stream_name(), "bravo");
        assert_eq!(d.delivery_stream_status(), &DeliveryStreamStatus::Active);
        assert_eq!(d.delivery_stream_type(), &DeliveryStreamType::DirectPut);
        assert_eq!(d.version_id(), "1");
        let dest = d.destinations()[0]
            .extended_s3_destination_description()
            .unwrap();
        assert_eq!(dest.bucket_arn(), "arn:aws:s3:::bucket-one");
        assert_eq!(dest.prefix(), Some("p/"));
        let hints = dest.buffering_hints().unwrap();
        assert_eq!(
            (hints.size_in_mbs(), hints.interval_in_seconds()),
            (Some(5), Some(300))
        );
        assert_eq!(dest.compression_format(), &CompressionFormat::Uncompressed);

        client
            .delete_delivery_stream()
            .delivery_stream_name("delta")
            .send()
            .await
            .unwrap();
        let gone = client
            .describe_delivery_stream()
            .delivery_stream_name("delta")
            .send()
            .await
            .unwrap_err();
        assert!(
            gone.as_service_error()
                .unwrap()
                .is_resource_not_found_exception()
        );
        let gone = client
            .delete_delivery_stream()
            .delivery_stream_name("delta")
            .send()
            .await
            .unwrap_err();
        assert!(
            gone.as_service_error()
                .unwrap()
                .is_resource_not_found_exception()
        );
        let put = client
            .put_record()
            .delivery_stream_name("delta")
            .record(record("{}"))
            .send()
            .await
            .unwrap_err();
        assert!(
            put.as_service_error()
                .unwrap()
                .is_resource_not_found_exception()
        );

        // Invalid configurations are InvalidArgumentException naming the problem.
        for (name, dest, needle) in [
            (
                "bad-arn",
                ExtendedS3DestinationConfiguration::builder()
                    .role_arn("r")
                    .bucket_arn("arn:aws:s3:::UPPER")
                    .build()
                    .unwrap(),
                "bucket ARN",
            ),
            (
                "bad-prefix",
                ExtendedS3DestinationConfiguration::builder()
                    .role_arn("r")
                    .bucket_arn("arn:aws:s3:::okbucket")
                    .prefix("x/!{nope:1}/")
                    .error_output_prefix("e/!{firehose:error-output-type}/")
                    .build()
                    .unwrap(),
                "unknown namespace",
            ),
            (
                "bad-hints",
                ExtendedS3DestinationConfiguration::builder()
                    .role_arn("r")
                    .bucket_arn("arn:aws:s3:::okbucket")
                    .buffering_hints(
                        BufferingHints::builder()
                            .size_in_mbs(500)
                            .interval_in_seconds(60)
                            .build(),
                    )
                    .build()
                    .unwrap(),
                "SizeInMBs",
            ),
            (
                "bad name!",
                raw_destination("okbucket"),
                "DeliveryStreamName",
            ),
        ] {
            let err = client
                .create_delivery_stream()
                .delivery_stream_name(name)
                .extended_s3_destination_configuration(dest)
                .send()
                .await
                .unwrap_err();
            let service = err.as_service_error().unwrap();
            assert!(service.is_invalid_argument_exception(), "{name}: {err:?}");
            assert!(
                service.meta().message().unwrap().contains(needle),
                "{name}: {:?}",
                service.meta().message()
            );
        }
    });
    server.terminate();

    // Definitions survive a restart.
    let server = Server::start(dir.path(), &[]);
    let client = server.client();
    rt.block_on(async {
        let page = client
            .list_delivery_streams()
            .limit(10)
            .send()
            .await
            .unwrap();
        assert_eq!(page.delivery_stream_names(), ["alpha", "bravo", "charlie"]);
        client
            .put_record()
            .delivery_stream_name("alpha")
            .record(record("{\"after\":\"restart\"}"))
            .send()
            .await
            .unwrap();
    });
    server.terminate();
    let landed = files(&dir.path().join("bucket-one/p"), "");
    assert_eq!(landed.len(), 1);
    assert_eq!(
        std::fs::read_to_string(&landed[0]).unwrap(),
        "{\"after\":\"restart\"}\n"
    );
}
