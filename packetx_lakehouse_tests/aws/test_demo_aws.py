"""``packetx-lakehouse demo`` on the AWS path: environment variables are the only difference."""

from packetx_lakehouse.cli import main
from packetx_lakehouse.lib.serving.sql_warehouse import Warehouse
from packetx_lakehouse.lib.storage.iceberg import glue_catalog


def test_demo_runs_the_whole_pipeline_from_the_s3_landing_prefix(aws, aws_settings, pg_database, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no dagster.yaml here: an ephemeral instance, nothing left behind
    monkeypatch.setenv("PACKETX_WAREHOUSE_URL", pg_database)
    monkeypatch.setenv("PACKETX_WAREHOUSE_SCHEMA", "demo")
    assert main(["demo", "--users", "2", "--days", "2"]) == 0
    out = capsys.readouterr().out
    assert "Seeded s3://packetx-test/lakehouse/raw_data_upload/ with 6 files" in out
    assert "catalog 'packetx' at Glue, warehouse s3://packetx-test/lakehouse/warehouse" in out
    assert len(aws.keys("lakehouse/raw_data_upload/")) == 6
    items = aws.client("dynamodb").scan(TableName="daily_aggregate")["Items"]
    assert {i["user"]["S"] for i in items} == {"alice", "bob", "bob-smith"}
    catalog = glue_catalog(aws_settings.s3_warehouse_uri, aws_settings.aws_region, aws_settings.aws_endpoint_url)
    gold_users = catalog.load_table("packetx_gold.users_dim").scan().to_arrow().sort_by("user_key")
    warehouse_users = Warehouse(pg_database, "demo").read("users_dim", ["user_key"])
    assert [row[0] for row in warehouse_users] == gold_users.column("user_key").to_pylist()
