"""The landing sensor watching the S3 upload prefix (ETags as versions), over HTTP to moto."""

import dagster as dg

from packetx_lakehouse.definitions import build_definitions
from packetx_lakehouse.defs.resources import archive_resource, landing_resource, landing_store
from packetx_lakehouse.devices.upload import upload_files
from packetx_lakehouse.settings import Settings
from packetx_lakehouse_tests.conftest import HEADER, TEST_START_DATE

ROW = "alice,{day} 09:53,8.8.8.8,192.168.1.20,210,1158.17\n"


def _tick(settings, cursor):
    context = dg.build_sensor_context(
        cursor=cursor, instance=dg.DagsterInstance.ephemeral(),
        resources={"landing": landing_resource(settings), "raw_archive": archive_resource(settings)})
    return build_definitions(Settings(start_date=TEST_START_DATE)).resolve_sensor_def("landing_sensor")(context)


def test_sensor_requests_new_and_grown_uploads_once(aws, aws_settings, tmp_path):
    paths = []
    for day in ("2026-11-19", "2026-11-20"):
        path = tmp_path / f"alice-{day}.csv"
        path.write_text(HEADER + ROW.format(day=day))
        paths.append(path)
    upload_files(aws_settings, paths)

    first = _tick(aws_settings, None)
    assert sorted(r.partition_key for r in first.run_requests) == ["2026-11-19", "2026-11-20"]
    idle = _tick(aws_settings, first.cursor)
    assert idle.run_requests == [] and "s3://packetx-test/lakehouse/raw_data_upload/" in idle.skip_reason.skip_message

    paths[1].write_text(HEADER + ROW.format(day="2026-11-20") * 2)
    assert [r.action for r in upload_files(aws_settings, paths)] == ["unchanged", "replaced"]
    grown = _tick(aws_settings, idle.cursor)
    assert [r.partition_key for r in grown.run_requests] == ["2026-11-20"]


def test_only_objects_directly_under_the_prefix_are_landing_files(aws, aws_settings, tmp_path):
    """A key with a '/' after the prefix is a sub-folder and a key starting with '.' is hidden: never read."""
    s3 = aws.client("s3")
    prefix = "lakehouse/raw_data_upload/"
    body = (HEADER + ROW.format(day="2026-11-20")).encode()
    for key in ("alice-2026-11-20.csv", "old/alice-2026-11-20.csv", ".Trash/carol-2026-11-20.csv", ".bob-2026-11-20.csv"):
        s3.put_object(Bucket=aws.bucket, Key=prefix + key, Body=body)
    listing = landing_store(aws_settings).list_flat()
    assert [info.key for info in listing.objects] == ["alice-2026-11-20.csv"]
    assert [(entry.key, entry.reason.split(" (")[0]) for entry in listing.skipped] == [
        (".Trash/", "sub-folder"), (".bob-2026-11-20.csv", "hidden entry"), ("old/", "sub-folder")]
    first = _tick(aws_settings, None)
    assert [r.partition_key for r in first.run_requests] == ["2026-11-20"]
    assert '"reported"' in first.cursor and _tick(aws_settings, first.cursor).run_requests == []
