"""The landing sensor watching the S3 upload prefix (ETags as versions), over HTTP to moto."""

import dagster as dg

from packetx_lakehouse.defs.automation.landing_sensor import landing_sensor
from packetx_lakehouse.defs.partitions import daily_partitions
from packetx_lakehouse.defs.resources import build_resources
from packetx_lakehouse.devices.upload import upload_files
from packetx_lakehouse.settings import Settings
from packetx_lakehouse_tests.conftest import HEADER, TEST_START_DATE

ROW = "alice,{day} 09:53,8.8.8.8,192.168.1.20,210,1158.17\n"


def _tick(resources, cursor):
    context = dg.build_sensor_context(cursor=cursor, resources={"landing": resources["landing"]})
    return landing_sensor(daily_partitions(Settings(start_date=TEST_START_DATE)))(context)


def test_sensor_requests_new_and_grown_uploads_once(aws, aws_settings, tmp_path):
    resources = build_resources(aws_settings)
    paths = []
    for day in ("2026-11-19", "2026-11-20"):
        path = tmp_path / f"alice-{day}.csv"
        path.write_text(HEADER + ROW.format(day=day))
        paths.append(path)
    upload_files(aws_settings, paths)

    first = _tick(resources, None)
    assert sorted(r.partition_key for r in first.run_requests) == ["2026-11-19", "2026-11-20"]
    idle = _tick(resources, first.cursor)
    assert idle.run_requests == [] and "s3://packetx-test/lakehouse/raw_data_upload/" in idle.skip_reason.skip_message

    paths[1].write_text(HEADER + ROW.format(day="2026-11-20") * 2)
    assert [r.action for r in upload_files(aws_settings, paths)] == ["unchanged", "replaced"]
    grown = _tick(resources, idle.cursor)
    assert [r.partition_key for r in grown.run_requests] == ["2026-11-20"]
